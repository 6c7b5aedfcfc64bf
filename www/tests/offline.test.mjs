// Offline and installable: after one visit the shell and the engine open from the service
// worker's cache with the network off, and a kept model runs a prompt. The page's manifest names
// an icon it serves.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { launchChromium } from "../chromium.mjs";
import { serveBuiltSite } from "./built-site.mjs";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
// The tiny model with SmolLM2's vocabulary: what is checked does not depend on the model's size.
const MODEL = "fixtures/smollm2-vocab-tiny-q8_0.gguf";
const PROMPT = "The capital of France is";

const site = serveBuiltSite();

test("after one visit the shell opens and runs a kept model with the network off", { timeout: 600_000 }, async () => {
  const native = promisify(execFile)(here("../../target/debug/glassbox"), [
    "--backend", "cpu", "logits", here("../../tests/" + MODEL), "--prompt", PROMPT, "--top-k", "1", "--json",
  ], { encoding: "utf8" });
  const { context, close } = await launchChromium([], { webgpu: false });
  try {
    const requests = [];
    context.on("request", (r) => requests.push(r.url()));
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${site.origin}/?model=${MODEL}&backend=cpu`);
    // The worker has cached the shell once it is active; the next navigation goes through it.
    await page.evaluate(() => navigator.serviceWorker.ready);
    await page.waitForSelector("#cache-question:not([hidden])", { timeout: 120_000 });
    await page.click("#cache-yes");
    await page.waitForSelector("#model-card[data-state=ready]", { timeout: 120_000 });
    await page.click("#cache-panel summary");
    await page.waitForFunction(() => document.querySelectorAll("#cache-list tbody tr").length === 1, null, { timeout: 60_000 });

    const manifest = await page.evaluate(async () => {
      const link = document.querySelector("link[rel=manifest]");
      const body = await (await fetch(link.href)).json();
      const icon = await fetch(new URL(body.icons[0].src, link.href));
      return { name: body.name, display: body.display, start: body.start_url, icon: icon.ok && icon.headers.get("content-type") };
    });
    assert.deepEqual(manifest, { name: "glassbox", display: "standalone", start: "./", icon: "image/svg+xml" });

    await context.setOffline(true);
    const before = requests.length;
    const fromNetwork = [];
    page.on("response", (r) => r.fromServiceWorker() || r.url().startsWith("blob:") || fromNetwork.push(r.url()));
    await page.reload();
    await page.waitForSelector("#model-card[data-state=ready]", { timeout: 120_000 });
    // Served from the cache with its headers, the page is still cross-origin isolated (threads).
    assert.equal(await page.evaluate(() => crossOriginIsolated), true);
    assert.equal(await page.getAttribute("#backend-badge", "data-state"), "cpu");
    await page.fill("#inside-prompt", PROMPT);
    await page.click("#inside-form button");
    await page.waitForSelector("#next-tokens tr", { timeout: 120_000 });
    const shown = await page.$eval("#next-tokens tr", (row) => Number(row.dataset.id));
    assert.equal(shown, JSON.parse((await native).stdout).top[0].id);
    // Offline, every request the page made was answered inside the browser: by the service worker.
    for (const url of requests.slice(before)) assert.ok(url.startsWith(site.origin + "/"), `a request to ${url}`);
    assert.deepEqual(fromNetwork, []);
    assert.deepEqual(errors, []);
  } finally {
    await close();
  }
});
