//! Activation patching: how much of a behaviour one activation carries. Two prompts of equal
//! length, a clean one and a corrupted one, differ in a detail the answer depends on; one
//! activation of the clean run (the residual stream entering layer `l`, or that layer's
//! attention or MLP output) at position `p`, or one head's output at every position, is written
//! into the corrupted run, and the metric (the logit difference between the answer and a wrong
//! answer at the last position) is read. Normalised, 1 means the patch restores the clean run's
//! metric and 0 that it changes nothing.
//!
//! Attribution patching (Nanda; Syed, Rager and Conmy) estimates every cell at once to first
//! order: the corrupted run's gradient of the metric times the difference the patch makes,
//! `∂m/∂a · (a_clean − a_corrupt)`, from one backward pass instead of a pass per cell.

use serde::Serialize;

use super::{InterpError, Result};
use crate::backend::Backend;
use crate::hooks::{Activation, HookPoint, HookRequest, Intervention, Positions};
use crate::model::{Model, Objective};

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

    /// Each column's `Σ ∂m/∂a · (a_clean − a_corrupt)` over its activation: the row at a
    /// position, or a head's slice at every position.
    fn first_order_cells(
        self,
        clean: &Activation,
        corrupt: &Activation,
        gradient: &Activation,
        columns: usize,
        head_dim: usize,
    ) -> Vec<f64> {
        let width = clean.data.len() / clean.positions.len().max(1);
        let mut cells = vec![0f64; columns];
        for (i, ((clean, corrupt), gradient)) in clean.data.iter().zip(&corrupt.data).zip(&gradient.data).enumerate() {
            let column = if self.by_head() { (i % width) / head_dim } else { i / width };
            cells[column] += f64::from(*gradient) * f64::from(clean - corrupt);
        }
        cells
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

/// How a grid's cells are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchingMethod {
    /// One patched forward pass per cell.
    Exact,
    /// Attribution patching: the first-order estimate of every cell from one backward pass of
    /// the corrupted run, `∂m/∂a · (a_clean − a_corrupt)` summed over the cell's activation.
    Attribution,
    /// Both, and the correlation of their cells.
    Both,
}

impl PatchingMethod {
    fn exact(self) -> bool {
        self != PatchingMethod::Attribution
    }
    fn attribution(self) -> bool {
        self != PatchingMethod::Exact
    }
}

/// The layers × positions (or heads) grids of one patching run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PatchingGrid {
    pub site: PatchSite,
    /// `logit(answer) − logit(wrong)` at the last position of the clean and corrupted runs.
    pub clean_metric: f32,
    pub corrupt_metric: f32,
    /// `grid[layer][column]`: `(m − corrupt) / (clean − corrupt)`, with `m` the metric of the
    /// corrupted run whose activation at `site` of `layer` at that column (a position, or for
    /// [`PatchSite::Head`] a head at every position) is the clean run's; when computed exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grid: Option<Vec<Vec<f32>>>,
    /// The same cells to first order (attribution patching), normalised alike.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribution_grid: Option<Vec<Vec<f32>>>,
    /// Pearson's correlation between the two grids' cells, when both were computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation: Option<f64>,
}

/// A patching run as `glassbox patch --json` and the browser's `patch` give it: the grids, what
/// their columns are (`positions` or `heads`), both prompts' tokens and the two answers.
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
/// [`PatchSite::Head`], of every head) into the corrupted run: exactly, one cell per forward
/// pass, and/or to first order from one backward pass, as `method` says. `go_on(done, total)`
/// is told the passes made after each one (the two runs, with the corrupted run's backward pass,
/// count as two); returning `false` stops the run with [`InterpError::Stopped`].
#[allow(clippy::too_many_arguments)]
pub fn activation_patching<B: Backend>(
    model: &Model<B>,
    site: PatchSite,
    method: PatchingMethod,
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
    let c = model.config();
    let vocab_size = c.vocab_size;
    if let Some(&id) = [answer, wrong].iter().find(|&&id| id as usize >= vocab_size) {
        return Err(InterpError::BadRequest(format!("token {id} is outside the {vocab_size}-token vocabulary")));
    }
    let objective = Objective::LogitDifference { answer, wrong };
    let metric = |ids: &[u32], hooks: &HookRequest, interventions: &[Intervention]| {
        let forward = model.forward(ids, &mut model.new_cache(), hooks, interventions, &Positions::Last)?;
        Ok::<_, InterpError>((objective.value(&forward.logits.data), forward.recording))
    };
    let every_layer = (0..c.layers).fold(HookRequest::new(), |hooks, l| hooks.with(site.hook(l), Positions::All));
    let (clean_metric, clean_run) = metric(clean, &every_layer, &[])?;
    let corrupt_gradients =
        if method.attribution() { Some(model.gradient(corrupt, &[], objective, &every_layer)?) } else { None };
    let corrupt_metric = match &corrupt_gradients {
        Some(gradients) => gradients.value,
        None => metric(corrupt, &HookRequest::new(), &[])?.0,
    };
    let span = clean_metric - corrupt_metric;
    if span == 0.0 {
        return Err(InterpError::BadRequest(
            "the clean and corrupted prompts give the same metric: there is nothing to restore".into(),
        ));
    }
    let columns = site.columns(clean.len(), c.heads);
    let total = 2 + if method.exact() { c.layers * columns } else { 0 };
    let mut done = 2;
    if !go_on(done, total) {
        return Err(InterpError::Stopped);
    }
    let clean_at = |layer: usize| clean_run.get(site.hook(layer)).expect("every layer's activation was recorded");
    let attribution_grid = corrupt_gradients.map(|gradients| {
        (0..c.layers)
            .map(|layer| {
                let point = site.hook(layer);
                let corrupt_at = gradients.activations.get(point).expect("every layer's activation was recorded");
                let gradient = gradients.of(point).expect("the backward pass reaches every site");
                site.first_order_cells(clean_at(layer), corrupt_at, gradient, columns, c.head_dim)
                    .into_iter()
                    .map(|cell| (cell / f64::from(span)) as f32)
                    .collect()
            })
            .collect::<Vec<Vec<f32>>>()
    });
    let grid = if method.exact() {
        let mut grid = Vec::with_capacity(c.layers);
        for layer in 0..c.layers {
            let mut row = Vec::with_capacity(columns);
            for column in 0..columns {
                let patches = site.patches(layer, column, clean_at(layer), c.head_dim);
                let (patched, _) = metric(corrupt, &HookRequest::new(), &patches)?;
                row.push((patched - corrupt_metric) / span);
                done += 1;
                if !go_on(done, total) {
                    return Err(InterpError::Stopped);
                }
            }
            grid.push(row);
        }
        Some(grid)
    } else {
        None
    };
    let correlation = match (&grid, &attribution_grid) {
        (Some(exact), Some(estimate)) => {
            let cells = |g: &[Vec<f32>]| g.iter().flatten().map(|&v| f64::from(v)).collect::<Vec<f64>>();
            crate::numeric::pearson(&cells(exact), &cells(estimate))
        }
        _ => None,
    };
    Ok(PatchingGrid { site, clean_metric, corrupt_metric, grid, attribution_grid, correlation })
}
