// Elementwise kernels over a [rows, cols] f32 matrix `a`. `b` has either the same shape or one
// row, broadcast over a's rows. One invocation per value; long inputs spread over a second
// dispatch dimension, so value i is invocation (y · groups_x · 64 + x).

struct Params {
    len: u32,
    // b's length: len, or cols for a broadcast row.
    b_len: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn b_at(i: u32) -> f32 {
    return b[i % params.b_len];
}

@compute @workgroup_size(64)
fn add(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = id.y * groups.x * 64u + id.x;
    if (i < params.len) {
        out[i] = a[i] + b_at(i);
    }
}

@compute @workgroup_size(64)
fn mul(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = id.y * groups.x * 64u + id.x;
    if (i < params.len) {
        out[i] = a[i] * b_at(i);
    }
}

// silu(a)·b, the gated FFN: silu(x) = x / (1 + e^−x).
@compute @workgroup_size(64)
fn silu_mul(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = id.y * groups.x * 64u + id.x;
    if (i < params.len) {
        let x = a[i];
        out[i] = x / (1.0 + exp(-x)) * b_at(i);
    }
}

// gelu(a)·b with GELU's tanh approximation, the GeGLU FFN:
// gelu(x) = x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³))), tanh written through exp so that large
// arguments saturate instead of overflowing.
@compute @workgroup_size(64)
fn gelu_mul(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = id.y * groups.x * 64u + id.x;
    if (i < params.len) {
        let x = a[i];
        let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
        let e = exp(-2.0 * abs(u));
        let tanh_u = sign(u) * (1.0 - e) / (1.0 + e);
        out[i] = 0.5 * x * (1.0 + tanh_u) * b_at(i);
    }
}
