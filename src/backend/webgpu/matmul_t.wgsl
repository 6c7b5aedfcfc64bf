// y[t, c] = Σ_r x[t, r] · W[r, c]: the product with W's transpose, which pulls a vector in W's
// output space back to its input space (gradients, dot products with every column). W is
// GGUF-encoded (quant.wgsl), read one value at a time. One invocation per (column c, token t).

struct Params {
    rows: u32,
    cols: u32,
    tokens: u32,
    kind: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> weights: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let c = id.x;
    let t = id.y;
    if (c >= params.cols || t >= params.tokens) {
        return;
    }
    var sum = 0.0;
    for (var r = 0u; r < params.rows; r++) {
        sum += x[t * params.rows + r] * weight_at(params.kind, r, params.cols, c);
    }
    y[t * params.cols + c] = sum;
}
