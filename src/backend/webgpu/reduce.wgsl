// Reductions over a workgroup of LANES invocations through `shared_value`. Every invocation
// calls them (they hold barriers) and gets the same result. Prepended to the shaders that reduce
// a row: topk.wgsl, logprob.wgsl, rms.wgsl.

const LANES: u32 = 256u;

var<workgroup> shared_value: array<f32, LANES>;

fn workgroup_max(lane: u32, value: f32) -> f32 {
    shared_value[lane] = value;
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
        if (lane < stride) {
            shared_value[lane] = max(shared_value[lane], shared_value[lane + stride]);
        }
        workgroupBarrier();
    }
    let result = shared_value[0];
    workgroupBarrier();
    return result;
}

fn workgroup_sum(lane: u32, value: f32) -> f32 {
    shared_value[lane] = value;
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
        if (lane < stride) {
            shared_value[lane] += shared_value[lane + stride];
        }
        workgroupBarrier();
    }
    let result = shared_value[0];
    workgroupBarrier();
    return result;
}
