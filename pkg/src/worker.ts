/**
 * The glassbox worker: the wasm engine runs here, so the page's thread never waits on a model.
 * Models are kept by handle; every request is answered with a value or a readable error.
 */
import init, { drawScene, Engine, runTask, VisionEngine } from "../glassbox.js";
import type { ErrorInfo, Reply, Request } from "./protocol.js";

type Emit = (event: string, data: unknown) => void;
type Args = Record<string, unknown>;

const models = new Map<number, Engine | VisionEngine>();
let nextHandle = 1;
let ready: Promise<unknown> | null = null;

function post(reply: Reply, transfer: Transferable[] = []): void {
  (self as unknown as Worker).postMessage(reply, transfer);
}

function engine(args: Args): Engine {
  const found = models.get(args["handle"] as number);
  if (!(found instanceof Engine)) throw new Error("this model has been disposed");
  return found;
}

function vision(args: Args): VisionEngine {
  const found = models.get(args["handle"] as number);
  if (!(found instanceof VisionEngine)) throw new Error("this vision model has been disposed");
  return found;
}

function keep(model: Engine | VisionEngine): number {
  const handle = nextHandle++;
  models.set(handle, model);
  return handle;
}

function backendOf(model: Engine): { name: string; device: string; fallbackReason: string | null } {
  return { name: model.backend, device: model.device, fallbackReason: model.fallbackReason ?? null };
}

const progress = (emit: Emit) => (loaded: number, total: number) => emit("progress", { phase: "load", loaded, total });

const operations: Record<string, (args: Args, emit: Emit) => Promise<unknown> | unknown> = {
  async load(args, emit) {
    const model = await runTask<Engine>(Engine.open(args["blob"] as Blob, { backend: args["backend"], onProgress: progress(emit) }));
    return { handle: keep(model), card: model.card, backend: backendOf(model) };
  },

  async loadVision(args, emit) {
    const model = await runTask<VisionEngine>(
      VisionEngine.open(args["mmproj"] as Blob, args["lm"] as Blob, { backend: args["backend"], onProgress: progress(emit) }),
    );
    return { handle: keep(model), backend: model.backend };
  },

  dispose(args) {
    const model = models.get(args["handle"] as number);
    models.delete(args["handle"] as number);
    model?.free();
    return null;
  },

  backend(args) {
    return backendOf(engine(args));
  },

  tokenize(args) {
    return Array.from(engine(args).tokenize(args["text"] as string));
  },

  chatPrompt(args) {
    return engine(args).chatPrompt(args["message"] as string);
  },

  async logits(args) {
    const model = engine(args);
    const top = await runTask<{ id: number; token: string; logprob: number }[]>(model.topTokens(model.tokenize(args["prompt"] as string), args["topK"] as number));
    return top.map((t) => ({ ...t, prob: Math.exp(t.logprob) }));
  },

  async generate(args, emit) {
    const model = engine(args);
    // Set by the page to stop early: the generation holds this thread, so no message could.
    const stop = typeof SharedArrayBuffer !== "undefined" && args["stop"] instanceof SharedArrayBuffer ? new Int32Array(args["stop"]) : null;
    const onToken = (text: string, id: number) => {
      emit("token", { text, id });
      return stop === null || Atomics.load(stop, 0) === 0;
    };
    return runTask(model.generate(args["prompt"] as string, args["maxTokens"] as number, args["temperature"] as number, args["seed"] as number, onToken));
  },

  async attribute(args) {
    const model = engine(args);
    return runTask(model.attribute(model.tokenize(args["prompt"] as string), args["options"]));
  },

  async lens(args) {
    const model = engine(args);
    return runTask(model.lens(model.tokenize(args["prompt"] as string), args["options"]));
  },

  setMask(args) {
    engine(args).setMask({ heads: args["heads"], neurons: args["neurons"] });
    return null;
  },

  useLexicons(args) {
    engine(args).useLexicons(args["vader"] as string, args["emoji"] as string, args["empath"] as string, args["nrc"] as string | undefined);
    return null;
  },

  useEmbedder(args) {
    engine(args).useEmbedder(args["model"] as Uint8Array, args["tokenizer"] as Uint8Array, args["config"] as Uint8Array);
    return null;
  },

  async classify(args, emit) {
    const onText = (piece: string) => emit("text", piece);
    const task = engine(args).classify(args["task"] as string, args["input"], args["options"], args["index"] as Uint8Array | undefined, onText);
    return runTask(task);
  },

  async tokenRewards(args) {
    const reference = engine({ handle: args["reference"] });
    return runTask(engine(args).tokenRewards(reference, args["prompt"] as string, args["response"] as string, args["k"] as number, args["rejected"] as boolean));
  },

  scene(args) {
    return drawScene(args["seed"] as number, args["index"] as number, args["size"] as number);
  },

  async answer(args) {
    return runTask(vision(args).answer(args["image"] as Uint8Array, args["prompt"] as string, args["k"] as number));
  },

  async heatmap(args) {
    return runTask(vision(args).heatmap(args["image"] as Uint8Array, args["prompt"] as string, args["options"]));
  },

  async visualLens(args) {
    return runTask(vision(args).lens(args["image"] as Uint8Array, args["prompt"] as string, args["options"]));
  },
};

/** A wasm trap (a bug in glassbox, or memory exhausted) leaves the module unusable. */
function isFatal(e: unknown): boolean {
  return e instanceof WebAssembly.RuntimeError;
}

function describe(e: unknown): ErrorInfo {
  if (isFatal(e)) {
    const message = e instanceof Error ? e.message : String(e);
    return { name: "InternalError", message: `glassbox stopped (${message}); load the model again` };
  }
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: "Error", message: String(e) };
}

/** Transfers typed-array results (heatmap cells) instead of copying them. */
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

self.onmessage = async (event: MessageEvent<Request>) => {
  const { id, op, args } = event.data;
  const emit: Emit = (name, data) => post({ id, kind: "event", event: name, data });
  try {
    const operation = operations[op];
    if (operation === undefined) throw new Error(`unknown operation ${op}`);
    ready ??= init({ module_or_path: (args["wasmUrl"] as string | undefined) ?? new URL("glassbox_bg.wasm", import.meta.url) });
    await ready;
    const value = await operation(args, emit);
    post({ id, kind: "value", value }, transferables(value));
  } catch (e) {
    post({ id, kind: "error", error: describe(e), fatal: isFatal(e) });
    if (isFatal(e)) self.close();
  }
};
