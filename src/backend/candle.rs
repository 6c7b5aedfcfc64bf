//! The candle backend: CPU, and CUDA with the `cuda` feature. Device-generic: every tensor lives
//! on the `Device` it was created with. On the CPU the weight products, attention and rotary
//! embedding run on glassbox's kernels (`super::kernels`), and candle computes the rest (norms,
//! element-wise operations); on CUDA, candle computes everything.

use std::sync::{Arc, Mutex};

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QMatMul, QTensor};
use candle_core::{CpuStorage, DType, Device, Module, Storage, Tensor, D};

use super::kernels::attention::{attention, AttentionShape};
use super::kernels::rope::rotate;
use super::kernels::{Format, QuantizedMatrix, ThreadPool};
use super::{check_shifts, check_top_k, Backend, BackendError, BackendResult, Heads, Rope, RopeTableKey, TopK};
use crate::gguf::{GgmlType, TensorInfo};

/// What a causal mask depends on: queries, positions, and the sliding window.
type MaskKey = (usize, usize, Option<usize>);

pub struct CandleBackend {
    device: Device,
    float_weights: bool,
    /// The threads of the CPU kernels; `None`: the process's shared pool.
    pool: Option<Arc<ThreadPool>>,
    /// The last rotary table and causal mask made: the layers of a forward pass share them (a
    /// model with sliding-window layers changes them only where local and global layers meet),
    /// so a GPU receives each a few times per pass instead of once per layer.
    rope_table: Mutex<Option<(RopeTableKey, Tensor, Tensor)>>,
    causal_mask: Mutex<Option<(MaskKey, Tensor)>>,
}

impl CandleBackend {
    /// On CUDA this selects candle's dequantising kernels for every quantised matmul (a
    /// process-wide switch in candle): they multiply the f32 input unrounded, so the CPU with
    /// f32 weights is an exact reference and attribution's decompositions stay exact. candle's
    /// default MMVQ/MMQ kernels round the input to Q8_1, though not as the CPU kernels do: on
    /// SmolLM2 the two quantised paths' residual streams differed by 1 to 5% after the first
    /// layer, while the dequantising kernels match the CPU to 1e-6 (scripts/gpu-check.sh; each
    /// kernel path is checked by tests/cuda_kernels.rs).
    pub fn new(device: Device) -> Self {
        #[cfg(feature = "cuda")]
        if device.is_cuda() {
            candle_core::quantized::cuda::set_force_dmmv(true);
        }
        CandleBackend {
            device,
            float_weights: false,
            pool: None,
            rope_table: Mutex::new(None),
            causal_mask: Mutex::new(None),
        }
    }

    /// The CPU kernels on `pool` instead of the process's shared one (one thread per physical
    /// core).
    pub fn with_pool(self, pool: Arc<ThreadPool>) -> Self {
        CandleBackend { pool: Some(pool), ..self }
    }

    fn pool(&self) -> &ThreadPool {
        match &self.pool {
            Some(pool) => pool,
            None => ThreadPool::shared(),
        }
    }

    /// Every weight matrix dequantised to f32 at load: products then round nothing (the
    /// quantised kernels round their input to 8 bits). Four bytes a weight.
    pub fn with_float_weights(device: Device) -> Self {
        CandleBackend { float_weights: true, ..Self::new(device) }
    }

    /// `cos` and `sin` of every angle, `[t, half]` each.
    fn rope_table(&self, t: usize, half: usize, head_dim: usize, rope: &Rope) -> BackendResult<(Tensor, Tensor)> {
        let key = rope.table_key(t, head_dim);
        let mut cached = self.rope_table.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((k, cos, sin)) = cached.as_ref() {
            if *k == key {
                return Ok((cos.clone(), sin.clone()));
            }
        }
        let (cos, sin) = rope.table(t, head_dim);
        let cos = Tensor::from_vec(cos, (t, half), &self.device).map_err(err)?;
        let sin = Tensor::from_vec(sin, (t, half), &self.device).map_err(err)?;
        *cached = Some((key, cos.clone(), sin.clone()));
        Ok((cos, sin))
    }

