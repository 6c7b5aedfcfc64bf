// An f16 at an even byte offset of `weights`, unpacked from its u32 word.
fn half_at(offset: u32) -> f32 {
    return unpack2x16float(weights[offset >> 2u] >> ((offset & 2u) * 8u)).x;
}
