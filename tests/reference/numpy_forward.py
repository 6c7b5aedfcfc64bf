#!/usr/bin/env python3
"""A second implementation of the Llama forward pass in NumPy, for checking glassbox's hooks.

Usage: numpy_forward.py MODEL.gguf IDS.json OUT_PREFIX
Needs: pip install gguf==0.19.0 numpy

Weights are dequantised with the `gguf` package (gguf.quants.dequantize) and every product is
an exact float64 matmul, so the only differences from glassbox are its quantised activations.
IDS.json is tests/reference/smollm2-logits-llamacpp.json: the first three next-token prompts,
tokenised by llama.cpp, are run.

Writes OUT_PREFIX.json (layout and metadata) and OUT_PREFIX.bin (little-endian float32):
for each prompt, resid_post of every layer at every position ([layers, t, d]), then each head's
result at the last position ([layers, heads, d]).
"""
import hashlib
import json
import pathlib
import sys
from importlib.metadata import version

import gguf
import numpy as np

PROMPTS = 3


def load(model_path):
    reader = gguf.GGUFReader(model_path)
    field = lambda key: reader.fields[key].contents()
    arch = field("general.architecture")
    config = {
        "layers": field(f"{arch}.block_count"),
        "heads": field(f"{arch}.attention.head_count"),
        "kv_heads": field(f"{arch}.attention.head_count_kv"),
        "width": field(f"{arch}.embedding_length"),
        "eps": field(f"{arch}.attention.layer_norm_rms_epsilon"),
        "theta": field(f"{arch}.rope.freq_base"),
    }
    weights = {t.name: gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64) for t in reader.tensors}
    return config, weights


def rms_norm(x, g, eps):
    return g * x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)


def rope(x, theta):
    """Rotates pairs (2i, 2i+1) of each head, llama.cpp's layout for llama GGUFs. x: [t, n, d]."""
    t, _, d = x.shape
    freqs = 1.0 / theta ** (np.arange(0, d, 2) / d)
    angles = np.arange(t)[:, None] * freqs[None, :]
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def forward(config, w, ids):
    layers, heads, kv_heads, width = config["layers"], config["heads"], config["kv_heads"], config["width"]
    hd = width // heads
    t = len(ids)
    x = w["token_embd.weight"][ids]
    resid_post, head_results = [], []
    causal = np.triu(np.full((t, t), -np.inf), 1)
    for l in range(layers):
        p = f"blk.{l}."
        n = rms_norm(x, w[p + "attn_norm.weight"], config["eps"])
        q = rope((n @ w[p + "attn_q.weight"].T).reshape(t, heads, hd), config["theta"])
        k = rope((n @ w[p + "attn_k.weight"].T).reshape(t, kv_heads, hd), config["theta"])
        v = (n @ w[p + "attn_v.weight"].T).reshape(t, kv_heads, hd)
        group = heads // kv_heads
        z = np.empty((t, heads, hd))
        for h in range(heads):
            scores = q[:, h] @ k[:, h // group].T / np.sqrt(hd) + causal
            probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
            probs /= probs.sum(axis=-1, keepdims=True)
            z[:, h] = probs @ v[:, h // group]
        wo = w[p + "attn_output.weight"]
        head_results.append(np.stack([wo[:, h * hd:(h + 1) * hd] @ z[-1, h] for h in range(heads)]))
        x = x + z.reshape(t, width) @ wo.T
        n = rms_norm(x, w[p + "ffn_norm.weight"], config["eps"])
        gate = n @ w[p + "ffn_gate.weight"].T
        m = gate / (1 + np.exp(-gate)) * (n @ w[p + "ffn_up.weight"].T)
        x = x + m @ w[p + "ffn_down.weight"].T
        resid_post.append(x.copy())
    return np.stack(resid_post), np.stack(head_results)


def main(model_path, ids_path, out_prefix):
    config, weights = load(model_path)
    cases = json.loads(pathlib.Path(ids_path).read_text())["next_token"][:PROMPTS]
    blobs, index = [], []
    for case in cases:
        resid, results = forward(config, weights, case["ids"])
        index.append({"prompt": case["prompt"], "ids": case["ids"], "resid_post": list(resid.shape), "head_results": list(results.shape)})
        blobs += [resid.astype("<f4").tobytes(), results.astype("<f4").tobytes()]
    with open(model_path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    pathlib.Path(out_prefix + ".bin").write_bytes(b"".join(blobs))
    meta = {
        "generated_by": f"tests/reference/numpy_forward.py with gguf {version('gguf')}, numpy {np.__version__}",
        "file_sha256": digest,
        "layout": "per prompt: resid_post [layers, t, d] then head_results [layers, heads, d], float32 LE",
        "prompts": index,
    }
    pathlib.Path(out_prefix + ".json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
