//! The CPU kernels (src/backend/kernels) on random blocks of every format they compute with:
//! their dequantisation against the PyPI `gguf` package's (tests/fixtures/kernel-blocks.gguf,
//! written by scripts/make_kernel_fixture.py), their rounding of the input against candle's
//! implementation of llama.cpp's Q8_0 / Q8_1 / Q8_K, their products on every instruction set
//! this machine runs and on one to three threads against an f64 product of the two, the thread
//! pool, causal attention against a case worked by hand, rotary embedding against candle's, and
//! bad shapes.

use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use glassbox::backend::candle::CandleBackend;
use glassbox::backend::kernels::attention::{attention, AttentionShape};
use glassbox::backend::kernels::check::{check_kernels, fixture_input as input, fixture_matrix, FORMATS, TOKENS};
use glassbox::backend::kernels::rope::rotate;
use glassbox::backend::kernels::{Format, Isa, MatrixError, QuantizedMatrix, ThreadPool};
use glassbox::backend::Backend;
use glassbox::gguf::{GgmlType, TensorInfo};

fn fixture() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kernel-blocks.gguf")).unwrap()
}

fn matrix(fixture: &[u8], name: &str) -> (QuantizedMatrix, Vec<f32>) {
    fixture_matrix(fixture, name).unwrap()
}

#[test]
fn dequantisation_matches_the_gguf_package() {
    let file = fixture();
    for name in FORMATS {
        let (m, reference) = matrix(&file, name);
        assert_eq!(m.dequantize(), reference, "{name}");
        let rows = m.dequantize_rows(&[6, 0, 6]).unwrap();
        let cols = m.cols();
        assert_eq!(&rows[..cols], &reference[6 * cols..7 * cols], "{name} row 6");
        assert_eq!(&rows[cols..2 * cols], &reference[..cols], "{name} row 0");
        assert!(m.dequantize_rows(&[7]).is_none(), "{name}: row 7 of 7");
    }
}

#[test]
fn inputs_are_rounded_as_candle_rounds_them() {
    let file = fixture();
    for (name, candle_type) in [("Q4_0", GgmlDType::Q8_0), ("Q4_1", GgmlDType::Q8_1), ("Q6_K", GgmlDType::Q8K)] {
        let (m, _) = matrix(&file, name);
        let x = input(3, m.cols());
        let tensor = Tensor::from_slice(&x, (3, m.cols()), &Device::Cpu).unwrap();
        let candle = QTensor::quantize(&tensor, candle_type).unwrap().dequantize(&Device::Cpu).unwrap();
        let candle: Vec<f32> = candle.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(m.read_as(&x, &ThreadPool::new(1)), candle, "{name}");
    }
    let (m, _) = matrix(&file, "F16");
    let x = input(2, m.cols());
    assert_eq!(m.read_as(&x, &ThreadPool::new(1)), x, "float weights read their input unrounded");
}

/// The suite the browser runs too (`checkCpuKernels`), on one to three threads, each thread
/// count giving the same bits.
#[test]
fn products_match_an_f64_product_on_every_instruction_set_and_thread_count() {
    let file = fixture();
    let pools = [ThreadPool::new(1), ThreadPool::new(2), ThreadPool::new(3)];
    let isas = Isa::ALL.iter().filter(|isa| isa.available()).count();
    for pool in &pools {
        let checks = check_kernels(&file, pool).unwrap();
        assert_eq!(checks.len(), FORMATS.len() * isas * TOKENS.len());
        for check in &checks {
            assert!(check.passed(), "{check:?}");
        }
    }
    for name in FORMATS {
        let (m, _) = matrix(&file, name);
        let x = input(5, m.cols());
        let out = m.matmul(&x, &pools[0]);
        for pool in &pools[1..] {
            assert_eq!(m.matmul(&x, pool), out, "{name} on {} threads", pool.threads());
        }
    }
}

/// The product with the transpose (the backward pass's) against an f64 sum over the `gguf`
/// package's dequantisation, with the same bits on one to three threads.
#[test]
fn transposed_products_match_an_f64_product_on_every_thread_count() {
    let file = fixture();
    for name in FORMATS {
        let (m, reference) = matrix(&file, name);
        let (rows, cols) = (m.rows(), m.cols());
        let x = input(3, rows);
        let out = m.transposed_matmul(&x, &ThreadPool::new(1));
        for i in 0..3 {
            for c in 0..cols {
                let exact: f64 =
                    (0..rows).map(|r| f64::from(x[i * rows + r]) * f64::from(reference[r * cols + c])).sum();
                let magnitude: f64 =
                    (0..rows).map(|r| (f64::from(x[i * rows + r]) * f64::from(reference[r * cols + c])).abs()).sum();
                let got = f64::from(out[i * cols + c]);
                assert!((got - exact).abs() <= 1e-6 * magnitude.max(1e-30), "{name} ({i}, {c}): {got} vs {exact}");
            }
        }
        for threads in [2, 3] {
            assert_eq!(m.transposed_matmul(&x, &ThreadPool::new(threads)), out, "{name} on {threads} threads");
        }
    }
}

