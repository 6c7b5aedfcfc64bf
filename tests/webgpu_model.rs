//! The whole model on the WebGPU backend (natively; lavapipe in `make test`) against the CPU
//! backend doing the same arithmetic: f32 weights, whose products round nothing, as the WGSL
//! matmul reads its input unrounded. On the first 8 of the 20 prompts of
//! scripts/parity-prompts.txt (tests/parity_llamacpp.rs takes all 20 on WebGPU to llama.cpp):
//! top-1, logits and the residual stream at every layer; the top-10 heads by LPI on two of them
//! (with the unembedding's products on the device, and on a software adapter also on the CPU).
//! Gemma 3 270M (K-quants, Q5_0, GeGLU, post-norms, windows) on the first four of those prompts,
//! without head rankings: its 262k-token unembedding makes each prompt cost seconds on lavapipe.
#![cfg(feature = "webgpu")]

use crate::common;

use glassbox::backend::candle::CandleBackend;
use glassbox::backend::webgpu::{GpuDevice, WebGpuBackend};
use glassbox::backend::Backend;
use glassbox::generate::{Sampler, Sampling};
use glassbox::gguf::GgufFile;
use glassbox::hooks::{HookPoint, HookRequest, Positions};
use glassbox::interp::attribution::{attribute, rank_heads, AttributionOptions, DEFAULT_GRAPH_EDGES};
use glassbox::interp::lens::{Lpi, Unembedding};
use glassbox::model::{Config, Model, Objective};

fn load<B: Backend>(file: &str, backend: B) -> Model<B> {
    let file = GgufFile::open(common::model_path(file)).unwrap();
    Model::load(backend, Config::from_gguf(&file.header).unwrap(), &file).unwrap()
}

fn tokenizer(file: &str) -> glassbox::tokenizer::Tokenizer {
    glassbox::tokenizer::Tokenizer::from_gguf(&GgufFile::open(common::model_path(file)).unwrap().header).unwrap()
}

/// `(‖have − want‖, ‖want‖)`.
fn difference_and_norm(have: &[f32], want: &[f32]) -> (f32, f32) {
    let diff = have.iter().zip(want).map(|(a, b)| (a - b).powi(2)).sum::<f32>().sqrt();
    (diff, want.iter().map(|v| v * v).sum::<f32>().sqrt())
}

/// Last-position logits and `resid_post` of every layer.
fn run<B: Backend>(model: &Model<B>, ids: &[u32]) -> (Vec<f32>, Vec<Vec<f32>>) {
    let layers = model.config().layers;
    let hooks = (0..layers).fold(HookRequest::new(), |h, l| h.with(HookPoint::ResidPost(l), Positions::Last));
    let out = model.forward(ids, &mut model.new_cache(), &hooks, &[], &Positions::Last).unwrap();
    let resid = (0..layers).map(|l| out.recording.get(HookPoint::ResidPost(l)).unwrap().data.clone()).collect();
    (out.logits.data, resid)
}

#[test]
fn smollm2_on_webgpu_matches_the_cpu() {
    on_webgpu_matches_the_cpu(common::SMOLLM2, 8, true);
}

#[test]
fn gemma3_on_webgpu_matches_the_cpu() {
    on_webgpu_matches_the_cpu(common::GEMMA3, 4, false);
}

