//! Activation patching: how much of a behaviour one activation carries. Two prompts of equal
//! length, a clean one and a corrupted one, differ in a detail the answer depends on; one
//! activation of the clean run (the residual stream entering layer `l`, or that layer's
//! attention or MLP output) at position `p`, or one head's output at every position, is written
//! into the corrupted run, and the metric (the logit difference between the answer and a wrong
//! answer at the last position) is read. Normalised, 1 means the patch restores the clean run's
//! metric and 0 that it changes nothing.

use serde::Serialize;

use super::{InterpError, Result};
use crate::backend::Backend;
use crate::hooks::{Activation, HookPoint, HookRequest, Intervention, Positions};
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
    /// One head's slice of `blocks.L.attn.hook_z` at every position: what that head writes. The
    /// grid's columns are then the heads.
    Head,
}

impl PatchSite {
    fn hook(self, layer: usize) -> HookPoint {
        match self {
            PatchSite::ResidPre => HookPoint::ResidPre(layer),
            PatchSite::AttnOut => HookPoint::AttnOut(layer),
            PatchSite::MlpOut => HookPoint::MlpOut(layer),
            PatchSite::Head => HookPoint::AttnZ(layer),
        }
    }

    /// Whether the grid's columns are heads rather than positions.
    pub fn by_head(self) -> bool {
        self == PatchSite::Head
    }

    /// The grid's columns for a prompt of `t` tokens and a model of `heads` heads.
    fn columns(self, t: usize, heads: usize) -> usize {
        if self.by_head() {
            heads
        } else {
            t
        }
    }

    /// The patches of grid cell (`layer`, `column`): the clean run's `recorded` activation at
    /// this site, at the column's position or, for a head, at every position.
    fn patches(self, layer: usize, column: usize, recorded: &Activation, head_dim: usize) -> Vec<Intervention> {
        let at = |position: usize| recorded.row(position).to_vec();
        match self {
            PatchSite::ResidPre => vec![Intervention::PatchResidPre { layer, position: column, values: at(column) }],
            PatchSite::AttnOut => vec![Intervention::PatchAttnOut { layer, position: column, values: at(column) }],
            PatchSite::MlpOut => vec![Intervention::PatchMlpOut { layer, position: column, values: at(column) }],
            PatchSite::Head => (0..recorded.positions.len())
                .map(|position| Intervention::PatchHeadZ {
                    layer,
                    head: column,
                    position,
                    values: recorded.row(position)[column * head_dim..(column + 1) * head_dim].to_vec(),
                })
                .collect(),
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
    /// `grid[layer][column]`: `(m − corrupt) / (clean − corrupt)`, with `m` the metric of the
    /// corrupted run whose activation at `site` of `layer` at that column (a position, or for
    /// [`PatchSite::Head`] a head at every position) is the clean run's.
    pub grid: Vec<Vec<f32>>,
}

/// A patching run as `glassbox patch --json` and the browser's `patch` give it: the grid, what its
/// columns are (`positions` or `heads`), both prompts' tokens and the two answers.
#[derive(Serialize)]
pub struct PatchingReport<'a> {
    #[serde(flatten)]
    pub grid: &'a PatchingGrid,
    pub columns: &'static str,
    pub tokens: &'a [String],
    pub corrupt_tokens: &'a [String],
    pub answer: &'a str,
    pub wrong: &'a str,
}

impl PatchingGrid {
    pub fn report<'a>(
        &'a self,
        tokens: &'a [String],
        corrupt_tokens: &'a [String],
        answer: &'a str,
        wrong: &'a str,
    ) -> PatchingReport<'a> {
        let columns = if self.site.by_head() { "heads" } else { "positions" };
        PatchingReport { grid: self, columns, tokens, corrupt_tokens, answer, wrong }
    }
}

/// Patches the clean run's activation at `site` of every layer at every position (or, for
/// [`PatchSite::Head`], of every head) into the corrupted run, one cell per forward pass.
/// `go_on(done, total)` is told the passes made after each one; returning `false` stops the run
/// with [`InterpError::Stopped`].
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
    let columns = site.columns(clean.len(), model.config().heads);
    let total = 2 + layers * columns;
    let mut done = 2;
    if !go_on(done, total) {
        return Err(InterpError::Stopped);
    }
    let mut grid = Vec::with_capacity(layers);
    for layer in 0..layers {
        let recorded = clean_run.get(site.hook(layer)).expect("every layer's activation was recorded");
        let mut row = Vec::with_capacity(columns);
        for column in 0..columns {
            let patches = site.patches(layer, column, recorded, model.config().head_dim);
            let (patched, _) = metric(corrupt, &HookRequest::new(), &patches)?;
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
