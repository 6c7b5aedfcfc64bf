//! The GGUF tokenizer against llama.cpp's tokenisation of the same file
//! (tests/reference/llamacpp_tokenize.py).

mod common;

use glassbox::gguf::GgufFile;
use glassbox::tokenizer::{ChatMessage, Tokenizer};

fn smollm2() -> Tokenizer {
    let file = GgufFile::open(common::model_path(common::SMOLLM2)).unwrap();
    Tokenizer::from_gguf(&file.header).unwrap()
}

#[test]
fn ids_equal_llama_cpp_on_every_golden_string() {
    let tokenizer = smollm2();
    let reference = common::reference("smollm2-tokenize-llamacpp.json");
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
    // SmolLM2 asks for no BOS, so llama.cpp adds none to an empty text either.
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
    let text = tokenizer
        .apply_chat_template(&[ChatMessage::new("user", "What is 2+2?")], true)
        .unwrap();
    // The template of SmolLM2-Instruct, worked through by hand: a default system message, the
    // user turn, and the assistant header for add_generation_prompt.
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    );
}
