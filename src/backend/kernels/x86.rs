//! AVX2 + FMA dot products, chosen at run time when the CPU has them.
//!
//! Each 32-value block is widened to 32 bytes in one register and multiplied with the 32 8-bit
//! activations by `maddubs` (unsigned × signed byte pairs into 16 bits) and `madd` (pairs into 32
//! bits), then summed across the register: the block's integer dot product, exact. It is then
//! scaled and added in the portable path's order, without fused multiply-adds, so every result
//! equals the portable path's (and so the wasm build's) bit for bit. The K-quants' integer sums
//! are exact in any order, so only their per-block scaling follows the portable path; the float
//! formats keep eight partial sums, as the portable path does.

use std::arch::x86_64::*;

use super::blocks::{self, Q8Block, Q8KBlock};

/// Whether this CPU runs the functions of this module.
pub fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
}

/// 16 bytes of nibbles as 32 bytes in value order: the low nibbles (values 0..16), then the
/// high ones (values 16..32).
#[target_feature(enable = "avx2,fma")]
unsafe fn nibbles(qs: *const u8) -> __m256i {
    let packed = _mm_loadu_si128(qs as *const __m128i);
    let mask = _mm_set1_epi8(0x0F);
    let low = _mm_and_si128(packed, mask);
    let high = _mm_and_si128(_mm_srli_epi16(packed, 4), mask);
    _mm256_inserti128_si256(_mm256_castsi128_si256(low), high, 1)
}

/// Byte `j` is 0x10 where bit `j` of `bits` is set, else 0: the fifth bits of a Q5 block.
#[target_feature(enable = "avx2,fma")]
unsafe fn fifth_bits(bits: u32) -> __m256i {
    // Byte j takes byte j / 8 of `bits`, then keeps bit j % 8 of it.
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(bits as i32),
        _mm256_setr_epi8(
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
        ),
    );
    let select = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select);
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}

#[target_feature(enable = "avx2,fma")]
unsafe fn activations(a: &Q8Block) -> __m256i {
    _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i)
}

/// One 32-value format: its block size, whether it has an offset `m`, its block's 32 values as
/// bytes in value order, and their products with 32 activations as eight 32-bit lanes (each the
/// sum of four products). The values are read once per block however many activation rows
/// multiply them.
trait Blocks {
    const BYTES: usize;
    const OFFSET: bool;
    /// # Safety
    /// Runs only inlined into an `avx2` function.
    unsafe fn values(block: &[u8]) -> __m256i;
    /// # Safety
    /// As [`Blocks::values`].
    unsafe fn lanes(values: __m256i, a: &Q8Block) -> __m256i;
}

#[inline(always)]
unsafe fn lanes_unsigned(x: __m256i, y: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1))
}

