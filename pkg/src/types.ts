/**
 * The values glassbox returns. Each mirrors the JSON of the native CLI's command of the same
 * name (`glassbox logits|attribute|lens|generate|heatmap|lens-image|classify|token-rewards
 * --json`), so results can be compared across the two; a `Recording` holds the tensors that
 * `glassbox record` writes to a safetensors file.
 */

/** What a model file says about itself (`inspectGguf(...).card`, src/gguf/card.rs). */
export interface ModelCard {
  architecture: string;
  name: string | null;
  gguf_version: number;
  file_size: number;
  context_length: number | null;
  layers: number | null;
  heads: number | null;
  kv_heads: number | null;
  embedding_size: number | null;
  vocab_size: number | null;
  /** Positions a local layer attends over (Gemma 3), or null without a sliding window. */
  sliding_window: number | null;
  /** The layers that attend over every position when the others use the window. */
  global_layers: number[];
  tokenizer_model: string | null;
  parameter_count: number;
  tensor_count: number;
  tensor_types: Record<string, number>;
}

export interface TensorInfo {
  name: string;
  ggml_type: string;
  shape: number[];
  file_offset: number;
  byte_len: number;
}

export type BackendName = "webgpu" | "cpu";

/** Where a model computes, and why not on WebGPU when that was wanted. */
export interface BackendInfo {
  name: BackendName;
  /** e.g. `WebGPU: SwiftShader (...)` or `CPU (wasm)`. */
  device: string;
  fallbackReason: string | null;
  /** Threads the CPU kernels run on. */
  threads: number;
  /** Why fewer kernel threads started than were asked for, when some did not. */
  threadsShortfall: string | null;
}

export interface NextToken {
  id: number;
  token: string;
  logprob: number;
  prob: number;
}

export type StopReason = "end_of_sequence" | "stop_string" | "max_tokens" | "context_full" | "cancelled";

export interface Generation {
  text: string;
  ids: number[];
  stop_reason: StopReason;
}

export interface LayerScore {
  layer: number;
  /** `LPI(x_l, a_l)`. */
  attention: number;
  /** `LPI(r_l, f_l)`. */
  ffn: number;
}

export interface HeadScore {
  layer: number;
  head: number;
  score: number;
}

export interface NeuronScore {
  layer: number;
  neuron: number;
  score: number;
  /** False where the score is the first-order approximation. */
  exact: boolean;
}

/** `c_{l,h,t}`: what position `t` contributes through head `l.h`. */
export interface PositionScore {
  layer: number;
  head: number;
  position: number;
  token: string;
  score: number;
}

export interface ValueNeuronScore {
  layer: number;
  head: number;
  dim: number;
  position: number;
  score: number;
  exact: boolean;
}

export interface QueryNeuronScore {
  layer: number;
  neuron: number;
  position: number;
  score: number;
}

/** Log-probability-increase attribution of the next token (src/interp/attribution.rs). */
export interface Attribution {
  target: { id: number; token: string; logprob: number };
  scale: number;
  input_tokens: string[];
  layers: LayerScore[];
  heads: HeadScore[];
  neurons: NeuronScore[];
  exact_neurons: number;
  /** For the top heads only (ten by default). */
  positions: PositionScore[];
  value_neurons: ValueNeuronScore[];
  query_neurons: QueryNeuronScore[];
  /** Only when asked for with `graph: true`. */
  graph?: AttributionGraph;
}

/** Head (layer, head) carrying position `position`'s residual into the last one: `c`, exact. */
export interface GraphEdge {
  layer: number;
  head: number;
  position: number;
  score: number;
}

/**
 * The flow into the explained token: nodes are (layer, position) residual states, edges each
 * head's contribution from a position into the last one. The MLPs act on the last position's
 * nodes directly, with the scores in `layers[l].ffn`.
 */
export interface AttributionGraph {
  /** Every edge (layers × heads × positions), scored to first order to choose the exact ones. */
  edges_scored: number;
  /** The strongest edges, exact, by |score| largest first. */
  edges: GraphEdge[];
}

export interface LensToken {
  id: number;
  token: string;
  prob: number;
}

export interface LogitLens {
  scale: "fixed" | "own_rms";
  input_tokens: string[];
  cells: { layer: number; position: number; tokens: LensToken[] }[];
}

/**
 * One hook's activations: `data` is row-major over `shape`, whose first axis (the second for
 * `attn.hook_pattern`, `[H, t, k]`) runs over `positions`. The shapes are those of src/hooks.rs:
 * `[t, d]` for the residual hooks, `[t, H, h]` for `attn.hook_z`, `[t, KV, h]` for `attn.hook_v`.
 */
export interface Activation {
  shape: number[];
  positions: number[];
  data: Float32Array;
}

/** The hooks recorded, by TransformerLens name (`blocks.3.attn.hook_pattern`). */
export type Recording = Record<string, Activation>;

/** A linear probe's reading of one input (`glassbox probe apply`'s row). */
export interface ProbeReading {
  /** The hook the probe reads, by TransformerLens name. */
  hook: string;
  label: string;
  probabilities: Record<string, number>;
}

/** The activation activation patching copies from the clean run into the corrupted one: `head` is each head's output at every position. */
export type PatchSite = "resid_pre" | "attn_out" | "mlp_out" | "head";

/** How the grid is computed: one patched forward pass per cell, every cell to first order from one backward pass (attribution patching), or both. */
export type PatchMethod = "exact" | "attribution" | "both";

