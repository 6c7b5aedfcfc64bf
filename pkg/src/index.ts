/**
 * glassbox's JavaScript API. Models load and compute in a Web Worker this package provides, so
 * the page's thread never blocks; every failure arrives as an `Error` with a readable message.
 *
 * ```ts
 * import { Glassbox } from "glassbox";
 * const gb = await Glassbox.load("models/SmolLM2-135M-Instruct.Q4_1.gguf", { backend: "auto" });
 * const [top] = await gb.logits("The capital of France is", { topK: 5 });
 * ```
 */
import { ModelCache } from "./cache.js";
import { glassboxError } from "./errors.js";
import type { ArgsOf, ErrorInfo, ImageOperation, ModelOperation, Operation, OperationEvent, Reply, RequestOf, ResultOf } from "./protocol.js";
import { bytesOf, imageBytes, sourceName, textOf, toBlob, type FetchOptions, type ModelSource } from "./source.js";
import type {
  Attribution,
  BackendInfo,
  BackendName,
  Classification,
  ExamQuestion,
  ExamReply,
  ExamReport,
  Generation,
  Synthesis,
  SynthesisAttempt,
  TableReport,
  TableView,
  HeatmapMethod,
  LogitLens,
  ModelCard,
  NextToken,
  PatchHeatmap,
  PatchingGrid,
  PatchMethod,
  PatchSite,
  ProbeReading,
  Recording,
  TokenRewards,
  VisualAnswer,
  VisualLens,
} from "./types.js";

export * from "./types.js";
export { glassboxErrorNames, type GlassboxErrorName } from "./errors.js";
export { ModelCache, type CachedModel, type CacheStore } from "./cache.js";
export { LoadError, type CachePolicy, type LoadProgress, type ModelSource } from "./source.js";

export interface LoadOptions extends FetchOptions {
  /** `auto` (the default) takes WebGPU when the browser offers a hardware adapter, else the wasm CPU. */
  backend?: "auto" | BackendName | undefined;
  /**
   * Threads for the CPU kernels. The default is the cores the browser reports, when the page is
   * cross-origin isolated (served with COOP/COEP headers, so that its memory can be shared with
   * worker threads); otherwise, or with 1, the build without threads runs.
   */
  threads?: number | undefined;
  /**
   * Where the package's `worker.js` is served, when a bundler did not place it beside this module;
   * `worker-threads.js` and `kernel-worker.js` are served beside it.
   */
  workerUrl?: string | URL | undefined;
  /** Where `glassbox_bg.wasm` is served, when not beside `worker.js`; `glassbox-threads_bg.wasm` beside it. */
  wasmUrl?: string | URL | undefined;
}

/** The kernel threads a load runs with, and why one where the page did not ask for one. */
function threading(asked: number | undefined): { threads: number; reason: string | null } {
  if (asked !== undefined && (!Number.isSafeInteger(asked) || asked < 1)) {
    throw glassboxError("InputError", `threads must be a whole number of at least 1, not ${asked}`);
  }
  const cores = globalThis.navigator?.hardwareConcurrency ?? 1;
  const wanted = asked ?? cores;
  if (wanted === 1) return { threads: 1, reason: asked === 1 ? null : "one CPU thread: the browser reports one core" };
  if (!globalThis.crossOriginIsolated || typeof SharedArrayBuffer === "undefined") {
    return { threads: 1, reason: "one CPU thread: the page is not cross-origin isolated (COOP/COEP headers), so its memory cannot be shared with worker threads" };
  }
  return { threads: wanted, reason: null };
}

export interface GenerateOptions {
  maxTokens?: number;
  /** 0 (the default) is greedy. */
  temperature?: number;
  seed?: number;
  /** Called after each token with its text and the whole text so far. */
  onToken?: (token: string, textSoFar: string) => void;
  /**
   * Stops the generation at the next token. It needs a cross-origin-isolated page (served with
   * COOP and COEP headers, as `make demo` serves), where the worker can see the abort while it
   * computes; elsewhere the generation runs to `maxTokens`.
   */
  signal?: AbortSignal;
}

