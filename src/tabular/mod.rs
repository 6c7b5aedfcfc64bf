//! HARMONIC (The-FinAI/HARMONIC): private tabular synthesis with a language model, and the
//! measures of how private, useful and faithful the synthetic table is. A plain consumer of
//! the engine: the table never leaves the machine it is read on.
//!
//! - table.rs: CSV read under caps, numeric and categorical columns;
//! - neighbours.rs: HARMONIC's neighbour groups (its encoding and kNN);
//! - synth.rs: the paper's prompt, sampling, parsing with rejection, and the SMOTE and
//!   resampling baselines;
//! - encode.rs: standardised and one-hot features;
//! - evaluate.rs: DCR, copies and fidelity;
//! - lle.rs: the language model's accuracy with synthetic rows as its examples;
//! - utility.rs: machine-learning efficiency (classifiers trained on a table, tested on real rows).

pub mod encode;
pub mod evaluate;
pub mod lle;
pub mod neighbours;
pub mod synth;
pub mod table;
pub mod utility;

use thiserror::Error;

use crate::generate::GenerateError;
use crate::tokenizer::TokenizerError;

#[derive(Debug, Error)]
pub enum TabularError {
    #[error("not a table: {0}")]
    BadCsv(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("{0}")]
    BadInput(String),
    #[error("the prompt is {tokens} tokens, which leaves no room for a row in the model's context of {context}")]
    TooLong { tokens: usize, context: usize },
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
}

pub type Result<T, E = TabularError> = std::result::Result<T, E>;
