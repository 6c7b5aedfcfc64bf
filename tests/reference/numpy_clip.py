#!/usr/bin/env python3
"""A tiny llava-1.5-style mmproj written by the PyPI `gguf` package (the writer llama.cpp's
converters use), and its image embeddings from a float64 NumPy forward pass: the independent
reference for src/vision/clip.rs.

Usage: numpy_clip.py   (from the repository root; needs pip install gguf==0.19.0 numpy)

The file follows docs/llava-mmproj.md: general.architecture "clip", the clip.* keys of a
llava-1.5 file, legacy tensor names (mlp.fc1, the expanding layer, stored as ffn_down), class
token first, pre_ln, no post_ln, projector mm.0 -> GELU -> mm.2. The forward pass is Hugging
Face's LLaVA: patch conv, class token, position embeddings, pre_ln, every stored block (the
converter already dropped CLIP's last layer), quick_gelu in the blocks, the class token dropped,
erf GELU in the projector. Writes tests/fixtures/mmproj-tiny.gguf and tests/reference/clip-numpy.json,
and tests/fixtures/mmproj-tiny-576.gguf: the same tower with a projector to SmolLM2's width (576),
for tests of the LLaVA plumbing.
"""
import json
import math

import gguf
import numpy as np

IMAGE, PATCH, WIDTH, FFN, HEADS, LAYERS, HIDDEN = 28, 14, 32, 64, 4, 3, 48
EPS = 1e-5
MEAN, STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


def weights(rng, projection=HIDDEN):
    n = (IMAGE // PATCH) ** 2
    w = {
        "v.class_embd": rng.normal(0, 0.5, WIDTH),
        "v.patch_embd.weight": rng.normal(0, 0.2, (WIDTH, 3, PATCH, PATCH)),
        "v.position_embd.weight": rng.normal(0, 0.5, (n + 1, WIDTH)),
        "v.pre_ln.weight": 1 + rng.normal(0, 0.1, WIDTH),
        "v.pre_ln.bias": rng.normal(0, 0.1, WIDTH),
        "mm.0.weight": rng.normal(0, 0.2, (HIDDEN, WIDTH)),
        "mm.0.bias": rng.normal(0, 0.1, HIDDEN),
        "mm.2.weight": rng.normal(0, 0.2, (projection, HIDDEN)),
        "mm.2.bias": rng.normal(0, 0.1, projection),
    }
    for l in range(LAYERS):
        b = f"v.blk.{l}."
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            w[b + name + ".weight"] = rng.normal(0, 0.25, (WIDTH, WIDTH))
            w[b + name + ".bias"] = rng.normal(0, 0.1, WIDTH)
        for name in ("ln1", "ln2"):
            w[b + name + ".weight"] = 1 + rng.normal(0, 0.1, WIDTH)
            w[b + name + ".bias"] = rng.normal(0, 0.1, WIDTH)
        # Legacy naming: ffn_down holds fc1 (WIDTH -> FFN), ffn_up holds fc2 (FFN -> WIDTH).
        w[b + "ffn_down.weight"] = rng.normal(0, 0.2, (FFN, WIDTH))
        w[b + "ffn_down.bias"] = rng.normal(0, 0.1, FFN)
        w[b + "ffn_up.weight"] = rng.normal(0, 0.15, (WIDTH, FFN))
        w[b + "ffn_up.bias"] = rng.normal(0, 0.1, WIDTH)
    return w


def write(path, w, projection=HIDDEN):
    writer = gguf.GGUFWriter(path, arch="clip")
    writer.add_bool("clip.has_text_encoder", False)
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_llava_projector", True)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_uint32("clip.vision.image_size", IMAGE)
    writer.add_uint32("clip.vision.patch_size", PATCH)
    writer.add_uint32("clip.vision.embedding_length", WIDTH)
    writer.add_uint32("clip.vision.feed_forward_length", FFN)
    writer.add_uint32("clip.vision.projection_dim", projection)
    writer.add_uint32("clip.vision.attention.head_count", HEADS)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", EPS)
    writer.add_uint32("clip.vision.block_count", LAYERS)
    writer.add_array("clip.vision.image_mean", MEAN)
    writer.add_array("clip.vision.image_std", STD)
    writer.add_bool("clip.use_gelu", False)
    for name, value in w.items():
        # Matrices in f16 as llama.cpp's converter writes them; vectors and norms in f32.
        dtype = np.float16 if value.ndim >= 2 and name != "v.position_embd.weight" else np.float32
        writer.add_tensor(name, value.astype(dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def stored(w):
    """The weights as the file holds them (f16 matrices rounded), in float64."""
    return {k: v.astype(np.float16 if v.ndim >= 2 and k != "v.position_embd.weight" else np.float32).astype(np.float64)
            for k, v in w.items()}


def layer_norm(x, g, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + EPS) * g + b


def forward(w, pixels):
    grid = IMAGE // PATCH
    patches = pixels.reshape(3, grid, PATCH, grid, PATCH).transpose(1, 3, 0, 2, 4).reshape(grid * grid, -1)
    x = patches @ w["v.patch_embd.weight"].reshape(WIDTH, -1).T
    x = np.vstack([w["v.class_embd"][None], x]) + w["v.position_embd.weight"]
    x = layer_norm(x, w["v.pre_ln.weight"], w["v.pre_ln.bias"])
    d = WIDTH // HEADS
    for l in range(LAYERS):
        b = f"v.blk.{l}."
        lin = lambda t, name: t @ w[b + name + ".weight"].T + w[b + name + ".bias"]
        h = layer_norm(x, w[b + "ln1.weight"], w[b + "ln1.bias"])
        q, k, v = (lin(h, n).reshape(-1, HEADS, d).transpose(1, 0, 2) for n in ("attn_q", "attn_k", "attn_v"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attn = (scores / scores.sum(-1, keepdims=True)) @ v
        x = x + lin(attn.transpose(1, 0, 2).reshape(-1, WIDTH), "attn_out")
        h = lin(layer_norm(x, w[b + "ln2.weight"], w[b + "ln2.bias"]), "ffn_down")
        h = h / (1 + np.exp(-1.702 * h))
        x = x + lin(h, "ffn_up")
    x = x[1:]
    h = x @ w["mm.0.weight"].T + w["mm.0.bias"]
    h = 0.5 * h * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))
    return h @ w["mm.2.weight"].T + w["mm.2.bias"]


def main():
    rng = np.random.default_rng(5)
    w = weights(rng)
    write("tests/fixtures/mmproj-tiny.gguf", w)
    pixels = np.sin(np.arange(3 * IMAGE * IMAGE) * 0.37).reshape(3, IMAGE, IMAGE) * 1.5
    out = forward(stored(w), pixels)
    write("tests/fixtures/mmproj-tiny-576.gguf", weights(np.random.default_rng(6), 576), 576)
    with open("tests/reference/clip-numpy.json", "w") as f:
        json.dump({"generator": "tests/reference/numpy_clip.py (float64 NumPy; gguf " + gguf.__name__ + ")",
                   "pixels": "sin(0.37 * i) * 1.5 over the [3, 28, 28] tensor, channel-major",
                   "embeddings": [[round(float(v), 7) for v in row] for row in out]}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
