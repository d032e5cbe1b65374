// The demo page: loads site.json, each model's family driver (drivers/FAMILY.mjs), onnxruntime-web and
// the tokenizers from vendor/, and gives every model a panel. Every file comes from this site.
import * as ort from "./vendor/onnxruntime-web/ort.wasm.min.mjs";
import { Tokenizer } from "./vendor/tokenizers/tokenizers.min.mjs";

ort.env.wasm.wasmPaths = new URL("./vendor/onnxruntime-web/", import.meta.url).href;
// threads need a cross-origin isolated page (gentool demo --serve sends the headers)
ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;

// One WebAssembly instance runs one inference at a time: concurrent runs of several sessions break
// it (seen with 1.30: a cache tensor read as null). Every run joins one queue, so panels started
// together interleave step by step.
{
  const run = ort.InferenceSession.prototype.run;
  let queue = Promise.resolve();
  ort.InferenceSession.prototype.run = function (...args) {
    const result = queue.then(() => run.apply(this, args));
    queue = result.catch(() => {});
    return result;
  };
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

// Draw samples on a canvas in the data's own layout: points for 2-D data (the first two features),
// a grid of images for NCHW, each pixel mapped from [low, high]. Lent to every driver's panel.
function draw(canvas, { samples, dims }, { low = 0, high = 1, layout = "NC" } = {}) {
  const g = canvas.getContext("2d");
  g.fillStyle = "#fff";
  g.fillRect(0, 0, canvas.width, canvas.height);
  if (layout === "NCHW") {
    const [n, c, h, w] = dims, cols = Math.ceil(Math.sqrt(n)), cell = Math.floor(canvas.width / cols);
    const image = g.createImageData(w, h), tile = document.createElement("canvas");
    tile.width = w;
    tile.height = h;
    g.imageSmoothingEnabled = false;
    for (let k = 0; k < n; k++) {
      for (let p = 0; p < h * w; p++) {
        for (let ch = 0; ch < 3; ch++) {
          const v = samples[k * c * h * w + (c === 3 ? ch : 0) * h * w + p];
          image.data[4 * p + ch] = Math.max(0, Math.min(255, Math.round(255 * (v - low) / (high - low))));
        }
        image.data[4 * p + 3] = 255;
      }
      tile.getContext("2d").putImageData(image, 0, 0);
      g.drawImage(tile, (k % cols) * cell, Math.floor(k / cols) * cell, cell - 1, cell - 1);
    }
    return;
  }
  const [n, d] = dims;
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < n * d; i++) { lo = Math.min(lo, samples[i]); hi = Math.max(hi, samples[i]); }
  const pad = 0.1 * (hi - lo || 1), scale = (v) => (v - lo + pad) / (hi - lo + 2 * pad);
  g.fillStyle = "rgba(31, 119, 180, 0.55)";
  for (let k = 0; k < n; k++) {
    const x = scale(samples[k * d]), y = d > 1 ? scale(samples[k * d + 1]) : 0.5;
    g.fillRect(x * canvas.width - 1.5, (1 - y) * canvas.height - 1.5, 3, 3);
  }
}

function source(base, name) {
  const get = async (file) => {
    const response = await fetch(new URL(file, base));
    if (!response.ok) throw new Error(`${name}: ${file} answered ${response.status}`);
    return response;
  };
  return { name, json: async (f) => (await get(f)).json(), bytes: async (f) => new Uint8Array(await (await get(f)).arrayBuffer()) };
}

const status = document.getElementById("status");
const panels = [];

async function main() {
  const site = await (await fetch("site.json")).json();
  for (const entry of site.models) {
    const panel = el("section", { class: "panel", "data-model": entry.name, "data-family": entry.family });
    panel.append(el("h2", {}, entry.name),
                 el("div", { class: "meta" }, `${entry.family} · ${entry.model} · ${entry.dtype || "fp32"} · ` +
                    `${(entry.bytes / 1e6).toFixed(2)} MB`));
    document.getElementById("panels").append(panel);
    try {
      const driver = await import(new URL(entry.driver, document.baseURI).href);
      const t0 = performance.now();
      const model = await driver.load(source(new URL(entry.path, document.baseURI), entry.name), { ort, Tokenizer });
      const control = driver.mount(panel, model, { el, draw });
      panel.dataset.loadMs = (performance.now() - t0).toFixed(1);
      panels.push({ entry, panel, control });
    } catch (err) {
      panel.append(el("div", { class: "error", "data-testid": "error" }, String(err.message || err)));
      panel.dataset.error = String(err.message || err);
    }
  }
  const threads = ort.env.wasm.numThreads;
  status.textContent = `${panels.length} of ${site.models.length} models ready · onnxruntime-web ` +
    `${site.vendor["onnxruntime-web"]}, ${threads} thread${threads > 1 ? "s" : ""}`;
  // for scripts and tests: run a panel several times, as its button does, and get each result
  window.gentoolDemo = {
    names: panels.map((p) => p.entry.name),
    async time(name, { repeat = 5 } = {}) {
      const found = panels.find((p) => p.entry.name === name);
      const results = [];
      for (let i = 0; i < repeat; i++) results.push(await found.control.run());
      return results.map(({ samples, z, ...rest }) => rest);
    },
  };
  document.body.dataset.ready = "true";
  const runAll = document.getElementById("run-all");
  runAll.disabled = panels.length === 0;
  runAll.addEventListener("click", async () => {
    runAll.disabled = true;
    const t0 = performance.now(), race = document.getElementById("race"), lines = {};
    const show = () => { race.textContent = Object.values(lines).join("\n"); };
    await Promise.all(panels.map(async ({ entry, control }) => {
      lines[entry.name] = `${entry.name.padEnd(24)} running`;
      show();
      try {
        const result = await control.run();
        const done = performance.now() - t0;
        const first = result.first_token_ms != null ? `first token ${result.first_token_ms.toFixed(1)} ms, ` : "";
        lines[entry.name] = `${entry.name.padEnd(24)} ${first}done ${done.toFixed(1)} ms after the start`;
      } catch (err) {
        lines[entry.name] = `${entry.name.padEnd(24)} failed: ${err.message || err}`;
      }
      show();
    }));
    runAll.disabled = false;
  });
}

main().catch((err) => {
  status.textContent = `Error: ${err.message || err}`;
  document.body.dataset.ready = "error";
});
