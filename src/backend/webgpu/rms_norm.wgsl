// out[r, :] = w ⊙ x[r, :] / sqrt(mean(x[r, :]²) + eps): one workgroup per row, its 64
// invocations summing strided squares and then reducing them in workgroup memory.

struct Params {
    cols: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let base = group.x * params.cols;
    var sum = 0.0;
    for (var c = lane; c < params.cols; c += 64u) {
        sum += x[base + c] * x[base + c];
    }
    partial[lane] = sum;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (lane < stride) {
            partial[lane] += partial[lane + stride];
        }
        workgroupBarrier();
    }
    let scale = 1.0 / sqrt(partial[0] / f32(params.cols) + params.eps);
    for (var c = lane; c < params.cols; c += 64u) {
        out[base + c] = x[base + c] * scale * w[c];
    }
}
