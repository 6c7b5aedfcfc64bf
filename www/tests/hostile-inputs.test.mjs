// Hostile model files, templates, texts and sizes fed to the engine in Debian's Chromium through
// the package's API (and the wasm's own `WebGpu`, which the package does not wrap). Each must be
// a typed error, and the worker (or device) that refused it must then do ordinary work: a
// refusal that trapped the wasm would close the worker and fail every later call.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { crc32, deflateSync } from "node:zlib";
import { isEngineWorker, serveBuiltSite } from "./built-site.mjs";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const fixture = (name) => readFileSync(here(`../../tests/fixtures/${name}`));

/** A fixture as `readGguf` reads it, checked to write back byte for byte. */
function fixtureGguf(name) {
  const bytes = fixture(name);
  const gguf = readGguf(bytes);
  assert.ok(writeGguf(gguf).equals(bytes), `${name} does not survive a read and a write unchanged`);
  return gguf;
}

/** A small model with a chat template, which the engine loads in about a second. */
const MODEL = "smollm2-vocab-tiny-q8_0.gguf";
/** The LLaVA fixture: a 96-pixel tower and its language model. */
const MMPROJ = "shapes-llava-mmproj.gguf";
const LANGUAGE_MODEL = "shapes-llava-lm.gguf";

// ---- GGUF v3, read and written here, so each hostile file is the fixture with one thing changed.

const GGUF_STRING = 8;
const GGUF_UINT32 = 4;
/** Byte sizes of GGUF's fixed-size value types, by type id. */
const SCALAR_BYTES = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/**
 * `{ kvs: [{ key, type, raw }], tensors: [{ name, dims, type, offset }], data }`: each value kept
 * as its encoded bytes, tensor offsets relative to the data section, as the file has them.
 */
function readGguf(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const u32 = () => ((at += 4), view.getUint32(at - 4, true));
  const u64 = () => ((at += 8), Number(view.getBigUint64(at - 8, true)));
  const string = () => {
    const length = u64();
    at += length;
    return bytes.subarray(at - length, at).toString("utf8");
  };
  const skipValue = (type) => {
    if (type === GGUF_STRING) return void string();
    if (type === 9) {
      const [itemType, count] = [u32(), u64()];
      for (let i = 0; i < count; i++) skipValue(itemType);
      return;
    }
    at += SCALAR_BYTES[type];
  };
  assert.equal(bytes.subarray(0, 4).toString("latin1"), "GGUF");
  at = 4;
  assert.equal(u32(), 3);
  const [tensorCount, kvCount] = [u64(), u64()];
  const kvs = [];
  for (let i = 0; i < kvCount; i++) {
    const key = string();
    const type = u32();
    const start = at;
    skipValue(type);
    kvs.push({ key, type, raw: bytes.subarray(start, at) });
  }
  assert.ok(!kvs.some((kv) => kv.key === "general.alignment"), "the writer below assumes the default alignment");
  const tensors = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = string();
    const dims = Array.from({ length: u32() }, u64);
    tensors.push({ name, dims, type: u32(), offset: u64() });
  }
  return { kvs, tensors, data: bytes.subarray(alignUp(at)) };
}

const ALIGNMENT = 32;
const alignUp = (n) => Math.ceil(n / ALIGNMENT) * ALIGNMENT;

/** The file `readGguf` read: header, key-value pairs, tensor infos, padding to 32, data. */
function writeGguf({ kvs, tensors, data }) {
  const parts = [];
  const u32 = (n) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    parts.push(b);
  };
  const u64 = (n) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    parts.push(b);
  };
  const string = (s) => {
    const b = Buffer.from(s, "utf8");
    u64(b.length);
    parts.push(b);
  };
  parts.push(Buffer.from("GGUF", "latin1"));
  u32(3);
  u64(tensors.length);
  u64(kvs.length);
  for (const { key, type, raw } of kvs) {
    string(key);
    u32(type);
    parts.push(raw);
  }
  for (const { name, dims, type, offset } of tensors) {
    string(name);
    u32(dims.length);
    dims.forEach(u64);
    u32(type);
    u64(offset);
  }
  const header = Buffer.concat(parts);
  return Buffer.concat([header, Buffer.alloc(alignUp(header.length) - header.length), data]);
}

