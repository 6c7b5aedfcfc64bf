//! `glassbox compare-backends`: the backend chosen with `--backend` against the CPU, on a list
//! of prompts. Each prompt must give the same top-1 token, except at a near-tie, and the same
//! top-10 heads by LPI, in the same order except where neighbours are near-tied. The residual
//! stream after every layer is compared too, to show where two backends part.
//!
//! `glassbox compare-weights`: one backend with the file's quantised weights against the same
//! backend with them dequantised to f32, reported rather than judged (see [`compare_weights`]).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use glassbox::hooks::{HookPoint, HookRequest, Positions};
use glassbox::interp::attribution::{ffn_neuron_lpi, rank_heads, AttributionOptions, HeadScore};
use glassbox::interp::lens::Unembedding;
use glassbox::numeric::argmax;
use glassbox::with_model;
use serde::Serialize;

use super::compute::{BackendChoice, Loader};
use glassbox::backend::Backend;

use glassbox::model::Loaded;

use super::{print_json, text_err, TokenizerArg, Written};

/// Heads compared by rank.
const TOP_HEADS: usize = 10;

#[derive(Args)]
pub struct CompareArgs {
    model: PathBuf,
    /// A text file with one prompt per line.
    #[arg(long)]
    prompts: PathBuf,
    /// Gap, in nats, under which two tokens' logits or two heads' LPIs count as tied.
    #[arg(long, default_value_t = 0.05)]
    tie: f32,
    /// Dequantise every weight to f32 on both backends: quantised kernels round their input
    /// to 8 bits, and where that rounding flips differs between devices; without it, the two
    /// should agree to float precision.
    #[arg(long)]
    pub float_weights: bool,
    /// Only the CPU reference dequantises its weights: the arithmetic of a backend whose
    /// kernels read their input unrounded (CUDA's).
    #[arg(long, conflicts_with = "float_weights")]
    reference_float_weights: bool,
}

#[derive(Serialize)]
struct PromptComparison {
    prompt: String,
    top1_reference: u32,
    top1_tested: u32,
    /// The reference's logit gap between the two top-1 tokens (0 when they agree).
    top1_gap: f32,
    max_logit_difference: f32,
    /// Ranks (0-based) where the tested backend's head differs from the reference's.
    head_rank_differences: Vec<usize>,
    /// The largest reference-score gap between the two heads at a differing rank.
    head_rank_gap: f32,
    max_head_lpi_difference: f32,
    /// `‖tested − reference‖ / ‖reference‖` of `resid_post` at the last position, per layer.
    resid_post_relative_difference: Vec<f32>,
    passed: bool,
}

#[derive(Serialize)]
struct Comparison {
    reference: String,
    tested: String,
    float_weights: bool,
    reference_float_weights: bool,
    tie: f32,
    prompts: Vec<PromptComparison>,
    top1_equal: usize,
    head_rankings_equal: usize,
    max_logit_difference: f32,
    max_head_lpi_difference: f32,
    /// The largest relative `resid_post` difference of each layer over all prompts.
    resid_post_relative_difference: Vec<f32>,
    passed: bool,
}

/// The last position's logits and `resid_post` of every layer.
fn last_logits<B: Backend>(loaded: &Loaded<B>, ids: &[u32]) -> Result<(Vec<f32>, Vec<Vec<f32>>), String> {
    let layers = loaded.model.config().layers;
    let hooks = (0..layers).fold(HookRequest::new(), |h, l| h.with(HookPoint::ResidPost(l), Positions::Last));
    let mut cache = loaded.model.new_cache();
    let forward = loaded.model.forward(ids, &mut cache, &hooks, &[], &Positions::Last).map_err(text_err)?;
    let resid = (0..layers)
        .map(|l| {
            forward.recording.get(HookPoint::ResidPost(l)).map(|a| a.data.clone()).ok_or("resid_post was not recorded")
        })
        .collect::<Result<_, _>>()?;
    Ok((forward.logits.data, resid))
}

