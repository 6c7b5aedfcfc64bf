//! WGSL kernels against the CPU, on random data with odd shapes. Matmul: weights quantised by
//! candle (an implementation independent of the WGSL decoders), the expected product computed in
//! f64 from candle's dequantised values. The layer's other operations: against the CPU backend's
//! own operation on the same inputs. Each test states its error bound.
//! Runs on whatever wgpu adapter the machine has; in `make test` that is Mesa's lavapipe.
#![cfg(feature = "webgpu")]

mod common;

use common::values;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use glassbox::backend::candle::CandleBackend;
use glassbox::backend::webgpu::{GpuDevice, GpuError, GpuTensor};
use glassbox::backend::{Backend, Rope};
use glassbox::gguf::GgmlType;

/// Both sides multiply the same dequantised weights by the same f32 inputs; only the order and
/// width of the sums differ (f32 on the GPU, f64 here). Bound: 1e-5 of the sum of |terms|.
const RELATIVE_TOLERANCE: f64 = 1e-5;

/// The weight types the WGSL kernels decode, with candle's name for each.
const KERNEL_TYPES: [(GgmlType, GgmlDType); 8] = [
    (GgmlType::F32, GgmlDType::F32),
    (GgmlType::F16, GgmlDType::F16),
    (GgmlType::Q4_0, GgmlDType::Q4_0),
    (GgmlType::Q4_1, GgmlDType::Q4_1),
    (GgmlType::Q8_0, GgmlDType::Q8_0),
    (GgmlType::Q4K, GgmlDType::Q4K),
    (GgmlType::Q5K, GgmlDType::Q5K),
    (GgmlType::Q6K, GgmlDType::Q6K),
];

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
    // Rows that are not multiples of the 64-wide workgroup; one, three and five blocks per row;
    // 1–3 tokens.
    for (ggml, dtype) in KERNEL_TYPES {
        let block = ggml.block_size() as usize;
        for (rows, blocks, tokens) in [(1, 1, 1), (67, 3, 3), (130, 5, 2)] {
            check(&gpu, ggml, dtype, rows, blocks * block, tokens);
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
    let unsupported = pollster::block_on(gpu.matmul(GgmlType::Q2K, &[0; 84], 1, 256, &[0.0; 256]));
    assert!(matches!(unsupported, Err(GpuError::UnsupportedType("Q2_K"))));
}

/// The CPU backend, whose operations the model runs natively: the reference for every kernel.
fn cpu() -> CandleBackend {
    CandleBackend::cpu()
}

fn on_cpu(rows: usize, cols: usize, v: &[f32]) -> Tensor {
    cpu().upload(rows, cols, v).unwrap()
}

fn host(t: &Tensor) -> Vec<f32> {
    cpu().download(t).unwrap().1
}

fn read(gpu: &GpuDevice, t: &GpuTensor) -> Vec<f32> {
    pollster::block_on(gpu.read(t)).unwrap()
}

/// Each value within `relative` of its reference, measured against the largest reference
/// magnitude (sums in a different order differ by a few ulps of the largest term).
fn assert_close(what: &str, got: &[f32], expected: &[f32], relative: f32) {
    assert_eq!(got.len(), expected.len(), "{what}: lengths");
    let scale = expected.iter().fold(f32::MIN_POSITIVE, |m, v| m.max(v.abs()));
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!((g - e).abs() <= relative * scale, "{what}[{i}]: {g} vs {e} (scale {scale})");
    }
}

#[test]
fn embedding_rows_match_candles_dequantisation() {
    let gpu = pollster::block_on(GpuDevice::new()).unwrap();
    for (ggml, dtype) in KERNEL_TYPES {
        let (rows, cols) = (37, 3 * ggml.block_size() as usize);
        let w = Tensor::from_vec(values(rows * cols, 5), (rows, cols), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, dtype).unwrap();
        let table = gpu.matrix(ggml, &q.data().unwrap(), rows, cols).unwrap();
        let dequantised = host(&q.dequantize(&Device::Cpu).unwrap());
        let ids = [0u32, 36, 5, 5, 17];
        let expected: Vec<f32> = ids.iter().flat_map(|&i| dequantised[i as usize * cols..(i as usize + 1) * cols].to_vec()).collect();
        // Dequantising is one multiply and at most one add per value: equal up to a fused add.
        assert_close(&format!("{ggml} rows"), &read(&gpu, &gpu.embed(&table, &ids).unwrap()), &expected, 1e-6);
    }
    let table = gpu.matrix(GgmlType::F32, &[0; 4 * 32 * 2], 2, 32).unwrap();
    assert!(matches!(gpu.embed(&table, &[2]), Err(GpuError::BadShape(_))));
}

