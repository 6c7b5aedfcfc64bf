//! One transformer for the Llama family (Llama 2/3, Mistral, Qwen2/3, SmolLM, Phi-3) and Gemma 3,
//! written over the [`Backend`] trait, with hook points and interventions inside the forward pass.
//!
//! Per layer l, with x the residual entering it:
//! `a = W_O · attn(rope(W_Q·n₁(x)), rope(W_K·n₁(x)), W_V·n₁(x))`, `r = x + a`,
//! `m = silu(W_gate·n₂(r)) ⊙ (W_up·n₂(r))`, `f = W_down · m`, `x' = r + f`,
//! where `nᵢ(v) = gᵢ ⊙ v / sqrt(mean(v²) + ε)` (RMSNorm). Logits are `W_U · n_final(x_L)`.
//!
//! Qwen3 and Gemma 3 also normalise each head's queries and keys before rope. Gemma 3 scales the
//! embedding by √d, gates with GELU (tanh) instead of silu, normalises `a` and `f` before adding
//! them (`r = x + n_a(a)`, `x' = r + n_f(f)`), and lets five of every six layers attend over a
//! sliding window with their own rope base.

mod any;
mod backward;
mod config;
#[cfg(not(target_arch = "wasm32"))]
pub mod loader;
pub mod synthetic;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use thiserror::Error;

pub use any::{AnyLoaded, Loaded, TopToken};
pub use backward::{Gradients, Objective};
pub use config::{Config, GateActivation, RopeStyle, SlidingWindow, SUPPORTED_ARCHITECTURES};

use crate::backend::{Backend, BackendError, Rope, TopK};
use crate::gguf::{GgmlType, GgufError, TensorInfo};
use crate::hooks::{Activation, HookPoint, HookRequest, Intervention, Positions, Recording};

#[derive(Debug, Error)]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    #[error("architecture {found:?} is not supported; glassbox runs {supported:?}")]
    UnsupportedArchitecture { found: String, supported: &'static [&'static str] },
    #[error("metadata key {0:?} is missing")]
    MissingKey(String),
    #[error("metadata key {key:?} has an impossible value {value}")]
    BadHyperparameter { key: String, value: String },
    #[error("tensor {0:?} is missing from the model file")]
    MissingTensor(String),
    #[error("tensor {name:?} has shape {found:?}; this model's hyperparameters need {expected:?}")]
    WrongShape { name: String, expected: Vec<u64>, found: Vec<u64> },
    #[error("tensor {name:?} is stored as {found}; glassbox reads it as {expected}")]
    WrongTensorType { name: String, found: &'static str, expected: &'static str },
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("{len} tokens exceed the model's context of {max}")]
    PromptTooLong { len: usize, max: usize },
    #[error(
        "{positions} positions over a context of {context} need about {bytes} bytes of working memory \
         (KV cache, activations, attention scores), past the budget of {budget}: shorten the prompt"
    )]
    OverMemoryBudget { positions: usize, context: usize, bytes: u64, budget: u64 },
    #[error(transparent)]
    UnknownHook(#[from] crate::hooks::UnknownHook),
    #[error("{hooks} hooks over {tokens} tokens would record {bytes} bytes, past the limit of {limit}")]
    RecordingTooLarge { hooks: usize, tokens: usize, bytes: u64, limit: u64 },
    #[error("the tokenizer has {tokens} tokens but the model's output layer only {vocab_size}")]
    TokenizerLargerThanModel { tokens: usize, vocab_size: usize },
    #[error("token id {id} is outside the {vocab_size}-token vocabulary")]
    BadTokenId { id: u32, vocab_size: usize },
    #[error("invalid intervention: {0}")]
    BadIntervention(String),
    #[error("backend: {0}")]
    Backend(#[from] BackendError),
    #[error("reading the weights: {0}")]
    Read(String),
    #[error("this model needs what glassbox does not implement: {0}")]
    Unsupported(String),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// The most working memory one forward call may need besides the weights: half of what a wasm32
/// page can address, and room for 8k-token prompts on the models glassbox runs.
pub const WORKING_MEMORY_BUDGET: u64 = 2 << 30;

/// Refuses a call over `positions` (of a `context`) that would need `bytes` of working memory,
/// past [`WORKING_MEMORY_BUDGET`].
fn within_budget(positions: usize, context: usize, bytes: u64) -> Result<()> {
    if bytes > WORKING_MEMORY_BUDGET {
        return Err(ModelError::OverMemoryBudget { positions, context, bytes, budget: WORKING_MEMORY_BUDGET });
    }
    Ok(())
}

/// Where the weights come from: a GGUF header plus a way to read one tensor's bytes.
pub trait WeightSource {
    fn tensors(&self) -> &[TensorInfo];
    /// The tensor's bytes, in its GGUF encoding; the caller keeps them only while it loads it.
    fn read(&self, tensor: &TensorInfo) -> Result<Vec<u8>>;
}

#[cfg(not(target_arch = "wasm32"))]
impl WeightSource for crate::gguf::GgufFile {
    fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }
    fn read(&self, tensor: &TensorInfo) -> Result<Vec<u8>> {
        Ok(self.read_tensor(tensor)?)
    }
}

struct Layer<B: Backend> {
    attn_norm: Norm<B>,
    wq: B::Matrix,
    wk: B::Matrix,
    wv: B::Matrix,
    wo: B::Matrix,
    q_bias: Option<B::Tensor>,
    k_bias: Option<B::Tensor>,
    v_bias: Option<B::Tensor>,
    /// RMSNorm weights `[head_dim]` applied to each head's queries and keys.
    q_norm: Option<Norm<B>>,
    k_norm: Option<Norm<B>>,
    /// RMSNorm on the attention output before it joins the residual.
    post_attn_norm: Option<Norm<B>>,
    ffn_norm: Norm<B>,
    gate: B::Matrix,
    up: B::Matrix,
    down: B::Matrix,
    /// RMSNorm on the MLP output before it joins the residual.
    post_ffn_norm: Option<Norm<B>>,
}

/// An RMSNorm's weight, on the device and on the host (attribution and the backward pass read
/// it).
struct Norm<B: Backend> {
    values: Vec<f32>,
    weight: B::Tensor,
}

pub struct Model<B: Backend> {
    backend: B,
    config: Config,
    embedding: B::Matrix,
    /// `None` when the embedding is tied: the unembedding is then the embedding table.
    output: Option<B::Matrix>,
    final_norm: Norm<B>,
    rope_freq_factors: Option<Vec<f32>>,
    /// The global layers' divisors: `rope_freq_factors` times the linear rope scaling, when the
    /// model scales.
    scaled_freq_factors: Option<Vec<f32>>,
    /// With LongRoPE factors: the positions the short ones cover.
    short_rope_limit: Option<usize>,
    layers: Vec<Layer<B>>,
}

/// Which of a layer's two outputs, the attention's or the MLP's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sublayer {
    Attention,
    Mlp,
}

