//! Ablation: the head-ablation scan, ablating sets of neurons, and persistent edit masks with
//! an accuracy evaluator.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{choose_target, parse_pair, rank_descending, HeadId, InterpError, NeuronId, Result};
use crate::backend::Backend;
use crate::hooks::{HookRequest, Intervention, Positions};
use crate::model::{Config, Model};
use crate::numeric::{argmax, log_softmax};
use crate::tokenizer::Tokenizer;

/// `p(w)` after the prompt, with `interventions` applied.
pub fn target_prob<B: Backend>(
    model: &Model<B>,
    ids: &[u32],
    target: u32,
    interventions: &[Intervention],
) -> Result<f32> {
    let mut cache = model.new_cache();
    let run = model.forward(ids, &mut cache, &HookRequest::new(), interventions, &Positions::Last)?;
    let target = choose_target(Some(target), &run.logits.data)?;
    Ok(log_softmax(&run.logits.data)[target as usize].exp())
}

/// The model's greedy next token after the prompt.
pub fn top_token<B: Backend>(model: &Model<B>, ids: &[u32]) -> Result<u32> {
    let mut cache = model.new_cache();
    let run = model.forward(ids, &mut cache, &HookRequest::new(), &[], &Positions::Last)?;
    Ok(argmax(&run.logits.data))
}

#[derive(Clone, Debug, Serialize)]
pub struct HeadDrop {
    pub layer: usize,
    pub head: usize,
    /// `p(w)` with the head's columns of o_proj zeroed.
    pub prob: f32,
    /// `p_orig(w) − prob`.
    pub drop: f32,
}

/// JSON: `{"target_id", "prob", "heads": [{"layer", "head", "prob", "drop"}]}`, largest drop
/// first.
#[derive(Clone, Debug, Serialize)]
pub struct HeadScan {
    pub target_id: u32,
    pub prob: f32,
    pub heads: Vec<HeadDrop>,
}

/// The seed's slow baseline: for each head, zero its columns of o_proj, run the whole forward
/// pass, and record the new `p(w)`; heads ranked by the largest drop. One forward pass per head.
pub fn head_ablation_scan<B: Backend>(model: &Model<B>, ids: &[u32], target: u32) -> Result<HeadScan> {
    let c = model.config();
    let prob = target_prob(model, ids, target, &[])?;
    let mut drops = Vec::with_capacity(c.layers * c.heads);
    for layer in 0..c.layers {
        for head in 0..c.heads {
            let ablated = target_prob(model, ids, target, &[Intervention::ScaleHead { layer, head, factor: 0.0 }])?;
            drops.push(HeadDrop { layer, head, prob: ablated, drop: prob - ablated });
        }
    }
    let order = rank_descending(&drops.iter().map(|d| d.drop).collect::<Vec<_>>());
    Ok(HeadScan { target_id: target, prob, heads: order.into_iter().map(|i| drops[i].clone()).collect() })
}

/// Heads and neurons switched off together, kept across generation and scoring: its
/// [`Mask::interventions`] go into [`crate::generate::GenerateRequest::interventions`] or
/// [`crate::generate::score_continuations`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Mask {
    pub heads: BTreeSet<HeadId>,
    pub neurons: BTreeSet<NeuronId>,
}

impl Mask {
    /// From `L.H` head and `L.I` neuron names, each checked against the model's sizes.
    pub fn parse(heads: &[String], neurons: &[String], config: &Config) -> Result<Mask> {
        let heads = heads
            .iter()
            .map(|h| parse_pair(h, config.layers, config.heads).map(|(layer, head)| HeadId { layer, head }))
            .collect::<Result<_>>()?;
        let neurons = neurons
            .iter()
            .map(|n| parse_pair(n, config.layers, config.ffn_width).map(|(layer, neuron)| NeuronId { layer, neuron }))
            .collect::<Result<_>>()?;
        Ok(Mask { heads, neurons })
    }

