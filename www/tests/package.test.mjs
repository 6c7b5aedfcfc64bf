// The npm package as a user gets it: `npm pack`, installed into a fresh copy of tests/consumer,
// type-checked with `tsc --strict` against the consumer's code, bundled with esbuild, and run in
// Chromium. Its top next token must be the native CLI's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { launchChromium } from "../chromium.mjs";
import { startServer } from "../serve.mjs";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const PROMPT = "The capital of France is";

test("the packed npm package installs, type-checks, bundles and runs in Chromium, agreeing with the CLI", { timeout: 600_000 }, async () => {
  const work = mkdtempSync(join(tmpdir(), "glassbox-package-"));
  try {
    const [packed] = JSON.parse(execFileSync("npm", ["pack", "--json", "--pack-destination", work], { cwd: here("../../pkg"), encoding: "utf8" }));
    const shipped = packed.files.map((f) => f.path);
    const served = ["worker.js", "worker-threads.js", "kernel-worker.js", "glassbox_bg.wasm", "glassbox-threads_bg.wasm"];
    for (const file of ["index.js", "index.d.ts", "elements.js", ...served, "README.md"]) assert.ok(shipped.includes(file), `the tarball lacks ${file}`);
    assert.ok(!shipped.some((f) => f.startsWith("src/")), "the tarball ships the TypeScript sources");

    const consumer = join(work, "consumer");
    cpSync(here("../../tests/consumer"), consumer, { recursive: true });
    // A local tarball without dependencies installs with no registry.
    execFileSync("npm", ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", join(work, packed.filename)], { cwd: consumer, stdio: "pipe" });
    execFileSync(here("../node_modules/.bin/tsc"), ["-p", join(consumer, "tsconfig.json")], { stdio: "pipe" });

    // esbuild leaves `new URL("./worker.js", import.meta.url)` alone: the workers and the wasm go
    // beside the bundle, as pkg/README.md tells esbuild users. The page is cross-origin isolated
    // and Chromium has two cores here, so the build with threads runs.
    const dist = join(consumer, "dist");
    mkdirSync(dist);
    await esbuild.build({ entryPoints: [join(consumer, "src/main.ts")], bundle: true, format: "esm", outfile: join(dist, "main.js"), absWorkingDir: consumer, logLevel: "warning" });
    cpSync(join(consumer, "index.html"), join(dist, "index.html"));
    for (const file of served) cpSync(join(consumer, "node_modules/glassbox", file), join(dist, file));

    const server = await startServer({ port: 0, root: dist, models: here("../../models"), fixtures: here("../../tests/fixtures") });
    const origin = `http://127.0.0.1:${server.address().port}`;
    const { context, close } = await launchChromium();
    const requests = [];
    context.on("request", (r) => requests.push(r.url()));
    try {
      const page = await context.newPage();
      await page.goto(origin + "/");
      await page.waitForSelector("#result[data-state]", { timeout: 500_000 });
      const text = await page.textContent("#result");
      assert.equal(await page.getAttribute("#result", "data-state"), "ready", text);
      const result = JSON.parse(text);
      const native = JSON.parse(execFileSync(here("../../target/debug/glassbox"), [
        "--backend", "cpu", "logits", here("../../models/SmolLM2-135M-Instruct.Q4_1.gguf"), "--prompt", PROMPT, "--top-k", "3", "--json",
      ], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })).top;
      console.log(`# the consumer's top token: ${JSON.stringify(result.top[0].token)}, the CLI's: ${JSON.stringify(native[0].token)}`);
      assert.equal(result.top[0].id, native[0].id);
      assert.equal(result.top[0].token, native[0].token);
      assert.equal(result.layers, 30);
      assert.deepEqual(result.residShape, [1, 576]);
      assert.equal(result.backend, "cpu");
      assert.deepEqual(result.phases.sort(), ["download", "load"]);
      assert.equal(result.typedError, "InterpError");
      for (const url of requests) assert.ok(url.startsWith(origin + "/") || url.startsWith("data:"), `unexpected request to ${url}`);
    } finally {
      await close();
      server.close();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
