#!/usr/bin/env python3
"""Next-token logits and greedy continuations from llama.cpp (PyPI llama-cpp-python) for the
prompts in tests/reference/parity_prompts.json, for glassbox's engine parity test.

Usage: llamacpp_logits.py MODEL.gguf OUT.json
Needs: pip install llama-cpp-python==0.3.36 numpy

For each next-token prompt: the prompt's ids, the top-10 ids and their logits.
For each greedy prompt: the generated ids and, at every step, the gap between llama.cpp's two
largest logits, so a divergence can be judged a near-tie or not.
"""
import hashlib
import json
import pathlib
import sys
from importlib.metadata import version

import llama_cpp
import numpy as np


def last_logits(llm):
    return np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)


def main(model_path, out_path):
    spec = json.loads((pathlib.Path(__file__).parent / "parity_prompts.json").read_text())
    llm = llama_cpp.Llama(model_path=model_path, n_ctx=512, n_threads=2, logits_all=True, verbose=False)
    tokenize = lambda text: llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    next_token = []
    for prompt in spec["next_token"]:
        ids = tokenize(prompt)
        llm.reset()
        llm.eval(ids)
        logits = last_logits(llm)
        top = np.argsort(-logits, kind="stable")[:10]
        next_token.append({
            "prompt": prompt,
            "ids": ids,
            "top10": [int(i) for i in top],
            "top10_logits": [float(logits[i]) for i in top],
        })

    greedy = []
    for prompt in spec["greedy"]:
        ids = tokenize(prompt)
        llm.reset()
        llm.eval(ids)
        generated, gaps = [], []
        for _ in range(spec["greedy_tokens"]):
            logits = last_logits(llm)
            first, second = np.argsort(-logits, kind="stable")[:2]
            generated.append(int(first))
            gaps.append(float(logits[first] - logits[second]))
            llm.eval([int(first)])
        greedy.append({"prompt": prompt, "ids": ids, "generated": generated, "top2_gaps": gaps})

    with open(model_path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    reference = {
        "generated_by": f"tests/reference/llamacpp_logits.py with llama-cpp-python {version('llama-cpp-python')}",
        "file_sha256": digest,
        "next_token": next_token,
        "greedy": greedy,
    }
    pathlib.Path(out_path).write_text(json.dumps(reference, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