#[test]
fn every_format_gives_the_same_bits_on_every_instruction_set() {
    // Where SIMD is a build feature, the comparison below includes it.
    if cfg!(target_arch = "aarch64") || cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
        assert_ne!(Isa::detected(), Isa::Scalar);
    }
    let file = fixture();
    let pool = ThreadPool::new(2);
    for name in FORMATS {
        // Nine rows: two tiles of four and one row alone.
        let x = input(9, matrix(&file, name).0.cols());
        let scalar = matrix(&file, name).0.with_isa(Isa::Scalar).unwrap().matmul(&x, &pool);
        for isa in Isa::ALL.into_iter().filter(|isa| isa.available()) {
            assert_eq!(matrix(&file, name).0.with_isa(isa).unwrap().matmul(&x, &pool), scalar, "{name} {isa:?}");
        }
    }
}

#[test]
fn a_row_of_partial_blocks_is_a_typed_error_naming_the_tensor() {
    let name = "blk.0.attn_q.weight";
    let err = QuantizedMatrix::new(name, GgmlType::Q4_0, 2, 40, vec![0; 36]).err().unwrap();
    assert!(matches!(err, MatrixError::PartialBlock { format: Format::Q4_0, cols: 40, block: 32, .. }), "{err:?}");
    assert!(err.to_string().contains(name), "{err}");
    let err = QuantizedMatrix::new(name, GgmlType::Q4_0, 2, 64, vec![0; 71]).err().unwrap();
    assert!(matches!(err, MatrixError::Size { expected: 72, got: 71, .. }), "{err:?}");
    let info =
        TensorInfo { name: name.into(), ggml_type: GgmlType::Q4_0, shape: vec![40, 2], file_offset: 0, byte_len: 36 };
    let Err(err) = CandleBackend::cpu().matrix(&info, vec![0; 36]) else { panic!("a 40-wide Q4_0 matrix loaded") };
    assert!(err.to_string().contains(name), "{err}");
}

#[test]
fn the_pool_runs_every_task_once_for_concurrent_callers() {
    let pool = ThreadPool::new(3);
    std::thread::scope(|scope| {
        for caller in 0..4 {
            let pool = &pool;
            scope.spawn(move || {
                for job in 0..200 {
                    let tasks = 1 + (caller * 7 + job) % 37;
                    let runs: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                    pool.run(tasks, &|i| {
                        runs[i].fetch_add(1, Ordering::Relaxed);
                    });
                    assert!(runs.iter().all(|r| r.load(Ordering::Relaxed) == 1), "caller {caller} job {job}");
                }
            });
        }
    });
}

