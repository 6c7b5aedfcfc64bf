// The k largest values of one row x[0..n), largest first and the lower index first on ties (the
// host's order), log Σ exp(x), and the values of the entries the caller picked, so that a caller
// wanting the top tokens and their log-probabilities, or a sampler, reads back 2k + 1 + picks
// numbers instead of the vocabulary:
// out = [log Σ exp(x), index_0 (as bits), value_0, index_1, value_1, ..., x[pick_0], x[pick_1], ...].
// One workgroup: k rounds, each picking the best entry ranked after the previous round's pick.

struct Params {
    n: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// [k, number of picks, pick_0, pick_1, ...], each pick below n.
@group(0) @binding(2) var<storage, read> request: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const NONE: u32 = 0xffffffffu;

var<workgroup> shared_index: array<u32, LANES>;

// Whether entry (v, i) ranks before (w, j); an index of NONE marks no entry.
fn before(v: f32, i: u32, w: f32, j: u32) -> bool {
    return i != NONE && (j == NONE || v > w || (v == w && i < j));
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lane: u32) {
    // The maximum, then Σ exp(x − max): no overflow whatever the logits' size.
    var largest = x[0];
    for (var i = lane; i < params.n; i += LANES) {
        largest = max(largest, x[i]);
    }
    let row_max = workgroup_max(lane, largest);
    var sum = 0.0;
    for (var i = lane; i < params.n; i += LANES) {
        sum += exp(x[i] - row_max);
    }
    let total = workgroup_sum(lane, sum);
    if (lane == 0u) {
        out[0] = row_max + log(total);
    }

    let k = request[0];
    let picks = request[1];
    for (var i = lane; i < picks; i += LANES) {
        out[1u + 2u * k + i] = x[request[2u + i]];
    }
    var last_value = 0.0;
    var last_index = NONE;
    for (var round = 0u; round < k; round++) {
        var best_value = 0.0;
        var best_index = NONE;
        for (var i = lane; i < params.n; i += LANES) {
            let v = x[i];
            let eligible = last_index == NONE || before(last_value, last_index, v, i);
            if (eligible && before(v, i, best_value, best_index)) {
                best_value = v;
                best_index = i;
            }
        }
        shared_value[lane] = best_value;
        shared_index[lane] = best_index;
        workgroupBarrier();
        for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
            if (lane < stride && before(shared_value[lane + stride], shared_index[lane + stride], shared_value[lane], shared_index[lane])) {
                shared_value[lane] = shared_value[lane + stride];
                shared_index[lane] = shared_index[lane + stride];
            }
            workgroupBarrier();
        }
        last_value = shared_value[0];
        last_index = shared_index[0];
        if (lane == 0u) {
            out[1u + 2u * round] = bitcast<f32>(last_index);
            out[2u + 2u * round] = last_value;
        }
        workgroupBarrier();
    }
}
