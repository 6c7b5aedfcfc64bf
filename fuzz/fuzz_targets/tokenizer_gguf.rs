//! A GGUF vocabulary (`tokenizer.ggml.*`: tokens, types, scores, merges, special ids, the
//! pre-tokenizer) built into a tokenizer, which then encodes and decodes a fixed text.
#![no_main]

use glassbox::gguf::Gguf;
use glassbox::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

const TEXT: &str = "Hello world! 日本語 😀 <|im_start|>user\n  spaced\ttext 12345";

fuzz_target!(|file: &[u8]| {
    let Ok(header) = Gguf::parse(file, file.len() as u64) else { return };
    let Ok(tokenizer) = Tokenizer::from_gguf(&header) else { return };
    for parse_special in [false, true] {
        if let Ok(ids) = tokenizer.encode(TEXT, true, parse_special) {
            let _ = tokenizer.decode(&ids);
            let _ = tokenizer.token_texts(&ids);
        }
    }
});