/// `|x| · (y with x's sign)` keeps `maddubs` (unsigned × signed) exact for signed `x`.
#[inline(always)]
unsafe fn lanes_signed(x: __m256i, y: __m256i) -> __m256i {
    lanes_unsigned(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
}

struct Q4_0;
impl Blocks for Q4_0 {
    const BYTES: usize = blocks::Q4_0_BYTES;
    const OFFSET: bool = false;
    #[inline(always)]
    unsafe fn values(block: &[u8]) -> __m256i {
        _mm256_sub_epi8(nibbles(block.as_ptr().add(2)), _mm256_set1_epi8(8))
    }
    #[inline(always)]
    unsafe fn lanes(values: __m256i, a: &Q8Block) -> __m256i {
        lanes_signed(values, activations(a))
    }
}

struct Q4_1;
impl Blocks for Q4_1 {
    const BYTES: usize = blocks::Q4_1_BYTES;
    const OFFSET: bool = true;
    #[inline(always)]
    unsafe fn values(block: &[u8]) -> __m256i {
        nibbles(block.as_ptr().add(4))
    }
    #[inline(always)]
    unsafe fn lanes(values: __m256i, a: &Q8Block) -> __m256i {
        lanes_unsigned(values, activations(a))
    }
}

struct Q5_0;
impl Blocks for Q5_0 {
    const BYTES: usize = blocks::Q5_0_BYTES;
    const OFFSET: bool = false;
    #[inline(always)]
    unsafe fn values(block: &[u8]) -> __m256i {
        let bits = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
        _mm256_sub_epi8(_mm256_or_si256(nibbles(block.as_ptr().add(6)), fifth_bits(bits)), _mm256_set1_epi8(16))
    }
    #[inline(always)]
    unsafe fn lanes(values: __m256i, a: &Q8Block) -> __m256i {
        lanes_signed(values, activations(a))
    }
}

struct Q5_1;
impl Blocks for Q5_1 {
    const BYTES: usize = blocks::Q5_1_BYTES;
    const OFFSET: bool = true;
    #[inline(always)]
    unsafe fn values(block: &[u8]) -> __m256i {
        let bits = u32::from_le_bytes([block[4], block[5], block[6], block[7]]);
        _mm256_or_si256(nibbles(block.as_ptr().add(8)), fifth_bits(bits))
    }
    #[inline(always)]
    unsafe fn lanes(values: __m256i, a: &Q8Block) -> __m256i {
        lanes_unsigned(values, activations(a))
    }
}

struct Q8_0;
impl Blocks for Q8_0 {
    const BYTES: usize = blocks::Q8_0_BYTES;
    const OFFSET: bool = false;
    #[inline(always)]
    unsafe fn values(block: &[u8]) -> __m256i {
        _mm256_loadu_si256(block.as_ptr().add(2) as *const __m256i)
    }
    #[inline(always)]
    unsafe fn lanes(values: __m256i, a: &Q8Block) -> __m256i {
        lanes_signed(values, activations(a))
    }
}

/// The first four bytes of a block: its f16 `d`, then `m` where the format has one.
#[inline(always)]
fn head(block: &[u8]) -> i32 {
    i32::from_le_bytes([block[0], block[1], block[2], block[3]])
}

/// `[d, m]` of four blocks, interleaved as eight floats; the odd lanes mean nothing for formats
/// without an offset.
#[inline(always)]
unsafe fn weight_factors(blocks: &[u8], bytes: usize) -> __m256 {
    _mm256_cvtph_ps(_mm_setr_epi32(
        head(blocks),
        head(&blocks[bytes..]),
        head(&blocks[2 * bytes..]),
        head(&blocks[3 * bytes..]),
    ))
}

/// `d` then `s`: the first eight bytes of a `repr(C)` activation block. A function, not a
/// closure: a closure does not take its caller's target features, so intrinsics inside it
/// become calls.
#[inline(always)]
unsafe fn scales(a: &Q8Block) -> __m128i {
    _mm_loadl_epi64(a as *const Q8Block as *const __m128i)
}

/// `[d · a.d, m · a.s]` of four blocks and their activations, interleaved as eight floats.
#[inline(always)]
unsafe fn factors(weights: __m256, a: &[Q8Block]) -> __m256 {
    let activation = _mm256_set_m128i(
        _mm_unpacklo_epi64(scales(&a[2]), scales(&a[3])),
        _mm_unpacklo_epi64(scales(&a[0]), scales(&a[1])),
    );
    _mm256_mul_ps(weights, _mm256_castsi256_ps(activation))
}

/// `lanes + block lanes · scale`, without a fused multiply-add (the portable path rounds twice).
#[inline(always)]
unsafe fn accumulate(lanes: __m256, block: __m256i, scale: __m256) -> __m256 {
    _mm256_add_ps(lanes, _mm256_mul_ps(_mm256_cvtepi32_ps(block), scale))
}

/// A row's products with `N` rows of activations, each in [`blocks::dot_blocks32`]'s order:
/// eight float lanes across blocks, and four offset sums (block `k` into `k % 4`), which four
/// blocks at a time fill one register. Each weight block is unpacked once for the `N` rows.
#[inline(always)]
unsafe fn dot<B: Blocks, const N: usize>(row: &[u8], act: [&[Q8Block]; N]) -> [f32; N] {
    let mut lanes = [_mm256_setzero_ps(); N];
    let mut offsets = [_mm_setzero_ps(); N];
    let group_bytes = 4 * B::BYTES;
    let whole = row.len() / group_bytes;
    for g in 0..whole {
        let blocks = &row[g * group_bytes..(g + 1) * group_bytes];
        let weights = weight_factors(blocks, B::BYTES);
        // Written out rather than `array::from_fn`, whose closure would not inline the intrinsics.
        let values = [
            B::values(blocks),
            B::values(&blocks[B::BYTES..]),
            B::values(&blocks[2 * B::BYTES..]),
            B::values(&blocks[3 * B::BYTES..]),
        ];
        for j in 0..N {
            let a = &act[j][4 * g..4 * g + 4];
            let factors = factors(weights, a);
            for k in 0..4 {
                let scale = _mm256_permutevar8x32_ps(factors, _mm256_set1_epi32(2 * k as i32));
                lanes[j] = accumulate(lanes[j], B::lanes(values[k], &a[k]), scale);
            }
            if B::OFFSET {
                let odd = _mm256_permutevar8x32_ps(factors, _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7));
                offsets[j] = _mm_add_ps(offsets[j], _mm256_castps256_ps128(odd));
            }
        }
    }
    let mut tail_offsets: [[f32; 4]; N] = std::mem::transmute_copy(&offsets);
    for (k, block) in row[whole * group_bytes..].chunks_exact(B::BYTES).enumerate() {
        let d = blocks::f16_at(block, 0);
        let m = if B::OFFSET { blocks::f16_at(block, 2) } else { 0.0 };
        let values = B::values(block);
        for j in 0..N {
            let a = &act[j][4 * whole + k];
            lanes[j] = accumulate(lanes[j], B::lanes(values, a), _mm256_set1_ps(d * a.d));
            if B::OFFSET {
                tail_offsets[j][k] += m * a.s;
            }
        }
    }
    let mut sums = [0.0; N];
    for (j, sum) in sums.iter_mut().enumerate() {
        *sum = reduce_lanes(lanes[j]);
        if B::OFFSET {
            *sum += blocks::reduce_offsets(tail_offsets[j]);
        }
    }
    sums
}

