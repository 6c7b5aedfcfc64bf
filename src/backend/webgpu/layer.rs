//! Tensors that stay on the device, and the decoder layer's operations on them: each operation
//! checks its shapes and the adapter's limits, dispatches one kernel and returns a new tensor,
//! so nothing crosses to the host until [`GpuDevice::read`].

use std::rc::Rc;

use super::pool::Pooled;
use super::{GpuDevice, GpuError, CACHED_UNIFORMS, WORKGROUP_SIZE};
use crate::backend::{Heads, Rope, TopK};
use crate::gguf::GgmlType;

/// A row-major `[rows, cols]` f32 matrix in a storage buffer.
#[derive(Clone)]
pub struct GpuTensor {
    storage: Rc<Pooled>,
    rows: usize,
    cols: usize,
}

impl GpuTensor {
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    fn buffer(&self) -> &wgpu::Buffer {
        self.storage.buffer()
    }
}

/// A `[rows, cols]` weight matrix in its GGUF encoding, in one buffer or, when larger than a
/// binding may be, in several that each hold whole rows.
#[derive(Clone)]
pub struct GpuMatrix {
    parts: Vec<MatrixPart>,
    kind: u32,
    rows: usize,
    cols: usize,
}

/// Rows `first_row..first_row + rows` of a matrix.
#[derive(Clone)]
struct MatrixPart {
    storage: Rc<Pooled>,
    first_row: usize,
    rows: usize,
}

impl GpuMatrix {
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// How many buffers hold it.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }
}

/// The ggml type id the kernels switch on, for the types they decode.
fn kernel_kind(ggml_type: GgmlType) -> Result<u32, GpuError> {
    match ggml_type {
        GgmlType::F32
        | GgmlType::F16
        | GgmlType::Q4_0
        | GgmlType::Q4_1
        | GgmlType::Q5_0
        | GgmlType::Q5_1
        | GgmlType::Q8_0
        | GgmlType::Q4K
        | GgmlType::Q5K
        | GgmlType::Q6K => Ok(ggml_type.id()),
        other => Err(GpuError::UnsupportedType(other.name())),
    }
}

fn bad_shape(message: String) -> GpuError {
    GpuError::BadShape(message)
}

/// The product of sizes from the caller, refused where it overflows (on wasm32 a usize wraps at
/// 4 Gi, and a wrapped size of 0 would pass every later check).
fn product(factors: &[usize]) -> Result<usize, GpuError> {
    factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        .ok_or_else(|| bad_shape(format!("the sizes {factors:?} multiply past what this machine can address")))
}

/// Every activation buffer: bound as storage, copied in and out.
const TENSOR_USAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

/// The kernels for `x · Wᵀ`: matmul.wgsl's, and matmul_blocks.wgsl's for weights in 32-value
/// blocks on software adapters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulKernel {
    /// `main`: an invocation per output row and tile of tokens, each weight decoded once a tile.
    Tiled,
    /// `matvec`: a workgroup per output row and token, sharing the row's blocks.
    MatVec,
    /// `matvec` adding up its lanes with subgroup operations (matvec_subgroups.wgsl), where the
    /// device has them.
    MatVecSubgroups,
    /// `rows`: an invocation per output row and token, reading four weights a word.
    Rows,
    /// matmul_blocks.wgsl's `rows`: an invocation per output row and token, each block read as
    /// the words it spans and x four values a load.
    BlockRows,
    /// matmul_blocks.wgsl's `tiles`: as `BlockRows` for a tile of tokens.
    BlockTiles,
}

impl MatmulKernel {
    /// Whether it is one of matmul_blocks.wgsl's, which read only what
    /// [`in_32_value_blocks`] accepts.
    pub fn reads_blocks(self) -> bool {
        matches!(self, MatmulKernel::BlockRows | MatmulKernel::BlockTiles)
    }
}

/// Whether matmul_blocks.wgsl reads `w`: 32-value blocks of 4, 5 or 8 bits, or F32 and F16
/// rows of whole runs of 32.
pub(super) fn in_32_value_blocks(w: &GpuMatrix) -> bool {
    let quantised = [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0];
    let float = [GgmlType::F32, GgmlType::F16];
    quantised.iter().any(|t| t.id() == w.kind) || (float.iter().any(|t| t.id() == w.kind) && w.cols % 32 == 0)
}