export interface AttributeOptions {
  /** The token explained, by id or text; the model's top-1 by default. */
  target?: number | string;
  /** How many neurons, value and query neurons to list (100). */
  top?: number;
  /** How many neurons to score exactly (1000). */
  exactNeurons?: number;
  /**
   * Attribute with the weights dequantised to f32, on the CPU, as `glassbox compare-weights`
   * does: a second copy of the model (four bytes a weight), read from the same file the first
   * time it is asked for and kept while the model is open.
   */
  floatWeights?: boolean;
  /**
   * Also draw the attribution graph (`Attribution.graph`): every head's contribution from every
   * position into the last one, scored to first order, the strongest `graphEdges` (1000) exactly.
   */
  graph?: boolean;
  graphEdges?: number;
  /** Called after each step (the forward pass, heads, neurons, positions and graph, value and query neurons) with the steps done and the steps in all. */
  onProgress?: (done: number, total: number) => void;
  /** Stops the attribution after its current step (on a cross-origin-isolated page, as for `generate`); it then rejects with an `InterpError`. */
  signal?: AbortSignal;
}

export interface LensOptions {
  layers?: number[];
  positions?: number[];
  topK?: number;
  scale?: "fixed" | "own_rms";
}

export interface RecordOptions {
  /**
   * TransformerLens hook names, comma-separated; `*` matches any part:
   * `"blocks.*.hook_resid_post,blocks.3.attn.hook_pattern"`.
   */
  hooks: string;
  /** The positions each hook records: `"all"` (the default), `"last"` or a list. */
  positions?: "all" | "last" | number[];
  /** The largest recording to make, in bytes (512 MiB); a larger one is refused before the model runs. */
  maxBytes?: number;
}

export interface PatchOptions {
  /** Which activation is copied from the clean run: the residual stream entering a layer (the default), a layer's attention or MLP output, or each head's output at every position (`"head"`: the grid's columns are heads). */
  site?: PatchSite;
  /** `"both"` (the default): the exact grid and its first-order estimate from one backward pass; `"exact"` or `"attribution"` alone. */
  method?: PatchMethod;
  /** Called after each forward pass with the passes made and the passes in all. */
  onProgress?: (done: number, total: number) => void;
  /** Stops the patching at the next forward pass (on a cross-origin-isolated page, as for `generate`); it then rejects with an `InterpError`. */
  signal?: AbortSignal;
}

export interface Ablations {
  /** `"layer.head"`, e.g. `"17.3"`. */
  heads?: string[];
  /** `"layer.neuron"`, e.g. `"25.7164"`. */
  neurons?: string[];
}

export interface SteerOptions {
  /** The layer whose output the vector is added to; it need not be the layer it was taken at. */
  layer: number;
  /** How many times the vector is added; negative steers the other way. */
  coefficient: number;
}

export interface ClassifyOptions {
  /** Generate the explanation after the verdict. */
  explain?: boolean;
  /** Attribute the verdict to the input's tokens. */
  evidence?: boolean;
  /** VADER, Empath and the model's sentiment intensity (call `useLexicons` first). */
  affect?: boolean;
  /** A retrieval index (`glassbox index build`): RAEmoLLM's few-shot prompt of similar examples. */
  index?: string | URL | Blob | ArrayBuffer | Uint8Array;
  /** Receives the explanation as it is generated. */
  onText?: (piece: string) => void;
  /** Stops the check at the explanation's next token (on a cross-origin-isolated page, as for `generate`); it then rejects with a `TaskError`. */
  signal?: AbortSignal;
  mode?: "score" | "generate";
  /** Wrap the instruction in the model's chat template instead of the papers' `Human:` wrapper. */
  chat?: boolean;
  maxNewTokens?: number;
  /** How the explanation is written; each setting left out takes its default. */
  writing?: Writing;
  /** How many examples to retrieve (4). */
  k?: number;
}

