// The logits web/lm.mjs gets from onnxruntime-node: a prefill of `ids` on an empty cache, then each token of
// `next` fed alone on the cache of the step before; the last position's logits of each step, as JSON.
//   node logits.mjs LM_MJS EXPORT CASE.json      CASE: {"ids": [...], "next": [...]}
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import path from "node:path";
import fs from "node:fs";

const require = createRequire(pathToFileURL(process.cwd() + "/").href);
const ort = require("onnxruntime-node");
const { Tokenizer } = require("@huggingface/tokenizers");
const [lmFile, dir, caseFile] = process.argv.slice(2);
const { load } = await import(pathToFileURL(path.resolve(lmFile)).href);
const read = (name) => fs.readFileSync(path.resolve(dir, name));
const source = { name: dir, json: async (n) => JSON.parse(read(n).toString("utf-8")), bytes: async (n) => read(n),
                 path: (n) => path.resolve(dir, n) };
const lm = await load(source, { ort, Tokenizer, sessionOptions: { intraOpNumThreads: 1, logSeverityLevel: 3 } });
const { ids, next } = JSON.parse(fs.readFileSync(caseFile, "utf-8"));
let { logits, past } = await lm.step(ids, 0, ids.length);
const out = [Array.from(logits)];
let n = ids.length;
for (const token of next) {
  ({ logits, past } = await lm.step([token], n, n + 1, past));
  n += 1;
  out.push(Array.from(logits));
}
console.log(JSON.stringify(out));
