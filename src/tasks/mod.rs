//! The claim and misinformation tasks (FMDLlama, RAEmoLLM, ConspEmoLLM, MetaAligner) and
//! EMPEC's exam evaluation: plain consumers of the engine and the interpretability core.
//!
//! Here a *seed* is one of those four papers together with its released code: "the seed's
//! prompt" or "the seed's regex" is what that code writes or reads, character for character (it
//! has nothing to do with a random seed).

pub mod affect;
pub mod classify;
pub mod embed;
pub mod evaluate;
/// EMPEC's exam evaluation.
pub mod exam;
pub mod index;
pub mod metrics;
pub mod nrc;
pub mod pipeline;
pub mod rows;
/// The seeds' prompt templates, as data (templates.json).
pub mod templates;

use thiserror::Error;

use crate::generate::GenerateError;
use crate::interp::InterpError;
use crate::model::ModelError;
use crate::tokenizer::TokenizerError;

#[derive(Debug, Error)]
pub enum TaskError {
    #[error(transparent)]
    Template(#[from] templates::TemplateError),
    #[error(transparent)]
    Index(#[from] index::IndexError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error(transparent)]
    Interp(#[from] InterpError),
    #[error("the sentence embedder failed: {0}")]
    Embedder(String),
    #[error("the prompt is {tokens} tokens; the model's context is {context}")]
    TooLong { tokens: usize, context: usize },
    #[error("the chat template changed the instruction's text, so its fields cannot be located; use the seed wrapper")]
    ChatTemplateAltersText,
    #[error("task {0:?} has no explanation format (an answer and an explanation prefix)")]
    NoExplanationFormat(String),
    #[error("{0}")]
    BadInput(String),
    #[error("stopped before the end, as asked")]
    Stopped,
}

pub type Result<T, E = TaskError> = std::result::Result<T, E>;
