// Causal attention with grouped-query heads and an online softmax. q: [t, H·d]; k, v: [T, KV·d]
// for all T positions so far, the queries being the last t of them. Query head h reads KV head
// h / (H / KV). One invocation per (head, query): it walks the keys it may see once, keeping the
// running maximum m, the running sum l of e^(s − m) and the running weighted sum of values.
// z: [t, H·d]. A nonzero `params.window` limits each query to the keys within that many
// positions of it (sliding-window layers). When `params.probabilities` is set it also writes
// p: [H, t, T], the softmax, with zeros where a query sees nothing, computed from the final m and l. T is read from the length of the k
// binding, which the host binds to exactly T rows: the parameters then stay the same from one
// decoded token to the next, and so does their buffer.

struct Params {
    queries: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    probabilities: u32,
    window: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> z: array<f32>;
@group(0) @binding(5) var<storage, read_write> p: array<f32>;

// The largest head size served; the host checks it.
const MAX_HEAD_DIM: u32 = 256u;

fn score(q_base: u32, k_base: u32) -> f32 {
    var s = 0.0;
    for (var c = 0u; c < params.head_dim; c++) {
        s += q[q_base + c] * k[k_base + c];
    }
    return s / sqrt(f32(params.head_dim));
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let h = id.x;
    let i = id.y;
    if (h >= params.heads || i >= params.queries) {
        return;
    }
    let d = params.head_dim;
    let total = arrayLength(&k) / (params.kv_heads * d);
    let kv = h / (params.heads / params.kv_heads);
    let q_base = (i * params.heads + h) * d;
    // Query i sits at absolute position total − queries + i and sees keys up to it.
    let last = total - params.queries + i;
    var first = 0u;
    if (params.window != 0u && last + 1u > params.window) {
        first = last + 1u - params.window;
    }
    var acc: array<f32, MAX_HEAD_DIM>;
    var m = -3.0e38;
    var l = 0.0;
    for (var j = first; j <= last; j++) {
        let k_base = (j * params.kv_heads + kv) * d;
        let s = score(q_base, k_base);
        let m_new = max(m, s);
        let rescale = exp(m - m_new);
        let e = exp(s - m_new);
        l = l * rescale + e;
        for (var c = 0u; c < d; c++) {
            acc[c] = acc[c] * rescale + e * v[k_base + c];
        }
        m = m_new;
    }
    for (var c = 0u; c < d; c++) {
        z[q_base + c] = acc[c] / l;
    }
    if (params.probabilities != 0u) {
        let row = (h * params.queries + i) * total;
        for (var j = 0u; j < total; j++) {
            var prob = 0.0;
            if (j >= first && j <= last) {
                prob = exp(score(q_base, (j * params.kv_heads + kv) * d) - m) / l;
            }
            p[row + j] = prob;
        }
    }
}
