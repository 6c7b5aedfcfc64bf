// End to end: the shell's eight panels in Debian's Chromium on the real SmolLM2 and the LLaVA
// fixture, each checked against the native CLI's JSON for the same input; a screenshot of each
// panel goes to artifacts/e2e/. The whole session's requests are recorded for the privacy check.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { launchChromium } from "../chromium.mjs";
import { serveBuiltSite } from "./built-site.mjs";
import { readSafetensors } from "./safetensors.mjs";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const MODEL = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
const REFERENCE_MODEL = "fixtures/smollm2-vocab-tiny-q8_0.gguf";
const ARTIFACTS = here("../../artifacts/e2e/");
const CLI = here("../../target/debug/glassbox");
// As in browser.test.mjs: wasm and x86 kernels round differently; measured max |Δ log p| 0.34.
const TOLERANCE = 0.5;
const PAYLOAD = "<img src=x onerror=alert(1)>";

const site = serveBuiltSite();
/** Every request of the whole session, from pages and workers alike. */
const requests = [];
const dialogs = [];
const browsers = [];

const run = promisify(execFile);

/**
 * The native CLI's JSON output for `args` (on the CPU, as the wasm computes). It runs beside the
 * browser: callers start it before driving the page and await it after.
 */
function cli(args) {
  const output = run(CLI, ["--backend", "cpu", ...args], { encoding: "utf8", maxBuffer: 64 << 20 }).then(({ stdout }) => JSON.parse(stdout));
  // A failure is reported where the output is awaited; until then it is not an unhandled rejection.
  output.catch(() => {});
  return output;
}

const model = here("../../" + MODEL);

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  for (const close of browsers) await close();
});

/** The shell in a fresh Chromium, with every request and dialog recorded. */
async function openShell(query, { webgpu = true } = {}) {
  const { context, close } = await launchChromium([], { webgpu });
  browsers.push(close);
  context.on("request", (r) => requests.push(r.url()));
  const page = await context.newPage();
  const errors = [];
  page.on("worker", (worker) => worker.url() && requests.push(worker.url()));
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.setViewportSize({ width: 1200, height: 900 });
  await page.goto(`${site.origin}/${query}`);
  return { page, errors };
}

async function waitFor(page, selector, timeout = 600_000) {
  await page.waitForSelector(`${selector}[data-state=ready], ${selector}[data-state=error]`, { state: "attached", timeout });
  const state = await page.getAttribute(selector, "data-state");
  if (state === "error") {
    const status = await page.$$eval("[role=status][data-state=error]", (nodes) => nodes.map((n) => n.textContent).join(" | "));
    assert.fail(`${selector} failed: ${status}`);
  }
}

const AXE = readFileSync(here("../node_modules/axe-core/axe.min.js"), "utf8");