/// An error unless matmul_blocks.wgsl reads `w`.
fn check_in_32_value_blocks(w: &GpuMatrix) -> Result<(), GpuError> {
    if in_32_value_blocks(w) {
        return Ok(());
    }
    Err(bad_shape(format!("the block kernels read weights in 32-value blocks, not type {} × {}", w.kind, w.cols)))
}

/// Up to this many tokens a product on a GPU runs as matrix-vector products.
const MATVEC_MAX_TOKENS: usize = 4;
/// Tokens per tile of matmul.wgsl's `main` and matmul_blocks.wgsl's `tiles` (their TILE).
const MATMUL_TILE: usize = 4;
/// Output rows per invocation of matmul_blocks.wgsl's `rows` (its ROWS).
const BLOCK_ROWS_PER_INVOCATION: usize = 4;
/// Output rows per invocation of matmul_blocks.wgsl's `tiles` (its TILE_ROWS).
const BLOCK_TILE_ROWS: usize = 2;

/// The largest head the attention kernel holds in registers (attention.wgsl's MAX_HEAD_DIM).
const MAX_HEAD_DIM: usize = 256;

impl GpuDevice {
    fn check_binding(&self, bytes: usize) -> Result<(), GpuError> {
        let max = self.max_binding;
        if bytes > max {
            return Err(GpuError::BindingTooLarge { bytes, max });
        }
        Ok(())
    }

    fn check_groups(&self, groups: usize) -> Result<u32, GpuError> {
        let max = self.device.limits().max_compute_workgroups_per_dimension as usize;
        if groups > max {
            return Err(GpuError::TooLarge { len: groups, max });
        }
        Ok(groups as u32)
    }

    /// A uniform buffer holding `words`, made once per distinct value and kept: a kernel's
    /// parameters depend on shapes only, so a decoded token writes none.
    fn uniform(&self, words: &[u32]) -> wgpu::Buffer {
        if let Some(buffer) = self.uniforms.borrow().get(words) {
            return buffer.clone();
        }
        let buffer = self.buffer("params", bytemuck::cast_slice(words), wgpu::BufferUsages::UNIFORM);
        let mut uniforms = self.uniforms.borrow_mut();
        if uniforms.len() >= CACHED_UNIFORMS {
            uniforms.clear();
        }
        uniforms.insert(words.to_vec(), buffer.clone());
        buffer
    }

    /// A new tensor for a kernel to write.
    fn output(&self, rows: usize, cols: usize) -> Result<GpuTensor, GpuError> {
        let bytes = product(&[4, rows, cols])?;
        self.check_binding(bytes)?;
        let storage = self.take(bytes as u64, TENSOR_USAGE);
        Ok(GpuTensor { storage, rows, cols })
    }

    pub fn upload(&self, rows: usize, cols: usize, values: &[f32]) -> Result<GpuTensor, GpuError> {
        if Some(values.len()) != rows.checked_mul(cols) || values.is_empty() {
            return Err(bad_shape(format!("{} values do not fill a non-empty {rows}×{cols} tensor", values.len())));
        }
        self.check_binding(4 * values.len())?;
        let storage = self.filled(bytemuck::cast_slice(values), TENSOR_USAGE);
        Ok(GpuTensor { storage, rows, cols })
    }

    /// The `k` largest values of the one-row `x`, largest first (the lower index on ties), and
    /// `log Σ exp(x)`: `2k + 1` numbers cross to the host, not the row.
    pub async fn top_k(&self, x: &GpuTensor, k: usize, pick: &[u32]) -> Result<TopK, GpuError> {
        if x.rows != 1 {
            return Err(bad_shape(format!("top {k} of a {}×{} tensor: one row", x.rows, x.cols)));
        }
        crate::backend::check_top_k(x.cols, k, pick).map_err(|e| bad_shape(e.0))?;
        let out = self.output(1, 2 * k + 1 + pick.len())?;
        // k and the picks travel in storage, so that a sampler's changing requests make no
        // new uniform buffers.
        let request: Vec<u32> = [k as u32, pick.len() as u32].into_iter().chain(pick.iter().copied()).collect();
        let request = self.filled(bytemuck::cast_slice(&request), wgpu::BufferUsages::STORAGE);
        let params = self.uniform(&[x.cols as u32]);
        self.dispatch("topk", "main", &[&params, x.buffer(), request.buffer(), out.buffer()], (1, 1, 1));
        let read = self.read(&out).await?;
        let (top, picked) = read[1..].split_at(2 * k);
        let (ids, values) = top.chunks(2).map(|pair| (pair[0].to_bits(), pair[1])).unzip();
        Ok(TopK { ids, values, log_sum_exp: read[0], picked: picked.to_vec() })
    }

