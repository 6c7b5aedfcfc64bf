// Reading GGUF blocks out of `weights`, an array<u32> binding that every shader using this file
// declares. Prepended to those shaders' source when they are loaded, after one of half_u32.wgsl
// or half_f16.wgsl, which read the f16 values (every one at an even byte offset).

// ggml type ids.
const F32: u32 = 0u;
const F16: u32 = 1u;
const Q4_0: u32 = 2u;
const Q4_1: u32 = 3u;
const Q5_0: u32 = 6u;
const Q5_1: u32 = 7u;
const Q8_0: u32 = 8u;
const Q4_K: u32 = 12u;
const Q5_K: u32 = 13u;
const Q6_K: u32 = 14u;

fn byte_at(offset: u32) -> u32 {
    return (weights[offset >> 2u] >> ((offset & 3u) * 8u)) & 0xffu;
}

fn signed_byte_at(offset: u32) -> f32 {
    return f32(i32(byte_at(offset) << 24u) >> 24u);
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block whose 12 packed scale
// bytes start at `at` (ggml's get_scale_min_k4).
fn scale_min_k4(at: u32, j: u32) -> vec2<f32> {
    if (j < 4u) {
        return vec2<f32>(f32(byte_at(at + j) & 63u), f32(byte_at(at + j + 4u) & 63u));
    }
    let scale = (byte_at(at + j + 4u) & 0xfu) | ((byte_at(at + j - 4u) >> 6u) << 4u);
    let offset = (byte_at(at + j + 4u) >> 4u) | ((byte_at(at + j) >> 6u) << 4u);
    return vec2<f32>(f32(scale), f32(offset));
}

// Element c (0..255) of the 256-value K-quant block at byte `base`.
// Q4_K: f16 d, f16 dmin, 12 scale bytes, 128 bytes of nibbles; each 64 values share 32 bytes,
// low nibbles first, and sub-block s has scale d·sc_s and offset −dmin·m_s.
// Q5_K: as Q4_K with 32 bytes of fifth bits (qh) before the nibbles; value c's fifth bit is bit
// s of qh[c % 32] for its sub-block s.
// Q6_K: 128 bytes of low nibbles, 64 of 2-bit highs, 16 signed scales, f16 d; each half of 128
// values has 64 low bytes, 32 high bytes and 8 scales, in four quarters of 32.
fn k_quant_at(kind: u32, base: u32, c: u32) -> f32 {
    if (kind == Q6_K) {
        let half = c / 128u;
        let w = c % 128u;
        let quarter = w / 32u;
        let l = w % 32u;
        let low_byte = byte_at(base + half * 64u + l + (quarter & 1u) * 32u);
        let low = select(low_byte & 0xfu, low_byte >> 4u, quarter >= 2u);
        let high = (byte_at(base + 128u + half * 32u + l) >> (2u * quarter)) & 3u;
        let scale = f32(i32(byte_at(base + 192u + half * 8u + l / 16u + 2u * quarter) << 24u) >> 24u);
        return half_at(base + 208u) * scale * (f32(low | (high << 4u)) - 32.0);
    }
    let chunk = c / 64u;
    let upper = (c % 64u) / 32u;
    let l = c % 32u;
    let sub = 2u * chunk + upper;
    let scale_min = scale_min_k4(base + 4u, sub);
    var nibbles = base + 16u;
    var fifth = 0u;
    if (kind == Q5_K) {
        nibbles = base + 48u;
        fifth = ((byte_at(base + 16u + l) >> sub) & 1u) << 4u;
    }
    let q = byte_at(nibbles + chunk * 32u + l);
    let nibble = select(q & 0xfu, q >> 4u, upper == 1u);
    return half_at(base) * scale_min.x * f32(nibble + fifth) - half_at(base + 2u) * scale_min.y;
}

// The fifth bit of value j (0..31) of a Q5_0/Q5_1 block whose 32 high bits start at byte `at`:
// bit j of that little-endian word, as 16.
fn fifth_bit(at: u32, j: u32) -> u32 {
    return ((byte_at(at + j / 8u) >> (j % 8u)) & 1u) << 4u;
}

// Element c of row `row` of a `cols`-wide matrix of type `kind`: one value at a time, for row
// lookups and the transposed product (the others decode whole sub-blocks in their loops).
fn weight_at(kind: u32, row: u32, cols: u32, c: u32) -> f32 {
    let b = c / 32u;
    let j = c % 32u;
    let blocks = cols / 32u;
    switch kind {
        case F32: {
            return bitcast<f32>(weights[row * cols + c]);
        }
        case F16: {
            return half_at((row * cols + c) * 2u);
        }
        case Q4_0: {
            let base = (row * blocks + b) * 18u;
            let q = byte_at(base + 2u + j % 16u);
            let nibble = select(q & 0xfu, q >> 4u, j >= 16u);
            return (f32(nibble) - 8.0) * half_at(base);
        }
        case Q4_1: {
            let base = (row * blocks + b) * 20u;
            let q = byte_at(base + 4u + j % 16u);
            let nibble = select(q & 0xfu, q >> 4u, j >= 16u);
            return f32(nibble) * half_at(base) + half_at(base + 2u);
        }
        case Q5_0: {
            let base = (row * blocks + b) * 22u;
            let q = byte_at(base + 6u + j % 16u);
            let nibble = select(q & 0xfu, q >> 4u, j >= 16u);
            return (f32(nibble | fifth_bit(base + 2u, j)) - 16.0) * half_at(base);
        }
        case Q5_1: {
            let base = (row * blocks + b) * 24u;
            let q = byte_at(base + 8u + j % 16u);
            let nibble = select(q & 0xfu, q >> 4u, j >= 16u);
            return f32(nibble | fifth_bit(base + 4u, j)) * half_at(base) + half_at(base + 2u);
        }
        case Q8_0: {
            let base = (row * blocks + b) * 34u;
            return signed_byte_at(base + 2u + j) * half_at(base);
        }
        case Q4_K, Q5_K, Q6_K: {
            let block_bytes = select(select(144u, 176u, kind == Q5_K), 210u, kind == Q6_K);
            return k_quant_at(kind, (row * (cols / 256u) + c / 256u) * block_bytes, c % 256u);
        }
        default: {
            return 0.0;
        }
    }
}
