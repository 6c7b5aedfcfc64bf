// log softmax(bases[pairs[i]] + shifts[i])[target] for each row i of shifts ([n, V]), bases
// [m, V]: the target's log-probability once a row of logits is added to its base (exact LPI),
// so that one number per row crosses to the host. One workgroup per row: the maximum, then the
// sum of exponentials below it, each reduced over the workgroup (reduce.wgsl).

struct Params {
    vocab: u32,
    wanted: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> bases: array<f32>;
@group(0) @binding(2) var<storage, read> shifts: array<f32>;
@group(0) @binding(3) var<storage, read> pairs: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

fn logit(base: u32, shift: u32, v: u32) -> f32 {
    return bases[base + v] + shifts[shift + v];
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let row = group.x;
    let base = pairs[row] * params.vocab;
    let shift = row * params.vocab;
    var top = -3.0e38;
    for (var v = lane; v < params.vocab; v += LANES) {
        top = max(top, logit(base, shift, v));
    }
    let largest = workgroup_max(lane, top);
    var sum = 0.0;
    for (var v = lane; v < params.vocab; v += LANES) {
        sum += exp(logit(base, shift, v) - largest);
    }
    let total = workgroup_sum(lane, sum);
    if (lane == 0u) {
        out[row] = logit(base, shift, params.wanted) - (largest + log(total));
    }
}