fn relative_difference(reference: &[f32], tested: &[f32]) -> f32 {
    let norm = |v: &mut dyn Iterator<Item = f32>| v.map(|x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    (norm(&mut reference.iter().zip(tested).map(|(a, b)| a - b))
        / norm(&mut reference.iter().copied()).max(f64::MIN_POSITIVE)) as f32
}

/// One value per layer, as the text reports print them.
fn by_layer(values: &[f32]) -> String {
    values.iter().map(|d| format!("{d:.1e}")).collect::<Vec<_>>().join(" ")
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn compare_heads(reference: &[HeadScore], tested: &[HeadScore]) -> (Vec<usize>, f32, f32) {
    let score_of =
        |heads: &[HeadScore], layer, head| heads.iter().find(|h| (h.layer, h.head) == (layer, head)).map(|h| h.score);
    let mut differing = Vec::new();
    let mut gap = 0.0f32;
    for (rank, (r, t)) in reference.iter().zip(tested).take(TOP_HEADS).enumerate() {
        if (r.layer, r.head) != (t.layer, t.head) {
            differing.push(rank);
            gap = gap.max(r.score - score_of(reference, t.layer, t.head).unwrap_or(f32::NEG_INFINITY));
        }
    }
    let max_difference = reference
        .iter()
        .map(|r| (r.score - score_of(tested, r.layer, r.head).unwrap_or(f32::INFINITY)).abs())
        .fold(0.0, f32::max);
    (differing, gap, max_difference)
}

/// The non-blank lines of a prompt file, trimmed.
fn read_prompts(path: &std::path::Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
}

pub fn compare_backends(out: &mut impl Write, tested: &Loader, args: &CompareArgs, json: bool) -> Written {
    let prompts = read_prompts(&args.prompts)?;
    let reference_loader =
        Loader::new(BackendChoice::Cpu).with_float_weights(args.float_weights || args.reference_float_weights);
    let none = TokenizerArg { tokenizer: None };
    let reference = reference_loader.load(&args.model, &none)?;
    let candidate = tested.load(&args.model, &none)?;
    let (results, layers) = with_model!(reference, reference => with_model!(candidate, candidate => {
            let reference_lens = Unembedding::new(&reference.model).map_err(text_err)?;
            let candidate_lens = Unembedding::on_device(&candidate.model).map_err(text_err)?;

            let mut results = Vec::with_capacity(prompts.len());
            for prompt in &prompts {
                let ids = reference.tokenizer.encode(prompt, true, false).map_err(text_err)?;
                let (expected, expected_resid) = last_logits(&reference, &ids)?;
                let (got, got_resid) = last_logits(&candidate, &ids)?;
                let (top1_reference, top1_tested) = (argmax(&expected), argmax(&got));
                let top1_gap = expected[top1_reference as usize] - expected[top1_tested as usize];
                // Both rank heads for the reference's top-1, so their scores are comparable.
                let reference_heads = rank_heads(&reference_lens, &ids, Some(top1_reference)).map_err(text_err)?;
                let tested_heads = rank_heads(&candidate_lens, &ids, Some(top1_reference)).map_err(text_err)?;
                let (head_rank_differences, head_rank_gap, max_head_lpi_difference) = compare_heads(&reference_heads, &tested_heads);
                let passed = top1_gap <= args.tie && head_rank_gap <= args.tie;
                results.push(PromptComparison {
                    prompt: prompt.clone(),
                    top1_reference,
                    top1_tested,
                    top1_gap,
                    max_logit_difference: max_difference(&expected, &got),
                    head_rank_differences,
                    head_rank_gap,
                    max_head_lpi_difference,
                    resid_post_relative_difference: expected_resid.iter().zip(&got_resid).map(|(a, b)| relative_difference(a, b)).collect(),
                    passed,
                });
            }
        (results, reference.model.config().layers)
    }));
    let comparison = Comparison {
        reference: reference_loader.backend_name()?,
        tested: tested.backend_name()?,
        float_weights: args.float_weights,
        reference_float_weights: args.reference_float_weights,
        tie: args.tie,
        resid_post_relative_difference: (0..layers)
            .map(|l| results.iter().map(|r| r.resid_post_relative_difference[l]).fold(0.0, f32::max))
            .collect(),
        top1_equal: results.iter().filter(|r| r.top1_reference == r.top1_tested).count(),
        head_rankings_equal: results.iter().filter(|r| r.head_rank_differences.is_empty()).count(),
        max_logit_difference: results.iter().map(|r| r.max_logit_difference).fold(0.0, f32::max),
        max_head_lpi_difference: results.iter().map(|r| r.max_head_lpi_difference).fold(0.0, f32::max),
        passed: results.iter().all(|r| r.passed),
        prompts: results,
    };
    let written = if json {
        writeln!(out, "{}", serde_json::to_string(&comparison).map_err(text_err)?)
    } else {
        writeln!(
            out,
            "{} against {}{}: {}/{} top-1 equal, {}/{} top-{TOP_HEADS} head rankings equal, max |Δlogit| {:.4}, max |ΔLPI| {:.4}, \
             resid_post relative difference by layer {}: {}",
            comparison.tested,
            comparison.reference,
            match (comparison.float_weights, comparison.reference_float_weights) {
                (true, _) => " (f32 weights)",
                (_, true) => " (the reference with f32 weights)",
                _ => "",
            },
            comparison.top1_equal,
            comparison.prompts.len(),
            comparison.head_rankings_equal,
            comparison.prompts.len(),
            comparison.max_logit_difference,
            comparison.max_head_lpi_difference,
            by_layer(&comparison.resid_post_relative_difference),
            if comparison.passed { "passed" } else { "FAILED" }
        )
    };
    written.map_err(text_err)?;
    if !comparison.passed {
        return Err(format!("{} differs from the CPU beyond the tie tolerance {}", comparison.tested, args.tie));
    }
    Ok(Ok(()))
}

#[derive(Args)]
pub struct CompareWeightsArgs {
    model: PathBuf,
    /// A text file with one prompt per line.
    #[arg(long, required_unless_present = "prompt")]
    prompts: Option<PathBuf>,
    /// A prompt (repeatable; it may hold line breaks, which the file cannot).
    #[arg(long)]
    prompt: Vec<String>,
    /// Heads compared as a set: the top N of each run by LPI.
    #[arg(long, default_value_t = TOP_HEADS)]
    top_heads: usize,
    /// FFN neurons compared as a set: the top N of each run by LPI (each scored exactly).
    #[arg(long, default_value_t = 100)]
    top_neurons: usize,
}

#[derive(Serialize)]
struct WeightsComparison {
    prompt: String,
    /// The token both runs' heads and neurons are scored for: the f32 run's top-1.
    target: u32,
    top1_quantised: u32,
    top1_float: u32,
    /// log p(target) with each kind of weights.
    target_logprob_quantised: f32,
    target_logprob_float: f32,
    max_logit_difference: f32,
    /// `‖quantised − f32‖ / ‖f32‖` of `resid_post` at the last position, per layer.
    resid_post_relative_difference: Vec<f32>,
    /// How many of the f32 run's top heads (neurons) are among the quantised run's.
    heads_shared: usize,
    neurons_shared: usize,
    /// `LAYER.HEAD`, highest LPI first.
    top_heads_float: Vec<String>,
    top_heads_quantised: Vec<String>,
    /// `LAYER.NEURON`, highest LPI first.
    top_neurons_float: Vec<String>,
    top_neurons_quantised: Vec<String>,
}

#[derive(Serialize)]
struct WeightsReport {
    backend: String,
    top_heads: usize,
    top_neurons: usize,
    prompts: Vec<WeightsComparison>,
    top1_equal: usize,
    mean_heads_shared: f64,
    mean_neurons_shared: f64,
    /// The mean over prompts of each layer's relative `resid_post` difference.
    resid_post_relative_difference: Vec<f32>,
}

/// `LAYER.NEURON` of the `n` FFN neurons of highest LPI for `target`, highest first (each scored
/// exactly, as attribution scores at least its default number of neurons).
fn top_neurons<B: Backend>(lens: &Unembedding<B>, ids: &[u32], target: u32, n: usize) -> Result<Vec<String>, String> {
    let scores =
        ffn_neuron_lpi(lens, ids, target, n.max(AttributionOptions::default().exact_neurons)).map_err(text_err)?;
    let ffn = lens.model().config().ffn_width;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    Ok(order.into_iter().take(n).map(|i| format!("{}.{}", i / ffn, i % ffn)).collect())
}

/// How many of `a` are in `b`.
fn shared(a: &[String], b: &[String]) -> usize {
    a.iter().filter(|x| b.contains(x)).count()
}

fn log_prob(logits: &[f32], token: u32) -> f32 {
    glassbox::numeric::log_softmax(logits)[token as usize]
}

/// `glassbox compare-weights`: what quantisation does to the circuit. Each prompt runs with the
/// file's quantised weights (as every other command computes) and with the same weights
/// dequantised to f32 on the same device; the report says where the residual streams part and
/// how much of the attribution (top heads and FFN neurons by LPI, for the f32 run's top-1
/// token) the two share.
/// `loader` and `float_loader` differ only in `with_float_weights`.
pub fn compare_weights(
    out: &mut impl Write,
    loader: &Loader,
    float_loader: &Loader,
    args: &CompareWeightsArgs,
    json: bool,
) -> Written {
    let mut prompts = args.prompt.clone();
    if let Some(path) = &args.prompts {
        prompts.extend(read_prompts(path)?);
    }
    if prompts.is_empty() {
        return Err("compare-weights: no prompts".into());
    }
    if !loader.dequantises()? {
        return Err(format!(
            "compare-weights needs a backend that can dequantise its weights (cpu or cuda); {} reads them as stored",
            loader.backend_name()?
        ));
    }
    let none = TokenizerArg { tokenizer: None };
    let quantised = loader.load(&args.model, &none)?;
    let float = float_loader.load(&args.model, &none)?;
    let results = with_model!(quantised, quantised => with_model!(float, float => {
        let quantised_lens = Unembedding::new(&quantised.model).map_err(text_err)?;
        let float_lens = Unembedding::new(&float.model).map_err(text_err)?;
        let mut results = Vec::with_capacity(prompts.len());
        for prompt in &prompts {
            let ids = float.tokenizer.encode(prompt, true, false).map_err(text_err)?;
            let (float_logits, float_resid) = last_logits(&float, &ids)?;
            let (quantised_logits, quantised_resid) = last_logits(&quantised, &ids)?;
            let target = argmax(&float_logits);
            let heads_float = rank_heads(&float_lens, &ids, Some(target)).map_err(text_err)?;
            let heads_quantised = rank_heads(&quantised_lens, &ids, Some(target)).map_err(text_err)?;
            let names = |heads: &[HeadScore]| heads.iter().take(args.top_heads).map(|h| format!("{}.{}", h.layer, h.head)).collect::<Vec<_>>();
            let (top_heads_float, top_heads_quantised) = (names(&heads_float), names(&heads_quantised));
            let top_neurons_float = top_neurons(&float_lens, &ids, target, args.top_neurons)?;
            let top_neurons_quantised = top_neurons(&quantised_lens, &ids, target, args.top_neurons)?;
            results.push(WeightsComparison {
                prompt: prompt.clone(),
                target,
                top1_quantised: argmax(&quantised_logits),
                top1_float: target,
                target_logprob_quantised: log_prob(&quantised_logits, target),
                target_logprob_float: log_prob(&float_logits, target),
                max_logit_difference: max_difference(&float_logits, &quantised_logits),
                resid_post_relative_difference: float_resid.iter().zip(&quantised_resid).map(|(f, q)| relative_difference(f, q)).collect(),
                heads_shared: shared(&top_heads_float, &top_heads_quantised),
                neurons_shared: shared(&top_neurons_float, &top_neurons_quantised),
                top_heads_float,
                top_heads_quantised,
                top_neurons_float,
                top_neurons_quantised,
            });
        }
        results
    }));
    let n = results.len() as f64;
    let layers = results[0].resid_post_relative_difference.len();
    let report = WeightsReport {
        backend: loader.backend_name()?,
        top_heads: args.top_heads,
        top_neurons: args.top_neurons,
        top1_equal: results.iter().filter(|r| r.top1_quantised == r.top1_float).count(),
        mean_heads_shared: results.iter().map(|r| r.heads_shared as f64).sum::<f64>() / n,
        mean_neurons_shared: results.iter().map(|r| r.neurons_shared as f64).sum::<f64>() / n,
        resid_post_relative_difference: (0..layers)
            .map(|l| (results.iter().map(|r| f64::from(r.resid_post_relative_difference[l])).sum::<f64>() / n) as f32)
            .collect(),
        prompts: results,
    };
    if json {
        return print_json(out, &report);
    }
    Ok(writeln!(
        out,
        "quantised against f32 weights on {}, {} prompts: top-1 equal {}/{}; top-{} heads shared {:.1} on average; \
             top-{} FFN neurons shared {:.1}; resid_post relative difference by layer (mean): {}",
        report.backend,
        report.prompts.len(),
        report.top1_equal,
        report.prompts.len(),
        report.top_heads,
        report.mean_heads_shared,
        report.top_neurons,
        report.mean_neurons_shared,
        by_layer(&report.resid_post_relative_difference),
    ))
}
