// out[r] = sqrt(mean(x[r, :]²) + eps), the divisor RMSNorm applies to row r (the norm-scale
// hooks): one workgroup per row, its squares summed over the workgroup (reduce.wgsl).

struct Params {
    cols: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let base = group.x * params.cols;
    var sum = 0.0;
    for (var c = lane; c < params.cols; c += LANES) {
        sum += x[base + c] * x[base + c];
    }
    let total = workgroup_sum(lane, sum);
    if (lane == 0u) {
        out[group.x] = sqrt(total / f32(params.cols) + params.eps);
    }
}