/// The product of one weight row with one row of activations, and with four.
macro_rules! row_products {
    ($format:ty, $one:ident, $four:ident) => {
        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn $one(row: &[u8], act: &[Q8Block]) -> f32 {
            dot::<$format, 1>(row, [act])[0]
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn $four(row: &[u8], act: [&[Q8Block]; 4]) -> [f32; 4] {
            dot::<$format, 4>(row, act)
        }
    };
}

row_products!(Q4_0, dot_q4_0, dot4_q4_0);
row_products!(Q4_1, dot_q4_1, dot4_q4_1);
row_products!(Q5_0, dot_q5_0, dot4_q5_0);
row_products!(Q5_1, dot_q5_1, dot4_q5_1);
row_products!(Q8_0, dot_q8_0, dot4_q8_0);

/// The eight partial sums reduced as [`blocks::reduce_lanes`] does.
#[target_feature(enable = "avx2,fma")]
unsafe fn reduce_lanes(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_f32(row: &[u8], x: &[f32]) -> f32 {
    let n = x.len().min(row.len() / 4);
    let mut lanes = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        let w = _mm256_loadu_ps(row.as_ptr().add(4 * i) as *const f32);
        lanes = _mm256_add_ps(lanes, _mm256_mul_ps(w, _mm256_loadu_ps(x.as_ptr().add(i))));
        i += 8;
    }
    blocks::add_tail(reduce_lanes(lanes), &row[4 * i..4 * n], &x[i..n], 4, blocks::f32_at)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_f16(row: &[u8], x: &[f32]) -> f32 {
    let n = x.len().min(row.len() / 2);
    let mut lanes = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        let w = _mm256_cvtph_ps(_mm_loadu_si128(row.as_ptr().add(2 * i) as *const __m128i));
        lanes = _mm256_add_ps(lanes, _mm256_mul_ps(w, _mm256_loadu_ps(x.as_ptr().add(i))));
        i += 8;
    }
    blocks::add_tail(reduce_lanes(lanes), &row[2 * i..2 * n], &x[i..n], 2, blocks::f16_value)
}

// ---- The K-quants. Each block's integer sums (the scaled value sums, and for Q4_K and Q5_K
// the mins times the activations' sums) are computed exactly in 32-bit lanes, then combined
// with the block's factors in scalar code exactly as the portable path does.

/// The exact sum of a register's eight 32-bit lanes.
#[inline(always)]
unsafe fn sum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    _mm_cvtsi128_si32(s)
}

