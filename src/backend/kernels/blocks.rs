//! GGUF block layouts (as ggml defines them), the 8-bit activation blocks the quantised products
//! read, and the portable dot products and dequantisation of every supported weight format.
//!
//! A product of a weight row with an activation row sums, block by block, an exact integer dot
//! product of the quantised values scaled by the blocks' factors (llama.cpp's scheme):
//! - Q4_0, Q5_0, Q8_0 weights read activations rounded to Q8_0 (`d · q`, 32 values a block);
//! - Q4_1, Q5_1 weights read Q8_1, which adds `s = d · Σq` for the weights' offset `m`;
//! - the K-quants read Q8_K (256 values, one f32 scale, and the sums of each 16 values).

use half::f16;

pub const QK: usize = 32;
pub const QK_K: usize = 256;

#[inline]
pub fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16_value(&bytes[at..])
}

/// An f16's value, exactly: its exponent and mantissa bits shifted into an f32's and scaled by
/// 2^112 (one exact product, for normal and subnormal halves alike), infinities and NaNs kept.
/// Where there is no F16C (wasm, the portable path) this is a few instructions and one
/// predictable branch, against a branch per case in a general conversion.
#[inline(always)]
pub fn f16_bits_to_f32(bits: u16) -> f32 {
    let sign = ((bits & 0x8000) as u32) << 16;
    let magnitude = (bits & 0x7fff) as u32;
    let value = if magnitude >= 0x7c00 {
        0x7f80_0000 | ((magnitude & 0x3ff) << 13)
    } else {
        (f32::from_bits(magnitude << 13) * f32::from_bits(0x7780_0000)).to_bits()
    };
    f32::from_bits(value | sign)
}

/// The largest `|v|` (0 for none; NaNs ignored), in eight running maxima so that the compiler can
/// keep them in one register instead of a chain of dependent comparisons.
#[inline(always)]
fn largest_magnitude(x: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let whole = x.len() / 8 * 8;
    for chunk in x[..whole].chunks_exact(8) {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(v.abs());
        }
    }
    x[whole..].iter().chain(&lanes).fold(0f32, |m, v| m.max(v.abs()))
}

/// `v.round() as i8` (halves away from zero, saturating, NaN to 0) without a call to libm's
/// `roundf`, which the baseline x86-64 and wasm targets would make for every value, and without
/// branches, so that the compiler can round a block's values in SIMD registers.
#[inline(always)]
fn round_to_i8(v: f32) -> i8 {
    let magnitude = v.abs();
    let bounded = if magnitude < 128.0 {
        magnitude
    } else if magnitude >= 128.0 {
        128.0
    } else {
        0.0
    };
    // Exact: `bounded − whole` is the fraction of a float below 2^23.
    let whole = bounded as i32;
    let rounded = whole + (bounded - whole as f32 >= 0.5) as i32;
    (if v < 0.0 { -rounded } else { rounded }).clamp(-128, 127) as i8
}

/// 32 activations rounded to 8 bits: value `i` reads as `d · qs[i]`. `d` holds an f16's value
/// (the scale is rounded to half precision, as ggml does) and `s` is `d · Σ qs`, which Q4_1 and
/// Q5_1 weights multiply by their offset. ggml stores `s` as an f16 too; kept in f32 here, the
/// product equals the rounded input times the dequantised weights up to float summation order,
/// which is what lets attribution's per-neuron parts add up to the layer's output.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Q8Block {
    pub d: f32,
    pub s: f32,
    pub qs: [i8; QK],
}

impl Q8Block {
    pub const ZERO: Q8Block = Q8Block { d: 0.0, s: 0.0, qs: [0; QK] };

    /// ggml's `quantize_row_q8_1` reference (which rounds as Q8_0 does): the scale is the
    /// largest magnitude over 127, and the values are rounded half away from zero by its f32
    /// inverse, before the scale itself is rounded to f16.
    pub fn quantize(x: &[f32]) -> Q8Block {
        let d = largest_magnitude(x) / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0i8; QK];
        let mut sum = 0i32;
        for (q, &v) in qs.iter_mut().zip(x) {
            *q = round_to_i8(v * id);
            sum += *q as i32;
        }
        let d = f16::from_f32(d).to_f32();
        Q8Block { d, s: d * sum as f32, qs }
    }
}

