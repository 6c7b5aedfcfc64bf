//! Hyperparameters of a Llama-family model, read from GGUF metadata.

use super::{ModelError, Result};
use crate::gguf::{Gguf, Value};

/// The architectures glassbox runs, as `general.architecture` names them.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama", "mistral", "qwen2", "qwen3", "gemma3", "phi3"];

/// How rotary embeddings pair up dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Llama, Mistral: dimensions (2i, 2i+1) rotate together (llama.cpp's "norm").
    Interleaved,
    /// Qwen2 and other GPT-NeoX-style models: dimensions (i, i + n/2) rotate together.
    Neox,
}

/// The MLP's gate nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateActivation {
    /// SwiGLU: `silu(gate) ⊙ up` (Llama, Mistral, Qwen).
    Silu,
    /// GeGLU with GELU's tanh approximation (Gemma).
    GeluTanh,
}

/// Gemma 3's local layers: attention over the last `size` positions only, rotated with their own
/// base. Every `period`-th layer (the last of each period) is global.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlidingWindow {
    pub size: usize,
    pub period: usize,
    pub rope_theta: f32,
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
    /// Linear rope scaling of the global layers: positions divided by this (1 when absent).
    pub rope_scale: f32,
    /// What rope's cos and sin are multiplied by, so queries and keys too
    /// (`rope.scaling.attn_factor`; Phi-3's long-context files store
    /// √(1 + ln(context / original) / ln(original)) there): 1 when absent.
    pub rope_magnitude: f32,
    /// The context before the rope was scaled (`rope.scaling.original_context_length`).
    pub original_context_length: Option<usize>,
    pub rope_style: RopeStyle,
    pub gate_activation: GateActivation,
    /// RMSNorm over each head's queries and keys before rope (`attn_q_norm`, `attn_k_norm`).
    pub qk_norm: bool,
    /// RMSNorm on the attention and MLP outputs before they join the residual
    /// (`post_attention_norm`, `post_ffw_norm`).
    pub post_norms: bool,
    /// What the embedding rows are multiplied by as they enter the residual (Gemma: √width).
    pub embedding_scale: Option<f32>,
    /// The factor on query·key scores: 1/√head_dim unless the model says otherwise.
    pub attention_scale: f32,
    pub sliding_window: Option<SlidingWindow>,
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
        let gemma = architecture == "gemma3";
        let sliding_window = if gemma {
            let size = required("attention.sliding_window", 1 << 24)?;
            // As llama.cpp reads gemma3: five local layers, then a global one, the local ones
            // rotating with base 10⁴ unscaled (neither is stored in the file).
            Some(SlidingWindow { size, period: 6, rope_theta: 10_000.0 })
        } else {
            None
        };
        let rope_scale = match gguf.get(&key("rope.scaling.type")).and_then(Value::as_str) {
            None | Some("none") => 1.0,
            Some("linear") => {
                let factor = float("rope.scaling.factor", 1.0);
                if !(factor.is_finite() && factor > 0.0) {
                    return Err(ModelError::BadHyperparameter {
                        key: key("rope.scaling.factor"),
                        value: factor.to_string(),
                    });
                }
                factor as f32
            }
            Some(other) => {
                return Err(ModelError::BadHyperparameter { key: key("rope.scaling.type"), value: other.to_string() })
            }
        };
        let rope_magnitude = float("rope.scaling.attn_factor", 1.0);
        if !(rope_magnitude.is_finite() && rope_magnitude > 0.0) {
            return Err(ModelError::BadHyperparameter {
                key: key("rope.scaling.attn_factor"),
                value: rope_magnitude.to_string(),
            });
        }
        let original_context_length = match gguf.get(&key("rope.scaling.original_context_length")) {
            Some(_) => Some(required("rope.scaling.original_context_length", context_length)?),
            None => None,
        };
        Ok(Config {
            rope_magnitude: rope_magnitude as f32,
            original_context_length,
            rope_style: if architecture == "llama" || architecture == "mistral" {
                RopeStyle::Interleaved
            } else {
                RopeStyle::Neox
            },
            norm_eps: float("attention.layer_norm_rms_epsilon", 1e-5),
            rope_theta: float("rope.freq_base", 10_000.0) as f32,
            rope_scale,
            gate_activation: if gemma { GateActivation::GeluTanh } else { GateActivation::Silu },
            qk_norm: gemma || architecture == "qwen3",
            post_norms: gemma,
            embedding_scale: gemma.then(|| (width as f32).sqrt()),
            attention_scale: 1.0 / (head_dim as f32).sqrt(),
            sliding_window,
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

    /// Which hook points the model has.
    pub fn hook_shape(&self) -> crate::hooks::HookShape {
        crate::hooks::HookShape { layers: self.layers, post_norms: self.post_norms }
    }

    /// How many positions layer `layer` attends over (`None`: all before it).
    pub fn attention_window(&self, layer: usize) -> Option<usize> {
        self.sliding_window.filter(|w| !self.is_global(layer, w)).map(|w| w.size)
    }

    /// Layer `layer`'s rotation: its base and the linear scaling that applies to it.
    pub fn layer_rope(&self, layer: usize) -> (f32, f32) {
        match self.sliding_window {
            Some(w) if !self.is_global(layer, &w) => (w.rope_theta, 1.0),
            _ => (self.rope_theta, self.rope_scale),
        }
    }

    fn is_global(&self, layer: usize, window: &SlidingWindow) -> bool {
        layer % window.period == window.period - 1
    }
}
