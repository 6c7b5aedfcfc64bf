//! Shared by the integration tests: where the default models live.

use std::path::PathBuf;

use glassbox::backend::candle::CandleBackend;
use glassbox::model::{Loaded, Model};

/// `models/` at the repository root, or `$GLASSBOX_MODELS`. `make setup` fills it.
pub fn model_path(file: &str) -> PathBuf {
    let dir = std::env::var_os("GLASSBOX_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"));
    let path = dir.join(file);
    assert!(path.exists(), "{} is missing: run `make setup` to download the default models", path.display());
    path
}

pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The second real model (Gemma terms of use), fetched by `make setup` or `make gemma3`.
pub const GEMMA3: &str = "gemma3/gemma-3-270m-q4_k_m.gguf";

pub fn reference(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// SmolLM2 on the CPU backend, with its tokenizer.
pub fn load_smollm2() -> Loaded<CandleBackend> {
    Model::open(model_path(SMOLLM2), CandleBackend::cpu()).unwrap()
}
