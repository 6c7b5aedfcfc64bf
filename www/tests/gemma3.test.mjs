// Gemma 3 270M (Q4_K_M, 262k-token vocabulary) in Chromium: loaded through the shell's model URL
// field, its card showing the sliding window, kept in and reloaded from the device's cache; and
// on the wasm CPU engine, where the whole model lives in wasm memory, the next tokens of
// llama.cpp on the same file.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { serveBuiltSite } from "./built-site.mjs";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const MODEL_PATH = "models/gemma3/gemma-3-270m-q4_k_m.gguf";
const llamaCpp = JSON.parse(readFileSync(here("../../tests/reference/gemma3-270m-logits-llamacpp.json"), "utf8"));
// llama.cpp's two leading logits closer than this may come out in either order (as natively).
const NEAR_TIE = 0.5;

const site = serveBuiltSite({ sharedBrowser: true });

async function open(t) {
  const page = await site.browser.newPage();
  t.after(() => page.close());
  const requests = [];
  const errors = [];
  page.on("request", (r) => requests.push(r.url()));
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${site.origin}/?model=`);
  return { page, requests, errors };
}

/** Loads the model named in the URL field and waits for its card. */
async function loadFromUrlField(page) {
  await page.click("#url-form button");
  await page.waitForSelector("#model-card[data-state=ready], #model-card[data-state=error]", { timeout: 600_000 });
  assert.equal(await page.getAttribute("#model-card", "data-state"), "ready", await page.textContent("#load-status"));
}

test("Gemma 3 loads from the shell's model URL field, its card shows the sliding window, and it reloads from the cache", { timeout: 600_000 }, async (t) => {
  const { page, requests, errors } = await open(t);
  await page.selectOption("#backend", "cpu");
  await page.fill("#model-url", "/" + MODEL_PATH);
  await loadFromUrlField(page);
  const shown = await page.$$eval("#model-card dd", (cells) => Object.fromEntries(cells.map((c) => [c.dataset.field, c.textContent])));
  assert.equal(shown.architecture, "gemma3");
  assert.equal(shown.vocab_size, "262144");
  assert.equal(shown.sliding_window, "512 positions; layers 5, 11, 17 attend over all");

  // Kept on this device when the user says yes, then loaded from there without a download.
  await page.waitForSelector("#cache-question", { state: "visible" });
  await page.click("#cache-yes");
  await page.click("#cache-panel summary");
  const size = `${(statSync(here("../../" + MODEL_PATH)).size / 1e6).toFixed(1)} MB`;
  await page.waitForFunction((size) => document.querySelector("#cache-list tbody tr")?.cells[1].textContent === size, size, { timeout: 120_000 });
  const downloads = () => requests.filter((url) => url === `${site.origin}/${MODEL_PATH}`).length;
  const before = downloads();
  await loadFromUrlField(page);
  assert.equal(downloads(), before, "a kept model loads without a download");
  assert.equal(await page.textContent("#model-card [data-field=architecture]"), "gemma3");
  await page.click("#cache-list tbody button");
  await page.waitForFunction(() => document.querySelectorAll("#cache-list tbody tr").length === 0);

  for (const url of requests) assert.ok(url.startsWith(site.origin + "/"), `unexpected request to ${url}`);
  assert.deepEqual(errors, []);
});

test("Gemma 3 on the wasm CPU engine: llama.cpp's next tokens, and the peak wasm memory", { timeout: 900_000 }, async (t) => {
  const { page, errors } = await open(t);
  const cases = llamaCpp.next_token.slice(0, 3);
  const browser = await page.evaluate(async ({ modelPath, idLists }) => {
    const glassbox = await import("/glassbox.js");
    const wasm = await glassbox.default({ module_or_path: "/glassbox_bg.wasm" });
    const model = await (await fetch(modelPath)).blob();
    const memoryBefore = wasm.memory.buffer.byteLength;
    const engine = await glassbox.runTask(glassbox.Engine.open(model, { backend: "cpu" }));
    // wasm memory only grows, so its size after loading is the load's peak.
    const memoryAfterLoad = wasm.memory.buffer.byteLength;
    const tops = [];
    for (const ids of idLists) tops.push(await glassbox.runTask(engine.topTokens(Uint32Array.from(ids), 5)));
    return { backend: engine.backend, memoryBefore, memoryAfterLoad, memoryAfterRuns: wasm.memory.buffer.byteLength, tops };
  }, { modelPath: "/" + MODEL_PATH, idLists: cases.map((c) => c.ids) });
  assert.equal(browser.backend, "cpu");
  const mib = (bytes) => (bytes / 2 ** 20).toFixed(1);
  const fileSize = statSync(here("../../" + MODEL_PATH)).size;
  console.log(`# Gemma 3 wasm memory: ${mib(browser.memoryAfterLoad)} MiB after load, ${mib(browser.memoryAfterRuns)} MiB after ${cases.length} prompts; file ${mib(fileSize)} MiB`);
  // On the CPU the weights stay in their GGUF encoding in wasm memory; the load streams a tensor
  // at a time, so the peak is the weights plus about one tensor (the 170 MiB Q8_0 embedding
  // table), the tokenizer and the module: bounded by twice the file.
  assert.ok(browser.memoryAfterLoad <= 2 * fileSize, `loading took ${browser.memoryAfterLoad} bytes of wasm memory`);
  for (const [i, c] of cases.entries()) {
    const ours = browser.tops[i].map((token) => token.id);
    const gap = c.top10_logits[0] - c.top10_logits[1];
    assert.ok(ours[0] === c.top10[0] || gap < NEAR_TIE, `${JSON.stringify(c.prompt)}: top-1 ${ours[0]}, llama.cpp ${c.top10[0]} (gap ${gap})`);
    const shared = ours.filter((id) => c.top10.slice(0, 5).includes(id)).length;
    assert.ok(shared >= 4, `${JSON.stringify(c.prompt)}: top-5 share ${shared}: ${ours} vs ${c.top10.slice(0, 5)}`);
  }
  assert.deepEqual(errors, []);
});
