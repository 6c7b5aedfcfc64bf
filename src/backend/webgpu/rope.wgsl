// Rotary embedding of x: [t, heads·d] with the host's table cos, sin: [t, d/2]. Pair i of a head
// is (i, i + d/2) in the neox/llama.cpp-"normal" layout, or (2i, 2i + 1) when interleaved.
// One invocation per (pair, head, position).

struct Params {
    positions: u32,
    heads: u32,
    head_dim: u32,
    interleaved: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> cos_table: array<f32>;
@group(0) @binding(3) var<storage, read> sin_table: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let half = params.head_dim / 2u;
    let i = id.x;
    let h = id.y;
    let t = id.z;
    if (i >= half || h >= params.heads || t >= params.positions) {
        return;
    }
    let base = (t * params.heads + h) * params.head_dim;
    var first = base + i;
    var second = base + i + half;
    if (params.interleaved != 0u) {
        first = base + 2u * i;
        second = first + 1u;
    }
    let c = cos_table[t * half + i];
    let s = sin_table[t * half + i];
    let a = x[first];
    let b = x[second];
    out[first] = a * c - b * s;
    out[second] = a * s + b * c;
}
