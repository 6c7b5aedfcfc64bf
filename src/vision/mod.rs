//! LLaVA's image side: image decoding and CLIP preprocessing (preprocess.rs), the CLIP tower and
//! projector (clip.rs), the image prompt and patch heatmaps (llava.rs), and the synthetic shapes
//! task (shapes.rs) the project's own LLaVA-architecture fixture is trained on (`lab`).
//! docs/llava-mmproj.md describes the mmproj GGUF layout clip.rs reads.

pub mod clip;
pub mod llava;
pub mod preprocess;
pub mod shapes;