/**
 * Greedy decoding with rules against the loops a small model's explanations fall into. All off
 * (`{ noRepeatNgram: 0, maxSentences: 0, repetitionPenalty: 1, oneParagraph: false }`) is the
 * papers' plain greedy decoding.
 */
export interface Writing {
  /** No run of this many written tokens occurs twice (4; 0: off). */
  noRepeatNgram?: number;
  /** Stop after this many sentences (4; 0: no limit). */
  maxSentences?: number;
  /** CTRL's penalty on tokens already in the context (1: off). */
  repetitionPenalty?: number;
  /** Stop at the first blank line (true). */
  oneParagraph?: boolean;
}

export interface ExamOptions {
  /** `generate` (eval_empec's greedy reply, read by its expressions; the default) or `score` (the option letters' probabilities). */
  mode?: "generate" | "score";
  /** The reply's length in tokens (32, as eval_empec). */
  maxNewTokens?: number;
  /** Receives the reply as it is generated. */
  onText?: (piece: string) => void;
}

/** What `synthesise` writes: HARMONIC's synthesis of `n` rows like the table's. */
export interface SynthesisRequest {
  /** The label column (moved last in the prompt). */
  label: string;
  n: number;
  seed?: number;
  /** What the rows are about: "tabular data about {description}". */
  description?: string;
  /** Where to start in the seeded sequence of prompts, to continue an earlier call. */
  firstAttempt?: number;
  /** Prompts to try before stopping short of `n` rows (4 × n). */
  maxAttempts?: number;
  /** Ask in the model's chat template (HARMONIC's fine-tuned model is prompted without one). */
  chat?: boolean;
  temperature?: number;
  /** Receives each prompt's reply, and why it was rejected, as it ends. */
  onAttempt?: (attempt: SynthesisAttempt) => void;
}

/** A claim task's input: its fields (`claim`, `context`, `text`, ...), optionally `id` and `domain`. */
export type TaskInput = Record<string, string>;

export interface Lexicons {
  /** VADER's `vader_lexicon.txt` and `emoji_utf8_lexicon.txt`, Empath's categories TSV. */
  vader: string | URL | Blob;
  emoji: string | URL | Blob;
  empath: string | URL | Blob;
  /** NRC's lexicon JSON: for research and non-commercial use only. */
  nrc?: string | URL | Blob;
}

export interface HeatmapOptions {
  method?: HeatmapMethod;
  /** LPI through this many top heads (1). */
  heads?: number;
  /** The token explained, by id; the model's answer by default. */
  target?: number;
}

export type ImageSource = Blob | ImageData | string | URL;

type Listener<K extends Operation> = (event: OperationEvent<K>) => void;

/**
 * A flag the worker reads between steps, set when `signal` aborts: the work holds the worker's
 * thread, so no message could reach it. Only a cross-origin-isolated page can share one.
 */
function stopFlag(signal: AbortSignal | undefined): SharedArrayBuffer | undefined {
  if (signal === undefined || !globalThis.crossOriginIsolated) return undefined;
  const stop = new SharedArrayBuffer(4);
  // A signal aborted while the call was getting ready stops the work before it starts.
  if (signal.aborted) Atomics.store(new Int32Array(stop), 0, 1);
  else signal.addEventListener("abort", () => Atomics.store(new Int32Array(stop), 0, 1), { once: true });
  return stop;
}

interface Pending {
  resolve: (value: ResultOf<Operation>) => void;
  reject: (error: Error) => void;
  onEvent: Listener<Operation> | undefined;
}

/** One worker; every model loaded through it lives there, so two models can be used together. */
class Connection {
  #worker: Worker;
  #pending = new Map<number, Pending>();
  #next = 1;
  #stopped: string | null = null;
  #wasmUrl: string | undefined;
  readonly threads: number;
  /** Why the kernels run on one thread where the page did not ask for one. */
  readonly threadsReason: string | null;

