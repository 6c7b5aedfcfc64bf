//! Natively, which device models compute on (`cpu`, `cuda`, `webgpu` or `auto`) and the loader
//! that opens it once and reads GGUF files onto it: the CLI and the Python package share it.

use std::cell::OnceCell;
use std::sync::Arc;

use candle_core::Device;
use thiserror::Error;

use super::{AnyLoaded, Config, Loaded, Model, ModelError, WeightSource};
use crate::backend::candle::CandleBackend;
use crate::backend::kernels::ThreadPool;
#[cfg(feature = "webgpu")]
use crate::backend::webgpu::{GpuDevice, WebGpuBackend};
use crate::backend::Backend;
use crate::gguf::{GgufFile, TensorInfo};
use crate::tokenizer::Tokenizer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// CUDA when this build has it and a GPU opens, then a hardware WebGPU adapter, else the CPU.
    Auto,
    Cpu,
    /// candle's CUDA device 0 (needs a build with `--features cuda`).
    Cuda,
    /// The WGSL kernels on the wgpu adapter (Vulkan, Metal, DX12; needs `--features webgpu`).
    Webgpu,
}

impl BackendChoice {
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Cpu => "cpu",
            BackendChoice::Cuda => "cuda",
            BackendChoice::Webgpu => "webgpu",
        }
    }

    /// `auto`, `cpu`, `cuda` or `webgpu`.
    pub fn from_name(name: &str) -> Option<BackendChoice> {
        match name {
            "auto" => Some(BackendChoice::Auto),
            "cpu" => Some(BackendChoice::Cpu),
            "cuda" => Some(BackendChoice::Cuda),
            "webgpu" => Some(BackendChoice::Webgpu),
            _ => None,
        }
    }
}

#[derive(Debug, Error)]
pub enum LoadError {
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The chosen device did not open.
    #[error("{0}")]
    Device(String),
}

/// Where models go: a candle device (CPU or CUDA), or the wgpu adapter (one device per model).
enum Target {
    Candle(Device),
    #[cfg(feature = "webgpu")]
    WebGpu(String),
}

/// Opens the chosen device once, on first use, and loads models onto it.
pub struct Loader {
    choice: BackendChoice,
    target: OnceCell<Target>,
    /// Why `auto` took the CPU, when a GPU path was built in and did not open.
    fallback_reason: OnceCell<Option<String>>,
    float_weights: bool,
    /// The CPU kernels' threads, when not the process's shared pool (one per physical core).
    pool: Option<Arc<ThreadPool>>,
}

impl Loader {
    pub fn new(choice: BackendChoice) -> Self {
        Loader { choice, target: OnceCell::new(), fallback_reason: OnceCell::new(), float_weights: false, pool: None }
    }

    pub fn choice(&self) -> BackendChoice {
        self.choice
    }

    /// The threads given to `with_threads`, if any.
    pub fn threads(&self) -> Option<usize> {
        self.pool.as_ref().map(|pool| pool.threads())
    }

    /// The CPU kernels' threads.
    pub fn kernel_threads(&self) -> usize {
        self.pool.as_ref().map_or_else(|| ThreadPool::shared().threads(), |pool| pool.threads())
    }

    /// Every model this loads runs its CPU kernels on one pool of `threads` threads.
    pub fn with_threads(mut self, threads: Option<usize>) -> Self {
        self.pool = threads.map(|n| Arc::new(ThreadPool::new(n)));
        self
    }

    /// Loads every weight matrix dequantised to f32 (see `CandleBackend::with_float_weights`;
    /// the WebGPU kernels read their input unrounded either way).
    pub fn with_float_weights(mut self, float_weights: bool) -> Self {
        self.float_weights = float_weights;
        self
    }

    /// The target, chosen on the first call.
    fn target(&self) -> Result<&Target, LoadError> {
        if let Some(target) = self.target.get() {
            return Ok(target);
        }
        let mut fallback = None;
        let target = match self.choice {
            BackendChoice::Cpu => Target::Candle(Device::Cpu),
            BackendChoice::Cuda => Target::Candle(open_cuda().map_err(LoadError::Device)?),
            BackendChoice::Webgpu => open_webgpu(false).map_err(LoadError::Device)?,
            BackendChoice::Auto => match open_cuda() {
                Ok(device) => Target::Candle(device),
                Err(cuda) => match open_webgpu(true) {
                    Ok(target) => target,
                    Err(webgpu) => {
                        let reasons: Vec<&str> =
                            [(cfg!(feature = "cuda"), cuda.as_str()), (cfg!(feature = "webgpu"), webgpu.as_str())]
                                .into_iter()
                                .filter_map(|(built, reason)| built.then_some(reason))
                                .collect();
                        fallback = (!reasons.is_empty()).then(|| reasons.join("; "));
                        Target::Candle(Device::Cpu)
                    }
                },
            },
        };
        let _ = self.fallback_reason.set(fallback);
        Ok(self.target.get_or_init(|| target))
    }

