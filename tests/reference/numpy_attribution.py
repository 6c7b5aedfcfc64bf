#!/usr/bin/env python3
"""An independent NumPy reference for glassbox's log-probability-increase (LPI) attribution.

Usage (two steps, because llama.cpp and gguf live in different environments):
  .venv-peers/bin/python tests/reference/numpy_attribution.py tokenize MODEL.gguf IDS.json
  .venv/bin/python tests/reference/numpy_attribution.py MODEL.gguf IDS.json tests/reference/smollm2-attribution-numpy
e.g. with MODEL.gguf = models/SmolLM2-135M-Instruct.Q4_1.gguf and IDS.json = /tmp/attribution-ids.json.
Needs: pip install llama-cpp-python==0.3.36 (step 1); pip install gguf==0.19.0 numpy (step 2)

Step 1 tokenises the first three prompts of src/interp/arithmetic_prompts.json with llama.cpp
(no BOS, special off). Step 2 runs the float64 forward pass of numpy_forward.py (same weights,
rms_norm and rope), keeping every layer's pieces at the last position, and scores them with a
fixed-scale logit lens: s = sqrt(mean(x_L^2) + eps) of the final residual, U(v) = W_U (g * v / s),
LPI(b, d) = log_softmax(U(b + d))[w] - log_softmax(U(b))[w], w = the model's top-1 next token.
Attention layer l: LPI(x_l, a_l); FFN layer l: LPI(r_l, f_l); head (l, h): LPI(x_l, H_lh);
FFN neuron (l, i), exactly for every neuron: LPI(r_l, m_li W_down[:, i]), via the float64 matrix
A_l = W_U diag(g) W_down_l (U(r_l + m W_down[:, i]) = U(r_l) + m A_l[:, i] / s).
Attribution-graph edge (l, h, t), for every one: LPI(x_l, alpha_{h,last,t} W_O[:, h] v_{t,h}).

Writes OUT_PREFIX.json (targets, layer and head LPIs, top 100 neurons), OUT_PREFIX.bin
(little-endian float32: per prompt, every FFN neuron's LPI [layers, ffn]) and
OUT_PREFIX-edges.bin (little-endian float32: per prompt, every edge's LPI [layers, heads, tokens]).
"""
import hashlib
import json
import pathlib
import sys
import time
from importlib.metadata import version

HERE = pathlib.Path(__file__).resolve().parent
PROMPTS = 3
CHUNK = 256  # neurons per logsumexp block: [vocab, CHUNK] float64 = 100 MB


def tokenize(model_path, out_path):
    import llama_cpp

    items = json.loads((HERE.parents[1] / "src/interp/arithmetic_prompts.json").read_text())["items"][:PROMPTS]
    llm = llama_cpp.Llama(model_path=model_path, vocab_only=True, verbose=False)
    cases = [{"prompt": it["prompt"], "ids": llm.tokenize(it["prompt"].encode(), add_bos=False, special=False)} for it in items]
    pathlib.Path(out_path).write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")


def gpt2_decode(piece):
    """Byte-level BPE vocabulary string -> text (GPT-2's bytes_to_unicode, inverted)."""
    bs = [*range(33, 127), *range(161, 173), *range(174, 256)]
    cs = bs + [256 + n for n in range(256 - len(bs))]
    bs = bs + [b for b in range(256) if b not in bs]
    dec = {chr(c): b for b, c in zip(bs, cs)}
    return bytes(dec[ch] for ch in piece).decode("utf-8", errors="replace")


