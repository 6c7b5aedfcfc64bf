//! The GGUF tokenizer against llama.cpp's tokenisation of the same file
//! (tests/reference/llamacpp_tokenize.py): SmolLM2's real vocabulary (`smollm` pre-tokenizer),
//! Gemma 3's (SentencePiece, 262k tokens with byte fallback), and small vocabularies written by scripts/make_tokenizer_fixtures.py for the `llama-bpe`,
//! `qwen2` and `gpt-2` pre-tokenizers and a SentencePiece `llama` vocabulary.

use crate::common;

use glassbox::gguf::GgufFile;
use glassbox::tokenizer::{ChatMessage, Tokenizer};

fn smollm2() -> Tokenizer {
    let file = GgufFile::open(common::model_path(common::SMOLLM2)).unwrap();
    Tokenizer::from_gguf(&file.header).unwrap()
}

fn fixture(name: &str) -> Tokenizer {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("{name}.gguf"));
    Tokenizer::from_gguf(&GgufFile::open(path).unwrap().header).unwrap()
}

#[test]
fn smollm2_ids_equal_llama_cpp() {
    assert_ids_equal_llama_cpp(&smollm2(), "smollm2-tokenize-llamacpp.json");
}

#[test]
fn gemma3_ids_equal_llama_cpp() {
    let file = GgufFile::open(common::model_path(common::GEMMA3)).unwrap();
    assert_ids_equal_llama_cpp(&Tokenizer::from_gguf(&file.header).unwrap(), "gemma3-270m-tokenize-llamacpp.json");
}

#[test]
fn llama_bpe_ids_equal_llama_cpp() {
    assert_ids_equal_llama_cpp(&fixture("vocab-llama-bpe"), "vocab-llama-bpe-tokenize-llamacpp.json");
}

#[test]
fn qwen2_ids_equal_llama_cpp() {
    assert_ids_equal_llama_cpp(&fixture("vocab-qwen2"), "vocab-qwen2-tokenize-llamacpp.json");
}

#[test]
fn gpt2_ids_equal_llama_cpp() {
    assert_ids_equal_llama_cpp(&fixture("vocab-gpt2"), "vocab-gpt2-tokenize-llamacpp.json");
}

#[test]
fn sentencepiece_ids_equal_llama_cpp() {
    assert_ids_equal_llama_cpp(&fixture("vocab-spm"), "vocab-spm-tokenize-llamacpp.json");
}

fn assert_ids_equal_llama_cpp(tokenizer: &Tokenizer, reference: &str) {
    let reference = common::reference(reference);
    let cases = reference["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect()
    };
    let mut mismatches = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        for (parse_special, key) in [(true, "ids_special"), (false, "ids_plain")] {
            let ours = tokenizer.encode(text, false, parse_special).unwrap();
            if ours != ids(&case[key]) {
                mismatches.push(format!("{text:?} ({key}): ours {ours:?}, llama.cpp {:?}", ids(&case[key])));
            }
        }
    }
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
    // Whether BOS is added follows the file (SmolLM2: no; the SentencePiece vocabulary: yes).
    assert_eq!(tokenizer.encode("", true, true).unwrap(), ids(&reference["bos_with_add_bos"]));
}

#[test]
fn decoding_restores_the_text() {
    let tokenizer = smollm2();
    for text in ["Hello world", "日本語 😀 emoji", "  spaced\n\ttext ", "<|im_start|>user\nhi<|im_end|>"] {
        let ids = tokenizer.encode(text, false, true).unwrap();
        assert_eq!(tokenizer.decode(&ids).unwrap(), text);
    }
    assert!(tokenizer.decode(&[49152]).is_err());
}

#[test]
fn the_chat_template_renders_as_transformers_would() {
    let tokenizer = smollm2();
    let text = tokenizer.apply_chat_template(&[ChatMessage::new("user", "What is 2+2?")], true).unwrap();
    // The template of SmolLM2-Instruct, worked through by hand: a default system message, the
    // user turn, and the assistant header for add_generation_prompt.
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn text_past_the_cap_is_refused_before_tokenising() {
    use glassbox::tokenizer::{TokenizerError, MAX_TEXT_BYTES};
    let tokenizer = smollm2();
    let long = "word ".repeat(2_000_000);
    assert!(matches!(
        tokenizer.encode(&long, true, false),
        Err(TokenizerError::TextTooLong { bytes: 10_000_000, max: MAX_TEXT_BYTES })
    ));
    assert!(matches!(tokenizer.encode_with_offsets(&long, true, false), Err(TokenizerError::TextTooLong { .. })));
    // At the cap itself the text still tokenises: one token per " word" after the first.
    let at_cap = "word ".repeat(MAX_TEXT_BYTES / 5);
    assert_eq!(tokenizer.encode(at_cap.trim_end(), false, false).unwrap().len(), MAX_TEXT_BYTES / 5);
}

/// Inputs on which the `tokenizers` crate's own parser panics (found by fuzzing): a decoder that
/// is not well-formed JSON, and a Precompiled normalizer without its character map, alone or in
/// a sequence. Each is a typed error.
#[test]
fn tokenizer_json_that_panics_the_parser_is_refused() {
    use glassbox::tokenizer::TokenizerError;
    let header = GgufFile::open(common::model_path(common::SMOLLM2)).unwrap().header;
    let minimal = |normalizer: &str, decoder: &str| {
        format!(
            r#"{{"version":"1.0","normalizer":{normalizer},"pre_tokenizer":null,"post_processor":null,
               "decoder":{decoder},"model":{{"type":"WordLevel","vocab":{{"a":0,"b":1,"c":2,"[UNK]":3}},"unk_token":"[UNK]"}}}}"#
        )
    };
    let well_formed = minimal("null", "null");
    let accepted = Tokenizer::from_tokenizer_json(well_formed.as_bytes(), &header);
    assert!(accepted.is_ok(), "{:?}", accepted.err());
    for broken in [
        minimal("null", r#"{":type""WordPiece"}"#),
        minimal(r#"{"type":"Precompiled"}"#, "null"),
        minimal(r#"{"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Precompiled"}]}"#, "null"),
    ] {
        let result = Tokenizer::from_tokenizer_json(broken.as_bytes(), &header);
        assert!(matches!(result, Err(TokenizerError::Build(_))), "{broken}: {:?}", result.err());
    }
}
