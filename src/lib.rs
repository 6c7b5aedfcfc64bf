//! glassbox: look inside a language model, on your own device.
//!
//! The crate reads GGUF models safely ([`gguf`]), runs them on a compute [`backend`], and, on
//! `wasm32`, exposes the whole thing to JavaScript through [`web`]. See ARCHITECTURE.md.

pub mod backend;
#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod generate;
pub mod gguf;
pub mod hooks;
pub mod inspect;
pub mod interp;
#[cfg(target_arch = "wasm32")]
pub mod jspi;
pub mod model;
pub mod numeric;
pub mod tasks;
pub mod tokenizer;
pub mod vision;

#[cfg(target_arch = "wasm32")]
pub mod web;
