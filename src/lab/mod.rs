//! Research tooling, natively and with the `lab` feature only: what checks and measures the
//! library rather than what a user of it calls.
//!
//! - `arithmetic`: the committed experiment that checks the attribution methods against each
//!   other on SmolLM2 (docs/interp.md);
//! - `vqa_heatmap`: the LLaVA patch heatmaps scored against the shapes scenes' ground truth;
//! - `train_fixture`: trains the project's LLaVA-architecture test fixture;
//! - `bench`: the report `glassbox bench` and the candle peer print.

pub mod arithmetic;
pub mod bench;
pub mod steering;
pub mod train_fixture;
pub mod vqa_heatmap;
