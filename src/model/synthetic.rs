//! A llama-architecture GGUF with random weights, of any size: speed measurements need models
//! larger than any real one this project can fetch. The tokenizer is copied from a real GGUF so
//! the same prompts tokenise; the outputs mean nothing.

use crate::gguf::write::{Metadata, NewTensor};
use crate::gguf::{GgmlType, Gguf, Value};
use crate::numeric::Rng;

/// A llama model's hyperparameters. The vocabulary is the tokenizer's.
#[derive(Clone, Debug)]
pub struct LlamaShape {
    pub layers: usize,
    pub width: usize,
    pub ffn_width: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub context_length: usize,
}

impl LlamaShape {
    /// llama hyperparameters named `name`, plus every `tokenizer.*` key of `tokenizer_source`.
    pub fn metadata(&self, name: String, tokenizer_source: &Gguf) -> Result<Metadata, SyntheticError> {
        let vocab = vocab_size(tokenizer_source)?;
        let u32_value = |n: usize| Value::U32(n as u32);
        let mut metadata = vec![
            ("general.architecture".to_string(), Value::String("llama".into())),
            ("general.name".to_string(), Value::String(name)),
            ("llama.context_length".to_string(), u32_value(self.context_length)),
            ("llama.embedding_length".to_string(), u32_value(self.width)),
            ("llama.block_count".to_string(), u32_value(self.layers)),
            ("llama.feed_forward_length".to_string(), u32_value(self.ffn_width)),
            ("llama.attention.head_count".to_string(), u32_value(self.heads)),
            ("llama.attention.head_count_kv".to_string(), u32_value(self.kv_heads)),
            ("llama.rope.freq_base".to_string(), Value::F32(10000.0)),
            ("llama.attention.layer_norm_rms_epsilon".to_string(), Value::F32(1e-5)),
            ("llama.vocab_size".to_string(), u32_value(vocab)),
        ];
        metadata.extend(
            tokenizer_source
                .metadata
                .iter()
                .filter(|(k, _)| k.starts_with("tokenizer."))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        Ok(metadata)
    }
}

/// The number of tokens in `tokenizer_source`'s vocabulary.
pub fn vocab_size(tokenizer_source: &Gguf) -> Result<usize, SyntheticError> {
    tokenizer_source
        .get("tokenizer.ggml.tokens")
        .and_then(Value::as_array)
        .map(|tokens| tokens.len())
        .ok_or(SyntheticError::MissingTokenizer("tokenizer.ggml.tokens"))
}

/// A model of random weights: its shape, the type of its matrices and the seed.
#[derive(Clone, Debug)]
pub struct SyntheticLlama {
    pub shape: LlamaShape,
    /// The type of every matrix (norm weights are f32). Q4_0, Q8_0 or F32.
    pub weight_type: GgmlType,
    pub seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    #[error("the tokenizer source has no {0}")]
    MissingTokenizer(&'static str),
    #[error("random weights are written as q4_0, q8_0 or f32, not {0}")]
    UnsupportedType(GgmlType),
    #[error("width {width} must divide into {heads} heads of even size, {kv_heads} KV heads must divide the heads, and every row must fill whole {block}-value blocks")]
    BadShape { width: usize, heads: usize, kv_heads: usize, block: u64 },
}

impl SyntheticLlama {
    fn check(&self) -> Result<(), SyntheticError> {
        let LlamaShape { width, ffn_width, heads, kv_heads, .. } = self.shape;
        if !matches!(self.weight_type, GgmlType::Q4_0 | GgmlType::Q8_0 | GgmlType::F32) {
            return Err(SyntheticError::UnsupportedType(self.weight_type));
        }
        let block = self.weight_type.block_size() as usize;
        let fits = heads > 0
            && kv_heads > 0
            && width % heads == 0
            && (width / heads) % 2 == 0
            && heads % kv_heads == 0
            && width % block == 0
            && ffn_width % block == 0;
        if !fits {
            return Err(SyntheticError::BadShape { width, heads, kv_heads, block: block as u64 });
        }
        Ok(())
    }