#[test]
fn elementwise_kernels_match_the_cpu_with_and_without_broadcast() {
    let gpu = pollster::block_on(GpuDevice::new()).unwrap();
    // Past 65535 workgroups of 64 the kernels spread over a second dispatch dimension.
    for (rows, cols) in [(1, 1), (7, 130), (2100, 2000)] {
        let a = values(rows * cols, 11);
        let b = values(rows * cols, 12);
        let row = values(cols, 13);
        let (ga, gb, grow) = (gpu.upload(rows, cols, &a).unwrap(), gpu.upload(rows, cols, &b).unwrap(), gpu.upload(1, cols, &row).unwrap());
        let (ca, cb, crow) = (on_cpu(rows, cols, &a), on_cpu(rows, cols, &b), on_cpu(1, cols, &row));
        let be = cpu();
        // One rounding each: equal to the last bit, except exp inside silu (a few ulps).
        assert_close("add", &read(&gpu, &gpu.add(&ga, &gb).unwrap()), &host(&be.add(&ca, &cb).unwrap()), 0.0);
        assert_close("add row", &read(&gpu, &gpu.add(&ga, &grow).unwrap()), &host(&be.add(&ca, &crow).unwrap()), 0.0);
        assert_close("mul row", &read(&gpu, &gpu.mul(&ga, &grow).unwrap()), &host(&be.mul(&ca, &crow).unwrap()), 0.0);
        let silu_mul = host(&be.mul(&be.silu(&ca).unwrap(), &cb).unwrap());
        assert_close("silu·mul", &read(&gpu, &gpu.silu_mul(&ga, &gb).unwrap()), &silu_mul, 1e-6);
    }
    let (a, b) = (gpu.upload(2, 3, &[0.0; 6]).unwrap(), gpu.upload(2, 2, &[0.0; 4]).unwrap());
    assert!(matches!(gpu.add(&a, &b), Err(GpuError::BadShape(_))));
}

#[test]
fn rms_norm_matches_the_cpu() {
    let gpu = pollster::block_on(GpuDevice::new()).unwrap();
    // Rows shorter than, equal to and longer than the 64-wide workgroup, not multiples of it.
    for (rows, cols) in [(1, 5), (3, 64), (5, 577)] {
        let x: Vec<f32> = values(rows * cols, 21).iter().map(|v| v * 3.0).collect();
        let w = values(cols, 22);
        let got = read(&gpu, &gpu.rms_norm(&gpu.upload(rows, cols, &x).unwrap(), &gpu.upload(1, cols, &w).unwrap(), 1e-5).unwrap());
        let expected = host(&cpu().rms_norm(&on_cpu(rows, cols, &x), &on_cpu(1, cols, &w), 1e-5).unwrap());
        // The mean of squares is summed in another order: 1e-6 of the largest value.
        assert_close(&format!("rms_norm {rows}×{cols}"), &got, &expected, 1e-6);
    }
}

#[test]
fn rope_matches_the_cpu_in_both_layouts() {
    let gpu = pollster::block_on(GpuDevice::new()).unwrap();
    let factors: Vec<f32> = (0..8).map(|i| 1.0 + i as f32 * 0.5).collect();
    for interleaved in [false, true] {
        for freq_factors in [None, Some(factors.as_slice())] {
            let rope = Rope { start: 7, theta: 10000.0, freq_factors, interleaved };
            let (t, heads, head_dim) = (5, 3, 16);
            let x = values(t * heads * head_dim, 31);
            let got = read(&gpu, &gpu.rope(&gpu.upload(t, heads * head_dim, &x).unwrap(), heads, &rope).unwrap());
            let expected = host(&cpu().rope(&on_cpu(t, heads * head_dim, &x), heads, &rope).unwrap());
            // The same table, one multiply-add per value: a fused multiply-add at most.
            assert_close(&format!("rope interleaved={interleaved} factors={}", freq_factors.is_some()), &got, &expected, 1e-6);
        }
    }
}

#[test]
fn attention_matches_the_cpu_with_grouped_heads_and_a_cache() {
    let gpu = pollster::block_on(GpuDevice::new()).unwrap();
    // (queries, positions, heads, kv heads, head size): prefill, decode after a cache, GQA, MHA.
    for (t, total, heads, kv_heads, d) in [(6, 6, 4, 2, 8), (1, 9, 4, 2, 8), (3, 70, 6, 6, 64), (5, 5, 9, 3, 64)] {
        let q = values(t * heads * d, 41);
        let k = values(total * kv_heads * d, 42);
        let v = values(total * kv_heads * d, 43);
        let on_gpu = |probabilities| {
            gpu.attention(
                &gpu.upload(t, heads * d, &q).unwrap(),
                &gpu.upload(total, kv_heads * d, &k).unwrap(),
                &gpu.upload(total, kv_heads * d, &v).unwrap(),
                heads,
                kv_heads,
                probabilities,
            )
            .unwrap()
        };
        let (gz, gp) = on_gpu(true);
        let (cz, cp) = cpu()
            .attention(&on_cpu(t, heads * d, &q), &on_cpu(total, kv_heads * d, &k), &on_cpu(total, kv_heads * d, &v), heads, kv_heads, true)
            .unwrap();
        // The online softmax rescales as it goes; the CPU normalises once: 1e-5 of the largest.
        let what = format!("attention t={t} T={total} H={heads} KV={kv_heads} d={d}");
        assert_close(&format!("{what} z"), &read(&gpu, &gz), &host(&cz), 1e-5);
        assert_close(&format!("{what} probabilities"), &read(&gpu, &gp.unwrap()), &host(&cp.unwrap()), 1e-5);
        let (_, none) = on_gpu(false);
        assert!(none.is_none());
    }
    let x = gpu.upload(1, 12, &[0.0; 12]).unwrap();
    assert!(matches!(gpu.attention(&x, &x, &x, 3, 2, false), Err(GpuError::BadShape(_))));
}
