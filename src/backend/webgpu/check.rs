//! The WGSL kernels checked against the CPU on this device: the same suite natively (lavapipe in
//! `make test`, a real GPU in `scripts/gpu-check.sh`) and in a browser (`WebGpu.checkKernels`).
//!
//! Every kernel runs through the [`Backend`] trait, as the model calls it, on pseudo-random data
//! with odd shapes: rows that are not multiples of the 64-wide workgroup, one to five quant
//! blocks per row, 1, 3 or 6 tokens (partial tiles; both matmul kernels on every shape), every weight type the kernels decode, and matrices split
//! over several buffers. References:
//! - products (`linear`, `linear_transposed`): an f64 sum over candle's dequantisation of the
//!   same candle-quantised weights, an implementation independent of the WGSL decoders; the
//!   error is measured against the sum of |terms|;
//! - everything else: the candle CPU backend's own operation on the same inputs; the error is
//!   measured against the largest reference value.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use serde::Serialize;

use super::layer::in_32_value_blocks;
use super::{MatmulKernel, WebGpuBackend};
use crate::backend::candle::CandleBackend;
use crate::backend::{Backend, BackendError, BackendResult, Heads, Rope, TopK};
use crate::gguf::{GgmlType, TensorInfo};
use crate::numeric::pseudo_random;

/// One kernel on one shape: the largest error seen and the bound it must stay within.
#[derive(Clone, Debug, Serialize)]
pub struct KernelCheck {
    pub kernel: &'static str,
    pub case: String,
    pub max_error: f64,
    pub bound: f64,
}

impl KernelCheck {
    pub fn passed(&self) -> bool {
        self.max_error <= self.bound
    }
}

/// Products sum the same dequantised weights times the same f32 inputs, in f32 here and in f64
/// for the reference: 1e-5 of the sum of |terms|.
const PRODUCT_BOUND: f64 = 1e-5;
/// Dequantising is one multiply and at most one add per value; RMSNorm's mean of squares and
/// silu's exp add a few ulps; rope is one multiply-add per value.
const ELEMENTWISE_BOUND: f64 = 1e-6;
/// The online softmax rescales as it goes, the CPU normalises once.
const ATTENTION_BOUND: f64 = 1e-5;
/// Log-probabilities, in nats: f32 logits near 20 lie 2e-6 apart, and the device sums its
/// exponentials in f32 (the reference in f64).
const LOG_PROB_BOUND: f64 = 1e-5;

/// The weight types the WGSL kernels decode, with candle's name for each.
pub const KERNEL_TYPES: [(GgmlType, GgmlDType); 10] = [
    (GgmlType::F32, GgmlDType::F32),
    (GgmlType::F16, GgmlDType::F16),
    (GgmlType::Q4_0, GgmlDType::Q4_0),
    (GgmlType::Q4_1, GgmlDType::Q4_1),
    (GgmlType::Q5_0, GgmlDType::Q5_0),
    (GgmlType::Q5_1, GgmlDType::Q5_1),
    (GgmlType::Q8_0, GgmlDType::Q8_0),
    (GgmlType::Q4K, GgmlDType::Q4K),
    (GgmlType::Q5K, GgmlDType::Q5K),
    (GgmlType::Q6K, GgmlDType::Q6K),
];

fn candle_error(e: candle_core::Error) -> BackendError {
    BackendError(e.to_string())
}

/// A `[rows, cols]` matrix quantised by candle: its GGUF bytes and candle's dequantisation.
struct Quantised {
    info: TensorInfo,
    bytes: Vec<u8>,
    dequantised: Vec<f32>,
}

fn quantised(ggml: GgmlType, dtype: GgmlDType, rows: usize, cols: usize, seed: u64) -> BackendResult<Quantised> {
    let w = Tensor::from_vec(pseudo_random(rows * cols, seed), (rows, cols), &Device::Cpu).map_err(candle_error)?;
    let q = QTensor::quantize(&w, dtype).map_err(candle_error)?;
    let bytes = q.data().map_err(candle_error)?.into_owned();
    let dequantised = q.dequantize(&Device::Cpu).and_then(|t| t.flatten_all()?.to_vec1()).map_err(candle_error)?;
    let info = TensorInfo {
        name: format!("{} {rows}×{cols}", ggml.name()),
        ggml_type: ggml,
        shape: vec![cols as u64, rows as u64],
        file_offset: 0,
        byte_len: bytes.len() as u64,
    };
    Ok(Quantised { info, bytes, dequantised })
}

