//! The backward pass against central finite differences of the forward pass, on every
//! architecture's tiny model (scripts/make_fixtures.py), with weights in f32 so that the forward
//! pass is a smooth function of its activations. Each check perturbs a whole activation (every
//! position) along a fixed pseudo-random direction `u`, by patching it with `a ± εu`, and compares
//! `(f(a + εu) − f(a − εu)) / 2ε` with `Σ ∂f/∂a ⊙ u`.

use candle_core::Device;
use glassbox::backend::candle::CandleBackend;
use glassbox::gguf::GgufFile;
use glassbox::hooks::{HookPoint, HookRequest, Intervention, Positions};
use glassbox::model::{Config, Model, Objective};
use glassbox::numeric::pseudo_random;

/// The prompt of the architecture tests (tiny-logits.json): longer than Gemma's window of 3.
const IDS: [u32; 9] = [3, 17, 42, 99, 5, 64, 127, 0, 88];

fn float_model(name: &str) -> Model<CandleBackend> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("{name}.gguf"));
    let file = GgufFile::open(path).unwrap();
    let backend = CandleBackend::with_float_weights(Device::Cpu);
    Model::load(backend, Config::from_gguf(&file.header).unwrap(), &file).unwrap()
}

/// The objective's value with `point`'s activation (as `recorded`, `[t, width]` row-major)
/// replaced by `recorded + step · u`, on top of `interventions`.
fn shifted_value(
    model: &Model<CandleBackend>,
    objective: Objective,
    interventions: &[Intervention],
    point: HookPoint,
    recorded: &[f32],
    u: &[f32],
    step: f32,
) -> f32 {
    let c = model.config();
    let width = recorded.len() / IDS.len();
    let mut patched = interventions.to_vec();
    for position in 0..IDS.len() {
        let row: Vec<f32> =
            (0..width).map(|i| recorded[position * width + i] + step * u[position * width + i]).collect();
        match point {
            HookPoint::ResidPre(layer) => patched.push(Intervention::PatchResidPre { layer, position, values: row }),
            HookPoint::AttnOut(layer) => patched.push(Intervention::PatchAttnOut { layer, position, values: row }),
            HookPoint::MlpOut(layer) => patched.push(Intervention::PatchMlpOut { layer, position, values: row }),
            HookPoint::AttnZ(layer) => {
                for head in 0..c.heads {
                    let values = row[head * c.head_dim..(head + 1) * c.head_dim].to_vec();
                    patched.push(Intervention::PatchHeadZ { layer, head, position, values });
                }
            }
            other => panic!("{other} is not patched here"),
        }
    }
    let forward = model.forward(&IDS, &mut model.new_cache(), &HookRequest::new(), &patched, &Positions::Last).unwrap();
    objective.value(&forward.logits.data)
}

/// Checks the gradient at each of `points` along a random direction; returns the largest
/// relative error.
fn check(name: &str, objective: Objective, interventions: &[Intervention], points: &[HookPoint]) -> f32 {
    let model = float_model(name);
    let hooks = points.iter().fold(HookRequest::new(), |h, &p| h.with(p, Positions::All));
    let gradients = model.gradient(&IDS, interventions, objective, &hooks).unwrap();
    let mut worst = 0f32;
    for (i, &point) in points.iter().enumerate() {
        let recorded = &gradients.activations.get(point).unwrap().data;
        let gradient = &gradients.of(point).unwrap().data;
        assert_eq!(gradient.len(), recorded.len(), "{name} {point}");
        let u = pseudo_random(recorded.len(), 7 + i as u64);
        let analytic: f64 = gradient.iter().zip(&u).map(|(g, u)| f64::from(*g) * f64::from(*u)).sum();
        // Richardson's extrapolation of two central differences cancels their h² terms.
        let central = |step: f32| {
            let plus = shifted_value(&model, objective, interventions, point, recorded, &u, step);
            let minus = shifted_value(&model, objective, interventions, point, recorded, &u, -step);
            f64::from(plus - minus) / (2.0 * f64::from(step))
        };
        // A step in proportion to the activation: float noise is relative to its size.
        let rms = (recorded.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>() / recorded.len() as f64).sqrt();
        let h = STEP * rms as f32;
        let numeric = (4.0 * central(h / 2.0) - central(h)) / 3.0;
        // Against a random direction's typical derivative, ‖∂f/∂a‖/√3 (u uniform in [-1, 1)), as
        // well: one that happens to be near zero leaves only float noise to compare.
        let typical = gradient.iter().map(|g| f64::from(*g).powi(2)).sum::<f64>().sqrt() / 3f64.sqrt();
        let error = ((analytic - numeric).abs() / numeric.abs().max(typical)) as f32;
        println!("{name} {point}: analytic {analytic:.6} numeric {numeric:.6} relative error {error:.2e}");
        worst = worst.max(error);
    }
    worst
}

