//! The benchmark commands (feature `lab`): `glassbox bench`, prefill and decode speed and peak
//! memory measured the way shared/peers/llamacpp_bench.py measures llama.cpp, so the two can sit
//! in one table; `bench-attribution`; `bench-kernels`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use glassbox::backend::kernels::Isa;
use glassbox::backend::{Backend, DeviceCounts, Heads};
use glassbox::generate::{Sampler, Sampling};
use glassbox::hooks::{HookRequest, Positions};
use glassbox::lab::bench::{BenchReport, DECODE_STEPS, REPETITIONS};
use glassbox::model::Model;
use glassbox::with_model;
use serde_json::json;

use super::compute::Loader;
use super::{text_err, TokenizerArg, Written};

#[derive(Args)]
pub struct BenchArgs {
    model: PathBuf,
    /// Text whose tokens are prefilled before the timed decode steps.
    #[arg(long)]
    short: PathBuf,
    /// Text prefilled in one timed batch.
    #[arg(long)]
    long: PathBuf,
}

/// Prints the [`BenchReport`] as JSON, with the backend it ran on.
pub fn bench(out: &mut impl Write, loader: &Loader, args: &BenchArgs) -> Written {
    let start = Instant::now();
    let any = loader.load(&args.model, &TokenizerArg { tokenizer: None })?;
    with_model!(any, loaded => {
        let load_s = start.elapsed().as_secs_f64();
        let read = |path: &Path| std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()));
        // Tokenised as the llama.cpp harness does: BOS where the model asks, no special tokens.
        let short = loaded.tokenizer.encode(read(&args.short)?.trim(), true, false).map_err(text_err)?;
        let long = loaded.tokenizer.encode(read(&args.long)?.trim(), true, false).map_err(text_err)?;
        let (report, per_token) = run(&loaded.model, loader.kernel_threads(), load_s, &short, &long)?;
        let mut report = serde_json::to_value(&report).map_err(text_err)?;
        if let Some(counts) = per_token {
            report["per_token"] = counts.per(DECODE_STEPS as u64);
        }
        let backend = loader.backend_name()?;
        if backend == "cpu" {
            report["kernel"] = json!(Isa::detected().name());
        }
        report["backend"] = json!(backend);
        Ok(writeln!(out, "{report}"))
    })
}

#[derive(Args)]
pub struct BenchAttributionArgs {
    model: PathBuf,
    #[arg(long)]
    prompt: String,
}

pub fn bench_attribution(out: &mut impl Write, loader: &Loader, args: &BenchAttributionArgs) -> Written {
    let any = loader.load(&args.model, &TokenizerArg { tokenizer: None })?;
    with_model!(any, loaded => {
        let ids = loaded.tokenizer.encode(&args.prompt, true, false).map_err(text_err)?;
        let unembedding = glassbox::interp::lens::Unembedding::new(&loaded.model).map_err(text_err)?;
        Ok(writeln!(out, "{}", attribution(&unembedding, &loaded.tokenizer, &ids)?))
    })
}

/// Prefills `short`, then takes [`DECODE_STEPS`] greedy single-token steps, each token picked
/// as generation picks it; returns tokens/s of the steps alone, and the device work they did
/// where the backend counts it.
fn decode_once<B: Backend>(model: &Model<B>, short: &[u32]) -> Result<(f64, Option<DeviceCounts>), String> {
    let mut greedy = Sampler::new(Sampling::default()).map_err(|e| e.to_string())?;
    let vocab = model.config().vocab_size;
    let mut cache = model.new_cache();
    let logits = model.next_token_logits(short, &mut cache, &[]).map_err(|e| e.to_string())?;
    let mut next = greedy.pick(model.backend(), &logits, vocab, short, 0).map_err(|e| e.to_string())?;
    let before = model.backend().device_counts();
    let start = Instant::now();
    for _ in 0..DECODE_STEPS {
        let logits = model.next_token_logits(&[next], &mut cache, &[]).map_err(|e| e.to_string())?;
        next = greedy.pick(model.backend(), &logits, vocab, &[], 0).map_err(|e| e.to_string())?;
    }
    let speed = DECODE_STEPS as f64 / start.elapsed().as_secs_f64();
    let counts = model.backend().device_counts().zip(before).map(|(after, before)| after.since(&before));
    Ok((speed, counts))
}

fn prefill_once<B: Backend>(model: &Model<B>, long: &[u32]) -> Result<f64, String> {
    let mut cache = model.new_cache();
    let start = Instant::now();
    model.forward(long, &mut cache, &HookRequest::new(), &[], &Positions::Last).map_err(|e| e.to_string())?;
    Ok(long.len() as f64 / start.elapsed().as_secs_f64())
}