    /// 0 where query `i` (at absolute position `total − t + i`) may see key `j`, −∞ elsewhere:
    /// `[1, t, total]`.
    fn causal_mask(&self, t: usize, total: usize, heads: Heads) -> BackendResult<Tensor> {
        let mut cached = self.causal_mask.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((key, mask)) = cached.as_ref() {
            if *key == (t, total, heads.window) {
                return Ok(mask.clone());
            }
        }
        let offset = total - t;
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| {
                let visible = heads.first_visible(offset + i)..=offset + i;
                (0..total).map(move |j| if visible.contains(&j) { 0.0 } else { f32::NEG_INFINITY })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (1, t, total), &self.device).map_err(err)?;
        *cached = Some(((t, total, heads.window), mask.clone()));
        Ok(mask)
    }

    pub fn cpu() -> Self {
        Self::new(Device::Cpu)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }
}

fn err(e: candle_core::Error) -> BackendError {
    BackendError(e.to_string())
}

/// A GGUF tensor as an f32 candle tensor on the CPU, in PyTorch dimension order.
pub fn dequantize_to_f32(info: &TensorInfo, bytes: &[u8]) -> BackendResult<Tensor> {
    let dtype = candle_dtype(info.ggml_type).ok_or_else(|| {
        BackendError(format!("tensor {} has type {}, which glassbox cannot dequantise", info.name, info.ggml_type))
    })?;
    let dims: Vec<usize> = info.shape.iter().rev().map(|&d| d as usize).collect();
    qtensor_from_ggml(dtype, bytes, dims, &Device::Cpu).and_then(|q| q.dequantize(&Device::Cpu)).map_err(err)
}

/// The GGUF types candle computes with.
fn candle_dtype(t: GgmlType) -> Option<GgmlDType> {
    Some(match t {
        GgmlType::F32 => GgmlDType::F32,
        GgmlType::F16 => GgmlDType::F16,
        GgmlType::Bf16 => GgmlDType::BF16,
        GgmlType::Q4_0 => GgmlDType::Q4_0,
        GgmlType::Q4_1 => GgmlDType::Q4_1,
        GgmlType::Q5_0 => GgmlDType::Q5_0,
        GgmlType::Q5_1 => GgmlDType::Q5_1,
        GgmlType::Q8_0 => GgmlDType::Q8_0,
        GgmlType::Q2K => GgmlDType::Q2K,
        GgmlType::Q3K => GgmlDType::Q3K,
        GgmlType::Q4K => GgmlDType::Q4K,
        GgmlType::Q5K => GgmlDType::Q5K,
        GgmlType::Q6K => GgmlDType::Q6K,
        _ => return None,
    })
}

/// A weight matrix.
pub enum CandleMatrix {
    /// On the CPU: the GGUF encoding, multiplied by glassbox's kernels.
    Kernel(QuantizedMatrix),
    /// f32 weights `[rows, cols]` (F32 tensors, dequantised copies, `with_float_weights`),
    /// multiplied by candle's cache-blocked GEMM, which wins once the input has many rows.
    Float(Tensor),
    /// On CUDA, or a type without a CPU kernel (Q2_K, Q3_K, BF16): candle's quantised matmul,
    /// and the quantised tensor for row lookups.
    Candle { matmul: QMatMul, table: Arc<QTensor> },
}

impl CandleBackend {
    fn cpu_matrix(&self, info: &TensorInfo, rows: usize, cols: usize, bytes: Vec<u8>) -> BackendResult<CandleMatrix> {
        let matrix = QuantizedMatrix::new(&info.name, info.ggml_type, rows, cols, bytes)
            .map_err(|e| BackendError(e.to_string()))?;
        if self.float_weights || matrix.format() == Format::F32 {
            return self.float_matrix(&matrix);
        }
        Ok(CandleMatrix::Kernel(matrix))
    }

    fn float_matrix(&self, matrix: &QuantizedMatrix) -> BackendResult<CandleMatrix> {
        Tensor::from_vec(matrix.dequantize(), (matrix.rows(), matrix.cols()), &self.device)
            .map(CandleMatrix::Float)
            .map_err(err)
    }

