// The package's `record` in Chromium against the native CLI's `glassbox record` for the same
// request: the same hooks, shapes and positions, values within the wasm/native drift, typed
// refusals that leave the worker working, and activations handed over from the worker uncopied.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadPackageOnCpu, serveBuiltSite } from "./built-site.mjs";
import { readSafetensors } from "./safetensors.mjs";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const MODEL_PATH = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
const PROMPT = "The capital of France is";
const HOOKS = "blocks.*.hook_resid_post,blocks.3.attn.hook_pattern,blocks.3.attn.hook_z";
const POSITIONS = [0, 4];
// wasm and native CPU round a few candle operations differently (browser.test.mjs says which),
// and a one-ulp difference can flip an 8-bit activation rounding and grow through 30 layers.
// Measured 2026-12-03: max |Δ| 1.2e-7, in blocks.3.attn.hook_z (hook_pattern 3.0e-8, from exp);
// every hook_resid_post came out the same bits, the ulps lost in the 8-bit rounding of the
// attention output. A flip reaching the residual stream (values up to 2.3e4 here) would show
// far above this bound.
const WASM_NATIVE_TOLERANCE = 1e-5;

const site = serveBuiltSite({ sharedBrowser: true });

/** The CLI's recording of `HOOKS` at `POSITIONS` over `PROMPT`, on the CPU. */
function nativeRecording() {
  const work = mkdtempSync(join(tmpdir(), "glassbox-record-"));
  try {
    const output = join(work, "recording.safetensors");
    execFileSync(here("../../target/debug/glassbox"), [
      "--backend", "cpu", "record", here("../../" + MODEL_PATH),
      "--prompt", PROMPT, "--hooks", HOOKS, "--positions", POSITIONS.join(","), "--output", output,
    ], { stdio: ["ignore", "ignore", "pipe"] });
    return readSafetensors(readFileSync(output));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

test("record in the browser gives the CLI's hooks, shapes, positions and values; refusals are InputErrors; arrays are transferred", { timeout: 600_000 }, async (t) => {
  const native = nativeRecording();

  const { page, errors, worker, card } = await loadPackageOnCpu(site, t, "/" + MODEL_PATH);
  const tokens = await page.evaluate((prompt) => gb.tokenize(prompt).then((ids) => ids.length), PROMPT);
  assert.equal(card.backend, "cpu");

  // A transferred buffer is detached in the sender once posted; a copied one stays whole. Only
  // the worker sees its side of the message, so the check wraps the worker's own postMessage.
  await worker.evaluate(() => {
    const post = self.postMessage.bind(self);
    globalThis.recordingsPosted = [];
    self.postMessage = (reply, transfer) => {
      post(reply, transfer);
      const value = reply.kind === "value" && typeof reply.value === "object" && reply.value !== null ? reply.value : {};
      const arrays = Object.values(value).map((entry) => entry?.data).filter((data) => data instanceof Float32Array);
      if (arrays.length > 0) recordingsPosted.push({ arrays: arrays.length, detached: arrays.filter((data) => data.buffer.detached).length });
    };
  });

  const seen = await page.evaluate(async ({ prompt, hooks, positions }) => {
    const outcome = (promise) => promise.then(() => "resolved", (e) => `${e.name}: ${e.message}`);
    const recording = await gb.record(prompt, { hooks, positions });
    const recorded = Object.fromEntries(Object.entries(recording).map(([name, { shape, positions, data }]) => [name, {
      shape,
      positions,
      isFloat32Array: data instanceof Float32Array,
      // A copy would own its buffer too: this shows no larger buffer came along, the worker's
      // detached buffers show the transfer.
      ownsWholeBuffer: data.byteOffset === 0 && data.buffer.byteLength === data.byteLength,
      data: Array.from(data),
    }]));
    const unknownHook = await outcome(gb.record(prompt, { hooks: "blocks.3.hook_nonsense" }));
    const pastMaxBytes = await outcome(gb.record(prompt, { hooks, positions, maxBytes: 1000 }));
    const afterRefusals = await gb.record(prompt, { hooks: "blocks.29.hook_resid_post", positions: "last" });
    return {
      recorded,
      unknownHook,
      pastMaxBytes,
      afterRefusals: Object.fromEntries(Object.entries(afterRefusals).map(([name, a]) => [name, { ...a, data: Array.from(a.data) }])),
    };
  }, { prompt: PROMPT, hooks: HOOKS, positions: POSITIONS });

  const { layers, heads, embedding_size: width } = card;
  const expectedShapes = {
    ...Object.fromEntries(Array.from({ length: layers }, (_, l) => [`blocks.${l}.hook_resid_post`, [POSITIONS.length, width]])),
    "blocks.3.attn.hook_pattern": [heads, POSITIONS.length, tokens],
    "blocks.3.attn.hook_z": [POSITIONS.length, heads, width / heads],
  };
  const names = Object.keys(expectedShapes).sort();
  assert.deepEqual(Object.keys(native.tensors).sort(), names);
  assert.deepEqual(Object.keys(seen.recorded).sort(), names);

  let worst = { difference: 0, at: "" };
  for (const name of names) {
    const [ours, theirs] = [seen.recorded[name], native.tensors[name]];
    assert.deepEqual(ours.shape, expectedShapes[name], name);
    assert.deepEqual(theirs.shape, expectedShapes[name], name);
    assert.deepEqual(ours.positions, POSITIONS, name);
    assert.equal(native.metadata[`positions.${name}`], POSITIONS.join(","), name);
    assert.ok(ours.isFloat32Array, `${name} arrives as a Float32Array`);
    assert.ok(ours.ownsWholeBuffer, `${name}'s data is a view into a larger buffer`);
    assert.equal(ours.data.length, theirs.data.length, name);
    ours.data.forEach((value, i) => {
      // Written so that a NaN on either side counts as the worst difference.
      const difference = Math.abs(value - theirs.data[i]);
      if (!(difference <= worst.difference)) worst = { difference, at: `${name}[${i}]` };
    });
  }
  console.log(`# wasm vs native record: max |Δ| = ${worst.difference.toExponential(2)} at ${worst.at}`);
  assert.ok(worst.difference <= WASM_NATIVE_TOLERANCE, `wasm activations drift ${worst.difference} from native at ${worst.at}`);

  assert.match(seen.unknownHook, /^InputError: no hook is named "blocks\.3\.hook_nonsense"/);
  const nativeBytes = Object.values(native.tensors).reduce((sum, { data }) => sum + data.byteLength, 0);
  assert.equal(seen.pastMaxBytes, `InputError: ${names.length} hooks over ${tokens} tokens would record ${nativeBytes} bytes, past the limit of 1000`);

  // The same forward pass as the first call's, so the last position's residual is the same bits.
  const last = seen.afterRefusals["blocks.29.hook_resid_post"];
  assert.deepEqual(Object.keys(seen.afterRefusals), ["blocks.29.hook_resid_post"]);
  assert.deepEqual(last.shape, [1, width]);
  assert.deepEqual(last.positions, [POSITIONS.at(-1)], "the last position asked for is the prompt's last token");
  assert.deepEqual(last.data, seen.recorded["blocks.29.hook_resid_post"].data.slice(width));

  assert.deepEqual(await worker.evaluate(() => recordingsPosted), [
    { arrays: names.length, detached: names.length },
    { arrays: 1, detached: 1 },
  ]);
  assert.deepEqual(errors, []);
});

test("patch, recordSafetensors and probe in the browser: bad requests are typed errors that leave the worker working, progress counts every pass, and a stop ends the run", { timeout: 600_000 }, async (t) => {
  // What is checked here is the same on any model: the tiny one with SmolLM2's vocabulary (2 layers
  // of 2 heads) makes each pass take milliseconds.
  const { page, errors, card } = await loadPackageOnCpu(site, t, "/fixtures/smollm2-vocab-tiny-q8_0.gguf");
  const seen = await page.evaluate(async (prompt) => {
    const outcome = (promise) => promise.then(() => "resolved", (e) => `${e.name}: ${e.message}`);
    const unequal = await outcome(gb.patch(prompt, "The capital of the country France is", " Paris", " Rome"));
    const longAnswer = await outcome(gb.patch(prompt, "The capital of Italy is", " Paris is", " Rome"));
    const badSite = await outcome(gb.patch(prompt, "The capital of Italy is", " Paris", " Rome", { site: "hook_z" }));
    const badFormat = await outcome(gb.recordSafetensors(prompt, { hooks: "blocks.0.hook_nonsense" }));
    const notAProbe = await outcome(gb.probe(new Uint8Array([1, 2, 3]), { text: prompt }));
    const progress = [];
    const grid = await gb.patch(prompt, "The capital of Italy is", " Paris", " Rome", { site: "head", onProgress: (done, total) => progress.push([done, total]) });
    const controller = new AbortController();
    const stopped = await outcome(gb.patch(prompt, "The capital of Italy is", " Paris", " Rome", {
      signal: controller.signal,
      onProgress: (done) => done >= 4 && controller.abort(),
    }));
    const file = await gb.recordSafetensors(prompt, { hooks: "blocks.0.hook_resid_post", positions: "last" });
    return { unequal, longAnswer, badSite, badFormat, notAProbe, progress, layers: grid.grid.length, width: grid.grid[0].length, site: grid.site, columns: grid.columns, stopped, fileBytes: Array.from(file) };
  }, PROMPT);
  assert.match(seen.unequal, /^InterpError: invalid request: the clean prompt is 5 tokens and the corrupted one 7/);
  assert.match(seen.longAnswer, /^TokenizerError: the answer: /);
  assert.match(seen.badSite, /^InputError: site "hook_z"/);
  assert.match(seen.badFormat, /^InputError: no hook is named/);
  assert.match(seen.notAProbe, /^InputError: invalid request: a probe file: not a safetensors file/);
  // The clean and corrupted runs, then one pass per layer and head, each reported.
  const total = 2 + seen.layers * seen.width;
  assert.equal(seen.site, "head");
  assert.equal(seen.columns, "heads");
  assert.equal(seen.layers, card.layers);
  assert.equal(seen.width, card.heads);
  assert.deepEqual(seen.progress, Array.from({ length: total - 1 }, (_, i) => [i + 2, total]));
  // The page is cross-origin isolated, so the worker sees the abort at the next pass.
  assert.match(seen.stopped, /^InterpError: stopped before the end/);
  const { tensors } = readSafetensors(seen.fileBytes);
  assert.deepEqual(Object.keys(tensors), ["blocks.0.hook_resid_post"]);
  assert.equal(tensors["blocks.0.hook_resid_post"].shape[0], 1);
  assert.deepEqual(errors, []);
});
