// Greedy text from transformers.js' text-generation pipeline, for each case, as JSON.
//   node transformers_js.mjs CASES.json      CASES: [{"dir": "...", "prompt": "...", "max_new_tokens": N, "dtype": "fp32"}]
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import path from "node:path";
import fs from "node:fs";

const require = createRequire(pathToFileURL(process.cwd() + "/").href);
const { pipeline, env } = await import(pathToFileURL(require.resolve("@huggingface/transformers")).href);
env.allowRemoteModels = false;  // nothing from the hub: the folder is the model
const out = [];
for (const c of JSON.parse(fs.readFileSync(process.argv[2], "utf-8"))) {
  const dir = path.resolve(c.dir);
  env.localModelPath = path.dirname(dir) + path.sep;
  const generator = await pipeline("text-generation", path.basename(dir), { dtype: c.dtype || "fp32" });
  const [result] = await generator(c.prompt, { max_new_tokens: c.max_new_tokens, do_sample: false });
  out.push({ ...c, text: result.generated_text });
  await generator.dispose();
}
console.log(JSON.stringify(out));
