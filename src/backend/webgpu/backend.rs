//! The WebGPU backend behind the same [`Backend`] trait as candle's, natively (Vulkan, Metal,
//! DX12): the transformer, hooks and interpretability run on the WGSL kernels unchanged.
//!
//! `Backend::download` returns at once. Natively it blocks on the device; in a browser, which
//! maps GPU memory only from its event loop, it suspends the wasm task until the map settles
//! ([`crate::jspi`]).

use super::{GpuDevice, GpuError, GpuMatrix, GpuTensor};
use crate::backend::{Backend, BackendError, BackendResult, DeviceCounts, Heads, Rope, TopK};
use crate::gguf::TensorInfo;

/// A device tensor with its logical shape: `[rows, cols]`, or `[H, t, T]` for attention
/// probabilities (stored as `[H, t·T]`).
#[derive(Clone)]
pub struct WebGpuValue {
    tensor: GpuTensor,
    dims: Vec<usize>,
}

impl From<GpuTensor> for WebGpuValue {
    fn from(tensor: GpuTensor) -> Self {
        let (rows, cols) = tensor.shape();
        WebGpuValue { tensor, dims: vec![rows, cols] }
    }
}

pub struct WebGpuBackend {
    gpu: GpuDevice,
    /// A row of ones for `silu` and `gelu_tanh` (the fused gate kernels times 1), kept between
    /// calls.
    ones: std::cell::RefCell<Option<GpuTensor>>,
}

impl WebGpuBackend {
    pub fn new(gpu: GpuDevice) -> Self {
        WebGpuBackend { gpu, ones: Default::default() }
    }

    pub fn device(&self) -> &GpuDevice {
        &self.gpu
    }

    fn ones(&self, width: usize) -> BackendResult<GpuTensor> {
        let cached = self.ones.borrow().clone().filter(|ones| ones.shape().1 == width);
        Ok(match cached {
            Some(ones) => ones,
            None => {
                let ones = self.gpu.upload(1, width, &vec![1.0; width])?;
                *self.ones.borrow_mut() = Some(ones.clone());
                ones
            }
        })
    }
}

impl From<GpuError> for BackendError {
    fn from(e: GpuError) -> Self {
        BackendError(e.to_string())
    }
}

fn value(result: Result<GpuTensor, GpuError>) -> BackendResult<WebGpuValue> {
    Ok(result?.into())
}

/// The value of a GPU read: natively by blocking on the device; in a browser by suspending the
/// wasm task until the map settles.
fn wait<T>(read: impl std::future::Future<Output = Result<T, GpuError>>) -> BackendResult<T> {
    #[cfg(not(target_arch = "wasm32"))]
    let result = pollster::block_on(read);
    #[cfg(target_arch = "wasm32")]
    let result = crate::jspi::wait_for(read).map_err(BackendError)?;
    Ok(result?)
}

impl Backend for WebGpuBackend {
    type Tensor = WebGpuValue;
    type Matrix = GpuMatrix;

    fn matrix(&self, info: &TensorInfo, bytes: Vec<u8>) -> BackendResult<GpuMatrix> {
        let (cols, rows) = match info.shape.as_slice() {
            [cols, rows] => (*cols as usize, *rows as usize),
            [cols] => (*cols as usize, 1),
            other => return Err(BackendError(format!("tensor {} has shape {other:?}, not a matrix", info.name))),
        };
        self.gpu
            .matrix(info.ggml_type, &bytes, rows, cols)
            .map_err(|e| BackendError(format!("tensor {}: {e}", info.name)))
    }

    fn vector(&self, values: &[f32]) -> BackendResult<WebGpuValue> {
        self.upload(1, values.len(), values)
    }

    fn upload(&self, rows: usize, cols: usize, values: &[f32]) -> BackendResult<WebGpuValue> {
        value(self.gpu.upload(rows, cols, values))
    }

    fn download(&self, x: &WebGpuValue) -> BackendResult<(Vec<usize>, Vec<f32>)> {
        Ok((x.dims.clone(), wait(self.gpu.read(&x.tensor))?))
    }

    fn download_all(&self, xs: &[&WebGpuValue]) -> BackendResult<Vec<(Vec<usize>, Vec<f32>)>> {
        let tensors: Vec<&GpuTensor> = xs.iter().map(|x| &x.tensor).collect();
        let values = wait(self.gpu.read_all(&tensors))?;
        Ok(xs.iter().map(|x| x.dims.clone()).zip(values).collect())
    }

    fn embed(&self, table: &GpuMatrix, ids: &[u32]) -> BackendResult<WebGpuValue> {
        value(self.gpu.embed(table, ids))
    }

    fn linear(&self, x: &WebGpuValue, w: &GpuMatrix) -> BackendResult<WebGpuValue> {
        value(self.gpu.linear(&x.tensor, w))
    }

    fn add(&self, a: &WebGpuValue, b: &WebGpuValue) -> BackendResult<WebGpuValue> {
        value(self.gpu.add(&a.tensor, &b.tensor))
    }

    fn mul(&self, a: &WebGpuValue, b: &WebGpuValue) -> BackendResult<WebGpuValue> {
        value(self.gpu.mul(&a.tensor, &b.tensor))
    }

    fn silu(&self, x: &WebGpuValue) -> BackendResult<WebGpuValue> {
        // silu(x)·1: the fused kernel with a row of ones (multiplying by 1 is exact).
        value(self.gpu.silu_mul(&x.tensor, &self.ones(x.tensor.shape().1)?))
    }

