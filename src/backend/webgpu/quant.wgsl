// Reading GGUF blocks out of `weights`, an array<u32> binding that every shader using this file
// declares. Prepended to those shaders' source when they are loaded.

// ggml type ids.
const F32: u32 = 0u;
const F16: u32 = 1u;
const Q4_0: u32 = 2u;
const Q4_1: u32 = 3u;
const Q8_0: u32 = 8u;

fn byte_at(offset: u32) -> u32 {
    return (weights[offset >> 2u] >> ((offset & 3u) * 8u)) & 0xffu;
}

fn half_at(offset: u32) -> f32 {
    return unpack2x16float(byte_at(offset) | (byte_at(offset + 1u) << 8u)).x;
}

fn signed_byte_at(offset: u32) -> f32 {
    return f32(i32(byte_at(offset) << 24u) >> 24u);
}

// Element c of row `row` of a `cols`-wide matrix of type `kind`: one value at a time, for row
// lookups (the matmul decodes whole blocks in its loops instead).
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
        case Q8_0: {
            let base = (row * blocks + b) * 34u;
            return signed_byte_at(base + 2u + j) * half_at(base);
        }
        default: {
            return 0.0;
        }
    }
}
