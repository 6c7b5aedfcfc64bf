//! Log-probability-increase attribution ("Neuron-Level Knowledge Attribution in Large Language
//! Models"), at the last position, with `LPI` from [`Lpi`] under the fixed-scale lens:
//!
//! - attention layer l: `LPI(x_l, a_l)`; FFN layer l: `LPI(r_l, f_l)`;
//! - head (l, h): `H_{l,h} = Σ_t α_{h,last,t}·v_{t,h}·W_O[h]`, score `LPI(x_l, H_{l,h})`;
//! - position t through head (l, h): `c_{l,h,t} = LPI(x_l, α_{h,last,t}·v_{t,h}·W_O[h])`;
//! - FFN value neuron (l, i): `LPI(r_l, m_{l,i}·W_down[:, i])`;
//! - attention value neuron (l, h, j, t): `LPI(x_l, α_{h,last,t}·v_{t,h,j}·W_O[h, j, :])`;
//! - query neuron: for the top attention value neurons, key `k = v_proj.weight[h·d_head + j] ⊙
//!   input_layernorm.weight`; a shallower FFN neuron (l', i) at position t scores
//!   `Σ_{value neurons} ⟨m_{l',i,t}·W_down[:, i], k⟩ / ⟨x_l^t, k⟩ × score(value neuron)`.
//!
//! The attribution graph draws the flow into the last position as edges `c_{l,h,t}` from every
//! position's residual through every head: all `layers × heads × positions` are first scored to
//! first order from the gradients the value neurons already need, and the strongest
//! `graph_edges` of them, by magnitude, are then scored exactly. It takes no forward pass beyond
//! the one every method here shares.
//!
//! Every head and layer is scored exactly. Neurons are first scored by the first-order
//! approximation ([`Lpi::gradients`], one dot product each); the top `exact_neurons` by that
//! score, plus any the caller names, are then scored exactly, and each score says which it is.
//!
//! `m_{l,i}` is taken as down_proj reads it ([`Backend::as_read_by`]): with quantised weights
//! the kernel rounds the coefficients, and the rounded ones are what the layer really adds.
//! With grouped-query attention, query head h reads key-value head `h / (H / KV)`, so "`v_{t,h}`"
//! and "`v_proj.weight[h·d_head + j]`" use that head.
//!
//! Where a model normalises a sublayer's output before adding it (Gemma's post-norms), every
//! part of that output enters the residual as `g ⊙ part / s`, `s` the norm's divisor in this pass
//! held fixed ([`Pass::post_norm_factor`]): the parts then still add up to what the sublayer
//! added, so layer, head and neuron scores stay exact decompositions.

use serde::Serialize;

use super::lens::{Lpi, LpiBase, Unembedding};
use super::{choose_target, first_n_and, rank_descending, HeadId, InterpError, NeuronId, Result, Target};
use crate::backend::Backend;
use crate::hooks::{HookPoint, HookRequest, Intervention, Positions, Recording};
use crate::model::{Config, LayerWeight, Model, Sublayer};
use crate::numeric::log_softmax;
use crate::tokenizer::Tokenizer;

/// How many graph edges the CLI, the browser and Python score exactly unless told otherwise: about
/// 0.4× a default attribution's work on SmolLM2-135M.
pub const DEFAULT_GRAPH_EDGES: usize = 1000;

#[derive(Clone, Debug)]
pub struct AttributionOptions {
    /// The token explained; the model's top-1 when `None`.
    pub target: Option<u32>,
    /// How many neurons, ranked by the first-order score, get an exact LPI.
    pub exact_neurons: usize,
    /// Score every FFN neuron exactly (slow: one vocabulary projection each).
    pub exact_all: bool,
    /// Neurons always scored exactly and reported.
    pub always_exact: Vec<NeuronId>,
    /// How many neurons, value neurons and query neurons to report.
    pub top: usize,
    /// Positions are attributed through this many top heads.
    pub position_heads: usize,
    /// The number of top attention value neurons whose keys define query neurons.
    pub value_neurons: usize,
    /// With `Some(n)`, the attribution graph of the `n` strongest head-position edges.
    pub graph_edges: Option<usize>,
}

