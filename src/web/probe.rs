//! Linear probes on an [`Engine`]: a probe `glassbox probe train` wrote, applied as `glassbox
//! probe apply` applies it.

use std::collections::BTreeMap;
use std::rc::Rc;

use wasm_bindgen::prelude::*;

use super::engine::Engine;
use super::task::Task;
use super::{js_error, options, to_js, ErrorName};
use crate::hooks::{HookPoint, DEFAULT_MAX_RECORDING_BYTES};
use crate::interp::probe::{features, Probe};
use crate::with_model;

#[wasm_bindgen]
impl Engine {
    /// A task resolving to `{ hook, label, probabilities: { [class]: p } }`: the probe in `file`
    /// (safetensors bytes) applied to the text its fields make of `fields` (an object of strings,
    /// as `classify` takes). A file that is not a probe, a hook this model lacks, a field the
    /// input lacks or a width that does not fit rejects with an `InputError`.
    pub fn probe(&self, file: &[u8], fields: JsValue) -> Result<Task, JsValue> {
        let probe = Probe::from_safetensors(file).map_err(|e| js_error(ErrorName::InputError, e))?;
        let fields: BTreeMap<String, String> = self::options(fields)?;
        let text = probe.text_of(&fields).map_err(|e| js_error(ErrorName::InputError, e))?;
        let ids =
            self.state.tokenizer().encode(&text, true, false).map_err(|e| js_error(ErrorName::TokenizerError, e))?;
        let state = Rc::clone(&self.state);
        Ok(Task::new(move || {
            state.compute(|loaded| {
                with_model!(loaded, loaded => {
                    let model = &loaded.model;
                    if !HookPoint::all(model.config().hook_shape()).contains(&probe.hook) {
                        let why = format!("the probe reads {}, which this model does not have", probe.hook);
                        return Err(js_error(ErrorName::InputError, why));
                    }
                    let prompts = std::slice::from_ref(&ids);
                    let recorded = features(model, prompts, &[probe.hook], probe.pooling, DEFAULT_MAX_RECORDING_BYTES)
                        .map_err(|e| js_error(ErrorName::InterpError, e))?;
                    let (x, width) = &recorded[0];
                    let logistic = &probe.logistic;
                    if *width != logistic.width {
                        let why = format!("{} has {width} values here; the probe reads {}", probe.hook, logistic.width);
                        return Err(js_error(ErrorName::InputError, why));
                    }
                    let probabilities = logistic.probabilities(x);
                    let by_class: BTreeMap<&str, f64> =
                        probe.classes.iter().map(String::as_str).zip(probabilities).collect();
                    to_js(&serde_json::json!({
                        "hook": probe.hook.to_string(),
                        "label": probe.classes[logistic.predict(x)],
                        "probabilities": by_class,
                    }))
                })
            })
        }))
    }
}
