// Hostile inputs in Debian's Chromium: a model cache left incomplete by a write cut short, a
// signed URL's token, a page framing the shell, and messages the worker's page never sent. Each
// test has a fresh profile, so its cache starts empty.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { launchChromium } from "../chromium.mjs";
import { serveBuiltSite } from "./built-site.mjs";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
/** A small model the engine loads in about a second. */
const MODEL = "fixtures/smollm2-vocab-tiny-q8_0.gguf";
const MODEL_BYTES = readFileSync(here(`../../tests/${MODEL}`)).length;
const SECRET = "SECRET-TOKEN";
const MARKUP = "<img src=x onerror=alert(1)>";

const site = serveBuiltSite();

/**
 * The shell at `query` in a fresh Chromium, once its own first look at the cache is done, with
 * the page's requests and Content-Security-Policy violations recorded.
 */
async function openShell(t, query) {
  const { context, close } = await launchChromium([], { webgpu: false });
  t.after(close);
  const page = await context.newPage();
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  await page.addInitScript(() => {
    globalThis.violations = [];
    document.addEventListener("securitypolicyviolation", (e) => globalThis.violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(`${site.origin}/${query}`);
  await page.waitForSelector("#cache-status[data-state=ready]", { state: "attached" });
  return { page, requests };
}

/** Runs in the page: the helpers a test needs to reach into the cache's storage, as a crashed tab would leave it. */
const STORAGE_HELPERS = `
  globalThis.entryKey = async (url) => Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(url))), (b) => b.toString(16).padStart(2, "0")).join("");
  globalThis.cacheDirectory = async () => (await navigator.storage.getDirectory()).getDirectoryHandle("glassbox-models", { create: true });
  globalThis.storedNames = async () => {
    const names = [];
    for await (const [name] of await cacheDirectory()) if (name !== ".probe") names.push(name);
    return names.sort();
  };
  globalThis.writeStored = async (name, blob) => {
    const writable = await (await (await cacheDirectory()).getFileHandle(name, { create: true })).createWritable();
    await writable.write(blob);
    await writable.close();
  };
  globalThis.truncateStored = async (name, size) => {
    const writable = await (await (await cacheDirectory()).getFileHandle(name)).createWritable({ keepExistingData: true });
    await writable.truncate(size);
    await writable.close();
  };
`;

test("a cache entry whose write was cut short is a miss: the model is fetched afresh, loads, and is stored whole", { timeout: 120_000 }, async (t) => {
  const { page, requests } = await openShell(t, "?model=");
  const url = `${site.origin}/${MODEL}`;
  const cuts = ["short", "empty", "truncated"];
  await page.evaluate(STORAGE_HELPERS);
  await page.evaluate(async (url) => {
    const { Glassbox } = await import("/index.js");
    const model = await (await fetch(url)).blob();
    // A tab closed mid-write leaves the file's first bytes and no record of the write's end;
    // one closed before its first byte leaves an empty file.
    await writeStored(await entryKey(`${url}?cut=short`), model.slice(0, 1 << 20));
    await writeStored(await entryKey(`${url}?cut=empty`), new Blob([]));
    // A whole entry whose file later lost its end.
    await Glassbox.cache.put(`${url}?cut=truncated`, model);
    await truncateStored(await entryKey(`${url}?cut=truncated`), 1 << 20);
  }, url);
  const fetched = (cut) => requests.filter((r) => r === `${url}?cut=${cut}`).length;

  const load = () =>
    page.evaluate(async ({ url, cuts }) => {
      const { Glassbox } = await import("/index.js");
      const loaded = [];
      for (const cut of cuts) {
        const gb = await Glassbox.load(`${url}?cut=${cut}`, { backend: "cpu", cache: "always" });
        loaded.push({ fileSize: gb.info().file_size, tokens: (await gb.tokenize("Hello")).length });
        gb.dispose();
      }
      return { loaded, listed: await Glassbox.cache.list() };
    }, { url, cuts });

  const first = await load();
  for (const { fileSize, tokens } of first.loaded) {
    assert.equal(fileSize, MODEL_BYTES, "the engine got the whole file");
    assert.ok(tokens > 0);
  }
  assert.deepEqual(cuts.map(fetched), [1, 1, 1], "each incomplete entry was a miss, so the model was downloaded");
  assert.deepEqual(first.listed.map((e) => [e.name, e.bytes]), cuts.map(() => [url, MODEL_BYTES]));

  const second = await load();
  assert.deepEqual(second.loaded, first.loaded);
  assert.deepEqual(cuts.map(fetched), [1, 1, 1], "the healed entries load without a download");
});

test("an incomplete cache entry is not listed and is removed on sight, unless a write holds it", { timeout: 60_000 }, async (t) => {
  const { page } = await openShell(t, "?model=");
  await page.evaluate(STORAGE_HELPERS);
  const seen = await page.evaluate(async (url) => {
    const { Glassbox } = await import("/index.js");
    const key = await entryKey(url);
    await writeStored(key, new Blob([new Uint8Array(4096)]));
    // A writer in another tab holds the entry's lock until its record is written.
    let release;
    const held = new Promise((resolve) => {
      void navigator.locks.request(`glassbox-models/${key}`, () => {
        resolve();
        return new Promise((done) => (release = done));
      });
    });
    await held;
    const whileWritten = { listed: await Glassbox.cache.list(), stored: await storedNames() };
    release();
    const afterwards = { listed: await Glassbox.cache.list(), stored: await storedNames() };
    return { key, whileWritten, afterwards };
  }, `${site.origin}/${MODEL}`);
  assert.deepEqual(seen.whileWritten, { listed: [], stored: [seen.key] }, "a file being written is neither listed nor removed");
  assert.deepEqual(seen.afterwards, { listed: [], stored: [] }, "an abandoned file is removed when the list finds it");
});

test("the cache keeps URLs differing only in their query apart, and shows neither's query or fragment", { timeout: 120_000 }, async (t) => {
  const { page } = await openShell(t, "?model=");
  await page.evaluate(STORAGE_HELPERS);
  const url = `${site.origin}/${MODEL}`;
  const signedA = `${url}?X-Amz-Signature=${SECRET}-A#${SECRET}-F`;
  const signedB = `${url}?X-Amz-Signature=${SECRET}-B`;
  const seen = await page.evaluate(async ({ signedA, signedB }) => {
    const { Glassbox } = await import("/index.js");
    await Glassbox.cache.put(signedA, new Blob(["first"]));
    await Glassbox.cache.put(signedB, new Blob(["second!"]));
    const listed = await Glassbox.cache.list();
    const sizes = [(await Glassbox.cache.get(signedA))?.size, (await Glassbox.cache.get(signedB))?.size];
    const onDisk = [];
    for (const name of await storedNames()) onDisk.push(name, await (await (await (await cacheDirectory()).getFileHandle(name)).getFile()).text());
    await Glassbox.cache.delete(signedA);
    const afterUrlDelete = { listed: await Glassbox.cache.list(), a: await Glassbox.cache.get(signedA), b: (await Glassbox.cache.get(signedB))?.size };
    await Glassbox.cache.delete(afterUrlDelete.listed[0].key);
    return { listed, sizes, onDisk, afterUrlDelete, afterKeyDelete: await Glassbox.cache.list() };
  }, { signedA, signedB });
  assert.deepEqual(seen.listed.map((e) => [e.name, e.bytes].join(" ")).sort(), [`${url} 5`, `${url} 7`]);
  assert.equal(new Set(seen.listed.map((e) => e.key)).size, 2);
  for (const { key } of seen.listed) assert.match(key, /^[0-9a-f]{64}$/);
  assert.deepEqual(seen.sizes, [5, 7]);
  assert.ok(!JSON.stringify([seen.listed, seen.onDisk]).includes(SECRET), JSON.stringify(seen.onDisk));
  assert.deepEqual(seen.afterUrlDelete.listed.map((e) => e.bytes), [7]);
  assert.deepEqual([seen.afterUrlDelete.a, seen.afterUrlDelete.b], [null, 7]);
  assert.deepEqual(seen.afterKeyDelete, []);
});

test("the shell shows a signed model URL without its token, in its status, question and cache list", { timeout: 120_000 }, async (t) => {
  const signed = `${MODEL}?X-Amz-Signature=${SECRET}`;
  const { page } = await openShell(t, `?backend=cpu&model=${encodeURIComponent(signed)}`);
  await page.waitForSelector("#load-status[data-state=ready]", { timeout: 60_000 });
  await page.waitForSelector("#cache-question", { state: "visible" });
  const question = await page.textContent("#cache-question-text");
  await page.click("#cache-yes");
  await page.click("#cache-panel summary");
  await page.waitForSelector("#cache-list tbody tr");
  assert.equal(await page.textContent("#load-status"), `Loaded ${site.origin}/${MODEL}`);
  assert.match(question, new RegExp(`^Keep a copy of ${site.origin}/${MODEL} \\(`));
  assert.equal(await page.textContent("#cache-list tbody td"), `${site.origin}/${MODEL}`);
  assert.ok(!(await page.evaluate(() => document.body.textContent)).includes(SECRET));
});

test("every response carries a Content-Security-Policy that forbids framing, and the shell runs a model under it", { timeout: 120_000 }, async (t) => {
  for (const path of ["/", "/index.html", "/worker.js", "/worker-threads.js", "/kernel-worker.js", "/glassbox_bg.wasm", "/glassbox-threads_bg.wasm", `/${MODEL}`, "/no-such-file"]) {
    const response = await fetch(site.origin + path);
    await response.arrayBuffer();
    const header = response.headers.get("content-security-policy");
    assert.ok(header !== null, `${path} has no Content-Security-Policy`);
    const policy = new Map(header.split(";").map((d) => d.trim().split(/\s+/)).map(([name, ...sources]) => [name, sources]));
    assert.deepEqual(policy.get("frame-ancestors"), ["'none'"], path);
    assert.deepEqual(policy.get("default-src"), ["'self'"], path);
    assert.ok(policy.get("script-src")?.includes("'wasm-unsafe-eval'"), path);
    assert.deepEqual(policy.get("worker-src"), ["'self'"], path);
  }

  const { page } = await openShell(t, `?backend=cpu&model=${MODEL}`);
  await page.waitForSelector("#load-status[data-state=ready], #load-status[data-state=error]", { timeout: 60_000 });
  assert.equal(await page.getAttribute("#load-status", "data-state"), "ready", await page.textContent("#load-status"));
  assert.deepEqual(await page.evaluate(() => globalThis.violations), []);

  // A page of another origin (here, none) frames the shell: the frame gets no shell.
  const framing = await page.context().newPage();
  await framing.setContent(`<iframe src="${site.origin}/?model="></iframe>`);
  const frame = await (await framing.waitForSelector("iframe")).contentFrame();
  await frame.waitForLoadState();
  assert.equal(await frame.$("#model-url"), null);
  await framing.close();
});

test("the worker ignores messages that are not requests for its operations, then answers a request", { timeout: 60_000 }, async (t) => {
  const { page } = await openShell(t, "?model=");
  const consoleErrors = [];
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  const scene = { seed: 1, index: 0, size: 96 };
  const seen = await page.evaluate(async ({ scene, markup }) => {
    const worker = new Worker("/worker.js", { type: "module" });
    const replies = [];
    const errors = [];
    worker.onerror = (e) => errors.push(e.message);
    worker.onmessageerror = () => errors.push("messageerror");
    const answered = new Promise((resolve) => {
      worker.onmessage = ({ data }) => {
        replies.push({ id: data.id, kind: data.kind, png: data.value?.png?.byteLength, prompt: data.value?.prompt, error: data.error });
        if (data.id === 99) resolve();
      };
    });
    const hostile = [
      markup,
      null,
      42,
      [],
      {},
      { id: 1 },
      { id: 2, op: markup, args: {} },
      { id: 3, op: "constructor", args: {} },
      { id: 4, op: "__proto__", args: {} },
      { id: 5, op: "hasOwnProperty", args: {} },
      { id: "6", op: "scene", args: scene },
      { id: 7, op: "scene" },
      { id: 8, op: "scene", args: null },
      { id: 9, op: "scene", args: scene, wasmUrl: { toString: null } },
      { id: 10, op: "scene", args: scene, wasmUrl: undefined },
      { id: 11, op: "scene", args: scene, wasmUrl: undefined, threads: 0 },
      { id: 12, op: "scene", args: scene, wasmUrl: undefined, threads: "2" },
    ];
    for (const message of hostile) worker.postMessage(message);
    worker.postMessage({ id: 99, op: "scene", args: scene, wasmUrl: undefined, threads: 1 });
    await answered;
    worker.terminate();
    return { replies, errors };
  }, { scene, markup: MARKUP });
  assert.deepEqual(seen.errors, []);
  assert.equal(seen.replies.length, 1, JSON.stringify(seen.replies));
  const [reply] = seen.replies;
  assert.equal(reply.id, 99);
  assert.equal(reply.kind, "value", JSON.stringify(reply.error));
  assert.ok(reply.png > 0);
  assert.match(reply.prompt, /<image>/);
  assert.deepEqual(consoleErrors, []);
});
