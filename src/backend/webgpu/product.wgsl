// What matmul.wgsl and matmul_blocks.wgsl share: the parameters of a product with a weight
// matrix (one part of it, when the matrix is split over bindings), its weights and its output.
// Each declares x (binding 2) in the form its kernels read.

struct Params {
    rows: u32,
    cols: u32,
    tokens: u32,
    kind: u32,
    all_rows: u32,
    first_row: u32,
    // transposed: add to y (parts after the first) instead of writing it.
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> weights: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// Tokens per tile of the prefill kernels.
const TILE: u32 = 4u;