    /// [`attention`] on the kernels' pool, with the shapes checked first (the kernel panics on
    /// mismatched ones).
    fn cpu_attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        shape: AttentionShape,
        probabilities: bool,
    ) -> BackendResult<(Tensor, Option<Tensor>)> {
        let kv_width = shape.kv_heads * shape.head_dim;
        let expected = [(shape.total, kv_width); 2];
        let got = [k.dims2().map_err(err)?, v.dims2().map_err(err)?];
        if got != expected || shape.kv_heads == 0 || shape.heads % shape.kv_heads != 0 || shape.t > shape.total {
            return Err(BackendError(format!(
                "attention of {} queries over keys and values {got:?} with {} heads in {} groups",
                shape.t, shape.heads, shape.kv_heads
            )));
        }
        let (z, weights) = with_host_values(q, |q| {
            with_host_values(k, |k| with_host_values(v, |v| attention(q, k, v, shape, probabilities, self.pool())))
        })???;
        let z = Tensor::from_vec(z, (shape.t, shape.heads * shape.head_dim), &self.device).map_err(err)?;
        let weights = weights
            .map(|w| Tensor::from_vec(w, (shape.heads, shape.t, shape.total), &self.device).map_err(err))
            .transpose()?;
        Ok((z, weights))
    }

    /// A kernel's `[t, rows]` output as a tensor.
    fn kernel_output(&self, values: Vec<f32>, rows: usize) -> BackendResult<Tensor> {
        let t = values.len().checked_div(rows).unwrap_or(0);
        Tensor::from_vec(values, (t, rows), &self.device).map_err(err)
    }
}

/// `f` of the f32 values of a CPU tensor, row-major: read in place when the tensor is contiguous
/// f32, else copied.
fn with_host_values<R>(x: &Tensor, f: impl FnOnce(&[f32]) -> R) -> BackendResult<R> {
    {
        let (storage, layout) = x.storage_and_layout();
        if let (Storage::Cpu(CpuStorage::F32(data)), Some((start, end))) = (&*storage, layout.contiguous_offsets()) {
            return Ok(f(&data[start..end]));
        }
    }
    let values = x.flatten_all().and_then(|f| f.to_dtype(DType::F32)).and_then(|f| f.to_vec1()).map_err(err)?;
    Ok(f(&values))
}

impl Backend for CandleBackend {
    type Tensor = Tensor;
    type Matrix = CandleMatrix;

    fn matrix(&self, info: &TensorInfo, bytes: Vec<u8>) -> BackendResult<CandleMatrix> {
        let dims: Vec<usize> = info.shape.iter().rev().map(|&d| d as usize).collect();
        if let ([rows, cols], true) = (dims.as_slice(), self.device.is_cpu()) {
            if Format::of(info.ggml_type).is_some() {
                return self.cpu_matrix(info, *rows, *cols, bytes);
            }
        }
        let dtype = candle_dtype(info.ggml_type).ok_or_else(|| {
            BackendError(format!(
                "tensor {} has type {}, which the candle backend cannot compute with",
                info.name, info.ggml_type
            ))
        })?;
        let table = Arc::new(qtensor_from_ggml(dtype, &bytes, dims, &self.device).map_err(err)?);
        let matmul = if self.float_weights {
            QMatMul::Tensor(table.dequantize(&self.device).map_err(err)?)
        } else {
            QMatMul::from_arc(table.clone()).map_err(err)?
        };
        Ok(CandleMatrix::Candle { matmul, table })
    }

    fn vector(&self, values: &[f32]) -> BackendResult<Tensor> {
        self.upload(1, values.len(), values)
    }

    fn upload(&self, rows: usize, cols: usize, values: &[f32]) -> BackendResult<Tensor> {
        Tensor::from_slice(values, (rows, cols), &self.device).map_err(err)
    }

    fn download(&self, x: &Tensor) -> BackendResult<(Vec<usize>, Vec<f32>)> {
        Ok((x.dims().to_vec(), with_host_values(x, <[f32]>::to_vec)?))
    }

    /// On the host in f64, the rows split across the pool: exact attribution over every
    /// neuron sums tens of thousands of vocabulary-long rows.
    fn shifted_log_probs(
        &self,
        bases: &[&[f32]],
        shifts: &Tensor,
        pairs: &[usize],
        target: usize,
    ) -> BackendResult<Vec<f64>> {
        let vocab = shifts.dims().last().copied().unwrap_or(0);
        with_host_values(shifts, |values| {
            check_shifts(bases, vocab, values.len(), pairs, target)?;
            Ok(self.pool().map(pairs.len(), &|i| {
                crate::numeric::log_prob_of_sum(bases[pairs[i]], Some(&values[i * vocab..(i + 1) * vocab]), target)
            }))
        })?
    }

