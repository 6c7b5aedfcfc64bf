//! Compute backends. The transformer in `model/` is written once over [`Backend`]; each backend
//! supplies the operations on its own tensor type.
//!
//! - `candle`: CPU (and CUDA with the `cuda` feature); on the CPU its weight products run on
//!   glassbox's own quantised kernels (`kernels`), on CUDA on candle's `QMatMul`;
//! - `webgpu` (feature `webgpu`): the wgpu device, WebGPU in browsers, Vulkan/Metal/DX12 natively.

pub mod candle;
pub mod kernels;
#[cfg(feature = "webgpu")]
pub mod webgpu;

use crate::gguf::TensorInfo;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

pub type BackendResult<T> = std::result::Result<T, BackendError>;

/// Rotary embedding of one forward call: angles `(start + t) · θ^(-2i/rope_dims) / factor_i`,
/// cos and sin times `magnitude`.
pub struct Rope<'a> {
    pub start: usize,
    pub theta: f32,
    /// Per-frequency divisors (llama3's `rope_freqs.weight`, Phi-3's `rope_factors_short`), or none.
    pub freq_factors: Option<&'a [f32]>,
    /// 1 but for a model whose file scales its rotation (Phi-3's long-context attention factor).
    pub magnitude: f32,
    pub interleaved: bool,
}

/// What a rotary table depends on: start, positions, head size, θ's bits, the frequency
/// factors' bits, the magnitude's bits. Backends keep the last table made under this key: every
/// layer of a forward pass rotates with the same one.
pub type RopeTableKey = (usize, usize, usize, u32, Option<Vec<u32>>, u32);

impl Rope<'_> {
    pub fn table_key(&self, t: usize, head_dim: usize) -> RopeTableKey {
        (
            self.start,
            t,
            head_dim,
            self.theta.to_bits(),
            self.freq_factors.map(|f| f.iter().map(|v| v.to_bits()).collect()),
            self.magnitude.to_bits(),
        )
    }

    /// `cos` and `sin` of every angle, `[t, half]` row-major each, for heads of `head_dim`.
    /// Every backend rotates with these same host-computed values, so their rotations agree to
    /// the last bit.
    pub fn table(&self, t: usize, head_dim: usize) -> (Vec<f32>, Vec<f32>) {
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(t * half);
        let mut sin = Vec::with_capacity(t * half);
        for p in 0..t {
            let position = (self.start + p) as f32;
            for i in 0..half {
                // Written as 1/θ^(2i/d), not θ^(-2i/d): the two round differently, and a one-ulp
                // change moves the next matmul's activation quantisation.
                let mut freq = 1.0 / self.theta.powf((2 * i) as f32 / head_dim as f32);
                if let Some(factors) = self.freq_factors {
                    freq /= factors.get(i).copied().unwrap_or(1.0);
                }
                let angle = position * freq;
                // Exact for a magnitude of 1: the table keeps its bits.
                cos.push(angle.cos() * self.magnitude);
                sin.push(angle.sin() * self.magnitude);
            }
        }
        (cos, sin)
    }
}

/// The largest entries of a row, largest first (the lower index on ties), with the row's
/// `log Σ exp`: `values[i] − log_sum_exp` is entry `ids[i]`'s log-probability. `picked` holds
/// the values of the entries a caller named besides (a sampler's penalised tokens).
#[derive(Clone, Debug, PartialEq)]
pub struct TopK {
    pub ids: Vec<u32>,
    pub values: Vec<f32>,
    pub log_sum_exp: f32,
    pub picked: Vec<f32>,
}

impl TopK {
    /// Computed on the host from the whole row; `pick` must index into it.
    pub fn of(row: &[f32], k: usize, pick: &[u32]) -> TopK {
        let order = crate::numeric::top_k(row, k);
        TopK {
            ids: order.iter().map(|&i| i as u32).collect(),
            values: order.iter().map(|&i| row[i]).collect(),
            log_sum_exp: crate::numeric::log_sum_exp(row),
            picked: pick.iter().map(|&i| row[i as usize]).collect(),
        }
    }
}

