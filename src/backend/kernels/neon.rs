//! aarch64 NEON dot products. NEON is part of the aarch64 baseline (every aarch64 Rust target
//! enables it), so, as with wasm's simd128, there is nothing to detect at run time.
//!
//! Bytes are multiplied into 16-bit products (`smull`), added in adjacent pairs into 32-bit
//! lanes (`saddlp`, `addp`); each block's eight integer sums are exact, and are scaled and
//! accumulated in the portable path's order (no fused multiply-adds), so the results equal the
//! portable path's bit for bit. The K-quants' integer sums are exact in any order; only their
//! per-block scaling follows the portable path.
#![cfg(all(target_arch = "aarch64", target_feature = "neon"))]

use std::arch::aarch64::*;

use super::blocks::{self, f16_at, Q8Block, Q8KBlock};

/// 16 bytes at `at`.
#[inline(always)]
fn load(bytes: &[u8], at: usize) -> uint8x16_t {
    let chunk: &[u8; 16] = bytes[at..at + 16].try_into().expect("16 bytes");
    // SAFETY: `chunk` is 16 readable bytes; vld1q_u8 has no alignment requirement, and NEON is
    // enabled for the whole build (the module's cfg).
    unsafe { vld1q_u8(chunk.as_ptr()) }
}

fn as_bytes(qs: &[i8]) -> &[u8] {
    // SAFETY: i8 and u8 have the same size and alignment.
    unsafe { std::slice::from_raw_parts(qs.as_ptr() as *const u8, qs.len()) }
}

/// The four sums of `x[i]·y[i]` over each four consecutive of 16 signed bytes, in order.
#[inline(always)]
fn quads(x: int8x16_t, y: int8x16_t) -> int32x4_t {
    // SAFETY (every intrinsic in this module): register arithmetic, with NEON enabled for the build.
    unsafe {
        let low = vpaddlq_s16(vmull_s8(vget_low_s8(x), vget_low_s8(y)));
        let high = vpaddlq_s16(vmull_high_s8(x, y));
        vpaddq_s32(low, high)
    }
}

#[inline(always)]
fn activations(a: &Q8Block) -> (int8x16_t, int8x16_t) {
    let qs = as_bytes(&a.qs);
    unsafe { (vreinterpretq_s8_u8(load(qs, 0)), vreinterpretq_s8_u8(load(qs, 16))) }
}

/// A block's 32 nibbles in value order (low nibbles, then high).
#[inline(always)]
fn nibbles(block: &[u8], at: usize) -> (int8x16_t, int8x16_t) {
    let packed = load(block, at);
    unsafe { (vreinterpretq_s8_u8(vandq_u8(packed, vdupq_n_u8(0x0F))), vreinterpretq_s8_u8(vshrq_n_u8(packed, 4))) }
}

/// 0x10 in the bytes of the values whose fifth bit is set in the block's 32 bits at `at`.
#[inline(always)]
fn fifth_bits(block: &[u8], at: usize) -> (int8x16_t, int8x16_t) {
    let word = u32::from_le_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]]);
    const SELECT: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    const LOW: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
    const HIGH: [u8; 16] = [2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3];
    unsafe {
        let bytes = vreinterpretq_u8_u32(vdupq_n_u32(word));
        let select = vld1q_u8(SELECT.as_ptr());
        // Byte j takes byte j / 8 of the word and keeps 0x10 where its bit j % 8 is set.
        let set = |spread: &[u8; 16]| {
            let spread = vqtbl1q_u8(bytes, vld1q_u8(spread.as_ptr()));
            vreinterpretq_s8_u8(vandq_u8(vtstq_u8(spread, select), vdupq_n_u8(0x10)))
        };
        (set(&LOW), set(&HIGH))
    }
}

