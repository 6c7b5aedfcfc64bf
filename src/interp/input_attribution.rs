//! How much each prompt token's embedding counts for the target's log-probability `f`, by the
//! gradient methods Inseq offers: gradient × input, `Σ_d e_{p,d} · ∂f/∂e_{p,d}`, and integrated
//! gradients (Sundararajan, Taly and Yan), `Σ_d (e − b)_{p,d} · ∫₀¹ ∂f/∂e_{p,d}(b + α(e − b)) dα`
//! from a baseline `b`. Integrated gradients' scores add up to `f(e) − f(b)` (completeness); what
//! the quadrature's sum misses is reported as the gap.
//!
//! The baseline is the all-zero embedding (Inseq's and Captum's default) or a token's embedding
//! at every position. From zero, the RMSNorms make `f(αe)` change at every scale of α: layer 0's
//! norm scales `αe` down linearly below about `√(ε / mean(e²))` and removes its scale above, and a
//! norm over a per-head query or a sublayer's output repeats that at smaller α still. The
//! integral is then taken over geometric segments, `[0, a]`, `[a, 10a]`, …, `[0.1, 1]` with
//! `a = ε/1000`, each with the same Gauss–Legendre rule. With Gemma's post-norms, six layers of
//! them, `f(αe)` has no limit as α → 0 that a float run reaches, and the gap stays large: a
//! token baseline, whose path keeps away from zero, is the one to use there (its integral is one
//! Gauss–Legendre rule on [0, 1]).
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
    /// With about this many quadrature points, each a forward and a backward pass, from the
    /// all-zero embedding or, with `baseline`, that token's embedding at every position.
    IntegratedGradients {
        steps: usize,
        baseline: Option<u32>,
    },
}

/// The most quadrature points a run may ask for.
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
    /// baseline token's), the quadrature points taken, and the completeness gap `Σ scores − (value − baseline_value)`.
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
    let embed = HookRequest::new().with(HookPoint::Embed, Positions::All);
    let input = model.gradient(ids, &[], objective, &embed)?;
    let e = &input.activations.get(HookPoint::Embed).expect("the embedding was recorded").data;
    let per_position = |e: &[f32], gradient: &[f64]| -> Vec<f32> {
        let width = e.len() / ids.len();
        e.chunks(width)
            .zip(gradient.chunks(width))
            .map(|(e, g)| e.iter().zip(g).map(|(e, g)| f64::from(*e) * g).sum::<f64>() as f32)
            .collect()
    };
    match method {
        InputMethod::GradientTimesInput => {
            let gradient = &input.of(HookPoint::ResidPre(0)).expect("the backward pass reaches layer 0").data;
            let gradient: Vec<f64> = gradient.iter().map(|&g| f64::from(g)).collect();
            Ok(InputAttribution {
                method: "gradient_x_input",
                target,
                value: input.value,
                scores: per_position(e, &gradient),
                baseline_value: None,
                baseline_token: None,
                steps: None,
                completeness_gap: None,
            })
        }
        InputMethod::IntegratedGradients { steps, baseline } => {
            if !(1..=MAX_STEPS).contains(&steps) {
                return Err(InterpError::BadRequest(format!(
                    "{steps} steps: integrated gradients takes 1 to {MAX_STEPS}"
                )));
            }
            let start = match baseline {
                Some(token) => {
                    let same = vec![token; ids.len()];
                    let forward = model.forward(&same, &mut model.new_cache(), &embed, &[], &Positions::Last)?;
                    forward.recording.get(HookPoint::Embed).expect("the embedding was recorded").data.clone()
                }
                None => vec![0.0; e.len()],
            };
            let width = e.len() / ids.len();
            let on_path = |alpha: f64| -> Vec<Intervention> {
                (0..ids.len())
                    .map(|position| Intervention::PatchResidPre {
                        layer: 0,
                        position,
                        values: (position * width..(position + 1) * width)
                            .map(|i| (f64::from(start[i]) + alpha * f64::from(e[i] - start[i])) as f32)
                            .collect(),
                    })
                    .collect()
            };
            // From zero, the norms' scales need geometric segments; from a token the path is smooth.
            let rule = match baseline {
                Some(_) => crate::numeric::gauss_legendre(steps),
                None => path_rule(steps, 1e-3 * model.config().norm_eps),
            };
            let total = rule.len() + 2;
            let at_start =
                model.forward(ids, &mut model.new_cache(), &HookRequest::new(), &on_path(0.0), &Positions::Last)?;
            let baseline_value = objective.value_and_gradient(&at_start.logits.data).0;
            if !go_on(2, total) {
                return Err(InterpError::Stopped);
            }
            let mut integral = vec![0f64; e.len()];
            for (k, (alpha, weight)) in rule.into_iter().enumerate() {
                let at = model.gradient(ids, &on_path(alpha), objective, &HookRequest::new())?;
                let gradient = &at.of(HookPoint::ResidPre(0)).expect("the backward pass reaches layer 0").data;
                integral.iter_mut().zip(gradient).for_each(|(sum, &g)| *sum += weight * f64::from(g));
                if !go_on(k + 3, total) {
                    return Err(InterpError::Stopped);
                }
            }
            let difference: Vec<f32> = e.iter().zip(&start).map(|(e, s)| e - s).collect();
            let scores = per_position(&difference, &integral);
            let sum: f64 = scores.iter().map(|&s| f64::from(s)).sum();
            let gap = sum - (f64::from(input.value) - f64::from(baseline_value));
            Ok(InputAttribution {
                method: "integrated_gradients",
                target,
                value: input.value,
                scores,
                baseline_value: Some(baseline_value),
                baseline_token: baseline,
                steps: Some(total - 2),
                completeness_gap: Some(gap as f32),
            })
        }
    }
}

/// Quadrature points and weights on [0, 1]: `[0, low]` and the decades above it up to 1, each
/// with the same Gauss–Legendre rule, about `steps` points in all.
fn path_rule(steps: usize, low: f64) -> Vec<(f64, f64)> {
    let mut bounds = vec![0.0, low.min(1.0)];
    while bounds[bounds.len() - 1] < 1.0 {
        let next = (bounds[bounds.len() - 1] * 10.0).min(1.0);
        bounds.push(next);
    }
    let segments = bounds.len() - 1;
    let rule = crate::numeric::gauss_legendre(steps.div_ceil(segments));
    bounds
        .windows(2)
        .flat_map(|w| rule.iter().map(move |&(x, weight)| (w[0] + x * (w[1] - w[0]), weight * (w[1] - w[0]))))
        .collect()
}
