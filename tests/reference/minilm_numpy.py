"""Independent reference for glassbox's MiniLM embedder (src/tasks/embed.rs, its own BERT on candle tensors).

Recomputes all-MiniLM-L6-v2 sentence embeddings in float64 NumPy with no ML framework:
the safetensors file is parsed by hand (no safetensors/torch packages) and BERT is written out
from its definition, so agreement with candle checks the weights, the tokenisation, the
forward pass and the pooling rather than a shared implementation.

Reads   models/all-MiniLM-L6-v2/{model.safetensors, tokenizer.json}  (config.json's values are
        the constants below) and tests/data/conspiracy_posts.jsonl.
Writes  tests/reference/minilm-numpy.json:
  "generator": this script and what it computes;
  "sentences": [{"text", "ids", "embedding": 384 floats, 7 significant digits}, ...];
  "neighbours": {"<id>": {"hits": [["<id>", cosine], ...], "margin": m}} for every data row:
      RAEmoLLM's retrieval as src/tasks/index.rs `search(k=4, min_score=0.2)` does it: rows of
      the query's own domain (hence the row itself) are left out, the rest ranked by cosine
      (ties by file order), the best 4 with cosine >= 0.2 kept, best first; cosines rounded
      to 6 decimals.  `margin` is the smallest float64 distance that could change `hits`:
      the gaps between consecutive candidates 1..5 (the 4th/5th gap decides membership, the
      others the order) and the distance of each of those candidates to the 0.2 threshold,
      ignoring gaps between two candidates that are both under it.  A float32 port should
      only be held to the exact list where `margin` is comfortably above its error (say 1e-4).

Needs numpy and tokenizers (python -m venv /tmp/minilm-venv &&
/tmp/minilm-venv/bin/pip install numpy tokenizers), run from the repository root:

    /tmp/minilm-venv/bin/python tests/reference/minilm_numpy.py
"""

import json
import math
import os
import struct
import sys
import time

import numpy as np
from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models", "all-MiniLM-L6-v2")
DATA = os.path.join(ROOT, "tests", "data", "conspiracy_posts.jsonl")
OUT = os.path.join(ROOT, "tests", "reference", "minilm-numpy.json")

LAYERS, HEADS, EPS = 6, 12, 1e-12
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
K, MIN_SCORE = 4, 0.2  # RAEmoLLM's retrieval settings (pipeline.rs defaults)

SENTENCES = [
    "The cat sits on the mat",
    "A cat is sitting on a mat",
    "Stock prices fell",
    "Café prices rose 5% — really?",  # accents, a non-ASCII dash, digits and punctuation
]

DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4"}


def read_safetensors(path):
    """Tensors by name as float64; a "bert." prefix is dropped so both exports look alike."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    base = 8 + n  # data_offsets count from the end of the header
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        a = np.frombuffer(blob, dtype=DTYPES[info["dtype"]], count=(end - start) // np.dtype(DTYPES[info["dtype"]]).itemsize, offset=base + start)
        tensors[name.removeprefix("bert.")] = a.reshape(info["shape"]).astype(np.float64)
    return tensors


_erf = np.frompyfunc(math.erf, 1, 1)  # numpy has no erf; math.erf is correctly rounded float64


def gelu(x):
    # BERT's "gelu" is the exact erf form, not the tanh approximation.
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def layer_norm(x, w, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)  # biased variance, as PyTorch
    return (x - mu) / np.sqrt(var + EPS) * w + b


def linear(x, W, prefix):
    return x @ W[prefix + ".weight"].T + W[prefix + ".bias"]  # PyTorch stores [out, in]


def bert(W, ids):
    """Last layer's hidden states, [T, 384], for one unpadded sequence (so no attention mask)."""
    T = len(ids)
    x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:T] + W["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"])
    d = x.shape[1] // HEADS
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        q, k, v = (linear(x, W, p + "attention.self." + n).reshape(T, HEADS, d).transpose(1, 0, 2) for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        a = (s / s.sum(-1, keepdims=True)) @ v  # [H, T, d]
        a = linear(a.transpose(1, 0, 2).reshape(T, -1), W, p + "attention.output.dense")
        x = layer_norm(a + x, W[p + "attention.output.LayerNorm.weight"], W[p + "attention.output.LayerNorm.bias"])
        h = linear(gelu(linear(x, W, p + "intermediate.dense")), W, p + "output.dense")
        x = layer_norm(h + x, W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"])
    return x


def main():
    t0 = time.time()
    W = read_safetensors(os.path.join(MODEL, "model.safetensors"))
    tok = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
    # Same settings as MiniLm::load, whatever tokenizer.json itself says.
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_TOKENS)

    def embed(text):
        ids = tok.encode(text, add_special_tokens=True).ids  # [CLS] ... [SEP]
        m = bert(W, np.array(ids)).mean(0)  # mean over every token, [CLS]/[SEP] included
        return ids, m / np.linalg.norm(m)

    sentences = []
    embs = []
    for text in SENTENCES:
        ids, e = embed(text)
        embs.append(e)
        sentences.append({"text": text, "ids": ids, "embedding": [float(f"{v:.7g}") for v in e]})

    rows = [json.loads(line) for line in open(DATA, encoding="utf-8") if line.strip()]
    E = np.stack([embed(r["text"])[1] for r in rows])
    sims = E @ E.T  # unit vectors: dot product is the cosine
    neighbours = {}
    for i, r in enumerate(rows):
        cand = [j for j in range(len(rows)) if rows[j]["domain"] != r["domain"]]
        cand.sort(key=lambda j: (-sims[i, j], j))  # index.rs: score desc, then record order
        top = [float(sims[i, j]) for j in cand[: K + 1]]
        hits = [[rows[j]["id"], round(float(sims[i, j]), 6)] for j in cand[:K] if sims[i, j] >= MIN_SCORE]
        gaps = [a - b for a, b in zip(top, top[1:]) if a >= MIN_SCORE]
        margin = min(gaps + [abs(s - MIN_SCORE) for s in top])
        neighbours[r["id"]] = {"hits": hits, "margin": float(f"{margin:.4g}")}

    out = {
        "generator": "tests/reference/minilm_numpy.py: NumPy float64 BERT (all-MiniLM-L6-v2, hand-parsed safetensors, "
        "tokenizers truncation 256, mean pooling + L2 norm); neighbours = top-4 leave-one-domain-out cosine >= 0.2",
        "sentences": sentences,
        "neighbours": neighbours,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")

    # Sanity: unit norms, and a paraphrase must beat an unrelated sentence.
    norms = [float(np.linalg.norm(e)) for e in embs] + list(np.linalg.norm(E, axis=1))
    assert max(abs(n - 1) for n in norms) < 1e-12, norms
    para, unrelated = float(embs[0] @ embs[1]), float(embs[0] @ embs[2])
    print(f"cos(cat sits, cat is sitting) = {para:.6f}")
    print(f"cos(cat sits, stock prices)   = {unrelated:.6f}")
    assert para > unrelated
    tight = sorted((v["margin"], k) for k, v in neighbours.items())[:5]
    print(f"{len(rows)} rows; smallest margins: {tight}")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes) in {time.time() - t0:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