fn on_webgpu_matches_the_cpu(file: &str, prompts_taken: usize, rank_heads_too: bool) {
    let gpu = pollster::block_on(GpuDevice::new()).expect("a wgpu adapter (install mesa-vulkan-drivers)");
    eprintln!("adapter: {}", gpu.description());
    let on_gpu = load(file, WebGpuBackend::new(gpu));
    let on_cpu = load(file, CandleBackend::with_float_weights(candle_core::Device::Cpu));
    let tokenizer = tokenizer(file);
    // The prompts of `compare-backends`; head rankings (an attribution each) on the first and fifth.
    let prompts = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/parity-prompts.txt")).unwrap();
    let prompts: Vec<&str> = prompts.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(prompts.len(), 20);
    for (i, prompt) in prompts.into_iter().take(prompts_taken).enumerate() {
        let ids = tokenizer.encode(prompt, true, false).unwrap();
        let (gpu_logits, gpu_resid) = run(&on_gpu, &ids);
        let (cpu_logits, cpu_resid) = run(&on_cpu, &ids);
        // f32 sums in another order through 30 layers: 1e-4 of the residual's norm, 1e-3 nats
        // (measured on lavapipe: 3e-6 and 7e-5).
        let mut worst = 0.0f32;
        for (l, (g, c)) in gpu_resid.iter().zip(&cpu_resid).enumerate() {
            let (diff, norm) = difference_and_norm(g, c);
            assert!(diff <= 1e-4 * norm, "{prompt:?} layer {l}: relative difference {}", diff / norm);
            worst = worst.max(diff / norm);
        }
        let max_logit = gpu_logits.iter().zip(&cpu_logits).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        eprintln!("{prompt:?}: resid_post relative difference ≤ {worst:.1e}, logits ≤ {max_logit:.1e}");
        assert!(max_logit <= 1e-3, "{prompt:?}: logits differ by up to {max_logit}");
        let top = |l: &[f32]| glassbox::numeric::argmax(l);
        assert_eq!(top(&gpu_logits), top(&cpu_logits), "{prompt:?}");
        if i % 4 != 0 || !rank_heads_too {
            continue;
        }
        let target = Some(top(&cpu_logits));
        let cpu_heads = rank_heads(&Unembedding::new(&on_cpu).unwrap(), &ids, target).unwrap();
        let key = |h: &glassbox::interp::attribution::HeadScore| (h.layer, h.head);
        // The unembedding's products on the device, and, on a software adapter, where users'
        // attributions run them: on the CPU kernels, fed by the device's forward pass.
        let mut placements = vec![("device", Unembedding::on_device(&on_gpu).unwrap())];
        if on_gpu.backend().emulated_on_cpu() {
            placements.push(("host", Unembedding::new(&on_gpu).unwrap()));
        }
        for (placement, unembedding) in &placements {
            let gpu_heads = rank_heads(unembedding, &ids, target).unwrap();
            assert_eq!(
                gpu_heads.iter().take(10).map(key).collect::<Vec<_>>(),
                cpu_heads.iter().take(10).map(key).collect::<Vec<_>>(),
                "{prompt:?}: top-10 heads, W_U's products on the {placement}"
            );
        }
    }
}

/// SmolLM2 on the WebGPU adapter, and on the CPU with f32 weights (the same arithmetic).
fn smollm2_on_webgpu_and_cpu() -> (Model<WebGpuBackend>, Model<CandleBackend>) {
    let gpu = pollster::block_on(GpuDevice::new()).expect("a wgpu adapter");
    let on_gpu = load(common::SMOLLM2, WebGpuBackend::new(gpu));
    (on_gpu, load(common::SMOLLM2, CandleBackend::with_float_weights(candle_core::Device::Cpu)))
}

