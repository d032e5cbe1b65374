// Run an exported gentoolkit language model in JavaScript: the browser (onnxruntime-web) or Node
// (onnxruntime-node), with the export's own tokenizer.json read by @huggingface/tokenizers.
// The loop is the one docs/onnx-contract.md describes: prefill, then one token at a time on the KV
// cache, the window moving by half the context when it is full, as gentoolkit.runtime does.
//
//   node lm.mjs EXPORT [PROMPT] [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P]
//                               [--seed S] [--json]
//
// As a module (what `gentool demo` loads in the browser):
//   const lm = await load(source, { ort, Tokenizer });   // source: { json(name), bytes(name) }
//   const out = await lm.generate("The ", { maxNewTokens: 20, onText: (piece) => ... });

export const family = "autoregressive";

export class ExportError extends Error {}

export async function load(source, { ort, Tokenizer, sessionOptions = {} }) {
  const where = source.name || "the export";
  const manifest = await source.json("gentoolkit.json");
  if (manifest.family !== family || manifest.runtime?.kind !== "decoder") {
    throw new ExportError(`${where} is an export of the ${manifest.family} family, not a language model`);
  }
  const need = manifest.onnxruntime, have = ort.env?.versions?.common;  // the oldest release that runs the graph
  if (typeof need === "string" && typeof have === "string" && older(have, need)) {
    const pkg = ort.env.versions.node ? "onnxruntime-node" : "onnxruntime-web";
    throw new ExportError(`${where} needs onnxruntime ${need} or newer and this ${pkg} is ${have}: ` +
                          `npm install ${pkg}@latest` + (manifest.graph && manifest.graph !== "traced"
                            ? ", or export the run again with --graph traced, which older releases run" : ""));
  }
  let tokenizer;
  try {
    const tokenizerJSON = await source.json(manifest.tokenizer || "tokenizer.json");
    const config = await source.json("tokenizer_config.json").catch(() => ({}));
    tokenizer = new Tokenizer(tokenizerJSON, config);
    tokenizer.encode("a");
  } catch (err) {
    throw new ExportError(`${where}: cannot read its tokenizer (${String(err.message || err).split("\n")[0]}); ` +
                          "export the run again with gentool export");
  }
  // errors only, as gentoolkit.runtime: onnxruntime warns of the fused graph's logits_to_keep, an input with
  // a default (an initializer), on every load, and the page's console shows its warnings as errors
  const session = await openSession(ort, source, manifest, { graphOptimizationLevel: "all", logSeverityLevel: 3,
                                                             ...sessionOptions });
  return new LanguageModel(manifest, tokenizer, session, ort);
}

// The onnxruntime session of the manifest's model file: by path where the source has one (Node reads
// external data beside it), else from bytes with its external data handed over (the browser).
async function openSession(ort, source, manifest, options) {
  const file = manifest.model_file;
  if (source.path) return ort.InferenceSession.create(source.path(file), options);
  const data = (manifest.files || []).filter((f) => f === `${file}.data` || f === `${file}_data`);
  const externalData = await Promise.all(data.map(async (f) => ({ path: f.split("/").pop(), data: await source.bytes(f) })));
  return ort.InferenceSession.create(await source.bytes(file), externalData.length ? { ...options, externalData } : options);
}

// "1.22.1" against "1.30": numbers compared part by part, a suffix ("-dev.2026...") ignored.
function older(have, need) {
  const parts = (v) => v.split(".").slice(0, 3).map((p) => parseInt(p, 10) || 0);
  const [a, b] = [parts(have), parts(need)];
  for (let i = 0; i < 3; i++) if ((a[i] || 0) !== (b[i] || 0)) return (a[i] || 0) < (b[i] || 0);
  return false;
}

// A small seeded generator (mulberry32): the same seed gives the same tokens in every browser.
export function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// The next token from one row of logits: greedy (temperature 0) or sampled after temperature, top-k
// and top-p. `never` is a token no strategy picks (the padding token), as in gentoolkit.runtime.
export function choose(logits, { temperature = 0, topK = 0, topP = 1, never = -1, rand = Math.random }) {
  const V = logits.length;
  if (!(temperature > 0)) {
    let best = never === 0 ? 1 : 0;
    for (let v = 0; v < V; v++) if (v !== never && logits[v] > logits[best]) best = v;
    return best;
  }
  let order = [];
  for (let v = 0; v < V; v++) if (v !== never) order.push(v);
  order.sort((a, b) => logits[b] - logits[a]);
  if (topK > 0) order = order.slice(0, topK);
  const top = logits[order[0]] / temperature;
  let probs = order.map((v) => Math.exp(logits[v] / temperature - top));
  let total = probs.reduce((s, p) => s + p, 0);
  if (topP < 1) {
    let mass = 0, keep = 0;
    while (keep < probs.length && mass < topP * total) mass += probs[keep++];
    order = order.slice(0, Math.max(1, keep));
    probs = probs.slice(0, order.length);
    total = probs.reduce((s, p) => s + p, 0);
  }
  let u = rand() * total;
  for (let i = 0; i < order.length; i++) {
    u -= probs[i];
    if (u <= 0) return order[i];
  }
  return order[order.length - 1];
}

