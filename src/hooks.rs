//! Typed hook points, named as in TransformerLens, and what a caller asks the forward pass to
//! record or change.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::safetensors::TensorView;

/// A place in the forward pass whose activation can be recorded.
///
/// Shapes, with `t` the recorded positions, `k` all key positions, `d` the model width, `H` heads,
/// `h` the head size and `f` the FFN width:
/// - `Embed`, `ResidPre`, `AttnOut`, `ResidMid`, `MlpOut`, `ResidPost`: `[t, d]` (`Embed` as the
///   residual stream starts: Gemma's embedding rows times √d);
/// - `AttnV`: `[t, KV, h]`, value vectors of each key-value head (query head `i` reads
///   KV head `i / (H / KV)`);
/// - `AttnPattern`: `[H, t, k]`, attention probabilities;
/// - `AttnZ`: `[t, H, h]`, each head's attention-weighted values before W_O;
/// - `AttnResult`: `[t, H, d]`, each head's output after W_O (its slice of o_proj); with a
///   post-attention norm, its share of `AttnOut` (the norm's divisor held fixed), so the heads
///   add up to `AttnOut` in either case;
/// - `MlpPre`: `[t, f]`, gate pre-activations `gate·x`;
/// - `MlpPost`: `[t, f]`, neuron coefficients `m = act(gate·x)·(up·x)`;
/// - `LnFinalScale`: `[t, 1]`, the final RMSNorm's `sqrt(mean(x²) + eps)`.
///
/// Models that normalise each sublayer's output before adding it to the residual (Gemma) have
/// four more per layer: `AttnOutPreNorm` and `MlpOutPreNorm` (`[t, d]`, the output before its
/// post-norm; `AttnOut` and `MlpOut` stay what joins the residual, as in TransformerLens), and
/// `AttnPostNormScale` and `MlpPostNormScale` (`[t, 1]`, TransformerLens's `ln1_post.hook_scale`
/// and `ln2_post.hook_scale`: the divisor of that norm).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookPoint {
    Embed,
    ResidPre(usize),
    AttnV(usize),
    AttnPattern(usize),
    AttnZ(usize),
    AttnResult(usize),
    AttnOutPreNorm(usize),
    AttnPostNormScale(usize),
    AttnOut(usize),
    ResidMid(usize),
    MlpPre(usize),
    MlpPost(usize),
    MlpOutPreNorm(usize),
    MlpPostNormScale(usize),
    MlpOut(usize),
    ResidPost(usize),
    LnFinalScale,
}

/// A per-layer hook's name and constructor.
type LayerHook = (&'static str, fn(usize) -> HookPoint);

const LAYER_HOOKS: &[LayerHook] = &[
    ("hook_resid_pre", HookPoint::ResidPre),
    ("attn.hook_v", HookPoint::AttnV),
    ("attn.hook_pattern", HookPoint::AttnPattern),
    ("attn.hook_z", HookPoint::AttnZ),
    ("attn.hook_result", HookPoint::AttnResult),
    ("hook_attn_out_pre_norm", HookPoint::AttnOutPreNorm),
    ("ln1_post.hook_scale", HookPoint::AttnPostNormScale),
    ("hook_attn_out", HookPoint::AttnOut),
    ("hook_resid_mid", HookPoint::ResidMid),
    ("mlp.hook_pre", HookPoint::MlpPre),
    ("mlp.hook_post", HookPoint::MlpPost),
    ("hook_mlp_out_pre_norm", HookPoint::MlpOutPreNorm),
    ("ln2_post.hook_scale", HookPoint::MlpPostNormScale),
    ("hook_mlp_out", HookPoint::MlpOut),
    ("hook_resid_post", HookPoint::ResidPost),
];

impl HookPoint {
    pub fn layer(self) -> Option<usize> {
        use HookPoint::*;
        match self {
            Embed | LnFinalScale => None,
            ResidPre(l) | AttnV(l) | AttnPattern(l) | AttnZ(l) | AttnResult(l) | AttnOutPreNorm(l)
            | AttnPostNormScale(l) | AttnOut(l) | ResidMid(l) | MlpPre(l) | MlpPost(l) | MlpOutPreNorm(l)
            | MlpPostNormScale(l) | MlpOut(l) | ResidPost(l) => Some(l),
        }
    }

    /// Whether the point exists only in models with post-norms.
    pub fn needs_post_norms(self) -> bool {
        use HookPoint::*;
        matches!(self, AttnOutPreNorm(_) | AttnPostNormScale(_) | MlpOutPreNorm(_) | MlpPostNormScale(_))
    }

    /// Every hook point of a model of `shape`, in forward order.
    pub fn all(shape: HookShape) -> Vec<HookPoint> {
        let mut points = vec![HookPoint::Embed];
        for l in 0..shape.layers {
            points.extend(layer_hooks(shape).map(|(_, make)| make(l)));
        }
        points.push(HookPoint::LnFinalScale);
        points
    }

    /// Parses a TransformerLens name such as `blocks.3.attn.hook_pattern`.
    pub fn parse(name: &str) -> Option<HookPoint> {
        match name {
            "hook_embed" => return Some(HookPoint::Embed),
            "ln_final.hook_scale" => return Some(HookPoint::LnFinalScale),
            _ => {}
        }
        let rest = name.strip_prefix("blocks.")?;
        let (layer, hook) = rest.split_once('.')?;
        let layer: usize = layer.parse().ok()?;
        LAYER_HOOKS.iter().find(|(n, _)| *n == hook).map(|(_, make)| make(layer))
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookPoint::Embed => f.write_str("hook_embed"),
            HookPoint::LnFinalScale => f.write_str("ln_final.hook_scale"),
            other => {
                let layer = other.layer().expect("layer hooks have a layer");
                let name = LAYER_HOOKS
                    .iter()
                    .find(|(_, make)| make(layer) == *other)
                    .map(|(n, _)| *n)
                    .expect("every layer hook is in LAYER_HOOKS");
                write!(f, "blocks.{layer}.{name}")
            }
        }
    }
}

