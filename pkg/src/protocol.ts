/**
 * Messages between the page and the glassbox worker. A request names an operation; the worker
 * answers it once with a value or an error, and may send events (progress, tokens, text) for
 * it before that. `Operations` is the one list both sides compile against.
 */
import type { AttributeOptions, ClassifyOptions, ExamOptions, HeatmapOptions, LensOptions, RecordOptions, SynthesisRequest, TaskInput } from "./index.js";
import type { LoadProgress } from "./source.js";
import type {
  Attribution,
  BackendInfo,
  BackendName,
  Classification,
  ExamReply,
  ExamReport,
  Synthesis,
  SynthesisAttempt,
  TableReport,
  TableView,
  Generation,
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

/** A model loaded in the worker, named by the handle `load` or `loadVision` returned. */
interface OnModel {
  handle: number;
}

/** An image question to a vision model: the image's PNG or JPEG bytes, and the prompt. */
interface OnImage extends OnModel {
  image: Uint8Array;
  prompt: string;
}

interface LoadEvents {
  progress: LoadProgress;
}

/** Each operation the worker handles: its arguments, its result and the events it streams. */
export interface Operations {
  load: {
    args: { blob: Blob; backend: "auto" | BackendName };
    result: { handle: number; card: ModelCard; backend: BackendInfo };
    events: LoadEvents;
  };
  loadVision: {
    args: { mmproj: Blob; lm: Blob; backend: "auto" | BackendName };
    result: { handle: number; backend: BackendName };
    events: LoadEvents;
  };
  dispose: { args: OnModel; result: null };
  backend: { args: OnModel; result: BackendInfo };
  tokenize: { args: OnModel & { text: string }; result: number[] };
  chatPrompt: { args: OnModel & { message: string }; result: string };
  logits: { args: OnModel & { prompt: string; topK: number }; result: NextToken[] };
  generate: {
    /** `stop` is a shared flag the page sets to stop early: the generation holds the worker's thread, so no message could. */
    args: OnModel & { prompt: string; maxTokens: number; temperature: number; seed: number; stop: SharedArrayBuffer | undefined };
    result: Generation;
    /** The text generated so far, after each token. */
    events: { token: { text: string; id: number } };
  };
  attribute: {
    /** `stop`: as for `generate`. */
    args: OnModel & { prompt: string; options: Omit<AttributeOptions, "onProgress" | "signal">; stop: SharedArrayBuffer | undefined };
    result: Attribution;
    /** The steps done, after each. */
    events: { progress: { done: number; total: number } };
  };
  lens: { args: OnModel & { prompt: string; options: LensOptions }; result: LogitLens };
  record: { args: OnModel & { prompt: string; options: RecordOptions }; result: Recording };
  probe: { args: OnModel & { probe: Uint8Array; fields: TaskInput }; result: ProbeReading };
  recordSafetensors: { args: OnModel & { prompt: string; options: RecordOptions }; result: Uint8Array<ArrayBuffer> };
  patch: {
    /** `stop`: as for `generate`. */
    args: OnModel & { clean: string; corrupt: string; answer: string; wrong: string; site: PatchSite; method: PatchMethod; stop: SharedArrayBuffer | undefined };
    result: PatchingGrid;
    /** The forward passes made, after each. */
    events: { progress: { done: number; total: number } };
  };
  setMask: { args: OnModel & { heads: string[]; neurons: string[] }; result: null };
  /** The vector as a safetensors file, as the CLI's `steer-vector` writes it. */
  steeringVector: { args: OnModel & { positive: string[]; negative: string[]; layer: number }; result: Uint8Array<ArrayBuffer> };
  addSteering: { args: OnModel & { vector: Uint8Array; layer: number; coefficient: number }; result: null };
  clearSteering: { args: OnModel; result: null };
  useLexicons: { args: OnModel & { vader: string; emoji: string; empath: string; nrc: string | undefined }; result: null };
  useEmbedder: { args: OnModel & { model: Uint8Array; tokenizer: Uint8Array; config: Uint8Array }; result: null };
  classify: {
    args: OnModel & {
      task: string;
      input: TaskInput;
      options: Omit<ClassifyOptions, "index" | "onText" | "signal"> & { modelName: string | undefined };
      index: Uint8Array | undefined;
      /** `stop`: as for `generate`. */
      stop: SharedArrayBuffer | undefined;
    };
    result: Classification;
    /** A piece of the explanation, as it is generated. */
    events: { text: string };
  };
  exam: {
    args: OnModel & { row: string; options: Omit<ExamOptions, "onText"> };
    result: ExamReply;
    /** A piece of the reply, as it is generated. */
    events: { text: string };
  };
  examReport: { args: { replies: ExamReply[] }; result: ExamReport };
  synthesise: {
    args: OnModel & { csv: string; request: Omit<SynthesisRequest, "onAttempt"> };
    result: Synthesis;
    /** Each prompt's reply, as it ends. */
    events: { attempt: SynthesisAttempt };
  };
  readTable: { args: { csv: string }; result: TableView };
  tableBaseline: { args: { csv: string; label: string; method: "smote" | "resample"; n: number; seed: number }; result: string };
  evaluateTable: { args: { real: string; synthetic: string; label: string; test: string | undefined; seed: number }; result: TableReport };
  tokenRewards: { args: OnModel & { reference: number; prompt: string; response: string; k: number; rejected: boolean }; result: TokenRewards };
  scene: { args: { seed: number; index: number; size: number }; result: { png: Uint8Array<ArrayBuffer>; prompt: string; answer: string } };
  answer: { args: OnImage & { k: number }; result: VisualAnswer };
  heatmap: { args: OnImage & { options: HeatmapOptions }; result: PatchHeatmap };
  visualLens: { args: OnImage & { options: { layers?: number[]; topK?: number } }; result: VisualLens };
}

export type Operation = keyof Operations;
export type ArgsOf<K extends Operation> = Operations[K]["args"];
export type ResultOf<K extends Operation> = Operations[K]["result"];

/** The operations on one loaded model. */
export type ModelOperation = { [K in Operation]: ArgsOf<K> extends OnModel ? K : never }[Operation];
/** The operations that ask a vision model about an image. */
export type ImageOperation = { [K in Operation]: ArgsOf<K> extends OnImage ? K : never }[Operation];

type EventsOf<K extends Operation> = Operations[K] extends { events: infer Events } ? Events : Record<never, never>;

/** One event of an operation `K`; none for an operation that streams nothing. */
export type OperationEvent<K extends Operation> = K extends Operation
  ? { [Name in keyof EventsOf<K>]: { name: Name; data: EventsOf<K>[Name] } }[keyof EventsOf<K>]
  : never;

export interface RequestOf<K extends Operation> {
  id: number;
  op: K;
  args: ArgsOf<K>;
  /** Where `glassbox_bg.wasm` is served, when not beside the worker. */
  wasmUrl: string | undefined;
  /** Threads the page asks the CPU kernels to run on (the build with threads starts them). */
  threads: number;
}

export type Request = { [K in Operation]: RequestOf<K> }[Operation];

export interface ErrorInfo {
  /** A `GlassboxErrorName`, or the name of an error from outside glassbox. */
  name: string;
  message: string;
}

export type Reply<K extends Operation = Operation> =
  | { id: number; kind: "value"; value: ResultOf<K> }
  | { id: number; kind: "error"; error: ErrorInfo; fatal: boolean }
  | { id: number; kind: "event"; event: OperationEvent<K> };
