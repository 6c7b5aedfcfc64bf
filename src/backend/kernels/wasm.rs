//! wasm32 SIMD dot products (the module is built with `+simd128`, so there is nothing to detect).
//! Bytes are widened to 16 bits and multiplied in adjacent pairs into 32-bit lanes, then added in
//! fours; each block's eight integer sums are exact, and are scaled and accumulated in the
//! portable path's order, so the results equal the portable path's bit for bit.
#![cfg(target_feature = "simd128")]

use std::arch::wasm32::*;

use super::blocks::{self, f16_at, Q8Block};

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

fn activations(a: &Q8Block) -> (v128, v128) {
    let qs = as_bytes(&a.qs);
    (load(qs, 0), load(qs, 16))
}

fn as_bytes(qs: &[i8; 32]) -> &[u8] {
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
    let mut add_block = |block: &[u8], a: &Q8Block| {
        let (x0, x1) = values(block);
        let (y0, y1) = activations(a);
        let scale = f32x4_splat(f16_at(block, 0) * a.d);
        low = f32x4_add(low, f32x4_mul(f32x4_convert_i32x4(quads(x0, y0)), scale));
        high = f32x4_add(high, f32x4_mul(f32x4_convert_i32x4(quads(x1, y1)), scale));
    };
    let offset_of = |block: &[u8], a: &Q8Block| f16_at(block, 2) * a.s;
    let mut offsets = f32x4_splat(0.0);
    let group_bytes = 4 * block_bytes;
    let whole = row.len() / group_bytes;
    for (blocks, a) in row.chunks_exact(group_bytes).zip(act.chunks_exact(4)) {
        let block = |k: usize| &blocks[k * block_bytes..(k + 1) * block_bytes];
        for (k, a) in a.iter().enumerate() {
            add_block(block(k), a);
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
        add_block(block, a);
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
