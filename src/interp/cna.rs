//! Comparative neuron analysis ("Interpreting Arithmetic Mechanism in LLMs through Comparative
//! Neuron Analysis"):
//!
//! `CNA(l, i) = Imp_orig(l, i) − Imp_ablated(l, i)`, where `Imp` is the FFN value-neuron LPI
//! `LPI(r_l, m_{l,i}·W_down[:, i])` computed in the original model and in the model with the
//! chosen heads ablated, both with the original model's fixed scale `s` and target `w`; sorted
//! in descending order. Neurons are pre-ranked by the first-order CNA and the best scored
//! exactly, as in [`super::attribution`].

use serde::Serialize;

use super::attribution::{exact_at, flat_neurons, FfnNeurons, Pass};
use super::lens::{Lpi, Unembedding};
use super::{first_n_and, rank_descending, HeadId, NeuronId, Result, Target};
use crate::backend::Backend;
use crate::hooks::Intervention;
use crate::tokenizer::Tokenizer;

#[derive(Clone, Debug)]
pub struct CnaOptions {
    pub target: Option<u32>,
    /// How many neurons, ranked by first-order CNA, are scored exactly.
    pub exact_neurons: usize,
    pub always_exact: Vec<NeuronId>,
    /// How many neurons to report.
    pub top: usize,
}

impl Default for CnaOptions {
    fn default() -> Self {
        CnaOptions { target: None, exact_neurons: 1000, always_exact: Vec::new(), top: 100 }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CnaNeuron {
    pub layer: usize,
    pub neuron: usize,
    /// `CNA(l, i)`.
    pub score: f32,
    /// `Imp_orig(l, i)`.
    pub original: f32,
    /// `Imp_ablated(l, i)`.
    pub ablated: f32,
    /// False where the scores are first-order approximations.
    pub exact: bool,
}

/// JSON: `{"target": {"id", "token", "logprob"}, "ablated_heads": ["L.H"], "neurons": [{"layer",
/// "neuron", "score", "original", "ablated", "exact"}]}`, highest CNA first.
#[derive(Clone, Debug, Serialize)]
pub struct Cna {
    pub target: Target,
    pub ablated_heads: Vec<String>,
    pub neurons: Vec<CnaNeuron>,
}

/// CNA of every neuron, `[layers · f]` (exact where `is_exact`), and the target.
pub(crate) struct CnaScores {
    pub target: Target,
    pub scores: Vec<f32>,
    pub original: Vec<f32>,
    pub ablated: Vec<f32>,
    pub is_exact: Vec<bool>,
}

pub(crate) fn cna_scores<B: Backend>(
    unembedding: &Unembedding<B>,
    tokenizer: &Tokenizer,
    ids: &[u32],
    heads: &[HeadId],
    options: &CnaOptions,
) -> Result<CnaScores> {
    let model = unembedding.model();
    let c = model.config();
    if let Some(bad) = heads.iter().find(|h| h.layer >= c.layers || h.head >= c.heads) {
        return Err(super::InterpError::BadRequest(format!(
            "head {bad} does not exist ({} layers × {} heads)",
            c.layers, c.heads
        )));
    }
    let always = flat_neurons(model, &options.always_exact)?;
    let original_pass = Pass::run(model, ids, &[])?;
    let target = original_pass.target(options.target, tokenizer)?;
    let ablations: Vec<Intervention> =
        heads.iter().map(|h| Intervention::ScaleHead { layer: h.layer, head: h.head, factor: 0.0 }).collect();
    let ablated_pass = Pass::run(model, ids, &ablations)?;
    let lpi = Lpi { unembedding, scale: original_pass.scale(), target: target.id };
    let original_neurons = FfnNeurons::new(&lpi, &original_pass)?;
    let ablated_neurons = FfnNeurons::new(&lpi, &ablated_pass)?;
    let mut original = original_neurons.approximate(&lpi)?;
    let mut ablated = ablated_neurons.approximate(&lpi)?;
    let approximate: Vec<f32> = original.iter().zip(&ablated).map(|(o, a)| o - a).collect();

    let chosen = first_n_and(rank_descending(&approximate), options.exact_neurons, &always);
    original_neurons.rescore(&lpi, &mut original, &chosen)?;
    ablated_neurons.rescore(&lpi, &mut ablated, &chosen)?;
    let is_exact = exact_at(approximate.len(), &chosen);
    let scores = original.iter().zip(&ablated).map(|(o, a)| o - a).collect();
    Ok(CnaScores { target, scores, original, ablated, is_exact })
}

pub fn comparative_neuron_analysis<B: Backend>(
    unembedding: &Unembedding<B>,
    tokenizer: &Tokenizer,
    ids: &[u32],
    heads: &[HeadId],
    options: &CnaOptions,
) -> Result<Cna> {
    let f = unembedding.model().config().ffn_width;
    let all = cna_scores(unembedding, tokenizer, ids, heads, options)?;
    let always = flat_neurons(unembedding.model(), &options.always_exact)?;
    let reported = super::attribution::report_neurons(&all.scores, &all.is_exact, f, options.top, &always);
    let neurons = reported
        .into_iter()
        .map(|n| {
            let i = n.layer * f + n.neuron;
            CnaNeuron {
                layer: n.layer,
                neuron: n.neuron,
                score: n.score,
                original: all.original[i],
                ablated: all.ablated[i],
                exact: n.exact,
            }
        })
        .collect();
    Ok(Cna { target: all.target, ablated_heads: heads.iter().map(|h| h.to_string()).collect(), neurons })
}
