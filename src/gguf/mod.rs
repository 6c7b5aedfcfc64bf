//! A safe reader for GGUF, the llama.cpp model format (versions 2 and 3).

mod card;
mod error;
#[cfg(not(target_arch = "wasm32"))]
mod file;
mod ggml_type;
mod parse;
mod value;
pub mod write;

pub use card::ModelCard;
pub use error::{GgufError, Result};
#[cfg(not(target_arch = "wasm32"))]
pub use file::GgufFile;
pub use ggml_type::GgmlType;
pub use parse::{Gguf, TensorInfo, DEFAULT_ALIGNMENT, MAGIC, MAX_ARRAY_NESTING, MAX_DIMENSIONS};
pub use value::{Array, Value, ValueType};