/// 256 activations rounded to 8 bits for the K-quants: value `i` reads as `d · qs[i]`;
/// `bsums[j]` is the sum of `qs[16j .. 16j + 16]`.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Q8KBlock {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}

impl Q8KBlock {
    pub const ZERO: Q8KBlock = Q8KBlock { d: 0.0, qs: [0; QK_K], bsums: [0; QK_K / 16] };

    /// ggml's `quantize_row_q8_K` reference: the value of largest magnitude maps to −127.
    pub fn quantize(x: &[f32]) -> Q8KBlock {
        let mut max = 0f32;
        let mut amax = 0f32;
        for &v in x {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            return Q8KBlock::ZERO;
        }
        let iscale = -127.0 / max;
        let mut block = Q8KBlock::ZERO;
        for (q, &v) in block.qs.iter_mut().zip(x) {
            *q = round_to_i8(iscale * v);
        }
        for (sum, group) in block.bsums.iter_mut().zip(block.qs.chunks_exact(16)) {
            *sum = group.iter().map(|&q| q as i16).sum();
        }
        block.d = 1.0 / iscale;
        block
    }
}

// ---- The 32-value formats. Each block starts with its f16 scale `d` (Q4_1 and Q5_1 then
// with an f16 offset `m`); its 32 integers `q` read as `d · q (+ m)`.

/// A row's product with activations rounded to Q8_0 or Q8_1, in the one order every
/// instruction set follows, so that all of them give the same bits:
/// - lane `l` (of eight) of block `k` is the exact integer `Σ q[i] · a.qs[i]` over values
///   `4l .. 4l + 4`; the lanes accumulate `lane as f32 · (d · a.d)` across blocks, and are
///   reduced as [`reduce_lanes`] does;
/// - with an offset, `m · a.s` of block `k` accumulates in partial sum `k % 4`; the four are
///   added as `(p0 + p2) + (p1 + p3)` and then to the lanes' total.
///
/// Eight independent lanes and four offset sums let SIMD code keep the accumulators in
/// registers instead of reducing every block.
#[inline(always)]
fn dot_blocks32(
    row: &[u8],
    act: &[Q8Block],
    block_bytes: usize,
    offset: bool,
    values: impl Fn(&[u8]) -> [i32; QK],
) -> f32 {
    let mut lanes = [0f32; 8];
    let mut offsets = [0f32; 4];
    for (k, (block, a)) in row.chunks_exact(block_bytes).zip(act).enumerate() {
        let q = values(block);
        let scale = f16_at(block, 0) * a.d;
        for (l, lane) in lanes.iter_mut().enumerate() {
            let sum: i32 = (4 * l..4 * l + 4).map(|i| q[i] * a.qs[i] as i32).sum();
            *lane += sum as f32 * scale;
        }
        if offset {
            offsets[k % 4] += f16_at(block, 2) * a.s;
        }
    }
    let sum = reduce_lanes(lanes);
    if offset {
        sum + reduce_offsets(offsets)
    } else {
        sum
    }
}

/// The offsets' partial sums added as SIMD code adds a register's halves, then its two lanes.
#[inline(always)]
pub fn reduce_offsets(p: [f32; 4]) -> f32 {
    (p[0] + p[2]) + (p[1] + p[3])
}

#[inline(always)]
fn dequantize_blocks32(block: &[u8], out: &mut [f32], offset: bool, q: [i32; QK]) {
    let d = f16_at(block, 0);
    let m = if offset { f16_at(block, 2) } else { 0.0 };
    for (o, &q) in out.iter_mut().zip(&q) {
        *o = if offset { q as f32 * d + m } else { q as f32 * d };
    }
}

/// 16 bytes of nibbles: value `j` is low nibble `j`, value `j + 16` high nibble `j`.
#[inline(always)]
fn nibbles(qs: &[u8]) -> [i32; QK] {
    let mut q = [0; QK];
    for (j, &byte) in qs[..16].iter().enumerate() {
        q[j] = (byte & 0x0F) as i32;
        q[j + 16] = (byte >> 4) as i32;
    }
    q
}

