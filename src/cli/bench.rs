//! `glassbox bench`: prefill and decode speed and peak memory, measured the way
//! shared/peers/llamacpp_bench.py measures llama.cpp, so the two can sit in one table.

use std::time::Instant;

use glassbox::backend::Backend;
use glassbox::bench::{BenchReport, DECODE_STEPS, REPETITIONS};
use glassbox::generate::argmax;
use glassbox::hooks::{HookRequest, Positions};
use glassbox::model::Model;

/// Prefills `short`, then takes [`DECODE_STEPS`] greedy single-token steps; returns tokens/s of
/// the steps alone.
fn decode_once<B: Backend>(model: &Model<B>, short: &[u32]) -> Result<f64, String> {
    let none = HookRequest::new();
    let mut cache = model.new_cache();
    let logits = model.forward(short, &mut cache, &none, &[], &Positions::Last).map_err(|e| e.to_string())?;
    let mut next = argmax(&logits.logits.data);
    let start = Instant::now();
    for _ in 0..DECODE_STEPS {
        let out = model.forward(&[next], &mut cache, &none, &[], &Positions::Last).map_err(|e| e.to_string())?;
        next = argmax(&out.logits.data);
    }
    Ok(DECODE_STEPS as f64 / start.elapsed().as_secs_f64())
}

fn prefill_once<B: Backend>(model: &Model<B>, long: &[u32]) -> Result<f64, String> {
    let mut cache = model.new_cache();
    let start = Instant::now();
    model.forward(long, &mut cache, &HookRequest::new(), &[], &Positions::Last).map_err(|e| e.to_string())?;
    Ok(long.len() as f64 / start.elapsed().as_secs_f64())
}

pub fn run<B: Backend>(model: &Model<B>, load_s: f64, short: &[u32], long: &[u32]) -> Result<BenchReport, String> {
    decode_once(model, short)?; // warm-up, as the llama.cpp harness does
    let decode: Vec<f64> = (0..REPETITIONS).map(|_| decode_once(model, short)).collect::<Result<_, _>>()?;
    let prefill: Vec<f64> = (0..REPETITIONS).map(|_| prefill_once(model, long)).collect::<Result<_, _>>()?;
    Ok(BenchReport::new(load_s, short.len(), long.len(), decode, prefill))
}

/// `glassbox bench-attribution`: the cost of attribution in plain forward passes of the same
/// prompt, each timing the best of [`REPETITIONS`] (one run for the slow scan and exact-all).
pub fn attribution<B: Backend>(
    unembedding: &glassbox::interp::lens::Unembedding<B>,
    tokenizer: &glassbox::tokenizer::Tokenizer,
    ids: &[u32],
) -> Result<serde_json::Value, String> {
    use glassbox::interp::ablation::head_ablation_scan;
    use glassbox::interp::attribution::{attribute, rank_heads, AttributionOptions};
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
    let attribution_s = best(&mut || attribute(unembedding, tokenizer, ids, &AttributionOptions::default()).map(drop).map_err(text))?;
    let scan_s = once(&mut || head_ablation_scan(model, ids, target).map(drop).map_err(text))?;
    let exact_all = AttributionOptions { exact_all: true, ..Default::default() };
    let exact_all_s = once(&mut || attribute(unembedding, tokenizer, ids, &exact_all).map(drop).map_err(text))?;
    Ok(serde_json::json!({
        "n_tokens": ids.len(),
        "forward_s": forward_s,
        "attribution_s": attribution_s,
        "heads_s": heads_s,
        "scan_s": scan_s,
        "exact_all_s": exact_all_s,
    }))
}
