//! Activation patching: how much of a behaviour one activation carries. Two prompts of equal
//! length, a clean one and a corrupted one, differ in a detail the answer depends on; the
//! residual stream entering layer `l` at position `p` in the clean run is written into the
//! corrupted run, and the metric (the logit difference between the answer and a wrong answer at
//! the last position) is read. Normalised, 1 means the patch restores the clean run's metric and
//! 0 that it changes nothing.

use serde::Serialize;

use super::{InterpError, Result};
use crate::backend::Backend;
use crate::hooks::{HookPoint, HookRequest, Intervention, Positions};
use crate::model::Model;

/// The layers × positions grid of one patching run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PatchingGrid {
    /// `logit(answer) − logit(wrong)` at the last position of the clean and corrupted runs.
    pub clean_metric: f32,
    pub corrupt_metric: f32,
    /// `grid[layer][position]`: `(m − corrupt) / (clean − corrupt)`, with `m` the metric of the
    /// corrupted run whose residual entering `layer` at `position` is the clean run's.
    pub grid: Vec<Vec<f32>>,
}

/// Patches the clean run's residual stream entering every layer (`blocks.L.hook_resid_pre`) at
/// every position into the corrupted run, one patch per forward pass.
pub fn patch_residual_stream<B: Backend>(
    model: &Model<B>,
    clean: &[u32],
    corrupt: &[u32],
    answer: u32,
    wrong: u32,
) -> Result<PatchingGrid> {
    if clean.len() != corrupt.len() {
        return Err(InterpError::BadRequest(format!(
            "the clean prompt is {} tokens and the corrupted one {}: patching needs equal lengths",
            clean.len(),
            corrupt.len()
        )));
    }
    let layers = model.config().layers;
    let vocab_size = model.config().vocab_size;
    if let Some(&id) = [answer, wrong].iter().find(|&&id| id as usize >= vocab_size) {
        return Err(InterpError::BadRequest(format!("token {id} is outside the {vocab_size}-token vocabulary")));
    }
    let metric = |ids: &[u32], hooks: &HookRequest, interventions: &[Intervention]| {
        let forward = model.forward(ids, &mut model.new_cache(), hooks, interventions, &Positions::Last)?;
        let logits = &forward.logits.data;
        Ok::<_, InterpError>((logits[answer as usize] - logits[wrong as usize], forward.recording))
    };
    let every_layer =
        (0..layers).fold(HookRequest::new(), |hooks, l| hooks.with(HookPoint::ResidPre(l), Positions::All));
    let (clean_metric, clean_run) = metric(clean, &every_layer, &[])?;
    let (corrupt_metric, _) = metric(corrupt, &HookRequest::new(), &[])?;
    let span = clean_metric - corrupt_metric;
    if span == 0.0 {
        return Err(InterpError::BadRequest(
            "the clean and corrupted prompts give the same metric: there is nothing to restore".into(),
        ));
    }
    let mut grid = Vec::with_capacity(layers);
    for layer in 0..layers {
        let residual = clean_run.get(HookPoint::ResidPre(layer)).expect("every layer's resid_pre was recorded");
        let mut row = Vec::with_capacity(clean.len());
        for position in 0..clean.len() {
            let patch = Intervention::PatchResidPre { layer, position, values: residual.row(position).to_vec() };
            let (patched, _) = metric(corrupt, &HookRequest::new(), &[patch])?;
            row.push((patched - corrupt_metric) / span);
        }
        grid.push(row);
    }
    Ok(PatchingGrid { clean_metric, corrupt_metric, grid })
}
