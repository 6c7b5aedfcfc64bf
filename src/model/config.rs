//! Hyperparameters of a Llama-family model, read from GGUF metadata.

use super::{ModelError, Result};
use crate::gguf::{Gguf, Value};

/// The architectures glassbox runs, as `general.architecture` names them.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama", "mistral", "qwen2"];

/// How rotary embeddings pair up dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Llama, Mistral: dimensions (2i, 2i+1) rotate together (llama.cpp's "norm").
    Interleaved,
    /// Qwen2 and other GPT-NeoX-style models: dimensions (i, i + n/2) rotate together.
    Neox,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub architecture: String,
    pub layers: usize,
    pub width: usize,
    pub ffn_width: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub context_length: usize,
    pub norm_eps: f64,
    pub rope_theta: f32,
    pub rope_style: RopeStyle,
}

/// Width and layer counts beyond these are not real models; they would only size allocations.
const MAX_DIM: usize = 1 << 20;
const MAX_LAYERS: usize = 1024;

impl Config {
    pub fn from_gguf(gguf: &Gguf) -> Result<Self> {
        let architecture = gguf
            .get("general.architecture")
            .and_then(Value::as_str)
            .ok_or_else(|| ModelError::MissingKey("general.architecture".into()))?
            .to_string();
        if !SUPPORTED_ARCHITECTURES.contains(&architecture.as_str()) {
            return Err(ModelError::UnsupportedArchitecture {
                found: architecture,
                supported: SUPPORTED_ARCHITECTURES,
            });
        }
        let key = |suffix: &str| format!("{architecture}.{suffix}");
        let required = |suffix: &str, max: usize| -> Result<usize> {
            let k = key(suffix);
            let v = gguf.get(&k).and_then(Value::as_u64).ok_or_else(|| ModelError::MissingKey(k.clone()))?;
            usize::try_from(v)
                .ok()
                .filter(|&v| v > 0 && v <= max)
                .ok_or(ModelError::BadHyperparameter { key: k, value: v.to_string() })
        };
        let layers = required("block_count", MAX_LAYERS)?;
        let width = required("embedding_length", MAX_DIM)?;
        let ffn_width = required("feed_forward_length", MAX_DIM)?;
        let heads = required("attention.head_count", MAX_DIM)?;
        let kv_heads = match gguf.get(&key("attention.head_count_kv")) {
            Some(_) => required("attention.head_count_kv", MAX_DIM)?,
            None => heads,
        };
        let head_dim = match gguf.get(&key("attention.key_length")) {
            Some(_) => required("attention.key_length", MAX_DIM)?,
            None => width / heads,
        };
        if heads % kv_heads != 0 || head_dim % 2 != 0 {
            return Err(ModelError::BadHyperparameter {
                key: key("attention.head_count_kv"),
                value: format!("{kv_heads} kv heads for {heads} heads of size {head_dim}"),
            });
        }
        let vocab_size = match gguf.get(&key("vocab_size")) {
            Some(_) => required("vocab_size", 1 << 24)?,
            None => gguf
                .get("tokenizer.ggml.tokens")
                .and_then(Value::as_array)
                .map(|a| a.len())
                .ok_or_else(|| ModelError::MissingKey(key("vocab_size")))?,
        };
        let context_length = required("context_length", 1 << 24)?;
        let float = |suffix: &str, default: f64| gguf.get(&key(suffix)).and_then(Value::as_f64).unwrap_or(default);
        // Llama, Mistral and Qwen2 rotate the whole head; partial rotary is another family.
        if let Some(dims) = gguf.get(&key("rope.dimension_count")).and_then(Value::as_u64) {
            if dims != head_dim as u64 {
                return Err(ModelError::BadHyperparameter {
                    key: key("rope.dimension_count"),
                    value: format!("{dims} (the heads are {head_dim} wide)"),
                });
            }
        }
        Ok(Config {
            rope_style: if architecture == "qwen2" { RopeStyle::Neox } else { RopeStyle::Interleaved },
            norm_eps: float("attention.layer_norm_rms_epsilon", 1e-5),
            rope_theta: float("rope.freq_base", 10_000.0) as f32,
            architecture,
            layers,
            width,
            ffn_width,
            heads,
            kv_heads,
            head_dim,
            vocab_size,
            context_length,
        })
    }
}
