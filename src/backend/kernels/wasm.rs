//! wasm32 SIMD dot products (the module is built with `+simd128`, so there is nothing to detect).
//! Bytes are widened to 16 bits and multiplied in adjacent pairs into 32-bit lanes, then added in
//! fours; each block's eight integer sums are exact, and are scaled and accumulated in the
//! portable path's order, so the results equal the portable path's bit for bit.
#![cfg(target_feature = "simd128")]

use std::arch::wasm32::*;

use super::blocks::{self, f16_at, Q8Block, Q8KBlock};

/// The four sums of `x[i]·y[i]` over each four consecutive of 16 signed bytes.
#[inline(always)]
fn quads(x: v128, y: v128) -> v128 {
    let low = i32x4_dot_i16x8(i16x8_extend_low_i8x16(x), i16x8_extend_low_i8x16(y));
    let high = i32x4_dot_i16x8(i16x8_extend_high_i8x16(x), i16x8_extend_high_i8x16(y));
    i32x4_add(i32x4_shuffle::<0, 2, 4, 6>(low, high), i32x4_shuffle::<1, 3, 5, 7>(low, high))
}

/// 16 bytes at `at`.
#[inline(always)]
fn load(bytes: &[u8], at: usize) -> v128 {
    let chunk: &[u8; 16] = bytes[at..at + 16].try_into().expect("16 bytes");
    // SAFETY: `chunk` is 16 readable bytes; v128_load has no alignment requirement.
    unsafe { v128_load(chunk.as_ptr() as *const v128) }
}

#[inline(always)]
fn activations(a: &Q8Block) -> (v128, v128) {
    let qs = as_bytes(&a.qs);
    (load(qs, 0), load(qs, 16))
}

fn as_bytes(qs: &[i8]) -> &[u8] {
    // SAFETY: i8 and u8 have the same size and alignment.
    unsafe { std::slice::from_raw_parts(qs.as_ptr() as *const u8, qs.len()) }
}

/// A block's 32 nibbles in value order (low nibbles, then high).
#[inline(always)]
fn nibbles(block: &[u8], at: usize) -> (v128, v128) {
    let packed = load(block, at);
    (v128_and(packed, u8x16_splat(0x0F)), u8x16_shr(packed, 4))
}

/// 0x10 in the bytes of the values whose fifth bit is set in the block's 32 bits at `at`.
#[inline(always)]
fn fifth_bits(block: &[u8], at: usize) -> (v128, v128) {
    let word = u32x4_splat(u32::from_le_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]]));
    let select = u8x16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
    let set = |spread: v128| v128_and(i8x16_eq(v128_and(spread, select), select), u8x16_splat(0x10));
    (
        set(i8x16_swizzle(word, u8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1))),
        set(i8x16_swizzle(word, u8x16(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3))),
    )
}

/// A row's product for a 32-value format whose block starts with its f16 scale (and, with
/// `offset`, its f16 offset `m`) and whose 32 values `values` reads, in
/// `blocks::dot_blocks32`'s order: eight float lanes (two registers) across blocks, and the
/// offsets in four partial sums, one register filled by four blocks at a time.
#[inline(always)]
fn dot(row: &[u8], act: &[Q8Block], block_bytes: usize, offset: bool, values: impl Fn(&[u8]) -> (v128, v128)) -> f32 {
    let mut low = f32x4_splat(0.0);
    let mut high = f32x4_splat(0.0);
    // A macro rather than a closure, which the compiler keeps a function of its own, called per block.
    macro_rules! add_block {
        ($block:expr, $a:expr) => {{
            let (block, a): (&[u8], &Q8Block) = ($block, $a);
            let (x0, x1) = values(block);
            let (y0, y1) = activations(a);
            let scale = f32x4_splat(f16_at(block, 0) * a.d);
            low = f32x4_add(low, f32x4_mul(f32x4_convert_i32x4(quads(x0, y0)), scale));
            high = f32x4_add(high, f32x4_mul(f32x4_convert_i32x4(quads(x1, y1)), scale));
        }};
    }
    let offset_of = |block: &[u8], a: &Q8Block| f16_at(block, 2) * a.s;
    let mut offsets = f32x4_splat(0.0);
    let group_bytes = 4 * block_bytes;
    let whole = row.len() / group_bytes;
    for (blocks, a) in row.chunks_exact(group_bytes).zip(act.chunks_exact(4)) {
        let block = |k: usize| &blocks[k * block_bytes..(k + 1) * block_bytes];
        for (k, a) in a.iter().enumerate() {
            add_block!(block(k), a);
        }
        if offset {
            let group = f32x4(
                offset_of(block(0), &a[0]),
                offset_of(block(1), &a[1]),
                offset_of(block(2), &a[2]),
                offset_of(block(3), &a[3]),
            );
            offsets = f32x4_add(offsets, group);
        }
    }
    let mut tail_offsets = [
        f32x4_extract_lane::<0>(offsets),
        f32x4_extract_lane::<1>(offsets),
        f32x4_extract_lane::<2>(offsets),
        f32x4_extract_lane::<3>(offsets),
    ];
    for (k, (block, a)) in row[whole * group_bytes..].chunks_exact(block_bytes).zip(&act[whole * 4..]).enumerate() {
        add_block!(block, a);
        if offset {
            tail_offsets[k] += offset_of(block, a);
        }
    }
    let sum = blocks::reduce_lanes([
        f32x4_extract_lane::<0>(low),
        f32x4_extract_lane::<1>(low),
        f32x4_extract_lane::<2>(low),
        f32x4_extract_lane::<3>(low),
        f32x4_extract_lane::<0>(high),
        f32x4_extract_lane::<1>(high),
        f32x4_extract_lane::<2>(high),
        f32x4_extract_lane::<3>(high),
    ]);
    if offset {
        sum + blocks::reduce_offsets(tail_offsets)
    } else {
        sum
    }
}