    /// `log softmax(bases[pairs[i]] + shifts[i])[target]` for each row of `shifts: [n, V]`
    /// (logprob.wgsl): the bases are uploaded, `n` values read back.
    pub async fn shifted_log_probs(
        &self,
        bases: &[&[f32]],
        shifts: &GpuTensor,
        pairs: &[usize],
        target: usize,
    ) -> Result<Vec<f32>, GpuError> {
        let vocab = shifts.cols;
        crate::backend::check_shifts(bases, vocab, shifts.rows * shifts.cols, pairs, target)
            .map_err(|e| bad_shape(e.0))?;
        let n = pairs.len();
        let rows = self.check_groups(n)?;
        let all: Vec<f32> = bases.concat();
        let bases = self.upload(bases.len(), vocab, &all)?;
        let pairs: Vec<u32> = pairs.iter().map(|&p| p as u32).collect();
        let pairs = self.filled(bytemuck::cast_slice(&pairs), wgpu::BufferUsages::STORAGE);
        let out = self.output(1, n)?;
        let params = self.uniform(&[vocab as u32, target as u32]);
        self.dispatch(
            "logprob",
            "main",
            &[&params, bases.buffer(), shifts.buffer(), pairs.buffer(), out.buffer()],
            (rows, 1, 1),
        );
        self.read(&out).await
    }

    /// The tensor's values, copied to the host.
    pub async fn read(&self, x: &GpuTensor) -> Result<Vec<f32>, GpuError> {
        Ok(self.read_all(&[x]).await?.remove(0))
    }

    /// Each of `xs` copied to the host, in one read-back.
    pub async fn read_all(&self, xs: &[&GpuTensor]) -> Result<Vec<Vec<f32>>, GpuError> {
        let sources: Vec<(&wgpu::Buffer, u64)> =
            xs.iter().map(|x| (x.buffer(), (4 * x.rows * x.cols) as u64)).collect();
        self.read_back(&sources).await
    }

    /// A `[rows, cols]` weight matrix from its GGUF bytes (F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
    /// Q4_K, Q5_K or Q6_K), kept in that encoding.
    pub fn matrix(&self, ggml_type: GgmlType, bytes: &[u8], rows: usize, cols: usize) -> Result<GpuMatrix, GpuError> {
        self.matrix_in_parts(ggml_type, bytes, rows, cols, self.max_binding)
    }

    /// [`matrix`](Self::matrix) with parts of at most `max_part_bytes` (and at most a binding).
    pub fn matrix_in_parts(
        &self,
        ggml_type: GgmlType,
        bytes: &[u8],
        rows: usize,
        cols: usize,
        max_part_bytes: usize,
    ) -> Result<GpuMatrix, GpuError> {
        let kind = kernel_kind(ggml_type)?;
        let block = ggml_type.block_size() as usize;
        let expected = (product(&[rows, cols])? / block) as u64 * ggml_type.bytes_per_block();
        if rows == 0 || cols == 0 || cols % block != 0 || bytes.len() as u64 != expected {
            return Err(bad_shape(format!(
                "{rows}×{cols} {} weights need {expected} bytes and rows of whole {block}-value blocks; got {} bytes",
                ggml_type.name(),
                bytes.len()
            )));
        }
        let row_bytes = bytes.len() / rows;
        // Each part is its own buffer, padded to whole words: whole words of rows must fit.
        let budget = max_part_bytes.min(self.max_binding) & !3;
        if row_bytes > budget {
            return Err(GpuError::BindingTooLarge { bytes: row_bytes, max: budget });
        }
        let rows_per_part = (budget / row_bytes).min(rows);
        let parts = (0..rows)
            .step_by(rows_per_part)
            .map(|first_row| {
                let part_rows = rows_per_part.min(rows - first_row);
                let slice = &bytes[first_row * row_bytes..(first_row + part_rows) * row_bytes];
                MatrixPart { storage: Pooled::unpooled(self.weights(slice)), first_row, rows: part_rows }
            })
            .collect();
        Ok(GpuMatrix { parts, kind, rows, cols })
    }