    /// Why `auto` computes on the CPU though a GPU path was built in (after the first load).
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.get().and_then(Option::as_deref)
    }

    /// Whether `with_float_weights` takes effect: candle's devices dequantise their weights,
    /// WebGPU's kernels read them as stored.
    pub fn dequantises(&self) -> Result<bool, LoadError> {
        Ok(matches!(self.target()?, Target::Candle(_)))
    }

    /// `cpu`, `cuda:N` or `webgpu (adapter)`: the backend a command actually ran on.
    pub fn backend_name(&self) -> Result<String, LoadError> {
        Ok(match self.target()? {
            Target::Candle(device) => match device.location() {
                candle_core::DeviceLocation::Cpu => "cpu".to_string(),
                candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
                other => format!("{other:?}"),
            },
            #[cfg(feature = "webgpu")]
            Target::WebGpu(adapter) => format!("webgpu ({adapter})"),
        })
    }

    /// The model in `file` with `tokenizer`; `on_read(bytes)` is told of each tensor read.
    pub fn load(&self, file: &GgufFile, tokenizer: Tokenizer, on_read: &dyn Fn(u64)) -> Result<AnyLoaded, LoadError> {
        let config = Config::from_gguf(&file.header)?;
        let source = Reporting { file, on_read };
        Ok(match self.target()? {
            Target::Candle(device) => {
                let device = device.clone();
                let mut backend = if self.float_weights {
                    CandleBackend::with_float_weights(device)
                } else {
                    CandleBackend::new(device)
                };
                if let Some(pool) = &self.pool {
                    backend = backend.with_pool(pool.clone());
                }
                loaded(backend, config, &source, tokenizer)?.into()
            }
            #[cfg(feature = "webgpu")]
            Target::WebGpu(_) => {
                let gpu = pollster::block_on(GpuDevice::new()).map_err(|e| LoadError::Device(e.to_string()))?;
                loaded(WebGpuBackend::new(gpu), config, &source, tokenizer)?.into()
            }
        })
    }
}

fn loaded<B: Backend>(
    backend: B,
    config: Config,
    source: &impl WeightSource,
    tokenizer: Tokenizer,
) -> Result<Loaded<B>, ModelError> {
    Loaded::new(Model::load(backend, config, source)?, tokenizer)
}

/// The file's weights, each read told to `on_read`.
struct Reporting<'a> {
    file: &'a GgufFile,
    on_read: &'a dyn Fn(u64),
}

impl WeightSource for Reporting<'_> {
    fn tensors(&self) -> &[TensorInfo] {
        self.file.tensors()
    }

    fn read(&self, tensor: &TensorInfo) -> super::Result<Vec<u8>> {
        let bytes = self.file.read(tensor)?;
        (self.on_read)(bytes.len() as u64);
        Ok(bytes)
    }
}

/// The wgpu adapter's description if one opens; with `hardware_only`, a software one (lavapipe,
/// SwiftShader, WARP) counts as none, being slower than the CPU backend.
#[cfg(feature = "webgpu")]
fn open_webgpu(hardware_only: bool) -> Result<Target, String> {
    let gpu = pollster::block_on(GpuDevice::new()).map_err(|e| e.to_string())?;
    if hardware_only && gpu.is_software() {
        return Err(format!("the only WebGPU adapter is a software one, {}", gpu.description()));
    }
    Ok(Target::WebGpu(gpu.description()))
}

#[cfg(not(feature = "webgpu"))]
fn open_webgpu(_hardware_only: bool) -> Result<Target, String> {
    Err("this glassbox was built without WebGPU (build with --features webgpu)".to_string())
}

#[cfg(feature = "cuda")]
fn open_cuda() -> Result<Device, String> {
    Device::new_cuda(0).map_err(|e| format!("CUDA device 0 did not open: {e}"))
}

#[cfg(not(feature = "cuda"))]
fn open_cuda() -> Result<Device, String> {
    Err("this glassbox was built without CUDA (build with --features cuda)".to_string())
}