/// Nibbles with a fifth bit each from the 32 bits at `at` (bit `j` is value `j`'s).
#[inline(always)]
fn five_bits(block: &[u8], at: usize) -> [i32; QK] {
    let high = u32::from_le_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]]);
    let mut q = nibbles(&block[at + 4..]);
    for (j, v) in q.iter_mut().enumerate() {
        *v |= (((high >> j) & 1) << 4) as i32;
    }
    q
}

fn minus(offset: i32, mut q: [i32; QK]) -> [i32; QK] {
    q.iter_mut().for_each(|v| *v -= offset);
    q
}

// Q4_0: d, nibbles; q − 8.
pub const Q4_0_BYTES: usize = 18;

#[inline(always)]
fn q4_0_values(block: &[u8]) -> [i32; QK] {
    minus(8, nibbles(&block[2..]))
}

#[inline(always)]
pub fn dot_q4_0(row: &[u8], act: &[Q8Block]) -> f32 {
    dot_blocks32(row, act, Q4_0_BYTES, false, q4_0_values)
}

fn dequantize_q4_0(block: &[u8], out: &mut [f32]) {
    dequantize_blocks32(block, out, false, q4_0_values(block))
}

// Q4_1: d, m, nibbles.
pub const Q4_1_BYTES: usize = 20;

#[inline(always)]
fn q4_1_values(block: &[u8]) -> [i32; QK] {
    nibbles(&block[4..])
}

#[inline(always)]
pub fn dot_q4_1(row: &[u8], act: &[Q8Block]) -> f32 {
    dot_blocks32(row, act, Q4_1_BYTES, true, q4_1_values)
}

fn dequantize_q4_1(block: &[u8], out: &mut [f32]) {
    dequantize_blocks32(block, out, true, q4_1_values(block))
}

// Q5_0: d, 32 fifth bits, nibbles; q − 16.
pub const Q5_0_BYTES: usize = 22;

#[inline(always)]
fn q5_0_values(block: &[u8]) -> [i32; QK] {
    minus(16, five_bits(block, 2))
}

#[inline(always)]
pub fn dot_q5_0(row: &[u8], act: &[Q8Block]) -> f32 {
    dot_blocks32(row, act, Q5_0_BYTES, false, q5_0_values)
}

fn dequantize_q5_0(block: &[u8], out: &mut [f32]) {
    dequantize_blocks32(block, out, false, q5_0_values(block))
}

// Q5_1: d, m, 32 fifth bits, nibbles.
pub const Q5_1_BYTES: usize = 24;

#[inline(always)]
fn q5_1_values(block: &[u8]) -> [i32; QK] {
    five_bits(block, 4)
}

#[inline(always)]
pub fn dot_q5_1(row: &[u8], act: &[Q8Block]) -> f32 {
    dot_blocks32(row, act, Q5_1_BYTES, true, q5_1_values)
}

fn dequantize_q5_1(block: &[u8], out: &mut [f32]) {
    dequantize_blocks32(block, out, true, q5_1_values(block))
}

// Q8_0: d, 32 signed bytes.
pub const Q8_0_BYTES: usize = 34;

#[inline(always)]
fn q8_0_values(block: &[u8]) -> [i32; QK] {
    std::array::from_fn(|i| block[2 + i] as i8 as i32)
}

#[inline(always)]
pub fn dot_q8_0(row: &[u8], act: &[Q8Block]) -> f32 {
    dot_blocks32(row, act, Q8_0_BYTES, false, q8_0_values)
}

fn dequantize_q8_0(block: &[u8], out: &mut [f32]) {
    dequantize_blocks32(block, out, false, q8_0_values(block))
}

// ---- Q4_K: d, dmin (f16), 12 bytes of 6-bit scales and mins for 8 groups of 32, 128 bytes of
// nibbles: each 32 bytes hold values [64c, 64c + 32) low and [64c + 32, 64c + 64) high.

pub const Q4_K_BYTES: usize = 144;
pub const Q5_K_BYTES: usize = 176;

