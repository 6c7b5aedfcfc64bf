#!/usr/bin/env python3
"""Label probabilities and the seed's retrieval embeddings of the claim tasks from llama.cpp
(PyPI llama-cpp-python), the independent reference for glassbox's constrained label scoring and
LLM embedder.

Usage: llamacpp_tasks.py MODEL.gguf OUT.json
Needs: pip install llama-cpp-python==0.3.36 numpy

The prompts are written here from issue 7's quotations of the seeds' templates, not by
glassbox. For each row: the prompt (wrapped as `Human: \\n{instr}\\n\\nAssistant:\\n`, plus FMD's
answer prefix `Prediction: `) is tokenised with BOS as the model asks; its trailing spaces move
to the front of each label word, which is tokenised on its own without BOS. A word's log-prob is
the sum of its tokens' log-softmax (float64) after the prompt; a label's probability is the sum
of its words' probabilities, normalised over the labels. Vreg rows score the numbers 0.0 ... 1.0
and report their expectation too.

Embeddings: llama.cpp's mean pooling of the final (normed) hidden states over every token of
the wrapped Vreg instruction (BOS included), unnormalised: RAEmoLLM's embedding.
"""
import hashlib
import json
import sys
from importlib.metadata import version

import llama_cpp
import numpy as np

WRAPPER = "Human: \n{instr}\n\nAssistant:\n"
FMD = ("Task: Please determine whether the claim is True, False, or Not Enough Information (NEI) based on "
       "contextual information, and provide an appropriate explanation.\nThe answer need to use the following "
       "format:\nPrediction: [True, or False, or NEI]\nExplanation: [Explain why the above prediction was made]\n "
       "Claim: {claim} \ncontextual information: {context}")
CONSPIRACY = ("Task: Classify the text regarding COVID-19 conspiracy theories or misinformation into one of the "
              "following three classes: 0. Unrelated. 1. Related (but not supporting). 2. Conspiracy (related and "
              "supporting).  Text: {text} Class: ")
VREG = ("Task: Calculate the sentiment intensity or valence score of the tweet, which should be a real number "
        "between 0 (extremely negative) and 1 (extremely positive). Tweet: {x}. Intensity Score: ")
ROWS = 2


def rows(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()][:ROWS]


def word_logprob(llm, prompt_ids, word_ids):
    llm.reset()
    llm.eval(prompt_ids + word_ids)
    total = 0.0
    for t, token in enumerate(word_ids):
        logits = np.array(llm.scores[len(prompt_ids) - 1 + t], dtype=np.float64)
        shifted = logits - logits.max()
        total += float(shifted[token] - np.log(np.exp(shifted).sum()))
    return total


def label_probs(llm, prompt, labels):
    head = prompt.rstrip(" ")
    spaces = prompt[len(head):]
    prompt_ids = llm.tokenize(head.encode("utf-8"), add_bos=True, special=False)
    logprobs = {label: word_logprob(llm, prompt_ids, llm.tokenize((spaces + label).encode("utf-8"), add_bos=False, special=False))
                for label in labels}
    top = max(logprobs.values())
    weights = {label: np.exp(lp - top) for label, lp in logprobs.items()}
    total = sum(weights.values())
    return {label: w / total for label, w in weights.items()}, len(prompt_ids)


def main(model_path, out_path):
    llm = llama_cpp.Llama(model_path=model_path, logits_all=True, n_ctx=1024, n_threads=2, verbose=False)
    cases = []
    for row in rows("tests/data/fmd_claims.jsonl"):
        prompt = WRAPPER.format(instr=FMD.format(claim=row["claim"], context=row["context"])) + "Prediction: "
        probs, n = label_probs(llm, prompt, ["True", "False", "NEI"])
        cases.append({"task": "fmd", "id": row["id"], "prompt_tokens": n, "probs": probs})
    for row in rows("tests/data/conspiracy_posts.jsonl"):
        prompt = WRAPPER.format(instr=CONSPIRACY.format(text=row["text"]))
        probs, n = label_probs(llm, prompt, ["0", "1", "2"])
        cases.append({"task": "conspiracy", "id": row["id"], "prompt_tokens": n, "probs": probs})
    for row in rows("tests/data/conspiracy_posts.jsonl")[:1]:
        prompt = WRAPPER.format(instr=VREG.format(x=row["text"]))
        probs, n = label_probs(llm, prompt, [f"{i / 10:.1f}" for i in range(11)])
        cases.append({"task": "vreg", "id": row["id"], "prompt_tokens": n, "probs": probs,
                      "intensity": sum(float(v) * p for v, p in probs.items())})
    embedder = llama_cpp.Llama(model_path=model_path, embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                               n_ctx=1024, n_threads=2, verbose=False)
    embeddings = []
    for row in rows("tests/data/conspiracy_posts.jsonl"):
        prompt = WRAPPER.format(instr=VREG.format(x=row["text"]))
        vector = embedder.embed(prompt, normalize=False)
        embeddings.append({"id": row["id"], "embedding": [round(v, 6) for v in vector]})
    with open(model_path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    out = {"generator": f"tests/reference/llamacpp_label_probs.py, llama-cpp-python {version('llama-cpp-python')}",
           "model_sha256": digest, "cases": cases, "embeddings": embeddings}
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