fn run<B: Backend>(
    model: &Model<B>,
    threads: usize,
    load_s: f64,
    short: &[u32],
    long: &[u32],
) -> Result<(BenchReport, Option<DeviceCounts>), String> {
    decode_once(model, short)?; // warm-up, as the llama.cpp harness does
    let runs: Vec<(f64, Option<DeviceCounts>)> =
        (0..REPETITIONS).map(|_| decode_once(model, short)).collect::<Result<_, _>>()?;
    let per_token = runs.last().and_then(|(_, counts)| *counts);
    let decode = runs.into_iter().map(|(speed, _)| speed).collect();
    let prefill: Vec<f64> = (0..REPETITIONS).map(|_| prefill_once(model, long)).collect::<Result<_, _>>()?;
    Ok((BenchReport::new(threads, load_s, short.len(), long.len(), decode, prefill), per_token))
}

/// `glassbox bench-attribution`: the cost of attribution in plain forward passes of the same
/// prompt, each timing the best of [`REPETITIONS`] (one run for the slow scan and exact-all).
fn attribution<B: Backend>(
    unembedding: &glassbox::interp::lens::Unembedding<B>,
    tokenizer: &glassbox::tokenizer::Tokenizer,
    ids: &[u32],
) -> Result<serde_json::Value, String> {
    use glassbox::interp::ablation::head_ablation_scan;
    use glassbox::interp::attribution::{attribute, rank_heads, AttributionOptions, DEFAULT_GRAPH_EDGES};
    let model = unembedding.model();
    let text = |e: glassbox::interp::InterpError| e.to_string();
    let best = |f: &mut dyn FnMut() -> Result<(), String>| -> Result<f64, String> {
        let mut times = Vec::new();
        for _ in 0..REPETITIONS {
            let start = Instant::now();
            f()?;
            times.push(start.elapsed().as_secs_f64());
        }
        Ok(times.into_iter().fold(f64::INFINITY, f64::min))
    };
    let once = |f: &mut dyn FnMut() -> Result<(), String>| -> Result<f64, String> {
        let start = Instant::now();
        f()?;
        Ok(start.elapsed().as_secs_f64())
    };
    let forward_s = best(&mut || {
        let mut cache = model.new_cache();
        model.forward(ids, &mut cache, &HookRequest::new(), &[], &Positions::Last).map(drop).map_err(|e| e.to_string())
    })?;
    let target = glassbox::interp::ablation::top_token(model, ids).map_err(text)?;
    let heads_s = best(&mut || rank_heads(unembedding, ids, Some(target)).map(drop).map_err(text))?;
    let before = model.backend().device_counts();
    let attribution_s =
        best(&mut || attribute(unembedding, tokenizer, ids, &AttributionOptions::default()).map(drop).map_err(text))?;
    let per_attribution =
        model.backend().device_counts().zip(before).map(|(after, before)| after.since(&before).per(REPETITIONS as u64));
    let with_graph = AttributionOptions { graph_edges: Some(DEFAULT_GRAPH_EDGES), ..Default::default() };
    let graph_s = best(&mut || attribute(unembedding, tokenizer, ids, &with_graph).map(drop).map_err(text))?;
    let scan_s = once(&mut || head_ablation_scan(model, ids, target).map(drop).map_err(text))?;
    let exact_all = AttributionOptions { exact_all: true, ..Default::default() };
    let exact_all_s = once(&mut || attribute(unembedding, tokenizer, ids, &exact_all).map(drop).map_err(text))?;
    Ok(serde_json::json!({
        "n_tokens": ids.len(),
        "forward_s": forward_s,
        "attribution_s": attribution_s,
        "graph_s": graph_s,
        "graph_edges": DEFAULT_GRAPH_EDGES,
        "heads_s": heads_s,
        "scan_s": scan_s,
        "exact_all_s": exact_all_s,
        "per_attribution": per_attribution,
    }))
}

