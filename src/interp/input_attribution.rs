//! How much each prompt token's embedding counts for the target's log-probability `f`, by the
//! gradient methods Inseq offers: gradient × input, `Σ_d e_{p,d} · ∂f/∂e_{p,d}`, and integrated
//! gradients (Sundararajan, Taly and Yan), `Σ_d (e − b)_{p,d} · ∫₀¹ ∂f/∂e_{p,d}(b + α(e − b)) dα`
//! from a baseline `b`. Integrated gradients' scores add up to `f(e) − f(b)` (completeness); what
//! the quadrature's sum misses is reported as the gap.
//!
//! Integrated gradients' path is cut into segments, each integrated by a four-point
//! Gauss–Legendre rule. The forward pass gives `f` at a segment's ends, so each segment's
//! completeness error is known, not estimated: the worst segment is halved until the errors add
//! up to a ten-thousandth of `f(e) − f(b)` or the backward passes allowed run out. Along a real
//! model's path `f` has sharp turns (SmolLM2's log-probability moves by tens within a hundredth
//! of the path), where a fixed rule of even 512 points misses a tenth of the difference.
//!
//! The baseline is the all-zero embedding (Inseq's and Captum's default) or a token's embedding
//! at every position. From zero, the RMSNorms make `f(αe)` change at every scale of α: layer 0's
//! norm scales `αe` down linearly below about `√(ε / mean(e²))` and removes its scale above, and
//! each later norm repeats that at smaller α still; with no biases (SmolLM2, Llama), every
//! activation is zero at α = 0 and the logits uniform, a value `f(αe)` leaves for good within
//! scales a float cannot reach. The path from zero therefore starts with a segment per decade
//! down to `ε/1000` and reports the gap it cannot close; a token baseline keeps the path away
//! from zero and is the one to use on such models.
//!
//! The embedding is the residual entering layer 0 (`hook_embed`, after Gemma's √d scale); the
//! path moves it there by patching that residual at every position.

use serde::Serialize;

use super::{InterpError, Result};
use crate::backend::Backend;
use crate::hooks::{HookPoint, HookRequest, Intervention, Positions};
use crate::model::{Model, Objective};

/// The input attributions offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputMethod {
    GradientTimesInput,
    /// With at most this many backward passes (fewer once complete; at least one rule per
    /// starting segment), from the all-zero embedding or, with `baseline`, that token's
    /// embedding at every position.
    IntegratedGradients {
        steps: usize,
        baseline: Option<u32>,
    },
}

/// The most backward passes integrated gradients may be given.
pub const MAX_STEPS: usize = 1024;

/// One prompt's input attribution for a target token.
#[derive(Clone, Debug, Serialize)]
pub struct InputAttribution {
    /// `gradient_x_input` or `integrated_gradients`.
    pub method: &'static str,
    pub target: u32,
    /// `log p(target)` with the prompt as it is.
    pub value: f32,
    /// One score per prompt position, in `log p` units.
    pub scores: Vec<f32>,
    /// Integrated gradients: `log p(target)` at the path's start (every embedding zero, or the
    /// baseline token's), the backward passes taken, and the completeness gap
    /// `Σ scores − (value − baseline_value)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_value: Option<f32>,
    /// The token whose embedding the path starts from (`None`: zero).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_token: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completeness_gap: Option<f32>,
}

