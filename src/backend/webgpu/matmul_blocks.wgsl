// Products with weights in 32-value blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, and F32 or F16 rows
// of whole runs of 32), for software adapters: their CPU threads run a workgroup's invocations
// as SIMD lanes and load storage one lane at a time, so these kernels load as few values as
// they can. A block is read as the whole words it spans (its f16 scale unpacked from them),
// never a byte at a time, x four values at a time, and each load serves several rows or
// tokens. KIND, the weights' ggml type, is fixed when the pipeline is made, so that a kernel
// holds the decoding of its own type only. Block layouts as in matmul.wgsl.
//
// - `rows`: y[t, r] = Σ_c x[t, c] · W[r, c], an invocation per (ROWS output rows, token);
// - `tiles`: the same, an invocation per (TILE_ROWS output rows, TILE tokens), each block
//   decoded once a tile;
// - `transposed`: y[t, c] = Σ_r x[t, r] · W[r, c], an invocation per (32 output columns, token),
//   each block decoded once.

override KIND: u32;

// Params, weights, y and TILE: product.wgsl, prepended at load. x's rows are whole blocks of 32
// values (rows, tiles) or any length (transposed, which reads one value a row): every tensor's
// buffer is a power of two of at least 16 bytes.
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;

// Bytes a block takes.
fn block_bytes() -> u32 {
    switch KIND {
        case Q4_0: {
            return 18u;
        }
        case Q4_1: {
            return 20u;
        }
        case Q5_0: {
            return 22u;
        }
        case Q5_1: {
            return 24u;
        }
        default: {
            return 34u;
        }
    }
}

// Words a block spans wherever it starts: blocks of 18, 22 and 34 bytes start on even bytes
// only, so one may begin two bytes into its first word; blocks of 20 and 24 bytes start on a
// word. The last block's words are inside the buffer, whose size is rounded up to whole words.
fn spanned_words() -> u32 {
    return select((block_bytes() + 2u + 3u) / 4u, block_bytes() / 4u, block_bytes() % 4u == 0u);
}

// The 4 bytes from byte `at` (even) of a block that starts `shift / 8` bytes into words[0]
// (`shift` 0 or 16).
fn word_of(words: ptr<function, array<u32, 9>>, at: u32, shift: u32) -> u32 {
    let o = at + shift / 8u;
    let i = o / 4u;
    let joined = ((*words)[i] >> 16u) | ((*words)[min(i + 1u, 8u)] << 16u);
    return select((*words)[i], joined, o % 4u == 2u);
}

// Block `block` (counted over the whole matrix) dequantised: quads[i] holds its values
// 4i .. 4i + 3.
fn decode(block: u32) -> array<vec4<f32>, 8> {
    var quads: array<vec4<f32>, 8>;
    if (KIND == F32) {
        let first = block * 32u;
        for (var i = 0u; i < 8u; i++) {
            let at = first + 4u * i;
            quads[i] = bitcast<vec4<f32>>(vec4<u32>(weights[at], weights[at + 1u], weights[at + 2u], weights[at + 3u]));
        }
        return quads;
    }
    if (KIND == F16) {
        let first = block * 16u;
        for (var i = 0u; i < 8u; i++) {
            quads[i] = vec4<f32>(unpack2x16float(weights[first + 2u * i]), unpack2x16float(weights[first + 2u * i + 1u]));
        }
        return quads;
    }
    let base = block * block_bytes();
    let first = base / 4u;
    let shift = (base % 4u) * 8u;
    var words: array<u32, 9>;
    for (var i = 0u; i < spanned_words(); i++) {
        words[i] = weights[first + i];
    }
    let scales = unpack2x16float(word_of(&words, 0u, shift));
    switch KIND {
        case Q8_0: {
            for (var i = 0u; i < 8u; i++) {
                let q = word_of(&words, 2u + 4u * i, shift);
                let signed = bitcast<vec4<i32>>(vec4<u32>(q << 24u, q << 16u, q << 8u, q)) >> vec4<u32>(24u);
                quads[i] = vec4<f32>(signed) * scales.x;
            }
        }
        default: {
            let has_min = KIND == Q4_1 || KIND == Q5_1;
            let fifths = KIND == Q5_0 || KIND == Q5_1;
            let nibbles_at = select(2u, 4u, has_min) + select(0u, 4u, fifths);
            var high_bits = 0u;
            if (fifths) {
                high_bits = word_of(&words, select(2u, 4u, has_min), shift);
            }
            let offset = select(select(-8.0, -16.0, fifths) * scales.x, scales.y, has_min);
            for (var i = 0u; i < 4u; i++) {
                let q = word_of(&words, nibbles_at + 4u * i, shift);
                let bytes = vec4<u32>(q, q >> 8u, q >> 16u, q >> 24u);
                // Value j's fifth bit is bit j of the high-bit word, worth 16.
                let low_fifth = (vec4<u32>(high_bits) >> (vec4<u32>(0u, 1u, 2u, 3u) + 4u * i)) & vec4<u32>(1u);
                let high_fifth = (vec4<u32>(high_bits) >> (vec4<u32>(16u, 17u, 18u, 19u) + 4u * i)) & vec4<u32>(1u);
                quads[i] = vec4<f32>((bytes & vec4<u32>(0xfu)) | (low_fifth << vec4<u32>(4u))) * scales.x + offset;
                quads[i + 4u] = vec4<f32>(((bytes >> vec4<u32>(4u)) & vec4<u32>(0xfu)) | (high_fifth << vec4<u32>(4u))) * scales.x + offset;
            }
        }
    }
    return quads;
}

