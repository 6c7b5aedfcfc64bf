//! Activation patching: how much of a behaviour one activation carries. Two prompts of equal
//! length, a clean one and a corrupted one, differ in a detail the answer depends on; one
//! activation of the clean run (the residual stream entering layer `l`, or that layer's
//! attention or MLP output) at position `p` is written into the corrupted run, and the metric (the logit difference between the answer and a wrong answer at
//! the last position) is read. Normalised, 1 means the patch restores the clean run's metric and
//! 0 that it changes nothing.

use serde::Serialize;

use super::{InterpError, Result};
use crate::backend::Backend;
use crate::hooks::{HookPoint, HookRequest, Intervention, Positions};
use crate::model::Model;

/// Which activation is patched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchSite {
    /// `blocks.L.hook_resid_pre`: everything the layer reads at that position.
    ResidPre,
    /// `blocks.L.hook_attn_out`: what the layer's attention adds there.
    AttnOut,
    /// `blocks.L.hook_mlp_out`: what the layer's MLP adds there.
    MlpOut,
}

impl PatchSite {
    fn hook(self, layer: usize) -> HookPoint {
        match self {
            PatchSite::ResidPre => HookPoint::ResidPre(layer),
            PatchSite::AttnOut => HookPoint::AttnOut(layer),
            PatchSite::MlpOut => HookPoint::MlpOut(layer),
        }
    }

    fn patch(self, layer: usize, position: usize, values: Vec<f32>) -> Intervention {
        match self {
            PatchSite::ResidPre => Intervention::PatchResidPre { layer, position, values },
            PatchSite::AttnOut => Intervention::PatchAttnOut { layer, position, values },
            PatchSite::MlpOut => Intervention::PatchMlpOut { layer, position, values },
        }
    }
}

/// The layers × positions grid of one patching run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PatchingGrid {
    pub site: PatchSite,
    /// `logit(answer) − logit(wrong)` at the last position of the clean and corrupted runs.
    pub clean_metric: f32,
    pub corrupt_metric: f32,
    /// `grid[layer][position]`: `(m − corrupt) / (clean − corrupt)`, with `m` the metric of the
    /// corrupted run whose activation at `site` of `layer` at `position` is the clean run's.
    pub grid: Vec<Vec<f32>>,
}

/// Patches the clean run's activation at `site` of every layer at every position into the
/// corrupted run, one patch per forward pass. `go_on(done, total)` is told the passes made after
/// each one; returning `false` stops the run with [`InterpError::Stopped`].
pub fn activation_patching<B: Backend>(
    model: &Model<B>,
    site: PatchSite,
    clean: &[u32],
    corrupt: &[u32],
    answer: u32,
    wrong: u32,
    go_on: &mut dyn FnMut(usize, usize) -> bool,
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
    let every_layer = (0..layers).fold(HookRequest::new(), |hooks, l| hooks.with(site.hook(l), Positions::All));
    let (clean_metric, clean_run) = metric(clean, &every_layer, &[])?;
    let (corrupt_metric, _) = metric(corrupt, &HookRequest::new(), &[])?;
    let span = clean_metric - corrupt_metric;
    if span == 0.0 {
        return Err(InterpError::BadRequest(
            "the clean and corrupted prompts give the same metric: there is nothing to restore".into(),
        ));
    }
    let total = 2 + layers * clean.len();
    let mut done = 2;
    if !go_on(done, total) {
        return Err(InterpError::Stopped);
    }
    let mut grid = Vec::with_capacity(layers);
    for layer in 0..layers {
        let recorded = clean_run.get(site.hook(layer)).expect("every layer's activation was recorded");
        let mut row = Vec::with_capacity(clean.len());
        for position in 0..clean.len() {
            let patch = site.patch(layer, position, recorded.row(position).to_vec());
            let (patched, _) = metric(corrupt, &HookRequest::new(), &[patch])?;
            row.push((patched - corrupt_metric) / span);
            done += 1;
            if !go_on(done, total) {
                return Err(InterpError::Stopped);
            }
        }
        grid.push(row);
    }
    Ok(PatchingGrid { site, clean_metric, corrupt_metric, grid })
}