const stringValue = (s) => {
  const text = Buffer.from(s, "utf8");
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(text.length));
  return { type: GGUF_STRING, raw: Buffer.concat([length, text]) };
};

const u32Value = (n) => {
  const raw = Buffer.alloc(4);
  raw.writeUInt32LE(n);
  return { type: GGUF_UINT32, raw };
};

/** `gguf` with `key` set to `value` in place, so every other byte keeps its meaning. */
function withValue(gguf, key, value) {
  assert.ok(gguf.kvs.some((kv) => kv.key === key), `the fixture has no ${key} to replace`);
  return { ...gguf, kvs: gguf.kvs.map((kv) => (kv.key === key ? { key, ...value } : kv)) };
}

/** A PNG of `width` × `height` pixels of one RGB colour. */
function solidPng(width, height, [r, g, b]) {
  const chunk = (type, body) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(body.length);
    const typed = Buffer.concat([Buffer.from(type, "latin1"), body]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(typed));
    return Buffer.concat([length, typed, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, no interlace
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: width }, () => [r, g, b]).flat())]);
  const pixels = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(pixels)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

// ---- The browser.

const site = serveBuiltSite({ sharedBrowser: true });

/**
 * A page of the shell's origin that serves `files` ({ name: bytes }) at /hostile/<name>, and
 * records the package's workers, those that closed, and the page's errors.
 */
async function open(t, files = {}) {
  const page = await site.browser.newPage();
  t.after(() => page.close());
  const errors = [];
  const workers = { started: 0, closed: 0 };
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("worker", (worker) => {
    if (!isEngineWorker(worker.url())) return;
    workers.started++;
    worker.on("close", () => workers.closed++);
  });
  await page.route(`${site.origin}/hostile/*`, (route) => {
    const name = new URL(route.request().url()).pathname.slice("/hostile/".length);
    const body = files[name];
    return body === undefined ? route.fulfill({ status: 404 }) : route.fulfill({ body, contentType: "application/octet-stream" });
  });
  // A page with no model, so the shell starts no worker of its own.
  await page.goto(`${site.origin}/?model=`);
  return { page, errors, workers };
}

/** The package's calls made, then: one worker served them all and it is still running. */
function assertOneLiveWorker({ workers, errors }) {
  assert.deepEqual(workers, { started: 1, closed: 0 }, "the refusal stopped the worker, or another one was started");
  assert.deepEqual(errors, []);
}

/** Runs in the page: `name: message` of what `promise` rejects with, or "resolved". */
const OUTCOME = `
  globalThis.outcome = (promise) => promise.then(() => "resolved", (e) => e.name + ": " + e.message);
`;

test("a GGUF whose tensors share bytes is a GgufError, and the worker then loads the intact model", { timeout: 120_000 }, async (t) => {
  const gguf = fixtureGguf(MODEL);
  const [q, k] = ["blk.0.attn_q.weight", "blk.0.attn_k.weight"].map((name) => gguf.tensors.find((x) => x.name === name));
  // k moves into the middle of q's 1088 bytes; the file's size and every other tensor stay.
  const sharedAt = q.offset + 512;
  const overlapping = writeGguf({ ...gguf, tensors: gguf.tensors.map((x) => (x === k ? { ...x, offset: sharedAt } : x)) });
  const dataStart = overlapping.length - gguf.data.length;
  const opened = await open(t, { "overlapping.gguf": overlapping });
  await opened.page.evaluate(OUTCOME);
  const seen = await opened.page.evaluate(async (model) => {
    const { Glassbox } = await import("/index.js");
    const refused = await outcome(Glassbox.load("/hostile/overlapping.gguf", { backend: "cpu", cache: "never" }));
    const intact = await Glassbox.load(model, { backend: "cpu", cache: "never" });
    return { refused, tokens: await intact.tokenize("Hello, world") };
  }, `/fixtures/${MODEL}`);
  assert.equal(
    seen.refused,
    `GgufError: tensors "${q.name}" and "${k.name}" share the bytes at ${dataStart + sharedAt}: each tensor needs its own data`,
  );
  assert.ok(seen.tokens.length > 0);
  assertOneLiveWorker(opened);
});

