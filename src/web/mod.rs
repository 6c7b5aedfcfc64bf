//! The JavaScript API, compiled only for `wasm32`. It converts; the work happens in the core.
//!
//! Every export returns a `Result`, so failures reach JavaScript as exceptions whose `name` says
//! which part failed (`GgufError`, `GpuError`, `InputError`) and whose `message` says why.

mod claims;
mod engine;
mod exam;
mod patching;
mod probe;
mod tabular;
mod task;
mod threads;
mod vision;

#[cfg(feature = "webgpu")]
use std::rc::Rc;

use serde::Serialize;
use wasm_bindgen::prelude::*;

#[cfg(feature = "webgpu")]
use crate::backend::webgpu::{check::check_kernels, GpuDevice, WebGpuBackend};
use crate::gguf::Gguf;
use crate::inspect::ModelSummary;
pub use engine::Engine;
pub use task::Task;
pub use vision::VisionEngine;

/// The `name` of every error the JavaScript API throws: which part failed. wasm-bindgen writes
/// this list into glassbox.d.ts as a union type, which pkg/src/errors.ts checks its own list
/// against, so the two cannot drift apart.
#[wasm_bindgen]
#[derive(Clone, Copy)]
pub enum ErrorName {
    GgufError = "GgufError",
    GpuError = "GpuError",
    ImageError = "ImageError",
    InputError = "InputError",
    InterpError = "InterpError",
    ModelError = "ModelError",
    TaskError = "TaskError",
    TokenizerError = "TokenizerError",
    VisionError = "VisionError",
}

impl ErrorName {
    const ALL: [ErrorName; 9] = [
        ErrorName::GgufError,
        ErrorName::GpuError,
        ErrorName::ImageError,
        ErrorName::InputError,
        ErrorName::InterpError,
        ErrorName::ModelError,
        ErrorName::TaskError,
        ErrorName::TokenizerError,
        ErrorName::VisionError,
    ];
}

/// Every `name` the engine's errors carry.
#[wasm_bindgen(js_name = errorNames)]
pub fn error_names() -> Vec<ErrorName> {
    ErrorName::ALL.to_vec()
}

fn js_error(name: ErrorName, error: impl std::fmt::Display) -> JsValue {
    let e = js_sys::Error::new(&error.to_string());
    e.set_name(name.to_str());
    e.into()
}

/// JS numbers are exact integers only up to 2^53.
fn file_length(value: f64) -> Result<u64, JsValue> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    if (0.0..=MAX_SAFE).contains(&value) && value.fract() == 0.0 {
        Ok(value as u64)
    } else {
        Err(js_error(ErrorName::InputError, format!("file length {value} is not a whole number of bytes")))
    }
}

/// Reads a GGUF header and returns `{ card, tensors }`.
///
/// `header` is the start of the file (all of it, or enough to hold the header) and `fileLength`
/// its full size, so tensor bounds are checked against the real file.
#[wasm_bindgen(js_name = inspectGguf)]
pub fn inspect_gguf(
    header: &[u8],
    #[wasm_bindgen(js_name = fileLength)] file_length_bytes: f64,
) -> Result<JsValue, JsValue> {
    let gguf = Gguf::parse(header, file_length(file_length_bytes)?).map_err(|e| js_error(ErrorName::GgufError, e))?;
    to_js(&ModelSummary::from_gguf(&gguf).map_err(|e| js_error(ErrorName::GgufError, e))?)
}

/// Runs the CPU kernels of this wasm build (simd128 and the portable path) against a fixture of
/// GGUF blocks and their `gguf`-package values (tests/fixtures/kernel-blocks.gguf; see
/// `backend::kernels::check`): `[{ format, isa, tokens, dequantised_exact, worst_error_ratio }]`.
#[wasm_bindgen(js_name = checkCpuKernels)]
pub fn check_cpu_kernels(fixture: &[u8]) -> Result<JsValue, JsValue> {
    let checks = crate::backend::kernels::check::check_kernels(fixture, &crate::backend::kernels::ThreadPool::new(1))
        .map_err(|e| js_error(ErrorName::InputError, e))?;
    to_js(&checks)
}

fn to_js(value: &impl Serialize) -> Result<JsValue, JsValue> {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| js_error(ErrorName::InputError, e))
}

/// An options object, or the defaults when JavaScript passed nothing.
fn options<T: serde::de::DeserializeOwned + Default>(value: JsValue) -> Result<T, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(T::default());
    }
    serde_wasm_bindgen::from_value(value).map_err(|e| js_error(ErrorName::InputError, e))
}

/// A WebGPU device opened through wgpu.
#[cfg(feature = "webgpu")]
#[wasm_bindgen]
pub struct WebGpu {
    device: Rc<GpuDevice>,
}

#[cfg(feature = "webgpu")]
#[wasm_bindgen]
impl WebGpu {
    /// Opens the browser's default adapter. Rejects with a `GpuError` where WebGPU is missing.
    pub async fn open() -> Result<WebGpu, JsValue> {
        let device = GpuDevice::new().await.map_err(|e| js_error(ErrorName::GpuError, e))?;
        Ok(WebGpu { device: Rc::new(device) })
    }

    #[wasm_bindgen(getter)]
    pub fn description(&self) -> String {
        self.device.description()
    }

    /// A task that runs every WGSL kernel against the CPU on this browser's adapter (see
    /// `backend::webgpu::check`) and resolves to `[{ kernel, case, max_error, bound }]`.
    #[wasm_bindgen(js_name = checkKernels)]
    pub fn check_kernels() -> Task {
        Task::new(|| {
            let gpu = crate::jspi::wait_for(GpuDevice::new())
                .map_err(|e| js_error(ErrorName::GpuError, e))?
                .map_err(|e| js_error(ErrorName::GpuError, e))?;
            let checks = check_kernels(&WebGpuBackend::new(gpu)).map_err(|e| js_error(ErrorName::GpuError, e))?;
            to_js(&checks)
        })
    }

    /// `x · Wᵀ` for `x: [t, cols]` (a `Float32Array`) and `W: [rows, cols]` given as GGUF block
    /// bytes of type `ggmlType` ("F32", "F16", "Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q5_K",
    /// "Q6_K"); resolves to a `Float32Array` `[t, rows]`.
    pub fn matmul(&self, ggml_type: &str, weights: Vec<u8>, rows: usize, cols: usize, x: Vec<f32>) -> js_sys::Promise {
        let device = Rc::clone(&self.device);
        let ggml_type = ggml_type.to_string();
        wasm_bindgen_futures::future_to_promise(async move {
            let kind = crate::gguf::GgmlType::from_name(&ggml_type)
                .ok_or_else(|| js_error(ErrorName::InputError, format!("{ggml_type:?} is not a GGUF tensor type")))?;
            let out =
                device.matmul(kind, &weights, rows, cols, &x).await.map_err(|e| js_error(ErrorName::GpuError, e))?;
            Ok(js_sys::Float32Array::from(out.as_slice()).into())
        })
    }

    /// `a·x + y` on the GPU; resolves to a `Float32Array`.
    pub fn saxpy(&self, a: f32, x: Vec<f32>, y: Vec<f32>) -> js_sys::Promise {
        let device = Rc::clone(&self.device);
        wasm_bindgen_futures::future_to_promise(async move {
            let out = device.saxpy(a, &x, &y).await.map_err(|e| js_error(ErrorName::GpuError, e))?;
            Ok(js_sys::Float32Array::from(out.as_slice()).into())
        })
    }
}