/// A forward pass's hooks come back with its logits in one read-back, however many it records:
/// here 30 layers' residuals, head results (one product per head), patterns and MLP
/// activations, and the final norm's scale, 122 activations. Each matches the CPU's with f32
/// weights in shape and value, so the batch is split back into the right hooks.
#[test]
fn a_recorded_pass_is_one_read_back() {
    let (on_gpu, on_cpu) = smollm2_on_webgpu_and_cpu();
    let ids = [1, 504, 3575, 282, 4649, 314];
    let hooks = (0..on_gpu.config().layers)
        .fold(HookRequest::new().with(HookPoint::Embed, Positions::All), |h, l| {
            h.with(HookPoint::ResidPre(l), Positions::All)
                .with(HookPoint::AttnResult(l), Positions::Last)
                .with(HookPoint::AttnPattern(l), Positions::Only(vec![1, 4]))
                .with(HookPoint::MlpPost(l), Positions::Last)
        })
        .with(HookPoint::LnFinalScale, Positions::All);
    let before = on_gpu.backend().device_counts().unwrap();
    let got = on_gpu.forward(&ids, &mut on_gpu.new_cache(), &hooks, &[], &Positions::Last).unwrap();
    let spent = on_gpu.backend().device_counts().unwrap().since(&before);
    assert_eq!((spent.submits, spent.readbacks), (1, 1), "{spent:?}");
    let expected = on_cpu.forward(&ids, &mut on_cpu.new_cache(), &hooks, &[], &Positions::Last).unwrap();
    assert_eq!(got.recording.activations.len(), 122);
    assert_eq!(got.recording.activations.len(), expected.recording.activations.len());
    for (point, want) in &expected.recording.activations {
        let have = got.recording.get(*point).unwrap();
        assert_eq!((&have.positions, &have.shape), (&want.positions, &want.shape), "{point:?}");
        let (diff, norm) = difference_and_norm(&have.data, &want.data);
        assert!(diff <= 1e-4 * norm, "{point:?}: relative difference {}", diff / norm);
    }
    let top = glassbox::numeric::argmax;
    assert_eq!(top(&got.logits.data), top(&expected.logits.data));
}

/// What an attribution costs the device, counted: the attribution the Look inside panel runs
/// (layers, heads, 1,000 exact neurons, positions, value and query neurons, the graph's 1,000
/// edges) reads back a few times, not once per layer, neuron or head: its pass, a batch of
/// products per step, and the weight vectors it scores, 16 MiB a read-back. The unembedding's
/// products are placed as users get them (on a software adapter, the CPU kernels).
#[test]
fn an_attribution_reads_back_a_few_times() {
    let gpu = pollster::block_on(GpuDevice::new()).expect("a wgpu adapter");
    let model = load(common::SMOLLM2, WebGpuBackend::new(gpu));
    let tokenizer = tokenizer(common::SMOLLM2);
    let ids = tokenizer.encode("The capital of France is", true, false).unwrap();
    let unembedding = Unembedding::new(&model).unwrap();
    let options = AttributionOptions { graph_edges: Some(DEFAULT_GRAPH_EDGES), ..AttributionOptions::default() };
    let before = model.backend().device_counts().unwrap();
    let attribution = attribute(&unembedding, &tokenizer, &ids, &options).unwrap();
    let spent = model.backend().device_counts().unwrap().since(&before);
    assert_eq!(attribution.graph.map(|g| g.edges.len()), Some(DEFAULT_GRAPH_EDGES));
    assert_eq!(attribution.exact_neurons, options.exact_neurons);
    assert!(spent.readbacks <= 12, "{spent:?}");
}

/// The backward pass on WebGPU: the gradient of a logit difference at every layer's residuals
/// and heads matches the CPU's with f32 weights, and each layer reads back four times (its MLP's
/// forward values with the gradient through `down_proj`, the gradient through gate and up; its
/// attention's inputs and pattern with the gradient through `o_proj`, the gradient through q, k
/// and v), after the forward pass and the unembedding's.
#[test]
fn a_backward_pass_reads_back_four_times_a_layer() {
    let (on_gpu, on_cpu) = smollm2_on_webgpu_and_cpu();
    let ids = [1, 504, 3575, 282, 4649, 314];
    let objective = Objective::LogitDifference { answer: 7042, wrong: 2113 };
    let before = on_gpu.backend().device_counts().unwrap();
    let got = on_gpu.gradient(&ids, &[], objective, &HookRequest::new()).unwrap();
    let spent = on_gpu.backend().device_counts().unwrap().since(&before);
    let layers = on_gpu.config().layers as u64;
    assert_eq!(spent.readbacks, 2 + 4 * layers, "{spent:?}");
    let expected = on_cpu.gradient(&ids, &[], objective, &HookRequest::new()).unwrap();
    assert!((got.value - expected.value).abs() <= 1e-3, "{} against {}", got.value, expected.value);
    let points = (0..on_gpu.config().layers)
        .flat_map(|l| [HookPoint::ResidPre(l), HookPoint::ResidMid(l), HookPoint::ResidPost(l), HookPoint::AttnZ(l)])
        .chain([HookPoint::Embed]);
    for point in points {
        let (have, want) = (&got.of(point).unwrap().data, &expected.of(point).unwrap().data);
        assert_eq!(have.len(), want.len(), "{point:?}");
        let (diff, norm) = difference_and_norm(have, want);
        assert!(diff <= 1e-3 * norm, "{point:?}: relative difference {}", diff / norm);
    }
}

