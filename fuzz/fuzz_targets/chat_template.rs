//! A chat template from a model file's metadata, rendered over a two-turn conversation.
#![no_main]

use glassbox::tokenizer::{render_chat_template, ChatMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|template: &[u8]| {
    let Ok(template) = std::str::from_utf8(template) else { return };
    let messages = [ChatMessage::new("system", "Be brief."), ChatMessage::new("user", "What is 2+2?")];
    let _ = render_chat_template(template, &messages, true, "<s>", "</s>");
});
