// Drive a gentool demo site in headless Chromium (Debian's, through playwright-core) and print what
// the page did as JSON: each text panel's greedy text, each GAN panel's canvas, the timings.
//   node browser.mjs URL CASES.json SHOTS_DIR
// CASES: {"text": {"panel name": {"prompt": "...", "max_new_tokens": 40}}, "gan": {"panel name": {"n": 16}},
//         "logits": {"panel name": {"ids": [...], "next": [...]}}}
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import fs from "node:fs";

const require = createRequire(pathToFileURL(process.cwd() + "/").href);
const { chromium } = require("playwright-core");
const [url, casesFile, shots] = process.argv.slice(2);
const timeout = Number(process.env.BROWSER_TIMEOUT_MS || 60000);  // per wait; a benchmark of a large model sets more
const cases = JSON.parse(fs.readFileSync(casesFile, "utf-8"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const out = { text: {}, gan: {}, console: [], requests: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("console", (m) => out.console.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => out.console.push(`pageerror: ${e.message}`));
  page.on("request", (r) => out.requests.push(r.url()));
  await page.goto(url);
  await page.waitForSelector("body[data-ready]", { timeout });
  out.ready = await page.getAttribute("body", "data-ready");
  out.status = await page.textContent("[data-testid=status]");
  out.errors = await page.$$eval("section.panel[data-error]", (ps) => ps.map((p) => [p.dataset.model, p.dataset.error]));
  out.isolated = await page.evaluate(() => self.crossOriginIsolated);
  for (const [name, c] of Object.entries(cases.text || {})) {
    const panel = page.locator(`section.panel[data-model="${name}"]`);
    await panel.locator("[data-testid=prompt]").fill(c.prompt);
    await panel.locator("[data-testid=strategy]").selectOption(c.strategy || "greedy");
    await panel.locator("[data-testid=new-tokens]").fill(String(c.max_new_tokens));
    await panel.evaluate((p) => { delete p.dataset.result; });
    await panel.locator("[data-testid=generate]").click({ timeout });  // a large model's page may be busy loading
    await page.waitForFunction((n) => document.querySelector(`section.panel[data-model="${n}"]`).dataset.result,
                               name, { timeout });
    const result = JSON.parse(await panel.getAttribute("data-result"));
    result.shown = await panel.locator("[data-testid=output]").textContent();
    out.text[name] = result;
  }
  for (const [name, c] of Object.entries(cases.gan || {})) {
    const panel = page.locator(`section.panel[data-model="${name}"]`);
    await panel.locator("[data-testid=samples]").fill(String(c.n));
    await panel.evaluate((p) => { delete p.dataset.result; });
    await panel.locator("[data-testid=sample]").click();
    await page.waitForFunction((n) => document.querySelector(`section.panel[data-model="${n}"]`).dataset.result,
                               name, { timeout });
    const result = JSON.parse(await panel.getAttribute("data-result"));
    result.inked = await panel.locator("canvas").evaluate((cv) => {  // pixels that are not the white background
      const d = cv.getContext("2d").getImageData(0, 0, cv.width, cv.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250) n++;
      return n / (cv.width * cv.height);
    });
    out.gan[name] = result;
  }
  if (cases.logits) {  // the logits the page's onnxruntime-web gives, as tests/js/logits.mjs gets them in Node
    out.logits = await page.evaluate(async (all) => {
      const at = (f) => new URL(f, location.href).href;
      const ort = await import(at("vendor/onnxruntime-web/ort.wasm.min.mjs"));  // the page's own instance
      const { Tokenizer } = await import(at("vendor/tokenizers/tokenizers.min.mjs"));
      const { load } = await import(at("drivers/autoregressive.mjs"));
      const res = {};
      for (const [name, { ids, next }] of Object.entries(all)) {
        const base = new URL(`models/${name}/`, location.href);
        const get = async (f) => { const r = await fetch(new URL(f, base)); if (!r.ok) throw new Error(`${f}: ${r.status}`); return r; };
        const source = { name, json: async (f) => (await get(f)).json(),
                         bytes: async (f) => new Uint8Array(await (await get(f)).arrayBuffer()) };
        const lm = await load(source, { ort, Tokenizer });
        let { logits, past } = await lm.step(ids, 0, ids.length);
        const steps = [Array.from(logits)];
        let n = ids.length;
        for (const token of next) {
          ({ logits, past } = await lm.step([token], n, n + 1, past));
          n += 1;
          steps.push(Array.from(logits));
        }
        await lm.session.release();
        res[name] = steps;
      }
      return res;
    }, cases.logits);
  }
  if (cases.timing) {  // per token and per sample, repeated: the figures of docs/performance.md
    out.timing = await page.evaluate(async (t) => {
      const res = {};
      for (const [name, c] of Object.entries(t)) res[name] = await window.gentoolDemo.time(name, c);
      return res;
    }, cases.timing);
  }
  if (cases.race !== false) {  // "Run all side by side"
    await page.locator("[data-testid=run-all]").click({ timeout });
    await page.waitForFunction(() => !document.querySelector("[data-testid=run-all]").disabled &&
                               document.querySelector("[data-testid=race]").textContent.includes("done"), null,
                               { timeout });
    out.race = await page.textContent("[data-testid=race]");
  }
  if (shots) {
    fs.mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: `${shots}/demo.png`, fullPage: true });
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