/// `glassbox bench-kernels`: each WGSL kernel on SmolLM2's shapes, as GB/s of memory it must
/// touch and GFLOP/s, timing repeated dispatches until the device has finished them.
#[cfg(feature = "webgpu")]
pub fn kernels() -> Result<serde_json::Value, String> {
    use candle_core::quantized::{GgmlDType, QTensor};
    use glassbox::backend::webgpu::GpuDevice;
    use glassbox::backend::Rope;
    use glassbox::gguf::GgmlType;

    let gpu = pollster::block_on(GpuDevice::new()).map_err(|e| e.to_string())?;
    let text = |e: glassbox::backend::webgpu::GpuError| e.to_string();
    let random = |n: usize| -> Vec<f32> { (0..n).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect() };
    let quantised = |dtype: GgmlDType, rows: usize, cols: usize| -> Result<Vec<u8>, String> {
        let w = candle_core::Tensor::from_vec(random(rows * cols), (rows, cols), &candle_core::Device::Cpu)
            .map_err(|e| e.to_string())?;
        QTensor::quantize(&w, dtype).and_then(|q| q.data().map(|d| d.to_vec())).map_err(|e| e.to_string())
    };
    const RUNS: usize = 20;
    let mut rows = Vec::new();
    let mut time =
        |name: String, bytes: f64, flops: f64, f: &mut dyn FnMut() -> Result<(), String>| -> Result<(), String> {
            f()?;
            gpu.wait().map_err(text)?;
            let start = Instant::now();
            for _ in 0..RUNS {
                f()?;
            }
            gpu.wait().map_err(text)?;
            let seconds = start.elapsed().as_secs_f64() / RUNS as f64;
            rows.push(serde_json::json!({
                "kernel": name, "seconds": seconds, "gb_s": bytes / seconds / 1e9, "gflop_s": flops / seconds / 1e9,
            }));
            Ok(())
        };
    let (width, ffn, vocab, heads, kv_heads, head_dim) = (576, 1536, 49152, 9, 3, 64);
    for (ggml, dtype, out, name) in
        [(GgmlType::Q4_1, GgmlDType::Q4_1, ffn, "ffn_up"), (GgmlType::Q8_0, GgmlDType::Q8_0, vocab, "unembedding")]
    {
        let bytes = quantised(dtype, out, width)?;
        let w = gpu.matrix(ggml, &bytes, out, width).map_err(text)?;
        // The model projects only the positions it reports onto the vocabulary.
        let token_counts: &[usize] = if out == vocab { &[1] } else { &[1, 256] };
        for &t in token_counts {
            let x = gpu.upload(t, width, &random(t * width)).map_err(text)?;
            let moved = (bytes.len() + 4 * t * (width + out)) as f64;
            let flops = 2.0 * (t * out * width) as f64;
            time(format!("matmul {ggml} {out}×{width}, {t} tokens ({name})"), moved, flops, &mut || {
                gpu.linear(&x, &w).map(drop).map_err(text)
            })?;
        }
    }
    let t = 256;
    let table = gpu.matrix(GgmlType::Q8_0, &quantised(GgmlDType::Q8_0, vocab, width)?, vocab, width).map_err(text)?;
    let ids: Vec<u32> = (0..t as u32).map(|i| i * 181 % vocab as u32).collect();
    time(format!("embed Q8_0, {t} rows of {width}"), (t * width) as f64 * (34.0 / 32.0 + 4.0), 0.0, &mut || {
        gpu.embed(&table, &ids).map(drop).map_err(text)
    })?;
    let x = gpu.upload(t, width, &random(t * width)).map_err(text)?;
    let norm = gpu.upload(1, width, &random(width)).map_err(text)?;
    time(format!("rms_norm {t}×{width}"), (8 * t * width) as f64, (4 * t * width) as f64, &mut || {
        gpu.rms_norm(&x, &norm, 1e-5).map(drop).map_err(text)
    })?;
    let rope = Rope { start: 0, theta: 10000.0, freq_factors: None, magnitude: 1.0, interleaved: false };
    time(format!("rope {t}×{width}, {heads} heads"), (12 * t * width) as f64, (3 * t * width) as f64, &mut || {
        gpu.rope(&x, heads, &rope).map(drop).map_err(text)
    })?;
    let (gate, up) =
        (gpu.upload(t, ffn, &random(t * ffn)).map_err(text)?, gpu.upload(t, ffn, &random(t * ffn)).map_err(text)?);
    time(format!("silu·mul {t}×{ffn}"), (12 * t * ffn) as f64, (5 * t * ffn) as f64, &mut || {
        gpu.silu_mul(&gate, &up).map(drop).map_err(text)
    })?;
    let kv = gpu.upload(t, kv_heads * head_dim, &random(t * kv_heads * head_dim)).map_err(text)?;
    for queries in [1, t] {
        let q = gpu.upload(queries, heads * head_dim, &random(queries * heads * head_dim)).map_err(text)?;
        // Each query reads the keys and values up to its own position, twice (scores, then sums).
        let seen = (0..queries).map(|i| t - queries + i + 1).sum::<usize>();
        let flops = 4.0 * (heads * head_dim * seen) as f64;
        let moved = (4 * (2 * seen * heads * head_dim + 2 * queries * heads * head_dim)) as f64;
        time(
            format!("attention {queries} queries over {t} positions, {heads} heads / {kv_heads} KV, d {head_dim}"),
            moved,
            flops,
            &mut || gpu.attention(&q, &kv, &kv, Heads { heads, kv_heads, window: None }, false).map(drop).map_err(text),
        )?;
    }
    Ok(
        serde_json::json!({ "adapter": gpu.description(), "software": gpu.is_software(), "shader_f16": gpu.uses_shader_f16(), "subgroups": gpu.uses_subgroups(), "kernels": rows }),
    )
}