/// The largest `|got - expected|` over `scale`, or infinity when the lengths differ.
fn relative_error(got: &[f32], expected: &[f32], scale: f64) -> f64 {
    if got.len() != expected.len() {
        return f64::INFINITY;
    }
    got.iter().zip(expected).map(|(g, e)| (f64::from(*g) - f64::from(*e)).abs() / scale).fold(0.0, f64::max)
}

fn largest(values: &[f32]) -> f64 {
    values.iter().fold(f64::from(f32::MIN_POSITIVE), |m, v| m.max(f64::from(v.abs())))
}

/// `x · Wᵀ` (or `x · W` when `transposed`) in f64, and the worst error of `got` against it
/// relative to each output's sum of |terms|.
fn product_error(got: &[f32], x: &[f32], w: &[f32], rows: usize, cols: usize, transposed: bool) -> f64 {
    let (inner, outer) = if transposed { (rows, cols) } else { (cols, rows) };
    let tokens = x.len() / inner;
    if got.len() != tokens * outer {
        return f64::INFINITY;
    }
    let mut worst: f64 = 0.0;
    for t in 0..tokens {
        for o in 0..outer {
            let weight = |i: usize| if transposed { w[i * cols + o] } else { w[o * cols + i] };
            let terms = (0..inner).map(|i| f64::from(x[t * inner + i]) * f64::from(weight(i)));
            let (sum, magnitude) = terms.fold((0.0, 0.0), |(s, m), v| (s + v, m + f64::abs(v)));
            worst = worst.max((f64::from(got[t * outer + o]) - sum).abs() / (magnitude + 1e-30));
        }
    }
    worst
}

