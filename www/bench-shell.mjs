// The shell's timings as a user meets them, on the build `make demo` serves: page load to model
// ready from the network and then from the cache, the first token (Look inside's next-token
// table), Look inside with all three views and the graph, a claim check with its explanation and
// evidence, and an LPI patch heatmap on the LLaVA fixture. Prints one JSON object.
// Usage: node bench-shell.mjs ORIGIN cpu|webgpu MODEL_PATH
import { readFileSync } from "node:fs";
import { launchChromium } from "./chromium.mjs";

const [origin, backend, modelPath] = process.argv.slice(2);
const LONG = Number(process.env.BENCH_SHELL_TIMEOUT_MS ?? 1_800_000);
const claimRow = JSON.parse(readFileSync(new URL("../tests/data/fmd_claims.jsonl", import.meta.url), "utf8").split("\n")[0]);

/** Waits until `selector` is drawn (`data-state` ready); an error state fails the run with the page's words. */
async function drawn(page, selector) {
  await page.waitForSelector(`${selector}[data-state=ready], ${selector}[data-state=error]`, { state: "attached", timeout: LONG });
  if ((await page.getAttribute(selector, "data-state")) === "error") {
    const said = await page.$$eval("[role=status][data-state=error]", (nodes) => nodes.map((n) => n.textContent).join(" | "));
    throw new Error(`${selector} failed: ${said}`);
  }
}

/** Seconds from `start` (performance.now() in this process). */
const since = (start) => (performance.now() - start) / 1000;

const { context, close } = await launchChromium([], { webgpu: backend === "webgpu" });
/** The step under way, named in the error when one fails. */
let step = "opening the page";
/** The timings taken so far: a failure reports them with its error. */
const result = { backend };
try {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[pageerror] ${e.message}`));
  await page.setViewportSize({ width: 1440, height: 900 });
  const url = `${origin}/?backend=${backend}&model=${encodeURIComponent(modelPath)}`;

  step = "loading from the network";
  // From the network: a fresh profile; the copy the page offers to keep is kept.
  let start = performance.now();
  await page.goto(url);
  await page.click("#cache-yes", { timeout: LONG });
  await drawn(page, "#model-card");
  result.load_network_s = since(start);
  result.device = (await page.textContent("#backend-badge")) ?? "";
  result.device_detail = await page.getAttribute("#backend-badge", "title");
  await page.waitForSelector("#cache-list tbody tr", { state: "attached", timeout: LONG });

  step = "loading from the cache";
  // From the cache: the page again, its shell from the service worker and the model from the
  // package's cache.
  start = performance.now();
  await page.goto(url);
  await drawn(page, "#model-card");
  result.load_cache_s = since(start);

  step = "Look inside";
  await page.click('nav a[href="#inside-panel"]');
  await page.fill("#inside-prompt", "The capital of France is");
  start = performance.now();
  await page.click("#inside-form button[type=submit]");
  await drawn(page, "#next-tokens");
  result.first_token_s = since(start);
  await drawn(page, "#head-grid");
  await drawn(page, "#attribution-graph");
  result.look_inside_s = since(start);

  step = "the claim check";
  await page.click('nav a[href="#claim-panel"]');
  await page.selectOption("#claim-task", "fmd");
  await page.fill("#claim-text", claimRow.claim);
  await page.fill("#claim-context", claimRow.context);
  await page.check("#claim-explain");
  await page.check("#claim-evidence");
  await page.uncheck("#claim-affect");
  start = performance.now();
  await page.click("#claim-form button[type=submit]");
  await drawn(page, "#claim-verdict");
  result.claim_check_s = since(start);
  result.explanation_words = (await page.textContent("#claim-explanation")).trim().split(/\s+/).filter(Boolean).length;

  step = "the heatmap";
  await page.click('nav a[href="#image-panel"]');
  start = performance.now();
  await page.click("#vision-form button[type=submit]");
  await page.waitForSelector("#image-status[data-state=ready]", { timeout: LONG });
  result.vision_load_s = since(start);
  await page.fill("#scene-index", "5");
  await page.click("#draw-scene");
  await page.waitForFunction(() => document.querySelector("#image-prompt").value !== "", null, { timeout: LONG });
  await page.check("input[name=method][value=lpi]");
  start = performance.now();
  await page.click("#question-form button[type=submit]");
  await page.waitForSelector("#heatmap-overlay[data-method=lpi][data-state=ready]", { timeout: LONG });
  result.heatmap_s = since(start);
  console.log(JSON.stringify(result));
} catch (e) {
  console.log(JSON.stringify({ ...result, error: `${step}: ${String(e)}` }));
} finally {
  await close();
}