/// The eight groups' 6-bit scales and mins from a Q4_K or Q5_K block's 12 packed bytes (ggml's
/// `get_scale_min_k4` for each group).
#[inline(always)]
pub fn scales_mins_k4(q: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut scales = [0u8; 8];
    let mut mins = [0u8; 8];
    for j in 0..4 {
        (scales[j], mins[j]) = (q[j] & 63, q[j + 4] & 63);
    }
    for j in 4..8 {
        (scales[j], mins[j]) = ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
    (scales, mins)
}

/// A Q4_K or Q5_K block's product from the exact integer sum `sumi` of its values times the
/// activations (each group's times its scale) and its groups' `mins`, scaled in the order every
/// SIMD path scales it.
#[inline(always)]
pub fn k4_block_product(block: &[u8], a: &Q8KBlock, sumi: i32, mins: &[u8; 8]) -> f32 {
    let mins: i32 = (0..8).map(|j| mins[j] as i32 * (a.bsums[2 * j] as i32 + a.bsums[2 * j + 1] as i32)).sum();
    f16_at(block, 0) * a.d * sumi as f32 - f16_at(block, 2) * a.d * mins as f32
}

/// Values `64c + l` and `64c + 32 + l` of a Q4_K block, or with `fifth_bits` of a Q5_K block.
#[inline(always)]
fn k_values(block: &[u8], fifth_bits: bool, c: usize, l: usize) -> (i32, i32) {
    if fifth_bits {
        let q = block[48 + 32 * c + l];
        let h = block[16 + l] >> (2 * c);
        (((q & 0x0F) | ((h & 1) << 4)) as i32, ((q >> 4) | ((h & 2) << 3)) as i32)
    } else {
        let q = block[16 + 32 * c + l];
        ((q & 0x0F) as i32, (q >> 4) as i32)
    }
}

#[inline(always)]
fn dot_k(row: &[u8], act: &[Q8KBlock], block_bytes: usize, fifth_bits: bool) -> f32 {
    let mut sum = 0f32;
    for (block, a) in row.chunks_exact(block_bytes).zip(act) {
        let (scales, group_mins) = scales_mins_k4(&block[4..16]);
        let mut sumi = 0i32;
        let mut mins = 0i32;
        for c in 0..4 {
            let (scale_low, min_low) = (scales[2 * c] as i32, group_mins[2 * c] as i32);
            let (scale_high, min_high) = (scales[2 * c + 1] as i32, group_mins[2 * c + 1] as i32);
            let (mut low, mut high) = (0i32, 0i32);
            for l in 0..32 {
                let (q_low, q_high) = k_values(block, fifth_bits, c, l);
                low += q_low * a.qs[64 * c + l] as i32;
                high += q_high * a.qs[64 * c + 32 + l] as i32;
            }
            sumi += scale_low * low + scale_high * high;
            mins += min_low * (a.bsums[4 * c] as i32 + a.bsums[4 * c + 1] as i32)
                + min_high * (a.bsums[4 * c + 2] as i32 + a.bsums[4 * c + 3] as i32);
        }
        sum += f16_at(block, 0) * a.d * sumi as f32 - f16_at(block, 2) * a.d * mins as f32;
    }
    sum
}

fn dequantize_k(block: &[u8], out: &mut [f32], fifth_bits: bool) {
    let (d, dmin) = (f16_at(block, 0), f16_at(block, 2));
    let (scales, mins) = scales_mins_k4(&block[4..16]);
    for c in 0..4 {
        let (scale_low, min_low) = (scales[2 * c], mins[2 * c]);
        let (scale_high, min_high) = (scales[2 * c + 1], mins[2 * c + 1]);
        let (d1, m1, d2, m2) =
            (d * scale_low as f32, dmin * min_low as f32, d * scale_high as f32, dmin * min_high as f32);
        for l in 0..32 {
            let (q_low, q_high) = k_values(block, fifth_bits, c, l);
            out[64 * c + l] = d1 * q_low as f32 - m1;
            out[64 * c + 32 + l] = d2 * q_high as f32 - m2;
        }
    }
}

#[inline(always)]
pub fn dot_q4_k(row: &[u8], act: &[Q8KBlock]) -> f32 {
    dot_k(row, act, Q4_K_BYTES, false)
}

fn dequantize_q4_k(block: &[u8], out: &mut [f32]) {
    dequantize_k(block, out, false)
}

// ---- Q5_K: Q4_K with 32 bytes of fifth bits before the nibbles: bit 2c of byte l is value
// 64c + l's, bit 2c + 1 value 64c + 32 + l's.

#[inline(always)]
pub fn dot_q5_k(row: &[u8], act: &[Q8KBlock]) -> f32 {
    dot_k(row, act, Q5_K_BYTES, true)
}

fn dequantize_q5_k(block: &[u8], out: &mut [f32]) {
    dequantize_k(block, out, true)
}

// ---- Q6_K: 128 bytes of low nibbles, 64 bytes of 2-bit highs, 16 signed 8-bit scales (one per
// 16 values), d (f16); value = d · scale · (q − 32). Each half of 128 values takes 64 low bytes,
// 32 high bytes and 8 scales: byte l serves values l, l + 32, l + 64 and l + 96.

pub const Q6_K_BYTES: usize = 210;

/// A Q6_K block's product from the exact integer sum `unsigned_sumi` of its values read unsigned
/// (0..64) times the activations, each group's times its scale: the offset of 32 comes off
/// through the activations' 16-value sums.
#[inline(always)]
pub fn q6k_block_product(block: &[u8], a: &Q8KBlock, unsigned_sumi: i32) -> f32 {
    let offset: i32 = (0..16).map(|i| 32 * (block[192 + i] as i8 as i32) * a.bsums[i] as i32).sum();
    f16_at(block, 208) * a.d * (unsigned_sumi - offset) as f32
}

/// The four 6-bit values byte `l` of a half serves, each minus 32, in value order.
#[inline(always)]
fn q6_values(ql: &[u8], qh: &[u8], l: usize) -> [i32; 4] {
    let h = qh[l];
    [
        ((ql[l] & 0x0F) | ((h & 3) << 4)) as i32 - 32,
        ((ql[l + 32] & 0x0F) | (((h >> 2) & 3) << 4)) as i32 - 32,
        ((ql[l] >> 4) | (((h >> 4) & 3) << 4)) as i32 - 32,
        ((ql[l + 32] >> 4) | (((h >> 6) & 3) << 4)) as i32 - 32,
    ]
}

#[inline(always)]
pub fn dot_q6_k(row: &[u8], act: &[Q8KBlock]) -> f32 {
    let mut sum = 0f32;
    for (block, a) in row.chunks_exact(Q6_K_BYTES).zip(act) {
        let mut sumi = 0i32;
        for half in 0..2 {
            let ql = &block[64 * half..64 * half + 64];
            let qh = &block[128 + 32 * half..128 + 32 * half + 32];
            let scales = &block[192 + 8 * half..192 + 8 * half + 8];
            let x = &a.qs[128 * half..128 * half + 128];
            // groups[g]: the integer dot of the 16 values scale g covers
            let mut groups = [0i32; 8];
            for l in 0..32 {
                let q = q6_values(ql, qh, l);
                let g = l / 16;
                groups[g] += q[0] * x[l] as i32;
                groups[g + 2] += q[1] * x[l + 32] as i32;
                groups[g + 4] += q[2] * x[l + 64] as i32;
                groups[g + 6] += q[3] * x[l + 96] as i32;
            }
            for (g, &dot) in groups.iter().enumerate() {
                sumi += scales[g] as i8 as i32 * dot;
            }
        }
        sum += f16_at(block, 208) * a.d * sumi as f32;
    }
    sum
}

fn dequantize_q6_k(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 208);
    for half in 0..2 {
        let ql = &block[64 * half..64 * half + 64];
        let qh = &block[128 + 32 * half..128 + 32 * half + 32];
        let scales = &block[192 + 8 * half..192 + 8 * half + 8];
        let out = &mut out[128 * half..128 * half + 128];
        for l in 0..32 {
            let q = q6_values(ql, qh, l);
            let g = l / 16;
            for (k, &v) in q.iter().enumerate() {
                out[l + 32 * k] = d * scales[g + 2 * k] as i8 as f32 * v as f32;
            }
        }
    }
}

