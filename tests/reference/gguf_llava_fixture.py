#!/usr/bin/env python3
"""The LLaVA fixture's two GGUFs (written by `glassbox train-vqa-fixture` with glassbox's own
writer) as the PyPI `gguf` package reads them: every metadata key with its GGUF type and value
(long arrays by length), every tensor's name, type, shape and byte sum, and whether each tensor
name is one the package's constants define (`TENSOR_NAMES`, with block numbers filled in), the
names llama.cpp's converters write.

Usage: gguf_llava_fixture.py MMPROJ LM OUT.json   (needs pip install gguf==0.19.0 numpy)
"""
import json
import sys

import gguf
import numpy as np
from gguf.constants import TENSOR_NAMES


def known_names(blocks):
    names = set()
    for pattern in TENSOR_NAMES.values():
        if "{bid}" in pattern:
            names.update(pattern.format(bid=b) for b in range(blocks))
        else:
            names.add(pattern)
    return names


def value_of(field):
    kind = field.types[0]
    if kind == gguf.GGUFValueType.ARRAY:
        items = [field.parts[i] for i in field.data]
        if len(items) > 16:
            return {"array_of": field.types[1].name, "len": len(items)}
        if field.types[1] == gguf.GGUFValueType.STRING:
            return [bytes(p).decode("utf-8") for p in items]
        return [p.tolist()[0] for p in items]
    part = field.parts[field.data[0]]
    if kind == gguf.GGUFValueType.STRING:
        return bytes(part).decode("utf-8")
    return part.tolist()[0]


def describe(path):
    reader = gguf.GGUFReader(path)
    metadata = {
        name: {"type": field.types[0].name, "value": value_of(field)}
        for name, field in reader.fields.items()
        if not name.startswith("GGUF.")
    }
    known = known_names(64)
    tensors = [
        {
            "name": t.name,
            "type": t.tensor_type.name,
            "shape": [int(d) for d in t.shape],
            "byte_sum": int(np.asarray(t.data).view(np.uint8).sum(dtype=np.uint64)),
            "known_name": t.name.rsplit(".", 1)[0] in known or t.name in known,
        }
        for t in reader.tensors
    ]
    return {"metadata": metadata, "tensors": tensors}


def main():
    mmproj, lm, out = sys.argv[1:4]
    with open(out, "w") as f:
        json.dump({"mmproj": describe(mmproj), "lm": describe(lm)}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
