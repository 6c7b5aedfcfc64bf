//! What `glassbox bench` and its candle peer (examples/candle_peer_bench.rs) report, in the
//! shape scripts/bench.py reads: the same fields for every engine.

use serde::Serialize;

/// Greedy steps timed after the short prompt, as shared/peers/llamacpp_bench.py takes.
pub const DECODE_STEPS: usize = 128;
/// Timed repetitions after one warm-up.
pub const REPETITIONS: usize = 3;

#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// The threads of the weight products.
    pub threads: usize,
    pub load_s: f64,
    pub n_short: usize,
    pub n_long: usize,
    pub decode_tok_s: Vec<f64>,
    pub prefill_tok_s: Vec<f64>,
    pub peak_rss_mb: Option<f64>,
}

impl BenchReport {
    /// Fills in this process's peak memory.
    pub fn new(
        threads: usize,
        load_s: f64,
        n_short: usize,
        n_long: usize,
        decode_tok_s: Vec<f64>,
        prefill_tok_s: Vec<f64>,
    ) -> Self {
        BenchReport { threads, load_s, n_short, n_long, decode_tok_s, prefill_tok_s, peak_rss_mb: peak_rss_mb() }
    }
}

/// The process's peak resident memory in MB (Linux: VmHWM), or None elsewhere.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
