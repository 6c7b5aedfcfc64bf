#!/usr/bin/env python3
"""Vocabulary-only GGUF files for the tokenizer kinds SmolLM2 does not cover, written with the
`gguf` package: byte-level BPE with llama.cpp's `llama-bpe`, `qwen2` and `gpt-2` pre-tokenizers,
and a SentencePiece-style `llama` vocabulary with scores and byte fallback.

The vocabularies are learnt here by a few hundred BPE merges over a small built-in corpus, so
they exercise real merge chains. `make reference` tokenises the golden strings with llama.cpp
against these same files (tests/reference/llamacpp_tokenize.py --all).
Needs: pip install gguf==0.19.0
"""
import collections
import pathlib
import re

import gguf

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"
MERGES = 300
CORPUS = """
The quick brown fox jumps over the lazy dog. It's the end of the world as we know it, and I feel fine.
def add(a, b):
    return a + b
for (int i = 0; i < n; ++i) { sum += a[i]; }
The capital of France is Paris. The capital of Italy is Rome. 1234567890 apples and 42 oranges.
Once upon a time, there was a little house in the middle of the forest. They'll say we've won.
日本語のテキストです。中文：你好，世界！ café naïve façade résumé
""" * 3


def bytes_to_unicode():
    """GPT-2's map from bytes to printable characters (so byte-level tokens are valid text)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def learn_merges(words, count):
    """Plain BPE: repeatedly merge the most frequent adjacent pair (ties by first appearance)."""
    corpus = collections.Counter(tuple(w) for w in words)
    merges = []
    for _ in range(count):
        pairs = collections.Counter()
        for word, freq in corpus.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += freq
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: kv[1])[0]
        merges.append(best)
        merged = {}
        for word, freq in corpus.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + freq
        corpus = merged
    return merges


def write_vocab(name, arch, model, tokens, types, extra):
    writer = gguf.GGUFWriter(str(OUT / f"{name}.gguf"), arch)
    writer.add_name(name)
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model(model)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    extra(writer)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def byte_level(name, arch, pre):
    to_unicode = bytes_to_unicode()
    words = re.findall(r" ?\w+| ?[^\w\s]+|\s+", CORPUS)
    encoded = ["".join(to_unicode[b] for b in w.encode("utf-8")) for w in words]
    merges = learn_merges(encoded, MERGES)
    tokens = ["<|endoftext|>"] + [to_unicode[b] for b in range(256)]
    tokens += [a + b for a, b in merges if a + b not in tokens]
    types = [gguf.TokenType.CONTROL] + [gguf.TokenType.NORMAL] * (len(tokens) - 1)

    def extra(writer):
        writer.add_token_merges([f"{a} {b}" for a, b in merges])
        writer.add_tokenizer_pre(pre)
        writer.add_bos_token_id(0)
        writer.add_eos_token_id(0)
        writer.add_add_bos_token(False)

    write_vocab(name, arch, "gpt2", tokens, types, extra)


def sentencepiece(name):
    words = ["▁" + w for w in re.findall(r"\S+", CORPUS)]
    merges = learn_merges(words, MERGES)
    chars = sorted({c for w in words for c in w})
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    scores = [0.0] * len(tokens)
    for c in chars:
        tokens.append(c)
        types.append(gguf.TokenType.NORMAL)
        scores.append(-1000.0)
    for rank, (a, b) in enumerate(merges):
        if a + b not in tokens:
            tokens.append(a + b)
            types.append(gguf.TokenType.NORMAL)
            scores.append(-float(rank))

    def extra(writer):
        writer.add_token_scores(scores)
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        writer.add_unk_token_id(0)
        writer.add_add_bos_token(True)

    write_vocab(name, "llama", "llama", tokens, types, extra)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    byte_level("vocab-llama-bpe", "llama", "llama-bpe")
    byte_level("vocab-qwen2", "qwen2", "qwen2")
    byte_level("vocab-gpt2", "llama", "gpt-2")
    sentencepiece("vocab-spm")
    print("tokenizer fixtures written")


if __name__ == "__main__":
    main()