/// Runs the whole suite on `gpu`. An `Err` means a kernel failed to run at all.
pub fn check_kernels(gpu: &WebGpuBackend) -> BackendResult<Vec<KernelCheck>> {
    let cpu = CandleBackend::cpu();
    let mut checks = Vec::new();
    let mut record =
        |kernel, case: String, max_error, bound| checks.push(KernelCheck { kernel, case, max_error, bound });
    let on_gpu = |rows, cols, v: &[f32]| gpu.upload(rows, cols, v);
    let on_cpu = |rows, cols, v: &[f32]| cpu.upload(rows, cols, v);
    let from_gpu = |t: &<WebGpuBackend as Backend>::Tensor| gpu.download(t).map(|(_, v)| v);
    let from_cpu = |t: &<CandleBackend as Backend>::Tensor| cpu.download(t).map(|(_, v)| v);

    // The last shape is also loaded split by rows into about 7 parts, as an adapter with small
    // bindings holds a large matrix.
    // Every matmul kernel runs every shape; 6 tokens are a whole tile of 4 and half of one.
    // F32 and F16 also take a shape of whole runs of 32 values, which the block kernels read.
    let shapes = [(1, 1, 1, None), (67, 3, 3, None), (130, 5, 6, None), (130, 5, 6, Some(7))];
    for (ggml, dtype) in KERNEL_TYPES {
        let block = ggml.block_size() as usize;
        let runs_of_32 = (block == 1).then_some((67, 96, 6, None));
        for (rows, blocks, tokens, max_part_bytes) in shapes.into_iter().chain(runs_of_32) {
            let cols = blocks * block;
            let w = quantised(ggml, dtype, rows, cols, rows as u64 * 31 + cols as u64)?;
            let (matrix, split) = match max_part_bytes {
                None => (gpu.matrix(&w.info, w.bytes.clone())?, String::new()),
                Some(parts) => {
                    let max = (w.bytes.len() / parts).max(w.bytes.len() / rows);
                    let matrix = gpu.device().matrix_in_parts(ggml, &w.bytes, rows, cols, max)?;
                    let parts = matrix.parts();
                    (matrix, format!(" in {parts} parts"))
                }
            };
            let case = format!("{} {rows}×{cols}{split}, {tokens} tokens", ggml.name());

            let x = pseudo_random(tokens * cols, 7 + tokens as u64);
            let x_on_gpu = gpu.device().upload(tokens, cols, &x)?;
            let by_blocks = in_32_value_blocks(&matrix);
            let kernels = [
                (MatmulKernel::Tiled, "matmul tiled"),
                (MatmulKernel::MatVec, "matmul matvec"),
                (MatmulKernel::MatVecSubgroups, "matmul matvec subgroups"),
                (MatmulKernel::Rows, "matmul rows"),
                (MatmulKernel::BlockRows, "matmul block rows"),
                (MatmulKernel::BlockTiles, "matmul block tiles"),
            ];
            let runs = |kernel: MatmulKernel| {
                (by_blocks || !kernel.reads_blocks())
                    && (kernel != MatmulKernel::MatVecSubgroups || gpu.device().uses_subgroups())
            };
            for (kernel, name) in kernels.into_iter().filter(|&(kernel, _)| runs(kernel)) {
                let y = gpu.device().linear_with(kernel, &x_on_gpu, &matrix)?;
                let y = from_gpu(&y.into())?;
                record(name, case.clone(), product_error(&y, &x, &w.dequantised, rows, cols, false), PRODUCT_BOUND);
            }

            let back = pseudo_random(tokens * rows, 9 + tokens as u64);
            let back_on_gpu = gpu.device().upload(tokens, rows, &back)?;
            for (blocks, name) in [(false, "matmul transposed"), (true, "matmul block transposed")] {
                if blocks && !by_blocks {
                    continue;
                }
                let z = gpu.device().linear_transposed_with(blocks, &back_on_gpu, &matrix)?;
                let z = from_gpu(&z.into())?;
                record(name, case.clone(), product_error(&z, &back, &w.dequantised, rows, cols, true), PRODUCT_BOUND);
            }

            let scale = largest(&w.dequantised);
            let whole = from_gpu(&gpu.dequantize(&matrix)?)?;
            record("dequantize", case.clone(), relative_error(&whole, &w.dequantised, scale), ELEMENTWISE_BOUND);

            let ids: Vec<u32> = [0, rows - 1, rows / 2, rows / 2].into_iter().map(|i| i as u32).collect();
            let expected: Vec<f32> =
                ids.iter().flat_map(|&i| w.dequantised[i as usize * cols..(i as usize + 1) * cols].to_vec()).collect();
            let embedded = from_gpu(&gpu.embed(&matrix, &ids)?)?;
            record("embedding rows", case.clone(), relative_error(&embedded, &expected, scale), ELEMENTWISE_BOUND);

            let wanted = [cols - 1, 0, cols / 2];
            let expected: Vec<f32> = wanted
                .iter()
                .flat_map(|&c| (0..rows).map(move |r| (r, c)))
                .map(|(r, c)| w.dequantised[r * cols + c])
                .collect();
            let columns = from_gpu(&gpu.columns(&matrix, &wanted)?)?;
            record("columns", case, relative_error(&columns, &expected, scale), ELEMENTWISE_BOUND);
        }
    }

    // Past 65535 workgroups of 64 the elementwise kernels spread over a second dispatch dimension.
    for (rows, cols) in [(1, 1), (7, 130), (2100, 2000)] {
        let (a, b, row) = (pseudo_random(rows * cols, 11), pseudo_random(rows * cols, 12), pseudo_random(cols, 13));
        let (ga, gb, grow) = (on_gpu(rows, cols, &a)?, on_gpu(rows, cols, &b)?, on_gpu(1, cols, &row)?);
        let (ca, cb, crow) = (on_cpu(rows, cols, &a)?, on_cpu(rows, cols, &b)?, on_cpu(1, cols, &row)?);
        let case = format!("{rows}×{cols}");
        let pairs = [
            ("add", from_gpu(&gpu.add(&ga, &gb)?)?, from_cpu(&cpu.add(&ca, &cb)?)?),
            ("add row", from_gpu(&gpu.add(&ga, &grow)?)?, from_cpu(&cpu.add(&ca, &crow)?)?),
            ("mul row", from_gpu(&gpu.mul(&ga, &grow)?)?, from_cpu(&cpu.mul(&ca, &crow)?)?),
            ("silu·mul", from_gpu(&gpu.mul(&gpu.silu(&ga)?, &gb)?)?, from_cpu(&cpu.mul(&cpu.silu(&ca)?, &cb)?)?),
            (
                "gelu·mul",
                from_gpu(&gpu.mul(&gpu.gelu_tanh(&ga)?, &gb)?)?,
                from_cpu(&cpu.mul(&cpu.gelu_tanh(&ca)?, &cb)?)?,
            ),
        ];
        for (kernel, got, expected) in pairs {
            record(kernel, case.clone(), relative_error(&got, &expected, largest(&expected)), ELEMENTWISE_BOUND);
        }
    }

    // (rows, cols, weight length): whole rows, then per-head norms.
    for (rows, cols, n) in [(1, 5, 5), (3, 64, 64), (5, 577, 577), (3, 64, 16), (2, 1024, 256)] {
        let x: Vec<f32> = pseudo_random(rows * cols, 21).iter().map(|v| v * 3.0).collect();
        let weight = pseudo_random(n, 22);
        let got = from_gpu(&gpu.rms_norm(&on_gpu(rows, cols, &x)?, &on_gpu(1, n, &weight)?, 1e-5)?)?;
        let expected = from_cpu(&cpu.rms_norm(&on_cpu(rows, cols, &x)?, &on_cpu(1, n, &weight)?, 1e-5)?)?;
        record(
            "rms_norm",
            format!("{rows}×{cols} in runs of {n}"),
            relative_error(&got, &expected, largest(&expected)),
            ELEMENTWISE_BOUND,
        );
        if n == cols {
            let got = from_gpu(&gpu.rms(&on_gpu(rows, cols, &x)?, 1e-5)?)?;
            let expected = from_cpu(&cpu.rms(&on_cpu(rows, cols, &x)?, 1e-5)?)?;
            let error = relative_error(&got, &expected, largest(&expected));
            record("rms", format!("{rows}×{cols}"), error, ELEMENTWISE_BOUND);
        }
    }

    let factors: Vec<f32> = (0..8).map(|i| 1.0 + i as f32 * 0.5).collect();
    for interleaved in [false, true] {
        for freq_factors in [None, Some(factors.as_slice())] {
            let rope = Rope { start: 7, theta: 10000.0, freq_factors, magnitude: 1.0, interleaved };
            let (t, heads, head_dim) = (5, 3, 16);
            let x = pseudo_random(t * heads * head_dim, 31);
            let got = from_gpu(&gpu.rope(&on_gpu(t, heads * head_dim, &x)?, heads, &rope)?)?;
            let expected = from_cpu(&cpu.rope(&on_cpu(t, heads * head_dim, &x)?, heads, &rope)?)?;
            let case = format!(
                "{} layout, frequency factors {}",
                if interleaved { "interleaved" } else { "neox" },
                freq_factors.is_some()
            );
            record("rope", case, relative_error(&got, &expected, largest(&expected)), ELEMENTWISE_BOUND);
        }
    }

    // (queries, positions, heads, kv heads, head size, window): prefill, decode after a cache,
    // GQA, MHA, sliding windows shorter than the prompt and than the cache.
    for (t, total, heads, kv_heads, d, window) in [
        (6, 6, 4, 2, 8, None),
        (1, 9, 4, 2, 8, None),
        (3, 70, 6, 6, 64, None),
        (5, 5, 9, 3, 64, None),
        (7, 7, 4, 1, 16, Some(3)),
        (2, 40, 4, 2, 8, Some(5)),
    ] {
        let layout = Heads { heads, kv_heads, window };
        let (q, k, v) = (
            pseudo_random(t * heads * d, 41),
            pseudo_random(total * kv_heads * d, 42),
            pseudo_random(total * kv_heads * d, 43),
        );
        let (gz, gp) = gpu.attention(
            &on_gpu(t, heads * d, &q)?,
            &on_gpu(total, kv_heads * d, &k)?,
            &on_gpu(total, kv_heads * d, &v)?,
            layout,
            true,
        )?;
        let (cz, cp) = cpu.attention(
            &on_cpu(t, heads * d, &q)?,
            &on_cpu(total, kv_heads * d, &k)?,
            &on_cpu(total, kv_heads * d, &v)?,
            layout,
            true,
        )?;
        let case = format!("t={t} T={total} H={heads} KV={kv_heads} d={d} window={window:?}");
        let (z, expected_z) = (from_gpu(&gz)?, from_cpu(&cz)?);
        record("attention z", case.clone(), relative_error(&z, &expected_z, largest(&expected_z)), ATTENTION_BOUND);
        let missing = || BackendError("attention returned no probabilities".into());
        let (gp, cp) = (gp.ok_or_else(missing)?, cp.ok_or_else(missing)?);
        let (p, expected_p) = (from_gpu(&gp)?, from_cpu(&cp)?);
        record(
            "attention probabilities",
            case.clone(),
            relative_error(&p, &expected_p, largest(&expected_p)),
            ATTENTION_BOUND,
        );
        let rows = [t - 1, 0];
        let (p, expected_p) = (from_gpu(&gpu.query_rows(&gp, &rows)?)?, from_cpu(&cpu.query_rows(&cp, &rows)?)?);
        record("attention query rows", case, relative_error(&p, &expected_p, largest(&expected_p)), ATTENTION_BOUND);
    }
    // A vocabulary-sized row with ties among its largest values, and a short one; a few
    // entries picked besides, as a sampler asks for its penalised tokens.
    for (n, k) in [(49_157, 10), (7, 7)] {
        let mut row: Vec<f32> = pseudo_random(n, 51).iter().map(|v| v * 20.0).collect();
        let peak = row.iter().copied().fold(f32::MIN, f32::max);
        for i in [n / 3, n / 2, n - 1] {
            row[i] = peak;
        }
        let pick = [0, (n - 1) as u32, (n / 2) as u32, 3];
        let expected = TopK::of(&row, k, &pick);
        let got = gpu.top_k(&on_gpu(1, n, &row)?, k, &pick)?;
        // The ranking is exact; log Σ exp against an f64 sum, as the host's own f32 sum drifts
        // by as much as the GPU's tree.
        let exact = got.ids == expected.ids && got.values == expected.values && got.picked == expected.picked;
        let ranking_error = if exact { 0.0 } else { f64::INFINITY };
        let max = f64::from(peak);
        let log_sum_exp = row.iter().map(|&v| (f64::from(v) - max).exp()).sum::<f64>().ln() + max;
        let sum_error = (f64::from(got.log_sum_exp) - log_sum_exp).abs() / log_sum_exp.abs();
        record("top-k", format!("top {k} of {n}"), ranking_error.max(sum_error), ELEMENTWISE_BOUND);
    }
    // Exact LPI's log-probabilities: rows of a vocabulary added to their bases, against the
    // host's f64 sums.
    let vocab = 49_157;
    let bases: Vec<Vec<f32>> =
        (0..3).map(|b| pseudo_random(vocab, 61 + b).iter().map(|v| v * 15.0).collect()).collect();
    let base_rows: Vec<&[f32]> = bases.iter().map(Vec::as_slice).collect();
    let pairs = [0, 2, 1, 2, 0];
    let shifts: Vec<f32> = pseudo_random(pairs.len() * vocab, 67).iter().map(|v| v * 3.0).collect();
    let target = 4099;
    let expected = cpu.shifted_log_probs(&base_rows, &on_cpu(pairs.len(), vocab, &shifts)?, &pairs, target)?;
    let got = gpu.shifted_log_probs(&base_rows, &on_gpu(pairs.len(), vocab, &shifts)?, &pairs, target)?;
    let error = if got.len() == expected.len() {
        got.iter().zip(&expected).map(|(g, e)| (g - e).abs()).fold(0.0, f64::max)
    } else {
        f64::INFINITY
    };
    let case = format!("{} rows of {vocab} over {} bases", pairs.len(), bases.len());
    record("shifted log-probabilities", case, error, LOG_PROB_BOUND);
    Ok(checks)
}
