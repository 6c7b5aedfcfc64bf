#!/usr/bin/env python3
"""`make fixtures`: tiny random-weight GGUF models of each supported architecture, written with
the PyPI `gguf` package (llama.cpp's own writer), and their logits from a NumPy forward pass.

Each fixture exercises what SmolLM2 does not:
- qwen2-tiny-f32:   qkv biases, NeoX rope, an untied output matrix, F32 weights;
- llama3-tiny-q8_0: llama3 rope frequency factors (rope_freqs.weight), tied embeddings, Q8_0;
- mistral-tiny-f16: the mistral architecture name, GQA 4:1, F16 weights.

The NumPy reference dequantises the stored weights with gguf.quants and multiplies in float64.
Outputs (committed): tests/fixtures/*.gguf and tests/fixtures/tiny-logits.json.
Needs: pip install gguf==0.19.0 numpy
"""
import json
import pathlib

import gguf
import numpy as np

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"
IDS = [3, 17, 42, 99, 5, 64, 127, 0, 88]

FIXTURES = [
    dict(name="qwen2-tiny-f32", arch="qwen2", dtype="F32", heads=4, kv_heads=2, bias=True, tied=False, freq_factors=False, theta=1e6),
    dict(name="llama3-tiny-q8_0", arch="llama", dtype="Q8_0", heads=4, kv_heads=2, bias=False, tied=True, freq_factors=True, theta=5e5),
    dict(name="mistral-tiny-f16", arch="mistral", dtype="F16", heads=4, kv_heads=1, bias=False, tied=False, freq_factors=False, theta=1e4),
]
WIDTH, FFN, LAYERS, VOCAB, CONTEXT, EPS = 64, 128, 2, 128, 64, 1e-6


def stored(writer, name, array, dtype):
    """Writes a matrix in `dtype` and returns what the file holds, dequantised."""
    qtype = getattr(gguf.GGMLQuantizationType, dtype)
    if dtype == "F32":
        data = array.astype(np.float32)
        writer.add_tensor(name, data)
        return data.astype(np.float64)
    if dtype == "F16":
        data = array.astype(np.float16)
        writer.add_tensor(name, data)
        return data.astype(np.float64)
    data = gguf.quants.quantize(array.astype(np.float32), qtype)
    writer.add_tensor(name, data, raw_dtype=qtype)
    return gguf.quants.dequantize(data, qtype).astype(np.float64)


def rms_norm(x, g):
    return g * x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS)


def rope(x, theta, neox, factors):
    t, _, d = x.shape
    freqs = 1.0 / theta ** (np.arange(0, d, 2) / d)
    if factors is not None:
        freqs = freqs / factors
    angles = np.arange(t)[:, None] * freqs[None, :]
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
    if neox:
        a, b = x[..., : d // 2], x[..., d // 2:]
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)
    out = np.empty_like(x)
    out[..., 0::2] = x[..., 0::2] * cos - x[..., 1::2] * sin
    out[..., 1::2] = x[..., 0::2] * sin + x[..., 1::2] * cos
    return out


def forward(spec, w, ids):
    heads, kv, hd, t = spec["heads"], spec["kv_heads"], WIDTH // spec["heads"], len(ids)
    x = w["token_embd.weight"][ids]
    causal = np.triu(np.full((t, t), -np.inf), 1)
    neox = spec["arch"] == "qwen2"
    factors = w.get("rope_freqs.weight")
    for l in range(LAYERS):
        p = f"blk.{l}."
        n = rms_norm(x, w[p + "attn_norm.weight"])
        proj = lambda name: n @ w[p + name + ".weight"].T + w.get(p + name + ".bias", 0)
        q = rope(proj("attn_q").reshape(t, heads, hd), spec["theta"], neox, factors)
        k = rope(proj("attn_k").reshape(t, kv, hd), spec["theta"], neox, factors)
        v = proj("attn_v").reshape(t, kv, hd)
        z = np.empty((t, heads, hd))
        for h in range(heads):
            s = q[:, h] @ k[:, h // (heads // kv)].T / np.sqrt(hd) + causal
            pr = np.exp(s - s.max(-1, keepdims=True))
            z[:, h] = (pr / pr.sum(-1, keepdims=True)) @ v[:, h // (heads // kv)]
        x = x + z.reshape(t, WIDTH) @ w[p + "attn_output.weight"].T
        n = rms_norm(x, w[p + "ffn_norm.weight"])
        gate = n @ w[p + "ffn_gate.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * (n @ w[p + "ffn_up.weight"].T)) @ w[p + "ffn_down.weight"].T
    out = w.get("output.weight", w["token_embd.weight"])
    return rms_norm(x, w["output_norm.weight"]) @ out.T


def build(spec, rng):
    path = OUT / (spec["name"] + ".gguf")
    writer = gguf.GGUFWriter(str(path), spec["arch"])
    writer.add_name(spec["name"])
    writer.add_block_count(LAYERS)
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(WIDTH)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(spec["heads"])
    writer.add_head_count_kv(spec["kv_heads"])
    writer.add_layer_norm_rms_eps(EPS)
    writer.add_rope_freq_base(spec["theta"])
    writer.add_rope_dimension_count(WIDTH // spec["heads"])
    writer.add_vocab_size(VOCAB)
    hd, kv_width = WIDTH // spec["heads"], spec["kv_heads"] * WIDTH // spec["heads"]
    w = {}
    matrix = lambda rows, cols: rng.normal(0, 1 / np.sqrt(cols), (rows, cols))
    vector = lambda n: 1 + rng.normal(0, 0.1, n)
    w["token_embd.weight"] = stored(writer, "token_embd.weight", rng.normal(0, 1, (VOCAB, WIDTH)), spec["dtype"])
    for l in range(LAYERS):
        p = f"blk.{l}."
        for name, rows, cols in [("attn_q", WIDTH, WIDTH), ("attn_k", kv_width, WIDTH), ("attn_v", kv_width, WIDTH),
                                 ("attn_output", WIDTH, WIDTH), ("ffn_gate", FFN, WIDTH), ("ffn_up", FFN, WIDTH),
                                 ("ffn_down", WIDTH, FFN)]:
            w[p + name + ".weight"] = stored(writer, p + name + ".weight", matrix(rows, cols), spec["dtype"])
        if spec["bias"]:
            for name, n in [("attn_q", WIDTH), ("attn_k", kv_width), ("attn_v", kv_width)]:
                w[p + name + ".bias"] = stored(writer, p + name + ".bias", rng.normal(0, 0.5, n), "F32")
        w[p + "attn_norm.weight"] = stored(writer, p + "attn_norm.weight", vector(WIDTH), "F32")
        w[p + "ffn_norm.weight"] = stored(writer, p + "ffn_norm.weight", vector(WIDTH), "F32")
    w["output_norm.weight"] = stored(writer, "output_norm.weight", vector(WIDTH), "F32")
    if not spec["tied"]:
        w["output.weight"] = stored(writer, "output.weight", matrix(VOCAB, WIDTH), spec["dtype"])
    if spec["freq_factors"]:
        w["rope_freqs.weight"] = stored(writer, "rope_freqs.weight", np.linspace(1, 8, hd // 2), "F32")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return forward(spec, w, IDS)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261126)
    reference = {"ids": IDS, "logits": {}}
    for spec in FIXTURES:
        reference["logits"][spec["name"]] = build(spec, rng).round(6).tolist()
    (OUT / "tiny-logits.json").write_text(json.dumps(reference) + "\n")
    print("fixtures: wrote", ", ".join(s["name"] for s in FIXTURES))


if __name__ == "__main__":
    main()
