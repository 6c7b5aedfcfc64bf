//! glassbox's CPU kernels for GGUF weights: products of quantised weight rows with activations
//! rounded to 8 bits (llama.cpp's scheme, see [`blocks`]), the SIMD path chosen at run time
//! (AVX2 on x86-64; NEON on aarch64 and simd128 in wasm, where they are build features), split by output rows over a
//! [`ThreadPool`] that lives across calls; and causal attention ([`attention`]) on that pool.
//!
//! Every path computes each block's integer dot product exactly and adds the blocks' scaled
//! sums in the same order, so a product gives the same bits natively and in the browser, on
//! every instruction set and thread count.

pub mod attention;
pub mod blocks;
pub mod check;
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod neon;
mod pool;
pub mod rope;
#[cfg(target_arch = "wasm32")]
mod wasm;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::sync::OnceLock;

pub use blocks::{Q8Block, Q8KBlock};
pub use pool::{physical_cores, HostedWorker, ThreadPool};

use crate::gguf::GgmlType;

/// The weight formats the kernels compute with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

impl Format {
    pub fn of(t: GgmlType) -> Option<Format> {
        Some(match t {
            GgmlType::F32 => Format::F32,
            GgmlType::F16 => Format::F16,
            GgmlType::Q4_0 => Format::Q4_0,
            GgmlType::Q4_1 => Format::Q4_1,
            GgmlType::Q5_0 => Format::Q5_0,
            GgmlType::Q5_1 => Format::Q5_1,
            GgmlType::Q8_0 => Format::Q8_0,
            GgmlType::Q4K => Format::Q4K,
            GgmlType::Q5K => Format::Q5K,
            GgmlType::Q6K => Format::Q6K,
            _ => return None,
        })
    }

    /// (values, bytes) of one block.
    pub fn block(self) -> (usize, usize) {
        match self {
            Format::F32 => (1, 4),
            Format::F16 => (1, 2),
            Format::Q4_0 => (blocks::QK, blocks::Q4_0_BYTES),
            Format::Q4_1 => (blocks::QK, blocks::Q4_1_BYTES),
            Format::Q5_0 => (blocks::QK, blocks::Q5_0_BYTES),
            Format::Q5_1 => (blocks::QK, blocks::Q5_1_BYTES),
            Format::Q8_0 => (blocks::QK, blocks::Q8_0_BYTES),
            Format::Q4K => (blocks::QK_K, blocks::Q4_K_BYTES),
            Format::Q5K => (blocks::QK_K, blocks::Q5_K_BYTES),
            Format::Q6K => (blocks::QK_K, blocks::Q6_K_BYTES),
        }
    }

    /// How products with this format round their input.
    pub fn activations(self) -> ActivationFormat {
        match self {
            Format::F32 | Format::F16 => ActivationFormat::Float,
            Format::Q4_0 | Format::Q4_1 | Format::Q5_0 | Format::Q5_1 | Format::Q8_0 => ActivationFormat::Q8,
            Format::Q4K | Format::Q5K | Format::Q6K => ActivationFormat::Q8K,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivationFormat {
    /// Read as they are.
    Float,
    /// Blocks of 32 rounded to 8 bits ([`Q8Block`]).
    Q8,
    /// Blocks of 256 rounded to 8 bits ([`Q8KBlock`]).
    Q8K,
}

/// The instruction set a product runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust, the same on every target.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C, detected at run time.
    Avx2,
    /// wasm32 SIMD, when the module is built with it.
    Simd128,
    /// aarch64 NEON, part of every aarch64 target's baseline.
    Neon,
}

impl Isa {
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Simd128, Isa::Neon];

    /// The fastest this machine runs.
    pub fn detected() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            [Isa::Avx2, Isa::Neon, Isa::Simd128].into_iter().find(|isa| isa.available()).unwrap_or(Isa::Scalar)
        })
    }

    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::available(),
            Isa::Simd128 => cfg!(all(target_arch = "wasm32", target_feature = "simd128")),
            Isa::Neon => cfg!(all(target_arch = "aarch64", target_feature = "neon")),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Simd128 => "simd128",
            Isa::Neon => "neon",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error("tensor {name}: {format:?} has no CPU kernel")]
    NoKernel { name: String, format: GgmlType },
    #[error("tensor {name}: its rows of {cols} values are not whole {format:?} blocks of {block}")]
    PartialBlock { name: String, format: Format, cols: usize, block: usize },
    #[error("tensor {name}: {got} bytes, where {rows} × {cols} {format:?} takes {expected}")]
    Size { name: String, format: Format, rows: usize, cols: usize, expected: usize, got: usize },
    #[error("{isa:?} is not available on this machine")]
    IsaUnavailable { isa: Isa },
}