    /// The uniform block of matmul.wgsl and columns.wgsl for one part of `w`.
    fn part_params(&self, w: &GpuMatrix, part: &MatrixPart, count: usize, accumulate: bool) -> wgpu::Buffer {
        self.uniform(&[
            part.rows as u32,
            w.cols as u32,
            count as u32,
            w.kind,
            w.rows as u32,
            part.first_row as u32,
            u32::from(accumulate),
            0,
        ])
    }

    /// `x · Wᵀ` for `x: [t, cols]`, `W: [rows, cols]`: `[t, rows]`, by the kernel that suits
    /// the shape and the device: for a few tokens, a workgroup per row on a GPU and an
    /// invocation per row on a software adapter, whose CPU threads run a row each fastest (on
    /// lavapipe the workgroup per row took 5× as long); token tiles for more.
    pub fn linear(&self, x: &GpuTensor, w: &GpuMatrix) -> Result<GpuTensor, GpuError> {
        let few = x.rows <= MATVEC_MAX_TOKENS;
        let kernel = match (self.is_software(), in_32_value_blocks(w)) {
            (true, true) if few => MatmulKernel::BlockRows,
            (true, true) => MatmulKernel::BlockTiles,
            (true, false) if few => MatmulKernel::Rows,
            (false, _) if few && self.uses_subgroups() => MatmulKernel::MatVecSubgroups,
            (false, _) if few => MatmulKernel::MatVec,
            _ => MatmulKernel::Tiled,
        };
        self.linear_with(kernel, x, w)
    }

    /// `x · Wᵀ` by the kernel named, one dispatch per part of W.
    pub fn linear_with(&self, kernel: MatmulKernel, x: &GpuTensor, w: &GpuMatrix) -> Result<GpuTensor, GpuError> {
        if x.cols != w.cols {
            return Err(bad_shape(format!("x has {} columns, W {}", x.cols, w.cols)));
        }
        if kernel.reads_blocks() {
            check_in_32_value_blocks(w)?;
        }
        let y = self.output(x.rows, w.rows)?;
        let max = self.device.limits().max_compute_workgroups_per_dimension as usize;
        for part in &w.parts {
            let params = self.part_params(w, part, x.rows, false);
            let buffers = [&params, part.storage.buffer(), x.buffer(), y.buffer()];
            match kernel {
                MatmulKernel::MatVec | MatmulKernel::MatVecSubgroups => {
                    let (across, down) = (part.rows.min(max), part.rows.div_ceil(max));
                    let (shader, entry) = match kernel {
                        MatmulKernel::MatVec => ("matmul", "matvec"),
                        _ => ("matvec_subgroups", "matvec_subgroups"),
                    };
                    self.dispatch(
                        shader,
                        entry,
                        &buffers,
                        (across as u32, self.check_groups(down)?, self.check_groups(x.rows)?),
                    );
                }
                MatmulKernel::Rows => {
                    let groups = self.check_groups(part.rows.div_ceil(WORKGROUP_SIZE as usize))?;
                    self.dispatch("matmul", "rows", &buffers, (groups, self.check_groups(x.rows)?, 1));
                }
                MatmulKernel::Tiled => {
                    let groups = self.check_groups(part.rows.div_ceil(WORKGROUP_SIZE as usize))?;
                    let tiles = self.check_groups(x.rows.div_ceil(MATMUL_TILE))?;
                    self.dispatch("matmul", "main", &buffers, (groups, tiles, 1));
                }
                MatmulKernel::BlockRows => {
                    let invocations = part.rows.div_ceil(BLOCK_ROWS_PER_INVOCATION);
                    let groups = self.check_groups(invocations.div_ceil(WORKGROUP_SIZE as usize))?;
                    let tokens = self.check_groups(x.rows)?;
                    self.dispatch_kind("matmul_blocks", "rows", w.kind, &buffers, (groups, tokens, 1));
                }
                MatmulKernel::BlockTiles => {
                    let invocations = part.rows.div_ceil(BLOCK_TILE_ROWS);
                    let groups = self.check_groups(invocations.div_ceil(WORKGROUP_SIZE as usize))?;
                    let tiles = self.check_groups(x.rows.div_ceil(MATMUL_TILE))?;
                    self.dispatch_kind("matmul_blocks", "tiles", w.kind, &buffers, (groups, tiles, 1));
                }
            }
        }
        Ok(y)
    }