/// Checks a [`Backend::top_k`] request on a row of `n` entries.
pub fn check_top_k(n: usize, k: usize, pick: &[u32]) -> Result<(), BackendError> {
    if k == 0 || k > n {
        return Err(BackendError(format!("top {k} of a row of {n}: 1 ≤ k ≤ its length")));
    }
    if let Some(id) = pick.iter().find(|&&id| id as usize >= n) {
        return Err(BackendError(format!("entry {id} of a row of {n}")));
    }
    Ok(())
}

/// The shapes [`Backend::shifted_log_probs`] needs: a base of `vocab` logits per pair, a row of
/// shifts per pair, and a target inside the vocabulary.
pub fn check_shifts(
    bases: &[&[f32]],
    vocab: usize,
    shift_values: usize,
    pairs: &[usize],
    target: usize,
) -> BackendResult<()> {
    let fits = vocab > 0
        && target < vocab
        && bases.iter().all(|b| b.len() == vocab)
        && Some(shift_values) == pairs.len().checked_mul(vocab)
        && pairs.iter().all(|&p| p < bases.len());
    if !fits {
        return Err(BackendError(format!(
            "shifted log-probabilities of target {target} over {} shifts of a {vocab}-entry vocabulary, {} bases, pairs {pairs:?}",
            shift_values / vocab.max(1),
            bases.len()
        )));
    }
    Ok(())
}

/// Work a device backend has done since it was made, counted rather than timed: what a decoded
/// token or an attribution costs in round trips to the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeviceCounts {
    /// Command buffers handed to the device's queue.
    pub submits: u64,
    /// Kernels run.
    pub dispatches: u64,
    /// Values copied back to the host, each a wait for the device.
    pub readbacks: u64,
    pub readback_bytes: u64,
    pub buffers_created: u64,
}

impl DeviceCounts {
    /// What was done after `earlier` was taken.
    pub fn since(&self, earlier: &DeviceCounts) -> DeviceCounts {
        DeviceCounts {
            submits: self.submits - earlier.submits,
            dispatches: self.dispatches - earlier.dispatches,
            readbacks: self.readbacks - earlier.readbacks,
            readback_bytes: self.readback_bytes - earlier.readback_bytes,
            buffers_created: self.buffers_created - earlier.buffers_created,
        }
    }

    /// Each count divided by `n` (per token, per step).
    pub fn per(&self, n: u64) -> serde_json::Value {
        let each = |v: u64| v as f64 / n.max(1) as f64;
        serde_json::json!({
            "submits": each(self.submits),
            "dispatches": each(self.dispatches),
            "readbacks": each(self.readbacks),
            "readback_bytes": each(self.readback_bytes),
            "buffers_created": each(self.buffers_created),
        })
    }
}

/// How an attention call's heads are laid out and how far back they look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heads {
    pub heads: usize,
    /// Query head `h` reads key/value head `h / (heads / kv_heads)`.
    pub kv_heads: usize,
    /// A query sees the keys within this many positions of it, itself included (a sliding
    /// window); `None`: every key up to it.
    pub window: Option<usize>,
}

impl Heads {
    /// The first key a query at absolute position `position` sees.
    pub fn first_visible(&self, position: usize) -> usize {
        self.window.map_or(0, |w| (position + 1).saturating_sub(w))
    }
}

/// The operations the transformer needs. Activations are row-major `[positions, width]` matrices
/// of f32; weights keep their GGUF encoding where the backend can compute with it.
pub trait Backend {
    type Tensor: Clone;
    type Matrix;

