// matmul.wgsl's `matvec` (prepended with its preludes) for adapters with subgroup operations:
// each subgroup adds its lanes' shares in registers, one lane of each writes the subgroup's sum,
// and the first lane adds those. One barrier instead of the tree's seven, and no assumption on
// the subgroup size (8 on llvmpipe, 32 on NVIDIA, up to 64 elsewhere).

var<workgroup> subgroup_sums: array<f32, 64>;

@compute @workgroup_size(64)
fn matvec_subgroups(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) subgroup_lane: u32,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(num_subgroups) subgroups: u32,
) {
    let row = group.x + group.y * groups.x;
    let t = group.z;
    let sum = subgroupAdd(lane_share(row, t, lane));
    if (subgroup_lane == 0u) {
        subgroup_sums[subgroup] = sum;
    }
    workgroupBarrier();
    if (lane == 0u && row < params.rows) {
        var total = 0.0;
        for (var i = 0u; i < subgroups; i++) {
            total += subgroup_sums[i];
        }
        store(t, row, total);
    }
}