  constructor(workerUrl: string | URL, wasmUrl: string | URL | undefined, { threads, reason }: { threads: number; reason: string | null }) {
    this.threads = threads;
    this.threadsReason = reason;
    this.#wasmUrl = wasmUrl === undefined ? undefined : new URL(String(wasmUrl), globalThis.location?.href).href;
    if (threads > 1 && this.#wasmUrl !== undefined) this.#wasmUrl = new URL("glassbox-threads_bg.wasm", this.#wasmUrl).href;
    this.#worker = new Worker(workerUrl, { type: "module", name: "glassbox" });
    this.#worker.onmessage = (event: MessageEvent<Reply>) => this.#receive(event.data);
    this.#worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      this.#stop(`the glassbox worker failed to start (${event.message || "is worker.js served beside the package?"})`);
    };
  }

  #stop(reason: string): void {
    this.#stopped = reason;
    for (const pending of this.#pending.values()) pending.reject(glassboxError("InternalError", reason));
    this.#pending.clear();
    this.#worker.terminate();
  }

  #receive(reply: Reply): void {
    const pending = this.#pending.get(reply.id);
    if (pending === undefined) return;
    if (reply.kind === "event") {
      try {
        pending.onEvent?.(reply.event);
      } catch (e) {
        // A caller's callback that throws must not take the computation down with it.
        console.error(e);
      }
      return;
    }
    this.#pending.delete(reply.id);
    if (reply.kind === "value") {
      pending.resolve(reply.value);
    } else {
      pending.reject(rebuilt(reply.error));
      if (reply.fatal) this.#stop(reply.error.message);
    }
  }

  call<K extends Operation>(op: K, args: ArgsOf<K>, onEvent?: NoInfer<Listener<K>>, transfer: Transferable[] = []): Promise<ResultOf<K>> {
    if (this.#stopped !== null) return Promise.reject(glassboxError("InternalError", this.#stopped));
    const id = this.#next++;
    const request: RequestOf<K> = { id, op, args, wasmUrl: this.#wasmUrl, threads: this.threads };
    return new Promise<ResultOf<K>>((resolve, reject) => {
      // The worker answers `id` with op's own result and events; the map of pending calls
      // holds every operation, so it keeps them by their widest types.
      this.#pending.set(id, {
        resolve: resolve as (value: ResultOf<Operation>) => void,
        reject,
        onEvent: onEvent as Listener<Operation> | undefined,
      });
      this.#worker.postMessage(request, transfer);
    });
  }
}

/** The worker's error as an `Error` of the page's realm, name and message kept. */
function rebuilt({ name, message }: ErrorInfo): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

/** The package's own workers, one per thread count asked for. */
const shared = new Map<number, Connection>();

function connection(options: LoadOptions): Connection {
  const threads = threading(options.threads);
  const ownWorker = threads.threads > 1 ? new URL("./worker-threads.js", import.meta.url) : new URL("./worker.js", import.meta.url);
  if (options.workerUrl !== undefined || options.wasmUrl !== undefined) {
    const base = new URL(String(options.workerUrl ?? ownWorker), globalThis.location?.href);
    return new Connection(threads.threads > 1 ? new URL("worker-threads.js", base) : base, options.wasmUrl, threads);
  }
  let found = shared.get(threads.threads);
  if (found === undefined) {
    found = new Connection(ownWorker, undefined, threads);
    shared.set(threads.threads, found);
  }
  return found;
}

const cache = new ModelCache();

function forwardProgress(options: LoadOptions): Listener<"load" | "loadVision"> {
  return (event) => options.onProgress?.(event.data);
}

/** A language model loaded in the glassbox worker. */
export class Glassbox {
  /** The models kept on this device: `list()`, `size()`, `delete(key)`. */
  static readonly cache: ModelCache = cache;

  #connection: Connection;
  #handle: number;
  #card: ModelCard;
  #backend: BackendInfo;
  #name: string | undefined;
  #ablations = { heads: new Set<string>(), neurons: new Set<string>() };
  #disposed = false;

  private constructor(connection: Connection, handle: number, card: ModelCard, backend: BackendInfo, name: string | undefined) {
    this.#connection = connection;
    this.#handle = handle;
    this.#card = card;
    this.#backend = backend;
    this.#name = name;
  }

