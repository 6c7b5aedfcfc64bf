//! Which device the commands compute on: `--backend cpu|cuda|auto`, and the model loader that
//! uses it.

use std::cell::OnceCell;
use std::path::Path;

use candle_core::Device;
use clap::ValueEnum;
use glassbox::backend::candle::CandleBackend;
use glassbox::gguf::GgufFile;
use glassbox::model::{Config, Model};

use super::{text_err, Loaded, ProgressSource, TokenizerArg};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// CUDA when this build has it and a GPU opens, else the CPU.
    Auto,
    Cpu,
    /// candle's CUDA device 0 (needs a build with `--features cuda`).
    Cuda,
}

/// Opens the chosen device once, on first use, and loads models onto it.
pub struct Loader {
    choice: BackendChoice,
    device: OnceCell<Device>,
    float_weights: bool,
}

impl Loader {
    pub fn new(choice: BackendChoice) -> Self {
        Loader { choice, device: OnceCell::new(), float_weights: false }
    }

    /// Loads every weight matrix dequantised to f32 (see `CandleBackend::with_float_weights`).
    pub fn with_float_weights(mut self, float_weights: bool) -> Self {
        self.float_weights = float_weights;
        self
    }

    /// The device, opened on the first call. `auto` falls back to the CPU and says why on
    /// stderr when a GPU was there to try and failed.
    pub fn device(&self) -> Result<&Device, String> {
        if let Some(device) = self.device.get() {
            return Ok(device);
        }
        let device = match self.choice {
            BackendChoice::Cpu => Device::Cpu,
            BackendChoice::Cuda => open_cuda()?,
            BackendChoice::Auto => match open_cuda() {
                Ok(device) => device,
                Err(reason) => {
                    if cfg!(feature = "cuda") {
                        eprintln!("glassbox: using the CPU backend: {reason}");
                    }
                    Device::Cpu
                }
            },
        };
        Ok(self.device.get_or_init(|| device))
    }

    /// `cpu` or `cuda:N`: the backend a command actually ran on.
    pub fn backend_name(&self) -> Result<String, String> {
        Ok(match self.device()?.location() {
            candle_core::DeviceLocation::Cpu => "cpu".to_string(),
            candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
            other => format!("{other:?}"),
        })
    }

    pub fn load(&self, path: &Path, tokenizer: &TokenizerArg) -> Result<Loaded, String> {
        let device = self.device()?.clone();
        let file = GgufFile::open(path).map_err(text_err)?;
        let config = Config::from_gguf(&file.header).map_err(text_err)?;
        let tokenizer = tokenizer.load(&file)?;
        let weights: u64 = file.header.tensors.iter().map(|t| t.byte_len).sum();
        let bar = indicatif::ProgressBar::with_draw_target(Some(weights), indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("loading {bar:30} {bytes}/{total_bytes}")
                .expect("the template is valid"),
        );
        let source = ProgressSource { file: &file, bar };
        let backend = if self.float_weights { CandleBackend::with_float_weights(device) } else { CandleBackend::new(device) };
        let model = Model::load(backend, config, &source).map_err(text_err)?;
        source.bar.finish_and_clear();
        Ok(Loaded { model, tokenizer })
    }
}

#[cfg(feature = "cuda")]
fn open_cuda() -> Result<Device, String> {
    Device::new_cuda(0).map_err(|e| format!("CUDA device 0 did not open: {e}"))
}

#[cfg(not(feature = "cuda"))]
fn open_cuda() -> Result<Device, String> {
    Err("this glassbox was built without CUDA (build with --features cuda)".to_string())
}