impl Serialize for HookPoint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What decides which hook points a model has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookShape {
    pub layers: usize,
    /// The model normalises its sublayers' outputs (Gemma), so it has the post-norm hooks.
    pub post_norms: bool,
}

/// A hook request naming no hook.
#[derive(Debug, thiserror::Error)]
#[error(
    "no hook is named {pattern:?}: the names are hook_embed, blocks.L.NAME for L in 0..{} and NAME one of \
     {}, and ln_final.hook_scale; `*` matches any part (blocks.*.hook_resid_post)",
    shape.layers,
    layer_hook_names(*shape).join(", ")
)]
pub struct UnknownHook {
    pub pattern: String,
    pub shape: HookShape,
}

/// The per-layer hooks a model of `shape` has.
fn layer_hooks(shape: HookShape) -> impl Iterator<Item = &'static LayerHook> {
    LAYER_HOOKS.iter().filter(move |(_, make)| shape.post_norms || !make(0).needs_post_norms())
}

fn layer_hook_names(shape: HookShape) -> Vec<&'static str> {
    layer_hooks(shape).map(|(name, _)| *name).collect()
}

/// The largest recording made unless the caller sets another: a recording is held in memory
/// until it is written or handed over.
pub const DEFAULT_MAX_RECORDING_BYTES: u64 = 512 << 20;

/// The hook points that `spec` names in a model of `shape`: comma-separated TransformerLens
/// names in which `*` matches any run of characters (`blocks.*.hook_resid_post`, `blocks.3.*`),
/// in forward order and each once. A name that matches nothing is an error.
pub fn select_hooks(spec: &str, shape: HookShape) -> Result<Vec<HookPoint>, UnknownHook> {
    let all = HookPoint::all(shape);
    let mut chosen = std::collections::BTreeSet::new();
    for pattern in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let matching: Vec<HookPoint> =
            all.iter().copied().filter(|point| glob_matches(pattern, &point.to_string())).collect();
        if matching.is_empty() {
            return Err(UnknownHook { pattern: pattern.to_string(), shape });
        }
        chosen.extend(matching);
    }
    if chosen.is_empty() {
        return Err(UnknownHook { pattern: spec.to_string(), shape });
    }
    Ok(chosen.into_iter().collect())
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let Some((first, rest)) = pattern.split_once('*') else { return pattern == text };
    let Some(mut remaining) = text.strip_prefix(first) else { return false };
    let mut parts: Vec<&str> = rest.split('*').collect();
    let last = parts.pop().unwrap_or_default();
    for part in parts {
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

/// Which sequence positions a hook records. Recording only what is asked keeps memory bounded:
/// per-head results alone are heads × width per position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Positions {
    All,
    Last,
    Only(Vec<usize>),
}