impl Default for AttributionOptions {
    fn default() -> Self {
        AttributionOptions {
            target: None,
            exact_neurons: 1000,
            exact_all: false,
            always_exact: Vec::new(),
            top: 100,
            position_heads: 10,
            value_neurons: 30,
            graph_edges: None,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct LayerScore {
    pub layer: usize,
    /// `LPI(x_l, a_l)`.
    pub attention: f32,
    /// `LPI(r_l, f_l)`.
    pub ffn: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct HeadScore {
    pub layer: usize,
    pub head: usize,
    pub score: f32,
}

impl HeadScore {
    pub fn id(&self) -> HeadId {
        HeadId { layer: self.layer, head: self.head }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct NeuronScore {
    pub layer: usize,
    pub neuron: usize,
    pub score: f32,
    /// False where the score is the first-order approximation.
    pub exact: bool,
}

impl NeuronScore {
    pub fn id(&self) -> NeuronId {
        NeuronId { layer: self.layer, neuron: self.neuron }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PositionScore {
    pub layer: usize,
    pub head: usize,
    pub position: usize,
    pub token: String,
    /// `c_{l,h,t}`.
    pub score: f32,
}

#[derive(Clone, Debug, Serialize)]
pub struct ValueNeuronScore {
    pub layer: usize,
    pub head: usize,
    /// `j`, the dimension within the head.
    pub dim: usize,
    pub position: usize,
    pub score: f32,
    pub exact: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct QueryNeuronScore {
    pub layer: usize,
    pub neuron: usize,
    pub position: usize,
    pub score: f32,
}

/// One edge of the attribution graph: head (layer, head) carrying position `position`'s
/// residual into the last position's, `c_{l,h,t}`, exact.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GraphEdge {
    pub layer: usize,
    pub head: usize,
    pub position: usize,
    pub score: f32,
}

/// The information flow into the explained token, in the spirit of Ferrando & Voita's
/// information-flow routes: nodes are (layer, position) residual states, edges the heads'
/// contributions from a position into the last one. The MLPs add directly only to the last
/// position's residual, so their scores are the [`LayerScore::ffn`] of the last position's nodes;
/// at earlier positions an MLP's part reaches the target only through the edges leaving them.
#[derive(Clone, Debug, Serialize)]
pub struct AttributionGraph {
    /// Every edge, `layers × heads × positions`, scored to first order to choose the exact ones.
    pub edges_scored: usize,
    /// The strongest edges by their first-order magnitude, scored exactly; by `|score|`, largest
    /// first.
    pub edges: Vec<GraphEdge>,
}

/// JSON: `{"target": {"id", "token", "logprob"}, "scale", "input_tokens", "layers": [{"layer",
/// "attention", "ffn"}], "heads": [{"layer", "head", "score"}], "neurons": [{"layer", "neuron",
/// "score", "exact"}], "exact_neurons", "positions": [{"layer", "head", "position", "token",
/// "score"}], "value_neurons": [{"layer", "head", "dim", "position", "score", "exact"}],
/// "query_neurons": [{"layer", "neuron", "position", "score"}], "graph": {"edges_scored", "edges":
/// [{"layer", "head", "position", "score"}]}}`; every list by score, highest first (positions
/// grouped by head, heads in rank order; graph edges by magnitude), `graph` only when asked for.
#[derive(Clone, Debug, Serialize)]
pub struct Attribution {
    pub target: Target,
    /// The lens's fixed `s`.
    pub scale: f32,
    pub input_tokens: Vec<String>,
    pub layers: Vec<LayerScore>,
    /// All heads.
    pub heads: Vec<HeadScore>,
    /// The top `top` neurons, and every neuron the caller asked for.
    pub neurons: Vec<NeuronScore>,
    /// How many neurons were scored exactly.
    pub exact_neurons: usize,
    pub positions: Vec<PositionScore>,
    pub value_neurons: Vec<ValueNeuronScore>,
    pub query_neurons: Vec<QueryNeuronScore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph: Option<AttributionGraph>,
}

/// One forward pass at the last position, with what every method here reads.
pub(crate) struct Pass {
    pub recording: Recording,
    pub len: usize,
    pub logits: Vec<f32>,
    pub logprobs: Vec<f32>,
}

impl Pass {
    /// Runs `ids` with `interventions` (head ablations, or LLaVA's image embeddings patched in).
    pub fn run<B: Backend>(model: &Model<B>, ids: &[u32], interventions: &[Intervention]) -> Result<Pass> {
        let mut hooks =
            HookRequest::new().with(HookPoint::Embed, Positions::Last).with(HookPoint::LnFinalScale, Positions::Last);
        for l in 0..model.config().layers {
            for point in [HookPoint::ResidPre(l), HookPoint::AttnV(l), HookPoint::MlpPost(l)] {
                hooks = hooks.with(point, Positions::All);
            }
            if model.config().post_norms {
                for point in [HookPoint::AttnPostNormScale(l), HookPoint::MlpPostNormScale(l)] {
                    hooks = hooks.with(point, Positions::All);
                }
            }
            for point in [
                HookPoint::AttnPattern(l),
                HookPoint::AttnResult(l),
                HookPoint::AttnOut(l),
                HookPoint::ResidMid(l),
                HookPoint::MlpOut(l),
                HookPoint::ResidPost(l),
            ] {
                hooks = hooks.with(point, Positions::Last);
            }
        }
        let mut cache = model.new_cache();
        let run = model.forward(ids, &mut cache, &hooks, interventions, &Positions::Last)?;
        let logprobs = log_softmax(&run.logits.data);
        Ok(Pass { recording: run.recording, len: ids.len(), logits: run.logits.data, logprobs })
    }

    fn get(&self, point: HookPoint) -> &crate::hooks::Activation {
        self.recording.get(point).expect("Pass::run records every hook it reads")
    }

    /// The hook's row at the last position.
    pub fn last(&self, point: HookPoint) -> &[f32] {
        let activation = self.get(point);
        activation.row(activation.positions.len() - 1)
    }

    /// Row `t` of a hook recorded at every position.
    pub fn at(&self, point: HookPoint, t: usize) -> &[f32] {
        self.get(point).row(t)
    }

    /// `α_{h,last,t}`: the pattern at the last query is `[H, 1, T]`.
    pub fn alpha(&self, layer: usize, head: usize, t: usize) -> f32 {
        self.get(HookPoint::AttnPattern(layer)).data[head * self.len + t]
    }

    /// `v_{t,h}`: query head h reads key-value head `h / (H / KV)`.
    pub fn value(&self, c: &Config, layer: usize, head: usize, t: usize) -> &[f32] {
        let kv = head / (c.heads / c.kv_heads);
        &self.at(HookPoint::AttnV(layer), t)[kv * c.head_dim..(kv + 1) * c.head_dim]
    }

    pub fn scale(&self) -> f32 {
        self.last(HookPoint::LnFinalScale)[0]
    }

    /// What layer `layer`'s attention (`Output`) or MLP (`Down`) output at position `t` is
    /// multiplied by on its way into the residual: `g / s_t` of its post-norm, the divisor held
    /// at this pass's value; `None` when the output joins the residual as it is.
    pub fn post_norm_factor<B: Backend>(
        &self,
        model: &Model<B>,
        layer: usize,
        which: LayerWeight,
        t: usize,
    ) -> Option<Vec<f32>> {
        let (sublayer, scale) = match which {
            LayerWeight::Output => (Sublayer::Attention, HookPoint::AttnPostNormScale(layer)),
            LayerWeight::Down => (Sublayer::Mlp, HookPoint::MlpPostNormScale(layer)),
            LayerWeight::Value => return None,
        };
        let g = model.post_norm_weight(layer, sublayer)?;
        let s = self.at(scale, t)[0];
        Some(g.iter().map(|g| g / s).collect())
    }

    /// `x` (one or more rows of the model's width) times the post-norm factor at position `t`:
    /// a sublayer-output vector as it enters the residual, or a residual-space gradient pulled
    /// back to the sublayer's output.
    pub fn through_post_norm<B: Backend>(
        &self,
        model: &Model<B>,
        layer: usize,
        which: LayerWeight,
        t: usize,
        x: Vec<f32>,
    ) -> Vec<f32> {
        times_factor(self.post_norm_factor(model, layer, which, t).as_deref(), x)
    }

    /// `w`: the named token, or the model's top-1.
    pub fn target(&self, requested: Option<u32>, tokenizer: &Tokenizer) -> Result<Target> {
        let id = choose_target(requested, &self.logprobs)?;
        let token = tokenizer.token_texts(&[id])?.remove(0);
        Ok(Target { id, token, logprob: self.logprobs[id as usize] })
    }
}

/// Each row of `x` times `factor` elementwise; `x` as it is without one.
fn times_factor(factor: Option<&[f32]>, mut x: Vec<f32>) -> Vec<f32> {
    if let Some(factor) = factor {
        for row in x.chunks_mut(factor.len()) {
            row.iter_mut().zip(factor).for_each(|(v, f)| *v *= f);
        }
    }
    x
}

/// The host memory a batch of fetched weight vectors may take.
const WEIGHT_VECTOR_BYTES: usize = 16 << 20;

/// How many weight vectors of `width` values a batch fetches together.
fn vectors_at_once(width: usize) -> usize {
    (WEIGHT_VECTOR_BYTES / (4 * width.max(1))).max(1)
}

/// Rows of `v_proj` (`Value`), or columns of `o_proj` and `down_proj` (`Output`, `Down`):
/// `(layer, index)` → the vector, gathered on the device a layer at a time and read back
/// together. Only the vectors asked for reach the host, never a whole matrix.
pub(crate) fn weight_vectors<B: Backend>(
    model: &Model<B>,
    which: LayerWeight,
    wanted: &[(usize, usize)],
) -> Result<std::collections::HashMap<(usize, usize), Vec<f32>>> {
    let be = model.backend();
    let mut sorted = wanted.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let groups: Vec<&[(usize, usize)]> = sorted.chunk_by(|a, b| a.0 == b.0).collect();
    let gathered = groups
        .iter()
        .map(|group| {
            let w = model.weight(group[0].0, which);
            if which == LayerWeight::Value {
                be.embed(w, &group.iter().map(|&(_, i)| i as u32).collect::<Vec<_>>())
            } else {
                be.columns(w, &group.iter().map(|&(_, i)| i).collect::<Vec<_>>())
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut out = std::collections::HashMap::with_capacity(sorted.len());
    for (group, (shape, values)) in groups.iter().zip(be.download_all(&gathered.iter().collect::<Vec<_>>())?) {
        for (&key, vector) in group.iter().zip(values.chunks(shape[1])) {
            out.insert(key, vector.to_vec());
        }
    }
    Ok(out)
}

/// `x · W` of layer `layer`'s weight `which` for each `(layer, x)`, with `x` rows in `W`'s output
/// space: `Wᵀ x`, one value per column and row. The products run on the backend and are read
/// back together.
pub(crate) fn pull_through<B: Backend>(
    model: &Model<B>,
    which: LayerWeight,
    inputs: &[(usize, Vec<f32>)],
) -> Result<Vec<Vec<f32>>> {
    let be = model.backend();
    let width = model.config().width;
    let products = inputs
        .iter()
        .map(|(layer, x)| be.linear_transposed(&be.upload(x.len() / width, width, x)?, model.weight(*layer, which)))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(be.download_all(&products.iter().collect::<Vec<_>>())?.into_iter().map(|(_, values)| values).collect())
}

/// Rows of `m` (`[t, f]`) as down_proj of `layer` reads them.
pub(crate) fn coefficients_as_read<B: Backend>(model: &Model<B>, layer: usize, m: &[f32]) -> Result<Vec<f32>> {
    Ok(model.backend().as_read_by(m, model.weight(layer, LayerWeight::Down))?)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum::<f64>() as f32
}

/// The FFN value neurons of one pass: `Imp(l, i) = LPI(r_l, m_{l,i}·W_down[:, i])`.
pub(crate) struct FfnNeurons {
    /// `m_{l,i}` at the last position, as down_proj reads it: `[layers][f]`.
    coefficients: Vec<Vec<f32>>,
    /// `r_l` of each layer.
    bases: Vec<LpiBase>,
    /// Each layer's post-norm factor at the last position ([`Pass::post_norm_factor`]).
    post_norms: Vec<Option<Vec<f32>>>,
}

impl FfnNeurons {
    pub fn new<B: Backend>(lpi: &Lpi<B>, pass: &Pass) -> Result<Self> {
        let model = lpi.unembedding.model();
        let layers = model.config().layers;
        let coefficients = (0..layers)
            .map(|l| coefficients_as_read(model, l, pass.last(HookPoint::MlpPost(l))))
            .collect::<Result<_>>()?;
        let mids: Vec<f32> = (0..layers).flat_map(|l| pass.last(HookPoint::ResidMid(l)).to_vec()).collect();
        let post_norms =
            (0..layers).map(|l| pass.post_norm_factor(model, l, LayerWeight::Down, pass.len - 1)).collect();
        Ok(FfnNeurons { coefficients, bases: lpi.bases(&mids)?, post_norms })
    }

    /// A residual-space vector times layer `l`'s post-norm factor.
    fn through_post_norm(&self, l: usize, x: &[f32]) -> Vec<f32> {
        times_factor(self.post_norms[l].as_deref(), x.to_vec())
    }

    pub fn bases(&self) -> &[LpiBase] {
        &self.bases
    }

    /// The first-order LPI of every neuron, `[layers · f]`:
    /// `m_{l,i} · (W_downᵀ ∇_l)_i` with `∇_l` the gradient at `r_l`.
    pub fn approximate<B: Backend>(&self, lpi: &Lpi<B>) -> Result<Vec<f32>> {
        let model = lpi.unembedding.model();
        let gradients = lpi.gradients(&self.bases)?;
        let toward: Vec<_> = gradients.iter().enumerate().map(|(l, g)| (l, self.through_post_norm(l, g))).collect();
        let per_column = pull_through(model, LayerWeight::Down, &toward)?;
        Ok(self.coefficients.iter().zip(per_column).flat_map(|(m, g)| m.iter().zip(g).map(|(m, g)| m * g)).collect())
    }

    /// The exact LPI of each neuron in `flat` (indices `l · f + i`), in that order.
    pub fn exact<B: Backend>(&self, lpi: &Lpi<B>, flat: &[usize]) -> Result<Vec<f32>> {
        let model = lpi.unembedding.model();
        let f = model.config().ffn_width;
        let mut out = vec![0.0; flat.len()];
        let mut order: Vec<usize> = (0..flat.len()).collect();
        order.sort_by_key(|&k| flat[k]);
        // In batches, so that the columns and deltas held stay within WEIGHT_VECTOR_BYTES.
        for group in order.chunks(vectors_at_once(model.config().width)) {
            let wanted: Vec<(usize, usize)> = group.iter().map(|&k| (flat[k] / f, flat[k] % f)).collect();
            let columns = weight_vectors(model, LayerWeight::Down, &wanted)?;
            let deltas: Vec<_> = wanted
                .iter()
                .map(|&(l, i)| {
                    let m = self.coefficients[l][i];
                    (l, self.through_post_norm(l, &columns[&(l, i)]).iter().map(|w| m * w).collect())
                })
                .collect();
            for (&k, score) in group.iter().zip(lpi.exact(&self.bases, &deltas)?) {
                out[k] = score;
            }
        }
        Ok(out)
    }

    /// Replaces `scores[i]` (`[layers · f]`) with the exact LPI for each `i` in `chosen`.
    pub fn rescore<B: Backend>(&self, lpi: &Lpi<B>, scores: &mut [f32], chosen: &[usize]) -> Result<()> {
        for (&i, exact) in chosen.iter().zip(self.exact(lpi, chosen)?) {
            scores[i] = exact;
        }
        Ok(())
    }
}

/// Exact scores for the `n` best by `approximate` and every index in `always`, first-order ones
/// elsewhere: `(scores, exact?)`.
pub(crate) fn refine<B: Backend>(
    lpi: &Lpi<B>,
    neurons: &FfnNeurons,
    approximate: &[f32],
    n: usize,
    always: &[usize],
) -> Result<(Vec<f32>, Vec<bool>)> {
    let chosen = first_n_and(rank_descending(approximate), n, always);
    let mut scores = approximate.to_vec();
    neurons.rescore(lpi, &mut scores, &chosen)?;
    let is_exact = exact_at(scores.len(), &chosen);
    Ok((scores, is_exact))
}

/// `true` at each index in `chosen`.
pub(crate) fn exact_at(len: usize, chosen: &[usize]) -> Vec<bool> {
    let mut is_exact = vec![false; len];
    chosen.iter().for_each(|&i| is_exact[i] = true);
    is_exact
}

/// The neurons to report: the top `top` (exact scores first, then first-order ones), plus
/// every neuron in `always`.
pub(crate) fn report_neurons(
    scores: &[f32],
    is_exact: &[bool],
    f: usize,
    top: usize,
    always: &[usize],
) -> Vec<NeuronScore> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| is_exact[b].cmp(&is_exact[a]).then(scores[b].total_cmp(&scores[a])).then(a.cmp(&b)));
    first_n_and(order, top, always)
        .into_iter()
        .map(|i| NeuronScore { layer: i / f, neuron: i % f, score: scores[i], exact: is_exact[i] })
        .collect()
}

fn flat_neuron<B: Backend>(model: &Model<B>, n: NeuronId) -> Result<usize> {
    let c = model.config();
    if n.layer >= c.layers || n.neuron >= c.ffn_width {
        return Err(InterpError::BadRequest(format!(
            "neuron {n} does not exist ({} layers × {})",
            c.layers, c.ffn_width
        )));
    }
    Ok(n.layer * c.ffn_width + n.neuron)
}

pub(crate) fn flat_neurons<B: Backend>(model: &Model<B>, neurons: &[NeuronId]) -> Result<Vec<usize>> {
    neurons.iter().map(|&n| flat_neuron(model, n)).collect()
}

/// Only the heads: `LPI(x_l, H_{l,h})` for every head, highest first, from a forward pass
/// that records just `resid_pre`, `attn.hook_result` and the final scale at the last position.
pub fn rank_heads<B: Backend>(
    unembedding: &Unembedding<B>,
    ids: &[u32],
    target: Option<u32>,
) -> Result<Vec<HeadScore>> {
    let model = unembedding.model();
    let c = model.config();
    let mut hooks = HookRequest::new().with(HookPoint::LnFinalScale, Positions::Last);
    for l in 0..c.layers {
        hooks = hooks.with(HookPoint::ResidPre(l), Positions::Last).with(HookPoint::AttnResult(l), Positions::Last);
    }
    let mut cache = model.new_cache();
    let run = model.forward(ids, &mut cache, &hooks, &[], &Positions::Last)?;
    let target = choose_target(target, &run.logits.data)?;
    let get = |point| &run.recording.get(point).expect("requested").data;
    let lpi = Lpi { unembedding, scale: get(HookPoint::LnFinalScale)[0], target };
    let resid: Vec<f32> = (0..c.layers).flat_map(|l| get(HookPoint::ResidPre(l)).clone()).collect();
    let bases = lpi.bases(&resid)?;
    let deltas: Vec<_> = (0..c.layers)
        .flat_map(|l| get(HookPoint::AttnResult(l)).chunks(c.width).map(move |h| (l, h.to_vec())))
        .collect();
    Ok(ranked_heads(&lpi.exact(&bases, &deltas)?, c.heads))
}

/// Head scores `[layers · heads]`, highest first.
fn ranked_heads(scores: &[f32], heads: usize) -> Vec<HeadScore> {
    rank_descending(scores)
        .into_iter()
        .map(|i| HeadScore { layer: i / heads, head: i % heads, score: scores[i] })
        .collect()
}

/// Every FFN neuron's LPI for `target` at the last position, `[layers · f]`: exact for the
/// best `exact_neurons` by the first-order score, first-order elsewhere.
pub fn ffn_neuron_lpi<B: Backend>(
    unembedding: &Unembedding<B>,
    ids: &[u32],
    target: u32,
    exact_neurons: usize,
) -> Result<Vec<f32>> {
    let pass = Pass::run(unembedding.model(), ids, &[])?;
    let lpi = Lpi { unembedding, scale: pass.scale(), target: choose_target(Some(target), &pass.logits)? };
    let neurons = FfnNeurons::new(&lpi, &pass)?;
    let approximate = neurons.approximate(&lpi)?;
    Ok(refine(&lpi, &neurons, &approximate, exact_neurons, &[])?.0)
}

/// The steps [`attribute_with_progress`] reports: the forward pass, layers and heads, neurons,
/// positions and graph edges, value neurons, query neurons.
pub const ATTRIBUTION_STEPS: usize = 6;

/// Everything above, for the last position of `ids`.
pub fn attribute<B: Backend>(
    unembedding: &Unembedding<B>,
    tokenizer: &Tokenizer,
    ids: &[u32],
    options: &AttributionOptions,
) -> Result<Attribution> {
    attribute_with_progress(unembedding, tokenizer, ids, options, &mut |_, _| true)
}

/// [`attribute`], calling `go_on(done, ATTRIBUTION_STEPS)` after each step; `false` stops it
/// there with [`InterpError::Stopped`].
pub fn attribute_with_progress<B: Backend>(
    unembedding: &Unembedding<B>,
    tokenizer: &Tokenizer,
    ids: &[u32],
    options: &AttributionOptions,
    go_on: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Attribution> {
    let mut done = 0;
    let mut step = || {
        done += 1;
        if go_on(done, ATTRIBUTION_STEPS) {
            Ok(())
        } else {
            Err(InterpError::Stopped)
        }
    };
    let model = unembedding.model();
    let c = model.config().clone();
    let always = flat_neurons(model, &options.always_exact)?;
    let pass = Pass::run(model, ids, &[])?;
    step()?;
    let target = pass.target(options.target, tokenizer)?;
    let lpi = Lpi { unembedding, scale: pass.scale(), target: target.id };

    // Layers and heads, all exact.
    let resid_pre: Vec<f32> = (0..c.layers).flat_map(|l| pass.last(HookPoint::ResidPre(l)).to_vec()).collect();
    let x_bases = lpi.bases(&resid_pre)?;
    let neurons = FfnNeurons::new(&lpi, &pass)?;
    let mut deltas = Vec::with_capacity(c.layers * (c.heads + 1));
    for l in 0..c.layers {
        deltas.push((l, pass.last(HookPoint::AttnOut(l)).to_vec()));
        deltas.extend(pass.last(HookPoint::AttnResult(l)).chunks(c.width).map(|h| (l, h.to_vec())));
    }
    let attention_and_heads = lpi.exact(&x_bases, &deltas)?;
    let ffn_deltas: Vec<_> = (0..c.layers).map(|l| (l, pass.last(HookPoint::MlpOut(l)).to_vec())).collect();
    let ffn = lpi.exact(neurons.bases(), &ffn_deltas)?;
    let layers = (0..c.layers)
        .map(|l| LayerScore { layer: l, attention: attention_and_heads[l * (c.heads + 1)], ffn: ffn[l] })
        .collect();
    let head_scores: Vec<f32> = (0..c.layers)
        .flat_map(|l| attention_and_heads[l * (c.heads + 1) + 1..(l + 1) * (c.heads + 1)].to_vec())
        .collect();
    let heads = ranked_heads(&head_scores, c.heads);
    step()?;

    // FFN value neurons: first-order for all, exact for the best and the requested.
    let approximate = neurons.approximate(&lpi)?;
    let n_exact = if options.exact_all { approximate.len() } else { options.exact_neurons };
    let (scores, is_exact) = refine(&lpi, &neurons, &approximate, n_exact, &always)?;
    let exact_neurons = is_exact.iter().filter(|&&e| e).count();
    let reported = report_neurons(&scores, &is_exact, c.ffn_width, options.top, &always);
    step()?;

    // Each layer's gradient pulled back through o_proj: the first-order score of anything a
    // head adds at the last position is a dot product with it.
    let last = pass.len - 1;
    let toward: Vec<_> = lpi
        .gradients(&x_bases)?
        .into_iter()
        .enumerate()
        .map(|(l, gradient)| (l, pass.through_post_norm(model, l, LayerWeight::Output, last, gradient)))
        .collect();
    let per_column = pull_through(model, LayerWeight::Output, &toward)?;

    // Positions through the top heads, and the graph's strongest edges, scored exactly together.
    let tokens = tokenizer.token_texts(ids)?;
    let top_heads: Vec<HeadId> = heads.iter().take(options.position_heads).map(HeadScore::id).collect();
    let mut cells: Vec<(HeadId, usize)> =
        top_heads.iter().flat_map(|&head| (0..pass.len).map(move |t| (head, t))).collect();
    let through_top_heads = cells.len();
    let graph_cells = options.graph_edges.map(|n| strongest_edges(&pass, &c, &per_column, n));
    if let Some(graph_cells) = &graph_cells {
        cells.extend(graph_cells.iter().filter(|(head, _)| !top_heads.contains(head)));
    }
    let exact = contributions(&lpi, &pass, &x_bases, &cells)?;
    let positions = cells[..through_top_heads]
        .iter()
        .zip(&exact)
        .map(|(&(head, position), &score)| PositionScore {
            layer: head.layer,
            head: head.head,
            position,
            token: tokens[position].clone(),
            score,
        })
        .collect();
    let graph = graph_cells.map(|graph_cells| {
        let scored: std::collections::HashMap<(HeadId, usize), f32> = cells.iter().copied().zip(exact).collect();
        let mut edges: Vec<GraphEdge> = graph_cells
            .iter()
            .map(|&(head, position)| GraphEdge {
                layer: head.layer,
                head: head.head,
                position,
                score: scored[&(head, position)],
            })
            .collect();
        edges.sort_by(|a, b| {
            b.score
                .abs()
                .total_cmp(&a.score.abs())
                .then((a.layer, a.head, a.position).cmp(&(b.layer, b.head, b.position)))
        });
        AttributionGraph { edges_scored: c.layers * c.heads * pass.len, edges }
    });
    step()?;

    // Attention value neurons: first-order for all, exact for the best few. Scored a layer at a
    // time, keeping each layer's best, so memory stays one layer's heads × d_head × positions.
    let hd = c.head_dim;
    let alpha = |l: usize, h: usize, t: usize| pass.alpha(l, h, t);
    let value = |l: usize, h: usize, t: usize| pass.value(&c, l, h, t);
    let keep = 3 * options.value_neurons;
    let per_layer = c.heads * hd * pass.len;
    let mut best: Vec<(f32, usize)> = Vec::new();
    for (l, per_column) in per_column.iter().enumerate() {
        let mut layer_scores = Vec::with_capacity(per_layer);
        for h in 0..c.heads {
            for j in 0..hd {
                for t in 0..pass.len {
                    layer_scores.push(alpha(l, h, t) * value(l, h, t)[j] * per_column[h * hd + j]);
                }
            }
        }
        best.extend(
            rank_descending(&layer_scores).into_iter().take(keep).map(|i| (layer_scores[i], l * per_layer + i)),
        );
    }
    best.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let candidates: Vec<usize> = best.into_iter().take(keep).map(|(_, k)| k).collect();
    let unflatten = |k: usize| {
        let (t, rest) = (k % pass.len, k / pass.len);
        (rest / (c.heads * hd), (rest / hd) % c.heads, rest % hd, t)
    };
    let wanted: Vec<(usize, usize)> = candidates
        .iter()
        .map(|&k| {
            let (l, h, j, _) = unflatten(k);
            (l, h * hd + j)
        })
        .collect();
    let columns = weight_vectors(model, LayerWeight::Output, &wanted)?;
    let value_deltas: Vec<_> = candidates
        .iter()
        .map(|&k| {
            let (l, h, j, t) = unflatten(k);
            let coefficient = alpha(l, h, t) * value(l, h, t)[j];
            let column = pass.through_post_norm(model, l, LayerWeight::Output, last, columns[&(l, h * hd + j)].clone());
            (l, column.iter().map(|w| coefficient * w).collect())
        })
        .collect();
    let value_exact = lpi.exact(&x_bases, &value_deltas)?;
    let mut value_neurons: Vec<ValueNeuronScore> = candidates
        .iter()
        .zip(&value_exact)
        .map(|(&k, &score)| {
            let (layer, head, dim, position) = unflatten(k);
            ValueNeuronScore { layer, head, dim, position, score, exact: true }
        })
        .collect();
    value_neurons.sort_by(|a, b| b.score.total_cmp(&a.score));
    value_neurons.truncate(options.value_neurons);
    step()?;

    let query_neurons = query_neurons(model, &pass, &value_neurons, options.top)?;
    step()?;

    Ok(Attribution {
        target,
        scale: lpi.scale,
        input_tokens: tokens,
        layers,
        heads,
        neurons: reported,
        exact_neurons,
        positions,
        value_neurons,
        query_neurons,
        graph,
    })
}

/// The `n` head-position edges `(head, t)` of largest first-order magnitude
/// `|α_{h,last,t} ⟨v_{t,h}, per_column_l[h]⟩|`, `per_column_l = W_Oᵀ ∇_l`: largest first.
fn strongest_edges(pass: &Pass, c: &Config, per_column: &[Vec<f32>], n: usize) -> Vec<(HeadId, usize)> {
    let hd = c.head_dim;
    let mut cells = Vec::with_capacity(c.layers * c.heads * pass.len);
    let mut magnitudes = Vec::with_capacity(cells.capacity());
    for (layer, per_column) in per_column.iter().enumerate() {
        for head in 0..c.heads {
            for t in 0..pass.len {
                let first_order = pass.alpha(layer, head, t)
                    * dot(pass.value(c, layer, head, t), &per_column[head * hd..(head + 1) * hd]);
                magnitudes.push(first_order.abs());
                cells.push((HeadId { layer, head }, t));
            }
        }
    }
    rank_descending(&magnitudes).into_iter().take(n).map(|i| cells[i]).collect()
}

/// `c_{l,h,t} = LPI(x_l, α_{h,last,t}·v_{t,h}·W_O[h])` for each `(head, t)` of `cells`, in their
/// order. The o_proj columns are fetched in batches of at most [`WEIGHT_VECTOR_BYTES`], each
/// read back at once.
fn contributions<B: Backend>(
    lpi: &Lpi<B>,
    pass: &Pass,
    x_bases: &[LpiBase],
    cells: &[(HeadId, usize)],
) -> Result<Vec<f32>> {
    let model = lpi.unembedding.model();
    let c = model.config();
    let hd = c.head_dim;
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.sort_by_key(|&k| (cells[k].0.layer, cells[k].0.head));
    // Cells of the same head share its columns: batches of whole heads.
    let by_head: Vec<&[usize]> = order.chunk_by(|&a, &b| cells[a].0 == cells[b].0).collect();
    let mut deltas = vec![(0, Vec::new()); cells.len()];
    for heads in by_head.chunks((vectors_at_once(c.width) / hd).max(1)) {
        let wanted: Vec<(usize, usize)> = heads
            .iter()
            .flat_map(|cells_of_head| {
                let HeadId { layer, head } = cells[cells_of_head[0]].0;
                (0..hd).map(move |j| (layer, head * hd + j))
            })
            .collect();
        let columns = weight_vectors(model, LayerWeight::Output, &wanted)?;
        for &k in heads.iter().flat_map(|cells_of_head| cells_of_head.iter()) {
            let (HeadId { layer: l, head: h }, t) = cells[k];
            let mut delta = vec![0.0f32; c.width];
            for (j, &v) in pass.value(c, l, h, t).iter().enumerate() {
                let coefficient = pass.alpha(l, h, t) * v;
                delta.iter_mut().zip(&columns[&(l, h * hd + j)]).for_each(|(d, w)| *d += coefficient * w);
            }
            deltas[k] = (l, pass.through_post_norm(model, l, LayerWeight::Output, pass.len - 1, delta));
        }
    }
    lpi.exact(x_bases, &deltas)
}

/// A position's score `s_t` (see [`position_scores`]), exact or first-order.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PositionTotal {
    pub score: f32,
    pub exact: bool,
}

/// How much each input position drives `target` at the last position: `s_t = Σ_{(l,h)}
/// c_{l,h,t}` over the `heads` top heads by `LPI(x_l, H_{l,h})` (the multi-head form of the
/// LLaVA paper's patch score). Every `s_t` is first scored to first order, `c̃_{l,h,t} =
/// α_{h,last,t} Σ_j v_{t,h,j} ⟨∇_l, W_O[:, h·d_head + j]⟩`; the `exact` best of `eligible` (all
/// positions when `None`) by that score are then scored exactly. The pass runs with
/// `interventions`. Returns one total per position and the heads used.
pub fn position_scores<B: Backend>(
    unembedding: &Unembedding<B>,
    ids: &[u32],
    target: u32,
    heads: usize,
    exact: usize,
    eligible: Option<&[usize]>,
    interventions: &[Intervention],
) -> Result<(Vec<PositionTotal>, Vec<HeadScore>)> {
    let model = unembedding.model();
    let c = model.config();
    let pass = Pass::run(model, ids, interventions)?;
    let lpi = Lpi { unembedding, scale: pass.scale(), target: choose_target(Some(target), &pass.logits)? };
    let resid_pre: Vec<f32> = (0..c.layers).flat_map(|l| pass.last(HookPoint::ResidPre(l)).to_vec()).collect();
    let x_bases = lpi.bases(&resid_pre)?;
    let deltas: Vec<_> = (0..c.layers)
        .flat_map(|l| pass.last(HookPoint::AttnResult(l)).chunks(c.width).map(move |h| (l, h.to_vec())))
        .collect();
    let mut ranked = ranked_heads(&lpi.exact(&x_bases, &deltas)?, c.heads);
    ranked.truncate(heads);

    let gradients = lpi.gradients(&x_bases)?;
    let hd = c.head_dim;
    let mut totals = vec![PositionTotal { score: 0.0, exact: false }; pass.len];
    let mut layers: Vec<usize> = ranked.iter().map(|head| head.layer).collect();
    layers.sort_unstable();
    layers.dedup();
    let toward: Vec<_> = layers
        .iter()
        .map(|&l| (l, pass.through_post_norm(model, l, LayerWeight::Output, pass.len - 1, gradients[l].clone())))
        .collect();
    let per_layer: std::collections::HashMap<usize, Vec<f32>> =
        layers.into_iter().zip(pull_through(model, LayerWeight::Output, &toward)?).collect();
    for head in &ranked {
        let (l, h) = (head.layer, head.head);
        let per_column = &per_layer[&l];
        for (t, total) in totals.iter_mut().enumerate() {
            total.score += pass.alpha(l, h, t) * dot(pass.value(c, l, h, t), &per_column[h * hd..(h + 1) * hd]);
        }
    }
    let approximate: Vec<f32> = totals.iter().map(|t| t.score).collect();
    let chosen: Vec<usize> = rank_descending(&approximate)
        .into_iter()
        .filter(|t| eligible.is_none_or(|e| e.contains(t)))
        .take(exact)
        .collect();
    for t in &chosen {
        totals[*t] = PositionTotal { score: 0.0, exact: true };
    }
    let cells: Vec<(HeadId, usize)> =
        ranked.iter().flat_map(|head| chosen.iter().map(move |&t| (head.id(), t))).collect();
    for (&(_, t), score) in cells.iter().zip(contributions(&lpi, &pass, &x_bases, &cells)?) {
        totals[t].score += score;
    }
    Ok((totals, ranked))
}

/// Query neurons of the value neurons `values` (see the module doc), the top `top`.
fn query_neurons<B: Backend>(
    model: &Model<B>,
    pass: &Pass,
    values: &[ValueNeuronScore],
    top: usize,
) -> Result<Vec<QueryNeuronScore>> {
    let c = model.config();
    let group = c.heads / c.kv_heads;
    // Each value neuron's key k and its normaliser ⟨x_l^t, k⟩.
    let value_row = |v: &ValueNeuronScore| (v.layer, (v.head / group) * c.head_dim + v.dim);
    let rows = weight_vectors(model, LayerWeight::Value, &values.iter().map(value_row).collect::<Vec<_>>())?;
    let mut keys = Vec::with_capacity(values.len());
    for v in values {
        let row = &rows[&value_row(v)];
        let key: Vec<f32> = row.iter().zip(model.attn_norm_weight(v.layer)).map(|(w, g)| w * g).collect();
        let denominator = dot(pass.at(HookPoint::ResidPre(v.layer), v.position), &key);
        keys.push((key, denominator));
    }
    let mut scores = std::collections::HashMap::<(usize, usize, usize), f32>::new();
    let deepest = values.iter().map(|v| v.layer).max().unwrap_or(0);
    let (mut using, mut stacked) = (Vec::new(), Vec::new());
    for shallow in 0..deepest {
        let keys_here: Vec<usize> =
            (0..values.len()).filter(|&k| values[k].layer > shallow && keys[k].1 != 0.0).collect();
        if keys_here.is_empty() {
            continue;
        }
        // Each key meets the shallow layer's output where that output entered the residual.
        let rows: Vec<f32> = keys_here
            .iter()
            .flat_map(|&k| {
                pass.through_post_norm(model, shallow, LayerWeight::Down, values[k].position, keys[k].0.clone())
            })
            .collect();
        using.push(keys_here);
        stacked.push((shallow, rows));
    }
    // ⟨W_down[:, i], k⟩ for every i and every key, a product per shallow layer.
    let per_layer = pull_through(model, LayerWeight::Down, &stacked)?;
    let mut coefficients = std::collections::HashMap::<(usize, usize), Vec<f32>>::new();
    for ((&(shallow, _), using), per_column) in stacked.iter().zip(&using).zip(&per_layer) {
        for (row, &k) in per_column.chunks(c.ffn_width).zip(using) {
            let v = &values[k];
            let m = match coefficients.entry((shallow, v.position)) {
                std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(coefficients_as_read(model, shallow, pass.at(HookPoint::MlpPost(shallow), v.position))?)
                }
            };
            for (i, (&m_i, &w_k)) in m.iter().zip(row).enumerate() {
                *scores.entry((shallow, i, v.position)).or_default() += m_i * w_k / keys[k].1 * v.score;
            }
        }
    }
    let mut out: Vec<QueryNeuronScore> = scores
        .into_iter()
        .map(|((layer, neuron, position), score)| QueryNeuronScore { layer, neuron, position, score })
        .collect();
    out.sort_by(|a, b| {
        b.score.total_cmp(&a.score).then((a.layer, a.neuron, a.position).cmp(&(b.layer, b.neuron, b.position)))
    });
    out.truncate(top);
    Ok(out)
}

/// The target's logit under the fixed-scale lens, split into the parts the residual stream
/// adds: `U(x_L)[w] = U(embed)[w] + Σ_{l,h} U(H_{l,h})[w] + Σ_{l,i} U(m_{l,i}·W_down[:, i])[w]`
/// (Llama layers have no output biases). Each part is `⟨g ⊙ W_U[w] / s, part⟩`.
#[derive(Clone, Debug, Serialize)]
pub struct LogitDecomposition {
    pub target: Target,
    pub embedding: f32,
    /// `[layers · heads]`.
    pub heads: Vec<f32>,
    /// `[layers · f]`.
    pub neurons: Vec<f32>,
    /// `U(x_L)[w]`, from the recorded final residual.
    pub lens_logit: f32,
    /// The model's own logit, whose kernel rounds its input to 8 bits when the unembedding
    /// is quantised: it differs from `lens_logit` by that rounding.
    pub model_logit: f32,
}

impl LogitDecomposition {
    pub fn parts_sum(&self) -> f64 {
        f64::from(self.embedding)
            + self.heads.iter().map(|&v| f64::from(v)).sum::<f64>()
            + self.neurons.iter().map(|&v| f64::from(v)).sum::<f64>()
    }
}

pub fn decompose_logit<B: Backend>(
    unembedding: &Unembedding<B>,
    tokenizer: &Tokenizer,
    ids: &[u32],
    target: Option<u32>,
) -> Result<LogitDecomposition> {
    let model = unembedding.model();
    let c = model.config();
    let pass = Pass::run(model, ids, &[])?;
    let target = pass.target(target, tokenizer)?;
    let s = pass.scale();
    let be = model.backend();
    let w_row = be.download(&be.embed(model.unembedding(), &[target.id])?)?.1;
    let direction: Vec<f32> = w_row.iter().zip(model.final_norm_weight()).map(|(w, g)| g * w / s).collect();
    let embedding = dot(&direction, pass.last(HookPoint::Embed));
    let heads = (0..c.layers)
        .flat_map(|l| {
            pass.last(HookPoint::AttnResult(l)).chunks(c.width).map(|h| dot(&direction, h)).collect::<Vec<_>>()
        })
        .collect();
    let toward: Vec<_> = (0..c.layers)
        .map(|l| (l, pass.through_post_norm(model, l, LayerWeight::Down, pass.len - 1, direction.clone())))
        .collect();
    let mut neurons = Vec::with_capacity(c.layers * c.ffn_width);
    for (l, per_column) in pull_through(model, LayerWeight::Down, &toward)?.into_iter().enumerate() {
        let m = coefficients_as_read(model, l, pass.last(HookPoint::MlpPost(l)))?;
        neurons.extend(m.iter().zip(per_column).map(|(m, w)| m * w));
    }
    let lens_logit = dot(&direction, pass.last(HookPoint::ResidPost(c.layers - 1)));
    let model_logit = pass.logits[target.id as usize];
    Ok(LogitDecomposition { target, embedding, heads, neurons, lens_logit, model_logit })
}