  /** Loads a GGUF model: a URL, a `File` or `Blob`, bytes, or the parts of a larger file in order. */
  static async load(source: ModelSource, options: LoadOptions = {}): Promise<Glassbox> {
    const blob = await toBlob(source, cache, options);
    const worker = connection(options);
    const loaded = await worker.call("load", { blob, backend: options.backend ?? "auto" }, forwardProgress(options));
    return new Glassbox(worker, loaded.handle, loaded.card, loaded.backend, sourceName(source));
  }

  /** Loads a LLaVA model: its mmproj (vision tower and projector) and its language model. */
  static loadVision(mmproj: ModelSource, languageModel: ModelSource, options: LoadOptions = {}): Promise<GlassboxVision> {
    return GlassboxVision.load(mmproj, languageModel, options);
  }

  #call<K extends Exclude<ModelOperation, ImageOperation>>(op: K, args: Omit<ArgsOf<K>, "handle">, onEvent?: Listener<K>): Promise<ResultOf<K>> {
    if (this.#disposed) return Promise.reject(glassboxError("InputError", "this model has been disposed"));
    // With the handle back these are K's arguments: the compiler cannot follow Omit for a generic K.
    return this.#connection.call(op, { ...args, handle: this.#handle } as ArgsOf<K>, onEvent);
  }

  /** The model card, as the file describes the model. */
  info(): ModelCard {
    return this.#card;
  }

  /** `"webgpu"` or `"cpu"`. */
  get backend(): BackendName {
    return this.#backend.name;
  }

  /**
   * Why the model runs on the CPU though WebGPU was wanted, or on the CPU with fewer threads than
   * the machine has (the page is not cross-origin isolated, or a kernel thread did not start);
   * null otherwise.
   */
  get fallbackReason(): string | null {
    const threads = this.#backend.name === "cpu" ? (this.#backend.threadsShortfall ?? this.#connection.threadsReason) : null;
    return [this.#backend.fallbackReason, threads].filter((reason) => reason !== null).join("; ") || null;
  }

  /** Threads the CPU kernels run on. */
  get threads(): number {
    return this.#backend.threads;
  }

  /** The device, e.g. `WebGPU: SwiftShader ...` or `CPU (wasm)`. */
  get device(): string {
    return this.#backend.device;
  }

  /** The token ids of `text`, special tokens recognised. */
  async tokenize(text: string): Promise<number[]> {
    return this.#call("tokenize", { text });
  }

  /** The model's chat template around one user message. */
  async chatPrompt(message: string): Promise<string> {
    return this.#call("chatPrompt", { message });
  }

  async generate(prompt: string, options: GenerateOptions = {}): Promise<Generation> {
    let previous = "";
    const onEvent: Listener<"generate"> = ({ data: { text } }) => {
      if (options.onToken === undefined) return;
      const piece = text.startsWith(previous) ? text.slice(previous.length) : text;
      previous = text;
      options.onToken(piece, text);
    };
    const stop = stopFlag(options.signal);
    const generation = await this.#call(
      "generate",
      { prompt, maxTokens: options.maxTokens ?? 64, temperature: options.temperature ?? 0, seed: options.seed ?? 0, stop },
      onEvent,
    );
    await this.#refreshBackend();
    return generation;
  }

  /** The next token's `topK` most likely tokens. */
  async logits(prompt: string, options: { topK?: number } = {}): Promise<NextToken[]> {
    return this.#after(this.#call("logits", { prompt, topK: options.topK ?? 10 }));
  }

  /** Log-probability-increase attribution of the next token to layers, heads, neurons and positions. */
  async attribute(prompt: string, options: AttributeOptions = {}): Promise<Attribution> {
    const { onProgress, signal, ...rest } = options;
    const onEvent: Listener<"attribute"> = ({ data: { done, total } }) => onProgress?.(done, total);
    return this.#after(this.#call("attribute", { prompt, options: rest, stop: stopFlag(signal) }, onEvent));
  }

