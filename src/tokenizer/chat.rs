use serde::Serialize;

use super::{Result, TokenizerError};

#[derive(Clone, Debug, Serialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage { role: role.into(), content: content.into() }
    }
}

/// Renders a Hugging Face chat template (Jinja) the way `transformers` does: with `messages`,
/// `add_generation_prompt`, `bos_token`, `eos_token`, `raise_exception` and Python's string
/// methods.
pub(super) fn render(
    template: &str,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |message: String| -> std::result::Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message))
    });
    let template_error = |e: minijinja::Error| TokenizerError::Template(e.to_string());
    env.add_template("chat", template).map_err(template_error)?;
    env.get_template("chat")
        .map_err(template_error)?
        .render(minijinja::context! {
            messages => minijinja::Value::from(minijinja::value::Serde(messages)),
            add_generation_prompt => add_generation_prompt,
            bos_token => bos_token,
            eos_token => eos_token,
        })
        .map_err(template_error)
}
