// Debian's Chromium, headless, driven by playwright-core: shared by the browser tests and the
// benchmark. A fresh profile each time; no background networking.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const FLAGS = [
  "--no-sandbox",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--enable-unsafe-webgpu",
];

/**
 * Returns a browser context and a `close()` that also deletes its profile; `extraFlags` are
 * added. `{ webgpu: false }` leaves out `--enable-unsafe-webgpu`, without which this Chromium
 * offers no WebGPU adapter, to pages or workers.
 */
export async function launchChromium(extraFlags = [], { webgpu = true } = {}) {
  const profile = await mkdtemp(join(tmpdir(), "glassbox-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [...FLAGS.filter((f) => webgpu || f !== "--enable-unsafe-webgpu"), ...extraFlags],
  });
  const close = async () => {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  };
  return { context, close };
}