fn store(t: u32, row: u32, value: f32) {
    y[t * params.all_rows + params.first_row + row] = value;
}

// Output rows per invocation of `rows`, which share their loads of x.
const ROWS: u32 = 4u;

// One invocation per (ROWS output rows, token); tokens by workgroup row, so that a token's
// index is the same across a workgroup. Rows past the last repeat it, and are not stored.
@compute @workgroup_size(64)
fn rows(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let row0 = (group.x * 64u + lane) * ROWS;
    let t = group.y;
    if (row0 >= params.rows || t >= params.tokens) {
        return;
    }
    let last = params.rows - 1u;
    let r = vec4<u32>(row0, min(row0 + 1u, last), min(row0 + 2u, last), min(row0 + 3u, last));
    let blocks = params.cols / 32u;
    let quads_per_row = params.cols / 4u;
    var sums = vec4<f32>(0.0);
    for (var b = 0u; b < blocks; b++) {
        var w0 = decode(r.x * blocks + b);
        var w1 = decode(r.y * blocks + b);
        var w2 = decode(r.z * blocks + b);
        var w3 = decode(r.w * blocks + b);
        let at = t * quads_per_row + b * 8u;
        for (var i = 0u; i < 8u; i++) {
            let xq = x[at + i];
            sums += vec4<f32>(dot(w0[i], xq), dot(w1[i], xq), dot(w2[i], xq), dot(w3[i], xq));
        }
    }
    for (var i = 0u; i < min(ROWS, params.rows - row0); i++) {
        store(t, row0 + i, sums[i]);
    }
}

// Output rows per invocation of `tiles`.
const TILE_ROWS: u32 = 2u;

// One invocation per (TILE_ROWS output rows, tile of TILE tokens). Rows and tokens past the
// last repeat it, and are not stored.
@compute @workgroup_size(64)
fn tiles(@builtin(global_invocation_id) id: vec3<u32>) {
    let row0 = id.x * TILE_ROWS;
    let t0 = id.y * TILE;
    if (row0 >= params.rows || t0 >= params.tokens) {
        return;
    }
    let row1 = min(row0 + 1u, params.rows - 1u);
    let blocks = params.cols / 32u;
    let quads_per_row = params.cols / 4u;
    let last = params.tokens - 1u;
    let t = vec4<u32>(t0, min(t0 + 1u, last), min(t0 + 2u, last), min(t0 + 3u, last)) * quads_per_row;
    var first = vec4<f32>(0.0);
    var second = vec4<f32>(0.0);
    for (var b = 0u; b < blocks; b++) {
        var w0 = decode(row0 * blocks + b);
        var w1 = decode(row1 * blocks + b);
        for (var i = 0u; i < 8u; i++) {
            let at = b * 8u + i;
            let xs = mat4x4<f32>(x[t.x + at], x[t.y + at], x[t.z + at], x[t.w + at]);
            // Column j of xs is token j's quad: w · xs is each token's dot product.
            first += w0[i] * xs;
            second += w1[i] * xs;
        }
    }
    for (var i = 0u; i < min(TILE, params.tokens - t0); i++) {
        store(t0 + i, row0, first[i]);
        if (row0 + 1u < params.rows) {
            store(t0 + i, row0 + 1u, second[i]);
        }
    }
}

// x[i] of x read as a flat array of f32.
fn x_at(i: u32) -> f32 {
    return x[i / 4u][i % 4u];
}

// One invocation per (block of 32 output columns, token): each row's block is decoded once and
// scaled by x[t, row].
@compute @workgroup_size(64)
fn transposed(@builtin(global_invocation_id) id: vec3<u32>) {
    let block_column = id.x;
    let t = id.y;
    let blocks = params.cols / 32u;
    if (block_column >= blocks || t >= params.tokens) {
        return;
    }
    var sums: array<vec4<f32>, 8>;
    let xs = t * params.all_rows + params.first_row;
    for (var r = 0u; r < params.rows; r++) {
        var w = decode(r * blocks + block_column);
        let scale = x_at(xs + r);
        for (var i = 0u; i < 8u; i++) {
            sums[i] += w[i] * scale;
        }
    }
    let out = t * params.cols + block_column * 32u;
    for (var i = 0u; i < 8u; i++) {
        for (var j = 0u; j < 4u; j++) {
            var value = sums[i][j];
            if (params.accumulate == 1u) {
                value += y[out + 4u * i + j];
            }
            y[out + 4u * i + j] = value;
        }
    }
}
