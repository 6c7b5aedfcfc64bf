// y[t, r] = Σ_c x[t, c] · W[r, c], with W in its GGUF encoding, dequantised in registers.
// Activations are f32 and are not rounded: the CPU kernels quantise them to 8 bits, so the two
// differ by that rounding (stated in the tests). Three kernels, chosen by the number of tokens
// and the adapter:
// - `main` (prefill): one invocation per (output row, tile of TILE tokens); each weight is
//   decoded once and multiplied into every token of the tile;
// - `matvec` (decode, a few tokens): one workgroup per (output row, token); its 64 invocations
//   take every 64th unit of the row (a quarter or an eighth of a block) and add their sums in a
//   tree;
// - `rows` (a few tokens on a software adapter): one invocation per (output row, token), the
//   32-value blocks read a word at a time.
//
// Block layouts (ggml): Q4_0 = f16 d, 16 bytes of nibbles, w = (q − 8)·d; Q4_1 = f16 d, f16 m,
// 16 bytes, w = q·d + m; Q5_0 = f16 d, 4 bytes of fifth bits, 16 bytes, w = (q − 16)·d; Q5_1 =
// f16 d, f16 m, 4 bytes of fifth bits, 16 bytes, w = q·d + m; Q8_0 = f16 d, 32 × i8, w = q·d. In
// a 4- or 5-bit block, byte j holds element j in its low nibble and element j + 16 in its high
// one, and bit j of the fifth-bit word is element j's fifth bit. Blocks are not 4-byte aligned, so bytes
// are read out of the u32 words that WGSL storage offers (quant.wgsl, prepended at load). F32
// and F16 rows are taken 32 values at a time, the last run possibly shorter.

// Params, weights, y and TILE: product.wgsl, prepended at load.
@group(0) @binding(2) var<storage, read> x: array<f32>;

// How many blocks a row holds.
fn block_count() -> u32 {
    switch params.kind {
        case F32, F16: {
            return (params.cols + 31u) / 32u;
        }
        case Q4_K, Q5_K, Q6_K: {
            return params.cols / 256u;
        }
        default: {
            return params.cols / 32u;
        }
    }
}

// A block is taken in units, so that the lanes of `matvec` share even a short row: 8 values of
// a 32-value block (4 bytes of 4-bit pairs, 8 bytes of Q8_0), 32 values of a K-quant block.
fn units_per_block() -> u32 {
    return select(4u, 8u, params.kind == Q4_K || params.kind == Q5_K || params.kind == Q6_K);
}

// x[t, c] for the TILE tokens t = t0, t0 + 1, ...: 0 for those at or past `limit`, which read
// the last token's value instead of out of bounds. A vector, not an array, keeps the tile in
// registers.
fn x_tile(t0: u32, limit: u32, c: u32) -> vec4<f32> {
    let cols = params.cols;
    let last = limit - 1u;
    let t = vec4<u32>(t0, t0 + 1u, t0 + 2u, t0 + 3u);
    let v = vec4<f32>(x[min(t.x, last) * cols + c], x[min(t.y, last) * cols + c], x[min(t.z, last) * cols + c], x[min(t.w, last) * cols + c]);
    return select(vec4<f32>(0.0), v, t < vec4<u32>(limit));
}

// Σ_i w[i] · x[t, c + i] for the tile of tokens from t0 below `limit`.
fn x_dot(w: vec4<f32>, t0: u32, limit: u32, c: u32) -> vec4<f32> {
    return w.x * x_tile(t0, limit, c) + w.y * x_tile(t0, limit, c + 1u) + w.z * x_tile(t0, limit, c + 2u)
        + w.w * x_tile(t0, limit, c + 3u);
}

