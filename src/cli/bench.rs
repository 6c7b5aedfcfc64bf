//! `glassbox bench`: prefill and decode speed and peak memory, measured the way
//! shared/peers/llamacpp_bench.py measures llama.cpp, so the two can sit in one table.

use std::time::Instant;

use glassbox::backend::Backend;
use glassbox::generate::argmax;
use glassbox::hooks::{HookRequest, Positions};
use glassbox::model::Model;
use serde_json::{json, Value};

pub const DECODE_STEPS: usize = 128;
const REPETITIONS: usize = 3;

/// The process's peak resident memory in MB (Linux: VmHWM), or None elsewhere.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

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

pub fn run<B: Backend>(model: &Model<B>, load_s: f64, short: &[u32], long: &[u32]) -> Result<Value, String> {
    decode_once(model, short)?; // warm-up, as the llama.cpp harness does
    let decode: Vec<f64> = (0..REPETITIONS).map(|_| decode_once(model, short)).collect::<Result<_, _>>()?;
    let prefill: Vec<f64> = (0..REPETITIONS).map(|_| prefill_once(model, long)).collect::<Result<_, _>>()?;
    Ok(json!({
        "threads": candle_core::utils::get_num_threads(),
        "load_s": load_s,
        "n_short": short.len(),
        "n_long": long.len(),
        "decode_tok_s": decode,
        "prefill_tok_s": prefill,
        "peak_rss_mb": peak_rss_mb(),
    }))
}