  /** The logit lens: each layer's residual stream read through the unembedding. */
  async lens(prompt: string, options: LensOptions = {}): Promise<LogitLens> {
    return this.#after(this.#call("lens", { prompt, options }));
  }

  /**
   * The activations at the hooks `options.hooks` names, with the ablations and steering applied,
   * as the CLI's `glassbox record` writes them. Each `data` is handed over from the worker, not
   * copied.
   */
  async record(prompt: string, options: RecordOptions): Promise<Recording> {
    return this.#after(this.#call("record", { prompt, options }));
  }

  /**
   * A linear probe from the CLI's `glassbox probe train` (its safetensors file) applied to one
   * input: the text its training fields make of `fields` (as `classify` takes them), read at its
   * hook, as `glassbox probe apply` reads it.
   */
  async probe(probe: Uint8Array, fields: TaskInput): Promise<ProbeReading> {
    return this.#after(this.#call("probe", { probe, fields }));
  }

  /** `record`'s activations as the safetensors file the CLI's `glassbox record` writes. */
  async recordSafetensors(prompt: string, options: RecordOptions): Promise<Uint8Array<ArrayBuffer>> {
    return this.#after(this.#call("recordSafetensors", { prompt, options }));
  }

  /**
   * Activation patching, as the CLI's `glassbox patch`: for every layer and position, the
   * corrupted prompt run with the clean prompt's activation there, scored by how much of
   * logit(answer) − logit(wrong) it restores. The prompts must have the same number of tokens;
   * `answer` and `wrong` must each be one token.
   */
  async patch(clean: string, corrupt: string, answer: string, wrong: string, options: PatchOptions = {}): Promise<PatchingGrid> {
    const stop = stopFlag(options.signal);
    const onEvent: Listener<"patch"> = ({ data: { done, total } }) => options.onProgress?.(done, total);
    return this.#after(this.#call("patch", { clean, corrupt, answer, wrong, site: options.site ?? "resid_pre", method: options.method ?? "both", stop }, onEvent));
  }

