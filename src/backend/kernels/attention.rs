//! Causal multi-head attention over f32 rows, for the CPU backend: each (head, query) pair is one
//! task on the kernels' [`ThreadPool`], reading the keys and values where they lie, with no
//! copies into per-head layouts. The sums run in one fixed order in plain Rust, so native and wasm
//! builds add them alike.

use super::blocks::reduce_lanes;
use super::{Output, ThreadPool};

/// The sizes of one attention call. Queries are the last `t` of `total` positions.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    pub t: usize,
    pub total: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// A query sees only the keys within this many positions of it, itself included.
    pub window: Option<usize>,
}

impl AttentionShape {
    fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    fn kv_width(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

/// `Σ a[i]·b[i]` in eight partial sums, reduced as the weight kernels reduce theirs, then the
/// values past the last full eight in order.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let whole = a.len() / 8 * 8;
    for (x, y) in a[..whole].chunks_exact(8).zip(b[..whole].chunks_exact(8)) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    let mut sum = reduce_lanes(lanes);
    for (x, y) in a[whole..].iter().zip(&b[whole..]) {
        sum += x * y;
    }
    sum
}

/// Row `j`'s part for key/value head `kv`.
fn head_slice(rows: &[f32], j: usize, kv: usize, shape: AttentionShape) -> &[f32] {
    &rows[j * shape.kv_width() + kv * shape.head_dim..][..shape.head_dim]
}

/// `z: [t, heads · head_dim]` for `q: [t, heads · head_dim]` and `k`, `v`:
/// `[total, kv_heads · head_dim]`, query head `h` reading key/value head `h / (heads / kv_heads)`;
/// with `probabilities`, also the softmax weights `[heads, t, total]` (zero where masked: after
/// the query, and before its window when the shape has one).
///
/// # Panics
/// If the slices are not of the shape's sizes, or `heads` is not a multiple of `kv_heads`.
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: AttentionShape,
    probabilities: bool,
    pool: &ThreadPool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let AttentionShape { t, total, heads, kv_heads, head_dim, window } = shape;
    assert!(kv_heads > 0 && heads % kv_heads == 0, "{heads} query heads over {kv_heads} key heads");
    assert!(t <= total, "{t} queries after {total} positions");
    assert_eq!(q.len(), t * shape.width(), "queries of other than [{t}, {}]", shape.width());
    assert_eq!(k.len(), total * shape.kv_width(), "keys of other than [{total}, {}]", shape.kv_width());
    assert_eq!(v.len(), k.len(), "values of other than the keys' shape");
    let group = heads / kv_heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut z = vec![0f32; t * shape.width()];
    let mut weights = if probabilities { vec![0f32; heads * t * total] } else { Vec::new() };
    let z_out = Output(z.as_mut_ptr());
    let weights_out = Output(weights.as_mut_ptr());
    pool.run(heads * t, &|task| {
        let (h, i) = (task / t, task % t);
        let kv = h / group;
        let query = &q[i * shape.width() + h * head_dim..][..head_dim];
        let visible = total - t + i + 1;
        let first = crate::backend::Heads { heads, kv_heads, window }.first_visible(visible - 1);
        let mut p: Vec<f32> = (first..visible).map(|j| dot(query, head_slice(k, j, kv, shape)) * scale).collect();
        let max = p.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        let mut sum = 0f32;
        for s in p.iter_mut() {
            *s = (*s - max).exp();
            sum += *s;
        }
        let mut out = vec![0f32; head_dim];
        for (j, s) in (first..).zip(p.iter_mut()) {
            *s /= sum;
            for (o, &value) in out.iter_mut().zip(head_slice(v, j, kv, shape)) {
                *o += *s * value;
            }
        }
        let row = i * shape.width() + h * head_dim;
        for (d, &value) in out.iter().enumerate() {
            // SAFETY: (i, h) is this task's alone, and its cells lie in `z`.
            unsafe { z_out.write(row + d, value) };
        }
        if probabilities {
            let row = (h * t + i) * total;
            for (j, &value) in (first..).zip(&p) {
                // SAFETY: as above, in `weights`, which has `heads · t · total` cells.
                unsafe { weights_out.write(row + j, value) };
            }
        }
    });
    (z, probabilities.then_some(weights))
}
