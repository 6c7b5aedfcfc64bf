/**
 * The glassbox worker: the wasm engine runs here, so the page's thread never waits on a model.
 * Models are kept by handle; every request is answered with a value or a readable error.
 */
import { drawScene, Engine, type ErrorName, evaluateTable, examReport, kernelThreads, readTable, runTask, tableBaseline, VisionEngine } from "../glassbox.js";
import { glassboxError, type EngineErrorName, type GlassboxErrorName } from "./errors.js";
import type { ArgsOf, ErrorInfo, Operation, OperationEvent, Reply, Request, RequestOf, ResultOf } from "./protocol.js";
import { instantiate } from "./threads.js";
import type { BackendInfo, BackendName, NextToken, SynthesisAttempt } from "./types.js";

/** True only when errors.ts lists exactly the names the Rust engine throws; else a type error. */
type SameNames = [ErrorName] extends [EngineErrorName] ? ([EngineErrorName] extends [ErrorName] ? true : never) : never;
export const engineErrorNamesMatchRust: SameNames = true;

type Emit<K extends Operation> = (event: OperationEvent<K>) => void;
type Handler<K extends Operation> = (args: ArgsOf<K>, emit: Emit<K>) => ResultOf<K> | Promise<ResultOf<K>>;

const models = new Map<number, Engine | VisionEngine>();
let nextHandle = 1;
let ready: Promise<unknown> | null = null;
/** Why the kernels run on fewer threads than the page asked for, when they do. */
let threadsShortfall: string | null = null;

function post<K extends Operation>(reply: Reply<K>, transfer: Transferable[] = []): void {
  (self as unknown as Worker).postMessage(reply, transfer);
}

function engine(handle: number): Engine {
  const found = models.get(handle);
  if (!(found instanceof Engine)) throw glassboxError("InputError", "this model has been disposed");
  return found;
}

function vision(handle: number): VisionEngine {
  const found = models.get(handle);
  if (!(found instanceof VisionEngine)) throw glassboxError("InputError", "this vision model has been disposed");
  return found;
}

function keep(model: Engine | VisionEngine): number {
  const handle = nextHandle++;
  models.set(handle, model);
  return handle;
}

// The glue types the backend's name as any string; the engine names only these two.
const backendName = (model: Engine | VisionEngine) => model.backend as BackendName;

function backendOf(model: Engine): BackendInfo {
  return { name: backendName(model), device: model.device, fallbackReason: model.fallbackReason ?? null, threads: kernelThreads(), threadsShortfall };
}

const progress = (emit: Emit<"load" | "loadVision">) => (loaded: number, total: number) =>
  emit({ name: "progress", data: { phase: "load", loaded, total } });

/** `report`, answering the engine whether to go on: not once the page has set `stop`. */
function reporting<A extends unknown[]>(stop: SharedArrayBuffer | undefined, report: (...args: A) => void): (...args: A) => boolean {
  const flag = stop === undefined ? null : new Int32Array(stop);
  return (...args) => {
    report(...args);
    return flag === null || Atomics.load(flag, 0) === 0;
  };
}

/** Each step as a progress event. */
const stepping = (stop: SharedArrayBuffer | undefined, emit: Emit<"attribute" | "patch">) =>
  reporting(stop, (done: number, total: number) => emit({ name: "progress", data: { done, total } }));