    fn embed(&self, table: &CandleMatrix, ids: &[u32]) -> BackendResult<Tensor> {
        match table {
            CandleMatrix::Kernel(m) => {
                let rows = m.dequantize_rows(ids).ok_or_else(|| {
                    BackendError(format!("a token id in {ids:?} is outside the embedding's {} rows", m.rows()))
                })?;
                Tensor::from_vec(rows, (ids.len(), m.cols()), &self.device).map_err(err)
            }
            CandleMatrix::Float(w) => {
                let ids = Tensor::from_slice(ids, ids.len(), &self.device).map_err(err)?;
                w.index_select(&ids, 0).map_err(err)
            }
            CandleMatrix::Candle { table, .. } => {
                let ids = Tensor::from_slice(ids, ids.len(), &self.device).map_err(err)?;
                table.embedding(&ids).map_err(err)
            }
        }
    }

    fn linear(&self, x: &Tensor, w: &CandleMatrix) -> BackendResult<Tensor> {
        match w {
            CandleMatrix::Kernel(m) => {
                let cols = x.dim(D::Minus1).map_err(err)?;
                if cols != m.cols() {
                    return Err(BackendError(format!("a product of {cols}-wide rows with a {}-wide matrix", m.cols())));
                }
                self.kernel_output(with_host_values(x, |x| m.matmul(x, self.pool()))?, m.rows())
            }
            CandleMatrix::Float(w) => x.matmul(&w.t().map_err(err)?).map_err(err),
            CandleMatrix::Candle { matmul, .. } => matmul.forward(x).map_err(err),
        }
    }

    fn add(&self, a: &Tensor, b: &Tensor) -> BackendResult<Tensor> {
        a.broadcast_add(b).map_err(err)
    }

    fn mul(&self, a: &Tensor, b: &Tensor) -> BackendResult<Tensor> {
        a.broadcast_mul(b).map_err(err)
    }

    fn silu(&self, x: &Tensor) -> BackendResult<Tensor> {
        candle_nn::ops::silu(x).map_err(err)
    }

    fn gelu_tanh(&self, x: &Tensor) -> BackendResult<Tensor> {
        // candle's `gelu` is the tanh approximation (`gelu_erf` the exact one).
        x.gelu().map_err(err)
    }

    fn rms_norm(&self, x: &Tensor, weight: &Tensor, eps: f64) -> BackendResult<Tensor> {
        // candle's fused kernel: the norm's rounding feeds the activation quantisation of the
        // next matmul, so every path must round the same way.
        let weight = weight.flatten_all().map_err(err)?;
        let (rows, width) = x.dims2().map_err(err)?;
        let n = weight.elem_count();
        if n == 0 || width % n != 0 {
            return Err(BackendError(format!("RMSNorm of rows of {width} with a weight of {n}")));
        }
        let groups = x.reshape((rows * width / n, n)).map_err(err)?;
        candle_nn::ops::rms_norm(&groups, &weight, eps as f32).and_then(|y| y.reshape((rows, width))).map_err(err)
    }

    fn rms(&self, x: &Tensor, eps: f64) -> BackendResult<Tensor> {
        x.sqr().and_then(|s| s.mean_keepdim(D::Minus1)).and_then(|m| m + eps).and_then(|m| m.sqrt()).map_err(err)
    }

    fn rope(&self, x: &Tensor, heads: usize, rope: &Rope) -> BackendResult<Tensor> {
        let (t, width) = x.dims2().map_err(err)?;
        let head_dim = width / heads;
        let half = head_dim / 2;
        let (cos, sin) = self.rope_table(t, half, head_dim, rope)?;
        if self.device.is_cpu() && heads * head_dim == width && head_dim % 2 == 0 {
            let rotated = with_host_values(x, |x| {
                with_host_values(&cos, |cos| {
                    with_host_values(&sin, |sin| rotate(x, cos, sin, heads, head_dim, rope.interleaved))
                })
            })???;
            return Tensor::from_vec(rotated, (t, width), &self.device).map_err(err);
        }
        let by_head = x
            .reshape((1, t, heads, head_dim))
            .and_then(|x| x.transpose(1, 2))
            .and_then(|x| x.contiguous())
            .map_err(err)?;
        let rotated = if rope.interleaved {
            candle_nn::rotary_emb::rope_i(&by_head, &cos, &sin)
        } else {
            candle_nn::rotary_emb::rope(&by_head, &cos, &sin)
        }
        .map_err(err)?;
        rotated.transpose(1, 2).and_then(|x| x.reshape((t, width))).map_err(err)
    }