// ---- Float weights read the activations unrounded. Eight partial sums (value i goes to sum
// i mod 8), reduced as an 8-lane SIMD register is, then the values past the last 8 in order:
// every instruction set computes this same order.

pub fn f32_at(w: &[u8]) -> f32 {
    f32::from_le_bytes([w[0], w[1], w[2], w[3]])
}

#[inline]
pub fn f16_value(w: &[u8]) -> f32 {
    f16_bits_to_f32(u16::from_le_bytes([w[0], w[1]]))
}

/// `((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7))`.
#[inline(always)]
pub fn reduce_lanes(l: [f32; 8]) -> f32 {
    let s = [l[0] + l[4], l[1] + l[5], l[2] + l[6], l[3] + l[7]];
    (s[0] + s[2]) + (s[1] + s[3])
}

/// `sum` plus the products of the values past the last full eight, in order; `width` bytes a
/// weight.
#[inline(always)]
pub fn add_tail(mut sum: f32, row: &[u8], x: &[f32], width: usize, value: fn(&[u8]) -> f32) -> f32 {
    for (w, &v) in row.chunks_exact(width).zip(x) {
        sum += value(w) * v;
    }
    sum
}

#[inline(always)]
fn dot_float(row: &[u8], x: &[f32], width: usize, value: fn(&[u8]) -> f32) -> f32 {
    let n = x.len().min(row.len() / width);
    let whole = n / 8 * 8;
    let mut lanes = [0f32; 8];
    for (i, (w, &v)) in row.chunks_exact(width).zip(&x[..whole]).enumerate() {
        lanes[i % 8] += value(w) * v;
    }
    add_tail(reduce_lanes(lanes), &row[whole * width..n * width], &x[whole..n], width, value)
}