  /** Zeroes these heads and neurons in every later `logits` and `generate`, on top of earlier ones. */
  async ablate(ablations: Ablations): Promise<void> {
    const heads = new Set([...this.#ablations.heads, ...(ablations.heads ?? [])]);
    const neurons = new Set([...this.#ablations.neurons, ...(ablations.neurons ?? [])]);
    await this.#call("setMask", { heads: [...heads], neurons: [...neurons] });
    this.#ablations = { heads, neurons };
  }

  async clearAblations(): Promise<void> {
    await this.#call("setMask", { heads: [], neurons: [] });
    this.#ablations = { heads: new Set(), neurons: new Set() };
  }

  /** The heads and neurons zeroed now. */
  get ablations(): Required<Ablations> {
    return { heads: [...this.#ablations.heads], neurons: [...this.#ablations.neurons] };
  }

  /**
   * A steering vector as a safetensors file, the same as the CLI's `glassbox steer-vector`
   * writes: the mean residual leaving `layer` at the last position over the `positive` prompts
   * minus that over the `negative` ones, computed without ablations or steering. The bytes are
   * handed over from the worker, not copied.
   */
  async steeringVector(positive: string[], negative: string[], layer: number): Promise<Uint8Array<ArrayBuffer>> {
    return this.#after(this.#call("steeringVector", { positive, negative, layer }));
  }

  /**
   * Adds `coefficient` times the vector in `vector` (from `steeringVector` or the CLI) to the
   * residual leaving `layer` in every later `logits`, `generate` and `record`, on top of earlier
   * vectors, until `clearSteering`.
   */
  async steer(vector: Uint8Array, options: SteerOptions): Promise<void> {
    await this.#call("addSteering", { vector, layer: options.layer, coefficient: options.coefficient });
  }

  async clearSteering(): Promise<void> {
    await this.#call("clearSteering", {});
  }

  /** The lexicons `classify(..., { affect: true })` reads, as URLs or `Blob`s. */
  async useLexicons(lexicons: Lexicons): Promise<void> {
    const [vader, emoji, empath, nrc] = await Promise.all([
      textOf(lexicons.vader),
      textOf(lexicons.emoji),
      textOf(lexicons.empath),
      lexicons.nrc === undefined ? undefined : textOf(lexicons.nrc),
    ]);
    await this.#call("useLexicons", { vader, emoji, empath, nrc });
  }

  /** all-MiniLM-L6-v2, which indexes built with `--embedder minilm` are queried with. */
  async useEmbedder(files: { model: string | URL | Blob | ArrayBuffer; tokenizer: string | URL | Blob; config: string | URL | Blob }): Promise<void> {
    const [model, tokenizer, config] = await Promise.all([bytesOf(files.model), bytesOf(files.tokenizer), bytesOf(files.config)]);
    await this.#call("useEmbedder", { model, tokenizer, config });
  }

  /** Classifies a claim with a task (`fmd`, `conspiracy`, `pheme`, ... or a task's JSON). */
  async classify(task: string, input: TaskInput, options: ClassifyOptions = {}): Promise<Classification> {
    const { index, onText, signal, ...rest } = options;
    const indexBytes = index === undefined ? undefined : await bytesOf(index);
    const onEvent: Listener<"classify"> = ({ data }) => onText?.(data);
    const args = { task, input, options: { ...rest, modelName: this.#name }, index: indexBytes, stop: stopFlag(signal) };
    return this.#after(this.#call("classify", args, onEvent));
  }

  /** Asks one exam question (a JSONL row's text or its object) as `glassbox exam` does. */
  async exam(question: string | ExamQuestion, options: ExamOptions = {}): Promise<ExamReply> {
    const { onText, ...rest } = options;
    const row = typeof question === "string" ? question : JSON.stringify(question);
    const onEvent: Listener<"exam"> = ({ data }) => onText?.(data);
    return this.#after(this.#call("exam", { row, options: rest }, onEvent));
  }

  /**
   * HARMONIC: up to `request.n` rows like those of `csv` (the table stays in the page), each
   * from one prompt showing a real row's five nearest rows; replies that are not rows of the
   * table are rejected and counted, never repaired.
   */
  async synthesise(csv: string, request: SynthesisRequest): Promise<Synthesis> {
    const { onAttempt, ...rest } = request;
    const onEvent: Listener<"synthesise"> = ({ data }) => onAttempt?.(data);
    return this.#after(this.#call("synthesise", { csv, request: rest }, onEvent));
  }

  /**
   * SePO's token rewards `r_t = log π_this − log π_reference` for each token of `response`,
   * and the `floor(k·N)` tokens selected (the highest, or the lowest for a rejected response).
   */
  async tokenRewards(reference: Glassbox, prompt: string, response: string, options: { k?: number; rejected?: boolean } = {}): Promise<TokenRewards> {
    if (reference.#connection !== this.#connection) {
      throw glassboxError("InputError", "the reference model was loaded with other workerUrl, wasmUrl or threads options; load both alike");
    }
    return this.#after(this.#call("tokenRewards", { reference: reference.#handle, prompt, response, k: options.k ?? 0.3, rejected: options.rejected ?? false }));
  }

  /** Frees the model in the worker. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    void this.#connection.call("dispose", { handle: this.#handle }).catch(() => undefined);
  }

  /** A lost GPU moves the model onto the CPU during a computation; the badge follows. */
  async #after<T>(result: Promise<T>): Promise<T> {
    const value = await result;
    await this.#refreshBackend();
    return value;
  }

  async #refreshBackend(): Promise<void> {
    this.#backend = await this.#call("backend", {});
  }
}

type WorkerOptions = Pick<LoadOptions, "workerUrl" | "wasmUrl">;

/** A CSV table as glassbox reads it, or an `InputError` saying what is wrong with it. */
export async function readTable(csv: string, options: WorkerOptions = {}): Promise<TableView> {
  return connection(options).call("readTable", { csv });
}

/** A baseline synthetic table (CSV): SMOTE within HARMONIC's neighbour groups, or real rows resampled. */
export async function tableBaseline(csv: string, label: string, method: "smote" | "resample", n: number, seed = 0, options: WorkerOptions = {}): Promise<string> {
  return connection(options).call("tableBaseline", { csv, label, method, n, seed });
}

/** Privacy, fidelity and, given held-out real rows (`test`), utility of a synthetic table. */
export async function evaluateTable(real: string, synthetic: string, label: string, extra: { test?: string; seed?: number } = {}, options: WorkerOptions = {}): Promise<TableReport> {
  return connection(options).call("evaluateTable", { real, synthetic, label, test: extra.test, seed: extra.seed ?? 0 });
}

/** The accuracy table of exam replies, as `glassbox evaluate --task exam` prints it. */
export async function examReport(replies: ExamReply[], options: Pick<LoadOptions, "workerUrl" | "wasmUrl"> = {}): Promise<ExamReport> {
  return connection(options).call("examReport", { replies });
}

/** A scene from the LLaVA fixture's generator (`glassbox scene`), with its question and answer. */
export interface Scene {
  png: Blob;
  prompt: string;
  answer: string;
}

/** Scene `index` of the stream `seed`, `size` pixels square (the fixture is trained on stream 1 at 96). */
export async function drawScene(seed: number, index: number, size = 96, options: Pick<LoadOptions, "workerUrl" | "wasmUrl"> = {}): Promise<Scene> {
  const drawn = await connection(options).call("scene", { seed, index, size });
  return { png: new Blob([drawn.png], { type: "image/png" }), prompt: drawn.prompt, answer: drawn.answer };
}

/** A LLaVA model (an mmproj and its language model) loaded in the glassbox worker. */
export class GlassboxVision {
  #connection: Connection;
  #handle: number;
  #disposed = false;
  /** `"webgpu"` or `"cpu"`: where the language model computes. */
  readonly backend: BackendName;

  private constructor(connection: Connection, handle: number, backend: BackendName) {
    this.#connection = connection;
    this.#handle = handle;
    this.backend = backend;
  }

  /** As `Glassbox.loadVision`. */
  static async load(mmproj: ModelSource, languageModel: ModelSource, options: LoadOptions = {}): Promise<GlassboxVision> {
    const [mmprojBlob, lmBlob] = [await toBlob(mmproj, cache, options), await toBlob(languageModel, cache, options)];
    const worker = connection(options);
    const loaded = await worker.call("loadVision", { mmproj: mmprojBlob, lm: lmBlob, backend: options.backend ?? "auto" }, forwardProgress(options));
    return new GlassboxVision(worker, loaded.handle, loaded.backend);
  }

  async #call<K extends ImageOperation>(op: K, image: ImageSource, args: Omit<ArgsOf<K>, "handle" | "image">): Promise<ResultOf<K>> {
    if (this.#disposed) throw glassboxError("InputError", "this model has been disposed");
    const bytes = await imageBytes(image);
    // With the handle and image back these are K's arguments: the compiler cannot follow Omit for a generic K.
    return this.#connection.call(op, { ...args, handle: this.#handle, image: bytes } as ArgsOf<K>, undefined, [bytes.buffer]);
  }

  /** The `k` most likely answers to `prompt` (with one `<image>`) about `image`. */
  async answer(image: ImageSource, prompt: string, options: { k?: number } = {}): Promise<VisualAnswer> {
    return this.#call("answer", image, { prompt, k: options.k ?? 5 });
  }

  /** Which image patches the answer comes from: LPI through the top head, attention-mean, or occlusion. */
  async heatmap(image: ImageSource, prompt: string, options: HeatmapOptions = {}): Promise<PatchHeatmap> {
    return this.#call("heatmap", image, { prompt, options });
  }

  /** The visual logit lens: each image patch's residual stream read as tokens, layer by layer. */
  async lens(image: ImageSource, prompt: string, options: { layers?: number[]; topK?: number } = {}): Promise<VisualLens> {
    return this.#call("visualLens", image, { prompt, options });
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    void this.#connection.call("dispose", { handle: this.#handle }).catch(() => undefined);
  }
}
