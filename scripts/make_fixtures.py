#!/usr/bin/env python3
"""`make fixtures`: tiny random-weight GGUF models of each supported architecture, written with
the PyPI `gguf` package (llama.cpp's own writer), and their logits from a NumPy forward pass.

Each fixture exercises what SmolLM2 does not:
- qwen2-tiny-f32:   qkv biases, NeoX rope, an untied output matrix, F32 weights;
- llama3-tiny-q8_0: llama3 rope frequency factors (rope_freqs.weight), tied embeddings, Q8_0;
- mistral-tiny-f16: the mistral architecture name, GQA 4:1, F16 weights;
- qwen3-tiny-f32:   per-head query/key RMSNorm, NeoX rope, no biases, tied embeddings;
- gemma3-tiny-f32:  Gemma 3 as llama.cpp reads it: embedding × √d, query/key norms, heads wider
                    than d/H (key_length), post-attention and post-FFN norms, GeGLU (tanh GELU),
                    six layers of which the first five attend over a sliding window of 3
                    positions and rotate with base 10⁴, the sixth over all with the file's base;
- phi3-tiny-f16:    Phi-3's fused `attn_qkv` (q, k, v stacked by rows) and fused `ffn_up` (the
                    gate's rows, then the up projection's), NeoX rope, F16 weights;
- phi3-longrope-tiny-f16: Phi-3's long-context files as llama.cpp's converter writes them:
                    `rope_factors_short` and `rope_factors_long` and the attention factor
                    √(1 + ln(context / original) / ln(original)) that scales cos and sin; a prompt
                    within the original context rotates with the short factors.

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
    dict(name="qwen3-tiny-f32", arch="qwen3", dtype="F32", heads=4, kv_heads=2, bias=False, tied=True, freq_factors=False, theta=1e6,
         qk_norm=True),
    dict(name="gemma3-tiny-f32", arch="gemma3", dtype="F32", heads=4, kv_heads=1, bias=False, tied=True, freq_factors=False, theta=1e6,
         qk_norm=True, gemma=True, layers=6, head_dim=32, window=3),
    dict(name="phi3-tiny-f16", arch="phi3", dtype="F16", heads=4, kv_heads=2, bias=False, tied=False, freq_factors=False, theta=1e4,
         fused=True),
    dict(name="phi3-longrope-tiny-f16", arch="phi3", dtype="F16", heads=4, kv_heads=2, bias=False, tied=False, freq_factors=False,
         theta=1e4, fused=True, original_context=16),
]
# Gemma 3's local layers (llama.cpp: every layer but each sixth) and their rope base.
GEMMA_PERIOD, GEMMA_LOCAL_THETA = 6, 1e4
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


def rope(x, theta, neox, factors, magnitude=1.0):
    t, _, d = x.shape
    freqs = 1.0 / theta ** (np.arange(0, d, 2) / d)
    if factors is not None:
        freqs = freqs / factors
    angles = np.arange(t)[:, None] * freqs[None, :]
    cos, sin = magnitude * np.cos(angles)[:, None, :], magnitude * np.sin(angles)[:, None, :]
    if neox:
        a, b = x[..., : d // 2], x[..., d // 2:]
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)
    out = np.empty_like(x)
    out[..., 0::2] = x[..., 0::2] * cos - x[..., 1::2] * sin
    out[..., 1::2] = x[..., 0::2] * sin + x[..., 1::2] * cos
    return out


def head_dim(spec):
    return spec.get("head_dim", WIDTH // spec["heads"])


def long_rope_attn_factor(spec):
    """llama.cpp's converter's attention factor for a LongRoPE model (1 for the others)."""
    if "original_context" not in spec:
        return 1.0
    original = spec["original_context"]
    return float(np.sqrt(1 + np.log(CONTEXT / original) / np.log(original)))


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def forward(spec, w, ids):
    heads, kv, hd, t = spec["heads"], spec["kv_heads"], head_dim(spec), len(ids)
    gemma = spec.get("gemma", False)
    x = w["token_embd.weight"][ids] * (np.sqrt(WIDTH) if gemma else 1.0)
    position = np.arange(t)
    causal = np.where(position[None, :] <= position[:, None], 0.0, -np.inf)
    neox = spec["arch"] != "llama" and spec["arch"] != "mistral"
    factors = w.get("rope_freqs.weight", w.get("rope_factors_short.weight"))
    magnitude = long_rope_attn_factor(spec)
    for l in range(spec.get("layers", LAYERS)):
        p = f"blk.{l}."
        local = gemma and l % GEMMA_PERIOD != GEMMA_PERIOD - 1
        theta = GEMMA_LOCAL_THETA if local else spec["theta"]
        mask = causal
        if local:
            mask = np.where(position[:, None] - position[None, :] < spec["window"], causal, -np.inf)
        n = rms_norm(x, w[p + "attn_norm.weight"])
        proj = lambda name: n @ w[p + name + ".weight"].T + w.get(p + name + ".bias", 0)
        q, k = proj("attn_q").reshape(t, heads, hd), proj("attn_k").reshape(t, kv, hd)
        if spec.get("qk_norm"):
            q, k = rms_norm(q, w[p + "attn_q_norm.weight"]), rms_norm(k, w[p + "attn_k_norm.weight"])
        q, k = rope(q, theta, neox, factors, magnitude), rope(k, theta, neox, factors, magnitude)
        v = proj("attn_v").reshape(t, kv, hd)
        z = np.empty((t, heads, hd))
        for h in range(heads):
            s = q[:, h] @ k[:, h // (heads // kv)].T / np.sqrt(hd) + mask
            pr = np.exp(s - s.max(-1, keepdims=True))
            z[:, h] = (pr / pr.sum(-1, keepdims=True)) @ v[:, h // (heads // kv)]
        a = z.reshape(t, heads * hd) @ w[p + "attn_output.weight"].T
        x = x + (rms_norm(a, w[p + "post_attention_norm.weight"]) if gemma else a)
        n = rms_norm(x, w[p + "ffn_norm.weight"])
        gate = n @ w[p + "ffn_gate.weight"].T
        activated = gelu_tanh(gate) if gemma else gate / (1 + np.exp(-gate))
        f = (activated * (n @ w[p + "ffn_up.weight"].T)) @ w[p + "ffn_down.weight"].T
        x = x + (rms_norm(f, w[p + "post_ffw_norm.weight"]) if gemma else f)
    out = w.get("output.weight", w["token_embd.weight"])
    return rms_norm(x, w["output_norm.weight"]) @ out.T


def build(spec, rng):
    path = OUT / (spec["name"] + ".gguf")
    writer = gguf.GGUFWriter(str(path), spec["arch"])
    writer.add_name(spec["name"])
    layers, hd = spec.get("layers", LAYERS), head_dim(spec)
    writer.add_block_count(layers)
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(WIDTH)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(spec["heads"])
    writer.add_head_count_kv(spec["kv_heads"])
    writer.add_layer_norm_rms_eps(EPS)
    writer.add_rope_freq_base(spec["theta"])
    writer.add_rope_dimension_count(hd)
    writer.add_vocab_size(VOCAB)
    if "head_dim" in spec:
        writer.add_key_length(hd)
        writer.add_value_length(hd)
    if "window" in spec:
        writer.add_uint32(f"{spec['arch']}.attention.sliding_window", spec["window"])
    q_width, kv_width = spec["heads"] * hd, spec["kv_heads"] * hd
    w = {}
    matrix = lambda rows, cols: rng.normal(0, 1 / np.sqrt(cols), (rows, cols))
    vector = lambda n: 1 + rng.normal(0, 0.1, n)
    w["token_embd.weight"] = stored(writer, "token_embd.weight", rng.normal(0, 1, (VOCAB, WIDTH)), spec["dtype"])
    for l in range(layers):
        p = f"blk.{l}."
        if spec.get("fused"):
            # Stored stacked, read back whole, then split for the forward pass as the model uses them.
            qkv = stored(writer, p + "attn_qkv.weight", matrix(q_width + 2 * kv_width, WIDTH), spec["dtype"])
            w[p + "attn_q.weight"], w[p + "attn_k.weight"], w[p + "attn_v.weight"] = np.split(qkv, [q_width, q_width + kv_width])
            gate_up = stored(writer, p + "ffn_up.weight", matrix(2 * FFN, WIDTH), spec["dtype"])
            w[p + "ffn_gate.weight"], w[p + "ffn_up.weight"] = np.split(gate_up, [FFN])
            separate = [("attn_output", WIDTH, q_width), ("ffn_down", WIDTH, FFN)]
        else:
            separate = [("attn_q", q_width, WIDTH), ("attn_k", kv_width, WIDTH), ("attn_v", kv_width, WIDTH),
                        ("attn_output", WIDTH, q_width), ("ffn_gate", FFN, WIDTH), ("ffn_up", FFN, WIDTH),
                        ("ffn_down", WIDTH, FFN)]
        for name, rows, cols in separate:
            w[p + name + ".weight"] = stored(writer, p + name + ".weight", matrix(rows, cols), spec["dtype"])
        if spec["bias"]:
            for name, n in [("attn_q", WIDTH), ("attn_k", kv_width), ("attn_v", kv_width)]:
                w[p + name + ".bias"] = stored(writer, p + name + ".bias", rng.normal(0, 0.5, n), "F32")
        w[p + "attn_norm.weight"] = stored(writer, p + "attn_norm.weight", vector(WIDTH), "F32")
        w[p + "ffn_norm.weight"] = stored(writer, p + "ffn_norm.weight", vector(WIDTH), "F32")
        if spec.get("qk_norm"):
            for name in ["attn_q_norm", "attn_k_norm"]:
                w[p + name + ".weight"] = stored(writer, p + name + ".weight", vector(hd), "F32")
        if spec.get("gemma"):
            for name in ["post_attention_norm", "post_ffw_norm"]:
                w[p + name + ".weight"] = stored(writer, p + name + ".weight", vector(WIDTH), "F32")
    w["output_norm.weight"] = stored(writer, "output_norm.weight", vector(WIDTH), "F32")
    if not spec["tied"]:
        w["output.weight"] = stored(writer, "output.weight", matrix(VOCAB, WIDTH), spec["dtype"])
    if "original_context" in spec:
        writer.add_rope_scaling_attn_factors(long_rope_attn_factor(spec))
        writer.add_rope_scaling_orig_ctx_len(spec["original_context"])
        w["rope_factors_short.weight"] = stored(writer, "rope_factors_short.weight", np.linspace(1, 3, hd // 2), "F32")
        w["rope_factors_long.weight"] = stored(writer, "rope_factors_long.weight", np.linspace(1, 40, hd // 2), "F32")
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
