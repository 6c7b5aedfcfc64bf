//! Activation patching on an [`Engine`], as `glassbox patch` runs it natively.

use std::rc::Rc;

use wasm_bindgen::prelude::*;

use super::engine::{go_on_after, Engine};
use super::task::Task;
use super::{js_error, options, to_js, ErrorName};
use crate::interp::patching::{activation_patching, PatchSite, PatchingMethod};
use crate::interp::InterpError;
use crate::with_model;

/// `patch`'s options: `{ site: "resid_pre" | "attn_out" | "mlp_out" | "head", method: "exact" |
/// "attribution" | "both" }` (resid_pre and both by default).
#[derive(serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct PatchOptions {
    site: Option<String>,
    method: Option<String>,
}

#[wasm_bindgen]
impl Engine {
    /// A task resolving to `glassbox patch --json`'s output for the same prompts and answers
    /// (`interp::patching::PatchingReport`): `grid[layer][position]`, or `grid[layer][head]` for the
    /// `head` site, and its first-order estimate `attribution_grid` with their `correlation`. `onProgress(done, total)` is told the forward passes made after each;
    /// returning `false` (or throwing) stops the task with an `InterpError`.
    pub fn patch(
        &self,
        clean: &str,
        corrupt: &str,
        answer: &str,
        wrong: &str,
        options: JsValue,
        on_progress: Option<js_sys::Function>,
    ) -> Result<Task, JsValue> {
        let given: PatchOptions = self::options(options)?;
        let site = match given.site.as_deref() {
            None | Some("resid_pre") => PatchSite::ResidPre,
            Some("attn_out") => PatchSite::AttnOut,
            Some("mlp_out") => PatchSite::MlpOut,
            Some("head") => PatchSite::Head,
            Some(other) => {
                return Err(js_error(
                    ErrorName::InputError,
                    format!("site {other:?}: expected resid_pre, attn_out, mlp_out or head"),
                ))
            }
        };
        let method = match given.method.as_deref() {
            None | Some("both") => PatchingMethod::Both,
            Some("exact") => PatchingMethod::Exact,
            Some("attribution") => PatchingMethod::Attribution,
            Some(other) => {
                return Err(js_error(
                    ErrorName::InputError,
                    format!("method {other:?}: expected exact, attribution or both"),
                ))
            }
        };
        let tokenizer = self.state.tokenizer();
        let encode =
            |text: &str| tokenizer.encode(text, true, true).map_err(|e| js_error(ErrorName::TokenizerError, e));
        let (clean_ids, corrupt_ids) = (encode(clean)?, encode(corrupt)?);
        let one_token = |what: &str, text: &str| {
            tokenizer.single_token(text).map_err(|e| js_error(ErrorName::TokenizerError, format!("{what}: {e}")))
        };
        let (answer_id, wrong_id) = (one_token("the answer", answer)?, one_token("the wrong answer", wrong)?);
        let texts = |ids: &[u32]| tokenizer.token_texts(ids).map_err(|e| js_error(ErrorName::TokenizerError, e));
        let (tokens, corrupt_tokens) = (texts(&clean_ids)?, texts(&corrupt_ids)?);
        let (answer, wrong) = (answer.to_string(), wrong.to_string());
        let state = Rc::clone(&self.state);
        Ok(Task::new(move || {
            state.compute(|loaded| {
                let mut go_on = |done: usize, total: usize| go_on_after(&on_progress, done, total);
                let patched = with_model!(loaded, loaded => {
                    activation_patching(&loaded.model, site, method, &clean_ids, &corrupt_ids, answer_id, wrong_id, &mut go_on)
                })
                .map_err(|e| match e {
                    InterpError::Model(model) => super::engine::model_error(model),
                    other => js_error(ErrorName::InterpError, other),
                })?;
                to_js(&patched.report(&tokens, &corrupt_tokens, &answer, &wrong))
            })
        }))
    }
}