// W[row, units u..u + n of block b] · x[t, same columns] for the tile of tokens from t0 below
// `limit`. The block's scales are decoded once for all its units.
fn unit_dot(row: u32, b: u32, u: u32, n: u32, t0: u32, limit: u32) -> vec4<f32> {
    let cols = params.cols;
    var sum = vec4<f32>(0.0);
    switch params.kind {
        case F32, F16: {
            let end = min(cols, b * 32u + (u + n) * 8u);
            for (var c = b * 32u + u * 8u; c < end; c++) {
                var w = 0.0;
                if (params.kind == F32) {
                    w = bitcast<f32>(weights[row * cols + c]);
                } else {
                    w = half_at((row * cols + c) * 2u);
                }
                sum += w * x_tile(t0, limit, c);
            }
        }
        case Q4_0: {
            let base = (row * (cols / 32u) + b) * 18u;
            let d = half_at(base);
            for (var j = u * 4u; j < (u + n) * 4u; j++) {
                let q = byte_at(base + 2u + j);
                let c = b * 32u + j;
                sum += (f32(q & 0xfu) - 8.0) * d * x_tile(t0, limit, c) + (f32(q >> 4u) - 8.0) * d * x_tile(t0, limit, c + 16u);
            }
        }
        case Q4_1: {
            let base = (row * (cols / 32u) + b) * 20u;
            let d = half_at(base);
            let m = half_at(base + 2u);
            for (var j = u * 4u; j < (u + n) * 4u; j++) {
                let q = byte_at(base + 4u + j);
                let c = b * 32u + j;
                sum += (f32(q & 0xfu) * d + m) * x_tile(t0, limit, c) + (f32(q >> 4u) * d + m) * x_tile(t0, limit, c + 16u);
            }
        }
        case Q5_0, Q5_1: {
            let q5_1 = params.kind == Q5_1;
            let base = (row * (cols / 32u) + b) * select(22u, 24u, q5_1);
            let high_bits = base + select(2u, 4u, q5_1);
            let d = half_at(base);
            let m = select(-16.0 * d, half_at(base + 2u), q5_1);
            for (var j = u * 4u; j < (u + n) * 4u; j++) {
                let q = byte_at(high_bits + 4u + j);
                let c = b * 32u + j;
                let low = f32((q & 0xfu) | fifth_bit(high_bits, j));
                let high = f32((q >> 4u) | fifth_bit(high_bits, j + 16u));
                sum += (low * d + m) * x_tile(t0, limit, c) + (high * d + m) * x_tile(t0, limit, c + 16u);
            }
        }
        case Q8_0: {
            let base = (row * (cols / 32u) + b) * 34u;
            let d = half_at(base);
            for (var j = u * 8u; j < (u + n) * 8u; j++) {
                sum += signed_byte_at(base + 2u + j) * d * x_tile(t0, limit, b * 32u + j);
            }
        }
        // K-quants: unit u is sub-block u (32 values with one scale and offset), decoded four
        // values a word read. Q4_K and Q5_K blocks (144, 176 bytes) start on a word; Q6_K's
        // (210 bytes) on an even byte, read through word_at.
        case Q4_K, Q5_K: {
            let fifths = params.kind == Q5_K;
            let base = (row * (cols / 256u) + b) * select(144u, 176u, fifths);
            let nibbles = base + select(16u, 48u, fifths);
            for (var s = u; s < u + n; s++) {
                let scale_min = scale_min_k4(base + 4u, s);
                let scale = half_at(base) * scale_min.x;
                let offset = half_at(base + 2u) * scale_min.y;
                // Sub-blocks 2i and 2i + 1 share 32 bytes: low nibbles, then high.
                let shift = (s % 2u) * 4u;
                for (var k = 0u; k < 8u; k++) {
                    let q = weights[(nibbles + (s / 2u) * 32u + 4u * k) / 4u] >> shift;
                    var v = vec4<u32>(q, q >> 8u, q >> 16u, q >> 24u) & vec4<u32>(0xfu);
                    if (fifths) {
                        // Value l's fifth bit is bit s of qh[l].
                        let h = weights[(base + 16u + 4u * k) / 4u] >> s;
                        v |= (vec4<u32>(h, h >> 8u, h >> 16u, h >> 24u) & vec4<u32>(1u)) << vec4<u32>(4u);
                    }
                    sum += x_dot(vec4<f32>(v) * scale - offset, t0, limit, b * 256u + s * 32u + 4u * k);
                }
            }
        }
        default: {
            // Q6_K: sub-block s is quarter s % 4 of half s / 4; two signed scales, one per 16.
            let base = (row * (cols / 256u) + b) * 210u;
            let d = half_at(base + 208u);
            for (var s = u; s < u + n; s++) {
                let half = s / 4u;
                let quarter = s % 4u;
                let lows = base + half * 64u + (quarter & 1u) * 32u;
                let highs = base + 128u + half * 32u;
                let low_shift = select(0u, 4u, quarter >= 2u);
                for (var k = 0u; k < 8u; k++) {
                    let low = word_at(lows + 4u * k) >> low_shift;
                    let high = word_at(highs + 4u * k) >> (2u * quarter);
                    let q = (vec4<u32>(low, low >> 8u, low >> 16u, low >> 24u) & vec4<u32>(0xfu))
                        | ((vec4<u32>(high, high >> 8u, high >> 16u, high >> 24u) & vec4<u32>(3u)) << vec4<u32>(4u));
                    let scale = d * signed_byte_at(base + 192u + half * 8u + k / 4u + 2u * quarter);
                    sum += x_dot(scale * (vec4<f32>(q) - 32.0), t0, limit, b * 256u + s * 32u + 4u * k);
                }
            }
        }
    }
    return sum;
}

fn store(t: u32, row: u32, value: f32) {
    y[t * params.all_rows + params.first_row + row] = value;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let row = id.x;
    let t0 = id.y * TILE;
    if (row >= params.rows || t0 >= params.tokens) {
        return;
    }
    var acc = vec4<f32>(0.0);
    let blocks = block_count();
    let units = units_per_block();
    for (var b = 0u; b < blocks; b++) {
        acc += unit_dot(row, b, 0u, units, t0, params.tokens);
    }
    for (var i = 0u; i < min(TILE, params.tokens - t0); i++) {
        store(t0 + i, row, acc[i]);
    }
}