/// 32 activations from `at`.
#[inline(always)]
unsafe fn activations_k(a: &Q8KBlock, at: usize) -> __m256i {
    _mm256_loadu_si256(a.qs.as_ptr().add(at) as *const __m256i)
}

/// The block's sixteen 16-value sums as 16-bit lanes.
#[inline(always)]
unsafe fn group_sums(a: &Q8KBlock) -> __m256i {
    _mm256_loadu_si256(a.bsums.as_ptr() as *const __m256i)
}

/// A Q4_K (or with `FIFTH`, Q5_K) row's products with `N` rows of activations, each equal to
/// [`blocks::dot_q4_k`]'s (or `dot_q5_k`'s): a block's 256 values are unpacked once for the `N`
/// rows.
#[inline(always)]
unsafe fn dot_k<const FIFTH: bool, const N: usize>(row: &[u8], act: [&[Q8KBlock]; N]) -> [f32; N] {
    let block_bytes = if FIFTH { blocks::Q5_K_BYTES } else { blocks::Q4_K_BYTES };
    let nibbles_at = if FIFTH { 48 } else { 16 };
    let low_nibbles = _mm256_set1_epi8(0x0F);
    let one = _mm256_set1_epi8(1);
    let mut sums = [0f32; N];
    for (b, block) in row.chunks_exact(block_bytes).enumerate() {
        let (scales, mins) = blocks::scales_mins_k4(&block[4..16]);
        // Mins in 16-bit lanes, each twice: lane i multiplies the sum of values 16i .. 16i + 16.
        let mins = _mm_cvtepu8_epi16(_mm_loadl_epi64(mins.as_ptr() as *const __m128i));
        let mins = _mm256_set_m128i(_mm_unpackhi_epi16(mins, mins), _mm_unpacklo_epi16(mins, mins));
        let mut high_bits = if FIFTH { _mm256_loadu_si256(block.as_ptr().add(16) as *const __m256i) } else { one };
        let mut sumi = [_mm256_setzero_si256(); N];
        for c in 0..4 {
            let packed = _mm256_loadu_si256(block.as_ptr().add(nibbles_at + 32 * c) as *const __m256i);
            let mut low = _mm256_and_si256(packed, low_nibbles);
            let mut high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_nibbles);
            if FIFTH {
                low = _mm256_or_si256(low, _mm256_slli_epi16(_mm256_and_si256(high_bits, one), 4));
                high =
                    _mm256_or_si256(high, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(high_bits, 1), one), 4));
                high_bits = _mm256_srli_epi16(high_bits, 2);
            }
            let scale_low = _mm256_set1_epi16(scales[2 * c] as i16);
            let scale_high = _mm256_set1_epi16(scales[2 * c + 1] as i16);
            for j in 0..N {
                let a = &act[j][b];
                let low = _mm256_madd_epi16(_mm256_maddubs_epi16(low, activations_k(a, 64 * c)), scale_low);
                let high = _mm256_madd_epi16(_mm256_maddubs_epi16(high, activations_k(a, 64 * c + 32)), scale_high);
                sumi[j] = _mm256_add_epi32(sumi[j], _mm256_add_epi32(low, high));
            }
        }
        let (d, dmin) = (blocks::f16_at(block, 0), blocks::f16_at(block, 2));
        for j in 0..N {
            let a = &act[j][b];
            let mins = sum_i32(_mm256_madd_epi16(mins, group_sums(a)));
            sums[j] += d * a.d * sum_i32(sumi[j]) as f32 - dmin * a.d * mins as f32;
        }
    }
    sums
}

