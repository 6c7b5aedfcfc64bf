//! EMPEC's exam on an [`Engine`], as `glassbox exam` runs it natively.

use std::rc::Rc;

use wasm_bindgen::prelude::*;

use super::engine::{stream_to, Engine};
use super::task::Task;
use super::{js_error, options, to_js, ErrorName};
use crate::tasks::exam::{answer, report, ExamReply, Question, DEFAULT_MAX_NEW_TOKENS};
use crate::tasks::pipeline::Mode;
use crate::with_model;

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct ExamOptions {
    /// `generate` (the default) or `score`.
    mode: Option<String>,
    max_new_tokens: Option<usize>,
}

#[wasm_bindgen]
impl Engine {
    /// A task answering one exam question, given as a JSONL row (`{ id, question, answer?,
    /// profession?, subject?, language?, options? }`), resolving to `glassbox exam`'s output row.
    /// `onText(piece)` receives the reply as it is generated.
    pub fn exam(&self, row: &str, options: JsValue, on_text: Option<js_sys::Function>) -> Result<Task, JsValue> {
        let choices: ExamOptions = self::options(options)?;
        let mode = match choices.mode.as_deref() {
            None => Mode::Generate,
            Some(name) => Mode::from_name(name)
                .ok_or_else(|| js_error(ErrorName::InputError, format!("mode {name:?}: expected generate or score")))?,
        };
        let max_new_tokens = choices.max_new_tokens.unwrap_or(DEFAULT_MAX_NEW_TOKENS);
        let question = Question::from_row(row).map_err(|e| js_error(ErrorName::InputError, e))?;
        let state = Rc::clone(&self.state);
        Ok(Task::new(move || {
            state.compute(|loaded| {
                with_model!(loaded, loaded => {
                    let mut stream = |piece: &str| stream_to(&on_text, piece);
                    let reply = answer(&loaded.model, &loaded.tokenizer, &question, mode, max_new_tokens, &mut stream)
                        .map_err(|e| js_error(ErrorName::TaskError, e))?;
                    to_js(&reply)
                })
            })
        }))
    }
}

/// The accuracy table of exam replies (as `Engine.exam` returns them): overall, per
/// profession and per subject, with the normalised reading beside the faithful one.
#[wasm_bindgen(js_name = examReport)]
pub fn exam_report(replies: JsValue) -> Result<JsValue, JsValue> {
    let replies: Vec<ExamReply> =
        serde_wasm_bindgen::from_value(replies).map_err(|e| js_error(ErrorName::InputError, e))?;
    to_js(&report(&replies.iter().filter_map(ExamReply::scored).collect::<Vec<_>>()))
}