/// One weight row's products with four rows of activations, each equal to the one-row product's.
type FourRows<A> = fn(&[u8], [&[A]; 4]) -> [f32; 4];

/// One row's product with one row of activations in the weights' activation format, and where an
/// instruction set has one, with four rows at once (a prefill's tile of tokens).
#[derive(Clone, Copy)]
enum RowDot {
    Float(fn(&[u8], &[f32]) -> f32),
    Q8(fn(&[u8], &[Q8Block]) -> f32, Option<FourRows<Q8Block>>),
    Q8K(fn(&[u8], &[Q8KBlock]) -> f32, Option<FourRows<Q8KBlock>>),
}

/// Wraps an `unsafe` SIMD dot product as a safe function pointer; [`row_dot`] hands it out only
/// when [`Isa::available`] says the CPU runs it.
#[cfg(target_arch = "x86_64")]
macro_rules! checked {
    ($module:ident :: $f:ident, $act:ty) => {{
        fn dot(row: &[u8], act: $act) -> f32 {
            // SAFETY: selected only after `Isa::available` found the instructions.
            unsafe { $module::$f(row, act) }
        }
        dot as fn(&[u8], $act) -> f32
    }};
}

/// [`checked`] for the four-row products.
#[cfg(target_arch = "x86_64")]
macro_rules! checked_four {
    ($module:ident :: $f:ident, $block:ty) => {{
        fn dot(row: &[u8], act: [&[$block]; 4]) -> [f32; 4] {
            // SAFETY: as in `checked`.
            unsafe { $module::$f(row, act) }
        }
        Some(dot as FourRows<$block>)
    }};
}

fn row_dot(format: Format, isa: Isa) -> RowDot {
    use Format::*;
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => match format {
            F32 => RowDot::Float(checked!(x86::dot_f32, &[f32])),
            F16 => RowDot::Float(checked!(x86::dot_f16, &[f32])),
            Q4_0 => RowDot::Q8(checked!(x86::dot_q4_0, &[Q8Block]), checked_four!(x86::dot4_q4_0, Q8Block)),
            Q4_1 => RowDot::Q8(checked!(x86::dot_q4_1, &[Q8Block]), checked_four!(x86::dot4_q4_1, Q8Block)),
            Q5_0 => RowDot::Q8(checked!(x86::dot_q5_0, &[Q8Block]), checked_four!(x86::dot4_q5_0, Q8Block)),
            Q5_1 => RowDot::Q8(checked!(x86::dot_q5_1, &[Q8Block]), checked_four!(x86::dot4_q5_1, Q8Block)),
            Q8_0 => RowDot::Q8(checked!(x86::dot_q8_0, &[Q8Block]), checked_four!(x86::dot4_q8_0, Q8Block)),
            Q4K => RowDot::Q8K(checked!(x86::dot_q4_k, &[Q8KBlock]), checked_four!(x86::dot4_q4_k, Q8KBlock)),
            Q5K => RowDot::Q8K(checked!(x86::dot_q5_k, &[Q8KBlock]), checked_four!(x86::dot4_q5_k, Q8KBlock)),
            Q6K => RowDot::Q8K(checked!(x86::dot_q6_k, &[Q8KBlock]), checked_four!(x86::dot4_q6_k, Q8KBlock)),
        },
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Isa::Simd128 => match format {
            Q4_0 => RowDot::Q8(wasm::dot_q4_0, None),
            Q4_1 => RowDot::Q8(wasm::dot_q4_1, None),
            Q5_0 => RowDot::Q8(wasm::dot_q5_0, None),
            Q5_1 => RowDot::Q8(wasm::dot_q5_1, None),
            Q8_0 => RowDot::Q8(wasm::dot_q8_0, None),
            Q4K => RowDot::Q8K(wasm::dot_q4_k, None),
            Q5K => RowDot::Q8K(wasm::dot_q5_k, None),
            Q6K => RowDot::Q8K(wasm::dot_q6_k, None),
            _ => row_dot(format, Isa::Scalar),
        },
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        Isa::Neon => match format {
            Q4_0 => RowDot::Q8(neon::dot_q4_0, None),
            Q4_1 => RowDot::Q8(neon::dot_q4_1, None),
            Q5_0 => RowDot::Q8(neon::dot_q5_0, None),
            Q5_1 => RowDot::Q8(neon::dot_q5_1, None),
            Q8_0 => RowDot::Q8(neon::dot_q8_0, None),
            Q4K => RowDot::Q8K(neon::dot_q4_k, None),
            Q5K => RowDot::Q8K(neon::dot_q5_k, None),
            Q6K => RowDot::Q8K(neon::dot_q6_k, None),
            _ => row_dot(format, Isa::Scalar),
        },
        _ => match format {
            F32 => RowDot::Float(blocks::dot_f32),
            F16 => RowDot::Float(blocks::dot_f16),
            Q4_0 => RowDot::Q8(blocks::dot_q4_0, None),
            Q4_1 => RowDot::Q8(blocks::dot_q4_1, None),
            Q5_0 => RowDot::Q8(blocks::dot_q5_0, None),
            Q5_1 => RowDot::Q8(blocks::dot_q5_1, None),
            Q8_0 => RowDot::Q8(blocks::dot_q8_0, None),
            Q4K => RowDot::Q8K(blocks::dot_q4_k, None),
            Q5K => RowDot::Q8K(blocks::dot_q5_k, None),
            Q6K => RowDot::Q8K(blocks::dot_q6_k, None),
        },
    }
}