/** No serious or critical axe-core violation in `panel` as it is drawn now. */
async function assertAccessible(page, panel, name) {
  // Evaluated through the DevTools protocol, which the page's CSP does not govern.
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(AXE);
  const violations = await page.evaluate((selector) => axe.run(selector, { resultTypes: ["violations"] }).then((r) => r.violations), `#${panel}`);
  const serious = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(serious.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`), [], `axe-core on ${name}`);
}

/** The widths and schemes of the gallery: a phone's and a desktop's, light and dark. */
const GALLERY = [[1440, "light"], [1440, "dark"], [375, "light"], [375, "dark"]];

/**
 * A screenshot of `panel` into artifacts/e2e/, after axe-core has checked the panel as it is
 * drawn (results, legends, the colour scheme in force). With `gallery`, also at 1440 and 375 px
 * wide, light and dark (`NAME-1440.png`, `NAME-375-dark.png`, ...), each checked again.
 */
async function shot(page, panel, name, { gallery = false } = {}) {
  await assertAccessible(page, panel, name);
  // The pinned bar of panel links would cross a tall panel's picture wherever the page scrolled.
  await page.evaluate(() => document.querySelector("nav").style.setProperty("position", "static"));
  await page.locator(`#${panel}`).screenshot({ path: join(ARTIFACTS, `${name}.png`) });
  if (!gallery) {
    await page.evaluate(() => document.querySelector("nav").style.removeProperty("position"));
    return;
  }
  const viewport = page.viewportSize();
  const dark = await page.evaluate(() => matchMedia("(prefers-color-scheme: dark)").matches);
  for (const [width, scheme] of GALLERY) {
    await page.setViewportSize({ width, height: 900 });
    await page.emulateMedia({ colorScheme: scheme });
    const variant = `${name}-${width}${scheme === "dark" ? "-dark" : ""}`;
    await assertAccessible(page, panel, variant);
    await page.locator(`#${panel}`).screenshot({ path: join(ARTIFACTS, `${variant}.png`) });
  }
  await page.setViewportSize(viewport);
  await page.emulateMedia({ colorScheme: dark ? "dark" : "light" });
  await page.evaluate(() => document.querySelector("nav").style.removeProperty("position"));
}

/** `classify`'s output row for one input, with the CLI's flags `extra`; started as `cli` is. */
function classifyNatively(task, row, extra) {
  const work = mkdtempSync(join(tmpdir(), "glassbox-classify-"));
  writeFileSync(join(work, "in.jsonl"), JSON.stringify(row) + "\n");
  const args = ["--backend", "cpu", "classify", model, "--task", task, "--input", join(work, "in.jsonl"), "--output", join(work, "out.jsonl"), ...extra];
  const output = run(CLI, args).then(() => JSON.parse(readFileSync(join(work, "out.jsonl"), "utf8")));
  output.catch(() => {});
  return output;
}

/** The shown top tokens `[{ id, prob }]` agree with the CLI's: the same top-1 unless the CLI's was nearly tied. */
function assertSameTop(shown, native) {
  const gap = native[0].logprob - native[1].logprob;
  assert.ok(shown[0].id === native[0].id || gap < TOLERANCE, `top-1 ${shown[0].id} vs native ${native[0].id} (gap ${gap})`);
  for (const n of native) {
    const ours = shown.find((s) => s.id === n.id);
    if (ours) assert.ok(Math.abs(Math.log(ours.prob) - n.logprob) <= TOLERANCE, `token ${n.id}: p ${ours.prob} vs native log p ${n.logprob}`);
  }
}

/** The Look inside panel's next tokens and logit lens for `prompt`, against the CLI's. */
async function checkNextTokensAndLens(page, prompt) {
  const nativeNext = cli(["logits", model, "--prompt", prompt, "--top-k", "10", "--json"]);
  const nativeLens = cli(["lens", model, "--prompt", prompt, "--top-k", "3", "--json"]);
  await page.fill("#inside-prompt", prompt);
  await page.click("#inside-form button");
  await waitFor(page, "#lens-grid");
  const shown = await page.$$eval("#next-tokens tr", (rows) => rows.map((r) => ({ id: Number(r.dataset.id), prob: Number(r.cells[2].textContent) })));
  const native = (await nativeNext).top;
  assert.equal(shown.length, 10);
  assertSameTop(shown, native);

  const lens = await nativeLens;
  const cells = await page.$$eval("#lens-grid td", (tds) => tds.map((td) => ({ layer: Number(td.dataset.layer), position: Number(td.dataset.position), token: td.dataset.token })));
  assert.equal(cells.length, lens.cells.length);
  const nativeTop = new Map(lens.cells.map((c) => [`${c.layer}.${c.position}`, c.tokens]));
  let agree = 0;
  for (const cell of cells) {
    const tokens = nativeTop.get(`${cell.layer}.${cell.position}`);
    if (tokens[0].token === cell.token) agree++;
    // Where the two disagree, the shown token is in the native top 3: a near tie.
    else assert.ok(tokens.some((t) => t.token === cell.token), `lens ${cell.layer}.${cell.position}: ${cell.token} not in native ${JSON.stringify(tokens)}`);
  }
  console.log(`# logit lens: ${agree} of ${cells.length} cells have the native top token`);
  assert.ok(agree >= 0.95 * cells.length);
  return native;
}

test("the shell uses WebGPU when asked, and its next tokens and lens match the CLI", { timeout: 900_000 }, async () => {
  const { page, errors } = await openShell("?backend=webgpu");
  await waitFor(page, "#model-card");
  assert.equal(await page.getAttribute("#backend-badge", "data-state"), "webgpu");
  await checkNextTokensAndLens(page, "The capital of France is");
  await shot(page, "model-panel", "model-webgpu");
  assert.deepEqual(errors, []);
  await page.close();
});

let page;

test("without WebGPU the shell loads onto the CPU, says why, and shows a corrupt model's error readably", { timeout: 600_000 }, async () => {
  ({ page } = await openShell("?model=", { webgpu: false }));
  // What the page keeps hidden until it is needed stays hidden, whatever the layout's rules.
  for (const hidden of ["#cache-question", "#inside-progress", "#claim-progress", "#head-comparison", "#table-download"]) {
    assert.ok(await page.isHidden(hidden), `${hidden} is shown`);
  }
  // A truncated file: a readable error, and the page keeps working.
  const truncated = readFileSync(model).subarray(0, 2_000_000);
  await page.setInputFiles("#model-file", { name: "truncated.gguf", mimeType: "application/octet-stream", buffer: truncated });
  await page.waitForSelector("#load-status[data-state=error]", { timeout: 120_000 });
  assert.match(await page.textContent("#load-status"), /^GgufError: tensor "token_embd.weight": its data .* lies outside the file/);
  await page.setInputFiles("#model-file", { name: "not-a-model.gguf", mimeType: "application/octet-stream", buffer: Buffer.from("hello") });
  await page.waitForFunction(() => /not a GGUF file/.test(document.querySelector("#load-status")?.textContent ?? ""), null, { timeout: 60_000 });

  await page.fill("#model-url", MODEL);
  await page.click("#url-form button");
  await waitFor(page, "#model-card");
  // The card as the PyPI gguf package reads the file.
  const reference = JSON.parse(readFileSync(here("../../tests/reference/smollm2-135m-instruct-q4_1.json"), "utf8")).card;
  const shown = await page.$$eval("#model-card dd", (cells) => Object.fromEntries(cells.map((c) => [c.dataset.field, c.textContent])));
  for (const [field, text] of Object.entries(shown)) assert.equal(text, reference[field] === null ? "unknown" : String(reference[field]), field);
  const types = await page.$$eval("#tensor-types tbody tr", (rows) => Object.fromEntries(rows.map((r) => [r.dataset.type, Number(r.cells[1].textContent)])));
  assert.deepEqual(types, reference.tensor_types);
  assert.equal(await page.getAttribute("#backend-badge", "data-state"), "cpu");
  assert.match(await page.textContent("#backend-reason"), /adapter/i);
  await shot(page, "model-panel", "model", { gallery: true });

  // The cache: nothing is kept until the user says yes; then it is listed, used, and deleted.
  await page.click("#cache-panel summary");
  await page.waitForSelector("#cache-status[data-state=ready]");
  assert.equal(await page.$$eval("#cache-list tbody tr", (rows) => rows.length), 0);
  assert.equal(await page.isVisible("#cache-question"), true);
  await page.click("#cache-yes");
  const bytes = readFileSync(model).length;
  await page.waitForFunction((size) => document.querySelector("#cache-list tbody tr")?.cells[1].textContent === size, `${(bytes / 1e6).toFixed(1)} MB`, { timeout: 60_000 });
  const listed = await page.$$eval("#cache-list tbody tr", (rows) => rows.map((r) => [r.cells[0].textContent, r.cells[1].textContent]));
  assert.deepEqual(listed, [[`${site.origin}/${MODEL}`, `${(bytes / 1e6).toFixed(1)} MB`]]);
  const fetched = () => requests.filter((url) => url === `${site.origin}/${MODEL}`).length;
  const before = fetched();
  await page.click("#url-form button");
  await waitFor(page, "#model-card");
  assert.equal(fetched(), before, "a kept model loads without a download");
  await page.click("#cache-list tbody button");
  await page.waitForFunction(() => document.querySelectorAll("#cache-list tbody tr").length === 0);
  // Deleted means gone: the next load downloads the file again (and leaves the page a model whose
  // file it can read again, as the f32 comparison in Look inside does).
  await page.click("#url-form button");
  await waitFor(page, "#model-card");
  assert.equal(fetched(), before + 1, "a deleted model is downloaded again");
});

test("Look inside: next tokens, lens, head importance, positions and ablation match the CLI", { timeout: 900_000 }, async () => {
  const prompt = "The capital of France is";
  const nativeAttribution = cli(["attribute", model, "--prompt", prompt, "--graph", "--json"]);
  await checkNextTokensAndLens(page, prompt);
  await waitFor(page, "#head-grid");
  const native = await nativeAttribution;
  const heads = await page.$$eval("#head-grid td[data-head]", (tds) => tds.map((td) => ({ id: td.dataset.head, score: Number(td.dataset.score) })));
  assert.equal(heads.length, native.heads.length);
  const nativeScore = new Map(native.heads.map((h) => [`${h.layer}.${h.head}`, h.score]));
  const worst = Math.max(...heads.map((h) => Math.abs(h.score - nativeScore.get(h.id))));
  console.log(`# head LPI, shell vs CLI: max |Δ| = ${worst.toExponential(2)}`);
  assert.ok(worst <= TOLERANCE);
  // The grid saves as CSV with the numbers it shows, and as a picture.
  const [csvDownload] = await Promise.all([page.waitForEvent("download"), page.click('.exports[data-for="head-grid"] button[data-format="csv"]')]);
  assert.equal(csvDownload.suggestedFilename(), "head-lpi.csv");
  const [csvHeader, ...csvRows] = readFileSync(await csvDownload.path(), "utf8").trim().split("\r\n").map((line) => line.split(","));
  assert.equal(csvHeader.length, 1 + Math.max(...native.heads.map((h) => h.head)) + 1);
  const saved = csvRows.flatMap(([layer, ...cells]) => cells.map((v, h) => ({ id: `${layer}.${h}`, score: Number(v) })));
  assert.deepEqual(saved.sort((a, b) => a.id.localeCompare(b.id)), [...heads].sort((a, b) => a.id.localeCompare(b.id)));
  const [pngDownload] = await Promise.all([page.waitForEvent("download"), page.click('.exports[data-for="head-grid"] button[data-format="png"]')]);
  assert.deepEqual([...readFileSync(await pngDownload.path()).subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10]);
  // Each grid's colour scale is drawn with its ends: probabilities 0 to 1, LPI ± the largest.
  assert.equal(await page.getAttribute("#lens-legend", "data-labels"), "0|0.5|1");
  const largest = Math.max(...heads.map((h) => Math.abs(h.score))).toFixed(2);
  assert.equal(await page.getAttribute("#head-legend", "data-labels"), `−${largest}|0|+${largest}`);
  const ranked = [...heads].sort((a, b) => b.score - a.score).map((h) => h.id);
  const top = `${native.heads[0].layer}.${native.heads[0].head}`;
  assert.equal(ranked[0], top);

  // Click the top head: its per-position contributions, as the CLI computes them.
  await page.click(`#head-grid td[data-head="${top}"]`);
  const positions = await page.$$eval("#head-positions .token", (chips) => chips.map((c) => ({ position: Number(c.dataset.position), score: Number(c.dataset.score) })));
  const nativePositions = native.positions.filter((p) => `${p.layer}.${p.head}` === top);
  assert.equal(positions.length, nativePositions.length);
  for (const p of nativePositions) assert.ok(Math.abs(positions.find((q) => q.position === p.position).score - p.score) <= TOLERANCE);

  // The attribution graph: its edges and the MLPs' scores are the CLI's `attribute --graph`.
  await page.waitForSelector('#attribution-graph[data-state="ready"]');
  const edges = await page.$$eval("#attribution-graph path.graph-edge", (paths) =>
    paths.map((p) => ({ id: `${p.dataset.layer}.${p.dataset.head}@${p.dataset.position}`, score: Number(p.dataset.score) })),
  );
  const nativeEdges = new Map(native.graph.edges.map((e) => [`${e.layer}.${e.head}@${e.position}`, e.score]));
  assert.equal(edges.length, native.graph.edges.length);
  const sharedEdges = edges.filter((e) => nativeEdges.has(e.id));
  const worstEdge = Math.max(...sharedEdges.map((e) => Math.abs(e.score - nativeEdges.get(e.id))));
  console.log(`# graph edges, shell vs CLI: ${sharedEdges.length} of ${edges.length} the same, max |Δ LPI| = ${worstEdge.toExponential(2)}`);
  assert.ok(worstEdge <= TOLERANCE);
  // The two choose their exact edges to first order with kernels that round differently, so the
  // weakest chosen may differ; the strongest hundred may not.
  const shownIds = new Set(edges.map((e) => e.id));
  for (const e of native.graph.edges.slice(0, 100)) assert.ok(shownIds.has(`${e.layer}.${e.head}@${e.position}`), `edge ${e.layer}.${e.head}@${e.position}`);
  const mlps = await page.$$eval("#attribution-graph rect.graph-mlp", (rects) => rects.map((r) => Number(r.dataset.score)));
  assert.equal(mlps.length, native.layers.length);
  for (const layer of native.layers) assert.ok(Math.abs(mlps[layer.layer] - layer.ffn) <= TOLERANCE);
  // The slider hides the edges under its share of the largest |LPI| on the graph.
  const extent = Math.max(...edges.map((e) => Math.abs(e.score)), ...mlps.map(Math.abs));
  await page.$eval("#graph-threshold", (input) => {
    input.value = "0.25";
    input.dispatchEvent(new Event("input"));
  });
  const visible = await page.$$eval('#attribution-graph path.graph-edge[display="inline"]', (paths) => paths.map((p) => Number(p.dataset.score)));
  assert.equal(visible.length, edges.filter((e) => Math.abs(e.score) >= 0.25 * extent).length);
  assert.equal(await page.getAttribute("#attribution-graph", "data-shown"), String(visible.length));
  // The drawing and its numbers save; the SVG holds the edges shown.
  const [graphSvg] = await Promise.all([page.waitForEvent("download"), page.click('.exports[data-for="attribution-graph"] button[data-format="svg"]')]);
  const svgText = readFileSync(await graphSvg.path(), "utf8");
  assert.ok(svgText.startsWith("<svg"));
  assert.equal(svgText.match(/class="graph-edge"/g).length, visible.length);
  const [graphJson] = await Promise.all([page.waitForEvent("download"), page.click('.exports[data-for="attribution-graph"] button[data-format="json"]')]);
  assert.equal(JSON.parse(readFileSync(await graphJson.path(), "utf8")).graph.edges.length, edges.length);
  // An edge opened from the keyboard shows its head's per-position view.
  const strongest = native.graph.edges[0];
  await page.focus(`#attribution-graph path.graph-edge[data-layer="${strongest.layer}"][data-head="${strongest.head}"][data-position="${strongest.position}"]`);
  assert.match(await page.textContent("#graph-hover"), new RegExp(`head ${strongest.layer}\\.${strongest.head} carries`));
  await page.keyboard.press("Enter");
  assert.match(await page.textContent("#head-name"), new RegExp(`^Head ${strongest.layer}\\.${strongest.head}\\b`));
  // The graph is one tab stop, its strongest edge; the arrow keys step to the next by strength.
  assert.equal(await page.$$eval('#attribution-graph path.graph-edge[tabindex="0"]', (paths) => paths.length), 1);
  await page.keyboard.press("ArrowDown");
  const second = native.graph.edges[1];
  assert.deepEqual(await page.evaluate(() => [document.activeElement.dataset.layer, document.activeElement.dataset.head, document.activeElement.dataset.position].map(Number)), [second.layer, second.head, second.position]);
  await page.click(`#head-grid td[data-head="${top}"]`);
  await page.$eval("#graph-threshold", (input) => {
    input.value = "0.1";
    input.dispatchEvent(new Event("input"));
  });

  const neurons = await page.$$eval("#neuron-table tbody tr", (rows) => rows.map((r) => r.dataset.neuron));
  assert.deepEqual(neurons.slice(0, 5), native.neurons.slice(0, 5).map((n) => `${n.layer}.${n.neuron}`));
  await shot(page, "inside-panel", "look-inside", { gallery: true });

  // One click ablates the head; the next tokens change as the CLI's ablation changes them.
  const nativeAblatedTop = cli(["logits", model, "--prompt", prompt, "--top-k", "10", "--ablate-heads", top, "--json"]);
  await page.click("#ablate-head");
  await waitFor(page, "#ablated-tokens");
  const ablated = await page.$$eval("#ablated-tokens tr", (rows) => rows.map((r) => ({ id: Number(r.dataset.id), prob: Number(r.cells[2].textContent) })));
  const nativeAblated = (await nativeAblatedTop).top;
  assertSameTop(ablated, nativeAblated);
  // The ablation changed the distribution.
  assert.ok(Math.abs(ablated[0].prob - (await page.$eval("#next-tokens tr", (r) => Number(r.cells[2].textContent)))) > 0.1);
  assert.match(await page.textContent("#ablation-list"), new RegExp(`head ${top.replace(".", "\\.")}`));
  await page.click("#clear-ablations");
  await page.waitForSelector("#ablation-box", { state: "hidden" });

  // The toggle: the head grid with the weights dequantised to f32 beside the quantised one, and
  // the top heads each ranks first, as compare-weights finds them natively. The f32 order is
  // compared as is (both sides sum f32 products); the quantised one as a set, since the wasm and
  // x86 kernels round differently and 24.6 and 29.2 lie 0.006 apart.
  const nativeWeights = cli(["compare-weights", model, "--prompt", prompt, "--top-neurons", "1", "--json"]);
  await page.check("#inside-float");
  await waitFor(page, "#head-grid-float");
  const comparison = (await nativeWeights).prompts[0];
  const topOf = async (grid) => (await page.getAttribute(grid, "data-top")).split(",");
  assert.deepEqual(await topOf("#head-grid-float"), comparison.top_heads_float);
  assert.deepEqual((await topOf("#head-grid")).sort(), [...comparison.top_heads_quantised].sort());
  assert.equal(Number(await page.getAttribute("#head-comparison", "data-shared")), comparison.heads_shared);
  const floatCells = await page.$$eval("#head-grid-float td[data-head]", (tds) => tds.length);
  assert.equal(floatCells, native.heads.length);
  await shot(page, "inside-panel", "look-inside-f32");
  // The same panel in the dark scheme and at a phone's width.
  await page.emulateMedia({ colorScheme: "dark" });
  await shot(page, "inside-panel", "look-inside-f32-dark");
  await page.emulateMedia({ colorScheme: "light" });
  await page.setViewportSize({ width: 375, height: 900 });
  await shot(page, "inside-panel", "look-inside-f32-375");
  await page.setViewportSize({ width: 1200, height: 900 });
  await page.uncheck("#inside-float");
  await page.waitForSelector("#float-heads", { state: "hidden" });

  // Cancel during the attribution stops it in the worker after its current step: the look ends
  // as cancelled, in the engine's words, and the head grid is left undrawn.
  await page.fill("#inside-prompt", "The capital of Spain is");
  await page.click("#inside-form button[type=submit]");
  await page.waitForFunction(() => /^Attributing/.test(document.querySelector("#inside-progress .progress-text")?.textContent ?? ""));
  assert.match(await page.textContent("#inside-progress .progress-text"), /^Attributing .*, step: [2-7] of 8/);
  await page.click("#inside-progress button.cancel");
  await page.waitForSelector('#inside-status[data-state="cancelled"]');
  assert.match(await page.getAttribute("#inside-status", "data-reason"), /^InterpError: stopped before the end, as asked/);
  assert.ok(await page.isHidden("#inside-progress"));
  assert.equal(await page.getAttribute("#head-grid", "data-state"), "");
  await page.fill("#inside-prompt", prompt);
});

test("a view in the URL's fragment opens on its model and prompt, and looking writes it back", { timeout: 600_000 }, async () => {
  const prompt = "The capital of Italy is";
  const nativeTop = cli(["logits", model, "--prompt", prompt, "--top-k", "1", "--json"]);
  const { page: view, errors } = await openShell(`#inside-panel&model=${encodeURIComponent(MODEL)}&prompt=${encodeURIComponent(prompt)}`, { webgpu: false });
  await waitFor(view, "#head-grid");
  assert.equal(await view.inputValue("#inside-prompt"), prompt);
  const top = (await nativeTop).top[0].token.replaceAll(" ", "·");
  assert.match(await view.textContent("#target-line"), new RegExp(`^Explaining ${top} `));
  await view.fill("#inside-prompt", "2+2=");
  await view.click("#inside-form button");
  await view.waitForFunction(() => new URLSearchParams(location.hash.split("&").slice(1).join("&")).get("prompt") === "2+2=");
  await view.click('nav a[href="#patch-panel"]');
  const fragment = new URL(view.url()).hash;
  assert.ok(fragment.startsWith("#patch-panel&"), fragment);
  const kept = new URLSearchParams(fragment.split("&").slice(1).join("&"));
  assert.deepEqual([kept.get("model"), kept.get("prompt")], [`${site.origin}/${MODEL}`, "2+2="]);
  assert.deepEqual(errors, []);
  await view.close();
});

test("Patch & steer: the patching grid, the steered next tokens and the recorded file match the CLI", { timeout: 900_000 }, async () => {
  const [clean, corrupt, answer, wrong] = ["The capital of France is", "The capital of Italy is", " Paris", " Rome"];
  const nativeGrid = cli(["patch", model, "--clean", clean, "--corrupt", corrupt, "--answer", answer, "--wrong", wrong, "--json"]);
  await page.fill("#patch-clean", clean);
  await page.fill("#patch-corrupt", corrupt);
  await page.fill("#patch-answer", answer);
  await page.fill("#patch-wrong", wrong);
  await page.click("#patch-form button[type=submit]");
  await waitFor(page, "#patch-grid");
  const native = await nativeGrid;
  const shown = await page.$$eval("#patch-grid tbody tr", (rows) => rows.map((r) => [...r.querySelectorAll("td")].map((td) => Number(td.dataset.value))));
  assert.equal(shown.length, native.grid.length);
  let worst = 0;
  shown.forEach((row, layer) => {
    assert.equal(row.length, native.grid[layer].length);
    row.forEach((v, p) => (worst = Math.max(worst, Math.abs(v - native.grid[layer][p]))));
  });
  console.log(`# patching grid, shell vs CLI: max |Δ| = ${worst.toExponential(2)}`);
  // The kernels give the same bits in wasm; the rest of the layer may differ by ulps (measured
  // 2026-12-05: the same f32 grid; the CLI prints each as its shortest f32 decimal, 4.3e-8 from
  // the f32 as the page reads it).
  assert.ok(worst <= 1e-3);
  assert.deepEqual(await page.$$eval("#patch-grid thead th.token", (ths) => ths.map((th) => th.textContent)), native.tokens.map((t) => t.replaceAll("\n", "⏎").replaceAll(" ", "·")));
  // The first-order estimate (attribution patching) from the page's backward pass, beside it.
  const estimated = await page.$$eval("#patch-estimate tbody tr", (rows) => rows.map((r) => [...r.querySelectorAll("td")].map((td) => Number(td.dataset.value))));
  assert.equal(estimated.length, native.attribution_grid.length);
  let worstEstimate = 0;
  estimated.forEach((row, layer) => row.forEach((v, p) => (worstEstimate = Math.max(worstEstimate, Math.abs(v - native.attribution_grid[layer][p])))));
  console.log(`# first-order grid, shell vs CLI: max |Δ| = ${worstEstimate.toExponential(2)}`);
  assert.ok(worstEstimate <= 1e-3);
  assert.match(await page.textContent("#patch-estimate-legend"), new RegExp(`Correlation with the exact grid: ${native.correlation.toFixed(3)}`));
  await shot(page, "patch-panel", "patch-and-steer", { gallery: true });

  // The panel's vector at layer 4 from its default prompts, at coefficient 8, moves the next
  // tokens as the CLI's --steer does. (The continuation is shown too; greedy text may part from
  // the CLI's at a near-tie, which the next tokens' comparison allows for.)
  const work = mkdtempSync(join(tmpdir(), "glassbox-steer-"));
  const [positive, negative, vector] = ["positive.txt", "negative.txt", "vector.safetensors"].map((name) => join(work, name));
  writeFileSync(positive, (await page.inputValue("#steer-positive")) + "\n");
  writeFileSync(negative, (await page.inputValue("#steer-negative")) + "\n");
  execFileSync(CLI, ["--backend", "cpu", "steer-vector", model, "--positive", positive, "--negative", negative, "--layer", "4", "--output", vector]);
  const prompt = await page.inputValue("#steer-prompt");
  const nativeSteered = cli(["logits", model, "--prompt", prompt, "--top-k", "5", "--steer", `${vector}@4:8`, "--json"]);
  const nativePlain = cli(["logits", model, "--prompt", prompt, "--top-k", "5", "--json"]);
  const nextTokens = () => page.$$eval("#steer-next tr", (rows) => rows.map((r) => ({ id: Number(r.dataset.id), prob: Number(r.cells[2].textContent) })));
  await page.fill("#steer-layer", "4");
  await page.click("#steer-form button[type=submit]");
  await waitFor(page, "#steer-status");
  assertSameTop(await nextTokens(), (await nativePlain).top);
  await page.$eval("#steer-coefficient", (slider) => {
    slider.value = "8";
    slider.dispatchEvent(new Event("change"));
  });
  await waitFor(page, "#steer-status");
  assert.equal(await page.getAttribute("#steer-text", "data-coefficient"), "8");
  const steered = await nextTokens();
  assertSameTop(steered, (await nativeSteered).top);
  // The steering moved the distribution: the plain top-1's probability changed.
  const plainTop = (await nativePlain).top[0];
  const steeredNative = (await nativeSteered).top.find((t) => t.id === plainTop.id);
  assert.ok(steeredNative === undefined || Math.abs(steeredNative.logprob - plainTop.logprob) > 0.05);
  assert.ok((await page.textContent("#steer-text")).length > 0);
  await page.click("#steer-clear");
  await waitFor(page, "#steer-status");

  // The recording downloads the file the CLI's record writes.
  const nativeFile = join(work, "recording.safetensors");
  execFileSync(CLI, ["--backend", "cpu", "record", model, "--prompt", await page.inputValue("#record-prompt"), "--hooks", "blocks.*.hook_resid_post", "--positions", "last", "--output", nativeFile]);
  await page.fill("#record-hooks", "blocks.*.hook_resid_post");
  await page.selectOption("#record-positions", "last");
  const download = page.waitForEvent("download");
  await page.click("#record-form button[type=submit]");
  const downloaded = readFileSync(await (await download).path());
  const ours = readSafetensors(downloaded);
  const theirs = readSafetensors(readFileSync(nativeFile));
  assert.deepEqual(Object.keys(ours.tensors), Object.keys(theirs.tensors));
  let worstRecorded = 0;
  for (const [name, { shape, data }] of Object.entries(theirs.tensors)) {
    assert.deepEqual(ours.tensors[name].shape, shape, name);
    data.forEach((v, i) => (worstRecorded = Math.max(worstRecorded, Math.abs(v - ours.tensors[name].data[i]))));
  }
  console.log(`# recorded file, shell vs CLI: max |Δ| = ${worstRecorded.toExponential(2)}`);
  assert.ok(worstRecorded <= 1e-5);
});

test("Image: the fixture's answer, patch heatmaps and visual lens match the CLI", { timeout: 600_000 }, async () => {
  const png = join(mkdtempSync(join(tmpdir(), "glassbox-e2e-")), "scene.png");
  const scene = JSON.parse(execFileSync(CLI, ["scene", "--seed", "2", "--index", "5", "--size", "96", "--png", png], { encoding: "utf8" }));
  const [mmproj, lm] = ["mmproj", "lm"].map((part) => here(`../../tests/fixtures/shapes-llava-${part}.gguf`));
  await page.fill("#scene-index", "5");
  await page.click("#draw-scene");
  await page.waitForFunction((prompt) => document.querySelector("#image-prompt").value === prompt, scene.prompt, { timeout: 120_000 });
  assert.equal(await page.getAttribute("#image-view", "data-answer"), scene.answer);

  const heatmapArgs = (method) => ["heatmap", mmproj, lm, "--image", png, "--prompt", scene.prompt, "--method", method, "--json"];
  const nativeHeatmaps = Object.fromEntries(["lpi", "attention", "occlusion"].map((method) => [method, cli(heatmapArgs(method))]));
  const nativeLens = cli(["lens-image", mmproj, lm, "--image", png, "--prompt", scene.prompt, "--top-k", "3", "--json"]);
  for (const method of ["lpi", "attention", "occlusion"]) {
    await page.check(`input[name=method][value=${method}]`);
    if (method === "lpi") await page.click("#question-form button");
    await page.waitForSelector(`#heatmap-overlay[data-method=${method}][data-state=ready]`, { timeout: 300_000 });
    await page.waitForSelector("#image-status[data-state=ready]", { timeout: 300_000 });
    const native = await nativeHeatmaps[method];
    const cells = JSON.parse(await page.getAttribute("#heatmap-overlay", "data-cells"));
    const worst = Math.max(...cells.map((v, i) => Math.abs(v - native.heatmap.cells[i])));
    console.log(`# ${method} heatmap, shell vs CLI: max |Δ| = ${worst.toExponential(2)}`);
    assert.ok(worst <= 1e-4);
    assert.equal(await page.getAttribute("#image-answer", "data-token"), native.target.token);
    assert.equal(native.target.token.trim(), scene.answer);
    if (method === "lpi") await shot(page, "image-panel", "image", { gallery: true });
  }

  // Hover the target shape's centre: the lens rows of that patch, as `lens-image` reads them.
  const lens = await nativeLens;
  const [x0, y0, x1, y1] = scene.shapes[scene.target].bbox;
  const box = await page.locator("#heatmap-overlay").boundingBox();
  await page.mouse.move(box.x + (((x0 + x1) / 2) / 96) * box.width, box.y + (((y0 + y1) / 2) / 96) * box.height);
  await page.waitForSelector("#patch-lens tbody tr");
  const patch = Number(await page.getAttribute("#patch-lens tbody", "data-patch"));
  const shown = await page.$$eval("#patch-lens tbody tr", (trs) => trs.map((tr) => `${tr.dataset.layer} ${tr.dataset.token}`));
  const native = lens.cells.filter((c) => c.patch === patch).sort((a, b) => b.layer - a.layer);
  assert.deepEqual(shown, native.map((c) => `${c.layer} ${c.tokens[0].token}`));
  await shot(page, "image-panel", "image-lens");
});

test("Check a claim: verdict, streamed explanation, evidence, affect and a probe's reading match the CLI", { timeout: 900_000 }, async () => {
  const [first] = readFileSync(here("../../tests/data/fmd_claims.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const row = { id: first.id, claim: `${first.claim} ${PAYLOAD}`, context: first.context };
  // Two sentences, set in the panel's writing settings and given to the CLI: the setting reaches
  // the engine (the default is four), and the texts stay short of the near ties where the wasm and
  // x86 kernels' roundings part a longer explanation (measured: at the third sentence here).
  const nativeClassification = classifyNatively("fmd", row, ["--explain", "--evidence", "--affect", "--lexicons", here("../../models/lexicons"), "--max-sentences", "2"]);
  // A probe trained by the CLI on the claim set, and its reading of this row.
  const work = mkdtempSync(join(tmpdir(), "glassbox-probe-"));
  const probeFile = join(work, "probe.safetensors");
  writeFileSync(join(work, "row.jsonl"), JSON.stringify(row) + "\n");
  await run(CLI, ["--backend", "cpu", "probe", "train", model, "--input", here("../../tests/data/fmd_claims.jsonl"), "--text-field", "context,claim", "--hook", "blocks.16.hook_resid_post", "--output", probeFile]);
  const nativeProbe = run(CLI, ["--backend", "cpu", "probe", "apply", model, "--input", join(work, "row.jsonl"), "--probe", probeFile]).then(({ stdout }) => JSON.parse(stdout));
  nativeProbe.catch(() => {});
  await page.setInputFiles("#claim-probe-file", probeFile);

  await page.selectOption("#claim-task", "fmd");
  await page.fill("#claim-text", row.claim);
  await page.fill("#claim-context", row.context);
  await page.check("#claim-affect");
  await page.click("#claim-writing summary");
  await page.fill("#claim-sentences", "2");
  await page.click("#claim-form button[type=submit]");
  // The explanation streams in before the verdict is drawn.
  await page.waitForFunction(() => document.querySelector("#claim-explanation").textContent.length > 0, null, { timeout: 600_000 });
  assert.equal(await page.getAttribute("#claim-verdict", "data-state"), "working");
  await waitFor(page, "#claim-verdict");
  const native = await nativeClassification;

  assert.equal(await page.getAttribute("#claim-verdict", "data-label"), native.label);
  const probs = await page.$$eval("#claim-probs .bar", (bars) => Object.fromEntries(bars.map((b) => [b.dataset.label, Number(b.dataset.value)])));
  for (const [label, p] of Object.entries(native.probs)) assert.ok(Math.abs(Math.log(probs[label]) - Math.log(p)) <= TOLERANCE, `${label}: ${probs[label]} vs ${p}`);
  assert.equal(await page.textContent("#claim-explanation"), native.explanation);
  assert.equal(native.explanation.match(/[.!?](\s|$)/g)?.length, 2, native.explanation);
  // Evidence: the CLI's strongest tokens are marked; the tail of the top ten may reorder on near ties.
  const marks = await page.$$eval("#claim-evidence-text mark", (ms) => ms.map((m) => m.textContent));
  const nativeMarks = native.evidence.filter((e) => e.field === "claim").map((e) => e.token);
  for (const token of nativeMarks.slice(0, 3)) assert.ok(marks.includes(token), `evidence ${JSON.stringify(token)} is not marked: ${JSON.stringify(marks)}`);
  const shared = nativeMarks.filter((t) => marks.includes(t)).length;
  console.log(`# evidence: ${shared} of ${nativeMarks.length} CLI tokens marked`);
  assert.ok(shared >= 0.7 * nativeMarks.length);
  const affect = await page.$$eval("#claim-affect-bars .bar", (bars) => Object.fromEntries(bars.map((b) => [b.dataset.label, Number(b.dataset.value)])));
  assert.equal(affect.compound, native.affect.vader.compound);
  assert.equal(affect.negative, native.affect.vader.neg);
  for (const [category, value] of Object.entries(native.affect.empath)) assert.equal(affect[category], value, category);
  assert.ok(Math.abs(affect.intensity - native.affect.llm_intensity) <= 0.05);
  // The claim, with the payload, is shown as text.
  assert.ok((await page.textContent("#claim-evidence-text")).includes(PAYLOAD));
  const probe = await nativeProbe;
  await waitFor(page, "#claim-probe");
  await page.setInputFiles("#claim-probe-file", []);
  assert.equal(await page.getAttribute("#claim-probe", "data-label"), probe.label);
  const probeProbs = await page.$$eval("#claim-probe-probs .bar", (bars) => Object.fromEntries(bars.map((b) => [b.dataset.label, Number(b.dataset.value)])));
  const probeWorst = Math.max(...Object.entries(probe.probabilities).map(([label, p]) => Math.abs(probeProbs[label] - p)));
  console.log(`# probe reading, shell vs CLI: max |Δ p| = ${probeWorst.toExponential(2)}`);
  // On this 80-token prompt the wasm residual parts from the native one from layer 2 (ulps of
  // candle's element-wise operations flipping 8-bit roundings): measured 2026-12-05, 0.48 of
  // values up to 100 at layer 16, the probe's probabilities 8.1e-3 apart.
  assert.ok(probeWorst <= 0.05);
  await shot(page, "claim-panel", "check-a-claim", { gallery: true });

  // Cancel during the explanation stops the engine at its next token: the check ends as cancelled,
  // in the engine's words, with no verdict drawn.
  await page.fill("#claim-sentences", "0");
  await page.uncheck("#claim-paragraph");
  await page.click("#claim-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#claim-explanation").textContent.length > 0, null, { timeout: 600_000 });
  assert.match(await page.textContent("#claim-progress .progress-text"), /^Explanation tokens written .*: \d+ of 128/);
  await page.click("#claim-progress button.cancel");
  await page.waitForSelector('#claim-status[data-state="cancelled"]');
  assert.match(await page.getAttribute("#claim-status", "data-reason"), /^TaskError: stopped before the end, as asked/);
  assert.ok(await page.isHidden("#claim-progress"));
  assert.equal(await page.getAttribute("#claim-verdict", "data-state"), "");
});

test("Check a claim with a retrieval index: the retrieved examples and verdict match the CLI", { timeout: 600_000 }, async () => {
  const rows = readFileSync(here("../../tests/data/conspiracy_posts.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const work = mkdtempSync(join(tmpdir(), "glassbox-index-"));
  const [examples, index] = ["examples.jsonl", "examples.gbx"].map((f) => join(work, f));
  // Five examples, of which the prompt takes four.
  writeFileSync(examples, rows.slice(1, 6).map((r) => JSON.stringify(r)).join("\n") + "\n");
  execFileSync(CLI, ["--backend", "cpu", "index", "build", model, "--embedder", "llm", "--input", examples, "--output", index], { stdio: "ignore" });
  const row = { id: rows[0].id, text: rows[0].text };
  const nativeClassification = classifyNatively("conspiracy", row, ["--retrieve", index]);

  await page.selectOption("#claim-task", "conspiracy");
  await page.fill("#claim-text", row.text);
  for (const option of ["#claim-explain", "#claim-evidence", "#claim-affect"]) await page.uncheck(option);
  await page.setInputFiles("#claim-index", index);
  await page.click("#claim-form button[type=submit]");
  await waitFor(page, "#claim-verdict");
  const native = await nativeClassification;
  assert.equal(await page.getAttribute("#claim-verdict", "data-label"), native.label);
  const retrieved = await page.$$eval("#claim-retrieved li", (items) => items.map((li) => li.dataset.id));
  // The same examples in the same order, except that two whose native similarities are within
  // 1e-4 may trade places (candle's attention products sum in another order in wasm; here two
  // examples score 0.98911 and 0.98910).
  assert.deepEqual([...retrieved].sort(), native.retrieved.map((r) => r.id).sort());
  const score = new Map(native.retrieved.map((r) => [r.id, r.score]));
  retrieved.forEach((id, i) => {
    const expected = native.retrieved[i];
    assert.ok(id === expected.id || Math.abs(score.get(id) - expected.score) <= 1e-4,
      `rank ${i}: ${id} (${score.get(id)}) where the CLI ranks ${expected.id} (${expected.score})`);
  });
  await page.setInputFiles("#claim-index", []);
});

test("Token rewards: the rewards and SePO's selection match the CLI", { timeout: 600_000 }, async () => {
  const prompt = "Question: What is the capital of France? Answer:";
  const response = ` The capital of France is Paris. ${PAYLOAD}`;
  const nativeRewards = cli(["token-rewards", model, here(`../../tests/${REFERENCE_MODEL}`), "--prompt", prompt, "--response", response, "--json"]);
  await page.fill("#reference-url", REFERENCE_MODEL);
  await page.fill("#rewards-prompt", prompt);
  await page.fill("#rewards-response", response);
  await page.click("#rewards-form button");
  await waitFor(page, "#rewards-tokens");
  const native = await nativeRewards;
  const shown = await page.$$eval("#rewards-tokens .token", (chips) => chips.map((c) => ({ reward: Number(c.dataset.reward), selected: c.dataset.selected === "true" })));
  assert.equal(shown.length, native.tokens.length);
  const worst = Math.max(...shown.map((s, i) => Math.abs(s.reward - native.tokens[i].reward)));
  console.log(`# token rewards, shell vs CLI: max |Δ r| = ${worst.toExponential(2)}`);
  assert.ok(worst <= TOLERANCE);
  assert.deepEqual(shown.map((s) => s.selected), native.tokens.map((t) => t.selected));
  await shot(page, "rewards-panel", "token-rewards", { gallery: true });
});

/** The panel's question rows once a run has finished. */
async function examRows(page) {
  await waitFor(page, "#exam-status");
  return page.$$eval("#exam-replies tbody tr", (rows) => rows.map((r) => ({ id: r.dataset.id, answer: r.dataset.answer || null, reply: r.cells[3].textContent, probs: r.dataset.probs ? JSON.parse(r.dataset.probs) : null })));
}

test("Take an exam: each reply, its letter and the accuracy table match the CLI; a bad row is listed", { timeout: 900_000 }, async () => {
  const questions = readFileSync(here("../../tests/data/exam_questions.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const byId = (id) => questions.find((q) => q.id === id);
  // SmolLM2's chat prompt for a question, from llama.cpp's reference (its own Jinja2 rendering).
  const reference = JSON.parse(readFileSync(here("../../tests/reference/exam-llamacpp.json"), "utf8"));
  const cue = (q) => (q.language === "en" ? "\nAnswer:" : "\n答案：");
  const promptOf = (q) => reference.cases[0].prompt.replace(byId(reference.cases[0].id).question + "\n答案：", q.question + cue(q));
  const marked = { ...byId("exam-003"), question: byId("exam-003").question.replace("\nA. ", ` ${PAYLOAD}\nA. `) };
  // Two Chinese questions (one holding markup) and an English one.
  const good = [byId("exam-027"), marked, byId("exam-040")];
  const work = mkdtempSync(join(tmpdir(), "glassbox-exam-"));
  writeFileSync(join(work, "good.jsonl"), good.map((q) => JSON.stringify(q)).join("\n") + "\n");
  const lines = good.map((q) => JSON.stringify(q));
  writeFileSync(join(work, "with-bad.jsonl"), [lines[0], lines[1], "{not json", lines[2]].join("\n") + "\n");
  const native = {};
  for (const mode of ["generate", "score"]) {
    const out = join(work, `${mode}.jsonl`);
    native[mode] = run(CLI, ["--backend", "cpu", "exam", model, "--input", join(work, "good.jsonl"), "--output", out, "--mode", mode]).then(({ stdout }) => ({
      report: JSON.parse(stdout).report,
      rows: readFileSync(out, "utf8").trim().split("\n").map((l) => JSON.parse(l)),
    }));
    native[mode].catch(() => {});
  }

  await page.setInputFiles("#exam-file", join(work, "with-bad.jsonl"));
  await page.selectOption("#exam-mode", "generate");
  await page.click("#exam-start");
  const shown = await examRows(page);
  const generated = await native.generate;
  assert.deepEqual(shown.map((r) => r.id), generated.rows.map((r) => r.id));
  for (const [i, row] of generated.rows.entries()) {
    if (shown[i].reply === row.output) {
      assert.equal(shown[i].answer, row.answer, `${row.id}: the letter read`);
      continue;
    }
    // The greedy replies may part only where the CLI's top two tokens are within the two engines'
    // rounding of each other (each log-probability within TOLERANCE).
    let k = 0;
    while (k < row.output.length && shown[i].reply[k] === row.output[k]) k++;
    const prefix = row.output.slice(0, k);
    const { top } = await cli(["logits", model, "--prompt", promptOf(good[i]) + prefix, "--top-k", "2", "--json"]);
    const gap = top[0].logprob - top[1].logprob;
    console.log(`# ${row.id}: the replies part after ${JSON.stringify(prefix)}, where the CLI's top two are ${gap.toFixed(3)} apart`);
    assert.ok(gap < 2 * TOLERANCE, `${row.id}: ${JSON.stringify(shown[i].reply)} vs the CLI's ${JSON.stringify(row.output)}`);
  }
  const overall = await page.$eval("#exam-accuracy tr[data-group=overall]", (r) => ({ count: Number(r.dataset.count), correct: Number(r.dataset.correct) }));
  assert.equal(overall.count, generated.report.overall.count);
  const errorsShown = await page.$$eval("#exam-errors li", (items) => items.map((i) => i.textContent));
  assert.equal(errorsShown.length, 1);
  assert.match(errorsShown[0], /^line 3: .*JSON/);
  assert.match(await page.textContent("#exam-status"), /^Done: 3 of 4 questions answered/);
  await shot(page, "exam-panel", "take-an-exam", { gallery: true });

  await page.selectOption("#exam-mode", "score");
  await page.click("#exam-start");
  const scored = await examRows(page);
  const nativeScores = await native.score;
  let correct = 0;
  for (const [i, row] of nativeScores.rows.entries()) {
    const shownProbs = scored[i].probs;
    for (const [letter, p] of Object.entries(row.probs)) assert.ok(Math.abs(Math.log(shownProbs[letter]) - Math.log(p)) <= TOLERANCE, `${row.id} ${letter}: ${shownProbs[letter]} vs ${p}`);
    const gap = Math.min(...Object.entries(row.probs).filter(([l]) => l !== row.answer).map(([, p]) => Math.log(row.probs[row.answer]) - Math.log(p)));
    assert.ok(scored[i].answer === row.answer || gap < 2 * TOLERANCE, `${row.id}: ${scored[i].answer} vs ${row.answer} (gap ${gap})`);
    if (scored[i].answer === row.gold) correct++;
  }
  const scoredOverall = await page.$eval("#exam-accuracy tr[data-group=overall]", (r) => Number(r.dataset.correct));
  assert.equal(scoredOverall, correct);
  assert.equal(await page.$$eval("img[src=x], [onerror]", (found) => found.length), 0);
  assert.deepEqual(dialogs, []);

  // Stop ends the run after the question being asked.
  await page.click("#exam-start");
  await page.click("#exam-stop");
  await examRows(page);
  assert.match(await page.textContent("#exam-status"), /^Stopped: 1 of 4 questions answered/);
});

test("Synthesise a table: SMOTE's rows and report match the CLI, the model's prompts are accounted for, a ragged CSV is a clear error", { timeout: 900_000 }, async () => {
  const train = here("../../models/tables/iris-train.csv");
  const heldOut = here("../../models/tables/iris-test.csv");
  const work = mkdtempSync(join(tmpdir(), "glassbox-table-"));
  writeFileSync(join(work, "ragged.csv"), "a,b\n1,2\n3\n");
  await page.setInputFiles("#table-file", join(work, "ragged.csv"));
  await page.waitForSelector("#table-status[data-state=error]");
  assert.match(await page.textContent("#table-status"), /line 3 has 1 cells; the header has 2/);

  const nativeSmote = join(work, "smote.csv");
  const nativeReport = run(CLI, ["harmonic", "baseline", "--method", "smote", "--input", train, "--label", "target", "--n", "25", "--output", nativeSmote])
    .then(() => run(CLI, ["harmonic", "evaluate", "--real", train, "--synthetic", nativeSmote, "--label", "target", "--test", heldOut]))
    .then(({ stdout }) => JSON.parse(stdout));
  nativeReport.catch(() => {});
  await page.setInputFiles("#table-file", train);
  await page.waitForSelector("#table-status[data-state=ready]");
  await page.setInputFiles("#table-test-file", heldOut);
  assert.equal(await page.inputValue("#table-label"), "target");
  await page.fill("#table-n", "25");
  await page.selectOption("#table-method", "smote");
  await page.click("#table-start");
  await waitFor(page, "#table-status");
  const native = await nativeReport;
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#table-download")]);
  const downloaded = readFileSync(await download.path(), "utf8");
  assert.equal(downloaded, readFileSync(nativeSmote, "utf8"));
  assert.ok(Math.abs(Number(await page.getAttribute("#table-report", "data-dcr-p5")) - native.dcr_p5) < 1e-12);
  assert.equal(Number(await page.getAttribute("#table-report", "data-copies")), native.copied_rows);
  const logistic = await page.textContent("#table-report tr[data-key=mle_logistic] td");
  assert.equal(logistic, `${native.mle.synthetic.logistic_regression.accuracy.toFixed(3)} / ${native.mle.real.logistic_regression.accuracy.toFixed(3)}`);
  assert.equal(await page.$$eval("#table-histograms .histogram", (blocks) => blocks.length), 5);
  await shot(page, "table-panel", "synthesise-a-table", { gallery: true });

  // The loaded model: every prompt is a row or a counted rejection, and its last reply is shown as text.
  await page.selectOption("#table-method", "model");
  await page.fill("#table-n", "1");
  await page.fill("#table-description", "iris flowers");
  await page.click("#table-start");
  await page.waitForSelector("#table-status[data-state=ready], #table-status[data-state=error]", { timeout: 600_000 });
  const outcome = await page.textContent("#table-status");
  const made = await page.$eval("#table-report tr[data-key=rows] td", (td) => td.textContent).catch(() => null);
  console.log(`# the model: ${outcome} ${made ?? ""}`);
  assert.ok(/^Done: 1 synthetic rows/.test(outcome) || /^No rows were made .*\(0 from 4 prompts, 4 rejected/.test(outcome), outcome);
  if (made !== null) assert.match(made, /^1 from [1-4] prompts, [0-3] rejected/);
  assert.ok((await page.textContent("#table-reply")).length > 0);
});

test("a prompt and model output holding markup are shown as text: no dialog, no injected element", { timeout: 600_000 }, async () => {
  const before = await page.$$eval("img", (images) => images.length);
  await page.fill("#inside-prompt", `${PAYLOAD} ${PAYLOAD}`);
  await page.click("#inside-form button");
  await waitFor(page, "#lens-grid");
  // The model continues the markup; its tokens are drawn as text.
  const header = await page.$$eval("#lens-grid th", (ths) => ths.map((th) => th.textContent).join(""));
  assert.ok(header.includes("<img"), header);
  assert.equal(await page.$$eval("img", (images) => images.length), before);
  assert.equal(await page.$$eval("img[src=x], [onerror]", (found) => found.length), 0);
  assert.deepEqual(dialogs, []);
});

test("the custom elements, with one import, give the CLI's heatmap answer and claim verdict", { timeout: 600_000 }, async () => {
  const widgets = await page.context().newPage();
  await widgets.addInitScript(() => {
    globalThis.glassboxResults = [];
    document.addEventListener("glassbox-result", (e) => globalThis.glassboxResults.push(e.detail), true);
  });
  await widgets.goto(`${site.origin}/elements.html`);
  const image = here("../../tests/fixtures/shapes-scene-2-3.png");
  const [mmproj, lm] = ["mmproj", "lm"].map((part) => here(`../../tests/fixtures/shapes-llava-${part}.gguf`));
  const prompt = await widgets.$eval("#heatmap", (e) => e.getAttribute("prompt").replaceAll("\\n", "\n"));
  const native = await cli(["heatmap", mmproj, lm, "--image", image, "--prompt", prompt, "--method", "lpi", "--json"]);
  await widgets.waitForFunction(() => globalThis.glassboxResults.length > 0, null, { timeout: 300_000 });
  const heatmap = await widgets.evaluate(() => {
    const r = globalThis.glassboxResults[0];
    return { token: r.target.token, cells: Array.from(r.heatmap.cells) };
  });
  assert.equal(heatmap.token, native.target.token);
  assert.ok(Math.max(...heatmap.cells.map((v, i) => Math.abs(v - native.heatmap.cells[i]))) <= 1e-4);
  assert.equal(await widgets.locator("#heatmap [part=answer]").textContent(), `${native.target.token.trim()} (p = ${native.target.prob.toFixed(3)})`);

  const row = JSON.parse(readFileSync(here("../../tests/data/fmd_claims.jsonl"), "utf8").split("\n")[1]);
  const nativeVerdict = classifyNatively("fmd", { id: row.id, claim: row.claim, context: row.context }, []);
  await widgets.locator("#claim textarea[aria-label=claim]").fill(row.claim);
  await widgets.locator("#claim textarea[aria-label=context]").fill(row.context);
  await widgets.locator("#claim button").click();
  await widgets.waitForFunction(() => globalThis.glassboxResults.length > 1, null, { timeout: 300_000 });
  const claim = await widgets.evaluate(() => globalThis.glassboxResults[1]);
  const verdict = await nativeVerdict;
  assert.equal(claim.label, verdict.label);
  assert.equal(await widgets.locator("#claim [part=verdict]").textContent(), verdict.label);
  for (const [label, p] of Object.entries(verdict.probs)) assert.ok(Math.abs(Math.log(claim.probs[label]) - Math.log(p)) <= TOLERANCE);
  await widgets.screenshot({ path: join(ARTIFACTS, "widgets.png"), fullPage: true });
  await widgets.close();
});

test("the whole session requested only this origin's assets and the models it chose", () => {
  const chosen = new Set([MODEL, REFERENCE_MODEL, "fixtures/shapes-llava-mmproj.gguf", "fixtures/shapes-llava-lm.gguf", "fixtures/shapes-scene-2-3.png", "models/lexicons/vader_lexicon.txt", "models/lexicons/emoji_utf8_lexicon.txt", "models/lexicons/empath_categories.tsv"]);
  // The service worker keeps the shell's files: the page, its scripts, the engine, the manifest and icon.
  const assets = /^(|index\.html|elements\.html|main\.js|index\.js|elements\.js|chunk-\w+\.js|style\.css|worker(-threads)?\.js|kernel-worker\.js|glassbox(-threads)?(_bg\.wasm|\.js)|sw\.js|manifest\.webmanifest|icon\.svg|snippets\/[\w-]+\/inline\d+\.js|\?.*)$/;
  const seen = new Set();
  for (const url of requests) {
    if (url.startsWith("blob:") || url.startsWith("data:")) continue;
    assert.ok(url.startsWith(site.origin + "/"), `a request left the origin: ${url}`);
    const path = url.slice(site.origin.length + 1);
    assert.ok(chosen.has(path) || assets.test(path), `an unexpected request: ${url}`);
    seen.add(path);
  }
  const engine = ["worker.js", "glassbox_bg.wasm"].every((f) => seen.has(f)) || ["worker-threads.js", "glassbox-threads_bg.wasm"].every((f) => seen.has(f));
  assert.ok(seen.has(MODEL) && engine, [...seen].join(", "));
  console.log(`# ${requests.length} requests, all same-origin: ${[...seen].sort().join(", ")}`);
});