impl Positions {
    /// `all`, `last`, or comma-separated positions (`0,3,5`).
    pub fn parse(text: &str) -> Result<Positions, String> {
        match text.trim() {
            "all" => Ok(Positions::All),
            "last" => Ok(Positions::Last),
            list => list
                .split(',')
                .map(|p| p.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .map(Positions::Only)
                .map_err(|_| format!("positions {text:?}: expected all, last, or positions such as 0,3,5")),
        }
    }

    /// The recorded positions among `0..len`, in order; out-of-range ones are dropped.
    pub fn resolve(&self, len: usize) -> Vec<usize> {
        match self {
            Positions::All => (0..len).collect(),
            Positions::Last => len.checked_sub(1).into_iter().collect(),
            Positions::Only(list) => list.iter().copied().filter(|&p| p < len).collect(),
        }
    }
}

/// The hooks a forward pass records, each at its own positions.
///
/// ```
/// use glassbox::hooks::{HookPoint, HookRequest, Positions};
///
/// let request = HookRequest::new()
///     .with(HookPoint::parse("blocks.5.attn.hook_pattern").unwrap(), Positions::Last)
///     .with(HookPoint::ResidPost(29), Positions::Only(vec![0, 3]));
/// assert_eq!(request.positions(HookPoint::AttnPattern(5)), Some(&Positions::Last));
/// // Positions resolve against the prompt's length; those past its end are dropped.
/// assert_eq!(request.positions(HookPoint::ResidPost(29)).unwrap().resolve(3), vec![0]);
/// assert_eq!(request.positions(HookPoint::Embed), None);
/// ```
#[derive(Clone, Debug, Default)]
pub struct HookRequest {
    points: BTreeMap<HookPoint, Positions>,
}

impl HookRequest {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, point: HookPoint, positions: Positions) -> Self {
        self.points.insert(point, positions);
        self
    }

    pub fn positions(&self, point: HookPoint) -> Option<&Positions> {
        self.points.get(&point)
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn points(&self) -> impl Iterator<Item = (&HookPoint, &Positions)> {
        self.points.iter()
    }
}

/// A recorded activation, copied to the host.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Activation {
    /// The sequence positions recorded, which index the first axis (`AttnPattern`: the second).
    pub positions: Vec<usize>,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Activation {
    /// Row `i` of the first axis, for `[t, …]` shaped activations.
    pub fn row(&self, i: usize) -> &[f32] {
        let width: usize = self.shape[1..].iter().product();
        &self.data[i * width..(i + 1) * width]
    }
}

/// Everything a forward pass recorded.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Recording {
    pub activations: BTreeMap<HookPoint, Activation>,
}

impl Recording {
    pub fn get(&self, point: HookPoint) -> Option<&Activation> {
        self.activations.get(&point)
    }

    /// The recording as a safetensors file: one little-endian F32 tensor per hook, named by the
    /// hook and shaped as [`HookPoint`] documents, with each hook's recorded positions in the
    /// metadata (`positions.<hook>`: `0,3,5`), so that `safetensors`, NumPy or PyTorch read it
    /// without glassbox.
    pub fn to_safetensors(&self) -> Vec<u8> {
        let names: Vec<String> = self.activations.keys().map(HookPoint::to_string).collect();
        let tensors: Vec<TensorView> = names
            .iter()
            .zip(self.activations.values())
            .map(|(name, a)| TensorView { name, shape: &a.shape, data: &a.data })
            .collect();
        let metadata = self
            .activations
            .iter()
            .map(|(point, a)| {
                let positions: Vec<String> = a.positions.iter().map(usize::to_string).collect();
                (format!("positions.{point}"), positions.join(","))
            })
            .collect();
        crate::safetensors::write(&tensors, &metadata)
    }
}

