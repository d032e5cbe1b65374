// Run an exported gentoolkit-diffusion denoiser in JavaScript: the browser (onnxruntime-web) or Node
// (onnxruntime-node). The graph is one pass of the noise-predicting network; the loop here is the
// generalized DDIM update of docs/onnx-contract.md (eta 1: DDPM, 0: deterministic DDIM), over the
// timesteps the Python samplers visit.
//
//   node diffusion.mjs EXPORT [--n N] [--steps S] [--eta E] [--seed S] [--json]
//
// As a module (what `gentool demo` loads in the browser):
//   const model = await load(source, { ort });     // source: { json(name), bytes(name) }
//   const { samples, dims, ms } = await model.sample(16, { seed: 0, steps: 50, eta: 0 });

export const family = "diffusion";

export class ExportError extends Error {}

export async function load(source, { ort, sessionOptions = {} }) {
  const where = source.name || "the export";
  const manifest = await source.json("gentoolkit.json");
  if (manifest.family !== family || manifest.runtime?.kind !== "denoiser") {
    throw new ExportError(`${where} is an export of the ${manifest.family} family, not a diffusion denoiser`);
  }
  const session = await openSession(ort, source, manifest, { graphOptimizationLevel: "all", ...sessionOptions });
  return new Denoiser(manifest, session, ort);
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

function normals(n, rand) {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  return out;
}

// numpy's round: half to even
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// The timesteps a sampler visits, descending: all of them, or `steps` evenly spaced ones (schedule.spaced).
export function spaced(total, steps) {
  if (!steps || steps >= total) return Array.from({ length: total }, (_, i) => total - 1 - i);
  const seen = new Set();
  for (let i = 0; i < steps; i++) seen.add(roundHalfEven(steps === 1 ? 0 : (i * (total - 1)) / (steps - 1)));
  return [...seen].sort((a, b) => b - a);
}

export class Denoiser {
  constructor(manifest, session, ort) {
    this.manifest = manifest;
    this.rt = manifest.runtime;
    this.session = session;
    this.ort = ort;
    this.defaults = manifest.sampler_defaults || {};
    this.size = this.rt.sample_shape.reduce((a, b) => a * b, 1);
    const per = (v) => (Array.isArray(v) ? v.flat(Infinity) : [v]);
    this.clipLow = per(this.rt.clip_low);
    this.clipHigh = per(this.rt.clip_high);
    this.shift = per(this.rt.shift);
    this.scale = per(this.rt.scale);
  }

  // n samples in the data's units; `noise` (optional) is x_T itself, n * size numbers.
  async sample(n, { seed = 0, steps = 50, eta = 0, noise = null } = {}) {
    const ac = this.rt.alphas_cumprod, ts = spaced(ac.length, steps), size = this.size;
    const rand = random(seed), dims = [n, ...this.rt.sample_shape];
    let x = noise ? Float32Array.from(noise) : normals(n * size, rand);
    const x0 = new Float32Array(n * size), pick = (arr, j) => arr[arr.length === 1 ? 0 : j % arr.length];
    const t0 = performance.now();
    for (let i = 0; i < ts.length; i++) {
      const aT = ac[ts[i]], aS = i + 1 < ts.length ? ac[ts[i + 1]] : 1.0;
      const out = await this.session.run({
        sample: new this.ort.Tensor("float32", x, dims),
        timestep: new this.ort.Tensor("int64", new BigInt64Array(n).fill(BigInt(ts[i])), [n]),
      });
      const eps = out.out_sample.data;
      const sa = Math.fround(Math.sqrt(aT)), s1a = Math.fround(Math.sqrt(1 - aT));
      for (let j = 0; j < n * size; j++) {
        const f = this.rt.layout === "NC" ? j % size : 0;  // per feature for vectors, one range for images
        x0[j] = Math.min(Math.max((x[j] - s1a * eps[j]) / sa, pick(this.clipLow, f)), pick(this.clipHigh, f));
      }
      if (i + 1 === ts.length) break;
      const sigma = eta * Math.sqrt(((1 - aS) / (1 - aT)) * (1 - aT / aS));
      const c0 = Math.fround(Math.sqrt(aS)), c1 = Math.fround(Math.sqrt(Math.max(1 - aS - sigma * sigma, 0)));
      const next = new Float32Array(n * size), z = sigma > 0 ? normals(n * size, rand) : null;
      for (let j = 0; j < n * size; j++) {
        const e = (x[j] - sa * x0[j]) / s1a;  // the noise that the clipped x0 implies
        next[j] = c0 * x0[j] + c1 * e + (z ? Math.fround(sigma) * z[j] : 0);
      }
      x = next;
    }
    const ms = performance.now() - t0;
    const samples = new Float32Array(n * size);
    for (let j = 0; j < n * size; j++) {
      const f = this.rt.layout === "NC" ? j % size : 0;
      samples[j] = x0[j] * pick(this.scale, f) + pick(this.shift, f);
    }
    return { samples, dims, steps: ts.length, ms, ms_per_sample: ms / n, ms_per_step: ms / ts.length };
  }
}

// The demo page's panel (gentool demo): seed, steps, eta, how many, the drawing and its timing.
export function mount(panel, model, { el, draw }) {
  const images = model.rt.layout === "NCHW";
  const num = (name, value, attrs = {}) => el("label", {}, name,
    el("input", { type: "number", value, "data-testid": name, ...attrs }));
  const seed = num("seed", 0), count = num("samples", images ? 16 : 500, { min: 1, max: 4096 });
  const steps = num("steps", model.defaults.steps || 50, { min: 1, max: model.rt.timesteps });
  const eta = el("input", { type: "range", min: 0, max: 1, step: 0.1, value: model.defaults.eta ?? 0, "data-testid": "eta" });
  const button = el("button", { "data-testid": "sample" }, "Sample");
  const canvas = el("canvas", { width: 320, height: 320, "data-testid": "canvas" });
  const stats = el("div", { class: "stats", "data-testid": "stats" });
  panel.append(el("div", { class: "controls" }, seed, count, steps, el("label", {}, "eta (0 DDIM, 1 DDPM)", eta), button),
               canvas, stats);
  const value = (label) => Number(label.querySelector("input").value);
  async function run() {
    button.disabled = true;
    const n = value(count);
    const result = await model.sample(n, { seed: value(seed), steps: value(steps), eta: Number(eta.value) });
    draw(canvas, result, model.rt);
    stats.textContent = `${n} samples in ${result.steps} passes: ${result.ms.toFixed(0)} ms ` +
      `(${result.ms_per_step.toFixed(1)} ms per pass, ${(1000 * result.ms_per_sample).toFixed(0)} µs per sample)`;
    panel.dataset.result = JSON.stringify({ n, dims: result.dims, steps: result.steps, ms: result.ms,
                                            ms_per_sample: result.ms_per_sample });
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
  const args = [], opts = { n: 4, steps: 50, eta: 0, seed: 0 };
  let json = false, noiseFile = null;
  for (let i = 0; i < argv.length; i++) {
    const key = { "--n": "n", "--steps": "steps", "--eta": "eta", "--seed": "seed" }[argv[i]];
    if (argv[i] === "--json") json = true;
    else if (argv[i] === "--noise") noiseFile = argv[++i];
    else if (key) {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0) throw new ExportError(`${argv[i - 1]} needs a number >= 0, got ${argv[i]}`);
      opts[key] = v;
    } else args.push(argv[i]);
  }
  if (!args.length) throw new ExportError("usage: node diffusion.mjs EXPORT [--n N] [--steps S] [--eta E] [--seed S] [--json]");
  if (opts.eta > 1) throw new ExportError(`--eta must be in [0, 1], got ${opts.eta}`);
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
  const model = await load(source, { ort, sessionOptions: { intraOpNumThreads: 1, logSeverityLevel: 3 } });
  const noise = noiseFile ? JSON.parse(fs.readFileSync(noiseFile, "utf-8")) : null;
  const out = await model.sample(Math.max(1, Math.round(opts.n)), { ...opts, noise });
  const result = { dims: out.dims, steps: out.steps, samples: Array.from(out.samples), ms: out.ms,
                   ms_per_sample: out.ms_per_sample };
  if (json) console.log(JSON.stringify(result));
  else console.log(`${out.dims.join("x")} samples, ${out.steps} passes, ${out.ms.toFixed(1)} ms; the first:`,
                   result.samples.slice(0, 8));
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
