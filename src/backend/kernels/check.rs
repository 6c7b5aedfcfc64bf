//! The kernels against a fixture of random blocks of every format and the PyPI `gguf` package's
//! dequantisation of them (tests/fixtures/kernel-blocks.gguf, scripts/make_kernel_fixture.py),
//! on every instruction set this build runs: the same suite natively (tests/kernels.rs) and in
//! the browser (`checkCpuKernels`).

use serde::Serialize;

use super::{Isa, QuantizedMatrix, ThreadPool};
use crate::gguf::Gguf;

/// The fixture's matrices, each stored as NAME and NAME.dequantized (F32).
pub const FORMATS: [&str; 10] = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "F32", "F16"];

/// Token counts each product is checked with.
pub const TOKENS: [usize; 3] = [1, 3, 5];

/// One format on one instruction set with `tokens` input rows.
#[derive(Clone, Debug, Serialize)]
pub struct KernelCheck {
    pub format: &'static str,
    pub isa: &'static str,
    pub tokens: usize,
    /// Whether every value dequantises to the `gguf` package's value exactly.
    pub dequantised_exact: bool,
    /// The largest `|product − f64 product| / bound` over the outputs, where the bound is
    /// `1e-5 · Σ|w·x| + 1e-7` (f32 sums over a few hundred terms); at most 1 passes.
    pub worst_error_ratio: f64,
    /// Whether the products have the portable path's bits exactly (every instruction set sums
    /// in one order).
    pub same_bits_as_portable: bool,
}

impl KernelCheck {
    pub fn passed(&self) -> bool {
        self.dequantised_exact && self.worst_error_ratio <= 1.0 && self.same_bits_as_portable
    }
}

/// `t` rows of `cols` inputs in about [−1, 1] with one value six times larger in each row (an
/// outlier sets the rounding's scale), from a fixed linear congruential sequence.
pub fn fixture_input(t: usize, cols: usize) -> Vec<f32> {
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

/// The matrix stored as `name` in the fixture, and the `gguf` package's values of it.
pub fn fixture_matrix(fixture: &[u8], name: &str) -> Result<(QuantizedMatrix, Vec<f32>), String> {
    let gguf = Gguf::parse(fixture, fixture.len() as u64).map_err(|e| e.to_string())?;
    let bytes = |tensor: &str| -> Result<&[u8], String> {
        let info = gguf.tensor(tensor).map_err(|e| e.to_string())?;
        let start = usize::try_from(info.file_offset).map_err(|e| e.to_string())?;
        let len = usize::try_from(info.byte_len).map_err(|e| e.to_string())?;
        fixture.get(start..start.saturating_add(len)).ok_or_else(|| format!("{tensor} lies outside the fixture"))
    };
    let info = gguf.tensor(name).map_err(|e| e.to_string())?;
    let [cols, rows] = info.shape[..] else { return Err(format!("{name} is not a matrix")) };
    let matrix = QuantizedMatrix::new(name, info.ggml_type, rows as usize, cols as usize, bytes(name)?.to_vec())
        .map_err(|e| e.to_string())?;
    let values = bytes(&format!("{name}.dequantized"))?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((matrix, values))
}

/// Every format on every instruction set this build runs, with each of [`TOKENS`] input rows.
pub fn check_kernels(fixture: &[u8], pool: &ThreadPool) -> Result<Vec<KernelCheck>, String> {
    let mut checks = Vec::new();
    for format in FORMATS {
        for isa in Isa::ALL.into_iter().filter(|isa| isa.available()) {
            let (matrix, weights) = fixture_matrix(fixture, format)?;
            let matrix = matrix.with_isa(isa).map_err(|e| e.to_string())?;
            let dequantised_exact = matrix.dequantize() == weights;
            let (rows, cols) = (matrix.rows(), matrix.cols());
            for tokens in TOKENS {
                let x = fixture_input(tokens, cols);
                let read = matrix.read_as(&x, pool);
                let out = matrix.matmul(&x, pool);
                let portable = fixture_matrix(fixture, format)?.0.with_isa(Isa::Scalar).map_err(|e| e.to_string())?;
                let same_bits_as_portable =
                    portable.matmul(&x, pool).iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits());
                let mut worst_error_ratio = 0f64;
                for i in 0..tokens {
                    let a = &read[i * cols..(i + 1) * cols];
                    for r in 0..rows {
                        let w = &weights[r * cols..(r + 1) * cols];
                        let exact: f64 = w.iter().zip(a).map(|(&w, &a)| w as f64 * a as f64).sum();
                        let magnitude: f64 = w.iter().zip(a).map(|(&w, &a)| (w as f64 * a as f64).abs()).sum();
                        let error = (out[i * rows + r] as f64 - exact).abs();
                        worst_error_ratio = worst_error_ratio.max(error / (1e-5 * magnitude + 1e-7));
                    }
                }
                checks.push(KernelCheck {
                    format,
                    isa: isa.name(),
                    tokens,
                    dequantised_exact,
                    worst_error_ratio,
                    same_bits_as_portable,
                });
            }
        }
    }
    Ok(checks)
}