const handlers: { [K in Operation]: Handler<K> } = {
  async load({ blob, backend }, emit) {
    const model = await runTask<Engine>(Engine.open(blob, { backend, onProgress: progress(emit) }));
    return { handle: keep(model), card: model.card, backend: backendOf(model) };
  },

  async loadVision({ mmproj, lm, backend }, emit) {
    const model = await runTask<VisionEngine>(VisionEngine.open(mmproj, lm, { backend, onProgress: progress(emit) }));
    return { handle: keep(model), backend: backendName(model) };
  },

  dispose({ handle }) {
    const model = models.get(handle);
    models.delete(handle);
    model?.free();
    return null;
  },

  backend({ handle }) {
    return backendOf(engine(handle));
  },

  tokenize({ handle, text }) {
    return Array.from(engine(handle).tokenize(text));
  },

  chatPrompt({ handle, message }) {
    return engine(handle).chatPrompt(message);
  },

  async logits({ handle, prompt, topK }) {
    const model = engine(handle);
    const top = await runTask<Omit<NextToken, "prob">[]>(model.topTokens(model.tokenize(prompt), topK));
    return top.map((t) => ({ ...t, prob: Math.exp(t.logprob) }));
  },

  async generate({ handle, prompt, maxTokens, temperature, seed, stop }, emit) {
    const model = engine(handle);
    const onToken = reporting(stop, (text: string, id: number) => emit({ name: "token", data: { text, id } }));
    return runTask(model.generate(prompt, maxTokens, temperature, seed, onToken));
  },

  async attribute({ handle, prompt, options, stop }, emit) {
    const model = engine(handle);
    return runTask(model.attribute(model.tokenize(prompt), options, stepping(stop, emit)));
  },

  async lens({ handle, prompt, options }) {
    const model = engine(handle);
    return runTask(model.lens(model.tokenize(prompt), options));
  },

  async record({ handle, prompt, options }) {
    const model = engine(handle);
    return runTask(model.record(model.tokenize(prompt), options));
  },

  async probe({ handle, probe, fields }) {
    return runTask(engine(handle).probe(probe, fields));
  },

  async recordSafetensors({ handle, prompt, options }) {
    const model = engine(handle);
    return runTask(model.record(model.tokenize(prompt), { ...options, format: "safetensors" }));
  },

  async patch({ handle, clean, corrupt, answer, wrong, site, method, stop }, emit) {
    return runTask(engine(handle).patch(clean, corrupt, answer, wrong, { site, method }, stepping(stop, emit)));
  },

  setMask({ handle, heads, neurons }) {
    engine(handle).setMask({ heads, neurons });
    return null;
  },

  async steeringVector({ handle, positive, negative, layer }) {
    return runTask(engine(handle).steeringVector(positive, negative, layer));
  },

  addSteering({ handle, vector, layer, coefficient }) {
    engine(handle).addSteering(vector, layer, coefficient);
    return null;
  },

  clearSteering({ handle }) {
    engine(handle).clearSteering();
    return null;
  },

  useLexicons({ handle, vader, emoji, empath, nrc }) {
    engine(handle).useLexicons(vader, emoji, empath, nrc);
    return null;
  },

  useEmbedder({ handle, model, tokenizer, config }) {
    engine(handle).useEmbedder(model, tokenizer, config);
    return null;
  },

  async classify({ handle, task, input, options, index, stop }, emit) {
    const onText = reporting(stop, (piece: string) => emit({ name: "text", data: piece }));
    return runTask(engine(handle).classify(task, input, options, index, onText));
  },

  async exam({ handle, row, options }, emit) {
    const onText = (piece: string) => emit({ name: "text", data: piece });
    return runTask(engine(handle).exam(row, options, onText));
  },

  examReport({ replies }) {
    return examReport(replies);
  },

  async synthesise({ handle, csv, request }, emit) {
    const onAttempt = (attempt: SynthesisAttempt) => emit({ name: "attempt", data: attempt });
    return runTask(engine(handle).synthesise(csv, request, onAttempt));
  },

  readTable({ csv }) {
    return readTable(csv);
  },

  tableBaseline({ csv, label, method, n, seed }) {
    return tableBaseline(csv, label, method, n, seed);
  },

  evaluateTable({ real, synthetic, label, test, seed }) {
    return evaluateTable(real, synthetic, label, test, seed);
  },

  async tokenRewards({ handle, reference, prompt, response, k, rejected }) {
    return runTask(engine(handle).tokenRewards(engine(reference), prompt, response, k, rejected));
  },

  scene({ seed, index, size }) {
    return drawScene(seed, index, size);
  },

  async answer({ handle, image, prompt, k }) {
    return runTask(vision(handle).answer(image, prompt, k));
  },

  async heatmap({ handle, image, prompt, options }) {
    return runTask(vision(handle).heatmap(image, prompt, options));
  },

  async visualLens({ handle, image, prompt, options }) {
    return runTask(vision(handle).lens(image, prompt, options));
  },
};

/** A wasm trap (a bug in glassbox, or memory exhausted) leaves the module unusable. */
function isFatal(e: unknown): boolean {
  return e instanceof WebAssembly.RuntimeError;
}

function describe(e: unknown): ErrorInfo {
  if (isFatal(e)) {
    const message = e instanceof Error ? e.message : String(e);
    return { name: "InternalError" satisfies GlassboxErrorName, message: `glassbox stopped (${message}); load the model again` };
  }
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: "Error", message: String(e) };
}

/** Transfers typed-array results (heatmap cells, recorded activations, steering vectors) instead of copying them. */
function transferables(value: unknown): Transferable[] {
  const found: Transferable[] = [];
  const visit = (v: unknown, depth: number): void => {
    if (depth > 3 || v === null || typeof v !== "object") return;
    if (ArrayBuffer.isView(v) && v.buffer instanceof ArrayBuffer) {
      found.push(v.buffer);
      return;
    }
    for (const inner of Object.values(v)) visit(inner, depth + 1);
  };
  visit(value, 0);
  return found;
}

async function run<K extends Operation>({ id, op, args, wasmUrl, threads }: RequestOf<K>): Promise<void> {
  try {
    const handler: Handler<K> = handlers[op];
    ready ??= instantiate(wasmUrl, threads).then((shortfall) => {
      threadsShortfall = shortfall;
    });
    await ready;
    const value = await handler(args, (event) => post<K>({ id, kind: "event", event }));
    post<K>({ id, kind: "value", value }, transferables(value));
  } catch (e) {
    post<K>({ id, kind: "error", error: describe(e), fatal: isFatal(e) });
    if (isFatal(e)) self.close();
  }
}

/**
 * Whether a message is a request for one of this worker's operations. Anything else (another
 * script's message, or a request from a build with other operations) is not answered: a reply
 * would carry its content back, and an id it made up could settle a call the page waits on.
 */
function isRequest(message: unknown): message is Request {
  if (typeof message !== "object" || message === null) return false;
  const { id, op, args, wasmUrl, threads } = message as Record<string, unknown>;
  return (
    Number.isSafeInteger(id) &&
    typeof op === "string" &&
    Object.hasOwn(handlers, op) &&
    typeof args === "object" &&
    args !== null &&
    (wasmUrl === undefined || typeof wasmUrl === "string") &&
    Number.isSafeInteger(threads) &&
    (threads as number) >= 1
  );
}

self.onmessage = (event: MessageEvent<unknown>) => {
  if (isRequest(event.data)) void run(event.data);
};