/// The layer matrices attribution reads: `v_proj` `[KV·h, d]`, `o_proj` `[d, H·h]`,
/// `down_proj` `[d, f]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerWeight {
    Value,
    Output,
    Down,
}

/// Keys and values of the positions already processed, per layer (post-rope keys).
pub struct KvCache<B: Backend> {
    keys: Vec<Option<CachedRows<B>>>,
    values: Vec<Option<CachedRows<B>>>,
    len: usize,
}

/// One layer's keys or values: the first rows of `store`, which has room for `capacity`, so
/// that a step writes its rows in place instead of copying the whole cache.
struct CachedRows<B: Backend> {
    store: B::Tensor,
    capacity: usize,
    /// How many rows of `store` any copy of this cache has written. A copy appends in place only
    /// while it is the furthest: a cache cloned for a second continuation copies on its first
    /// step rather than overwrite the first continuation's rows.
    written: Arc<AtomicUsize>,
}

impl<B: Backend> Clone for CachedRows<B> {
    fn clone(&self) -> Self {
        CachedRows { store: self.store.clone(), capacity: self.capacity, written: Arc::clone(&self.written) }
    }
}

/// The smallest cache a layer starts with (rows), so that the first decode steps after a short
/// prompt write in place.
const MIN_CACHE_ROWS: usize = 64;

impl<B: Backend> KvCache<B> {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<B: Backend> Clone for KvCache<B> {
    fn clone(&self) -> Self {
        KvCache { keys: self.keys.clone(), values: self.values.clone(), len: self.len }
    }
}

/// What one forward call returns.
pub struct Forward {
    /// Logits per requested position, `[positions, vocab]` row-major.
    pub logits: Activation,
    pub recording: Recording,
}

fn f32_values(info: &TensorInfo, bytes: &[u8]) -> Result<Vec<f32>> {
    if info.ggml_type != GgmlType::F32 {
        return Err(ModelError::WrongTensorType {
            name: info.name.clone(),
            found: info.ggml_type.name(),
            expected: "F32",
        });
    }
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

struct Loader<'a, B: Backend, S: WeightSource> {
    backend: &'a B,
    source: &'a S,
    tensors: BTreeMap<&'a str, &'a TensorInfo>,
}

impl<'a, B: Backend, S: WeightSource> Loader<'a, B, S> {
    fn info(&self, name: &str, expected: &[u64]) -> Result<&'a TensorInfo> {
        let info = *self.tensors.get(name).ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
        if info.shape != expected {
            return Err(ModelError::WrongShape {
                name: name.into(),
                expected: expected.to_vec(),
                found: info.shape.clone(),
            });
        }
        Ok(info)
    }

    /// A matrix stored with GGUF shape `[cols, rows]` (ggml order).
    fn matrix(&self, name: &str, cols: usize, rows: usize) -> Result<B::Matrix> {
        let info = self.info(name, &[cols as u64, rows as u64])?;
        Ok(self.backend.matrix(info, self.source.read(info)?)?)
    }

    /// The matrices stacked by rows in one tensor (Phi-3's fused `attn_qkv` and gate-up), each
    /// `[cols, rows[i]]`: rows are whole blocks in the file, so each is a slice of its bytes.
    fn stacked_matrices<const N: usize>(&self, name: &str, cols: usize, rows: [usize; N]) -> Result<[B::Matrix; N]> {
        let total: usize = rows.iter().sum();
        let info = self.info(name, &[cols as u64, total as u64])?;
        let bytes = self.source.read(info)?;
        let row_bytes = bytes.len() / total;
        let mut start = 0;
        let mut parts = Vec::with_capacity(N);
        for n in rows {
            let part = TensorInfo {
                name: format!("{name} (rows {start}..{})", start + n),
                shape: vec![cols as u64, n as u64],
                byte_len: (n * row_bytes) as u64,
                file_offset: info.file_offset + (start * row_bytes) as u64,
                ggml_type: info.ggml_type,
            };
            parts.push(self.backend.matrix(&part, bytes[start * row_bytes..(start + n) * row_bytes].to_vec())?);
            start += n;
        }
        parts.try_into().map_err(|_| ModelError::Read(format!("{name}: not {N} parts")))
    }

    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn host_vector(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        let info = self.info(name, &[len as u64])?;
        f32_values(info, &self.source.read(info)?)
    }

    fn vector(&self, name: &str, len: usize) -> Result<B::Tensor> {
        Ok(self.backend.vector(&self.host_vector(name, len)?)?)
    }

    fn norm(&self, name: &str, len: usize) -> Result<Norm<B>> {
        let values = self.host_vector(name, len)?;
        Ok(Norm { weight: self.backend.vector(&values)?, values })
    }

    fn optional_vector(&self, name: &str, len: usize) -> Result<Option<B::Tensor>> {
        if self.has(name) {
            self.vector(name, len).map(Some)
        } else {
            Ok(None)
        }
    }
}

