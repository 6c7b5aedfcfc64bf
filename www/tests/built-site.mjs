// The setup the browser tests share: the built site served on a free port, and Chromium.
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";
import { launchChromium } from "../chromium.mjs";
import { startServer } from "../serve.mjs";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));

/**
 * Registers the calling file's `before` and `after` hooks that serve www/dist, the downloaded
 * models and the test fixtures on 127.0.0.1 and, with `sharedBrowser`, launch one Chromium for
 * all its tests. Files whose tests each need an empty profile launch their own instead.
 *
 * @returns {{ origin: string, browser: import("playwright-core").BrowserContext | undefined }}
 *   filled in once the `before` hook has run, so read inside tests and hooks only.
 */
export function serveBuiltSite({ sharedBrowser = false } = {}) {
  const site = { origin: "", browser: undefined };
  let server;
  let closeBrowser;
  before(async () => {
    server = await startServer({ port: 0, root: here("../dist"), models: here("../../models"), fixtures: here("../../tests/fixtures") });
    site.origin = `http://127.0.0.1:${server.address().port}`;
    if (sharedBrowser) ({ context: site.browser, close: closeBrowser } = await launchChromium());
  });
  after(async () => {
    await closeBrowser?.();
    server?.close();
  });
  return site;
}

/** Whether a worker's script is the package's engine worker: worker.js, or worker-threads.js where the kernels have threads. */
export function isEngineWorker(url) {
  return /\/worker(-threads)?\.js$/.test(url);
}

/**
 * A page of the site with no model of the shell's own, holding `globalThis.gb`: `modelPath`
 * loaded through the package on the CPU. Returns the page (closed after test `t`), the page
 * errors seen so far, the package's worker, and the model's `info()` with its `backend`.
 */
export async function loadPackageOnCpu(site, t, modelPath) {
  const page = await site.browser.newPage();
  t.after(() => page.close());
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const packageWorker = page.waitForEvent("worker", { predicate: (w) => isEngineWorker(w.url()) });
  // A page with no model, so the shell starts no worker of its own.
  await page.goto(`${site.origin}/?model=`);
  const card = await page.evaluate(async (modelPath) => {
    const { Glassbox } = await import("/index.js");
    globalThis.gb = await Glassbox.load(modelPath, { backend: "cpu", cache: "never" });
    return { ...gb.info(), backend: gb.backend };
  }, modelPath);
  return { page, errors, worker: await packageWorker, card };
}
