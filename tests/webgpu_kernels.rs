//! WGSL kernels against the CPU: the device check suite (`backend::webgpu::check`, which
//! states each bound) on whatever wgpu adapter this machine has, Mesa's lavapipe in `make test`;
//! the browser test runs the same suite on Chromium's WebGPU. Plus the typed errors of bad input.
#![cfg(feature = "webgpu")]

use glassbox::backend::webgpu::check::check_kernels;
use glassbox::backend::webgpu::{GpuDevice, GpuError, WebGpuBackend};
use glassbox::backend::Heads;
use glassbox::gguf::GgmlType;

fn check_all(gpu: GpuDevice) {
    // Seen with --nocapture: which adapter the figures come from.
    eprintln!(
        "adapter: {}, shader-f16 reads: {}, subgroups: {}",
        gpu.description(),
        gpu.uses_shader_f16(),
        gpu.uses_subgroups()
    );
    // Where the adapter has subgroups (lavapipe has), matvec is also checked with them.
    let per_shape = if gpu.uses_subgroups() { 8 } else { 7 };
    let checks = check_kernels(&WebGpuBackend::new(gpu)).unwrap();
    for c in &checks {
        eprintln!("{:<24} {:<32} {:.2e} (bound {:.0e})", c.kernel, c.case, c.max_error, c.bound);
    }
    let failed: Vec<_> = checks.iter().filter(|c| !c.passed()).collect();
    assert!(failed.is_empty(), "over their bounds: {failed:#?}");
    // 10 weight types × 4 shapes × 7 or 8 weight kernels, F32 and F16 on a fifth shape, and the 5
    // types in 32-value blocks × 4 shapes and F32 and F16 × 1 × 3 block kernels; 3 × 5
    // elementwise, 5 norms (2 per head) and 3 row scales, 4 ropes, 6 × 3 attention (2 with
    // sliding windows), 2 top-k, 1 shifted log-probabilities.
    assert_eq!(checks.len(), 10 * 4 * per_shape + 2 * per_shape + (5 * 4 + 2) * 3 + 15 + 5 + 3 + 4 + 18 + 2 + 1);
    let split = checks.iter().filter(|c| c.case.contains(" parts")).count();
    assert_eq!(split, 10 * per_shape + 5 * 3, "every type and weight kernel checked on a matrix in several parts");
}

fn device() -> GpuDevice {
    pollster::block_on(GpuDevice::new()).expect("a wgpu adapter (install mesa-vulkan-drivers)")
}

#[test]
fn every_kernel_matches_the_cpu_for_every_type_and_odd_shapes() {
    check_all(device());
}

/// Where the adapter has shader-f16 (lavapipe has), the suite also runs reading f16 values from
/// u32 words, the path of adapters without it (SwiftShader's, in the browser test).
#[test]
fn every_kernel_matches_the_cpu_without_shader_f16() {
    check_all(device().without_shader_f16());
}

/// Both ways of reading f16 values give the same f32 values, so the same products to the bit.
#[test]
fn shader_f16_reads_change_no_result() {
    let with = device();
    if !with.uses_shader_f16() {
        eprintln!("this adapter has no shader-f16; nothing to compare");
        return;
    }
    let without = device().without_shader_f16();
    for (ggml, rows, cols) in [(GgmlType::F16, 5, 40), (GgmlType::Q4_1, 5, 64), (GgmlType::Q6K, 3, 256)] {
        let bytes: Vec<u8> = glassbox::numeric::pseudo_random(
            rows * cols / ggml.block_size() as usize * ggml.bytes_per_block() as usize,
            3,
        )
        .iter()
        // Small bytes keep every f16 finite.
        .map(|v| (v.abs() * 50.0) as u8)
        .collect();
        let x = glassbox::numeric::pseudo_random(2 * cols, 4);
        let product = |gpu: &GpuDevice| pollster::block_on(gpu.matmul(ggml, &bytes, rows, cols, &x)).unwrap();
        assert_eq!(product(&with), product(&without), "{ggml}");
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
    let unsupported = pollster::block_on(gpu.matmul(GgmlType::Q2K, &[0; 84], 1, 256, &[0.0; 256]));
    assert!(matches!(unsupported, Err(GpuError::UnsupportedType("Q2_K"))));
    // Sizes whose product wraps a usize (on wasm32 already at 65536 × 65536) are refused, not
    // wrapped to an empty matrix.
    let huge = 1usize << (usize::BITS / 2);
    let wrapped = pollster::block_on(gpu.matmul(GgmlType::F32, &[], huge, huge, &[0.0; 32]));
    assert!(matches!(wrapped, Err(GpuError::BadShape(ref m)) if m.contains("multiply past")), "{wrapped:?}");
    assert!(matches!(gpu.upload(huge, huge, &[]), Err(GpuError::BadShape(_))));
}

#[test]
fn bad_layer_inputs_are_typed_errors() {
    let gpu = pollster::block_on(GpuDevice::new()).unwrap();
    let table = gpu.matrix(GgmlType::F32, &[0; 4 * 32 * 2], 2, 32).unwrap();
    assert!(matches!(gpu.embed(&table, &[2]), Err(GpuError::BadShape(_))));
    let (a, b) = (gpu.upload(2, 3, &[0.0; 6]).unwrap(), gpu.upload(2, 2, &[0.0; 4]).unwrap());
    assert!(matches!(gpu.add(&a, &b), Err(GpuError::BadShape(_))));
    let x = gpu.upload(1, 12, &[0.0; 12]).unwrap();
    assert!(matches!(
        gpu.attention(&x, &x, &x, Heads { heads: 3, kv_heads: 2, window: None }, false),
        Err(GpuError::BadShape(_))
    ));
    let (_, none) = gpu.attention(&x, &x, &x, Heads { heads: 3, kv_heads: 3, window: None }, false).unwrap();
    assert!(none.is_none());
}
