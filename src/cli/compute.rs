//! Which device the commands compute on: `--backend cpu|cuda|webgpu|auto`, and the model
//! loader that uses it. A command body runs once per backend type through `glassbox::with_model!`.

use std::cell::OnceCell;
use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use clap::ValueEnum;
use glassbox::backend::candle::CandleBackend;
use glassbox::backend::kernels::ThreadPool;
#[cfg(feature = "webgpu")]
use glassbox::backend::webgpu::{GpuDevice, WebGpuBackend};
use glassbox::backend::Backend;
use glassbox::gguf::GgufFile;
use glassbox::model::{AnyLoaded, Config, Loaded, Model};

use super::{text_err, ProgressSource, TokenizerArg};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// CUDA when this build has it and a GPU opens, then a hardware WebGPU adapter, else the
    /// CPU.
    Auto,
    Cpu,
    /// candle's CUDA device 0 (needs a build with `--features cuda`).
    Cuda,
    /// The WGSL kernels on the wgpu adapter (Vulkan, Metal, DX12; needs `--features webgpu`).
    Webgpu,
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
    float_weights: bool,
    /// The CPU kernels' threads, when not the process's shared pool (one per physical core).
    pool: Option<Arc<ThreadPool>>,
}

impl Loader {
    pub fn new(choice: BackendChoice) -> Self {
        Loader { choice, target: OnceCell::new(), float_weights: false, pool: None }
    }

    /// The CPU kernels' threads.
    #[cfg(feature = "lab")]
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

    /// The target, chosen on the first call. `auto` falls back to the CPU and says why on
    /// stderr when a GPU path was built in and did not open.
    fn target(&self) -> Result<&Target, String> {
        if let Some(target) = self.target.get() {
            return Ok(target);
        }
        let target = match self.choice {
            BackendChoice::Cpu => Target::Candle(Device::Cpu),
            BackendChoice::Cuda => Target::Candle(open_cuda()?),
            BackendChoice::Webgpu => open_webgpu(false)?,
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
                        if !reasons.is_empty() {
                            eprintln!("glassbox: using the CPU backend: {}", reasons.join("; "));
                        }
                        Target::Candle(Device::Cpu)
                    }
                },
            },
        };
        Ok(self.target.get_or_init(|| target))
    }

    /// Whether `with_float_weights` takes effect: candle's devices dequantise their weights,
    /// WebGPU's kernels read them as stored.
    pub fn dequantises(&self) -> Result<bool, String> {
        Ok(matches!(self.target()?, Target::Candle(_)))
    }

    /// `cpu`, `cuda:N` or `webgpu (adapter)`: the backend a command actually ran on.
    pub fn backend_name(&self) -> Result<String, String> {
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

    pub fn load(&self, path: &Path, tokenizer: &TokenizerArg) -> Result<AnyLoaded, String> {
        let file = GgufFile::open(path).map_err(text_err)?;
        let config = Config::from_gguf(&file.header).map_err(text_err)?;
        let tokenizer = tokenizer.load(&file)?;
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
                Loaded::new(load_weights(backend, config, &file)?, tokenizer).map_err(text_err)?.into()
            }
            #[cfg(feature = "webgpu")]
            Target::WebGpu(_) => {
                let gpu = pollster::block_on(GpuDevice::new()).map_err(text_err)?;
                Loaded::new(load_weights(WebGpuBackend::new(gpu), config, &file)?, tokenizer).map_err(text_err)?.into()
            }
        })
    }
}

/// A progress bar drawn as `template` says on stderr, when stderr is a terminal (indicatif draws
/// nothing otherwise).
pub fn progress_bar(template: &str, length: Option<u64>) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(length, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(indicatif::ProgressStyle::with_template(template).expect("the template is valid"));
    bar
}

/// A method's `go_on(done, total)` that moves `bar` and never stops the work.
pub fn advance(bar: &indicatif::ProgressBar) -> impl FnMut(usize, usize) -> bool + '_ {
    |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        true
    }
}

/// Reads every weight onto `backend`, with a progress bar on stderr.
fn load_weights<B: Backend>(backend: B, config: Config, file: &GgufFile) -> Result<Model<B>, String> {
    let weights: u64 = file.header.tensors.iter().map(|t| t.byte_len).sum();
    let bar = progress_bar("loading {bar:30} {bytes}/{total_bytes}", Some(weights));
    let source = ProgressSource { file, bar };
    let model = Model::load(backend, config, &source).map_err(text_err)?;
    source.bar.finish_and_clear();
    Ok(model)
}

/// The wgpu adapter's description if one opens; with `hardware_only`, a software one (lavapipe,
/// SwiftShader, WARP) counts as none, being slower than the CPU backend.
#[cfg(feature = "webgpu")]
fn open_webgpu(hardware_only: bool) -> Result<Target, String> {
    let gpu = pollster::block_on(GpuDevice::new()).map_err(text_err)?;
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
