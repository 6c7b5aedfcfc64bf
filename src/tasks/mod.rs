//! The claim and misinformation tasks (FMDLlama, RAEmoLLM, ConspEmoLLM, MetaAligner): plain
//! consumers of the engine and the interpretability core.

pub mod metrics;
/// The seeds' prompt templates, as data (templates.json).
pub mod templates;