/// What a decoded token costs the device, counted: one submit and one read-back, and, once a
/// generation has run, no new buffers (the pool reuses them). Greedy decoding reads back the
/// best token, its logit and the row's log Σ exp (12 bytes); with a penalty and a no-repeat
/// rule, also the logits of the tokens they change, still in that one read-back.
#[test]
fn a_decoded_token_is_one_submit_and_one_read_back() {
    const STEPS: usize = 6;
    let gpu = pollster::block_on(GpuDevice::new()).expect("a wgpu adapter");
    let model = load(common::SMOLLM2, WebGpuBackend::new(gpu));
    let vocab = model.config().vocab_size;
    let counts = || model.backend().device_counts().unwrap();
    let decode = |sampling: &Sampling| {
        let mut sampler = Sampler::new(sampling.clone()).unwrap();
        let mut cache = model.new_cache();
        let mut context = vec![1, 504, 3575, 282];
        let mut logits = model.next_token_logits(&context, &mut cache, &[]).unwrap();
        let mut before = counts();
        for step in 0..=STEPS {
            if step == 1 {
                before = counts();
            }
            let next = sampler.pick(model.backend(), &logits, vocab, &context, step).unwrap();
            if step == STEPS {
                break;
            }
            context.push(next);
            logits = model.next_token_logits(&[next], &mut cache, &[]).unwrap();
        }
        counts().since(&before)
    };
    let greedy = Sampling::default();
    let penalised = Sampling { repetition_penalty: 1.3, no_repeat_ngram: 2, ..Sampling::default() };
    for sampling in [&greedy, &penalised] {
        let first = decode(sampling);
        let created = counts().buffers_created;
        let again = decode(sampling);
        assert_eq!(counts().buffers_created, created, "the second run created buffers");
        assert!(created > 0);
        for steps in [first, again] {
            assert_eq!(steps.submits, STEPS as u64, "{steps:?}");
            assert_eq!(steps.readbacks, STEPS as u64, "{steps:?}");
            if sampling == &greedy {
                assert_eq!(steps.readback_bytes, STEPS as u64 * 12, "{steps:?}");
            } else {
                // The context's distinct tokens, read as logits, and as many more of the top.
                assert!(steps.readback_bytes < STEPS as u64 * 4 * 64, "{steps:?}");
            }
        }
        assert_eq!(again.buffers_created, 0);
    }
}

/// Sampling on the device picks what sampling the whole row on the host picks, token for
/// token, under every rule that changes logits and with ties and a small top-k.
#[test]
fn device_sampling_picks_what_the_whole_row_picks() {
    let gpu = pollster::block_on(GpuDevice::new()).expect("a wgpu adapter");
    let model = load(common::SMOLLM2, WebGpuBackend::new(gpu));
    let vocab = model.config().vocab_size;
    for sampling in [
        Sampling { temperature: 0.0, repetition_penalty: 1.5, no_repeat_ngram: 2, ..Sampling::default() },
        Sampling { temperature: 0.9, top_k: 20, top_p: 0.9, repetition_penalty: 1.3, seed: 5, ..Sampling::default() },
        Sampling {
            temperature: 1.2,
            top_k: 8,
            no_repeat_ngram: 3,
            repetition_penalty: 0.8,
            seed: 9,
            ..Sampling::default()
        },
    ] {
        let (mut on_device, mut on_host) = (Sampler::new(sampling.clone()).unwrap(), Sampler::new(sampling).unwrap());
        let mut cache = model.new_cache();
        let mut context = vec![1, 504, 3575, 282, 4467, 314];
        let mut logits = model.next_token_logits(&context, &mut cache, &[]).unwrap();
        for step in 0..12 {
            let (_, row) = model.backend().download(&logits).unwrap();
            let expected = on_host.sample(&row, &context, step);
            assert_eq!(
                on_device.pick(model.backend(), &logits, vocab, &context, step).unwrap(),
                expected,
                "step {step}"
            );
            context.push(expected);
            logits = model.next_token_logits(&[expected], &mut cache, &[]).unwrap();
        }
    }
}

