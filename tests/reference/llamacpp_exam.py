#!/usr/bin/env python3
"""EMPEC exam questions answered by llama.cpp (PyPI llama-cpp-python): the independent reference
for `glassbox exam` in both modes.

Usage: llamacpp_exam.py MODEL.gguf OUT.json
Needs: pip install llama-cpp-python==0.3.36 numpy (jinja2 comes with it)

The prompt is eval_empec's src/eval.py: the question + "\\n答案：" ("\\nAnswer:" for English
questions, as QwenEvaluator.format_example_en writes it) as the user's message of the GGUF's own
chat template, rendered with Jinja2 as transformers' apply_chat_template does
(add_generation_prompt). It is tokenised with the model's BOS rule and control tokens parsed.
- generate: greedy decoding of at most 32 tokens (eval.py's SamplingParams), stopping at the
  model's end-of-sequence token; each step records the token and the gap between the two
  largest logits, so that a check can tell a real divergence from a near-tie.
- score: log-softmax (float64) of the first token of "A", "B", "C", "D" after the prompt,
  normalised over the four letters.
"""
import hashlib
import json
import sys
from importlib.metadata import version

import jinja2
import llama_cpp
import numpy as np

QUESTIONS = "tests/data/exam_questions.jsonl"
# Four Chinese and two English questions, over four professions.
IDS = ["exam-001", "exam-014", "exam-027", "exam-040", "exam-011", "exam-023"]
MAX_NEW_TOKENS = 32


def log_softmax(logits):
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


def main(model_path, out_path):
    llm = llama_cpp.Llama(model_path=model_path, logits_all=True, n_ctx=2048, n_threads=2, verbose=False)
    template = jinja2.Environment(loader=jinja2.BaseLoader()).from_string(llm.metadata["tokenizer.chat_template"])
    piece = lambda token: llm.detokenize([token], special=True).decode("utf-8", errors="replace")
    questions = {}
    with open(QUESTIONS, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                questions[row["id"]] = row
    cases = []
    for qid in IDS:
        row = questions[qid]
        cue = "\nAnswer:" if row["language"] == "en" else "\n答案："
        prompt = template.render(messages=[{"role": "user", "content": row["question"] + cue}],
                                 add_generation_prompt=True, bos_token=piece(llm.token_bos()),
                                 eos_token=piece(llm.token_eos()))
        prompt_ids = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)

        llm.reset()
        llm.eval(prompt_ids)
        first = log_softmax(llm.scores[len(prompt_ids) - 1])
        letters = {}
        for letter in "ABCD":
            token = llm.tokenize(letter.encode("utf-8"), add_bos=False, special=False)[0]
            letters[letter] = float(first[token])
        top = max(letters.values())
        weights = {k: np.exp(v - top) for k, v in letters.items()}
        total = sum(weights.values())
        probs = {k: w / total for k, w in weights.items()}

        tokens, gaps = [], []
        logits = np.asarray(llm.scores[len(prompt_ids) - 1], dtype=np.float64)
        for _ in range(MAX_NEW_TOKENS):
            order = np.argsort(-logits, kind="stable")
            token = int(order[0])
            if token == llm.token_eos():
                break
            tokens.append(token)
            gaps.append(float(logits[order[0]] - logits[order[1]]))
            llm.eval([token])
            logits = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float64)
        reply = llm.detokenize(tokens).decode("utf-8", errors="replace")
        cases.append({"id": qid, "prompt": prompt, "prompt_tokens": len(prompt_ids), "probs": probs,
                      "tokens": tokens, "gaps": gaps, "reply": reply})
    with open(model_path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    out = {"generator": f"tests/reference/llamacpp_exam.py, llama-cpp-python {version('llama-cpp-python')}",
           "model_sha256": digest, "cases": cases}
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