impl<B: Backend> Model<B> {
    /// Opens the GGUF file at `path` onto `backend`: its configuration, its tokenizer and every
    /// weight, read a tensor at a time.
    ///
    /// ```
    /// use glassbox::backend::candle::CandleBackend;
    /// use glassbox::hooks::{HookPoint, HookRequest, Positions};
    /// use glassbox::model::Model;
    ///
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    /// let loaded = Model::open(path, CandleBackend::cpu())?;
    /// let ids = loaded.tokenizer.encode("The capital of France is", true, false)?;
    /// let hooks = HookRequest::new().with(HookPoint::parse("blocks.3.hook_resid_post").ok_or("no such hook")?, Positions::Last);
    /// let out = loaded.model.forward(&ids, &mut loaded.model.new_cache(), &hooks, &[], &Positions::Last)?;
    /// let resid = &out.recording.activations[&HookPoint::ResidPost(3)];
    /// assert_eq!(resid.shape, vec![1, loaded.model.config().width]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: impl AsRef<std::path::Path>, backend: B) -> Result<Loaded<B>> {
        let file = crate::gguf::GgufFile::open(path)?;
        let config = Config::from_gguf(&file.header)?;
        let tokenizer = crate::tokenizer::Tokenizer::from_gguf(&file.header)?;
        Loaded::new(Model::load(backend, config, &file)?, tokenizer)
    }

    /// Loads the weights named as llama.cpp names them, checking each shape against `config`.
    pub fn load<S: WeightSource>(backend: B, config: Config, source: &S) -> Result<Self> {
        let loader = Loader {
            backend: &backend,
            source,
            tensors: source.tensors().iter().map(|t| (t.name.as_str(), t)).collect(),
        };
        let c = &config;
        let q_width = c.heads * c.head_dim;
        let kv_width = c.kv_heads * c.head_dim;
        let mut layers = Vec::with_capacity(c.layers);
        for l in 0..c.layers {
            let name = |suffix: &str| format!("blk.{l}.{suffix}");
            let [wq, wk, wv] = if loader.has(&name("attn_qkv.weight")) {
                loader.stacked_matrices(&name("attn_qkv.weight"), c.width, [q_width, kv_width, kv_width])?
            } else {
                [
                    loader.matrix(&name("attn_q.weight"), c.width, q_width)?,
                    loader.matrix(&name("attn_k.weight"), c.width, kv_width)?,
                    loader.matrix(&name("attn_v.weight"), c.width, kv_width)?,
                ]
            };
            // Phi-3 stores the gate above the up projection in one `ffn_up`.
            let [gate, up] = if loader.has(&name("ffn_gate.weight")) {
                [
                    loader.matrix(&name("ffn_gate.weight"), c.width, c.ffn_width)?,
                    loader.matrix(&name("ffn_up.weight"), c.width, c.ffn_width)?,
                ]
            } else {
                loader.stacked_matrices(&name("ffn_up.weight"), c.width, [c.ffn_width, c.ffn_width])?
            };
            layers.push(Layer {
                attn_norm: loader.norm(&name("attn_norm.weight"), c.width)?,
                wq,
                wk,
                wv,
                wo: loader.matrix(&name("attn_output.weight"), q_width, c.width)?,
                q_bias: loader.optional_vector(&name("attn_q.bias"), q_width)?,
                k_bias: loader.optional_vector(&name("attn_k.bias"), kv_width)?,
                v_bias: loader.optional_vector(&name("attn_v.bias"), kv_width)?,
                q_norm: c.qk_norm.then(|| loader.norm(&name("attn_q_norm.weight"), c.head_dim)).transpose()?,
                k_norm: c.qk_norm.then(|| loader.norm(&name("attn_k_norm.weight"), c.head_dim)).transpose()?,
                post_attn_norm: c
                    .post_norms
                    .then(|| loader.norm(&name("post_attention_norm.weight"), c.width))
                    .transpose()?,
                ffn_norm: loader.norm(&name("ffn_norm.weight"), c.width)?,
                gate,
                up,
                down: loader.matrix(&name("ffn_down.weight"), c.ffn_width, c.width)?,
                post_ffn_norm: c.post_norms.then(|| loader.norm(&name("post_ffw_norm.weight"), c.width)).transpose()?,
            });
        }
        let embedding = loader.matrix("token_embd.weight", c.width, c.vocab_size)?;
        let output = if loader.has("output.weight") {
            Some(loader.matrix("output.weight", c.width, c.vocab_size)?)
        } else {
            None
        };
        // Phi-3's long-context files carry two sets of factors (LongRoPE): the short ones for
        // sequences within the original context, as Hugging Face's Phi-3 and llama.cpp with a
        // context that size rotate; past it, where the long ones would apply, a forward pass is
        // refused (`short_rope_limit`).
        let long_rope = loader.has("rope_factors_short.weight") || loader.has("rope_factors_long.weight");
        let rope_freq_factors = if loader.has("rope_freqs.weight") {
            Some(loader.host_vector("rope_freqs.weight", c.head_dim / 2)?)
        } else if long_rope {
            Some(loader.host_vector("rope_factors_short.weight", c.head_dim / 2)?)
        } else {
            None
        };
        let short_rope_limit = long_rope.then(|| c.original_context_length.unwrap_or(c.context_length));
        let scaled_freq_factors = (c.rope_scale != 1.0).then(|| match &rope_freq_factors {
            Some(factors) => factors.iter().map(|f| f * c.rope_scale).collect(),
            None => vec![c.rope_scale; c.head_dim / 2],
        });
        Ok(Model {
            final_norm: loader.norm("output_norm.weight", c.width)?,
            embedding,
            output,
            rope_freq_factors,
            scaled_freq_factors,
            short_rope_limit,
            layers,
            config,
            backend,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The unembedding `W_U: [vocab, width]` (the embedding table when tied).
    pub fn unembedding(&self) -> &B::Matrix {
        self.output.as_ref().unwrap_or(&self.embedding)
    }

    /// The final RMSNorm's weight `g`.
    pub fn final_norm_weight(&self) -> &[f32] {
        &self.final_norm.values
    }

    /// Layer `layer`'s attention RMSNorm weight (`input_layernorm.weight`).
    pub fn attn_norm_weight(&self, layer: usize) -> &[f32] {
        &self.layers[layer].attn_norm.values
    }

    /// The RMSNorm weight `g` that layer `layer` applies to its attention or MLP output before
    /// adding it to the residual (Gemma), or `None` when the output joins the residual as it is.
    pub fn post_norm_weight(&self, layer: usize, which: Sublayer) -> Option<&[f32]> {
        let l = &self.layers[layer];
        let norm = match which {
            Sublayer::Attention => &l.post_attn_norm,
            Sublayer::Mlp => &l.post_ffn_norm,
        };
        norm.as_ref().map(|n| n.values.as_slice())
    }

    /// One of layer `layer`'s weight matrices, `[out, in]`.
    pub fn weight(&self, layer: usize, which: LayerWeight) -> &B::Matrix {
        let l = &self.layers[layer];
        match which {
            LayerWeight::Value => &l.wv,
            LayerWeight::Output => &l.wo,
            LayerWeight::Down => &l.down,
        }
    }

    pub fn new_cache(&self) -> KvCache<B> {
        let empty = || (0..self.config.layers).map(|_| None).collect();
        KvCache { keys: empty(), values: empty(), len: 0 }
    }

    /// Runs `ids` after the positions already in `cache`, appending them to it.
    ///
    /// Records the hooks in `hooks`, applies `interventions`, and returns logits at
    /// `logits_at` (positions relative to `ids`).
    pub fn forward(
        &self,
        ids: &[u32],
        cache: &mut KvCache<B>,
        hooks: &HookRequest,
        interventions: &[Intervention],
        logits_at: &Positions,
    ) -> Result<Forward> {
        let (x, mut recorder) = self.residual_stream(ids, cache, hooks, interventions)?;
        let logit_rows = logits_at.resolve(ids.len());
        let logits = self.logits(&x, &logit_rows)?;
        let (shape, data) = recorder.read_back(Some(&logits))?.expect("the logits were read back");
        Ok(Forward { logits: Activation { positions: logit_rows, shape, data }, recording: recorder.recording })
    }

    /// The `k` most likely next tokens after `ids` (run after `cache`, appended to it) and the
    /// logits' `log Σ exp`, so their log-probabilities: on a GPU only these cross to the host.
    pub fn next_token_top_k(
        &self,
        ids: &[u32],
        cache: &mut KvCache<B>,
        interventions: &[Intervention],
        k: usize,
    ) -> Result<TopK> {
        let logits = self.next_token_logits(ids, cache, interventions)?;
        Ok(self.backend.top_k(&logits, k.min(self.config.vocab_size), &[])?)
    }

    /// The logits `[1, vocab]` of the token after `ids` (run after `cache`, appended to it),
    /// left where the backend computed them, for a sampler to read what it needs.
    pub fn next_token_logits(
        &self,
        ids: &[u32],
        cache: &mut KvCache<B>,
        interventions: &[Intervention],
    ) -> Result<B::Tensor> {
        let (x, _) = self.residual_stream(ids, cache, &HookRequest::new(), interventions)?;
        self.logits(&x, &[ids.len() - 1])
    }

    /// `W_U · n_final(x)` at rows `rows` of the final residual stream, on the device.
    fn logits(&self, x: &B::Tensor, rows: &[usize]) -> Result<B::Tensor> {
        let be = &self.backend;
        let normed = be.rms_norm(&be.select_rows(x, rows)?, &self.final_norm.weight, self.config.norm_eps)?;
        Ok(be.linear(&normed, self.unembedding())?)
    }

    /// The residual stream after the last layer (`[ids.len(), d]`, on the device) and the hooks'
    /// recorder, whose last activations may wait on the device to be read back with the logits.
    fn residual_stream<'a>(
        &'a self,
        ids: &[u32],
        cache: &mut KvCache<B>,
        hooks: &'a HookRequest,
        interventions: &[Intervention],
    ) -> Result<(B::Tensor, Recorder<'a, B>)> {
        let c = &self.config;
        if ids.is_empty() {
            return Err(ModelError::EmptyPrompt);
        }
        let total = cache.len + ids.len();
        if total > c.context_length {
            return Err(ModelError::PromptTooLong { len: total, max: c.context_length });
        }
        if let Some(limit) = self.short_rope_limit.filter(|&limit| total > limit) {
            return Err(ModelError::Unsupported(format!(
                "{total} positions pass the {limit} that Phi-3's short rope factors cover; its long factors \
                 (LongRoPE beyond the original context) are not implemented"
            )));
        }
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= c.vocab_size) {
            return Err(ModelError::BadTokenId { id, vocab_size: c.vocab_size });
        }
        self.check_working_memory(ids.len(), total, hooks)?;
        let plans = self.plan(interventions, cache.len, ids.len())?;
        let mut recorder = Recorder {
            backend: &self.backend,
            config: c,
            hooks,
            t: ids.len(),
            total,
            recording: Recording::default(),
            pending: Vec::new(),
            pending_bytes: 0,
        };

        let mut x = self.backend.embed(&self.embedding, ids)?;
        if let Some(scale) = c.embedding_scale {
            x = self.backend.scale_columns(&x, 0, c.width, scale)?;
        }
        recorder.record(HookPoint::Embed, &x)?;
        for (l, (layer, plan)) in self.layers.iter().zip(&plans).enumerate() {
            for (row, values) in &plan.patches {
                x = self.backend.set_row(&x, *row, values)?;
            }
            recorder.record(HookPoint::ResidPre(l), &x)?;
            let attn_out = self.attention(l, layer, plan, &x, cache, &mut recorder)?;
            x = self.backend.add(&x, &attn_out)?;
            recorder.record(HookPoint::ResidMid(l), &x)?;
            let mlp_out = self.mlp(l, layer, plan, &x, &mut recorder)?;
            x = self.backend.add(&x, &mlp_out)?;
            if let Some(shift) = &plan.steering {
                x = self.backend.add(&x, &self.backend.vector(shift)?)?;
            }
            recorder.record(HookPoint::ResidPost(l), &x)?;
        }
        cache.len = total;
        self.record_final_scale(&x, &mut recorder)?;
        Ok((x, recorder))
    }

    /// The hooks that `spec` names ([`crate::hooks::select_hooks`]) over `ids` at `positions`,
    /// with `interventions`: refused before the forward pass when the recording would pass
    /// `limit` bytes.
    pub fn record(
        &self,
        ids: &[u32],
        spec: &str,
        positions: &Positions,
        interventions: &[Intervention],
        limit: u64,
    ) -> Result<Recording> {
        let points = crate::hooks::select_hooks(spec, self.config.hook_shape())?;
        let hooks = self.hooks_within(ids, &points, positions, 0, limit)?;
        Ok(self.forward(ids, &mut self.new_cache(), &hooks, interventions, &Positions::Last)?.recording)
    }

    /// One forward pass over `ids` from an empty cache with `interventions`, recording `points`
    /// at `positions` and returning the logits at `logits_at`, refused before it runs when the
    /// two would pass `limit` bytes: TransformerLens's `run_with_cache`, and with no points its
    /// `run_with_hooks`.
    pub fn run_with_cache(
        &self,
        ids: &[u32],
        points: &[HookPoint],
        positions: &Positions,
        interventions: &[Intervention],
        limit: u64,
        logits_at: &Positions,
    ) -> Result<Forward> {
        let logit_bytes = (logits_at.resolve(ids.len()).len() * self.config.vocab_size) as u64 * 4;
        let hooks = self.hooks_within(ids, points, positions, logit_bytes, limit)?;
        self.forward(ids, &mut self.new_cache(), &hooks, interventions, logits_at)
    }

    /// `points` at `positions` over `ids`, if recording them beside `other_bytes` stays within
    /// `limit`.
    fn hooks_within(
        &self,
        ids: &[u32],
        points: &[HookPoint],
        positions: &Positions,
        other_bytes: u64,
        limit: u64,
    ) -> Result<HookRequest> {
        let hooks = points.iter().fold(HookRequest::new(), |hooks, &point| hooks.with(point, positions.clone()));
        let bytes = self.recording_bytes(&hooks, ids.len()).saturating_add(other_bytes);
        if bytes > limit {
            return Err(ModelError::RecordingTooLarge { hooks: points.len(), tokens: ids.len(), bytes, limit });
        }
        Ok(hooks)
    }

    /// The bytes `hooks` would record over a prompt of `len` tokens (with an empty cache), before
    /// anything runs: [`HookPoint`]'s shapes times the positions each hook records.
    fn recording_bytes(&self, hooks: &HookRequest, len: usize) -> u64 {
        hooks
            .points()
            .map(|(point, positions)| {
                (positions.resolve(len).len() * floats_per_position(&self.config, *point, len)) as u64 * 4
            })
            .fold(0u64, u64::saturating_add)
    }

    /// Refuses a call whose working memory would pass [`WORKING_MEMORY_BUDGET`]: a file may
    /// claim any context length, and attention grows with the square of the prompt.
    fn check_working_memory(&self, t: usize, total: usize, hooks: &HookRequest) -> Result<()> {
        let c = &self.config;
        let (t64, total64, float) = (t as u64, total as u64, 4u64);
        let kv_cache = (c.layers * 2 * c.kv_heads * c.head_dim) as u64 * total64 * float;
        // The residual stream, its norm, q, k, v and z, and the MLP's gate, up and product.
        let activations = t64 * (6 * c.width + 3 * c.ffn_width) as u64 * float;
        let one_layer_scores = c.heads as u64 * t64 * total64 * float;
        let recorded_patterns =
            hooks.points().filter(|(point, _)| matches!(point, HookPoint::AttnPattern(_))).count() as u64;
        let held_scores = if self.backend.holds_all_scores() { 2 } else { 0 } + recorded_patterns;
        let bytes = kv_cache.saturating_add(activations).saturating_add(one_layer_scores.saturating_mul(held_scores));
        within_budget(t, total, bytes)
    }

    /// Checks `interventions` against the model as a forward pass would, without running one: for
    /// changes kept across calls, refused when they are made rather than at the next call.
    pub fn check_interventions(&self, interventions: &[Intervention]) -> Result<()> {
        self.plan(interventions, 0, 0).map(|_| ())
    }

    /// Every intervention, checked against the model and gathered into one plan per layer, for a
    /// call of `t` positions after `start` cached ones.
    fn plan<'a>(&self, interventions: &'a [Intervention], start: usize, t: usize) -> Result<Vec<LayerPlan<'a>>> {
        let c = &self.config;
        let mut plans: Vec<LayerPlan> = (0..c.layers).map(|_| LayerPlan::default()).collect();
        for intervention in interventions {
            let bad = |problem: String| Err(ModelError::BadIntervention(problem));
            match *intervention {
                Intervention::ScaleHead { layer, head, factor } => {
                    if layer >= c.layers || head >= c.heads {
                        return bad(format!(
                            "head {layer}.{head} does not exist ({} layers × {} heads)",
                            c.layers, c.heads
                        ));
                    }
                    plans[layer].head_factors.get_or_insert_with(|| vec![1.0; c.heads])[head] *= factor;
                }
                Intervention::ScaleNeuron { layer, neuron, factor } => {
                    if layer >= c.layers || neuron >= c.ffn_width {
                        return bad(format!(
                            "neuron {layer}.{neuron} does not exist ({} layers × {} neurons)",
                            c.layers, c.ffn_width
                        ));
                    }
                    plans[layer].neuron_factors.get_or_insert_with(|| vec![1.0; c.ffn_width])[neuron] *= factor;
                }
                Intervention::PatchResidPre { layer, position, ref values }
                | Intervention::PatchAttnOut { layer, position, ref values }
                | Intervention::PatchMlpOut { layer, position, ref values } => {
                    if layer >= c.layers || values.len() != c.width {
                        return bad(format!("a patch of layer {layer} needs {} values, got {}", c.width, values.len()));
                    }
                    // A patch applies in the call that processes its position.
                    if (start..start + t).contains(&position) {
                        let patches = match intervention {
                            Intervention::PatchResidPre { .. } => &mut plans[layer].patches,
                            Intervention::PatchAttnOut { .. } => &mut plans[layer].attn_out_patches,
                            _ => &mut plans[layer].mlp_out_patches,
                        };
                        patches.push((position - start, values));
                    }
                }
                Intervention::PatchHeadZ { layer, head, position, ref values } => {
                    if layer >= c.layers || head >= c.heads || values.len() != c.head_dim {
                        return bad(format!(
                            "a patch of head {layer}.{head} needs {} values, got {} ({} layers × {} heads)",
                            c.head_dim,
                            values.len(),
                            c.layers,
                            c.heads
                        ));
                    }
                    if (start..start + t).contains(&position) {
                        plans[layer].head_patches.push((position - start, head, values));
                    }
                }
                Intervention::Steer { layer, ref vector, coefficient } => {
                    if layer >= c.layers {
                        return bad(format!("steering at layer {layer}: the model has {} layers", c.layers));
                    }
                    if vector.len() != c.width {
                        return bad(format!("a steering vector needs {} values, got {}", c.width, vector.len()));
                    }
                    let shift = plans[layer].steering.get_or_insert_with(|| vec![0.0; c.width]);
                    for (s, v) in shift.iter_mut().zip(vector) {
                        *s += coefficient * v;
                    }
                }
            }
        }
        Ok(plans)
    }

    /// Layer `l`'s attention on `x`: `W_O · attn(q, k, v)`, its keys and values appended to
    /// `cache`, heads scaled as `plan` says.
    fn attention(
        &self,
        l: usize,
        layer: &Layer<B>,
        plan: &LayerPlan,
        x: &B::Tensor,
        cache: &mut KvCache<B>,
        recorder: &mut Recorder<B>,
    ) -> Result<B::Tensor> {
        let (c, be) = (&self.config, &self.backend);
        let Projections { q, k, v, .. } = self.projections(l, layer, x, cache.len)?;
        recorder.record_by_head(HookPoint::AttnV(l), &v, c.kv_heads)?;
        let t = recorder.t;
        let k_all = self.append_cached(&mut cache.keys[l], cache.len, t, &k)?;
        let v_all = self.append_cached(&mut cache.values[l], cache.len, t, &v)?;
        let wanted = recorder.wants(HookPoint::AttnPattern(l));
        let heads = crate::backend::Heads { heads: c.heads, kv_heads: c.kv_heads, window: c.attention_window(l) };
        let (mut z, pattern) = be.attention(&q, &k_all, &v_all, heads, wanted)?;
        if let Some(pattern) = pattern {
            recorder.record(HookPoint::AttnPattern(l), &pattern)?;
        }
        for (head, &factor) in plan.head_factors.iter().flatten().enumerate().filter(|(_, &f)| f != 1.0) {
            z = be.scale_columns(&z, head * c.head_dim, c.head_dim, factor)?;
        }
        let mut patched_rows: Vec<usize> = plan.head_patches.iter().map(|&(row, _, _)| row).collect();
        patched_rows.sort_unstable();
        patched_rows.dedup();
        for row in patched_rows {
            let (_, mut values) = be.download(&be.select_rows(&z, &[row])?)?;
            for &(_, head, patch) in plan.head_patches.iter().filter(|&&(r, _, _)| r == row) {
                values[head * c.head_dim..(head + 1) * c.head_dim].copy_from_slice(patch);
            }
            z = be.set_row(&z, row, &values)?;
        }
        recorder.record_by_head(HookPoint::AttnZ(l), &z, c.heads)?;
        let mut attn_out = be.linear(&z, &layer.wo)?;
        self.record_head_results(l, layer, &z, &attn_out, recorder)?;
        if let Some(norm) = &layer.post_attn_norm {
            attn_out = self.post_norm(
                attn_out,
                norm,
                HookPoint::AttnOutPreNorm(l),
                HookPoint::AttnPostNormScale(l),
                recorder,
            )?;
        }
        for (row, values) in &plan.attn_out_patches {
            attn_out = be.set_row(&attn_out, *row, values)?;
        }
        recorder.record(HookPoint::AttnOut(l), &attn_out)?;
        Ok(attn_out)
    }

    /// Layer `l`'s queries, keys and values of the residual `x` at positions from `start` on.
    fn projections(&self, l: usize, layer: &Layer<B>, x: &B::Tensor, start: usize) -> Result<Projections<B>> {
        let (c, be) = (&self.config, &self.backend);
        let normed = be.rms_norm(x, &layer.attn_norm.weight, c.norm_eps)?;
        let with_bias = |m: &B::Matrix, bias: &Option<B::Tensor>| -> Result<B::Tensor> {
            let y = be.linear(&normed, m)?;
            Ok(match bias {
                Some(b) => be.add(&y, b)?,
                None => y,
            })
        };
        let per_head_norm = |y: &B::Tensor, norm: &Option<Norm<B>>| -> Result<B::Tensor> {
            Ok(match norm {
                Some(norm) => be.rms_norm(y, &norm.weight, c.norm_eps)?,
                None => y.clone(),
            })
        };
        let rope = self.rope(l, start);
        let q_linear = with_bias(&layer.wq, &layer.q_bias)?;
        let mut q = be.rope(&per_head_norm(&q_linear, &layer.q_norm)?, c.heads, &rope)?;
        let query_factor = self.query_factor();
        if query_factor != 1.0 {
            q = be.scale_columns(&q, 0, c.heads * c.head_dim, query_factor)?;
        }
        let k_linear = with_bias(&layer.wk, &layer.k_bias)?;
        let k = be.rope(&per_head_norm(&k_linear, &layer.k_norm)?, c.kv_heads, &rope)?;
        let v = with_bias(&layer.wv, &layer.v_bias)?;
        Ok(Projections { q_linear, k_linear, q, k, v })
    }

    /// What queries are multiplied by before attention, which divides their scores by
    /// √head_dim: the model's own score factor.
    fn query_factor(&self) -> f32 {
        self.config.attention_scale * (self.config.head_dim as f32).sqrt()
    }

    /// Layer `l`'s rotation of positions from `start` on.
    fn rope(&self, l: usize, start: usize) -> Rope<'_> {
        let c = &self.config;
        let (theta, scale) = c.layer_rope(l);
        Rope {
            start,
            theta,
            freq_factors: if scale != 1.0 {
                self.scaled_freq_factors.as_deref()
            } else {
                self.rope_freq_factors.as_deref()
            },
            magnitude: c.rope_magnitude,
            interleaved: c.rope_style == RopeStyle::Interleaved,
        }
    }

    /// A sublayer's output `y` through its post-norm, recording `y` at `before` and the norm's
    /// divisor at `scale`.
    fn post_norm(
        &self,
        y: B::Tensor,
        norm: &Norm<B>,
        before: HookPoint,
        scale: HookPoint,
        recorder: &mut Recorder<B>,
    ) -> Result<B::Tensor> {
        recorder.record(before, &y)?;
        self.record_scale(scale, &y, recorder)?;
        Ok(self.backend.rms_norm(&y, &norm.weight, self.config.norm_eps)?)
    }

    /// The `t` rows `new` written after the first `len` rows of a layer's cache: all `len + t`
    /// rows, sharing the cache's storage. The storage grows by doubling (up to the context), so a
    /// decode step copies only its own row.
    fn append_cached(
        &self,
        slot: &mut Option<CachedRows<B>>,
        len: usize,
        t: usize,
        new: &B::Tensor,
    ) -> Result<B::Tensor> {
        let be = &self.backend;
        let needed = len + t;
        let in_place = slot.as_ref().is_some_and(|s| s.capacity >= needed && s.written.load(Ordering::Relaxed) == len);
        let rows = match slot {
            Some(rows) if in_place => rows,
            _ => {
                let context = self.config.context_length;
                // A copy taken from a clone keeps its room; a full cache doubles.
                let capacity = match slot {
                    Some(old) if old.capacity >= needed => old.capacity,
                    Some(old) => needed.max((2 * old.capacity).min(context)),
                    None => needed.max(MIN_CACHE_ROWS.min(context)),
                };
                let store = be.empty_rows(capacity, self.config.kv_heads * self.config.head_dim)?;
                if let Some(old) = slot.as_ref().filter(|_| len > 0) {
                    be.write_rows(&store, 0, &be.leading_rows(&old.store, len)?)?;
                }
                slot.insert(CachedRows { store, capacity, written: Arc::new(AtomicUsize::new(len)) })
            }
        };
        be.write_rows(&rows.store, len, new)?;
        rows.written.store(needed, Ordering::Relaxed);
        Ok(be.leading_rows(&rows.store, needed)?)
    }

    /// `attn.hook_result`: each head's output, o_proj applied to z with every other head zeroed,
    /// `[t, H, d]`. With a post-attention norm, each head's share of what that norm passes on,
    /// its divisor held at the value the whole output `attn_out` gives it (`g ⊙ head / s`), so that
    /// the heads still add up to `hook_attn_out`.
    fn record_head_results(
        &self,
        l: usize,
        layer: &Layer<B>,
        z: &B::Tensor,
        attn_out: &B::Tensor,
        recorder: &mut Recorder<B>,
    ) -> Result<()> {
        let (c, be) = (&self.config, &self.backend);
        let point = HookPoint::AttnResult(l);
        let Some(rows) = recorder.rows(point) else { return Ok(()) };
        let z_rows = be.select_rows(z, &rows)?;
        let mut per_head = Vec::with_capacity(c.heads + 1);
        for h in 0..c.heads {
            let only_h = be.scale_columns(&z_rows, 0, h * c.head_dim, 0.0)?;
            let only_h = be.scale_columns(&only_h, (h + 1) * c.head_dim, (c.heads - h - 1) * c.head_dim, 0.0)?;
            per_head.push(be.linear(&only_h, &layer.wo)?);
        }
        let post_norm = layer.post_attn_norm.as_ref().map(|norm| norm.values.clone());
        if post_norm.is_some() {
            per_head.push(self.row_scales(attn_out, &rows)?);
        }
        recorder.hold(point, rows, per_head, Form::HeadResults { width: c.width, post_norm })
    }

    /// Layer `l`'s MLP on the residual `x`: `W_down · (silu(W_gate·n(x)) ⊙ W_up·n(x))`, neurons
    /// scaled as `plan` says.
    fn mlp(
        &self,
        l: usize,
        layer: &Layer<B>,
        plan: &LayerPlan,
        x: &B::Tensor,
        recorder: &mut Recorder<B>,
    ) -> Result<B::Tensor> {
        let (c, be) = (&self.config, &self.backend);
        let normed = be.rms_norm(x, &layer.ffn_norm.weight, c.norm_eps)?;
        let gate = be.linear(&normed, &layer.gate)?;
        recorder.record(HookPoint::MlpPre(l), &gate)?;
        // The nonlinearity and the product in one operation: one kernel on a device.
        let up = be.linear(&normed, &layer.up)?;
        let mut m = match c.gate_activation {
            GateActivation::Silu => be.silu_mul(&gate, &up)?,
            GateActivation::GeluTanh => be.gelu_mul(&gate, &up)?,
        };
        if let Some(factors) = &plan.neuron_factors {
            // One product per layer, however many neurons a mask touches.
            m = be.mul(&m, &be.vector(factors)?)?;
        }
        recorder.record(HookPoint::MlpPost(l), &m)?;
        let mut mlp_out = be.linear(&m, &layer.down)?;
        if let Some(norm) = &layer.post_ffn_norm {
            mlp_out =
                self.post_norm(mlp_out, norm, HookPoint::MlpOutPreNorm(l), HookPoint::MlpPostNormScale(l), recorder)?;
        }
        for (row, values) in &plan.mlp_out_patches {
            mlp_out = be.set_row(&mlp_out, *row, values)?;
        }
        recorder.record(HookPoint::MlpOut(l), &mlp_out)?;
        Ok(mlp_out)
    }

    /// The MLP's gate nonlinearity on the gate projection.
    fn activate(&self, gate: &B::Tensor) -> Result<B::Tensor> {
        Ok(match self.config.gate_activation {
            GateActivation::Silu => self.backend.silu(gate)?,
            GateActivation::GeluTanh => self.backend.gelu_tanh(gate)?,
        })
    }

    /// `ln_final.hook_scale`: the final RMSNorm's divisor at each recorded position, `[t, 1]`.
    fn record_final_scale(&self, x: &B::Tensor, recorder: &mut Recorder<B>) -> Result<()> {
        self.record_scale(HookPoint::LnFinalScale, x, recorder)
    }

    /// An RMSNorm's divisor `sqrt(mean(x²) + eps)` at the rows `point` records, `[rows, 1]`.
    fn record_scale(&self, point: HookPoint, x: &B::Tensor, recorder: &mut Recorder<B>) -> Result<()> {
        let Some(rows) = recorder.rows(point) else { return Ok(()) };
        let scales = self.row_scales(x, &rows)?;
        recorder.hold(point, rows, vec![scales], Form::AsRead)
    }

    /// `sqrt(mean(x²) + eps)` of rows `rows` of `x`, `[rows, 1]`.
    fn row_scales(&self, x: &B::Tensor, rows: &[usize]) -> Result<B::Tensor> {
        let be = &self.backend;
        Ok(be.rms(&be.select_rows(x, rows)?, self.config.norm_eps)?)
    }
}

