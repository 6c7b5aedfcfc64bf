// y <- a * x + y over a flat f32 vector: the device self-check's kernel.

struct Params {
    a: f32,
    len: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i < params.len) {
        y[i] = params.a * x[i] + y[i];
    }
}
