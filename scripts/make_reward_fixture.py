#!/usr/bin/env python3
"""`make fixtures`: a tiny random-weight llama model with SmolLM2's full tokenizer, the reference
policy for SePO token rewards r_t = log pi_oracle(y_t | x, y_<t) - log pi_ref(y_t | x, y_<t) with
SmolLM2-135M-Instruct as the oracle. The two must share a tokenizer, so every `tokenizer.*` key
is copied verbatim from SmolLM2's GGUF and the embedding spans its 49152-token vocabulary.

Shape: 2 layers, width 32, 2 query heads and 1 kv head of 16, FFN 64, tied embeddings (no
output.weight), Q8_0 matrices and F32 norms. `make reference` scores responses under both models
with llama.cpp (tests/reference/llamacpp_token_logprobs.py).
Output (committed): tests/fixtures/smollm2-vocab-tiny-q8_0.gguf
Needs: pip install gguf==0.19.0 numpy; models/SmolLM2-135M-Instruct.Q4_1.gguf (make setup)
"""
import pathlib

import gguf
import numpy as np

from make_fixtures import stored

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = ROOT / "tests" / "fixtures" / "smollm2-vocab-tiny-q8_0.gguf"
NAME = "smollm2-vocab-tiny-q8_0"
WIDTH, FFN, LAYERS, HEADS, KV_HEADS, CONTEXT, EPS, THETA = 32, 64, 2, 2, 1, 256, 1e-5, 1e4
VOCAB = 49152

# Each tokenizer key SmolLM2's file may hold, and the writer method that writes it back.
TOKENIZER_KEYS = {
    "tokenizer.ggml.model": "add_tokenizer_model",
    "tokenizer.ggml.pre": "add_tokenizer_pre",
    "tokenizer.ggml.tokens": "add_token_list",
    "tokenizer.ggml.token_type": "add_token_types",
    "tokenizer.ggml.merges": "add_token_merges",
    "tokenizer.ggml.bos_token_id": "add_bos_token_id",
    "tokenizer.ggml.eos_token_id": "add_eos_token_id",
    "tokenizer.ggml.unknown_token_id": "add_unk_token_id",
    "tokenizer.ggml.padding_token_id": "add_pad_token_id",
    "tokenizer.ggml.add_bos_token": "add_add_bos_token",
    "tokenizer.ggml.add_eos_token": "add_add_eos_token",
    "tokenizer.ggml.add_space_prefix": "add_add_space_prefix",
    "tokenizer.chat_template": "add_chat_template",
}


def copy_tokenizer(writer):
    fields = gguf.GGUFReader(str(SOURCE)).fields
    present = [key for key in fields if key.startswith("tokenizer.")]
    unknown = [key for key in present if key not in TOKENIZER_KEYS]
    if unknown:
        raise SystemExit(f"no writer for tokenizer keys {unknown}; extend TOKENIZER_KEYS")
    tokens = fields["tokenizer.ggml.tokens"].contents()
    if len(tokens) != VOCAB:
        raise SystemExit(f"expected {VOCAB} tokens in {SOURCE}, found {len(tokens)}")
    for key in present:
        getattr(writer, TOKENIZER_KEYS[key])(fields[key].contents())
    return present


def main():
    OUT.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261127)
    writer = gguf.GGUFWriter(str(OUT), "llama")
    writer.add_name(NAME)
    writer.add_block_count(LAYERS)
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(WIDTH)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(EPS)
    writer.add_rope_freq_base(THETA)
    writer.add_rope_dimension_count(WIDTH // HEADS)
    writer.add_vocab_size(VOCAB)
    copied = copy_tokenizer(writer)

    kv_width = KV_HEADS * WIDTH // HEADS
    matrix = lambda rows, cols: rng.normal(0, 1 / np.sqrt(cols), (rows, cols))
    vector = lambda n: 1 + rng.normal(0, 0.1, n)
    stored(writer, "token_embd.weight", rng.normal(0, 1, (VOCAB, WIDTH)), "Q8_0")
    for l in range(LAYERS):
        p = f"blk.{l}."
        for name, rows, cols in [("attn_q", WIDTH, WIDTH), ("attn_k", kv_width, WIDTH), ("attn_v", kv_width, WIDTH),
                                 ("attn_output", WIDTH, WIDTH), ("ffn_gate", FFN, WIDTH), ("ffn_up", FFN, WIDTH),
                                 ("ffn_down", WIDTH, FFN)]:
            stored(writer, p + name + ".weight", matrix(rows, cols), "Q8_0")
        stored(writer, p + "attn_norm.weight", vector(WIDTH), "F32")
        stored(writer, p + "ffn_norm.weight", vector(WIDTH), "F32")
    stored(writer, "output_norm.weight", vector(WIDTH), "F32")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"fixtures: wrote {NAME} with {len(copied)} tokenizer keys from {SOURCE.name}")


if __name__ == "__main__":
    main()
