// Run an exported gentoolkit GAN in JavaScript: the browser (onnxruntime-web) or Node (onnxruntime-node).
// The generator is one call (docs/onnx-contract.md): z ~ N(0, I), or truncated, in; samples out, in the
// data's own range and layout.
//
//   node gan.mjs EXPORT [--n N] [--seed S] [--truncation T] [--json]
//
// As a module (what `gentool demo` loads in the browser):
//   const gan = await load(source, { ort });      // source: { json(name), bytes(name) }
//   const { z, samples, dims, ms } = await gan.sample(64, { seed: 0, truncation: 0 });

export const family = "gan";

export class ExportError extends Error {}

export async function load(source, { ort, sessionOptions = {} }) {
  const where = source.name || "the export";
  const manifest = await source.json("gentoolkit.json");
  if (manifest.family !== family || manifest.runtime?.kind !== "generator") {
    throw new ExportError(`${where} is an export of the ${manifest.family} family, not a GAN generator`);
  }
  const session = await openSession(ort, source, manifest, { graphOptimizationLevel: "all", ...sessionOptions });
  return new Generator(manifest, session, ort);
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

// A small seeded generator (mulberry32) and standard normals from it (Box-Muller).
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

// n values of the standard normal, cut to [-t, t] when t > 0 (the truncation trick): exact, as
// gentoolkit's truncated sampler is; below 1 by rejection from the uniform on [-t, t].
export function latents(n, { seed = 0, truncation = 0 } = {}) {
  const rand = random(seed), out = new Float32Array(n);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  for (let i = 0; i < n; i++) {
    let z;
    if (truncation > 0 && truncation < 1) {
      do z = (2 * rand() - 1) * truncation; while (rand() > Math.exp(-0.5 * z * z));
    } else {
      do z = normal(); while (truncation > 0 && Math.abs(z) > truncation);
    }
    out[i] = z;
  }
  return out;
}

export class Generator {
  constructor(manifest, session, ort) {
    this.manifest = manifest;
    this.rt = manifest.runtime;
    this.session = session;
    this.ort = ort;
    this.defaults = manifest.sampler_defaults || {};
  }

  // n samples in one pass of the generator; ms is that pass alone.
  async sample(n, { seed = 0, truncation = 0 } = {}) {
    const zDim = this.rt.z_dim;
    const z = new this.ort.Tensor("float32", latents(n * zDim, { seed, truncation }), [n, zDim]);
    const t0 = performance.now();
    const out = await this.session.run({ z });
    const ms = performance.now() - t0;
    return { z: z.data, samples: out.samples.data, dims: out.samples.dims, ms, ms_per_sample: ms / n };
  }
}

// The demo page's panel (gentool demo): seed, truncation, how many, the drawing and its timing.
// The page lends `el` (make an element) and `draw` (points or an image grid on a canvas).
export function mount(panel, gen, { el, draw }) {
  const images = gen.rt.layout === "NCHW";
  const num = (name, value, attrs = {}) => el("label", {}, name,
    el("input", { type: "number", value, "data-testid": name, ...attrs }));
  const seed = num("seed", 0), count = num("samples", images ? 16 : 1000, { min: 1, max: 4096 });
  const trunc = el("input", { type: "range", min: 0, max: 3, step: 0.1, value: gen.defaults.truncation || 0,
                              "data-testid": "truncation" });
  const truncShown = el("span", {}, "");
  const button = el("button", { "data-testid": "sample" }, "Sample");
  const canvas = el("canvas", { width: 320, height: 320, "data-testid": "canvas" });
  const stats = el("div", { class: "stats", "data-testid": "stats" });
  const showTrunc = () => { truncShown.textContent = Number(trunc.value) > 0 ? ` ${trunc.value}` : " off"; };
  trunc.addEventListener("input", showTrunc);
  showTrunc();
  panel.append(el("div", { class: "controls" }, seed, count, el("label", {}, "truncation", trunc, truncShown), button),
               canvas, stats);
  async function run() {
    button.disabled = true;
    const n = Number(count.querySelector("input").value);
    const result = await gen.sample(n, { seed: Number(seed.querySelector("input").value), truncation: Number(trunc.value) });
    draw(canvas, result, gen.rt);
    stats.textContent = `${n} samples in one pass: ${result.ms.toFixed(1)} ms (${(1000 * result.ms_per_sample).toFixed(1)} µs per sample)`;
    panel.dataset.result = JSON.stringify({ n, dims: result.dims, ms: result.ms, ms_per_sample: result.ms_per_sample });
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
  const args = [], opts = { n: 4, seed: 0, truncation: 0 };
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const key = { "--n": "n", "--seed": "seed", "--truncation": "truncation" }[argv[i]];
    if (argv[i] === "--json") json = true;
    else if (key) {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0) throw new ExportError(`${argv[i - 1]} needs a number >= 0, got ${argv[i]}`);
      opts[key] = v;
    } else args.push(argv[i]);
  }
  if (!args.length) throw new ExportError("usage: node gan.mjs EXPORT [--n N] [--seed S] [--truncation T] [--json]");
  const dir = path.resolve(args[0]);
  if (!fs.existsSync(path.join(dir, "gentoolkit.json"))) {
    throw new ExportError(`${args[0]} is not an export folder (no gentoolkit.json); make one with gentool export`);
  }
  let ort;
  for (const base of [pathToFileURL(process.cwd() + "/").href, import.meta.url]) {
    try { ort = createRequire(base)("onnxruntime-node"); break; } catch { /* next */ }
  }
  if (!ort) throw new ExportError("cannot find the npm package onnxruntime-node; run: npm install onnxruntime-node");
  const read = (name) => {
    const file = path.resolve(dir, name);
    if (path.relative(dir, file).startsWith("..")) throw new ExportError(`${name} lies outside ${args[0]}`);
    return fs.readFileSync(file);
  };
  const source = { name: args[0], json: async (n) => JSON.parse(read(n).toString("utf-8")), bytes: async (n) => read(n),
                   path: (n) => path.resolve(dir, n) };
  const gen = await load(source, { ort, sessionOptions: { intraOpNumThreads: 1, logSeverityLevel: 3 } });
  const out = await gen.sample(Math.max(1, Math.round(opts.n)), opts);
  const result = { dims: out.dims, z: Array.from(out.z), samples: Array.from(out.samples), ms: out.ms,
                   ms_per_sample: out.ms_per_sample };
  if (json) console.log(JSON.stringify(result));
  else console.log(`${out.dims.join("x")} samples in ${out.ms.toFixed(2)} ms; the first:`, result.samples.slice(0, 8));
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