/** `glassbox patch --json`'s output: the layers × positions grid of activation patching. */
export interface PatchingGrid {
  site: PatchSite;
  /** What the grid's columns are: the clean prompt's positions, or (for the `head` site) the heads. */
  columns: "positions" | "heads";
  /** The clean prompt's tokens. */
  tokens: string[];
  corrupt_tokens: string[];
  answer: string;
  wrong: string;
  /** logit(answer) − logit(wrong) at the last position of each run. */
  clean_metric: number;
  corrupt_metric: number;
  /** `grid[layer][column]`: the fraction of the metric restored (1 clean, 0 corrupted), when computed exactly. */
  grid?: number[][];
  /** The same cells to first order (attribution patching), normalised alike. */
  attribution_grid?: number[][];
  /** Pearson's correlation between the two grids' cells, when both were computed. */
  correlation?: number;
}

export type HeatmapMethod = "lpi" | "attention" | "occlusion";

export interface PatchHeatmap {
  target: LensToken;
  heatmap: {
    method: HeatmapMethod;
    grid: number;
    /** Normalised to sum to 1, row-major over the patch grid. */
    cells: Float32Array;
    raw: number[];
    heads?: HeadScore[];
  };
}

export interface VisualAnswer {
  answer: LensToken;
  top: LensToken[];
}

export interface VisualLens {
  grid: number;
  cells: { layer: number; patch: number; row: number; col: number; tokens: LensToken[] }[];
}

/** An input token that drove a verdict; `start`/`end` count Unicode code points in `field`. */
export interface Evidence {
  field: string;
  token: string;
  start: number;
  end: number;
  score: number;
}

export interface Affect {
  vader: { neg: number; neu: number; pos: number; compound: number };
  empath: Record<string, number>;
  nrc?: Record<string, number>;
  /** The model's own sentiment intensity, in [0, 1]. */
  llm_intensity: number;
}

export interface Classification {
  id: string;
  label: string | null;
  probs: Record<string, number>;
  generation?: string;
  explanation?: string;
  evidence?: Evidence[];
  affect?: Affect;
  retrieved?: { id: string; label: string; score: number }[];
}

export interface TokenReward {
  position: number;
  id: number;
  token: string;
  oracle_logprob: number;
  reference_logprob: number;
  /** `r_t = log π_oracle − log π_ref`. */
  reward: number;
  selected: boolean;
}

export interface TokenRewards {
  k: number;
  rejected: boolean;
  selected_count: number;
  tokens: TokenReward[];
}

/** An option letter. */
export type Letter = "A" | "B" | "C" | "D";

/**
 * An exam question as `glassbox exam` reads it (EMPEC's item): the options A–D inside
 * `question`, or in `options` (then written after it as `\nA. …`).
 */
export interface ExamQuestion {
  id: string | number;
  question: string;
  options?: Record<Letter, string>;
  answer?: Letter;
  profession?: string;
  subject?: string;
  /** `zh…` or `en…`; without it, Chinese when the question has a Han character. */
  language?: string;
}

/** A question answered: `glassbox exam`'s output row. */
export interface ExamReply {
  id: string;
  mode: "generate" | "score";
  language: "zh" | "en";
  profession?: string;
  subject?: string;
  /** The reply, in generate mode. */
  output?: string;
  /** P(letter) among the four as the reply's start, in score mode. */
  probs?: Record<Letter, number>;
  /** The letter eval_empec's extraction reads (generate) or the most probable (score); null: no answer. */
  answer: Letter | null;
  /** The normalised reading (full-width forms as ASCII, traditional and simplified alike), in generate mode. */
  answer_normalised?: Letter | null;
  gold?: Letter;
  correct?: boolean;
}

export interface ExamTally {
  count: number;
  correct: number;
  accuracy: number;
}

/** Accuracy overall, per profession and per subject; no answer counts as wrong. */
export interface ExamReport {
  overall: ExamTally;
  no_answer: number;
  /** The uniform guess among four options, 0.25. */
  chance: number;
  by_profession: Record<string, ExamTally>;
  by_subject: Record<string, ExamTally>;
  /** The normalised reading over the same questions (generate mode). */
  normalised?: ExamTally;
}

/** A CSV table as glassbox reads it: numeric columns hold a finite number in every row. */
export interface TableView {
  columns: string[];
  kinds: ("numeric" | "categorical")[];
  rows: string[][];
}

/** One HARMONIC prompt and what came of it. */
export interface SynthesisAttempt {
  /** The real row whose five nearest rows were the examples. */
  anchor: number;
  examples: number[];
  reply: string;
  /** Why the reply gave no row: not_json, missing_column, unknown_column, not_a_value, not_a_number or unknown_category. */
  rejected?: string;
  column?: string;
}

export interface Synthesis {
  rows: string[][];
  attempts: SynthesisAttempt[];
}

export interface ClassifierScores {
  accuracy?: number;
  macro_f1?: number;
  /** Why the classifier could not be trained (for example, one class only). */
  not_trained?: string;
}

export interface Efficiency {
  logistic_regression: ClassifierScores;
  random_forest: ClassifierScores;
}

/** `glassbox harmonic evaluate`'s report. */
export interface TableReport {
  real_rows: number;
  synthetic_rows: number;
  /** The 5th percentile of each synthetic row's distance to its closest real row. */
  dcr_p5: number;
  dcr_median: number;
  /** The share of synthetic rows that copy a real row exactly. */
  copies: number;
  copied_rows: number;
  fidelity: {
    columns: Record<string, { kind: "numeric" | "categorical"; statistic: "ks" | "tv"; value: number }>;
    mean_ks?: number;
    mean_tv?: number;
    correlation_mean_abs_difference?: number;
    correlation_max_abs_difference?: number;
    correlation_undefined_pairs: number;
  };
  /** Classifiers trained on the synthetic rows and on the real ones, tested on held-out rows. */
  mle: { synthetic: Efficiency; real: Efficiency; test_rows: number } | null;
}
