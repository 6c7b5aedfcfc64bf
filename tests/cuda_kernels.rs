//! candle's CUDA quantised matmuls against an f64 product on the CPU, for the shapes glassbox
//! models have (rows of 576 values are not a multiple of the kernels' 512-value padding) and
//! both the decode (1 token) and prefill paths. Needs a GPU: `scripts/gpu-check.sh` runs it.
#![cfg(feature = "cuda")]

use candle_core::quantized::{cuda::set_force_dmmv, GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use glassbox::numeric::pseudo_random as values;

/// f32 sums of products of f32 values: 1e-5 of the sum of |terms| covers the summation order.
const F32_TOLERANCE: f64 = 1e-5;

/// The largest error of the GPU product, as a share of the sum of |terms| of its entry, against
/// `input · dequantised(W)ᵀ` in f64, where `input` is what the kernel is expected to read.
fn worst_error(dtype: GgmlDType, rows: usize, cols: usize, tokens: usize, read: impl Fn(&Tensor) -> Tensor) -> f64 {
    let gpu = Device::new_cuda(0).unwrap();
    let w = Tensor::from_vec(values(rows * cols, (rows * cols) as u64), (rows, cols), &Device::Cpu).unwrap();
    let q = QTensor::quantize(&w, dtype).unwrap();
    let dequantised: Vec<f32> = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let x = Tensor::from_vec(values(tokens * cols, 7 + tokens as u64), (tokens, cols), &Device::Cpu).unwrap();
    let expected_input: Vec<f32> = read(&x).flatten_all().unwrap().to_vec1().unwrap();
    let on_gpu = QMatMul::from_qtensor(QTensor::quantize_onto(&w, dtype, &gpu).unwrap()).unwrap();
    let got: Vec<f32> = on_gpu.forward(&x.to_device(&gpu).unwrap()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let mut worst = 0.0f64;
    for t in 0..tokens {
        for r in 0..rows {
            let terms =
                (0..cols).map(|c| f64::from(expected_input[t * cols + c]) * f64::from(dequantised[r * cols + c]));
            let (sum, magnitude) = terms.fold((0.0, 0.0), |(s, m), v| (s + v, m + v.abs()));
            worst = worst.max((f64::from(got[t * rows + r]) - sum).abs() / magnitude.max(1e-30));
        }
    }
    worst
}

const TYPES: [GgmlDType; 5] = [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0, GgmlDType::Q4K, GgmlDType::Q6K];

fn shapes(dtype: GgmlDType) -> Vec<(usize, usize, usize)> {
    // K-quant rows hold whole 256-value blocks.
    let widths: &[usize] =
        if matches!(dtype, GgmlDType::Q4K | GgmlDType::Q6K) { &[512, 768, 1536] } else { &[512, 576, 1536] };
    widths.iter().flat_map(|&cols| [1, 5, 16].map(|tokens| (72, cols, tokens))).collect()
}

/// Both paths in one test: the path is a process-wide switch in candle, so two tests running at
/// once would race on it.
/// - The dequantising kernels (glassbox's choice) must match the unrounded input to f32 precision.
/// - candle's MMVQ/MMQ kernels (its default) read the input rounded to Q8_1: measured against that
///   rounding done on the CPU, allowing 2e-3 for the f16 block scales and sums.
#[test]
fn quantised_matmuls_match_an_f64_product_on_the_cpu() {
    let q8_1 = |x: &Tensor| QTensor::quantize(x, GgmlDType::Q8_1).unwrap().dequantize(&Device::Cpu).unwrap();
    let mut failures = Vec::new();
    for (dequantising, bound) in [(true, F32_TOLERANCE), (false, 2e-3)] {
        set_force_dmmv(dequantising);
        for dtype in TYPES {
            for (rows, cols, tokens) in shapes(dtype) {
                let error = if dequantising {
                    worst_error(dtype, rows, cols, tokens, |x| x.clone())
                } else {
                    worst_error(dtype, rows, cols, tokens, q8_1)
                };
                let path = if dequantising { "dequantising" } else { "q8_1" };
                eprintln!(
                    "{path} {dtype:?} {rows}x{cols}, {tokens} tokens: worst error {error:.1e} of the term magnitude"
                );
                if error > bound {
                    failures.push(format!("{path} {dtype:?} {rows}x{cols} {tokens} tokens: {error:.1e}"));
                }
            }
        }
    }
    set_force_dmmv(true);
    assert!(failures.is_empty(), "{failures:?}");
}
