//! The arithmetic experiment: single-digit additions `a+b=` after a few-shot prefix, which
//! checks the attribution methods against each other on a real model.
//!
//! 1. Accuracy: greedy next token = the answer; the prompts answered right form the analysis set.
//! 2. Head agreement: the top-10 heads by mean LPI and by the mean drop of the ablation scan,
//!    over the first `scan_prompts` analysed prompts (the scan costs a forward pass per head).
//! 3. Neuron faithfulness: the mean relative drop `(p − p_ablated) / p` of p(answer) when the
//!    top-100 FFN neurons by LPI of each prompt are zeroed, against 100 random neurons (the
//!    mean of `random_draws` draws).
//! 4. CNA of the most important head (top-1 by mean LPI), averaged over the analysis set.

use serde::Serialize;

use crate::backend::Backend;
use crate::hooks::{HookRequest, Positions};
use crate::interp::ablation::{head_ablation_scan, prompt_set, target_prob, Labelled, Mask};
use crate::interp::attribution::{attribute, AttributionOptions};
use crate::interp::cna::{cna_scores, CnaOptions};
use crate::interp::lens::Unembedding;
use crate::interp::{rank_descending, HeadId, InterpError, NeuronId, Result};
use crate::numeric::{argmax, Rng};
use crate::tokenizer::Tokenizer;

#[derive(Clone, Debug)]
pub struct ExperimentOptions {
    /// Analyse at most this many of the correctly answered prompts (all when `None`).
    pub max_analysed: Option<usize>,
    /// The head-ablation scan (one forward pass per head) runs on the first this many analysed
    /// prompts, and the LPI head ranking it is compared with uses the same prompts.
    pub scan_prompts: usize,
    pub exact_neurons: usize,
    pub random_draws: usize,
    pub seed: u64,
}

