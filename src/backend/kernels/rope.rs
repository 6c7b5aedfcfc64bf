//! Rotary position embedding over f32 rows `[t, heads · head_dim]` where they lie, with the
//! formulas (and so the bits) of candle's CPU kernels, without moving heads into their own
//! layout and back.

/// `x` rotated by `cos`, `sin` (`[t, head_dim / 2]` each, row `i` for token `i`): each pair
/// `(a, b)` of a head becomes `(a·cos − b·sin, a·sin + b·cos)`. Pairs are `(2j, 2j + 1)` when
/// `interleaved` (GPT-J style), else `(j, j + head_dim / 2)` (GPT-NeoX style).
///
/// # Panics
/// If `x` is not `t` rows of `heads · head_dim` values or the tables not `t · head_dim / 2`.
pub fn rotate(x: &[f32], cos: &[f32], sin: &[f32], heads: usize, head_dim: usize, interleaved: bool) -> Vec<f32> {
    let half = head_dim / 2;
    let width = heads * head_dim;
    let t = x.len().checked_div(width).unwrap_or(0);
    assert_eq!(x.len(), t * width, "rows of other than {width} values");
    assert!(cos.len() == t * half && sin.len() == t * half, "tables of other than [{t}, {half}]");
    let mut out = vec![0f32; x.len()];
    for i in 0..t {
        let (cos, sin) = (&cos[i * half..(i + 1) * half], &sin[i * half..(i + 1) * half]);
        for h in 0..heads {
            let base = i * width + h * head_dim;
            for j in 0..half {
                let (first, second) =
                    if interleaved { (base + 2 * j, base + 2 * j + 1) } else { (base + j, base + j + half) };
                let (a, b) = (x[first], x[second]);
                out[first] = a * cos[j] - b * sin[j];
                out[second] = a * sin[j] + b * cos[j];
            }
        }
    }
    out
}
