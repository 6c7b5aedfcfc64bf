/** The JSON the core's `inspectGguf` returns (see src/inspect.rs and src/gguf/card.rs). */
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

export interface ModelSummary {
  card: ModelCard;
  tensors: TensorInfo[];
}
