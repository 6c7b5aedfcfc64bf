// Where the adapter has shader-f16: the weights buffer is bound a second time as f16 values, so
// an f16 at an even byte offset is one load, converted exactly to f32.
enable f16;

@group(0) @binding(7) var<storage, read> weights_f16: array<f16>;

fn half_at(offset: u32) -> f32 {
    return f32(weights_f16[offset >> 1u]);
}
