// y[t, r] = Σ_c x[t, c] · W[r, c], with W in its GGUF encoding, dequantised in registers.
// One invocation per (output row r, token t). Activations are f32 and are not rounded: the CPU
// kernels quantise them to 8 bits, so the two differ by that rounding (stated in the tests).
//
// Block layouts (ggml): Q4_0 = f16 d, 16 bytes of nibbles, w = (q − 8)·d; Q4_1 = f16 d, f16 m,
// 16 bytes, w = q·d + m; Q8_0 = f16 d, 32 × i8, w = q·d. In a 4-bit block, byte j holds element
// j in its low nibble and element j + 16 in its high one. Blocks are not 4-byte aligned, so bytes
// are read out of the u32 words that WGSL storage offers (quant.wgsl, prepended at load).

// W may be split by rows over several buffers (a binding holds at most
// maxStorageBufferBindingSize bytes); each dispatch sees one part: `rows` rows that are rows
// `first_row..` of the whole `all_rows`-row matrix.
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
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let row = id.x;
    let t = id.y;
    if (row >= params.rows || t >= params.tokens) {
        return;
    }
    let xs = t * params.cols;
    let blocks = params.cols / 32u;
    var sum = 0.0;
    switch params.kind {
        case F32: {
            for (var c = 0u; c < params.cols; c++) {
                sum += bitcast<f32>(weights[row * params.cols + c]) * x[xs + c];
            }
        }
        case F16: {
            for (var c = 0u; c < params.cols; c++) {
                sum += half_at((row * params.cols + c) * 2u) * x[xs + c];
            }
        }
        case Q4_0: {
            for (var b = 0u; b < blocks; b++) {
                let base = (row * blocks + b) * 18u;
                let d = half_at(base);
                let c = xs + b * 32u;
                for (var j = 0u; j < 16u; j++) {
                    let q = byte_at(base + 2u + j);
                    sum += (f32(q & 0xfu) - 8.0) * d * x[c + j] + (f32(q >> 4u) - 8.0) * d * x[c + j + 16u];
                }
            }
        }
        case Q4_1: {
            for (var b = 0u; b < blocks; b++) {
                let base = (row * blocks + b) * 20u;
                let d = half_at(base);
                let m = half_at(base + 2u);
                let c = xs + b * 32u;
                for (var j = 0u; j < 16u; j++) {
                    let q = byte_at(base + 4u + j);
                    sum += (f32(q & 0xfu) * d + m) * x[c + j] + (f32(q >> 4u) * d + m) * x[c + j + 16u];
                }
            }
        }
        case Q8_0: {
            for (var b = 0u; b < blocks; b++) {
                let base = (row * blocks + b) * 34u;
                let d = half_at(base);
                let c = xs + b * 32u;
                for (var j = 0u; j < 32u; j++) {
                    sum += signed_byte_at(base + 2u + j) * d * x[c + j];
                }
            }
        }
        // K-quants: one value at a time (quant.wgsl).
        default: {
            for (var c = 0u; c < params.cols; c++) {
                sum += weight_at(params.kind, row, params.cols, c) * x[xs + c];
            }
        }
    }
    y[t * params.all_rows + params.first_row + row] = sum;
}

// y[t, c] = Σ_r x[t, r] · W[r, c] (x: [tokens, rows], y: [tokens, cols]): the product with W's
// transpose, which pulls a vector in W's output space back to its input space (gradients, dot
// products with every column). W is read one value at a time (quant.wgsl's weight_at). One
// invocation per (column c, token t).
@compute @workgroup_size(64)
fn transposed(@builtin(global_invocation_id) id: vec3<u32>) {
    let c = id.x;
    let t = id.y;
    if (c >= params.cols || t >= params.tokens) {
        return;
    }
    var sum = 0.0;
    let xs = t * params.all_rows + params.first_row;
    for (var r = 0u; r < params.rows; r++) {
        sum += x[xs + r] * weight_at(params.kind, r, params.cols, c);
    }
    if (params.accumulate == 1u) {
        sum += y[t * params.cols + c];
    }
    y[t * params.cols + c] = sum;
}