fn every_site(layers: usize) -> Vec<HookPoint> {
    (0..layers)
        .flat_map(|l| [HookPoint::ResidPre(l), HookPoint::AttnZ(l), HookPoint::AttnOut(l), HookPoint::MlpOut(l)])
        .collect()
}

/// The step of the finite differences, as a fraction of the activation's root mean square.
const STEP: f32 = 5e-2;
const TOLERANCE: f32 = 1e-3;

#[test]
fn gradients_match_finite_differences_on_every_architecture() {
    let objective = Objective::LogitDifference { answer: 5, wrong: 77 };
    for (name, layers) in [
        ("qwen2-tiny-f32", 2),
        ("llama3-tiny-q8_0", 2),
        ("mistral-tiny-f16", 2),
        ("qwen3-tiny-f32", 2),
        ("phi3-tiny-f16", 2),
        ("gemma3-tiny-f32", 6),
    ] {
        let error = check(name, objective, &[], &every_site(layers));
        assert!(error < TOLERANCE, "{name}: relative error {error:.2e}");
    }
}

#[test]
fn a_log_probability_differentiates_through_the_softmax() {
    let error = check("qwen3-tiny-f32", Objective::LogProb(42), &[], &[HookPoint::ResidPre(0), HookPoint::MlpOut(1)]);
    assert!(error < TOLERANCE, "relative error {error:.2e}");
}

#[test]
fn interventions_are_differentiated_as_they_act() {
    let model = float_model("llama3-tiny-q8_0");
    let (width, head_dim) = (model.config().width, model.config().head_dim);
    let interventions = vec![
        Intervention::ScaleHead { layer: 0, head: 1, factor: 0.0 },
        Intervention::ScaleHead { layer: 1, head: 2, factor: 2.5 },
        Intervention::ScaleNeuron { layer: 0, neuron: 3, factor: -1.5 },
        Intervention::Steer { layer: 0, vector: pseudo_random(width, 3), coefficient: 0.5 },
        Intervention::PatchResidPre { layer: 1, position: 4, values: pseudo_random(width, 4) },
        Intervention::PatchAttnOut { layer: 0, position: 2, values: pseudo_random(width, 5) },
        Intervention::PatchMlpOut { layer: 1, position: 6, values: pseudo_random(width, 6) },
        Intervention::PatchHeadZ { layer: 0, head: 0, position: 3, values: pseudo_random(head_dim, 7) },
    ];
    let error = check("llama3-tiny-q8_0", Objective::Logit(9), &interventions, &every_site(2));
    assert!(error < TOLERANCE, "relative error {error:.2e}");

    // A patched residual row is a constant: what layer 0 wrote there gets no gradient, while the
    // patched value does.
    let gradients = model.gradient(&IDS, &interventions, Objective::Logit(9), &HookRequest::new()).unwrap();
    let at = |point: HookPoint, row: usize| gradients.of(point).unwrap().row(row).to_vec();
    assert!(at(HookPoint::ResidPost(0), 4).iter().all(|&g| g == 0.0));
    assert!(at(HookPoint::ResidPre(1), 4).iter().any(|&g| g != 0.0));
    assert!(at(HookPoint::ResidPost(0), 5).iter().any(|&g| g != 0.0));
}