/// A change made inside the forward pass.
#[derive(Clone, Debug, PartialEq)]
pub enum Intervention {
    /// Multiply head `head`'s output in `layer` by `factor` (0 ablates it), at every position.
    ScaleHead { layer: usize, head: usize, factor: f32 },
    /// Multiply FFN neuron `neuron`'s coefficient m in `layer` by `factor`, at every position.
    ScaleNeuron { layer: usize, neuron: usize, factor: f32 },
    /// Replace the residual entering `layer` at `position` (activation patching).
    PatchResidPre { layer: usize, position: usize, values: Vec<f32> },
    /// Replace the attention output of `layer` at `position` (`blocks.L.hook_attn_out`).
    PatchAttnOut { layer: usize, position: usize, values: Vec<f32> },
    /// Replace the MLP output of `layer` at `position` (`blocks.L.hook_mlp_out`).
    PatchMlpOut { layer: usize, position: usize, values: Vec<f32> },
    /// Replace head `head`'s attention-weighted values in `layer` at `position` (its slice of
    /// `blocks.L.attn.hook_z`, before W_O), so its output there is the patched one.
    PatchHeadZ { layer: usize, head: usize, position: usize, values: Vec<f32> },
    /// Add `coefficient · vector` to the residual leaving `layer` (`blocks.L.hook_resid_post`)
    /// at every position (activation steering).
    Steer { layer: usize, vector: Vec<f32>, coefficient: f32 },
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA: HookShape = HookShape { layers: 3, post_norms: false };
    const GEMMA: HookShape = HookShape { layers: 3, post_norms: true };

    #[test]
    fn names_round_trip_in_transformer_lens_form() {
        for point in HookPoint::all(GEMMA) {
            assert_eq!(HookPoint::parse(&point.to_string()), Some(point));
        }
        assert_eq!(HookPoint::AttnPattern(7).to_string(), "blocks.7.attn.hook_pattern");
        assert_eq!(HookPoint::MlpPost(0).to_string(), "blocks.0.mlp.hook_post");
        assert_eq!(HookPoint::parse("blocks.x.hook_resid_pre"), None);
        assert_eq!(HookPoint::parse("blocks.2.hook_nothing"), None);
        assert_eq!(HookPoint::all(HookShape { layers: 2, post_norms: false }).len(), 2 + 2 * 11);
        assert_eq!(HookPoint::all(HookShape { layers: 2, post_norms: true }).len(), 2 + 2 * 15);
        assert_eq!(HookPoint::AttnPostNormScale(4).to_string(), "blocks.4.ln1_post.hook_scale");
    }

    #[test]
    fn hook_globs_select_in_forward_order_and_unknown_names_are_refused() {
        let names = |spec: &str| -> Vec<String> {
            select_hooks(spec, LLAMA).unwrap().iter().map(HookPoint::to_string).collect()
        };
        assert_eq!(
            names("blocks.*.hook_resid_post, hook_embed"),
            ["hook_embed", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "blocks.2.hook_resid_post"]
        );
        // attn.hook_v, attn.hook_pattern, attn.hook_z, attn.hook_result (hook_attn_out is not
        // under attn.).
        assert_eq!(names("blocks.1.attn.*").len(), 4);
        assert_eq!(names("*").len(), 2 + 3 * 11);
        assert_eq!(names("blocks.2.hook_mlp_out,blocks.2.hook_mlp_out"), ["blocks.2.hook_mlp_out"]);
        assert_eq!(names("*scale"), ["ln_final.hook_scale"]);
        for bad in
            ["blocks.3.hook_resid_post", "blocks.*.hook_nothing", "", "resid_post", "blocks.0.ln1_post.hook_scale"]
        {
            let error = select_hooks(bad, LLAMA).unwrap_err();
            assert!(error.to_string().contains("hook_resid_post"), "{error}");
            let listed = error.to_string().split_once("NAME one of").map(|(_, list)| list.to_string()).unwrap();
            assert!(!listed.contains("ln1_post"), "{error}");
        }
        let scales = select_hooks("blocks.0.*_post.hook_scale", GEMMA).unwrap();
        assert_eq!(scales, [HookPoint::AttnPostNormScale(0), HookPoint::MlpPostNormScale(0)]);
        assert!(select_hooks("x", GEMMA).unwrap_err().to_string().contains("ln2_post.hook_scale"));
    }

    #[test]
    fn positions_resolve_within_the_sequence() {
        assert_eq!(Positions::Last.resolve(5), vec![4]);
        assert_eq!(Positions::Last.resolve(0), Vec::<usize>::new());
        assert_eq!(Positions::All.resolve(3), vec![0, 1, 2]);
        assert_eq!(Positions::Only(vec![0, 9, 2]).resolve(3), vec![0, 2]);
        assert_eq!(Positions::parse("last"), Ok(Positions::Last));
        assert_eq!(Positions::parse(" 0, 3,5"), Ok(Positions::Only(vec![0, 3, 5])));
        assert!(Positions::parse("first").is_err() && Positions::parse("1,,2").is_err());
    }
}