    pub fn interventions(&self) -> Vec<Intervention> {
        let heads = self.heads.iter().map(|h| Intervention::ScaleHead { layer: h.layer, head: h.head, factor: 0.0 });
        let neurons =
            self.neurons.iter().map(|n| Intervention::ScaleNeuron { layer: n.layer, neuron: n.neuron, factor: 0.0 });
        heads.chain(neurons).collect()
    }

    /// Prunes every FFN neuron of layers `from_layer..` except the `keep` best by `scores`
    /// (`[layers · f]`), as in "prune all but the top-k neurons of the deep layers".
    pub fn keep_top_neurons(
        layers: usize,
        ffn_width: usize,
        from_layer: usize,
        scores: &[f32],
        keep: usize,
    ) -> Result<Mask> {
        if scores.len() != layers * ffn_width || from_layer > layers {
            return Err(InterpError::BadRequest(format!(
                "{} scores for {layers} layers × {ffn_width} neurons, from layer {from_layer}",
                scores.len()
            )));
        }
        let deep = from_layer * ffn_width..layers * ffn_width;
        let kept: BTreeSet<usize> =
            rank_descending(&scores[deep.clone()]).into_iter().take(keep).map(|i| i + deep.start).collect();
        let neurons = deep
            .filter(|i| !kept.contains(i))
            .map(|i| NeuronId { layer: i / ffn_width, neuron: i % ffn_width })
            .collect();
        Ok(Mask { heads: BTreeSet::new(), neurons })
    }
}

/// A prompt whose next token should be `answer`.
#[derive(Clone, Debug)]
pub struct Labelled {
    pub ids: Vec<u32>,
    pub answer: u32,
}

/// JSON: `{"before": f, "after": f, "n": n, "masked_heads": n, "masked_neurons": n}`.
#[derive(Clone, Debug, Serialize)]
pub struct MaskEvaluation {
    /// Greedy next-token accuracy without the mask.
    pub before: f32,
    /// The same with the mask applied.
    pub after: f32,
    pub n: usize,
    pub masked_heads: usize,
    pub masked_neurons: usize,
}

fn accuracy<B: Backend>(model: &Model<B>, items: &[Labelled], interventions: &[Intervention]) -> Result<f32> {
    let mut correct = 0;
    for item in items {
        let mut cache = model.new_cache();
        let run = model.forward(&item.ids, &mut cache, &HookRequest::new(), interventions, &Positions::Last)?;
        correct += usize::from(argmax(&run.logits.data) == item.answer);
    }
    Ok(correct as f32 / items.len().max(1) as f32)
}

/// Accuracy on `items` before and after `mask`.
pub fn evaluate_mask<B: Backend>(model: &Model<B>, items: &[Labelled], mask: &Mask) -> Result<MaskEvaluation> {
    Ok(MaskEvaluation {
        before: accuracy(model, items, &[])?,
        after: accuracy(model, items, &mask.interventions())?,
        n: items.len(),
        masked_heads: mask.heads.len(),
        masked_neurons: mask.neurons.len(),
    })
}

/// The committed arithmetic prompt set (`a+b=` after a few-shot prefix), which `mask-eval`
/// scores and the arithmetic experiment analyses.
pub const PROMPTS_JSON: &str = include_str!("arithmetic_prompts.json");

#[derive(Deserialize)]
struct PromptSet {
    items: Vec<PromptItem>,
}

#[derive(Deserialize)]
struct PromptItem {
    prompt: String,
    answer: String,
}

/// The prompt set, tokenised; every answer must be one token.
pub fn prompt_set(tokenizer: &Tokenizer) -> Result<Vec<Labelled>> {
    let set: PromptSet = serde_json::from_str(PROMPTS_JSON).expect("the committed prompt set parses");
    set.items
        .iter()
        .map(|item| {
            let ids = tokenizer.encode(&item.prompt, true, false)?;
            match tokenizer.encode(&item.answer, false, false)?.as_slice() {
                [answer] => Ok(Labelled { ids, answer: *answer }),
                other => {
                    Err(InterpError::BadRequest(format!("answer {:?} is {} tokens, not one", item.answer, other.len())))
                }
            }
        })
        .collect()
}
