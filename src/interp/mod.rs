//! Interpretability methods, each a plain consumer of the forward pass's hooks and interventions.
//!
//! Notation (layer l, last position unless stated): `x_l` the residual entering the layer,
//! `a_l` the attention output, `r_l = x_l + a_l`, `f_l` the FFN output,
//! `m_{l,i} = act(gate_i·x)·(up_i·x)` the coefficient of FFN neuron i, so
//! `f_l = Σ_i m_{l,i}·W_down[:, i]`; `α_{h,last,t}` attention probabilities, `v_{t,h}` value
//! vectors, `W_O[h]` head h's slice of o_proj.
//!
//! - [`lens`]: the unembedding `U` in its two scale variants, and the logit lens;
//! - [`attribution`]: log-probability increase (LPI) of layers, heads, positions and neurons,
//!   and the direct-logit decomposition;
//! - [`ablation`]: the head-ablation scan, neuron ablation, persistent edit masks and the
//!   before/after accuracy evaluator;
//! - [`cna`]: comparative neuron analysis;
//! - [`patching`]: activation patching (exact, and attribution patching to first order) of the
//!   residual stream, the sublayers' outputs or each head, layers × positions (or heads);
//! - [`input_attribution`]: gradient × input and integrated gradients per prompt token;
//! - [`probe`]: linear probes (logistic regression) on a recorded activation;
//! - [`rewards`]: SePO token-level rewards from two models;
//! - [`steering`]: contrastive activation addition;
//! - [`arithmetic`]: the arithmetic experiment that checks all of the above on a real model.

pub mod ablation;
pub mod attribution;
pub mod cna;
pub mod input_attribution;
pub mod lens;
pub mod patching;
pub mod probe;
pub mod rewards;
pub mod steering;

use serde::Serialize;
use thiserror::Error;

use crate::backend::BackendError;
use crate::model::ModelError;
use crate::tokenizer::TokenizerError;

#[derive(Debug, Error)]
pub enum InterpError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("invalid request: {0}")]
    BadRequest(String),
    #[error("stopped before the end, as asked")]
    Stopped,
}

impl From<BackendError> for InterpError {
    fn from(e: BackendError) -> Self {
        InterpError::Model(ModelError::Backend(e))
    }
}

pub type Result<T, E = InterpError> = std::result::Result<T, E>;

/// An attention head, written `L.H`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct HeadId {
    pub layer: usize,
    pub head: usize,
}

/// An FFN neuron, written `L.I`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct NeuronId {
    pub layer: usize,
    pub neuron: usize,
}

impl std::fmt::Display for HeadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.layer, self.head)
    }
}

impl std::fmt::Display for NeuronId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.layer, self.neuron)
    }
}

/// Parses `L.I` (a head or a neuron), checking both parts against their limits.
pub fn parse_pair(text: &str, layers: usize, per_layer: usize) -> Result<(usize, usize)> {
    let parsed = text.split_once('.').and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
    match parsed {
        Some((a, b)) if a < layers && b < per_layer => Ok((a, b)),
        Some(_) => Err(InterpError::BadRequest(format!("{text:?} is outside {layers} layers × {per_layer}"))),
        None => Err(InterpError::BadRequest(format!("{text:?} is not LAYER.INDEX"))),
    }
}

/// The token whose log-probability is explained.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Target {
    pub id: u32,
    pub token: String,
    /// `log softmax(logits)[id]` of the model's own output at the last position.
    pub logprob: f32,
}

/// `requested`, checked against the vocabulary, or the top-1 of `logits`.
pub(crate) fn choose_target(requested: Option<u32>, logits: &[f32]) -> Result<u32> {
    match requested {
        Some(id) if id as usize >= logits.len() => {
            Err(InterpError::BadRequest(format!("target id {id} is outside the {}-token vocabulary", logits.len())))
        }
        Some(id) => Ok(id),
        None => Ok(crate::numeric::argmax(logits)),
    }
}

/// Indices of `scores` from highest to lowest, ties by index.
pub(crate) fn rank_descending(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

/// The first `n` of `ranked`, then each of `always` not among them.
pub(crate) fn first_n_and(ranked: impl IntoIterator<Item = usize>, n: usize, always: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = ranked.into_iter().take(n).collect();
    let extra: Vec<usize> = always.iter().copied().filter(|i| !out.contains(i)).collect();
    out.extend(extra);
    out
}