/// Gemma 3's 170 MiB Q8_0 embedding table (262k rows, also its output layer) on an adapter whose
/// bindings hold 64 MiB: three parts, and the same logits as in the adapter's own fewer parts
/// (two on lavapipe, whose bindings hold 128 MiB; one where they hold more).
#[test]
fn gemma3_embedding_split_over_bindings_computes_the_same() {
    const LIMIT: usize = 64 << 20;
    let whole = load(common::GEMMA3, WebGpuBackend::new(pollster::block_on(GpuDevice::new()).expect("a wgpu adapter")));
    let split = load(
        common::GEMMA3,
        WebGpuBackend::new(pollster::block_on(GpuDevice::new()).unwrap().with_binding_limit(LIMIT)),
    );
    assert_eq!(split.unembedding().parts(), 3);
    assert!(whole.unembedding().parts() < 3);
    // "The capital of France is" in Gemma 3's vocabulary, after BOS.
    let ids = [2, 818, 5279, 529, 7001, 563];
    assert_eq!(run(&whole, &ids).0, run(&split, &ids).0);
}

/// An adapter whose bindings hold 8 MiB: the 29 MiB embedding table (also the tied unembedding)
/// loads in 4 parts, and the model computes exactly what it computes in one.
#[test]
fn a_model_split_over_small_bindings_computes_the_same() {
    const LIMIT: usize = 8 << 20;
    let whole =
        load(common::SMOLLM2, WebGpuBackend::new(pollster::block_on(GpuDevice::new()).expect("a wgpu adapter")));
    let split = load(
        common::SMOLLM2,
        WebGpuBackend::new(pollster::block_on(GpuDevice::new()).unwrap().with_binding_limit(LIMIT)),
    );
    assert_eq!(split.unembedding().parts(), 4);
    assert_eq!(whole.unembedding().parts(), 1);
    let ids = [1, 504, 3575, 282, 4649, 314];
    let (whole_logits, whole_resid) = run(&whole, &ids);
    let (split_logits, _) = run(&split, &ids);
    // Each logit is the same row's dot product in the same order, whichever buffer holds the row.
    assert_eq!(whole_logits, split_logits);

    // Interpretability reads W_U dequantised to f32 (108 MiB, so 14 parts): projections are
    // again the same rows' products; gradients pull a vector back through every part and add
    // the parts' sums, so they differ by float summation order only.
    let last = whole_resid.last().unwrap();
    let (u_whole, u_split) = (Unembedding::on_device(&whole).unwrap(), Unembedding::on_device(&split).unwrap());
    assert_eq!(u_whole.project(last, &[1.0]).unwrap(), u_split.project(last, &[1.0]).unwrap());
    let target = glassbox::numeric::argmax(&whole_logits) as u32;
    let gradient = |u: &Unembedding<WebGpuBackend>| {
        let lpi = Lpi { unembedding: u, scale: 1.0, target };
        lpi.gradients(&lpi.bases(last).unwrap()).unwrap().remove(0)
    };
    let (g_whole, g_split) = (gradient(&u_whole), gradient(&u_split));
    let scale = g_whole.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = g_whole.iter().zip(&g_split).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 1e-5 * scale, "gradients differ by {worst} (scale {scale})");
}
