#!/usr/bin/env python3
"""`make fixtures`: random weight blocks of every format the CPU kernels compute with, and their
values as the PyPI `gguf` package (llama.cpp's own Python reader) dequantises them: the
independent reference for the block layouts in src/backend/kernels/blocks.rs (tests/kernels.rs).

Each matrix has 7 rows; the 32-value formats 7 blocks a row (a SIMD group of four and three
left over), the K-quants 2, the float formats
45 values (not a multiple of any SIMD width). The block bytes are random except the f16 scales,
which are drawn so that the values stay in a weight's usual range.
Output (committed): tests/fixtures/kernel-blocks.gguf, tensors NAME and NAME.dequantized (F32).
Needs: pip install gguf==0.19.0 numpy
"""
import pathlib

import gguf
import numpy as np

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "kernel-blocks.gguf"
ROWS = 7

# format: (values a row, bytes a block, byte offsets of the block's f16 scales)
FORMATS = {
    "Q4_0": (224, 18, [0]),
    "Q4_1": (224, 20, [0, 2]),
    "Q5_0": (224, 22, [0]),
    "Q5_1": (224, 24, [0, 2]),
    "Q8_0": (224, 34, [0]),
    "Q4_K": (512, 144, [0, 2]),
    "Q5_K": (512, 176, [0, 2]),
    "Q6_K": (512, 210, [208]),
}


def main():
    rng = np.random.default_rng(20261203)
    writer = gguf.GGUFWriter(str(OUT), "kernel-blocks")
    for name, (cols, block_bytes, scales) in FORMATS.items():
        qtype = getattr(gguf.GGMLQuantizationType, name)
        block_values = 256 if name.endswith("_K") else 32
        blocks = rng.integers(0, 256, size=(ROWS * cols // block_values, block_bytes), dtype=np.uint8)
        for at in scales:
            scale = rng.uniform(0.001, 0.05, size=len(blocks)).astype(np.float16)
            blocks[:, at:at + 2] = scale.view(np.uint8).reshape(-1, 2)
        data = blocks.reshape(ROWS, -1)
        writer.add_tensor(name, data, raw_dtype=qtype)
        writer.add_tensor(name + ".dequantized", gguf.quants.dequantize(data, qtype).astype(np.float32))
    floats = rng.normal(0, 0.1, size=(ROWS, 45))
    writer.add_tensor("F32", floats.astype(np.float32))
    writer.add_tensor("F32.dequantized", floats.astype(np.float32))
    writer.add_tensor("F16", floats.astype(np.float16))
    writer.add_tensor("F16.dequantized", floats.astype(np.float16).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