impl Default for ExperimentOptions {
    fn default() -> Self {
        ExperimentOptions { max_analysed: None, scan_prompts: 5, exact_neurons: 1000, random_draws: 10, seed: 0 }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct HeadAgreement {
    /// The prompts both rankings average over.
    pub n_scanned: usize,
    pub lpi_top10: Vec<String>,
    pub scan_top10: Vec<String>,
    pub overlap: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct NeuronAblation {
    pub top100_drop: f32,
    pub random100_drop: f32,
}

/// JSON (the keys are a contract): `{"accuracy", "n_prompts", "n_correct", "n_analysed",
/// "heads": {"n_scanned", "lpi_top10", "scan_top10", "overlap"}, "neuron_ablation": {"top100_drop",
/// "random100_drop"}, "cna_head", "cna_top10"}`; heads `"L.H"`, neurons `"L.I"`.
#[derive(Clone, Debug, Serialize)]
pub struct ArithmeticReport {
    pub accuracy: f32,
    pub n_prompts: usize,
    pub n_correct: usize,
    pub n_analysed: usize,
    pub heads: HeadAgreement,
    pub neuron_ablation: NeuronAblation,
    pub cna_head: String,
    pub cna_top10: Vec<String>,
}

fn top10<T: ToString>(scores: &[f32], name: impl Fn(usize) -> T) -> Vec<String> {
    rank_descending(scores).into_iter().take(10).map(|i| name(i).to_string()).collect()
}

pub fn run_arithmetic<B: Backend>(
    unembedding: &Unembedding<B>,
    tokenizer: &Tokenizer,
    options: &ExperimentOptions,
) -> Result<ArithmeticReport> {
    let model = unembedding.model();
    let c = model.config().clone();
    let items = prompt_set(tokenizer)?;
    let mut correct = Vec::new();
    for item in &items {
        let mut cache = model.new_cache();
        let run = model.forward(&item.ids, &mut cache, &HookRequest::new(), &[], &Positions::Last)?;
        if argmax(&run.logits.data) == item.answer {
            correct.push(item.clone());
        }
    }
    let analysed: Vec<Labelled> = correct.iter().take(options.max_analysed.unwrap_or(usize::MAX)).cloned().collect();
    if analysed.is_empty() {
        return Err(InterpError::BadRequest("the model answers no prompt correctly: nothing to analyse".into()));
    }
    let n = analysed.len() as f32;
    let head = |i: usize| HeadId { layer: i / c.heads, head: i % c.heads };
    let neuron = |i: usize| NeuronId { layer: i / c.ffn_width, neuron: i % c.ffn_width };

    let mut head_lpi = vec![0.0f32; c.layers * c.heads];
    let mut head_drop = vec![0.0f32; c.layers * c.heads];
    let (mut top_drop, mut random_drop) = (0.0f32, 0.0f32);
    let attribution_options = AttributionOptions {
        exact_neurons: options.exact_neurons,
        top: 100,
        position_heads: 0,
        value_neurons: 0,
        ..Default::default()
    };
    let mut rng = Rng(options.seed);
    let draws = options.random_draws.max(1);
    let all_neurons = c.layers * c.ffn_width;
    let relative_drop = |p: f32, ablated: f32| (p - ablated) / p;
    let scanned = options.scan_prompts.min(analysed.len());
    let mut scan_lpi = vec![0.0f32; c.layers * c.heads];
    for (k, item) in analysed.iter().enumerate() {
        let per_prompt = AttributionOptions { target: Some(item.answer), ..attribution_options.clone() };
        let attribution = attribute(unembedding, tokenizer, &item.ids, &per_prompt)?;
        for h in &attribution.heads {
            head_lpi[h.layer * c.heads + h.head] += h.score / n;
        }
        if k < scanned {
            for h in &attribution.heads {
                scan_lpi[h.layer * c.heads + h.head] += h.score / scanned as f32;
            }
            for d in head_ablation_scan(model, &item.ids, item.answer)?.heads {
                head_drop[d.layer * c.heads + d.head] += d.drop / scanned as f32;
            }
        }
        let p = attribution.target.logprob.exp();
        let zeroed = |neurons: Vec<NeuronId>| {
            Mask { neurons: neurons.into_iter().collect(), ..Default::default() }.interventions()
        };
        let top = zeroed(attribution.neurons.iter().take(100).map(|s| s.id()).collect());
        top_drop += relative_drop(p, target_prob(model, &item.ids, item.answer, &top)?) / n;
        for _ in 0..draws {
            let mut drawn = std::collections::BTreeSet::new();
            while drawn.len() < 100.min(all_neurons) {
                drawn.insert((rng.next_u64() % all_neurons as u64) as usize);
            }
            let random = zeroed(drawn.into_iter().map(neuron).collect());
            let ablated = target_prob(model, &item.ids, item.answer, &random)?;
            random_drop += relative_drop(p, ablated) / (n * draws as f32);
        }
    }

    let (lpi_top10, scan_top10) =
        if scanned > 0 { (top10(&scan_lpi, head), top10(&head_drop, head)) } else { (vec![], vec![]) };
    let overlap = lpi_top10.iter().filter(|h| scan_top10.contains(h)).count();

    let important = head(rank_descending(&head_lpi)[0]);
    let mut cna = vec![0.0f32; all_neurons];
    let cna_options = CnaOptions { exact_neurons: options.exact_neurons, ..Default::default() };
    for item in &analysed {
        let scores = cna_scores(
            unembedding,
            tokenizer,
            &item.ids,
            &[important],
            &CnaOptions { target: Some(item.answer), ..cna_options.clone() },
        )?;
        cna.iter_mut().zip(scores.scores).for_each(|(total, s)| *total += s / n);
    }

    Ok(ArithmeticReport {
        accuracy: correct.len() as f32 / items.len() as f32,
        n_prompts: items.len(),
        n_correct: correct.len(),
        n_analysed: analysed.len(),
        heads: HeadAgreement { n_scanned: scanned, lpi_top10, scan_top10, overlap },
        neuron_ablation: NeuronAblation { top100_drop: top_drop, random100_drop: random_drop },
        cna_head: important.to_string(),
        cna_top10: top10(&cna, neuron),
    })
}
