//! The integration tests, one module per file, in one binary: `cargo test --features webgpu,lab
//! --test integration interp::` runs one file's.

mod common;

mod architectures;
mod cli;
mod engine;
mod gguf_reader;
mod gguf_writer;
mod gradients;
mod hooks_numpy;
mod interp;
mod kernels;
mod parity_llamacpp;
mod tabular;
mod tasks;
mod tokenizer;
mod vision;
mod webgpu_model;