/// A hosted pool (the wasm build's, whose workers are Web Workers) on threads the test lends it:
/// before they start the caller runs every task; then the tasks spread over them, and products
/// keep the bits they have on one thread.
#[test]
fn a_hosted_pool_runs_every_task_once_on_the_threads_the_host_lends_it() {
    let pool = ThreadPool::hosted(3);
    assert_eq!(pool.threads(), 3);
    let count = AtomicUsize::new(0);
    pool.run(16, &|_| {
        count.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(count.load(Ordering::Relaxed), 16, "the caller alone ran the tasks");
    let lent: Vec<_> = (0..2).map(|_| pool.hosted_worker()).map(|w| std::thread::spawn(move || w.run())).collect();
    let seen = std::sync::Mutex::new(std::collections::HashSet::new());
    for _ in 0..1000 {
        pool.run(64, &|_| {
            seen.lock().unwrap().insert(std::thread::current().id());
            std::thread::sleep(std::time::Duration::from_micros(20));
        });
        if seen.lock().unwrap().len() == 3 {
            break;
        }
    }
    assert_eq!(seen.lock().unwrap().len(), 3, "the lent threads took tasks");
    let file = fixture();
    let (m, _) = matrix(&file, "Q4_K");
    let x = input(5, m.cols());
    assert_eq!(m.matmul(&x, &pool), m.matmul(&x, &ThreadPool::new(1)));
    drop(pool);
    for thread in lent {
        thread.join().expect("a lent thread returns once the pool is dropped");
    }
}

#[test]
fn a_panicking_task_panics_the_caller_and_leaves_the_pool_working() {
    let pool = ThreadPool::new(2);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.run(16, &|i| assert!(i != 11, "task 11 fails"));
    }));
    assert!(outcome.is_err());
    let count = AtomicUsize::new(0);
    pool.run(16, &|_| {
        count.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(count.load(Ordering::Relaxed), 16);
}

/// Two query heads sharing one key/value head of width 1, two queries after one cached position:
/// query 0 sits at position 1 and sees keys 0–1, query 1 sees keys 0–2. With keys 0, 1, 2, values
/// 1, 2, 4 and the scale 1/√1, each output is the values' softmax-weighted mean:
/// - query 0: head 0 (q = 1) weighs e⁰, e¹; head 1 (q = 0) weighs both alike;
/// - query 1: head 0 (q = 0) weighs all three alike; head 1 (q = 2) weighs e⁰, e², e⁴.
#[test]
fn attention_matches_a_case_worked_by_hand() {
    let e = std::f32::consts::E;
    let shape = AttentionShape { t: 2, total: 3, heads: 2, kv_heads: 1, head_dim: 1, window: None };
    let (q, k, v) = ([1.0, 0.0, 0.0, 2.0], [0.0, 1.0, 2.0], [1.0, 2.0, 4.0]);
    let weights_00 = [1.0 / (1.0 + e), e / (1.0 + e), 0.0];
    let weights_01 = [1.0 / 3.0; 3];
    let sum_11 = 1.0 + e * e + e.powi(4);
    let weights_10 = [0.5, 0.5, 0.0];
    let weights_11 = [1.0 / sum_11, e * e / sum_11, e.powi(4) / sum_11];
    let z = [(1.0 + 2.0 * e) / (1.0 + e), 1.5, 7.0 / 3.0, (1.0 + 2.0 * e * e + 4.0 * e.powi(4)) / sum_11];
    // [heads, t, total]: head 0's two queries, then head 1's.
    let weights: Vec<f32> = [weights_00, weights_01, weights_10, weights_11].concat();
    for threads in 1..=3 {
        let (got_z, got_weights) = attention(&q, &k, &v, shape, true, &ThreadPool::new(threads));
        for (got, want) in got_z.iter().zip(&z).chain(got_weights.unwrap().iter().zip(&weights)) {
            assert!((got - want).abs() < 1e-6, "{threads} threads: {got} against {want}");
        }
        let (without, none) = attention(&q, &k, &v, shape, false, &ThreadPool::new(threads));
        assert_eq!(without, got_z);
        assert!(none.is_none());
    }
}

/// The case above with a sliding window of 2: query 0 (position 1) still sees keys 0–1, query 1
/// (position 2) now sees keys 1–2 only: head 0 (q = 0) weighs values 2 and 4 alike, head 1
/// (q = 2) weighs them e², e⁴.
#[test]
fn a_sliding_window_hides_the_keys_before_it() {
    let e = std::f32::consts::E;
    let shape = AttentionShape { t: 2, total: 3, heads: 2, kv_heads: 1, head_dim: 1, window: Some(2) };
    let (q, k, v) = ([1.0, 0.0, 0.0, 2.0], [0.0, 1.0, 2.0], [1.0, 2.0, 4.0]);
    let weights_00 = [1.0 / (1.0 + e), e / (1.0 + e), 0.0];
    let weights_01 = [0.0, 0.5, 0.5];
    let weights_10 = [0.5, 0.5, 0.0];
    let weights_11 = [0.0, 1.0 / (1.0 + e * e), e * e / (1.0 + e * e)];
    let z = [(1.0 + 2.0 * e) / (1.0 + e), 1.5, 3.0, (2.0 + 4.0 * e * e) / (1.0 + e * e)];
    let weights: Vec<f32> = [weights_00, weights_01, weights_10, weights_11].concat();
    for threads in 1..=2 {
        let (got_z, got_weights) = attention(&q, &k, &v, shape, true, &ThreadPool::new(threads));
        for (got, want) in got_z.iter().zip(&z).chain(got_weights.unwrap().iter().zip(&weights)) {
            assert!((got - want).abs() < 1e-6, "{threads} threads: {got} against {want}");
        }
    }
}

/// The same bits as candle_nn's rotary kernels, which take heads in their own layout
/// `[1, heads, t, head_dim]`, in both pairings.
#[test]
fn rotation_matches_candles_kernels() {
    let (t, heads, head_dim) = (3, 2, 8);
    let x = input(t, heads * head_dim);
    let angles: Vec<f32> = (0..t * head_dim / 2).map(|i| 0.37 * i as f32).collect();
    let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
    let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
    let device = Device::Cpu;
    let table = |v: &[f32]| Tensor::from_slice(v, (t, head_dim / 2), &device).unwrap();
    let by_head = Tensor::from_slice(&x, (1, t, heads, head_dim), &device)
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap();
    for interleaved in [false, true] {
        let candle = if interleaved {
            candle_nn::rotary_emb::rope_i(&by_head, &table(&cos), &table(&sin))
        } else {
            candle_nn::rotary_emb::rope(&by_head, &table(&cos), &table(&sin))
        };
        let candle: Vec<f32> = candle.unwrap().transpose(1, 2).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(rotate(&x, &cos, &sin, heads, head_dim, interleaved), candle, "interleaved: {interleaved}");
    }
}
