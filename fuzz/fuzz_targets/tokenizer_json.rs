//! A Hugging Face `tokenizer.json` in place of a GGUF vocabulary (the CLI's `--tokenizer`), over
//! the header of a real small GGUF.
#![no_main]

use std::sync::OnceLock;

use glassbox::gguf::{Gguf, GgufFile};
use glassbox::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fn header() -> &'static Gguf {
    static HEADER: OnceLock<Gguf> = OnceLock::new();
    HEADER.get_or_init(|| {
        GgufFile::open(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/llama3-tiny-q8_0.gguf"))
            .expect("the fixture")
            .header
    })
}

fuzz_target!(|json: &[u8]| {
    let Ok(tokenizer) = Tokenizer::from_tokenizer_json(json, header()) else { return };
    if let Ok(ids) = tokenizer.encode("Hello world! 日本語 <|begin_of_text|>", true, true) {
        let _ = tokenizer.decode(&ids);
    }
});