export class LanguageModel {
  constructor(manifest, tokenizer, session, ort) {
    this.manifest = manifest;
    this.rt = manifest.runtime;
    this.tokenizer = tokenizer;
    this.session = session;
    this.ort = ort;
    const eos = this.rt.eos_token_id;
    this.eos = new Set(Array.isArray(eos) ? eos : eos == null ? [] : [eos]);
    this.pad = this.rt.pad_token_id;
    this.never = this.eos.has(this.pad) ? -1 : this.pad;
    this.defaults = manifest.sampler_defaults || {};
  }

  encode(text) {
    return Array.from(this.tokenizer.encode(text).ids, Number);
  }

  decode(ids) {
    return this.tokenizer.decode(ids, { skip_special_tokens: true });
  }

  ints(values, dims) {
    return new this.ort.Tensor("int64", BigInt64Array.from(values, (v) => BigInt(v)), dims);
  }

  async step(ids, start, total, past) {
    const n = ids.length;
    const feeds = {
      input_ids: this.ints(ids, [1, n]),
      attention_mask: this.ints(new Array(total).fill(1), [1, total]),
      position_ids: this.ints(Array.from({ length: n }, (_, k) => start + k), [1, n]),
    };
    const { n_layer, n_kv_head, head_dim } = this.rt;
    for (let i = 0; i < n_layer; i++) {
      for (const kind of ["key", "value"]) {
        feeds[`past_key_values.${i}.${kind}`] = past ? past[`present.${i}.${kind}`]
          : new this.ort.Tensor("float32", new Float32Array(0), [1, n_kv_head, 0, head_dim]);
      }
    }
    const out = await this.session.run(feeds);
    const V = this.rt.vocab_size;
    return { logits: out.logits.data.subarray((n - 1) * V, n * V), past: out };
  }

  // Generate after `prompt`; `onText(piece)` gets the text as it comes (whole characters only).
  async generate(prompt, { maxNewTokens = 64, temperature = 0, topK = 0, topP = 1, seed = 0, onText = null,
                           signal = null } = {}) {
    const ctx = this.rt.context_length, keep = Math.max(1, Math.floor(ctx / 2));
    const ids = this.encode(prompt);
    if (!ids.length) ids.push(this.eos.size ? [...this.eos][0] : this.pad);
    const promptLength = ids.length;
    const rand = random(seed);
    let waited = 0;  // time spent in onText, which the figures leave out: they are the model's
    const emit = async (piece) => {
      const t = performance.now();
      await onText(piece);
      waited += performance.now() - t;
    };
    const t0 = performance.now();
    let start = Math.max(0, ids.length - ctx);
    let { logits, past } = await this.step(ids.slice(start), 0, ids.length - start);
    let columns = ids.length - start, firstTokenMs = null, shown = "";
    let prefix = 0, read = 0;  // generated[prefix:read] decodes to the end of what was shown
    const generated = [];
    for (let step = 0; step < maxNewTokens; step++) {
      const token = choose(logits, { temperature, topK, topP, never: this.never, rand });
      if (firstTokenMs === null) firstTokenMs = performance.now() - t0;  // before any onText
      ids.push(token);
      if (this.eos.has(token)) break;
      generated.push(token);
      if (onText) {  // decode a short window, not the whole text again (text-generation-inference's offsets)
        const before = read > prefix ? this.decode(generated.slice(prefix, read)) : "";
        const now = this.decode(generated.slice(prefix));
        if (!now.endsWith("\uFFFD") && now.length > before.length) {  // hold back a character not yet whole
          const piece = now.slice(before.length);
          shown += piece;
          await emit(piece);
          prefix = read;
          read = generated.length;
        }
      }
      if (step === maxNewTokens - 1 || signal?.aborted) break;
      if (columns >= ctx) {  // the window is full: move it by half the context and prefill again
        start = ids.length - keep;
        ({ logits, past } = await this.step(ids.slice(start), 0, ids.length - start));
        columns = ids.length - start;
        continue;
      }
      ({ logits, past } = await this.step([token], columns, columns + 1, past));
      columns += 1;
    }
    const ms = performance.now() - t0 - waited;
    const text = this.decode(generated);
    if (onText && text.length > shown.length) await onText(text.slice(shown.length));
    const after = generated.length > 1 ? (ms - firstTokenMs) / (generated.length - 1) : null;
    return { text, ids: generated, prompt_tokens: promptLength, ms, first_token_ms: firstTokenMs,
             ms_per_token: after, tokens_per_s: after ? 1000 / after : null };
  }
}

// Let the page paint between tokens: a message round trip, not a frame (16 ms) or a clamped timer.
function nextTask() {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => { channel.port1.close(); resolve(); };
    channel.port2.postMessage(0);
  });
}