test("chat templates that loop or double a string past their fuel are TokenizerErrors, and the same models still tokenise and predict", { timeout: 180_000 }, async (t) => {
  const gguf = fixtureGguf(MODEL);
  const templates = {
    "nested-loops.gguf": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "doubling.gguf": `{% set s = 'ab' %}${"{% set s = s ~ s %}".repeat(40)}{{ s | length }}`,
  };
  const files = Object.fromEntries(
    Object.entries(templates).map(([name, template]) => [name, writeGguf(withValue(gguf, "tokenizer.chat_template", stringValue(template)))]),
  );
  const opened = await open(t, files);
  await opened.page.evaluate(OUTCOME);
  const seen = await opened.page.evaluate(async ({ names, model }) => {
    const { Glassbox } = await import("/index.js");
    const intact = await Glassbox.load(model, { backend: "cpu", cache: "never" });
    const expected = { tokens: await intact.tokenize("The capital of France is"), top: await intact.logits("The capital of France is", { topK: 3 }) };
    const hostile = [];
    for (const name of names) {
      const gb = await Glassbox.load(`/hostile/${name}`, { backend: "cpu", cache: "never" });
      const refused = await outcome(gb.chatPrompt("hi"));
      hostile.push({ name, refused, tokens: await gb.tokenize("The capital of France is"), top: await gb.logits("The capital of France is", { topK: 3 }) });
    }
    return { expected, hostile, intactChat: await intact.chatPrompt("hi") };
  }, { names: Object.keys(templates), model: `/fixtures/${MODEL}` });
  assert.equal(seen.hostile.length, 2);
  for (const { name, refused, tokens, top } of seen.hostile) {
    assert.match(refused, /^TokenizerError: the chat template failed: .*fuel/s, name);
    // Only the template differs from the fixture, so the model predicts exactly as the fixture does.
    assert.deepEqual(tokens, seen.expected.tokens, name);
    assert.deepEqual(top, seen.expected.top, name);
  }
  assert.match(seen.intactChat, /<\|im_start\|>user\nhi<\|im_end\|>\n<\|im_start\|>assistant\n$/);
  assertOneLiveWorker(opened);
});

test("text past 1 MiB is a TokenizerError counted in UTF-8 bytes, for tokenize, logits and generate; the model then tokenises", { timeout: 180_000 }, async (t) => {
  const opened = await open(t);
  await opened.page.evaluate(OUTCOME);
  const seen = await opened.page.evaluate(async (model) => {
    const { Glassbox } = await import("/index.js");
    const gb = await Glassbox.load(model, { backend: "cpu", cache: "never" });
    // 524289 characters of two bytes each: past the cap in bytes, under it in UTF-16 units.
    const long = "é".repeat(524_289);
    const refused = [await outcome(gb.tokenize(long)), await outcome(gb.logits(long)), await outcome(gb.generate(long, { maxTokens: 1 }))];
    // Exactly at the cap, the text still tokenises: " word" is one token.
    const atCap = "a" + " word".repeat(((1 << 20) - 1) / 5);
    return { refused, atCapBytes: new TextEncoder().encode(atCap).length, atCapTokens: (await gb.tokenize(atCap)).length, hello: await gb.tokenize("Hello") };
  }, `/fixtures/${MODEL}`);
  const message = "TokenizerError: the text is 1048578 bytes; glassbox tokenises at most 1048576";
  assert.deepEqual(seen.refused, [message, message, message]);
  assert.equal(seen.atCapBytes, 1 << 20);
  assert.equal(seen.atCapTokens, 1 + ((1 << 20) - 1) / 5);
  assert.ok(seen.hello.length > 0);
  assertOneLiveWorker(opened);
});