/// One product's input rounded for the weights, `t` rows of `cols` values, with the row
/// product that reads it.
enum Prepared<'a> {
    Float(&'a [f32], fn(&[u8], &[f32]) -> f32),
    Q8(Vec<Q8Block>, fn(&[u8], &[Q8Block]) -> f32, Option<FourRows<Q8Block>>),
    Q8K(Vec<Q8KBlock>, fn(&[u8], &[Q8KBlock]) -> f32, Option<FourRows<Q8KBlock>>),
}

impl Prepared<'_> {
    /// Weight row `w` times input rows `i .. i + 4`: in one pass over the row where the
    /// instruction set has a four-row product, else row by row.
    fn dot_four(&self, w: &[u8], i: usize, cols: usize) -> [f32; 4] {
        match self {
            Prepared::Q8(a, _, Some(four)) => four(w, four_rows(a, i, cols / blocks::QK)),
            Prepared::Q8K(a, _, Some(four)) => four(w, four_rows(a, i, cols / blocks::QK_K)),
            _ => std::array::from_fn(|k| self.dot(w, i + k, cols)),
        }
    }

    /// Weight row `w` times input row `i`.
    fn dot(&self, w: &[u8], i: usize, cols: usize) -> f32 {
        match self {
            Prepared::Float(x, f) => f(w, &x[i * cols..(i + 1) * cols]),
            Prepared::Q8(a, f, _) => {
                let per_row = cols / blocks::QK;
                f(w, &a[i * per_row..(i + 1) * per_row])
            }
            Prepared::Q8K(a, f, _) => {
                let per_row = cols / blocks::QK_K;
                f(w, &a[i * per_row..(i + 1) * per_row])
            }
        }
    }
}

/// Activation rows `i .. i + 4`, each `per_row` blocks.
fn four_rows<A>(a: &[A], i: usize, per_row: usize) -> [&[A]; 4] {
    std::array::from_fn(|k| &a[(i + k) * per_row..(i + k + 1) * per_row])
}

/// A buffer the pool's threads write at disjoint indices.
struct Output<T>(*mut T);
// SAFETY: each task writes only its own cells.
unsafe impl<T: Send> Sync for Output<T> {}

impl<T> Output<T> {
    /// # Safety
    /// `index` lies in the buffer, and no other thread writes it.
    unsafe fn write(&self, index: usize, value: T) {
        *self.0.add(index) = value;
    }
}

