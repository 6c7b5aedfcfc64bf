//! WGSL kernels against the CPU: weights quantised by candle (an implementation independent of
//! the WGSL decoders), the expected product computed in f64 from candle's dequantised values.
//! Runs on whatever wgpu adapter the machine has; in `make test` that is Mesa's lavapipe.
#![cfg(feature = "webgpu")]

mod common;

use common::values;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use glassbox::backend::webgpu::{GpuDevice, GpuError};
use glassbox::gguf::GgmlType;

/// Both sides multiply the same dequantised weights by the same f32 inputs; only the order and
/// width of the sums differ (f32 on the GPU, f64 here). Bound: 1e-5 of the sum of |terms|.
const RELATIVE_TOLERANCE: f64 = 1e-5;

fn check(gpu: &GpuDevice, ggml: GgmlType, dtype: GgmlDType, rows: usize, cols: usize, tokens: usize) {
    let w = Tensor::from_vec(values(rows * cols, rows as u64 * 31 + cols as u64), (rows, cols), &Device::Cpu).unwrap();
    let q = QTensor::quantize(&w, dtype).unwrap();
    let dequantised: Vec<f32> = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let x = values(tokens * cols, 7 + tokens as u64);
    let out = pollster::block_on(gpu.matmul(ggml, &q.data().unwrap(), rows, cols, &x)).unwrap();
    assert_eq!(out.len(), tokens * rows);
    for t in 0..tokens {
        for r in 0..rows {
            let terms = (0..cols).map(|c| f64::from(x[t * cols + c]) * f64::from(dequantised[r * cols + c]));
            let (expected, magnitude) = terms.fold((0.0, 0.0), |(s, m), v| (s + v, m + v.abs()));
            let got = f64::from(out[t * rows + r]);
            assert!(
                (got - expected).abs() <= RELATIVE_TOLERANCE * magnitude + 1e-30,
                "{} {rows}×{cols}, token {t}, row {r}: {got} vs {expected}",
                ggml.name()
            );
        }
    }
}

#[test]
fn quantised_matmul_matches_the_cpu_for_every_type_and_odd_shapes() {
    let gpu = pollster::block_on(GpuDevice::new()).expect("a wgpu adapter (install mesa-vulkan-drivers)");
    // Seen with --nocapture: which adapter the figures come from.
    eprintln!("adapter: {}", gpu.description());
    let types = [
        (GgmlType::F32, GgmlDType::F32),
        (GgmlType::F16, GgmlDType::F16),
        (GgmlType::Q4_0, GgmlDType::Q4_0),
        (GgmlType::Q4_1, GgmlDType::Q4_1),
        (GgmlType::Q8_0, GgmlDType::Q8_0),
    ];
    // Rows that are not multiples of the 64-wide workgroup; several blocks per row; 1–3 tokens.
    for (ggml, dtype) in types {
        for (rows, cols, tokens) in [(1, 32, 1), (67, 96, 3), (130, 160, 2)] {
            check(&gpu, ggml, dtype, rows, cols, tokens);
        }
    }
}

#[test]
fn bad_matmul_inputs_are_typed_errors() {
    let gpu = pollster::block_on(GpuDevice::new()).expect("a wgpu adapter");
    // 2 rows × 32 columns of Q4_1 take 2 blocks of 20 bytes.
    let short = pollster::block_on(gpu.matmul(GgmlType::Q4_1, &[0; 39], 2, 32, &[0.0; 32]));
    assert!(matches!(short, Err(GpuError::BadShape(_))));
    let ragged = pollster::block_on(gpu.matmul(GgmlType::Q4_1, &[0; 40], 2, 32, &[0.0; 33]));
    assert!(matches!(ragged, Err(GpuError::BadShape(_))));
    let unsupported = pollster::block_on(gpu.matmul(GgmlType::Q6K, &[0; 210], 1, 256, &[0.0; 256]));
    assert!(matches!(unsupported, Err(GpuError::UnsupportedType("Q6_K"))));
}