/// `method`'s attribution of `target`'s log-probability after `ids` to each position's embedding.
/// `go_on(done, total)` is told the forward-and-backward passes made; returning `false` stops
/// the run with [`InterpError::Stopped`].
pub fn input_attribution<B: Backend>(
    model: &Model<B>,
    ids: &[u32],
    target: u32,
    method: InputMethod,
    go_on: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<InputAttribution> {
    let objective = Objective::LogProb(target);
    match method {
        InputMethod::GradientTimesInput => {
            let embed = HookRequest::new().with(HookPoint::Embed, Positions::All);
            let input = model.gradient(ids, &[], objective, &embed)?;
            let e = &input.activations.get(HookPoint::Embed).expect("the embedding was recorded").data;
            let gradient = &input.of(HookPoint::ResidPre(0)).expect("the backward pass reaches layer 0").data;
            let width = e.len() / ids.len();
            let scores = e
                .chunks(width)
                .zip(gradient.chunks(width))
                .map(|(e, g)| e.iter().zip(g).map(|(e, g)| f64::from(*e) * f64::from(*g)).sum::<f64>() as f32)
                .collect();
            Ok(InputAttribution {
                method: "gradient_x_input",
                target,
                value: input.value,
                scores,
                baseline_value: None,
                baseline_token: None,
                steps: None,
                completeness_gap: None,
            })
        }
        InputMethod::IntegratedGradients { steps, baseline } => {
            let (e, logits) = embedded(model, ids)?;
            integrated_gradients(model, ids, target, &e, objective.value(&logits), steps, baseline, go_on)
        }
    }
}

/// The embedding of `ids` (`hook_embed` at every position) and the logits at the last one.
fn embedded<B: Backend>(model: &Model<B>, ids: &[u32]) -> Result<(Vec<f32>, Vec<f32>)> {
    let embed = HookRequest::new().with(HookPoint::Embed, Positions::All);
    let mut forward = model.forward(ids, &mut model.new_cache(), &embed, &[], &Positions::Last)?;
    let e = forward.recording.activations.remove(&HookPoint::Embed).expect("the embedding was recorded").data;
    Ok((e, forward.logits.data))
}

/// Points of the Gauss–Legendre rule on each segment of the path.
const POINTS_PER_SEGMENT: usize = 4;
/// Segments are split until their completeness errors add up to this fraction of `f(e) − f(b)`.
const COMPLETENESS_TOLERANCE: f64 = 1e-4;

/// A stretch `[from, to]` of the path with its integral: each position's score, whose sum
/// completeness says is `f(to) − f(from)`.
struct Segment {
    from: f64,
    to: f64,
    f_from: f64,
    f_to: f64,
    scores: Vec<f64>,
}

impl Segment {
    fn error(&self) -> f64 {
        self.scores.iter().sum::<f64>() - (self.f_to - self.f_from)
    }
}

/// Integrated gradients from `baseline`'s embedding (or zero) to `e`, with at most `steps`
/// backward passes. The path is cut into segments, each integrated by Gauss–Legendre; a
/// segment's error is known exactly, since the forward pass gives `f` at its ends, and the worst
/// segment is halved until the errors are within [`COMPLETENESS_TOLERANCE`] or the passes run out.
#[allow(clippy::too_many_arguments)]
fn integrated_gradients<B: Backend>(
    model: &Model<B>,
    ids: &[u32],
    target: u32,
    e: &[f32],
    value: f32,
    steps: usize,
    baseline: Option<u32>,
    go_on: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<InputAttribution> {
    if steps > MAX_STEPS {
        return Err(InterpError::BadRequest(format!("{steps} steps: integrated gradients takes at most {MAX_STEPS}")));
    }
    let objective = Objective::LogProb(target);
    let start = match baseline {
        Some(token) => embedded(model, &vec![token; ids.len()])?.0,
        None => vec![0.0; e.len()],
    };
    let width = e.len() / ids.len();
    let difference: Vec<f64> = e.iter().zip(&start).map(|(e, s)| f64::from(*e) - f64::from(*s)).collect();
    let on_path = |alpha: f64| -> Vec<Intervention> {
        (0..ids.len())
            .map(|position| Intervention::PatchResidPre {
                layer: 0,
                position,
                values: (position * width..(position + 1) * width)
                    .map(|i| (f64::from(start[i]) + alpha * difference[i]) as f32)
                    .collect(),
            })
            .collect()
    };
    let f = |alpha: f64| -> Result<f64> {
        if alpha == 1.0 {
            return Ok(f64::from(value));
        }
        let forward =
            model.forward(ids, &mut model.new_cache(), &HookRequest::new(), &on_path(alpha), &Positions::Last)?;
        Ok(f64::from(objective.value(&forward.logits.data)))
    };
    // From zero the norms change `f` at every scale of α: start with a segment per decade.
    let bounds = match baseline {
        Some(_) => vec![0.0, 0.25, 0.5, 0.75, 1.0],
        None => decades(1e-3 * model.config().norm_eps),
    };
    let budget = steps.max((bounds.len() - 1) * POINTS_PER_SEGMENT);
    let rule = crate::numeric::gauss_legendre(POINTS_PER_SEGMENT);
    let mut passes = 0;
    let mut segment = |from: f64, to: f64, f_from: f64, f_to: f64| -> Result<Segment> {
        let mut scores = vec![0f64; ids.len()];
        for &(x, weight) in &rule {
            let at = model.gradient(ids, &on_path(from + x * (to - from)), objective, &HookRequest::new())?;
            let gradient = &at.of(HookPoint::ResidPre(0)).expect("the backward pass reaches layer 0").data;
            for (i, (g, d)) in gradient.iter().zip(&difference).enumerate() {
                scores[i / width] += weight * (to - from) * f64::from(*g) * d;
            }
            passes += 1;
            if !go_on(passes, budget) {
                return Err(InterpError::Stopped);
            }
        }
        Ok(Segment { from, to, f_from, f_to, scores })
    };
    let values = bounds.iter().map(|&alpha| f(alpha)).collect::<Result<Vec<f64>>>()?;
    let mut segments = Vec::with_capacity(bounds.len() - 1);
    for i in 0..bounds.len() - 1 {
        segments.push(segment(bounds[i], bounds[i + 1], values[i], values[i + 1])?);
    }
    let span = f64::from(value) - values[0];
    loop {
        let total_error: f64 = segments.iter().map(|s| s.error().abs()).sum();
        let used = segments.len() * POINTS_PER_SEGMENT;
        if total_error <= COMPLETENESS_TOLERANCE * span.abs() || used + 2 * POINTS_PER_SEGMENT > budget {
            break;
        }
        let worst = (0..segments.len())
            .max_by(|&a, &b| segments[a].error().abs().total_cmp(&segments[b].error().abs()))
            .expect("the path has segments");
        let whole = segments.swap_remove(worst);
        let middle = (whole.from + whole.to) / 2.0;
        let f_middle = f(middle)?;
        segments.push(segment(whole.from, middle, whole.f_from, f_middle)?);
        segments.push(segment(middle, whole.to, f_middle, whole.f_to)?);
    }
    let mut scores = vec![0f64; ids.len()];
    for s in &segments {
        scores.iter_mut().zip(&s.scores).for_each(|(total, part)| *total += part);
    }
    let gap: f64 = segments.iter().map(Segment::error).sum();
    Ok(InputAttribution {
        method: "integrated_gradients",
        target,
        value,
        scores: scores.into_iter().map(|s| s as f32).collect(),
        baseline_value: Some(values[0] as f32),
        baseline_token: baseline,
        steps: Some(segments.len() * POINTS_PER_SEGMENT),
        completeness_gap: Some(gap as f32),
    })
}

/// `[0, low]` and the decades above it up to 1: `0, low, 10·low, …, 1`.
fn decades(low: f64) -> Vec<f64> {
    let mut bounds = vec![0.0, low.min(1.0)];
    while bounds[bounds.len() - 1] < 1.0 {
        let next = (bounds[bounds.len() - 1] * 10.0).min(1.0);
        bounds.push(next);
    }
    bounds
}
