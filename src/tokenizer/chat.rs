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

/// Work a template may do besides copying the messages: one fuel is one instruction or 64 bytes
/// produced, so this allows a million instructions or 64 MB of strings, and real templates (a few
/// hundred instructions per message) stay far below it.
const TEMPLATE_FUEL: u64 = 1_000_000;

/// Fuel per byte of the messages: enough for a template to copy, trim and escape each message
/// dozens of times over, and no more.
const FUEL_PER_MESSAGE_BYTE: u64 = 1;

/// Renders a Hugging Face chat template (Jinja) the way `transformers` does: with `messages`,
/// `add_generation_prompt`, `bos_token`, `eos_token`, `raise_exception` and Python's string
/// methods.
///
/// A template comes from the model file, so it is untrusted: its instructions and every byte it
/// produces (strings built in loops, doubled, repeated) draw on one fuel budget sized by the
/// messages, and running out is [`TokenizerError::Template`] rather than a hang or an abort.
pub fn render(
    template: &str,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<String> {
    let mut env = minijinja::Environment::new();
    let message_bytes: usize = messages.iter().map(|m| m.role.len() + m.content.len()).sum();
    env.set_fuel(Some(TEMPLATE_FUEL.saturating_add((message_bytes as u64).saturating_mul(FUEL_PER_MESSAGE_BYTE))));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn render_one(template: &str, content: &str) -> Result<String> {
        render(template, &[ChatMessage::new("user", content)], true, "<s>", "</s>")
    }

    fn assert_out_of_fuel(template: &str) {
        match render_one(template, "hi") {
            Err(TokenizerError::Template(message)) => assert!(message.contains("fuel"), "{message}"),
            other => panic!("expected the template to run out of fuel, got {other:?}"),
        }
    }

    #[test]
    fn nested_loops_run_out_of_fuel_instead_of_hanging() {
        assert_out_of_fuel("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}");
    }

    #[test]
    fn repeated_large_strings_run_out_of_fuel_before_they_are_allocated() {
        assert_out_of_fuel("{% for i in range(100) %}{{ 'a' * 100000000 }}{% endfor %}");
        assert_out_of_fuel("{% for i in range(100000) %}{{ 'a' * 99999999 }}{% endfor %}");
    }

    #[test]
    fn a_string_doubled_forty_times_runs_out_of_fuel() {
        let doubling = "{% set s = s ~ s %}".repeat(40);
        assert_out_of_fuel(&format!("{{% set s = 'ab' %}}{doubling}{{{{ s | length }}}}"));
        assert_out_of_fuel(
            "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        );
    }

    #[test]
    fn a_long_message_still_renders_through_a_template_that_copies_it() {
        // A 20 MB message through a template that trims and copies it twice: the budget grows
        // with the messages.
        let content = "word ".repeat(4_000_000);
        let template = "{% for m in messages %}{{ m.role }}: {{ m.content | trim }}|{{ m.content }}{% endfor %}";
        let text = render_one(template, &content).unwrap();
        assert_eq!(text.len(), "user: ".len() + content.trim().len() + 1 + content.len());
    }
}
