//! The CPU kernels (src/backend/kernels) on random blocks of every format they compute with:
//! their dequantisation against the PyPI `gguf` package's (tests/fixtures/kernel-blocks.gguf,
//! written by scripts/make_kernel_fixture.py), their rounding of the input against candle's
//! implementation of llama.cpp's Q8_0 / Q8_1 / Q8_K, and their products, on every instruction
//! set this machine runs and on one to three threads, against an f64 product of the two.

use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use glassbox::backend::candle::CandleBackend;
use glassbox::backend::kernels::{Format, Isa, MatrixError, QuantizedMatrix, ThreadPool};
use glassbox::backend::Backend;
use glassbox::gguf::{GgmlType, GgufFile, TensorInfo};

const FORMATS: [&str; 10] = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "F32", "F16"];

fn fixture() -> GgufFile {
    GgufFile::open(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kernel-blocks.gguf")).unwrap()
}

/// The matrix stored as `name` and the `gguf` package's dequantisation of it.
fn matrix(file: &GgufFile, name: &str) -> (QuantizedMatrix, Vec<f32>) {
    let info = file.header.tensor(name).unwrap();
    let (cols, rows) = (info.shape[0] as usize, info.shape[1] as usize);
    let m = QuantizedMatrix::new(name, info.ggml_type, rows, cols, &file.read_tensor(info).unwrap()).unwrap();
    let reference = file.read_tensor(file.header.tensor(&format!("{name}.dequantized")).unwrap()).unwrap();
    let reference = reference.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    (m, reference)
}

/// `t` rows of `cols` inputs in about [−1, 1], one large value a row (an outlier sets the
/// rounding's scale), from a fixed linear congruential sequence.
fn input(t: usize, cols: usize) -> Vec<f32> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..t * cols)
        .map(|i| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let v = ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
            if i % cols == 7 {
                v * 6.0
            } else {
                v
            }
        })
        .collect()
}

fn instruction_sets() -> Vec<Isa> {
    [Isa::Scalar, Isa::Avx2, Isa::Simd128].into_iter().filter(|isa| isa.available()).collect()
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
        assert_eq!(m.read_as(&x), candle, "{name}");
    }
    let (m, _) = matrix(&file, "F16");
    let x = input(2, m.cols());
    assert_eq!(m.read_as(&x), x, "float weights read their input unrounded");
}

#[test]
fn products_match_an_f64_product_on_every_instruction_set_and_thread_count() {
    let file = fixture();
    let pools = [ThreadPool::new(1), ThreadPool::new(2), ThreadPool::new(3)];
    for name in FORMATS {
        for isa in instruction_sets() {
            let (m, weights) = matrix(&file, name);
            let m = m.with_isa(isa).unwrap();
            let (rows, cols) = (m.rows(), m.cols());
            for t in [1, 3, 5] {
                let x = input(t, cols);
                let read = m.read_as(&x);
                let out = m.matmul(&x, &pools[0]);
                for pool in &pools[1..] {
                    assert_eq!(m.matmul(&x, pool), out, "{name} {isa:?}: threads change nothing");
                }
                for i in 0..t {
                    for r in 0..rows {
                        let (w, a) = (&weights[r * cols..(r + 1) * cols], &read[i * cols..(i + 1) * cols]);
                        let exact: f64 = w.iter().zip(a).map(|(&w, &a)| w as f64 * a as f64).sum();
                        let magnitude: f64 = w.iter().zip(a).map(|(&w, &a)| (w as f64 * a as f64).abs()).sum();
                        let got = out[i * rows + r] as f64;
                        assert!(
                            (got - exact).abs() <= 1e-5 * magnitude + 1e-7,
                            "{name} {isa:?} t={t} token {i} row {r}: {got} against {exact} (scale {magnitude})"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn the_k_quants_give_the_same_bits_on_every_instruction_set() {
    let file = fixture();
    let pool = ThreadPool::new(2);
    for name in ["Q4_K", "Q5_K", "Q6_K"] {
        let x = input(3, 512);
        let scalar = matrix(&file, name).0.with_isa(Isa::Scalar).unwrap().matmul(&x, &pool);
        for isa in instruction_sets() {
            assert_eq!(matrix(&file, name).0.with_isa(isa).unwrap().matmul(&x, &pool), scalar, "{name} {isa:?}");
        }
    }
}

#[test]
fn a_row_of_partial_blocks_is_a_typed_error_naming_the_tensor() {
    let name = "blk.0.attn_q.weight";
    let err = QuantizedMatrix::new(name, GgmlType::Q4_0, 2, 40, &[0; 36]).err().unwrap();
    assert!(matches!(err, MatrixError::PartialBlock { format: Format::Q4_0, cols: 40, block: 32, .. }), "{err:?}");
    assert!(err.to_string().contains(name), "{err}");
    let err = QuantizedMatrix::new(name, GgmlType::Q4_0, 2, 64, &[0; 71]).err().unwrap();
    assert!(matches!(err, MatrixError::Size { expected: 72, got: 71, .. }), "{err:?}");
    let info =
        TensorInfo { name: name.into(), ggml_type: GgmlType::Q4_0, shape: vec![40, 2], file_offset: 0, byte_len: 36 };
    let Err(err) = CandleBackend::cpu().matrix(&info, &[0; 36]) else { panic!("a 40-wide Q4_0 matrix loaded") };
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
