//! A model file's summary: its card and tensor table, shared by the CLI and the browser.

use serde::Serialize;

use crate::gguf::{Gguf, ModelCard, Result, TensorInfo};

#[derive(Clone, Debug, Serialize)]
pub struct ModelSummary {
    pub card: ModelCard,
    pub tensors: Vec<TensorInfo>,
}

impl ModelSummary {
    pub fn from_gguf(gguf: &Gguf) -> Result<Self> {
        Ok(ModelSummary { card: ModelCard::from_gguf(gguf)?, tensors: gguf.tensors.clone() })
    }
}