    /// Metadata (llama hyperparameters plus every `tokenizer.*` key of `tokenizer_source`) and
    /// tensors, ready for [`crate::gguf::write::write_gguf`]. Weights are uniform with standard
    /// deviation about `1/sqrt(in)` per matrix, so activations keep their scale through the
    /// layers; the embedding is tied.
    pub fn build(&self, tokenizer_source: &Gguf) -> Result<(Metadata, Vec<NewTensor>), SyntheticError> {
        self.check()?;
        let metadata =
            self.shape.metadata(format!("glassbox synthetic llama (seed {})", self.seed), tokenizer_source)?;
        let vocab = vocab_size(tokenizer_source)?;
        let LlamaShape { layers, width, ffn_width, heads, kv_heads, .. } = self.shape;
        let kv_width = width / heads * kv_heads;

        let mut rng = Rng(self.seed);
        let mut matrix = |name: String, inputs: usize, outputs: usize| NewTensor {
            data: random_matrix(&mut rng, self.weight_type, inputs, outputs),
            name,
            ggml_type: self.weight_type,
            shape: vec![inputs as u64, outputs as u64],
        };
        let ones = |name: String, n: usize| NewTensor {
            name,
            ggml_type: GgmlType::F32,
            shape: vec![n as u64],
            data: 1.0f32.to_le_bytes().repeat(n),
        };
        let mut tensors =
            vec![matrix("token_embd.weight".into(), width, vocab), ones("output_norm.weight".into(), width)];
        for l in 0..layers {
            let name = |part: &str| format!("blk.{l}.{part}.weight");
            tensors.push(ones(name("attn_norm"), width));
            tensors.push(matrix(name("attn_q"), width, width));
            tensors.push(matrix(name("attn_k"), width, kv_width));
            tensors.push(matrix(name("attn_v"), width, kv_width));
            tensors.push(matrix(name("attn_output"), width, width));
            tensors.push(ones(name("ffn_norm"), width));
            tensors.push(matrix(name("ffn_gate"), width, ffn_width));
            tensors.push(matrix(name("ffn_up"), width, ffn_width));
            tensors.push(matrix(name("ffn_down"), ffn_width, width));
        }
        Ok((metadata, tensors))
    }
}

/// `outputs` rows of `inputs` values, encoded as `ty`, uniform with standard deviation about
/// `1/sqrt(inputs)`.
fn random_matrix(rng: &mut Rng, ty: GgmlType, inputs: usize, outputs: usize) -> Vec<u8> {
    let sigma = 1.0 / (inputs as f32).sqrt();
    let values = inputs * outputs;
    match ty {
        GgmlType::Q4_0 => {
            // Nibbles uniform on 0..15 give (q − 8)·d a standard deviation of 4.61·d.
            let d = half::f16::from_f32(sigma / 4.61).to_le_bytes();
            let mut out = Vec::with_capacity(values / 32 * 18);
            for _ in 0..values / 32 {
                out.extend_from_slice(&d);
                out.extend_from_slice(&rng.next_u64().to_le_bytes());
                out.extend_from_slice(&rng.next_u64().to_le_bytes());
            }
            out
        }
        GgmlType::Q8_0 => {
            // Bytes uniform on −128..127 give q·d a standard deviation of 73.9·d.
            let d = half::f16::from_f32(sigma / 73.9).to_le_bytes();
            let mut out = Vec::with_capacity(values / 32 * 34);
            for _ in 0..values / 32 {
                out.extend_from_slice(&d);
                for _ in 0..4 {
                    out.extend_from_slice(&rng.next_u64().to_le_bytes());
                }
            }
            out
        }
        _ => {
            let half_range = sigma * 3f32.sqrt();
            (0..values)
                .flat_map(|_| {
                    let unit = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
                    ((2.0 * unit - 1.0) * half_range).to_le_bytes()
                })
                .collect()
        }
    }
}