    /// `x · W` for `x: [t, rows]`, `W: [rows, cols]`: `[t, cols]`, the parts' sums added up. On
    /// a software adapter, weights in 32-value blocks are read a block at a time.
    pub fn linear_transposed(&self, x: &GpuTensor, w: &GpuMatrix) -> Result<GpuTensor, GpuError> {
        self.linear_transposed_with(self.is_software() && in_32_value_blocks(w), x, w)
    }

    /// `x · W`, by matmul_blocks.wgsl's `transposed` (an invocation per 32 output columns) when
    /// `by_blocks`, else by matmul.wgsl's (an invocation per output column).
    pub fn linear_transposed_with(&self, by_blocks: bool, x: &GpuTensor, w: &GpuMatrix) -> Result<GpuTensor, GpuError> {
        if x.cols != w.rows {
            return Err(bad_shape(format!("x has {} columns, W {} rows", x.cols, w.rows)));
        }
        if by_blocks {
            check_in_32_value_blocks(w)?;
        }
        let columns = if by_blocks { w.cols / 32 } else { w.cols };
        let groups = self.check_groups(columns.div_ceil(WORKGROUP_SIZE as usize))?;
        let tokens = self.check_groups(x.rows)?;
        let y = self.output(x.rows, w.cols)?;
        for (i, part) in w.parts.iter().enumerate() {
            let params = self.part_params(w, part, x.rows, i > 0);
            let buffers = [&params, part.storage.buffer(), x.buffer(), y.buffer()];
            if by_blocks {
                self.dispatch_kind("matmul_blocks", "transposed", w.kind, &buffers, (groups, tokens, 1));
            } else {
                self.dispatch("matmul", "transposed", &buffers, (groups, tokens, 1));
            }
        }
        Ok(y)
    }

    /// Columns `columns` of `W`, dequantised, as the rows of a `[columns.len(), rows]` tensor.
    pub fn columns(&self, w: &GpuMatrix, columns: &[usize]) -> Result<GpuTensor, GpuError> {
        if let Some(&c) = columns.iter().find(|&&c| c >= w.cols) {
            return Err(bad_shape(format!("column {c} of a {}-column matrix", w.cols)));
        }
        if columns.is_empty() {
            return Err(bad_shape("no columns to fetch".into()));
        }
        let count = self.check_groups(columns.len())?;
        let out = self.output(columns.len(), w.rows)?;
        let indices: Vec<u32> = columns.iter().map(|&c| c as u32).collect();
        let indices = self.filled(bytemuck::cast_slice(&indices), wgpu::BufferUsages::STORAGE);
        for part in &w.parts {
            let groups = self.check_groups(part.rows.div_ceil(WORKGROUP_SIZE as usize))?;
            let params = self.part_params(w, part, columns.len(), false);
            self.dispatch(
                "columns",
                "main",
                &[&params, part.storage.buffer(), indices.buffer(), out.buffer()],
                (groups, count, 1),
            );
        }
        Ok(out)
    }

    /// `W`'s values as an f32 `[rows, cols]` tensor: every row looked up.
    pub fn dequantize(&self, w: &GpuMatrix) -> Result<GpuTensor, GpuError> {
        let all: Vec<u32> = (0..w.rows as u32).collect();
        self.embed(w, &all)
    }

    /// `W` dequantised whole, kept on the device as an f32 matrix, split by rows where its f32
    /// values exceed a binding.
    pub fn dequantized(&self, w: &GpuMatrix) -> Result<GpuMatrix, GpuError> {
        let row_bytes = 4 * w.cols;
        self.check_binding(row_bytes)?;
        let rows_per_part = (self.max_binding / row_bytes).min(w.rows);
        let parts = (0..w.rows)
            .step_by(rows_per_part)
            .map(|first_row| {
                let rows = rows_per_part.min(w.rows - first_row);
                let ids: Vec<u32> = (first_row as u32..(first_row + rows) as u32).collect();
                Ok(MatrixPart { storage: self.embed(w, &ids)?.storage, first_row, rows })
            })
            .collect::<Result<_, GpuError>>()?;
        Ok(GpuMatrix { parts, kind: GgmlType::F32.id(), rows: w.rows, cols: w.cols })
    }

    /// A `[rows, cols]` tensor for [`write_rows`](Self::write_rows) to fill (a cache's storage).
    pub async fn empty_rows(&self, rows: usize, cols: usize) -> Result<GpuTensor, GpuError> {
        // A cache is the one allocation sized by the caller's context, so it is made inside an
        // error scope: a device without room for it is a typed error, not a lost device.
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let store = self.output(rows, cols);
        if let Some(error) = scope.pop().await {
            return Err(GpuError::OutOfMemory { bytes: 4 * rows * cols, detail: error.to_string() });
        }
        store
    }