    /// A `[out, in]` weight matrix from its GGUF bytes (GGUF shape `[in, out]`), which it may keep
    /// rather than copy: a model's weights are then in memory once while it loads.
    fn matrix(&self, info: &TensorInfo, bytes: Vec<u8>) -> BackendResult<Self::Matrix>;
    /// A host vector (norm weights, biases) as a `[1, n]` tensor.
    fn vector(&self, values: &[f32]) -> BackendResult<Self::Tensor>;
    fn upload(&self, rows: usize, cols: usize, values: &[f32]) -> BackendResult<Self::Tensor>;
    /// `(shape, values)` copied to the host.
    fn download(&self, x: &Self::Tensor) -> BackendResult<(Vec<usize>, Vec<f32>)>;
    /// [`download`](Self::download) of each of `xs`, in one read-back where the backend reads
    /// from a device.
    fn download_all(&self, xs: &[&Self::Tensor]) -> BackendResult<Vec<(Vec<usize>, Vec<f32>)>> {
        xs.iter().map(|x| self.download(x)).collect()
    }

    /// Rows `ids` of an embedding table, dequantising only those rows.
    fn embed(&self, table: &Self::Matrix, ids: &[u32]) -> BackendResult<Self::Tensor>;
    /// `x · Wᵀ` for `x: [t, in]`, `W: [out, in]`.
    fn linear(&self, x: &Self::Tensor, w: &Self::Matrix) -> BackendResult<Self::Tensor>;
    /// Elementwise sum; `b` may be a `[1, n]` row broadcast over `a`'s rows.
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> BackendResult<Self::Tensor>;
    /// Elementwise product; `b` may be a `[1, n]` row broadcast over `a`'s rows.
    fn mul(&self, a: &Self::Tensor, b: &Self::Tensor) -> BackendResult<Self::Tensor>;
    fn silu(&self, x: &Self::Tensor) -> BackendResult<Self::Tensor>;
    /// GELU with the tanh approximation, `x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    fn gelu_tanh(&self, x: &Self::Tensor) -> BackendResult<Self::Tensor>;
    /// `silu(gate) ⊙ up`, the gated MLP's product, which a device does in one kernel.
    fn silu_mul(&self, gate: &Self::Tensor, up: &Self::Tensor) -> BackendResult<Self::Tensor> {
        self.mul(&self.silu(gate)?, up)
    }
    /// `gelu_tanh(gate) ⊙ up`.
    fn gelu_mul(&self, gate: &Self::Tensor, up: &Self::Tensor) -> BackendResult<Self::Tensor> {
        self.mul(&self.gelu_tanh(gate)?, up)
    }
    /// RMSNorm: `weight ⊙ x / sqrt(mean(x²) + eps)` over each run of `n` values of a row, for
    /// `weight: [1, n]` with `n` dividing the row (`n` smaller than the row: each head
    /// normalised on its own).
    fn rms_norm(&self, x: &Self::Tensor, weight: &Self::Tensor, eps: f64) -> BackendResult<Self::Tensor>;
    /// Each row's `sqrt(mean(x²) + eps)`, as `[t, 1]`: the scale RMSNorm divides by.
    fn rms(&self, x: &Self::Tensor, eps: f64) -> BackendResult<Self::Tensor>;
    /// Rotates `x: [t, heads·head_dim]` head by head.
    fn rope(&self, x: &Self::Tensor, heads: usize, rope: &Rope) -> BackendResult<Self::Tensor>;
    /// Causal attention of `q: [t, H·d]` over `k, v: [T, KV·d]`, the queries sitting at the last
    /// `t` of the `T` positions. Returns `z: [t, H·d]` and, when `probabilities` asks (a hook
    /// wants the pattern), the probabilities `[H, t, T]` (zero outside what a query sees).
    fn attention(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        heads: Heads,
        probabilities: bool,
    ) -> BackendResult<(Self::Tensor, Option<Self::Tensor>)>;
    /// Whether `attention` holds every score and probability `[H, t, T]` at once even when no
    /// hook asks for them (a kernel that walks one query at a time does not).
    fn holds_all_scores(&self) -> bool {
        true
    }
    /// Query rows `rows` of each head of attention probabilities `[H, t, T]`: `[H, rows.len(),
    /// T]`, so that a hook copies back only the positions it asked for.
    fn query_rows(&self, probabilities: &Self::Tensor, rows: &[usize]) -> BackendResult<Self::Tensor>;
    /// A `[rows, cols]` tensor for [`write_rows`](Backend::write_rows) to fill: the storage of
    /// a growing cache. Its values before they are written are unspecified.
    fn empty_rows(&self, rows: usize, cols: usize) -> BackendResult<Self::Tensor>;
    /// Writes `rows` into `store` from row `at` on, in place: every tensor sharing `store`'s
    /// storage sees the change, so callers write only rows that no tensor in use reads.
    fn write_rows(&self, store: &Self::Tensor, at: usize, rows: &Self::Tensor) -> BackendResult<()>;
    /// The first `n` rows of `x`, sharing its storage.
    fn leading_rows(&self, x: &Self::Tensor, n: usize) -> BackendResult<Self::Tensor>;
    fn select_rows(&self, x: &Self::Tensor, rows: &[usize]) -> BackendResult<Self::Tensor>;
    /// Multiplies columns `[start, start + len)` of every row by `factor`.
    fn scale_columns(&self, x: &Self::Tensor, start: usize, len: usize, factor: f32) -> BackendResult<Self::Tensor>;
    /// Replaces row `row` with `values`.
    fn set_row(&self, x: &Self::Tensor, row: usize, values: &[f32]) -> BackendResult<Self::Tensor>;

