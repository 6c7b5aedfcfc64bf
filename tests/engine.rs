//! The transformer on SmolLM2-135M: hook consistency, the KV cache, interventions and bad input
//! (its logits against llama.cpp's are tests/parity_llamacpp.rs).

use crate::common;

use glassbox::backend::candle::CandleBackend;
use glassbox::gguf::GgufFile;
use glassbox::hooks::{HookPoint, HookRequest, Intervention, Positions};
use glassbox::model::{Config, Model, ModelError};
use glassbox::tokenizer::Tokenizer;

const PROMPTS: [&str; 5] = [
    "The capital of France is",
    "def fibonacci(n):\n    if n < 2:\n        return n",
    "Once upon a time, in a small village,",
    "1, 2, 3, 4, 5,",
    "<|im_start|>user\nWhat is the boiling point of water?<|im_end|>\n<|im_start|>assistant\n",
];

struct Fixture {
    model: Model<CandleBackend>,
    tokenizer: Tokenizer,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let file = GgufFile::open(common::model_path(common::SMOLLM2)).unwrap();
        let config = Config::from_gguf(&file.header).unwrap();
        let tokenizer = Tokenizer::from_gguf(&file.header).unwrap();
        let model = Model::load(CandleBackend::cpu(), config, &file).unwrap();
        Fixture { model, tokenizer }
    })
}

fn ids(text: &str) -> Vec<u32> {
    fixture().tokenizer.encode(text, true, true).unwrap()
}

