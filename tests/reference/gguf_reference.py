#!/usr/bin/env python3
"""Write the reference reading of a GGUF file, made with the PyPI `gguf` package (llama.cpp's own
Python reader), for glassbox's tests to compare against.

Usage: gguf_reference.py MODEL.gguf OUT.json
Needs: pip install gguf==0.19.0

The card follows llama.cpp's key names ({arch}.block_count and so on, from gguf.Keys); a key the
file lacks is null. Shapes are in ggml order (innermost dimension first), as stored in the file.
"""
import hashlib
import json
import sys
from collections import Counter
from importlib.metadata import version

import gguf


def field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def main(model_path, out_path):
    reader = gguf.GGUFReader(model_path)
    arch = field(reader, gguf.Keys.General.ARCHITECTURE)
    llm = lambda key: field(reader, key.format(arch=arch))
    heads = llm(gguf.Keys.Attention.HEAD_COUNT)
    kv_heads = llm(gguf.Keys.Attention.HEAD_COUNT_KV)
    vocab = llm(gguf.Keys.LLM.VOCAB_SIZE)
    window = llm(gguf.Keys.Attention.SLIDING_WINDOW)
    layers = llm(gguf.Keys.LLM.BLOCK_COUNT)
    if vocab is None:
        tokens = reader.fields.get(gguf.Keys.Tokenizer.LIST)
        vocab = None if tokens is None else len(tokens.data)
    with open(model_path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    tensors = [
        {
            "name": t.name,
            "ggml_type": t.tensor_type.name,
            "shape": [int(d) for d in t.shape],
            "file_offset": int(t.data_offset),
            "byte_len": int(t.n_bytes),
        }
        for t in reader.tensors
    ]
    card = {
        "architecture": arch,
        "name": field(reader, gguf.Keys.General.NAME),
        "gguf_version": int(field(reader, "GGUF.version")),
        "file_size": int(reader.data.shape[0]),
        "context_length": llm(gguf.Keys.LLM.CONTEXT_LENGTH),
        "layers": layers,
        "heads": heads,
        "kv_heads": kv_heads if kv_heads is not None else heads,
        "embedding_size": llm(gguf.Keys.LLM.EMBEDDING_LENGTH),
        "vocab_size": vocab,
        "sliding_window": window,
        # llama.cpp reads gemma3 with five windowed layers, then a global one (set_swa_pattern(6)).
        "global_layers": [l for l in range(layers) if l % 6 == 5] if arch == "gemma3" and window is not None else [],
        "tokenizer_model": field(reader, gguf.Keys.Tokenizer.MODEL),
        "parameter_count": int(sum(int(t.n_elements) for t in reader.tensors)),
        "tensor_count": len(reader.tensors),
        "tensor_types": dict(sorted(Counter(t["ggml_type"] for t in tensors).items())),
    }
    reference = {
        "generated_by": f"tests/reference/gguf_reference.py with gguf {version('gguf')}",
        "file_sha256": digest,
        "alignment": int(reader.alignment),
        "data_offset": int(reader.data_offset),
        "card": card,
        "tensors": tensors,
    }
    with open(out_path, "w") as out:
        json.dump(reference, out, indent=1)
        out.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