def main(model_path, ids_path, out_prefix):
    import gguf
    import numpy as np

    sys.path.insert(0, str(HERE))
    from numpy_forward import load, rms_norm, rope

    def lse(u, axis=0):
        mx = u.max(axis=axis)
        return mx + np.log(np.exp(u - np.expand_dims(mx, axis)).sum(axis=axis))

    start = time.time()
    config, w = load(model_path)
    L, heads, kv_heads, width, eps = (config[k] for k in ("layers", "heads", "kv_heads", "width", "eps"))
    hd, group = width // heads, heads // kv_heads
    W_U, g = w["token_embd.weight"], w["output_norm.weight"]
    assert "output.weight" not in w, "expected tied embeddings"
    vocab_tokens = gguf.GGUFReader(model_path).fields["tokenizer.ggml.tokens"].contents()

    def forward(ids):
        """Per-layer pieces at the last position: x (resid_pre), a, f, m [ffn], H [heads, d], and
        E [heads, t, d], what each head carries from each position; and x_L."""
        t = len(ids)
        x = W_U[ids]
        causal = np.triu(np.full((t, t), -np.inf), 1)
        rec = {k: [] for k in ("x", "a", "f", "m", "H", "E")}
        for l in range(L):
            p = f"blk.{l}."
            rec["x"].append(x[-1].copy())
            n = rms_norm(x, w[p + "attn_norm.weight"], eps)
            q = rope((n @ w[p + "attn_q.weight"].T).reshape(t, heads, hd), config["theta"])
            k = rope((n @ w[p + "attn_k.weight"].T).reshape(t, kv_heads, hd), config["theta"])
            v = (n @ w[p + "attn_v.weight"].T).reshape(t, kv_heads, hd)
            z = np.empty((t, heads, hd))
            alpha = np.empty((heads, t))
            for h in range(heads):
                scores = q[:, h] @ k[:, h // group].T / np.sqrt(hd) + causal
                probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
                probs /= probs.sum(axis=-1, keepdims=True)
                z[:, h] = probs @ v[:, h // group]
                alpha[h] = probs[-1]
            wo = w[p + "attn_output.weight"]
            attn = z.reshape(t, width) @ wo.T
            H = np.stack([wo[:, h * hd:(h + 1) * hd] @ z[-1, h] for h in range(heads)])
            E = np.stack([(alpha[h][:, None] * v[:, h // group]) @ wo[:, h * hd:(h + 1) * hd].T for h in range(heads)])
            # Self-check 1: the heads' results sum to the attention output, and each head's
            # per-position parts to its result.
            assert np.allclose(H.sum(0), attn[-1], rtol=1e-6, atol=1e-6 * np.abs(attn[-1]).max())
            assert np.allclose(E.sum(1), H, rtol=1e-6, atol=1e-6 * np.abs(H).max())
            x = x + attn
            n = rms_norm(x, w[p + "ffn_norm.weight"], eps)
            gate = n @ w[p + "ffn_gate.weight"].T
            m = gate / (1 + np.exp(-gate)) * (n @ w[p + "ffn_up.weight"].T)
            ffn = m @ w[p + "ffn_down.weight"].T
            x = x + ffn
            for key, val in (("a", attn[-1]), ("f", ffn[-1]), ("m", m[-1]), ("H", H), ("E", E)):
                rec[key].append(val)
        return {k: np.stack(v) for k, v in rec.items()}, x[-1]

    cases = json.loads(pathlib.Path(ids_path).read_text())[:PROMPTS]
    runs = []
    for case in cases:
        rec, xL = forward(case["ids"])
        s = np.sqrt(np.mean(xL * xL) + eps)
        U = lambda v: (v * (g / s)) @ W_U.T  # fixed-scale lens, linear in v; v: [..., d]
        real_logits = W_U @ rms_norm(xL, g, eps)
        uL = U(xL)
        # Self-check 3: the real logits are the lens of x_L.
        assert np.allclose(real_logits, uL, rtol=1e-12, atol=1e-10)
        tgt = int(np.argmax(real_logits))
        assert tgt == int(np.argmax(uL))
        lp = lambda u: u[..., tgt] - lse(u, axis=-1)
        lpi = lambda b, d: lp(U(b + d)) - lp(U(b))
        r = rec["x"] + rec["a"]
        runs.append({
            "case": case, "rec": rec, "xL": xL, "s": s, "tgt": tgt, "r": r,
            "u_r": U(r),  # [L, vocab]
            "target": {"id": tgt, "token": gpt2_decode(vocab_tokens[tgt]), "logprob": float(lp(real_logits))},
            "attn": lpi(rec["x"], rec["a"]),
            "ffn": lpi(r, rec["f"]),
            "head": lpi(rec["x"][:, None, :], rec["H"]),  # [L, heads]
            "neuron": np.empty((L, rec["m"].shape[1])),
            "neuron_logit": 0.0,  # Σ_{l,i} U(m_li W_down[:, i])[w], from A_l
            # [L, heads, t], a layer at a time: [heads, t, vocab] float64 is 80 MB.
            "edge": np.stack([lpi(rec["x"][l][None, None, :], rec["E"][l]) for l in range(L)]),
        })
    print(f"forward passes done at {time.time() - start:.0f}s", file=sys.stderr)

    for l in range(L):
        Wd = w[f"blk.{l}.ffn_down.weight"]  # [d, ffn]
        A = W_U @ (g[:, None] * Wd)  # [vocab, ffn], float64; divide by s per prompt
        for run in runs:
            u, c, tgt = run["u_r"][l], run["rec"]["m"][l] / run["s"], run["tgt"]
            base = u[tgt] - lse(u)
            run["neuron_logit"] += float(A[tgt] @ c)
            for j in range(0, A.shape[1], CHUNK):
                cj = c[j:j + CHUNK]
                run["neuron"][l, j:j + CHUNK] = u[tgt] + A[tgt, j:j + CHUNK] * cj - lse(u[:, None] + A[:, j:j + CHUNK] * cj) - base
    print(f"neuron LPIs done at {time.time() - start:.0f}s", file=sys.stderr)

    index, blobs, edge_blobs = [], [], []
    for run in runs:
        rec, s, tgt, g_s = run["rec"], run["s"], run["tgt"], g / run["s"]
        # Self-check 2: the target logit decomposes exactly over embedding, heads and neurons.
        whole = W_U[tgt] @ (g_s * run["xL"])
        parts = W_U[tgt] @ (g_s * W_U[run["case"]["ids"][-1]]) + (rec["H"] @ (g_s * W_U[tgt])).sum() + run["neuron_logit"]
        assert abs(whole - parts) <= 1e-6 * max(1.0, abs(whole)), (whole, parts)
        # Spot check: the best neuron's A_l-based LPI equals the direct LPI through the lens.
        neuron = run["neuron"]
        order = np.argsort(neuron, axis=None)[::-1][:100]
        bl, bi = np.unravel_index(order[0], neuron.shape)
        delta = rec["m"][bl, bi] * w[f"blk.{bl}.ffn_down.weight"][:, bi]
        u0, u1 = W_U @ (g_s * run["r"][bl]), W_U @ (g_s * (run["r"][bl] + delta))
        direct = (u1[tgt] - lse(u1)) - (u0[tgt] - lse(u0))
        assert abs(direct - neuron[bl, bi]) <= 1e-9 * max(1.0, abs(direct)), (direct, neuron[bl, bi])
        index.append({
            "prompt": run["case"]["prompt"], "ids": run["case"]["ids"], "target": run["target"], "s": float(s),
            "attn_layer_lpi": run["attn"].tolist(), "ffn_layer_lpi": run["ffn"].tolist(), "head_lpi": run["head"].tolist(),
            "top_neurons": [[int(a), int(b), float(neuron[a, b])] for a, b in zip(*np.unravel_index(order, neuron.shape))],
        })
        blobs.append(neuron.astype("<f4").tobytes())
        edge_blobs.append(run["edge"].astype("<f4").tobytes())
    with open(model_path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    pathlib.Path(out_prefix + ".bin").write_bytes(b"".join(blobs))
    pathlib.Path(out_prefix + "-edges.bin").write_bytes(b"".join(edge_blobs))
    meta = {
        "generated_by": f"tests/reference/numpy_attribution.py with gguf {version('gguf')}, numpy {np.__version__}",
        "file_sha256": digest,
        "layout": f"per prompt: ffn neuron LPI [layers={L}, ffn={runs[0]['neuron'].shape[1]}], float32 LE",
        "edges_layout": f"-edges.bin, per prompt: edge LPI [layers={L}, heads={heads}, tokens], float32 LE",
        "prompts": index,
    }
    pathlib.Path(out_prefix + ".json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    print(f"written at {time.time() - start:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    if sys.argv[1] == "tokenize":
        tokenize(*sys.argv[2:])
    else:
        main(*sys.argv[1:])