fn minus(offset: i8, (low, high): (v128, v128)) -> (v128, v128) {
    (i8x16_sub(low, i8x16_splat(offset)), i8x16_sub(high, i8x16_splat(offset)))
}

fn with_fifth((low, high): (v128, v128), (fifth_low, fifth_high): (v128, v128)) -> (v128, v128) {
    (v128_or(low, fifth_low), v128_or(high, fifth_high))
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
    dot(row, act, blocks::Q8_0_BYTES, false, |block| (load(block, 2), load(block, 18)))
}

// ---- The K-quants: each block's integer sums are exact in 32-bit lanes, in any order, and are
// scaled per block as the portable path does.

/// Four sums of `x[i]·y[i]` over 16 values `x` (each below 128) and 16 signed bytes `y`.
#[inline(always)]
fn products(x: v128, y: v128) -> v128 {
    let low = i32x4_dot_i16x8(i16x8_extend_low_i8x16(x), i16x8_extend_low_i8x16(y));
    let high = i32x4_dot_i16x8(i16x8_extend_high_i8x16(x), i16x8_extend_high_i8x16(y));
    i32x4_add(low, high)
}

/// `acc + products(x, y) · scale`.
#[inline(always)]
fn add_scaled(acc: v128, x: v128, y: v128, scale: i32) -> v128 {
    i32x4_add(acc, i32x4_mul(products(x, y), i32x4_splat(scale)))
}

fn sum_lanes(v: v128) -> i32 {
    i32x4_extract_lane::<0>(v) + i32x4_extract_lane::<1>(v) + i32x4_extract_lane::<2>(v) + i32x4_extract_lane::<3>(v)
}

/// A Q4_K row's product, or with `fifth` a Q5_K row's, equal to `blocks::dot_q4_k`'s (`dot_q5_k`'s).
#[inline(always)]
fn dot_k(row: &[u8], act: &[Q8KBlock], block_bytes: usize, fifth: bool) -> f32 {
    let nibbles_at = if fifth { 48 } else { 16 };
    let mut sum = 0f32;
    for (block, a) in row.chunks_exact(block_bytes).zip(act) {
        let (scales, mins) = blocks::scales_mins_k4(&block[4..16]);
        let x = as_bytes(&a.qs);
        let mut sumi = i32x4_splat(0);
        for c in 0..4 {
            for half in 0..2 {
                let packed = load(block, nibbles_at + 32 * c + 16 * half);
                let mut low = v128_and(packed, u8x16_splat(0x0F));
                let mut high = u8x16_shr(packed, 4);
                if fifth {
                    let bits = load(block, 16 + 16 * half);
                    let bit = |shift: u32| u8x16_shl(v128_and(u8x16_shr(bits, shift), u8x16_splat(1)), 4);
                    low = v128_or(low, bit(2 * c as u32));
                    high = v128_or(high, bit(2 * c as u32 + 1));
                }
                sumi = add_scaled(sumi, low, load(x, 64 * c + 16 * half), scales[2 * c] as i32);
                sumi = add_scaled(sumi, high, load(x, 64 * c + 32 + 16 * half), scales[2 * c + 1] as i32);
            }
        }
        sum += blocks::k4_block_product(block, a, sum_lanes(sumi), &mins);
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
        let mut sumi = i32x4_splat(0);
        for half in 0..2 {
            for sub in 0..2 {
                let first = load(block, 64 * half + 16 * sub);
                let second = load(block, 64 * half + 32 + 16 * sub);
                let high = load(block, 128 + 32 * half + 16 * sub);
                let high_at = |shift: u32| u8x16_shl(v128_and(u8x16_shr(high, shift), u8x16_splat(3)), 4);
                let values = [
                    v128_or(v128_and(first, u8x16_splat(0x0F)), high_at(0)),
                    v128_or(v128_and(second, u8x16_splat(0x0F)), high_at(2)),
                    v128_or(u8x16_shr(first, 4), high_at(4)),
                    v128_or(u8x16_shr(second, 4), high_at(6)),
                ];
                for (k, &values) in values.iter().enumerate() {
                    let at = 128 * half + 32 * k + 16 * sub;
                    sumi = add_scaled(sumi, values, load(x, at), scale(at / 16));
                }
            }
        }
        sum += blocks::q6k_block_product(block, a, sum_lanes(sumi));
    }
    sum
}
