//! glassbox: look inside a language model, on your own device.
//!
//! The crate reads GGUF models safely ([`gguf`]), runs them on a compute [`backend`], and, on
//! `wasm32`, exposes the whole thing to JavaScript through [`web`]. Research tooling (the
//! committed experiments, the LLaVA fixture's trainer, benchmark reports) lives in `lab`, behind
//! the `lab` feature. See ARCHITECTURE.md.

pub mod backend;
pub mod encoder;
pub mod generate;
pub mod gguf;
pub mod hooks;
pub mod inspect;
pub mod interp;
#[cfg(target_arch = "wasm32")]
pub mod jspi;
#[cfg(all(feature = "lab", not(target_arch = "wasm32")))]
pub mod lab;
pub mod model;
pub mod numeric;
pub mod safetensors;
pub mod tabular;
pub mod tasks;
pub mod tokenizer;
pub mod vision;

#[cfg(target_arch = "wasm32")]
pub mod web;