/// A row's product for a 32-value format whose block starts with its f16 scale (and, with
/// `offset`, its f16 offset `m`) and whose 32 values `values` reads, in
/// `blocks::dot_blocks32`'s order: eight float lanes (two registers) across blocks, and the
/// offsets in four partial sums, one register filled by four blocks at a time.
#[inline(always)]
fn dot(
    row: &[u8],
    act: &[Q8Block],
    block_bytes: usize,
    offset: bool,
    values: impl Fn(&[u8]) -> (int8x16_t, int8x16_t),
) -> f32 {
    unsafe {
        let mut low = vdupq_n_f32(0.0);
        let mut high = vdupq_n_f32(0.0);
        macro_rules! add_block {
            ($block:expr, $a:expr) => {{
                let (block, a): (&[u8], &Q8Block) = ($block, $a);
                let (x0, x1) = values(block);
                let (y0, y1) = activations(a);
                let scale = vdupq_n_f32(f16_at(block, 0) * a.d);
                low = vaddq_f32(low, vmulq_f32(vcvtq_f32_s32(quads(x0, y0)), scale));
                high = vaddq_f32(high, vmulq_f32(vcvtq_f32_s32(quads(x1, y1)), scale));
            }};
        }
        let offset_of = |block: &[u8], a: &Q8Block| f16_at(block, 2) * a.s;
        let mut offsets = [0f32; 4];
        let mut grouped = vdupq_n_f32(0.0);
        let group_bytes = 4 * block_bytes;
        let whole = row.len() / group_bytes;
        for (blocks, a) in row.chunks_exact(group_bytes).zip(act.chunks_exact(4)) {
            let block = |k: usize| &blocks[k * block_bytes..(k + 1) * block_bytes];
            for (k, a) in a.iter().enumerate() {
                add_block!(block(k), a);
            }
            if offset {
                let group: [f32; 4] = std::array::from_fn(|k| offset_of(block(k), &a[k]));
                grouped = vaddq_f32(grouped, vld1q_f32(group.as_ptr()));
            }
        }
        vst1q_f32(offsets.as_mut_ptr(), grouped);
        for (k, (block, a)) in row[whole * group_bytes..].chunks_exact(block_bytes).zip(&act[whole * 4..]).enumerate() {
            add_block!(block, a);
            if offset {
                offsets[k] += offset_of(block, a);
            }
        }
        let mut lanes = [0f32; 8];
        vst1q_f32(lanes.as_mut_ptr(), low);
        vst1q_f32(lanes[4..].as_mut_ptr(), high);
        let sum = blocks::reduce_lanes(lanes);
        if offset {
            sum + blocks::reduce_offsets(offsets)
        } else {
            sum
        }
    }
}

fn minus(offset: i8, (low, high): (int8x16_t, int8x16_t)) -> (int8x16_t, int8x16_t) {
    unsafe { (vsubq_s8(low, vdupq_n_s8(offset)), vsubq_s8(high, vdupq_n_s8(offset))) }
}

fn with_fifth(
    (low, high): (int8x16_t, int8x16_t),
    (fifth_low, fifth_high): (int8x16_t, int8x16_t),
) -> (int8x16_t, int8x16_t) {
    unsafe { (vorrq_s8(low, fifth_low), vorrq_s8(high, fifth_high)) }
}

pub fn dot_q4_0(row: &[u8], act: &[Q8Block]) -> f32 {
    dot(row, act, blocks::Q4_0_BYTES, false, |block| minus(8, nibbles(block, 2)))
}

pub fn dot_q4_1(row: &[u8], act: &[Q8Block]) -> f32 {
    dot(row, act, blocks::Q4_1_BYTES, true, |block| nibbles(block, 4))
}

pub fn dot_q5_0(row: &[u8], act: &[Q8Block]) -> f32 {
    dot(row, act, blocks::Q5_0_BYTES, false, |block| minus(16, with_fifth(nibbles(block, 6), fifth_bits(block, 2))))
}

pub fn dot_q5_1(row: &[u8], act: &[Q8Block]) -> f32 {
    dot(row, act, blocks::Q5_1_BYTES, true, |block| with_fifth(nibbles(block, 8), fifth_bits(block, 4)))
}

pub fn dot_q8_0(row: &[u8], act: &[Q8Block]) -> f32 {
    dot(row, act, blocks::Q8_0_BYTES, false, |block| unsafe {
        (vreinterpretq_s8_u8(load(block, 2)), vreinterpretq_s8_u8(load(block, 18)))
    })
}

// ---- The K-quants.

/// `acc + (Σ x[i]·y[i], in four lanes) · scale` for 16 values `x` (each below 128) and 16
/// signed bytes `y`.
#[inline(always)]
fn add_scaled(acc: int32x4_t, x: uint8x16_t, y: uint8x16_t, scale: i32) -> int32x4_t {
    unsafe {
        let (x, y) = (vreinterpretq_s8_u8(x), vreinterpretq_s8_u8(y));
        let low = vpaddlq_s16(vmull_s8(vget_low_s8(x), vget_low_s8(y)));
        let high = vpaddlq_s16(vmull_high_s8(x, y));
        vaddq_s32(acc, vmulq_n_s32(vaddq_s32(low, high), scale))
    }
}