/// Each `values`-long chunk of `x` rounded by `quantize`, split across the pool when there are
/// enough of them (a prefill's input) for that to pay.
fn quantize_chunks<T: Copy + Send>(
    x: &[f32],
    values: usize,
    zero: T,
    quantize: fn(&[f32]) -> T,
    pool: &ThreadPool,
) -> Vec<T> {
    const CHUNKS_PER_TASK: usize = 256;
    let chunks = x.len() / values;
    let mut out = vec![zero; chunks];
    let output = Output(out.as_mut_ptr());
    pool.run(chunks.div_ceil(CHUNKS_PER_TASK), &|task| {
        for c in task * CHUNKS_PER_TASK..((task + 1) * CHUNKS_PER_TASK).min(chunks) {
            // SAFETY: chunk c belongs to this task alone and lies in `out`.
            unsafe { output.write(c, quantize(&x[c * values..(c + 1) * values])) };
        }
    });
    out
}

/// A `[rows, cols]` weight matrix in its GGUF encoding (GGUF shape `[cols, rows]`).
pub struct QuantizedMatrix {
    format: Format,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    bytes: Vec<u8>,
    isa: Isa,
}

impl QuantizedMatrix {
    pub fn new(name: &str, ggml_type: GgmlType, rows: usize, cols: usize, bytes: Vec<u8>) -> Result<Self, MatrixError> {
        let format =
            Format::of(ggml_type).ok_or_else(|| MatrixError::NoKernel { name: name.into(), format: ggml_type })?;
        let (values, block_bytes) = format.block();
        if cols % values != 0 {
            return Err(MatrixError::PartialBlock { name: name.into(), format, cols, block: values });
        }
        let row_bytes = cols / values * block_bytes;
        let expected = row_bytes.checked_mul(rows);
        if expected != Some(bytes.len()) {
            let expected = expected.unwrap_or(usize::MAX);
            return Err(MatrixError::Size { name: name.into(), format, rows, cols, expected, got: bytes.len() });
        }
        Ok(QuantizedMatrix { format, rows, cols, row_bytes, bytes, isa: Isa::detected() })
    }

    /// The same matrix computing with `isa` instead of the detected one.
    pub fn with_isa(mut self, isa: Isa) -> Result<Self, MatrixError> {
        if !isa.available() {
            return Err(MatrixError::IsaUnavailable { isa });
        }
        self.isa = isa;
        Ok(self)
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    fn row(&self, r: usize) -> &[u8] {
        &self.bytes[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let (values, block_bytes) = self.format.block();
        let dequantize = blocks::block_dequantizer(self.format);
        for (block, out) in self.row(r).chunks_exact(block_bytes).zip(out.chunks_exact_mut(values)) {
            dequantize(block, out);
        }
    }

    /// Rows `ids` as f32, `[ids.len(), cols]`; `None` if an id is not a row.
    pub fn dequantize_rows(&self, ids: &[u32]) -> Option<Vec<f32>> {
        let mut out = vec![0f32; ids.len() * self.cols];
        for (&id, out) in ids.iter().zip(out.chunks_exact_mut(self.cols.max(1))) {
            if id as usize >= self.rows {
                return None;
            }
            self.dequantize_row(id as usize, out);
        }
        Some(out)
    }

    /// Every value as f32, `[rows, cols]`.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for (r, out) in out.chunks_exact_mut(self.cols.max(1)).enumerate() {
            self.dequantize_row(r, out);
        }
        out
    }