fn last_logits(ids: &[u32], hooks: &HookRequest, interventions: &[Intervention]) -> Vec<f32> {
    let model = &fixture().model;
    let mut cache = model.new_cache();
    model.forward(ids, &mut cache, hooks, interventions, &Positions::Last).unwrap().logits.data
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn residual_stream_is_the_sum_of_its_parts() {
    let model = &fixture().model;
    let layers = model.config().layers;
    let mut hooks = HookRequest::new()
        .with(HookPoint::Embed, Positions::All)
        .with(HookPoint::ResidPost(layers - 1), Positions::All);
    for l in 0..layers {
        hooks = hooks
            .with(HookPoint::AttnOut(l), Positions::All)
            .with(HookPoint::MlpOut(l), Positions::All)
            .with(HookPoint::AttnResult(l), Positions::Last);
    }
    let ids = ids(PROMPTS[0]);
    let mut cache = model.new_cache();
    let rec = model.forward(&ids, &mut cache, &hooks, &[], &Positions::Last).unwrap().recording;

    let mut sum = rec.get(HookPoint::Embed).unwrap().data.clone();
    for l in 0..layers {
        for point in [HookPoint::AttnOut(l), HookPoint::MlpOut(l)] {
            for (s, v) in sum.iter_mut().zip(&rec.get(point).unwrap().data) {
                *s += v;
            }
        }
    }
    let resid = &rec.get(HookPoint::ResidPost(layers - 1)).unwrap().data;
    let diff = max_abs_diff(&sum, resid);
    assert!(diff <= 1e-4, "resid_post vs embed + Σ attn_out + Σ mlp_out: {diff}");

    let width = model.config().width;
    let last = ids.len() - 1;
    for l in 0..layers {
        let result = rec.get(HookPoint::AttnResult(l)).unwrap();
        assert_eq!(result.shape, vec![1, model.config().heads, width]);
        let mut heads_sum = vec![0f32; width];
        for head in result.data.chunks(width) {
            for (s, v) in heads_sum.iter_mut().zip(head) {
                *s += v;
            }
        }
        let attn_out = rec.get(HookPoint::AttnOut(l)).unwrap().row(last);
        let diff = max_abs_diff(&heads_sum, attn_out);
        assert!(diff <= 1e-4, "layer {l}: Σ heads result vs attn_out: {diff}");
    }
}

/// A cache cloned to try two continuations: each writes its rows without touching the other's,
/// so each equals the same steps taken on a cache of its own, to the bit, and the original
/// continues as if the clone had never run.
#[test]
fn cloned_caches_continue_independently() {
    let model = &fixture().model;
    let none = HookRequest::new();
    let step = |cache: &mut glassbox::model::KvCache<CandleBackend>, ids: &[u32]| {
        model.forward(ids, cache, &none, &[], &Positions::Last).unwrap().logits.data
    };
    let prompt = ids(PROMPTS[0]);
    let (first, second, third) = (7042, 260, 30);
    let alone = |continuation: &[u32]| {
        let mut cache = model.new_cache();
        step(&mut cache, &prompt);
        continuation.iter().map(|&id| step(&mut cache, &[id])).last().unwrap()
    };
    let mut shared = model.new_cache();
    step(&mut shared, &prompt);
    let mut clone = shared.clone();
    let after_first = step(&mut shared, &[first]);
    let after_second = step(&mut clone, &[second]);
    let after_first_then_third = step(&mut shared, &[third]);
    assert_eq!(after_first, alone(&[first]));
    assert_eq!(after_second, alone(&[second]));
    assert_eq!(after_first_then_third, alone(&[first, third]));
}

#[test]
fn decoding_with_the_cache_matches_a_full_forward() {
    let model = &fixture().model;
    let ids = ids(PROMPTS[2]);
    let full = last_logits(&ids, &HookRequest::new(), &[]);
    let mut cache = model.new_cache();
    let (prefix, last) = ids.split_at(ids.len() - 1);
    model.forward(prefix, &mut cache, &HookRequest::new(), &[], &Positions::Last).unwrap();
    let step = model.forward(last, &mut cache, &HookRequest::new(), &[], &Positions::Last).unwrap();
    assert_eq!(cache.len(), ids.len());
    let diff = max_abs_diff(&full, &step.logits.data);
    assert!(diff <= 1e-3, "cached decode vs full forward: {diff}");
}

#[test]
fn attention_patterns_are_causal_distributions() {
    let model = &fixture().model;
    let ids = ids(PROMPTS[0]);
    let hooks = HookRequest::new().with(HookPoint::AttnPattern(3), Positions::All);
    let mut cache = model.new_cache();
    let rec = model.forward(&ids, &mut cache, &hooks, &[], &Positions::Last).unwrap().recording;
    let pattern = rec.get(HookPoint::AttnPattern(3)).unwrap();
    let (heads, t) = (model.config().heads, ids.len());
    assert_eq!(pattern.shape, vec![heads, t, t]);
    for row in pattern.data.chunks(t).enumerate() {
        let (index, probs) = row;
        let query = index % t;
        let total: f32 = probs.iter().sum();
        assert!((total - 1.0).abs() < 1e-5, "row sums to {total}");
        assert!(probs[query + 1..].iter().all(|&p| p == 0.0), "query {query} attends to the future");
    }
}

#[test]
fn interventions_change_exactly_what_they_should() {
    let ids = ids(PROMPTS[0]);
    let plain = last_logits(&ids, &HookRequest::new(), &[]);
    let identity = [
        Intervention::ScaleHead { layer: 4, head: 2, factor: 1.0 },
        Intervention::ScaleNeuron { layer: 7, neuron: 100, factor: 1.0 },
    ];
    assert_eq!(last_logits(&ids, &HookRequest::new(), &identity), plain);

    let ablated = last_logits(&ids, &HookRequest::new(), &[Intervention::ScaleHead { layer: 4, head: 2, factor: 0.0 }]);
    assert!(max_abs_diff(&ablated, &plain) > 1e-3, "ablating a head changed nothing");

    // Patching a residual with the value it already has is a no-op; with another value it is not.
    let model = &fixture().model;
    let hooks = HookRequest::new().with(HookPoint::ResidPre(5), Positions::All);
    let mut cache = model.new_cache();
    let rec = model.forward(&ids, &mut cache, &hooks, &[], &Positions::Last).unwrap().recording;
    let own = rec.get(HookPoint::ResidPre(5)).unwrap().row(2).to_vec();
    let patch = |values: Vec<f32>| [Intervention::PatchResidPre { layer: 5, position: 2, values }];
    let same = last_logits(&ids, &HookRequest::new(), &patch(own.clone()));
    assert!(max_abs_diff(&same, &plain) <= 1e-5);
    let other = last_logits(&ids, &HookRequest::new(), &patch(own.iter().map(|v| v * 3.0).collect()));
    assert!(max_abs_diff(&other, &plain) > 1e-3);
}

#[test]
fn bad_input_is_a_typed_error() {
    let model = &fixture().model;
    let none = HookRequest::new();
    let mut cache = model.new_cache();
    let run = |ids: &[u32], interventions: &[Intervention], cache: &mut _| {
        model.forward(ids, cache, &none, interventions, &Positions::Last).err().expect("must fail")
    };
    assert!(matches!(run(&[], &[], &mut cache), ModelError::EmptyPrompt));
    let too_long = vec![1u32; model.config().context_length + 1];
    match run(&too_long, &[], &mut cache) {
        ModelError::PromptTooLong { len, max } => assert_eq!((len, max), (8193, 8192)),
        other => panic!("{other}"),
    }
    assert!(matches!(run(&[49152], &[], &mut cache), ModelError::BadTokenId { id: 49152, .. }));
    let bad_head = [Intervention::ScaleHead { layer: 30, head: 0, factor: 0.0 }];
    assert!(matches!(run(&[1], &bad_head, &mut cache), ModelError::BadIntervention(_)));
    assert_eq!(cache.len(), 0, "failed calls must leave the cache untouched");
}

#[test]
fn continuation_scores_are_sums_of_next_token_log_probabilities() {
    let model = &fixture().model;
    let prompt = ids("The capital of France is");
    let candidates = vec![ids(" Paris"), ids(" the city of Lyon"), ids(" London")];
    let scores = glassbox::generate::score_continuations(model, &prompt, &candidates, &[]).unwrap();
    for (candidate, score) in candidates.iter().zip(&scores) {
        // Worked the long way: one full forward per prefix, summing log p of each next token.
        let mut expected = 0.0;
        for j in 0..candidate.len() {
            let context: Vec<u32> = prompt.iter().chain(&candidate[..j]).copied().collect();
            let logits = last_logits(&context, &HookRequest::new(), &[]);
            expected += glassbox::numeric::log_softmax(&logits)[candidate[j] as usize];
        }
        assert!((score - expected).abs() < 1e-3, "{candidate:?}: {score} vs {expected}");
    }
    assert!(scores[0] > scores[2], "Paris should beat London after 'The capital of France is'");
}

/// Serves the real file's tensors with one changed, for load-time errors.
struct Altered {
    file: GgufFile,
    tensors: Vec<glassbox::gguf::TensorInfo>,
}

impl glassbox::model::WeightSource for Altered {
    fn tensors(&self) -> &[glassbox::gguf::TensorInfo] {
        &self.tensors
    }
    fn read(&self, tensor: &glassbox::gguf::TensorInfo) -> glassbox::model::Result<Vec<u8>> {
        Ok(self.file.read_tensor(tensor)?)
    }
}

#[test]
fn broken_models_fail_to_load_with_the_reason() {
    let file = GgufFile::open(common::model_path(common::SMOLLM2)).unwrap();
    let mut header = file.header.clone();
    header.metadata.insert("general.architecture".into(), glassbox::gguf::Value::String("gpt9".into()));
    match Config::from_gguf(&header) {
        Err(ModelError::UnsupportedArchitecture { found, supported }) => {
            assert_eq!(found, "gpt9");
            assert!(supported.contains(&"llama") && supported.contains(&"qwen2") && supported.contains(&"mistral"));
        }
        other => panic!("{:?}", other.map(|_| ())),
    }

    let config = Config::from_gguf(&file.header).unwrap();
    let without = |name: &str| file.header.tensors.iter().filter(|t| t.name != name).cloned().collect();
    let missing = Altered {
        tensors: without("blk.7.ffn_up.weight"),
        file: GgufFile::open(common::model_path(common::SMOLLM2)).unwrap(),
    };
    match Model::load(CandleBackend::cpu(), config.clone(), &missing) {
        Err(ModelError::MissingTensor(name)) => assert_eq!(name, "blk.7.ffn_up.weight"),
        other => panic!("{:?}", other.map(|_| ())),
    }

    let mut tensors = file.header.tensors.clone();
    let q = tensors.iter_mut().find(|t| t.name == "blk.0.attn_q.weight").unwrap();
    q.shape = vec![576, 192];
    let wrong = Altered { tensors, file };
    match Model::load(CandleBackend::cpu(), config, &wrong) {
        Err(ModelError::WrongShape { name, expected, found }) => {
            assert_eq!(name, "blk.0.attn_q.weight");
            assert_eq!((expected, found), (vec![576, 576], vec![576, 192]));
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn the_final_norm_scale_is_the_rms_of_the_last_residual() {
    let model = &fixture().model;
    let layers = model.config().layers;
    let ids = ids(PROMPTS[1]);
    let hooks = HookRequest::new()
        .with(HookPoint::ResidPost(layers - 1), Positions::All)
        .with(HookPoint::LnFinalScale, Positions::All);
    let mut cache = model.new_cache();
    // Logits only at the last position; the scale is still recorded wherever it was asked for.
    let rec = model.forward(&ids, &mut cache, &hooks, &[], &Positions::Last).unwrap().recording;
    let scale = rec.get(HookPoint::LnFinalScale).unwrap();
    assert_eq!(scale.shape, vec![ids.len(), 1]);
    let resid = rec.get(HookPoint::ResidPost(layers - 1)).unwrap();
    let eps = model.config().norm_eps;
    for p in 0..ids.len() {
        let row = resid.row(p);
        let expected = (row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / row.len() as f64 + eps).sqrt();
        assert!((scale.data[p] as f64 - expected).abs() < 1e-4 * expected, "position {p}");
    }
}