    /// The matrix's values as f32, `[out, in]`.
    fn dequantize(&self, w: &Self::Matrix) -> BackendResult<Self::Tensor>;
    /// `w` dequantised to f32, kept on the device: its products read their input without
    /// rounding it.
    fn dequantized(&self, w: &Self::Matrix) -> BackendResult<Self::Matrix>;
    /// Columns `cols` of `w: [out, in]`, as the rows of a `[cols.len(), out]` tensor. Fetches
    /// single columns without copying the matrix to the host.
    fn columns(&self, w: &Self::Matrix, cols: &[usize]) -> BackendResult<Self::Tensor>;
    /// `x · W` for `x: [t, out]`, `W: [out, in]`: pulls a vector in output space back to input
    /// space (gradients, dot products with every column).
    fn linear_transposed(&self, x: &Self::Tensor, w: &Self::Matrix) -> BackendResult<Self::Tensor>;
    /// The `k` largest entries of the one-row `x`, its `log Σ exp` and the entries `pick`,
    /// without copying the row to the host where the backend can avoid it.
    fn top_k(&self, x: &Self::Tensor, k: usize, pick: &[u32]) -> BackendResult<TopK>;
    /// The host rows `x` (each `w`'s input width) rounded the way `linear(x, w)` reads them.
    /// Quantised kernels quantise their input, so `linear(x, w) = as_read_by(x, w) ·
    /// dequantize(w)ᵀ` up to float summation order: this is what makes per-neuron contributions
    /// add up to the layer's output exactly. The rounding is a function of the values alone, so
    /// it runs on the host: no device work, no read-back.
    fn as_read_by(&self, x: &[f32], w: &Self::Matrix) -> BackendResult<Vec<f32>>;
    /// `log softmax(bases[pairs[i]] + shifts[i])[target]` for each row `i` of `shifts: [n, V]`,
    /// each base a host row of V logits: the target's log-probability once row `i` is added to
    /// its base (exact LPI). Backends on a device compute it there, so that `n` numbers cross
    /// to the host rather than `n · V`.
    fn shifted_log_probs(
        &self,
        bases: &[&[f32]],
        shifts: &Self::Tensor,
        pairs: &[usize],
        target: usize,
    ) -> BackendResult<Vec<f64>>;
    /// Whether the device is the CPU running a GPU's programs in software (a software WebGPU
    /// adapter such as lavapipe or SwiftShader), so that large f32 products run faster on the
    /// CPU kernels directly.
    fn emulated_on_cpu(&self) -> bool {
        false
    }
    /// The device work done so far, for backends that queue work on a device (none for the
    /// host, where every operation runs when called).
    fn device_counts(&self) -> Option<DeviceCounts> {
        None
    }
}
