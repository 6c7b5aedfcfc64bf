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
