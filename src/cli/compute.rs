//! Which device the commands compute on (`--backend cpu|cuda|webgpu|auto`), and the model loader
//! that uses it: `glassbox::model::loader` with a progress bar on stderr. A command body runs once
//! per backend type through `glassbox::with_model!`.

use std::cell::OnceCell;
use std::path::Path;

use clap::ValueEnum;
use glassbox::gguf::GgufFile;
use glassbox::model::loader::{self, LoadError};
use glassbox::model::AnyLoaded;

use super::{text_err, TokenizerArg};

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

impl From<BackendChoice> for loader::BackendChoice {
    fn from(choice: BackendChoice) -> Self {
        match choice {
            BackendChoice::Auto => loader::BackendChoice::Auto,
            BackendChoice::Cpu => loader::BackendChoice::Cpu,
            BackendChoice::Cuda => loader::BackendChoice::Cuda,
            BackendChoice::Webgpu => loader::BackendChoice::Webgpu,
        }
    }
}

/// The library's loader, drawing a progress bar while it reads, and saying on stderr (once) when
/// `auto` fell back to the CPU.
pub struct Loader {
    inner: loader::Loader,
    /// Set once the fallback has been reported, so a command loading several models says it once.
    fallback_told: OnceCell<()>,
}

impl Loader {
    pub fn new(choice: BackendChoice) -> Self {
        Loader { inner: loader::Loader::new(choice.into()), fallback_told: OnceCell::new() }
    }

    /// The CPU kernels' threads.
    #[cfg(feature = "lab")]
    pub fn kernel_threads(&self) -> usize {
        self.inner.kernel_threads()
    }

    pub fn with_threads(self, threads: Option<usize>) -> Self {
        Loader { inner: self.inner.with_threads(threads), ..self }
    }

    pub fn with_float_weights(self, float_weights: bool) -> Self {
        Loader { inner: self.inner.with_float_weights(float_weights), ..self }
    }

    /// The backend and kernel threads the command line chose, for a run handed to another
    /// program (`classify --ray`).
    pub fn choices(&self) -> (&'static str, Option<usize>) {
        (self.inner.choice().name(), self.inner.threads())
    }

    pub fn dequantises(&self) -> Result<bool, String> {
        self.inner.dequantises().map_err(text_err)
    }

    pub fn backend_name(&self) -> Result<String, String> {
        self.inner.backend_name().map_err(text_err)
    }

    pub fn load(&self, path: &Path, tokenizer: &TokenizerArg) -> Result<AnyLoaded, String> {
        let file = GgufFile::open(path).map_err(text_err)?;
        let tokenizer = tokenizer.load(&file)?;
        let weights: u64 = file.header.tensors.iter().map(|t| t.byte_len).sum();
        let bar = progress_bar("loading {bar:30} {bytes}/{total_bytes}", Some(weights));
        let loaded = self.inner.load(&file, tokenizer, &|bytes| bar.inc(bytes));
        bar.finish_and_clear();
        if let Some(reason) = self.inner.fallback_reason().filter(|_| self.fallback_told.set(()).is_ok()) {
            eprintln!("glassbox: using the CPU backend: {reason}");
        }
        loaded.map_err(|e: LoadError| e.to_string())
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
