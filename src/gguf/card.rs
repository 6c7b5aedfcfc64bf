use std::collections::BTreeMap;

use serde::Serialize;

use super::error::{GgufError, Result};
use super::parse::Gguf;
use super::value::Value;

/// What a person wants to know about a model file before loading it.
///
/// Hyperparameters are read from the `{architecture}.*` keys that llama.cpp writes; a key the file
/// lacks is `None` rather than a guess.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelCard {
    pub architecture: String,
    pub name: Option<String>,
    pub gguf_version: u32,
    pub file_size: u64,
    pub context_length: Option<u64>,
    pub layers: Option<u64>,
    pub heads: Option<u64>,
    pub kv_heads: Option<u64>,
    pub embedding_size: Option<u64>,
    pub vocab_size: Option<u64>,
    /// Positions a local layer attends over (`{arch}.attention.sliding_window`).
    pub sliding_window: Option<u64>,
    /// The layers that attend over every position when others use the sliding window (gemma3:
    /// every sixth, as llama.cpp reads it); empty without a window.
    pub global_layers: Vec<u64>,
    pub tokenizer_model: Option<String>,
    pub parameter_count: u64,
    pub tensor_count: usize,
    /// Number of tensors of each ggml type, keyed by the type's ggml name.
    pub tensor_types: BTreeMap<String, usize>,
}

impl ModelCard {
    pub fn from_gguf(gguf: &Gguf) -> Result<Self> {
        let architecture = gguf
            .get("general.architecture")
            .ok_or_else(|| GgufError::MissingKey("general.architecture".into()))?
            .as_str()
            .ok_or_else(|| GgufError::WrongValueType {
                key: "general.architecture".into(),
                found: gguf.get("general.architecture").map_or("nothing", |v| v.value_type().name()),
                expected: "string",
            })?
            .to_string();
        let arch_u64 = |suffix: &str| gguf.get(&format!("{architecture}.{suffix}")).and_then(Value::as_u64);
        let heads = arch_u64("attention.head_count");
        // llama.cpp: a missing head_count_kv means one kv head per query head (no GQA).
        let kv_heads = arch_u64("attention.head_count_kv").or(heads);
        let vocab_size = arch_u64("vocab_size")
            .or_else(|| gguf.get("tokenizer.ggml.tokens").and_then(Value::as_array).map(|tokens| tokens.len() as u64));
        let sliding_window = arch_u64("attention.sliding_window");
        let global_layers = match (architecture.as_str(), sliding_window, arch_u64("block_count")) {
            ("gemma3", Some(_), Some(layers)) => (0..layers.min(1 << 16)).filter(|l| l % 6 == 5).collect(),
            _ => Vec::new(),
        };
        let mut tensor_types = BTreeMap::new();
        for tensor in &gguf.tensors {
            *tensor_types.entry(tensor.ggml_type.name().to_string()).or_insert(0) += 1;
        }
        Ok(ModelCard {
            name: gguf.get("general.name").and_then(Value::as_str).map(str::to_string),
            gguf_version: gguf.version,
            file_size: gguf.file_len,
            context_length: arch_u64("context_length"),
            layers: arch_u64("block_count"),
            heads,
            kv_heads,
            embedding_size: arch_u64("embedding_length"),
            vocab_size,
            sliding_window,
            global_layers,
            tokenizer_model: gguf.get("tokenizer.ggml.model").and_then(Value::as_str).map(str::to_string),
            parameter_count: gguf.tensors.iter().map(|t| t.element_count()).sum(),
            tensor_count: gguf.tensors.len(),
            tensor_types,
            architecture,
        })
    }
}

impl std::fmt::Display for ModelCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
            v.as_ref().map_or_else(|| "unknown".to_string(), T::to_string)
        }
        writeln!(f, "name:            {}", opt(&self.name))?;
        writeln!(f, "architecture:    {}", self.architecture)?;
        writeln!(f, "gguf version:    {}", self.gguf_version)?;
        writeln!(f, "file size:       {} bytes", self.file_size)?;
        writeln!(f, "parameters:      {}", self.parameter_count)?;
        writeln!(f, "context length:  {}", opt(&self.context_length))?;
        writeln!(f, "layers:          {}", opt(&self.layers))?;
        writeln!(f, "heads:           {}", opt(&self.heads))?;
        writeln!(f, "kv heads:        {}", opt(&self.kv_heads))?;
        writeln!(f, "embedding size:  {}", opt(&self.embedding_size))?;
        writeln!(f, "vocab size:      {}", opt(&self.vocab_size))?;
        if let Some(window) = self.sliding_window {
            let global: Vec<String> = self.global_layers.iter().map(u64::to_string).collect();
            let global = if global.is_empty() { "none".to_string() } else { global.join(", ") };
            writeln!(f, "sliding window:  {window} positions (global layers: {global})")?;
        }
        writeln!(f, "tokenizer:       {}", opt(&self.tokenizer_model))?;
        let types: Vec<String> = self.tensor_types.iter().map(|(t, n)| format!("{t} x{n}")).collect();
        write!(f, "tensors:         {} ({})", self.tensor_count, types.join(", "))
    }
}
