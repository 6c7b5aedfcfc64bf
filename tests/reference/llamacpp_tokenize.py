#!/usr/bin/env python3
"""Tokenise tests/reference/tokenizer_strings.json with llama.cpp (PyPI llama-cpp-python), for
glassbox's tokenizer golden test.

Usage: llamacpp_tokenize.py MODEL.gguf OUT.json
Needs: pip install llama-cpp-python==0.3.36

For every string it records llama_tokenize's ids with parse_special on and off (no BOS added, so
the test compares the vocabulary work alone), plus the model's add_bos flag and BOS id.
"""
import hashlib
import json
import pathlib
import sys
from importlib.metadata import version

import llama_cpp


def main(model_path, out_path):
    strings = json.loads((pathlib.Path(__file__).parent / "tokenizer_strings.json").read_text())
    llm = llama_cpp.Llama(model_path=model_path, vocab_only=True, verbose=False)
    cases = [
        {
            "text": text,
            "ids_special": llm.tokenize(text.encode("utf-8"), add_bos=False, special=True),
            "ids_plain": llm.tokenize(text.encode("utf-8"), add_bos=False, special=False),
        }
        for text in strings
    ]
    with open(model_path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    reference = {
        "generated_by": f"tests/reference/llamacpp_tokenize.py with llama-cpp-python {version('llama-cpp-python')}",
        "file_sha256": digest,
        "bos_with_add_bos": llm.tokenize(b"", add_bos=True, special=True),
        "cases": cases,
    }
    pathlib.Path(out_path).write_text(json.dumps(reference, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