// Four bytes from an even byte offset: 18- and 34-byte blocks start on even bytes only.
fn word_at(offset: u32) -> u32 {
    let i = offset >> 2u;
    if ((offset & 2u) == 0u) {
        return weights[i];
    }
    return (weights[i] >> 16u) | (weights[i + 1u] << 16u);
}

// The low nibbles of a word's four bytes; `nibbles(q >> 4u)` gives the high ones.
fn nibbles(q: u32) -> vec4<f32> {
    return vec4<f32>(vec4<u32>(q, q >> 8u, q >> 16u, q >> 24u) & vec4<u32>(0xfu));
}

fn signed_bytes(q: u32) -> vec4<f32> {
    let shifted = vec4<u32>(q << 24u, q << 16u, q << 8u, q);
    return vec4<f32>(bitcast<vec4<i32>>(shifted) >> vec4<u32>(24u));
}

fn x4(at: u32) -> vec4<f32> {
    return vec4<f32>(x[at], x[at + 1u], x[at + 2u], x[at + 3u]);
}

// W[row] · x[t], four weights per word read. Q4_0, Q4_1 and Q8_0 are read a word at a time; the
// other types through unit_dot.
fn row_dot(row: u32, t: u32) -> f32 {
    let blocks = block_count();
    let xs = t * params.cols;
    var sum = 0.0;
    switch params.kind {
        case Q4_0: {
            for (var b = 0u; b < blocks; b++) {
                let base = (row * blocks + b) * 18u;
                var s = 0.0;
                for (var k = 0u; k < 4u; k++) {
                    let q = word_at(base + 2u + 4u * k);
                    let c = xs + b * 32u + 4u * k;
                    s += dot(nibbles(q) - 8.0, x4(c)) + dot(nibbles(q >> 4u) - 8.0, x4(c + 16u));
                }
                sum += half_at(base) * s;
            }
        }
        case Q4_1: {
            for (var b = 0u; b < blocks; b++) {
                let word = (row * blocks + b) * 5u;
                let dm = unpack2x16float(weights[word]);
                var s = 0.0;
                var xsum = vec4<f32>(0.0);
                for (var k = 0u; k < 4u; k++) {
                    let q = weights[word + 1u + k];
                    let c = xs + b * 32u + 4u * k;
                    let low = x4(c);
                    let high = x4(c + 16u);
                    s += dot(nibbles(q), low) + dot(nibbles(q >> 4u), high);
                    xsum += low + high;
                }
                sum += dm.x * s + dm.y * dot(xsum, vec4<f32>(1.0));
            }
        }
        case Q8_0: {
            for (var b = 0u; b < blocks; b++) {
                let base = (row * blocks + b) * 34u;
                var s = 0.0;
                for (var k = 0u; k < 8u; k++) {
                    s += dot(signed_bytes(word_at(base + 2u + 4u * k)), x4(xs + b * 32u + 4u * k));
                }
                sum += half_at(base) * s;
            }
        }
        default: {
            let units = units_per_block();
            for (var b = 0u; b < blocks; b++) {
                sum += unit_dot(row, b, 0u, units, t, t + 1u).x;
            }
        }
    }
    return sum;
}

// One invocation per (output row, token), for software adapters: their CPU threads run a
// workgroup's invocations as SIMD lanes, and a lane per row needs no barrier.
@compute @workgroup_size(64)
fn rows(@builtin(global_invocation_id) id: vec3<u32>) {
    let row = id.x;
    let t = id.y;
    if (row >= params.rows || t >= params.tokens) {
        return;
    }
    store(t, row, row_dot(row, t));
}

var<workgroup> partial: array<f32, 64>;

// Lane `lane`'s share of W[row] · x[t] in `matvec`: every 64th unit of the row from its own.
fn lane_share(row: u32, t: u32, lane: u32) -> f32 {
    var acc = 0.0;
    if (row < params.rows) {
        let units = units_per_block();
        let all = block_count() * units;
        for (var k = lane; k < all; k += 64u) {
            acc += unit_dot(row, k / units, k % units, 1u, t, t + 1u).x;
        }
    }
    return acc;
}

// Rows beyond the 65535 workgroups of one dispatch dimension continue in the second.
@compute @workgroup_size(64)
fn matvec(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let row = group.x + group.y * groups.x;
    let t = group.z;
    partial[lane] = lane_share(row, t, lane);
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (lane < stride) {
            partial[lane] += partial[lane + stride];
        }
        workgroupBarrier();
    }
    if (lane == 0u && row < params.rows) {
        store(t, row, partial[0]);
    }
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