test("exam rows that are not questions are InputErrors (not JSON, no options' letter, a 1 MiB question, an answer E), and the model then answers one", { timeout: 180_000 }, async (t) => {
  const opened = await open(t);
  await opened.page.evaluate(OUTCOME);
  const seen = await opened.page.evaluate(async (model) => {
    const { Glassbox } = await import("/index.js");
    const gb = await Glassbox.load(model, { backend: "cpu", cache: "never" });
    const rows = [
      "{not json",
      JSON.stringify({ id: 1, question: "Q?", options: { A: "a", B: "b" } }),
      JSON.stringify({ id: 2, question: "Q".repeat(1 << 20) }),
      JSON.stringify({ id: 3, question: "Q?\nA. a\nB. b\nC. c\nD. d", answer: "E" }),
    ];
    const refused = [];
    for (const row of rows) refused.push(await outcome(gb.exam(row, { mode: "score" })));
    const answered = await gb.exam({ id: 4, question: "Q?\nA. a\nB. b\nC. c\nD. d", answer: "B" }, { mode: "score" });
    return { refused, answered };
  }, `/fixtures/${MODEL}`);
  assert.ok(seen.refused.every((r) => r.startsWith("InputError: ")), JSON.stringify(seen.refused));
  assert.match(seen.refused[1], /"options" has no string 'C'/);
  assert.match(seen.refused[2], /the question is 1048576 bytes; at most 65536 are read/);
  assert.match(seen.refused[3], /"answer" "E" is not one of A, B, C, D/);
  assert.equal(Object.keys(seen.answered.probs).join(""), "ABCD");
  assert.equal(seen.answered.gold, "B");
  assertOneLiveWorker(opened);
});

test("drawScene refuses sides outside 32 to 1024 with an InputError, and the same worker then draws scenes at both ends", { timeout: 120_000 }, async (t) => {
  const opened = await open(t);
  await opened.page.evaluate(OUTCOME);
  const seen = await opened.page.evaluate(async () => {
    const { drawScene } = await import("/index.js");
    const refused = [];
    for (const size of [1, 31, 1025, 100_000]) refused.push(await outcome(drawScene(1, 0, size)));
    const drawn = [];
    for (const size of [32, 1024]) {
      const scene = await drawScene(1, 0, size);
      const bitmap = await createImageBitmap(scene.png);
      drawn.push({ width: bitmap.width, height: bitmap.height, prompt: scene.prompt });
    }
    return { refused, drawn };
  });
  assert.deepEqual(
    seen.refused,
    [1, 31, 1025, 100000].map((size) => `InputError: a scene of ${size} pixels a side: the generator draws 32 to 1024`),
  );
  for (const [i, size] of [32, 1024].entries()) {
    assert.equal(seen.drawn[i].width, size);
    assert.equal(seen.drawn[i].height, size);
    assert.match(seen.drawn[i].prompt, /<image>/);
  }
  assertOneLiveWorker(opened);
});

test("WebGpu.matmul with 65536 × 65536 weights is a GpuError on wasm32, and the same device then multiplies exactly", { timeout: 120_000 }, async (t) => {
  const { page, errors } = await open(t);
  await page.evaluate(OUTCOME);
  const rows = 3, cols = 32;
  const w = Array.from({ length: rows * cols }, (_, i) => (i % 7) - 3);
  const x = Array.from({ length: 2 * cols }, (_, i) => (i % 5) - 2);
  const seen = await page.evaluate(async ({ w, x, rows, cols }) => {
    const glassbox = await import("/glassbox.js");
    await glassbox.default({ module_or_path: "/glassbox_bg.wasm" });
    const gpu = await glassbox.WebGpu.open();
    // 65536² wraps a 32-bit size to 0, which used to pass every later check.
    const refused = await outcome(gpu.matmul("F32", new Uint8Array(0), 65536, 65536, new Float32Array(32)));
    const weights = new Uint8Array(Float32Array.from(w).buffer);
    return { refused, product: Array.from(await gpu.matmul("F32", weights, rows, cols, Float32Array.from(x))) };
  }, { w, x, rows, cols });
  assert.equal(seen.refused, "GpuError: bad shape: the sizes [65536, 65536] multiply past what this machine can address");
  // Small integers: every product and sum is exact in f32, so the GPU must agree to the bit.
  const expected = Array.from({ length: 2 * rows }, (_, k) => {
    const [token, row] = [Math.floor(k / rows), k % rows];
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += x[token * cols + c] * w[row * cols + c];
    return sum;
  });
  assert.deepEqual(seen.product, expected);
  assert.deepEqual(errors, []);
});