    fn prepare<'a>(&self, x: &'a [f32], pool: &ThreadPool) -> Prepared<'a> {
        match row_dot(self.format, self.isa) {
            RowDot::Float(f) => Prepared::Float(x, f),
            RowDot::Q8(f, four) => {
                Prepared::Q8(quantize_chunks(x, blocks::QK, Q8Block::ZERO, Q8Block::quantize, pool), f, four)
            }
            RowDot::Q8K(f, four) => {
                Prepared::Q8K(quantize_chunks(x, blocks::QK_K, Q8KBlock::ZERO, Q8KBlock::quantize, pool), f, four)
            }
        }
    }

    /// `x: [t, cols]` as the products read it (rounded to 8 bits for quantised weights), so that
    /// `matmul(x) = read_as(x) · dequantize()ᵀ` up to float summation order.
    pub fn read_as(&self, x: &[f32], pool: &ThreadPool) -> Vec<f32> {
        match self.prepare(x, pool) {
            Prepared::Float(x, _) => x.to_vec(),
            Prepared::Q8(blocks, _, _) => {
                blocks.iter().flat_map(|b| b.qs.iter().map(move |&q| q as f32 * b.d)).collect()
            }
            Prepared::Q8K(blocks, _, _) => {
                blocks.iter().flat_map(|b| b.qs.iter().map(move |&q| q as f32 * b.d)).collect()
            }
        }
    }

    /// `x · W` for `x: [t, rows]` row-major: `[t, cols]`, the product with the transpose (a
    /// gradient pulled back through [`matmul`](Self::matmul)), read from the stored blocks
    /// without a dequantised copy of the matrix. Each task takes a run of whole blocks of every
    /// row and sums the rows in order, so the result has the same bits on any thread count.
    pub fn transposed_matmul(&self, x: &[f32], pool: &ThreadPool) -> Vec<f32> {
        assert_eq!(x.len() % self.rows.max(1), 0, "an input row of other than {} values", self.rows);
        let t = x.len().checked_div(self.rows).unwrap_or(0);
        let mut out = vec![0f32; t * self.cols];
        if t == 0 || self.cols == 0 {
            return out;
        }
        let (values, block_bytes) = self.format.block();
        let blocks_per_row = self.cols / values;
        let blocks_per_task = blocks_per_row.div_ceil(pool.threads() * 4).max(1);
        let tasks = blocks_per_row.div_ceil(blocks_per_task);
        let dequantize = blocks::block_dequantizer(self.format);
        let output = Output(out.as_mut_ptr());
        let (rows, cols) = (self.rows, self.cols);
        pool.run(tasks, &|task| {
            let first = task * blocks_per_task;
            let last = (first + blocks_per_task).min(blocks_per_row);
            let width = (last - first) * values;
            let mut sums = vec![0f32; t * width];
            let mut block = vec![0f32; values];
            for r in 0..rows {
                let row = &self.row(r)[first * block_bytes..last * block_bytes];
                for (b, bytes) in row.chunks_exact(block_bytes).enumerate() {
                    dequantize(bytes, &mut block);
                    for i in 0..t {
                        let scale = x[i * rows + r];
                        let sums = &mut sums[i * width + b * values..i * width + (b + 1) * values];
                        sums.iter_mut().zip(&block).for_each(|(s, w)| *s += scale * w);
                    }
                }
            }
            for i in 0..t {
                for (k, &value) in sums[i * width..(i + 1) * width].iter().enumerate() {
                    // SAFETY: columns first·values .. last·values of every output row belong to
                    // this task alone.
                    unsafe { output.write(i * cols + first * values + k, value) };
                }
            }
        });
        out
    }

    /// `x · Wᵀ` for `x: [t, cols]` row-major: `[t, rows]`.
    pub fn matmul(&self, x: &[f32], pool: &ThreadPool) -> Vec<f32> {
        assert_eq!(x.len() % self.cols.max(1), 0, "an input row of other than {} values", self.cols);
        let t = x.len().checked_div(self.cols).unwrap_or(0);
        let mut out = vec![0f32; t * self.rows];
        if t == 0 || self.rows == 0 {
            return out;
        }
        let input = self.prepare(x, pool);
        // Enough tasks for the threads to even out, few enough that claiming them costs nothing.
        let rows_per_task = self.rows.div_ceil(pool.threads() * 8).max(8);
        let tasks = self.rows.div_ceil(rows_per_task);
        let output = Output(out.as_mut_ptr());
        let (rows, cols) = (self.rows, self.cols);
        pool.run(tasks, &|task| {
            let first = task * rows_per_task;
            let last = (first + rows_per_task).min(rows);
            // Each tile of rows stays in the L1 cache while every input row passes over it, four
            // at a time (where the kernel has it, a weight block is unpacked once for four).
            let fours = t / 4 * 4;
            for tile in (first..last).step_by(16) {
                for i in (0..fours).step_by(4) {
                    for r in tile..(tile + 16).min(last) {
                        for (k, value) in input.dot_four(self.row(r), i, cols).into_iter().enumerate() {
                            // SAFETY: cell (i + k, r) lies in `out` (i + k < t, r < rows), and
                            // row r belongs to this task alone.
                            unsafe { output.write((i + k) * rows + r, value) };
                        }
                    }
                }
                for i in fours..t {
                    for r in tile..(tile + 16).min(last) {
                        let value = input.dot(self.row(r), i, cols);
                        // SAFETY: as above.
                        unsafe { output.write(i * rows + r, value) };
                    }
                }
            }
        });
        out
    }
}