/// A layer's attention inputs: queries and keys as the linear maps give them (biases added) and
/// as attention reads them (per-head norm, rope, the score factor on queries), and values.
struct Projections<B: Backend> {
    q_linear: B::Tensor,
    k_linear: B::Tensor,
    q: B::Tensor,
    k: B::Tensor,
    v: B::Tensor,
}

/// The floats `point` records at one position of a pass that sees `total` positions.
fn floats_per_position(c: &Config, point: HookPoint, total: usize) -> usize {
    match point {
        HookPoint::Embed
        | HookPoint::ResidPre(_)
        | HookPoint::AttnOut(_)
        | HookPoint::ResidMid(_)
        | HookPoint::MlpOut(_)
        | HookPoint::ResidPost(_)
        | HookPoint::AttnOutPreNorm(_)
        | HookPoint::MlpOutPreNorm(_) => c.width,
        HookPoint::AttnV(_) => c.kv_heads * c.head_dim,
        HookPoint::AttnPattern(_) => c.heads * total,
        HookPoint::AttnZ(_) => c.heads * c.head_dim,
        HookPoint::AttnResult(_) => c.heads * c.width,
        HookPoint::MlpPre(_) | HookPoint::MlpPost(_) => c.ffn_width,
        HookPoint::LnFinalScale | HookPoint::AttnPostNormScale(_) | HookPoint::MlpPostNormScale(_) => 1,
    }
}