/// A Q6_K row's products with `N` rows of activations, each equal to [`blocks::dot_q6_k`]'s:
/// the values are multiplied unsigned (0..64) and the offset of 32 is taken off through the
/// activations' 16-value sums, both exactly.
#[inline(always)]
unsafe fn dot_6k<const N: usize>(row: &[u8], act: [&[Q8KBlock]; N]) -> [f32; N] {
    let low_nibbles = _mm256_set1_epi8(0x0F);
    let two_bits = _mm256_set1_epi8(3);
    let mut sums = [0f32; N];
    for (b, block) in row.chunks_exact(blocks::Q6_K_BYTES).enumerate() {
        let p = block.as_ptr();
        let scales = _mm_loadu_si128(p.add(192) as *const __m128i);
        let offsets = _mm256_slli_epi16(_mm256_cvtepi8_epi16(scales), 5);
        let mut sumi = [_mm256_setzero_si256(); N];
        for half in 0..2 {
            let first = _mm256_loadu_si256(p.add(64 * half) as *const __m256i);
            let second = _mm256_loadu_si256(p.add(64 * half + 32) as *const __m256i);
            let high = _mm256_loadu_si256(p.add(128 + 32 * half) as *const __m256i);
            let high_at = |shift: i32| {
                let bits = match shift {
                    0 => high,
                    2 => _mm256_srli_epi16(high, 2),
                    4 => _mm256_srli_epi16(high, 4),
                    _ => _mm256_srli_epi16(high, 6),
                };
                _mm256_slli_epi16(_mm256_and_si256(bits, two_bits), 4)
            };
            // Values 32k .. 32k + 32 of the half, each 0..64.
            let values = [
                _mm256_or_si256(_mm256_and_si256(first, low_nibbles), high_at(0)),
                _mm256_or_si256(_mm256_and_si256(second, low_nibbles), high_at(2)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(first, 4), low_nibbles), high_at(4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(second, 4), low_nibbles), high_at(6)),
            ];
            for (k, &values) in values.iter().enumerate() {
                // Values 0..16 of the 32 take scale 8·half + 2k, values 16..32 the next.
                let at = 8 * half + 2 * k;
                let scale = _mm256_set_m128i(
                    _mm_set1_epi16(block[192 + at + 1] as i8 as i16),
                    _mm_set1_epi16(block[192 + at] as i8 as i16),
                );
                for j in 0..N {
                    let x = activations_k(&act[j][b], 128 * half + 32 * k);
                    sumi[j] = _mm256_add_epi32(sumi[j], _mm256_madd_epi16(_mm256_maddubs_epi16(values, x), scale));
                }
            }
        }
        let d = blocks::f16_at(block, 208);
        for j in 0..N {
            let a = &act[j][b];
            let offset = _mm256_madd_epi16(offsets, group_sums(a));
            sums[j] += d * a.d * sum_i32(_mm256_sub_epi32(sumi[j], offset)) as f32;
        }
    }
    sums
}

/// The product of one K-quant weight row with one row of activations, and with four.
macro_rules! k_row_products {
    ($one:ident = $dot_one:expr, $four:ident = $dot_four:expr) => {
        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn $one(row: &[u8], act: &[Q8KBlock]) -> f32 {
            $dot_one(row, [act])[0]
        }

        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn $four(row: &[u8], act: [&[Q8KBlock]; 4]) -> [f32; 4] {
            $dot_four(row, act)
        }
    };
}

k_row_products!(dot_q4_k = dot_k::<false, 1>, dot4_q4_k = dot_k::<false, 4>);
k_row_products!(dot_q5_k = dot_k::<true, 1>, dot4_q5_k = dot_k::<true, 4>);
k_row_products!(dot_q6_k = dot_6k::<1>, dot4_q6_k = dot_6k::<4>);
