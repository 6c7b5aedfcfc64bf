// out[i, c] = row ids[i] of the table W (GGUF-encoded, quant.wgsl), one invocation per value:
// the embedding lookup, dequantising only the rows asked for. A table split over several
// buffers is looked up once per part, each part writing the rows it holds
// (`first_row..first_row + rows`).

struct Params {
    cols: u32,
    count: u32,
    kind: u32,
    first_row: u32,
    rows: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> weights: array<u32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let c = id.x;
    let i = id.y;
    if (c >= params.cols || i >= params.count) {
        return;
    }
    let row = ids[i];
    if (row < params.first_row || row >= params.first_row + params.rows) {
        return;
    }
    out[i * params.cols + c] = weight_at(params.kind, row - params.first_row, params.cols, c);
}