    /// Copies `rows` into `store` from row `at` on, in place (recorded in order with the work
    /// around it).
    pub fn write_rows(&self, store: &GpuTensor, at: usize, rows: &GpuTensor) -> Result<(), GpuError> {
        if rows.cols != store.cols || at.checked_add(rows.rows).is_none_or(|end| end > store.rows) {
            return Err(bad_shape(format!(
                "{}×{} rows at row {at} of a {}×{} store",
                rows.rows, rows.cols, store.rows, store.cols
            )));
        }
        let row_bytes = (4 * store.cols) as u64;
        self.copy(rows.buffer(), 0, store.buffer(), at as u64 * row_bytes, rows.rows as u64 * row_bytes);
        Ok(())
    }

    /// The first `n` rows of `x`, in `x`'s buffer.
    pub fn leading_rows(&self, x: &GpuTensor, n: usize) -> Result<GpuTensor, GpuError> {
        if n == 0 || n > x.rows {
            return Err(bad_shape(format!("the first {n} rows of a {}-row tensor", x.rows)));
        }
        Ok(GpuTensor { storage: x.storage.clone(), rows: n, cols: x.cols })
    }

    /// Rows `rows` of `x`, in that order, by buffer copies.
    pub fn select_rows(&self, x: &GpuTensor, rows: &[usize]) -> Result<GpuTensor, GpuError> {
        if let Some(&r) = rows.iter().find(|&&r| r >= x.rows) {
            return Err(bad_shape(format!("row {r} of a {}-row tensor", x.rows)));
        }
        if rows.is_empty() {
            return Err(bad_shape("no rows to select".into()));
        }
        let out = self.output(rows.len(), x.cols)?;
        let row_bytes = (4 * x.cols) as u64;
        for (i, &r) in rows.iter().enumerate() {
            self.copy(x.buffer(), r as u64 * row_bytes, out.buffer(), i as u64 * row_bytes, row_bytes);
        }
        Ok(out)
    }

    /// Query rows `rows` of each head of probabilities `p` stored as `[H, t·T]`: `[H, rows.len()·T]`,
    /// by buffer copies.
    pub fn query_rows(&self, p: &GpuTensor, t: usize, rows: &[usize]) -> Result<GpuTensor, GpuError> {
        if t == 0 || p.cols % t != 0 || rows.is_empty() || rows.iter().any(|&r| r >= t) {
            return Err(bad_shape(format!("query rows {rows:?} of {t} in a {}×{} pattern", p.rows, p.cols)));
        }
        let total = p.cols / t;
        let out = self.output(p.rows, rows.len() * total)?;
        let row_bytes = (4 * total) as u64;
        for h in 0..p.rows {
            for (i, &r) in rows.iter().enumerate() {
                let from = (h * t + r) as u64 * row_bytes;
                let to = (h * rows.len() + i) as u64 * row_bytes;
                self.copy(p.buffer(), from, out.buffer(), to, row_bytes);
            }
        }
        Ok(out)
    }

    /// A copy of `x` with row `row` replaced by `values`.
    pub fn set_row(&self, x: &GpuTensor, row: usize, values: &[f32]) -> Result<GpuTensor, GpuError> {
        if row >= x.rows || values.len() != x.cols {
            return Err(bad_shape(format!("row {row} of {} values into a {}×{} tensor", values.len(), x.rows, x.cols)));
        }
        let out = self.output(x.rows, x.cols)?;
        // Copied in from a buffer of its own, in order after the copy of `x`: a queue write to
        // `out` would land before the pending copy.
        let row_values = self.filled(bytemuck::cast_slice(values), wgpu::BufferUsages::COPY_SRC);
        let row_bytes = (4 * x.cols) as u64;
        self.copy(x.buffer(), 0, out.buffer(), 0, (4 * x.rows * x.cols) as u64);
        self.copy(row_values.buffer(), 0, out.buffer(), row as u64 * row_bytes, row_bytes);
        Ok(out)
    }

