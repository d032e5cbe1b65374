// Greedy decoding of an exported gentoolkit language model, following docs/onnx-contract.md.
const ort = require("onnxruntime-node");
const fs = require("fs");

(async () => {
  const dir = process.argv[2];
  const rt = JSON.parse(fs.readFileSync(dir + "/gentoolkit.json")).runtime;
  const session = await ort.InferenceSession.create(dir + "/model.onnx");
  const prompt = Array.from(Buffer.from(process.argv[3] || "The "));  // byte tokenizer: id = byte
  const ids = [...prompt];
  const empty = () => new ort.Tensor("float32", new Float32Array(0), [1, rt.n_kv_head, 0, rt.head_dim]);
  let past = {};
  for (let i = 0; i < rt.n_layer; i++) {
    past[`past_key_values.${i}.key`] = empty();
    past[`past_key_values.${i}.value`] = empty();
  }
  let input = prompt, start = 0;
  for (let step = 0; step < 20; step++) {
    const n = input.length, total = start + n;
    const feeds = {
      input_ids: new ort.Tensor("int64", BigInt64Array.from(input.map(BigInt)), [1, n]),
      attention_mask: new ort.Tensor("int64", new BigInt64Array(total).fill(1n), [1, total]),
      position_ids: new ort.Tensor("int64", BigInt64Array.from({ length: n }, (_, k) => BigInt(start + k)), [1, n]),
      ...past,
    };
    const out = await session.run(feeds);
    const logits = out.logits.data, V = rt.vocab_size, last = (n - 1) * V;
    let best = 0;
    for (let v = 1; v < V; v++) if (v !== rt.pad_token_id && logits[last + v] > logits[last + best]) best = v;
    ids.push(best);
    for (let i = 0; i < rt.n_layer; i++) {
      past[`past_key_values.${i}.key`] = out[`present.${i}.key`];
      past[`past_key_values.${i}.value`] = out[`present.${i}.value`];
    }
    start = total;
    input = [best];
  }
  console.log(JSON.stringify(ids.slice(prompt.length)));
})();