// The demo page's panel (gentool demo): prompt, strategy, streamed text and tokens/s.
export function mount(panel, model, { el }) {
  const d = { temperature: 0.8, top_k: 50, top_p: 0.95, ...model.defaults };
  const prompt = el("textarea", { rows: 2, "data-testid": "prompt" }, "The ");
  const strategy = el("select", { "data-testid": "strategy" },
    el("option", { value: "greedy" }, "greedy"), el("option", { value: "sample" }, "sample"));
  const num = (name, value, step) => el("label", {}, name,
    el("input", { type: "number", value, step, "data-testid": name.replace(/ /g, "-") }));
  const temperature = num("temperature", d.temperature > 0 ? d.temperature : 0.8, 0.1);
  const topK = num("top k", d.top_k || 0, 1), topP = num("top p", d.top_p ?? 1, 0.05);
  const maxNew = num("new tokens", 40, 1), seed = num("seed", 0, 1);
  const button = el("button", { "data-testid": "generate" }, "Generate");
  const shownPrompt = el("span", { class: "prompt" }), output = el("span", { "data-testid": "output" });
  const stats = el("div", { class: "stats", "data-testid": "stats" });
  panel.append(el("div", { class: "controls" }, prompt, strategy, temperature, topK, topP, maxNew, seed, button),
               el("pre", { class: "text" }, shownPrompt, output), stats);
  const value = (label) => Number(label.querySelector("input").value);
  async function run() {
    button.disabled = true;
    output.textContent = "";
    shownPrompt.textContent = prompt.value;
    stats.textContent = "generating...";
    const greedy = strategy.value === "greedy";
    const result = await model.generate(prompt.value, {
      maxNewTokens: value(maxNew), seed: value(seed), temperature: greedy ? 0 : value(temperature),
      topK: value(topK), topP: value(topP),
      onText: async (piece) => { output.textContent += piece; await nextTask(); },
    });
    stats.textContent = `${result.ids.length} tokens in ${result.ms.toFixed(0)} ms: first ` +
      `${result.first_token_ms.toFixed(1)} ms, then ${result.ms_per_token ? result.ms_per_token.toFixed(2) : "-"} ms ` +
      `per token (${result.tokens_per_s ? result.tokens_per_s.toFixed(0) : "-"} tokens/s)`;
    panel.dataset.result = JSON.stringify(result);
    button.disabled = false;
    return result;
  }
  button.addEventListener("click", run);
  return { run };
}

// --- the Node command line ---------------------------------------------------------------------
async function main(argv) {
  const { createRequire } = await import("node:module");
  const { pathToFileURL } = await import("node:url");
  const fs = await import("node:fs");
  const path = await import("node:path");
  const args = [], opts = { maxNewTokens: 20, temperature: 0, topK: 0, topP: 1, seed: 0 };
  const names = { "--max-new-tokens": "maxNewTokens", "--temperature": "temperature", "--top-k": "topK",
                  "--top-p": "topP", "--seed": "seed" };
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--json") json = true;
    else if (names[argv[i]]) {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v)) throw new ExportError(`${argv[i - 1]} needs a number, got ${argv[i]}`);
      opts[names[argv[i - 1]]] = v;
    } else args.push(argv[i]);
  }
  if (!args.length) throw new ExportError("usage: node lm.mjs EXPORT [PROMPT] [--max-new-tokens N] [--json]");
  const dir = path.resolve(args[0]);
  if (!fs.existsSync(path.join(dir, "gentoolkit.json"))) {
    throw new ExportError(`${args[0]} is not an export folder (no gentoolkit.json); make one with gentool export`);
  }
  // packages come from the project that runs the script (the current folder), then from beside it
  const need = (name) => {
    for (const base of [process.cwd() + "/", import.meta.url]) {
      try { return createRequire(base.startsWith("file:") ? base : pathToFileURL(base).href)(name); } catch { /* next */ }
    }
    throw new ExportError(`cannot find the npm package ${name}; run: npm install onnxruntime-node @huggingface/tokenizers`);
  };
  const ort = need("onnxruntime-node"), { Tokenizer } = need("@huggingface/tokenizers");
  const read = (name) => {
    const file = path.resolve(dir, name);
    if (path.relative(dir, file).startsWith("..")) throw new ExportError(`${name} lies outside ${args[0]}`);
    return fs.readFileSync(file);
  };
  const source = { name: args[0], json: async (n) => JSON.parse(read(n).toString("utf-8")), bytes: async (n) => read(n),
                   path: (n) => path.resolve(dir, n) };
  const lm = await load(source, { ort, Tokenizer, sessionOptions: { intraOpNumThreads: 1, logSeverityLevel: 3 } });
  const prompt = args[1] ?? "The ";
  const result = await lm.generate(prompt, { ...opts, onText: json ? null : (piece) => process.stdout.write(piece) });
  if (json) console.log(JSON.stringify(result));
  else process.stdout.write(`\n${result.ids.length} tokens, ${result.tokens_per_s ? result.tokens_per_s.toFixed(0) : "-"} tokens/s\n`);
}

if (typeof process !== "undefined" && process.versions?.node && process.argv[1]) {
  const { pathToFileURL } = await import("node:url");
  const { realpathSync } = await import("node:fs");
  if (import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
    main(process.argv.slice(2)).catch((err) => {
      console.error(`Error: ${err instanceof ExportError ? err.message : String(err.message || err).split("\n")[0]}`);
      process.exit(1);
    });
  }
}