test("an mmproj claiming 65536-pixel images is a VisionError at load; the worker then answers a 1 × 8192 image as its 96-pixel centre crop", { timeout: 300_000 }, async (t) => {
  const mmproj = writeGguf(withValue(fixtureGguf(MMPROJ), "clip.vision.image_size", u32Value(65536)));
  const opened = await open(t, { "huge-images.gguf": mmproj });
  await opened.page.evaluate(OUTCOME);
  const grey = [51, 51, 51];
  const seen = await opened.page.evaluate(async ({ lm, mmproj, tall, square, red }) => {
    const { GlassboxVision, drawScene } = await import("/index.js");
    const refused = await outcome(GlassboxVision.load("/hostile/huge-images.gguf", lm, { backend: "cpu", cache: "never" }));
    const vlm = await GlassboxVision.load(mmproj, lm, { backend: "cpu", cache: "never" });
    const { prompt } = await drawScene(1, 0);
    const answer = async (bytes) => (await vlm.answer(new Blob([Uint8Array.from(bytes)], { type: "image/png" }), prompt, { k: 5 })).top;
    return { refused, tall: await answer(tall), square: await answer(square), red: await answer(red) };
  }, {
    lm: `/fixtures/${LANGUAGE_MODEL}`,
    mmproj: `/fixtures/${MMPROJ}`,
    tall: [...solidPng(1, 8192, grey)],
    square: [...solidPng(96, 96, grey)],
    red: [...solidPng(96, 96, [200, 30, 30])],
  });
  assert.equal(
    seen.refused,
    "VisionError: the mmproj's clip.vision.image_size is 65536, which glassbox cannot use: it is larger than the 2048 pixels glassbox accepts",
  );
  // A one-colour image's centre crop is that colour whatever the resize, so the tower sees the
  // same pixels for both images.
  assert.equal(seen.tall.length, 5);
  assert.deepEqual(seen.tall.map((a) => a.id), seen.square.map((a) => a.id));
  seen.tall.forEach((a, i) => assert.ok(Math.abs(a.prob - seen.square[i].prob) <= 1e-6, `${a.prob} against ${seen.square[i].prob}`));
  // ... and the model does look at the pixels, so that agreement is not one it gives any image.
  const gap = Math.max(...seen.red.map((a) => Math.abs(a.prob - (seen.square.find((b) => b.id === a.id)?.prob ?? 0))));
  assert.ok(gap > 1e-3, `a red square answers as the grey one (largest difference ${gap})`);
  assertOneLiveWorker(opened);
});

test("a prompt whose attention would pass the 2 GiB budget is refused, on the CPU (attribute) and on WebGPU (logits); the same models then answer a short prompt", { timeout: 300_000 }, async (t) => {
  // The fixture's context of 256 raised to 65536, as a file may claim: 20001 tokens then fit the
  // context, and two heads' scores at 20001² positions in two layers are 6.4 GB.
  const longContext = writeGguf(withValue(fixtureGguf(MODEL), "llama.context_length", u32Value(65536)));
  const opened = await open(t, { "long-context.gguf": longContext });
  await opened.page.evaluate(OUTCOME);
  const seen = await opened.page.evaluate(async () => {
    const { Glassbox } = await import("/index.js");
    const long = "word" + " word".repeat(20_000);
    const short = "The capital of France is";
    const cpu = await Glassbox.load("/hostile/long-context.gguf", { backend: "cpu", cache: "never" });
    const gpu = await Glassbox.load("/hostile/long-context.gguf", { backend: "webgpu", cache: "never" });
    return {
      positions: (await cpu.tokenize(long)).length,
      cpu: { refused: await outcome(cpu.attribute(long)), target: (await cpu.attribute(short, { top: 3 })).target },
      gpu: { backend: gpu.backend, refused: await outcome(gpu.logits(long)), top: await gpu.logits(short, { topK: 3 }) },
      cpuTop: await cpu.logits(short, { topK: 3 }),
    };
  });
  assert.equal(seen.positions, 20_001);
  const refusal = (name) =>
    new RegExp(
      `^${name}: ${seen.positions} positions over a context of ${seen.positions} need about (\\d+) bytes of working memory ` +
        "\\(KV cache, activations, attention scores\\), past the budget of 2147483648: shorten the prompt$",
    );
  for (const [name, refused] of [["InterpError", seen.cpu.refused], ["ModelError", seen.gpu.refused]]) {
    assert.match(refused, refusal(name));
    assert.ok(Number(refused.match(refusal(name))[1]) > 2 ** 31);
  }
  assert.equal(seen.cpu.target.id, seen.cpuTop[0].id, "attribution explains the CPU's top token");
  assert.equal(seen.gpu.backend, "webgpu");
  assert.equal(seen.gpu.top.length, 3);
  assertOneLiveWorker(opened);
});