    fn holds_all_scores(&self) -> bool {
        !self.device.is_cpu()
    }

    fn attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        layout: Heads,
        probabilities: bool,
    ) -> BackendResult<(Tensor, Option<Tensor>)> {
        let Heads { heads, kv_heads, window } = layout;
        let (t, width) = q.dims2().map_err(err)?;
        let total = k.dim(0).map_err(err)?;
        let head_dim = width / heads;
        if self.device.is_cpu() {
            let shape = AttentionShape { t, total, heads, kv_heads, head_dim, window };
            return self.cpu_attention(q, k, v, shape, probabilities);
        }
        let group = heads / kv_heads;
        let split = |x: &Tensor, n: usize, rows: usize| {
            x.reshape((rows, n, head_dim)).and_then(|x| x.transpose(0, 1)).and_then(|x| x.contiguous())
        };
        // GQA: query head h reads kv head h / group.
        let expand = |x: Tensor| -> candle_core::Result<Tensor> {
            if group == 1 {
                return Ok(x);
            }
            x.unsqueeze(1)?.expand((kv_heads, group, total, head_dim))?.reshape((heads, total, head_dim))
        };
        let q = split(q, heads, t).map_err(err)?;
        let k = split(k, kv_heads, total).and_then(expand).map_err(err)?;
        let v = split(v, kv_heads, total).and_then(expand).map_err(err)?;
        let scores = q.matmul(&k.t().map_err(err)?).and_then(|s| s / (head_dim as f64).sqrt()).map_err(err)?;
        let mask = self.causal_mask(t, total, layout)?;
        let probs = scores.broadcast_add(&mask).and_then(|s| candle_nn::ops::softmax_last_dim(&s)).map_err(err)?;
        let z = probs.matmul(&v).and_then(|z| z.transpose(0, 1)).and_then(|z| z.reshape((t, width))).map_err(err)?;
        // The probabilities are made either way: z is their product with v.
        Ok((z, probabilities.then_some(probs)))
    }

    fn empty_rows(&self, rows: usize, cols: usize) -> BackendResult<Tensor> {
        Tensor::zeros((rows, cols), DType::F32, &self.device).map_err(err)
    }

    fn write_rows(&self, store: &Tensor, at: usize, rows: &Tensor) -> BackendResult<()> {
        store.slice_set(&rows.to_dtype(DType::F32).and_then(|r| r.contiguous()).map_err(err)?, 0, at).map_err(err)
    }

    fn leading_rows(&self, x: &Tensor, n: usize) -> BackendResult<Tensor> {
        x.narrow(0, 0, n).map_err(err)
    }

    fn select_rows(&self, x: &Tensor, rows: &[usize]) -> BackendResult<Tensor> {
        let ids: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let ids = Tensor::from_vec(ids, rows.len(), &self.device).map_err(err)?;
        x.index_select(&ids, 0).map_err(err)
    }

    fn query_rows(&self, probabilities: &Tensor, rows: &[usize]) -> BackendResult<Tensor> {
        let ids: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let ids = Tensor::from_vec(ids, rows.len(), &self.device).map_err(err)?;
        probabilities.index_select(&ids, 1).map_err(err)
    }

    fn scale_columns(&self, x: &Tensor, start: usize, len: usize, factor: f32) -> BackendResult<Tensor> {
        let width = x.dim(1).map_err(err)?;
        let scale: Vec<f32> =
            (0..width).map(|c| if (start..start + len).contains(&c) { factor } else { 1.0 }).collect();
        let scale = Tensor::from_vec(scale, (1, width), &self.device).map_err(err)?;
        x.broadcast_mul(&scale).map_err(err)
    }

    fn set_row(&self, x: &Tensor, row: usize, values: &[f32]) -> BackendResult<Tensor> {
        let (_, width) = x.dims2().map_err(err)?;
        let replacement = Tensor::from_slice(values, (1, width), &self.device).map_err(err)?;
        x.slice_assign(&[row..row + 1, 0..width], &replacement).map_err(err)
    }

    fn dequantize(&self, w: &CandleMatrix) -> BackendResult<Tensor> {
        match w {
            CandleMatrix::Kernel(m) => {
                Tensor::from_vec(m.dequantize(), (m.rows(), m.cols()), &self.device).map_err(err)
            }
            CandleMatrix::Float(w) => Ok(w.clone()),
            CandleMatrix::Candle { matmul: QMatMul::Tensor(t), .. } => Ok(t.clone()),
            CandleMatrix::Candle { matmul: QMatMul::TensorF16(t), .. } => t.to_dtype(DType::F32).map_err(err),
            CandleMatrix::Candle { matmul: QMatMul::QTensor(q), .. } => q.dequantize(&self.device).map_err(err),
        }
    }

    fn dequantized(&self, w: &CandleMatrix) -> BackendResult<CandleMatrix> {
        match w {
            CandleMatrix::Kernel(m) => self.float_matrix(m),
            CandleMatrix::Float(w) => Ok(CandleMatrix::Float(w.clone())),
            // Row lookups read the same values from the quantised table.
            CandleMatrix::Candle { table, .. } => {
                Ok(CandleMatrix::Candle { matmul: QMatMul::Tensor(self.dequantize(w)?), table: table.clone() })
            }
        }
    }

    fn columns(&self, w: &CandleMatrix, cols: &[usize]) -> BackendResult<Tensor> {
        let ids: Vec<u32> = cols.iter().map(|&c| c as u32).collect();
        let ids = Tensor::from_vec(ids, cols.len(), &self.device).map_err(err)?;
        self.dequantize(w)?.index_select(&ids, 1).and_then(|c| c.t()).and_then(|c| c.contiguous()).map_err(err)
    }

    fn linear_transposed(&self, x: &Tensor, w: &CandleMatrix) -> BackendResult<Tensor> {
        if let CandleMatrix::Kernel(m) = w {
            let rows = x.dim(0).map_err(err)?;
            let product = with_host_values(x, |x| m.transposed_matmul(x, self.pool()))?;
            return Tensor::from_vec(product, (rows, m.cols()), &self.device).map_err(err);
        }
        x.matmul(&self.dequantize(w)?).map_err(err)
    }

    fn top_k(&self, x: &Tensor, k: usize, pick: &[u32]) -> BackendResult<TopK> {
        let (_, row) = self.download(x)?;
        check_top_k(row.len(), k, pick)?;
        Ok(TopK::of(&row, k, pick))
    }

    fn as_read_by(&self, x: &[f32], w: &CandleMatrix) -> BackendResult<Vec<f32>> {
        let quantised = match w {
            CandleMatrix::Kernel(m) => return Ok(m.read_as(x, self.pool())),
            CandleMatrix::Float(_) | CandleMatrix::Candle { matmul: QMatMul::Tensor(_), .. } => return Ok(x.to_vec()),
            CandleMatrix::Candle { matmul: QMatMul::TensorF16(_), .. } => {
                return Ok(x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect())
            }
            CandleMatrix::Candle { matmul: QMatMul::QTensor(q), .. } => q,
        };
        let Some(read_as) = activation_type(&self.device, quantised.dtype()) else { return Ok(x.to_vec()) };
        let cols = quantised.shape().dims().last().copied().unwrap_or(1).max(1);
        if x.len() % cols != 0 {
            return Err(BackendError(format!("{} values are not whole rows of {cols}", x.len())));
        }
        // The rounding is the same wherever it runs; candle quantises on the CPU.
        let rows = Tensor::from_slice(x, (x.len() / cols, cols), &Device::Cpu).map_err(err)?;
        QTensor::quantize(&rows, read_as)
            .and_then(|q| q.dequantize(&Device::Cpu))
            .and_then(|r| r.flatten_all()?.to_vec1())
            .map_err(err)
    }
}

/// The type a quantised matmul rounds its f32 input to, on `device`, for weights of type
/// `weights`; `None` when it reads the input as it is.
/// - CPU (candle's `VecDotType`): Q8_0 for Q4_0, Q5_0 and Q8_0; Q8_1 for Q4_1 and Q5_1; Q8K for
///   the K-quants.
/// - CUDA: none, with the dequantising kernels [`CandleBackend::new`] selects.
fn activation_type(device: &Device, weights: GgmlDType) -> Option<GgmlDType> {
    use GgmlDType::*;
    if matches!(weights, F32 | F16 | BF16) || device.is_cuda() {
        return None;
    }
    match weights {
        Q4_0 | Q5_0 | Q8_0 => Some(Q8_0),
        Q4_1 | Q5_1 | Q8_1 => Some(Q8_1),
        Q2K | Q3K | Q4K | Q5K | Q6K | Q8K => Some(Q8K),
        _ => None,
    }
}
