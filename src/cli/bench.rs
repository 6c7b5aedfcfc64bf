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
