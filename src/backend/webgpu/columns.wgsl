// out[i, r] = W[r, columns[i]]: chosen columns of a GGUF-encoded W (quant.wgsl) as rows, one
// invocation per value. A W split by rows is read one part at a time: `rows` rows that are
// rows `first_row..` of the whole `all_rows`-row matrix.

struct Params {
    rows: u32,
    cols: u32,
    count: u32,
    kind: u32,
    all_rows: u32,
    first_row: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> weights: array<u32>;
@group(0) @binding(2) var<storage, read> columns: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let r = id.x;
    let i = id.y;
    if (r >= params.rows || i >= params.count) {
        return;
    }
    out[i * params.all_rows + params.first_row + r] = weight_at(params.kind, r, params.cols, columns[i]);
}