#[inline(always)]
pub fn dot_f32(row: &[u8], x: &[f32]) -> f32 {
    dot_float(row, x, 4, f32_at)
}

#[inline(always)]
pub fn dot_f16(row: &[u8], x: &[f32]) -> f32 {
    dot_float(row, x, 2, f16_value)
}

fn dequantize_f32(block: &[u8], out: &mut [f32]) {
    out[0] = f32::from_le_bytes([block[0], block[1], block[2], block[3]]);
}

fn dequantize_f16(block: &[u8], out: &mut [f32]) {
    out[0] = f16_at(block, 0);
}

/// The dequantiser of one block of `format`.
pub fn block_dequantizer(format: super::Format) -> fn(&[u8], &mut [f32]) {
    use super::Format::*;
    match format {
        F32 => dequantize_f32,
        F16 => dequantize_f16,
        Q4_0 => dequantize_q4_0,
        Q4_1 => dequantize_q4_1,
        Q5_0 => dequantize_q5_0,
        Q5_1 => dequantize_q5_1,
        Q8_0 => dequantize_q8_0,
        Q4K => dequantize_q4_k,
        Q5K => dequantize_q5_k,
        Q6K => dequantize_q6_k,
    }
}

#[cfg(test)]
mod tests {
    use super::{f16_bits_to_f32, round_to_i8};

    /// Every one of the 65,536 halves against the `half` crate's conversion.
    #[test]
    fn f16_conversion_matches_the_half_crate() {
        for bits in 0..=u16::MAX {
            let (got, want) = (f16_bits_to_f32(bits), half::f16::from_bits(bits).to_f32());
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{bits:#06x}: {got} against {want}"
            );
        }
    }

    /// Against the standard library's `round`, at every half and its neighbours, and beyond.
    #[test]
    fn rounding_to_i8_matches_round() {
        let mut values = vec![0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30, 0.49999997];
        for half in -300..300 {
            let v = half as f32 * 0.5;
            values.extend([v, f32::from_bits(v.to_bits() + 1), f32::from_bits(v.to_bits().saturating_sub(1))]);
        }
        values.extend((0..100_000).map(|i| (i as f32 - 50_000.0) * 0.00271));
        for v in values {
            assert_eq!(round_to_i8(v), v.round() as i8, "{v}");
        }
    }
}
