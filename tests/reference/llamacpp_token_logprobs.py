#!/usr/bin/env python3
"""Per-token log-probabilities of fixed responses under two models from llama.cpp (PyPI
llama-cpp-python), and the SePO token rewards r_t = log pi_oracle(y_t | x, y_<t) -
log pi_ref(y_t | x, y_<t), for glassbox's reward test.

Usage: llamacpp_token_logprobs.py ORACLE.gguf REF.gguf OUT.json
Needs: pip install llama-cpp-python==0.3.36 numpy

The two models must share a tokenizer (tests/fixtures/smollm2-vocab-tiny-q8_0.gguf copies
SmolLM2's). The prompt is tokenised with special tokens parsed and the response as plain text,
neither with a BOS; both models evaluate prompt + response in one batch, and the logprob of
response token t is log_softmax(logits at position len(prompt) - 1 + t)[response_ids[t]] in float64.
"""
import hashlib
import json
import pathlib
import sys
from importlib.metadata import version

import llama_cpp
import numpy as np

CASES = [
    ("The capital of France is", " Paris. The capital of Germany is Berlin."),
    ("1+1=2\n2+3=5\n4+2=6\n3+5=", "8\n"),
    ("<|im_start|>user\nName a primary colour.<|im_end|>\n<|im_start|>assistant\n",
     "Blue is one of the three primary colours."),
]


def load(model_path):
    return llama_cpp.Llama(model_path=model_path, logits_all=True, n_ctx=512, n_threads=2, verbose=False)


def tokenize(llm, prompt, response):
    prompt_ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    response_ids = llm.tokenize(response.encode("utf-8"), add_bos=False, special=False)
    return prompt_ids, response_ids


def logprobs(llm, prompt_ids, response_ids):
    llm.reset()
    llm.eval(prompt_ids + response_ids)
    out = []
    for t, token in enumerate(response_ids):
        logits = np.array(llm.scores[len(prompt_ids) - 1 + t], dtype=np.float64)
        shifted = logits - logits.max()
        out.append(float(shifted[token] - np.log(np.exp(shifted).sum())))
    return out


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def main(oracle_path, ref_path, out_path):
    oracle = load(oracle_path)
    cases = []
    for prompt, response in CASES:
        prompt_ids, response_ids = tokenize(oracle, prompt, response)
        cases.append({"prompt": prompt, "response": response, "prompt_ids": prompt_ids,
                      "response_ids": response_ids,
                      "oracle_logprobs": logprobs(oracle, prompt_ids, response_ids)})
    del oracle

    ref = load(ref_path)
    for case in cases:
        if tokenize(ref, case["prompt"], case["response"]) != (case["prompt_ids"], case["response_ids"]):
            raise SystemExit(f"{ref_path} tokenises {case['prompt']!r} differently from {oracle_path}")
        case["reference_logprobs"] = logprobs(ref, case["prompt_ids"], case["response_ids"])
        case["rewards"] = [o - r for o, r in zip(case["oracle_logprobs"], case["reference_logprobs"])]
    del ref

    reference = {
        "generated_by": f"tests/reference/llamacpp_token_logprobs.py with llama-cpp-python {version('llama-cpp-python')}",
        "oracle_sha256": sha256(oracle_path),
        "reference_sha256": sha256(ref_path),
        "cases": cases,
    }
    pathlib.Path(out_path).write_text(json.dumps(reference, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