/// The interventions that touch one layer.
#[derive(Default)]
struct LayerPlan<'a> {
    /// Rows of this call's residual replaced before the layer, with their new values.
    patches: Vec<(usize, &'a [f32])>,
    /// Rows of the attention output and the MLP output replaced, with their new values.
    attn_out_patches: Vec<(usize, &'a [f32])>,
    mlp_out_patches: Vec<(usize, &'a [f32])>,
    /// Each head's factor on its slice of z; `None` when no head is scaled.
    head_factors: Option<Vec<f32>>,
    /// Heads' slices of z replaced: (row, head, values).
    head_patches: Vec<(usize, usize, &'a [f32])>,
    /// Each neuron's factor on its coefficient m; `None` when no neuron is scaled.
    neuron_factors: Option<Vec<f32>>,
    /// What steering adds to the residual leaving the layer; `None` when nothing steers it.
    steering: Option<Vec<f32>>,
}

/// Device-held activations read back together: past this many bytes the recorder reads back what
/// it holds, so a large recording does not also hold its whole size on the device.
const PENDING_BYTES: usize = 64 << 20;

/// Copies the activations a [`HookRequest`] asks for off the device, at the positions it asks.
/// Their rows are selected on the device as the pass goes and read back together at its end (or
/// past [`PENDING_BYTES`]): on a GPU, one read-back for all of a pass's hooks rather than one
/// each.
struct Recorder<'a, B: Backend> {
    backend: &'a B,
    config: &'a Config,
    hooks: &'a HookRequest,
    /// Positions in this call, and in the cache after it.
    t: usize,
    total: usize,
    recording: Recording,
    pending: Vec<Pending<B>>,
    pending_bytes: usize,
}

/// An activation on the device, waiting to be read back.
struct Pending<B: Backend> {
    point: HookPoint,
    positions: Vec<usize>,
    tensors: Vec<B::Tensor>,
    form: Form,
}

/// How a pending activation's tensors become its recording.
enum Form {
    /// One tensor, as read: `[rows, cols]`, or a pattern's `[H, rows, T]`.
    AsRead,
    /// One `[rows, heads·size]` tensor, shaped `[rows, heads, size]`.
    ByHead(usize),
    /// Each head's `[rows, width]` output, interleaved to `[rows, heads, width]`; with a post-norm,
    /// its weight `g`, and each row's divisor `s` as one more tensor (`[rows, 1]`, after the
    /// heads'), which scale every head's row by `g / s`.
    HeadResults { width: usize, post_norm: Option<Vec<f32>> },
}

impl<B: Backend> Recorder<'_, B> {
    fn wants(&self, point: HookPoint) -> bool {
        self.hooks.positions(point).is_some()
    }

    /// The rows of this call that `point` records, if it is requested.
    fn rows(&self, point: HookPoint) -> Option<Vec<usize>> {
        self.hooks.positions(point).map(|positions| positions.resolve(self.t))
    }

    fn record(&mut self, point: HookPoint, x: &B::Tensor) -> Result<()> {
        self.record_as(point, x, Form::AsRead)
    }

    /// [`record`](Self::record) of a `[t, heads·size]` activation, shaped `[t, heads, size]`.
    fn record_by_head(&mut self, point: HookPoint, x: &B::Tensor, heads: usize) -> Result<()> {
        self.record_as(point, x, Form::ByHead(heads))
    }

    fn record_as(&mut self, point: HookPoint, x: &B::Tensor, form: Form) -> Result<()> {
        let Some(rows) = self.rows(point) else { return Ok(()) };
        let selected = if matches!(point, HookPoint::AttnPattern(_)) {
            self.backend.query_rows(x, &rows)?
        } else {
            self.backend.select_rows(x, &rows)?
        };
        self.hold(point, rows, vec![selected], form)
    }

    /// Keeps `tensors` until the read-back, which comes now if the recorder holds too much.
    fn hold(&mut self, point: HookPoint, positions: Vec<usize>, tensors: Vec<B::Tensor>, form: Form) -> Result<()> {
        self.pending_bytes += 4 * positions.len() * floats_per_position(self.config, point, self.total);
        self.pending.push(Pending { point, positions, tensors, form });
        if self.pending_bytes > PENDING_BYTES {
            self.read_back(None)?;
        }
        Ok(())
    }

    /// Reads back every pending activation, with `also` in the same read-back, and returns
    /// `also`'s values.
    fn read_back(&mut self, also: Option<&B::Tensor>) -> Result<Option<(Vec<usize>, Vec<f32>)>> {
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let tensors: Vec<&B::Tensor> = pending.iter().flat_map(|p| &p.tensors).chain(also).collect();
        let mut values = self.backend.download_all(&tensors)?.into_iter();
        for Pending { point, positions, tensors, form } in pending {
            let mut read: Vec<(Vec<usize>, Vec<f32>)> = values.by_ref().take(tensors.len()).collect();
            let activation = match form {
                Form::AsRead => {
                    let (shape, data) = read.remove(0);
                    Activation { positions, shape, data }
                }
                Form::ByHead(heads) => {
                    let (shape, data) = read.remove(0);
                    Activation { positions, shape: vec![shape[0], heads, shape[1] / heads], data }
                }
                Form::HeadResults { width, post_norm } => {
                    let post_norm = post_norm.and_then(|g| Some((g, read.pop()?.1)));
                    let heads = read.len();
                    let mut data = Vec::with_capacity(positions.len() * heads * width);
                    for r in 0..positions.len() {
                        for (_, head) in &read {
                            let row = &head[r * width..(r + 1) * width];
                            match &post_norm {
                                Some((g, scales)) => data.extend(row.iter().zip(g).map(|(v, g)| g * v / scales[r])),
                                None => data.extend_from_slice(row),
                            }
                        }
                    }
                    Activation { shape: vec![positions.len(), heads, width], positions, data }
                }
            };
            self.recording.activations.insert(point, activation);
        }
        Ok(values.next())
    }
}
