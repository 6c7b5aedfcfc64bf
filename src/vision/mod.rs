//! LLaVA's image side (issue 5, in progress): image decoding and CLIP preprocessing, and the
//! synthetic shapes task the project's own LLaVA-architecture fixture is trained on.
//! docs/llava-mmproj.md describes the mmproj GGUF layout the tower will load.

pub mod clip;
#[cfg(not(target_arch = "wasm32"))]
pub mod experiment;
pub mod llava;
pub mod preprocess;
pub mod shapes;
#[cfg(not(target_arch = "wasm32"))]
pub mod train;