    fn gelu_tanh(&self, x: &WebGpuValue) -> BackendResult<WebGpuValue> {
        value(self.gpu.gelu_mul(&x.tensor, &self.ones(x.tensor.shape().1)?))
    }

    fn silu_mul(&self, gate: &WebGpuValue, up: &WebGpuValue) -> BackendResult<WebGpuValue> {
        value(self.gpu.silu_mul(&gate.tensor, &up.tensor))
    }

    fn gelu_mul(&self, gate: &WebGpuValue, up: &WebGpuValue) -> BackendResult<WebGpuValue> {
        value(self.gpu.gelu_mul(&gate.tensor, &up.tensor))
    }

    fn rms_norm(&self, x: &WebGpuValue, weight: &WebGpuValue, eps: f64) -> BackendResult<WebGpuValue> {
        value(self.gpu.rms_norm(&x.tensor, &weight.tensor, eps as f32))
    }

    fn rms(&self, x: &WebGpuValue, eps: f64) -> BackendResult<WebGpuValue> {
        value(self.gpu.rms(&x.tensor, eps as f32))
    }

    fn rope(&self, x: &WebGpuValue, heads: usize, rope: &Rope) -> BackendResult<WebGpuValue> {
        value(self.gpu.rope(&x.tensor, heads, rope))
    }

    fn attention(
        &self,
        q: &WebGpuValue,
        k: &WebGpuValue,
        v: &WebGpuValue,
        heads: Heads,
        probabilities: bool,
    ) -> BackendResult<(WebGpuValue, Option<WebGpuValue>)> {
        let (z, probabilities) = self.gpu.attention(&q.tensor, &k.tensor, &v.tensor, heads, probabilities)?;
        let dims = vec![heads.heads, q.tensor.shape().0, k.tensor.shape().0];
        Ok((z.into(), probabilities.map(|tensor| WebGpuValue { tensor, dims })))
    }

    fn empty_rows(&self, rows: usize, cols: usize) -> BackendResult<WebGpuValue> {
        Ok(wait(self.gpu.empty_rows(rows, cols))?.into())
    }

    fn write_rows(&self, store: &WebGpuValue, at: usize, rows: &WebGpuValue) -> BackendResult<()> {
        Ok(self.gpu.write_rows(&store.tensor, at, &rows.tensor)?)
    }

    fn leading_rows(&self, x: &WebGpuValue, n: usize) -> BackendResult<WebGpuValue> {
        value(self.gpu.leading_rows(&x.tensor, n))
    }

    fn select_rows(&self, x: &WebGpuValue, rows: &[usize]) -> BackendResult<WebGpuValue> {
        value(self.gpu.select_rows(&x.tensor, rows))
    }

    fn query_rows(&self, probabilities: &WebGpuValue, rows: &[usize]) -> BackendResult<WebGpuValue> {
        let [heads, t, total] = probabilities.dims[..] else {
            return Err(BackendError(format!(
                "query rows of a {:?} tensor, not [H, t, T] probabilities",
                probabilities.dims
            )));
        };
        let tensor = self.gpu.query_rows(&probabilities.tensor, t, rows)?;
        Ok(WebGpuValue { tensor, dims: vec![heads, rows.len(), total] })
    }

    fn scale_columns(&self, x: &WebGpuValue, start: usize, len: usize, factor: f32) -> BackendResult<WebGpuValue> {
        let width = x.tensor.shape().1;
        let scale: Vec<f32> =
            (0..width).map(|c| if (start..start + len).contains(&c) { factor } else { 1.0 }).collect();
        let scale = self.gpu.upload(1, width, &scale)?;
        value(self.gpu.mul(&x.tensor, &scale))
    }

    fn set_row(&self, x: &WebGpuValue, row: usize, values: &[f32]) -> BackendResult<WebGpuValue> {
        value(self.gpu.set_row(&x.tensor, row, values))
    }

    fn emulated_on_cpu(&self) -> bool {
        self.gpu.is_software()
    }

    fn dequantize(&self, w: &GpuMatrix) -> BackendResult<WebGpuValue> {
        value(self.gpu.dequantize(w))
    }

    fn dequantized(&self, w: &GpuMatrix) -> BackendResult<GpuMatrix> {
        Ok(self.gpu.dequantized(w)?)
    }

    fn columns(&self, w: &GpuMatrix, cols: &[usize]) -> BackendResult<WebGpuValue> {
        value(self.gpu.columns(w, cols))
    }

    fn linear_transposed(&self, x: &WebGpuValue, w: &GpuMatrix) -> BackendResult<WebGpuValue> {
        value(self.gpu.linear_transposed(&x.tensor, w))
    }

    fn top_k(&self, x: &WebGpuValue, k: usize, pick: &[u32]) -> BackendResult<TopK> {
        wait(self.gpu.top_k(&x.tensor, k, pick))
    }

    fn as_read_by(&self, x: &[f32], _w: &GpuMatrix) -> BackendResult<Vec<f32>> {
        // The WGSL matmul reads its f32 input as it is.
        Ok(x.to_vec())
    }

    fn shifted_log_probs(
        &self,
        bases: &[&[f32]],
        shifts: &WebGpuValue,
        pairs: &[usize],
        target: usize,
    ) -> BackendResult<Vec<f64>> {
        let values = wait(self.gpu.shifted_log_probs(bases, &shifts.tensor, pairs, target))?;
        Ok(values.into_iter().map(f64::from).collect())
    }

    fn device_counts(&self) -> Option<DeviceCounts> {
        Some(self.gpu.counts())
    }
}