/// Bits `shift ..= shift + width − 1` of every byte, moved to bits 4 and up.
#[inline(always)]
fn high_bits(bits: uint8x16_t, shift: u32, mask: u8) -> uint8x16_t {
    unsafe { vshlq_n_u8(vandq_u8(vshlq_u8(bits, vdupq_n_s8(-(shift as i8))), vdupq_n_u8(mask)), 4) }
}

/// A Q4_K row's product, or with `fifth` a Q5_K row's, equal to `blocks::dot_q4_k`'s (`dot_q5_k`'s).
#[inline(always)]
fn dot_k(row: &[u8], act: &[Q8KBlock], block_bytes: usize, fifth: bool) -> f32 {
    let nibbles_at = if fifth { 48 } else { 16 };
    let mut sum = 0f32;
    for (block, a) in row.chunks_exact(block_bytes).zip(act) {
        let (scales, mins) = blocks::scales_mins_k4(&block[4..16]);
        let x = as_bytes(&a.qs);
        let mut sumi = unsafe { vdupq_n_s32(0) };
        for c in 0..4 {
            for half in 0..2 {
                let packed = load(block, nibbles_at + 32 * c + 16 * half);
                let (mut low, mut high) = unsafe { (vandq_u8(packed, vdupq_n_u8(0x0F)), vshrq_n_u8(packed, 4)) };
                if fifth {
                    let bits = load(block, 16 + 16 * half);
                    unsafe {
                        low = vorrq_u8(low, high_bits(bits, 2 * c as u32, 1));
                        high = vorrq_u8(high, high_bits(bits, 2 * c as u32 + 1, 1));
                    }
                }
                sumi = add_scaled(sumi, low, load(x, 64 * c + 16 * half), scales[2 * c] as i32);
                sumi = add_scaled(sumi, high, load(x, 64 * c + 32 + 16 * half), scales[2 * c + 1] as i32);
            }
        }
        sum += blocks::k4_block_product(block, a, unsafe { vaddvq_s32(sumi) }, &mins);
    }
    sum
}

pub fn dot_q4_k(row: &[u8], act: &[Q8KBlock]) -> f32 {
    dot_k(row, act, blocks::Q4_K_BYTES, false)
}

pub fn dot_q5_k(row: &[u8], act: &[Q8KBlock]) -> f32 {
    dot_k(row, act, blocks::Q5_K_BYTES, true)
}

/// A Q6_K row's product, equal to `blocks::dot_q6_k`'s: the values multiplied unsigned (0..64),
/// the offset of 32 taken off through the activations' 16-value sums.
pub fn dot_q6_k(row: &[u8], act: &[Q8KBlock]) -> f32 {
    let mut sum = 0f32;
    for (block, a) in row.chunks_exact(blocks::Q6_K_BYTES).zip(act) {
        let x = as_bytes(&a.qs);
        let scale = |i: usize| block[192 + i] as i8 as i32;
        let mut sumi = unsafe { vdupq_n_s32(0) };
        for half in 0..2 {
            for sub in 0..2 {
                let first = load(block, 64 * half + 16 * sub);
                let second = load(block, 64 * half + 32 + 16 * sub);
                let high = load(block, 128 + 32 * half + 16 * sub);
                let values = unsafe {
                    let low_nibbles = vdupq_n_u8(0x0F);
                    [
                        vorrq_u8(vandq_u8(first, low_nibbles), high_bits(high, 0, 3)),
                        vorrq_u8(vandq_u8(second, low_nibbles), high_bits(high, 2, 3)),
                        vorrq_u8(vshrq_n_u8(first, 4), high_bits(high, 4, 3)),
                        vorrq_u8(vshrq_n_u8(second, 4), high_bits(high, 6, 3)),
                    ]
                };
                for (k, &values) in values.iter().enumerate() {
                    let at = 128 * half + 32 * k + 16 * sub;
                    sumi = add_scaled(sumi, values, load(x, at), scale(at / 16));
                }
            }
        }
        sum += blocks::q6k_block_product(block, a, unsafe { vaddvq_s32(sumi) });
    }
    sum
}
