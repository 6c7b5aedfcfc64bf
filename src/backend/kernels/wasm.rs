//! wasm32 SIMD dot products (the module is built with `+simd128`, so there is nothing to detect).
//! Bytes are widened to 16 bits and multiplied in adjacent pairs into 32-bit lanes; each block's
//! integer sum is exact and is scaled and added in the portable path's order, so the results
//! equal the portable path's bit for bit.
#![cfg(target_feature = "simd128")]

use std::arch::wasm32::*;

use super::blocks::{self, Q8Block};

#[inline(always)]
fn f16_at(bytes: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// Σ x[i]·y[i] over 16 signed bytes each.
#[inline(always)]
fn dot_bytes(x: v128, y: v128) -> v128 {
    i32x4_add(
        i32x4_dot_i16x8(i16x8_extend_low_i8x16(x), i16x8_extend_low_i8x16(y)),
        i32x4_dot_i16x8(i16x8_extend_high_i8x16(x), i16x8_extend_high_i8x16(y)),
    )
}

#[inline(always)]
fn lanes_sum(v: v128) -> i32 {
    i32x4_extract_lane::<0>(v) + i32x4_extract_lane::<1>(v) + i32x4_extract_lane::<2>(v) + i32x4_extract_lane::<3>(v)
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

/// A block's 32 nibbles in value order (low nibbles, then high), `offset` subtracted.
#[inline(always)]
fn nibbles(block: &[u8], at: usize, offset: i8) -> (v128, v128) {
    let packed = load(block, at);
    let mask = u8x16_splat(0x0F);
    let offset = i8x16_splat(offset);
    (i8x16_sub(v128_and(packed, mask), offset), i8x16_sub(u8x16_shr(packed, 4), offset))
}

pub fn dot_q4_0(row: &[u8], act: &[Q8Block]) -> f32 {
    let mut sum = 0f32;
    for (block, a) in row.chunks_exact(blocks::Q4_0_BYTES).zip(act) {
        let (low, high) = nibbles(block, 2, 8);
        let (y0, y1) = activations(a);
        let sumi = lanes_sum(i32x4_add(dot_bytes(low, y0), dot_bytes(high, y1)));
        sum += sumi as f32 * (f16_at(block, 0) * a.d);
    }
    sum
}

pub fn dot_q4_1(row: &[u8], act: &[Q8Block]) -> f32 {
    let mut sum = 0f32;
    for (block, a) in row.chunks_exact(blocks::Q4_1_BYTES).zip(act) {
        let (low, high) = nibbles(block, 4, 0);
        let (y0, y1) = activations(a);
        let sumi = lanes_sum(i32x4_add(dot_bytes(low, y0), dot_bytes(high, y1)));
        sum += sumi as f32 * (f16_at(block, 0) * a.d) + f16_at(block, 2) * a.s;
    }
    sum
}

pub fn dot_q8_0(row: &[u8], act: &[Q8Block]) -> f32 {
    let mut sum = 0f32;
    for (block, a) in row.chunks_exact(blocks::Q8_0_BYTES).zip(act) {
        let (y0, y1) = activations(a);
        let sumi = lanes_sum(i32x4_add(dot_bytes(load(block, 2), y0), dot_bytes(load(block, 18), y1)));
        sum += sumi as f32 * (f16_at(block, 0) * a.d);
    }
    sum
}