/// Integrated gradients' scores add up to `f(e) − f(b)` (completeness) up to the quadrature's
/// error, which falls as the points grow (these random models' log-probabilities swing by tens
/// along the path, so it takes many): from the zero embedding on the models without post-norms,
/// from a token's embedding on all. Gradient × input's scores add up to `d/dα f(αe)` at α = 1, a
/// derivative taken here by finite differences of the forward pass.
#[test]
fn integrated_gradients_are_complete_and_gradient_times_input_is_the_derivative_along_the_input() {
    use glassbox::interp::input_attribution::{input_attribution, InputMethod};
    let target = 42;
    let relative_gaps = |model: &Model<CandleBackend>, baseline: Option<u32>| {
        // From zero the points go to every decade of α, so it takes more of them.
        let most = if baseline.is_none() { 1024 } else { 128 };
        [16, most].map(|steps| {
            let method = InputMethod::IntegratedGradients { steps, baseline };
            let ig = input_attribution(model, &IDS, target, method, &mut |_, _| true).unwrap();
            let difference = ig.value - ig.baseline_value.unwrap();
            let gap = ig.completeness_gap.unwrap();
            let sum: f32 = ig.scores.iter().sum();
            assert!((sum - difference - gap).abs() < 1e-4 * difference.abs().max(1.0));
            println!("{steps} points from {baseline:?}: f(e) − f(b) = {difference:.5}, gap {gap:.2e}");
            (gap / difference).abs()
        })
    };
    for (name, zero_baseline) in [("qwen3-tiny-f32", true), ("qwen2-tiny-f32", true), ("gemma3-tiny-f32", false)] {
        println!("{name}");
        let model = float_model(name);
        let baselines = if zero_baseline { vec![None, Some(7)] } else { vec![Some(7)] };
        for baseline in baselines {
            let gaps = relative_gaps(&model, baseline);
            assert!(gaps[1] < 1e-4, "{name} from {baseline:?}: relative gaps {gaps:?}");
        }

        let gxi = input_attribution(&model, &IDS, target, InputMethod::GradientTimesInput, &mut |_, _| true).unwrap();
        let hooks = HookRequest::new().with(HookPoint::Embed, Positions::All);
        let embed = model.forward(&IDS, &mut model.new_cache(), &hooks, &[], &Positions::Last).unwrap().recording;
        let e = &embed.get(HookPoint::Embed).unwrap().data;
        let width = e.len() / IDS.len();
        let at = |alpha: f32| {
            let patches: Vec<Intervention> = e
                .chunks(width)
                .enumerate()
                .map(|(position, row)| Intervention::PatchResidPre {
                    layer: 0,
                    position,
                    values: row.iter().map(|v| alpha * v).collect(),
                })
                .collect();
            let logits = model
                .forward(&IDS, &mut model.new_cache(), &HookRequest::new(), &patches, &Positions::Last)
                .unwrap()
                .logits
                .data;
            f64::from(Objective::LogProb(target).value(&logits))
        };
        let central = |h: f32| (at(1.0 + h) - at(1.0 - h)) / (2.0 * f64::from(h));
        let numeric = (4.0 * central(STEP / 2.0) - central(STEP)) / 3.0;
        let analytic: f64 = gxi.scores.iter().map(|&s| f64::from(s)).sum();
        println!("{name}: Σ gradient × input {analytic:.6}, d/dα f(αe) {numeric:.6}");
        assert!((analytic - numeric).abs() < f64::from(TOLERANCE) * numeric.abs().max(1e-2), "{name}");
    }
}

/// A backward pass keeps every layer's residuals and gradients: a prompt for which they would
/// pass the working-memory budget is refused before anything runs, as is one past the context.
#[test]
fn a_backward_pass_too_large_for_memory_is_refused_up_front() {
    use glassbox::model::ModelError;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let file = GgufFile::open(path).unwrap();
    let model = Model::load(CandleBackend::cpu(), Config::from_gguf(&file.header).unwrap(), &file).unwrap();
    let context = model.config().context_length;
    let long = vec![42u32; 8000.min(context)];
    let refused = model.gradient(&long, &[], Objective::Logit(5), &HookRequest::new());
    assert!(matches!(refused, Err(ModelError::OverMemoryBudget { positions: 8000, .. })), "{:?}", refused.err());
    let past = vec![42u32; context + 1];
    let refused = model.gradient(&past, &[], Objective::Logit(5), &HookRequest::new());
    assert!(matches!(refused, Err(ModelError::PromptTooLong { .. })), "{:?}", refused.err());
}