    /// Rows `ids` of the table `W`, dequantised: `[ids.len(), cols]`.
    pub fn embed(&self, table: &GpuMatrix, ids: &[u32]) -> Result<GpuTensor, GpuError> {
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= table.rows) {
            return Err(bad_shape(format!("row {id} of a {}-row table", table.rows)));
        }
        if ids.is_empty() {
            return Err(bad_shape("no rows to look up".into()));
        }
        let groups = self.check_groups(table.cols.div_ceil(WORKGROUP_SIZE as usize))?;
        let count = self.check_groups(ids.len())?;
        let out = self.output(ids.len(), table.cols)?;
        let id_buffer = self.filled(bytemuck::cast_slice(ids), wgpu::BufferUsages::STORAGE);
        // Each part writes the rows it holds.
        for part in table
            .parts
            .iter()
            .filter(|p| ids.iter().any(|&id| (p.first_row..p.first_row + p.rows).contains(&(id as usize))))
        {
            let params = self.uniform(&[
                table.cols as u32,
                ids.len() as u32,
                table.kind,
                part.first_row as u32,
                part.rows as u32,
                0,
                0,
                0,
            ]);
            self.dispatch(
                "embed",
                "main",
                &[&params, part.storage.buffer(), id_buffer.buffer(), out.buffer()],
                (groups, count, 1),
            );
        }
        Ok(out)
    }

    /// `a ∘ b` elementwise by `entry` of elementwise.wgsl; `b` is `a`'s shape or one row.
    fn elementwise(&self, entry: &'static str, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor, GpuError> {
        if b.cols != a.cols || (b.rows != a.rows && b.rows != 1) {
            return Err(bad_shape(format!("{entry}: {}×{} with {}×{}", a.rows, a.cols, b.rows, b.cols)));
        }
        let len = a.rows * a.cols;
        let groups = len.div_ceil(WORKGROUP_SIZE as usize);
        let max = self.device.limits().max_compute_workgroups_per_dimension as usize;
        let (x, y) = (groups.min(max), groups.div_ceil(max));
        let y = self.check_groups(y)?;
        let out = self.output(a.rows, a.cols)?;
        let params = self.uniform(&[len as u32, (b.rows * b.cols) as u32]);
        self.dispatch("elementwise", entry, &[&params, a.buffer(), b.buffer(), out.buffer()], (x as u32, y, 1));
        Ok(out)
    }

    pub fn add(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor, GpuError> {
        self.elementwise("add", a, b)
    }

    pub fn mul(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor, GpuError> {
        self.elementwise("mul", a, b)
    }

    /// `silu(gate) ⊙ up`, the gated FFN's product, in one pass.
    pub fn silu_mul(&self, gate: &GpuTensor, up: &GpuTensor) -> Result<GpuTensor, GpuError> {
        self.elementwise("silu_mul", gate, up)
    }

    /// `gelu(gate) ⊙ up` (GELU's tanh approximation), the GeGLU FFN's product, in one pass.
    pub fn gelu_mul(&self, gate: &GpuTensor, up: &GpuTensor) -> Result<GpuTensor, GpuError> {
        self.elementwise("gelu_mul", gate, up)
    }

    /// RMSNorm: `weight ⊙ x / sqrt(mean(x²) + eps)` over each run of `n` values, for
    /// `weight: [1, n]` with `n` dividing the row (per-head norms).
    pub fn rms_norm(&self, x: &GpuTensor, weight: &GpuTensor, eps: f32) -> Result<GpuTensor, GpuError> {
        let n = weight.cols;
        if weight.rows != 1 || n == 0 || x.cols % n != 0 {
            return Err(bad_shape(format!("rms_norm weight {}×{} for rows of {}", weight.rows, weight.cols, x.cols)));
        }
        let rows = self.check_groups(x.rows * (x.cols / n))?;
        let out = self.output(x.rows, x.cols)?;
        let params = self.uniform(&[n as u32, eps.to_bits()]);
        self.dispatch("rms_norm", "main", &[&params, x.buffer(), weight.buffer(), out.buffer()], (rows, 1, 1));
        Ok(out)
    }

    /// Each row's `sqrt(mean(x²) + eps)`, `[rows, 1]`: the divisor RMSNorm applies.
    pub fn rms(&self, x: &GpuTensor, eps: f32) -> Result<GpuTensor, GpuError> {
        if x.cols == 0 {
            return Err(bad_shape("rms of rows of no values".into()));
        }
        let rows = self.check_groups(x.rows)?;
        let out = self.output(x.rows, 1)?;
        let params = self.uniform(&[x.cols as u32, eps.to_bits()]);
        self.dispatch("rms", "main", &[&params, x.buffer(), out.buffer()], (rows, 1, 1));
        Ok(out)
    }

    /// Rotates `x: [t, heads·head_dim]` head by head with `rope`'s table (the same values every
    /// backend uses).
    pub fn rope(&self, x: &GpuTensor, heads: usize, rope: &Rope<'_>) -> Result<GpuTensor, GpuError> {
        if heads == 0 || x.cols % heads != 0 || (x.cols / heads) % 2 != 0 {
            return Err(bad_shape(format!("{} columns do not split into {heads} heads of even size", x.cols)));
        }
        let head_dim = x.cols / heads;
        let half = head_dim / 2;
        let key = rope.table_key(x.rows, head_dim);
        let cached =
            self.rope_table.borrow().as_ref().filter(|(k, _, _)| *k == key).map(|(_, c, s)| (c.clone(), s.clone()));
        let (cos, sin) = match cached {
            Some(table) => table,
            None => {
                let (cos, sin) = rope.table(x.rows, head_dim);
                let table = (self.upload(x.rows, half, &cos)?, self.upload(x.rows, half, &sin)?);
                *self.rope_table.borrow_mut() = Some((key, table.0.clone(), table.1.clone()));
                table
            }
        };
        let groups = self.check_groups(half.div_ceil(WORKGROUP_SIZE as usize))?;
        let (heads_groups, positions) = (self.check_groups(heads)?, self.check_groups(x.rows)?);
        let out = self.output(x.rows, x.cols)?;
        let params = self.uniform(&[x.rows as u32, heads as u32, head_dim as u32, u32::from(rope.interleaved)]);
        self.dispatch(
            "rope",
            "main",
            &[&params, x.buffer(), cos.buffer(), sin.buffer(), out.buffer()],
            (groups, heads_groups, positions),
        );
        Ok(out)
    }

    /// Causal attention of `q: [t, H·d]` over `k, v: [T, KV·d]`, the queries at the last `t`
    /// of the `T` positions. Returns `z: [t, H·d]` and, when asked, the probabilities as a
    /// `[H, t·T]` tensor (row h holds head h's `[t, T]` pattern).
    pub fn attention(
        &self,
        q: &GpuTensor,
        k: &GpuTensor,
        v: &GpuTensor,
        layout: Heads,
        probabilities: bool,
    ) -> Result<(GpuTensor, Option<GpuTensor>), GpuError> {
        let Heads { heads, kv_heads, window } = layout;
        let fits = heads > 0 && kv_heads > 0 && heads % kv_heads == 0 && q.cols % heads == 0;
        let head_dim = if fits { q.cols / heads } else { 0 };
        if !fits || k.cols != kv_heads * head_dim || v.cols != k.cols || v.rows != k.rows || q.rows > k.rows {
            return Err(bad_shape(format!(
                "attention: q {}×{}, k {}×{}, v {}×{} with {heads} heads and {kv_heads} KV heads",
                q.rows, q.cols, k.rows, k.cols, v.rows, v.cols
            )));
        }
        if head_dim > MAX_HEAD_DIM {
            return Err(GpuError::TooLarge { len: head_dim, max: MAX_HEAD_DIM });
        }
        let groups = self.check_groups(heads.div_ceil(WORKGROUP_SIZE as usize))?;
        let queries = self.check_groups(q.rows)?;
        let z = self.output(q.rows, q.cols)?;
        let p = if probabilities { self.output(heads, product(&[q.rows, k.rows])?)? } else { self.output(0, 0)? };
        // 0 stands for no window; a window past u32 sees every key anyway.
        let window = window.map_or(0, |w| u32::try_from(w).unwrap_or(u32::MAX));
        let params = self.uniform(&[
            q.rows as u32,
            heads as u32,
            kv_heads as u32,
            head_dim as u32,
            u32::from(probabilities),
            window,
        ]);
        // k and v bound to their T rows exactly: the kernel reads T from k's length.
        let kv_bytes = Some((4 * k.rows * k.cols) as u64);
        self.dispatch_sized(
            "attention",
            "main",
            &[
                (&params, None),
                (q.buffer(), None),
                (k.buffer(), kv_bytes),
                (v.buffer(), kv_bytes),
                (z.buffer(), None),
                (p.buffer(), None),
            ],
            (groups, queries, 1),
        );
        Ok((z, probabilities.then_some(p)))
    }
}
