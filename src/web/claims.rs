//! The claim tasks and SePO token rewards on an [`Engine`], as `glassbox classify` and
//! `glassbox token-rewards` run them natively.

use std::collections::BTreeMap;
use std::rc::Rc;

use wasm_bindgen::prelude::*;

use super::engine::{stream_to, Engine};
use super::task::Task;
use super::{js_error, options, to_js, ErrorName};
use crate::interp::rewards::{check_shared_tokenizer, token_rewards};
use crate::tasks::affect::{Empath, Vader};
use crate::tasks::embed::MiniLm;
use crate::tasks::index::Index;
use crate::tasks::nrc::Nrc;
use crate::tasks::pipeline::{Choices, Classifier, Input, Lexicons, QueryEmbedder, Retrieval};
use crate::tasks::templates::Table;
use crate::with_model;

/// The model's file name, which `classify` needs beside its [`Choices`]: an index built with
/// `--embedder llm` records it.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ModelName {
    model_name: Option<String>,
}

fn task_error(e: impl std::fmt::Display) -> JsValue {
    js_error(ErrorName::TaskError, e)
}

/// `{ id?, domain?, <field>: text, ... }` as a task input; every field the task names must be
/// there.
fn parse_input(value: JsValue, task: &crate::tasks::templates::Task) -> Result<Input, JsValue> {
    let mut fields: BTreeMap<String, String> = options(value)?;
    let id = fields.remove("id").unwrap_or_default();
    let domain = fields.remove("domain");
    if let Some(missing) = task.fields.iter().find(|f| !fields.contains_key(f.as_str())) {
        return Err(js_error(ErrorName::InputError, format!("task {:?} needs the field {missing:?}", task.name)));
    }
    Ok(Input { id, fields, domain })
}

#[wasm_bindgen]
impl Engine {
    /// The lexicons the affect features read: VADER's `vader_lexicon.txt` and
    /// `emoji_utf8_lexicon.txt`, Empath's categories TSV, and optionally NRC's JSON (for research
    /// and non-commercial use only).
    #[wasm_bindgen(js_name = useLexicons)]
    pub fn use_lexicons(&self, vader: &str, emoji: &str, empath: &str, nrc: Option<String>) -> Result<(), JsValue> {
        let lexicons = Lexicons {
            vader: Vader::new(vader, emoji).map_err(task_error)?,
            empath: Empath::new(empath).map_err(task_error)?,
            nrc: nrc.map(|json| Nrc::new(&json)).transpose().map_err(task_error)?,
        };
        self.resources.lexicons.replace(Some(Rc::new(lexicons)));
        Ok(())
    }

    /// all-MiniLM-L6-v2 (`model.safetensors`, `tokenizer.json`, `config.json`), which indexes
    /// built with `--embedder minilm` are queried with.
    #[wasm_bindgen(js_name = useEmbedder)]
    pub fn use_embedder(&self, safetensors: Vec<u8>, tokenizer_json: &[u8], config_json: &[u8]) -> Result<(), JsValue> {
        let minilm = MiniLm::load(safetensors, tokenizer_json, config_json).map_err(task_error)?;
        self.resources.minilm.replace(Some(Rc::new(minilm)));
        Ok(())
    }

    /// A task classifying `input` with the built-in task `task` (`fmd`, `conspiracy`, `pheme`,
    /// ...) or a task given as JSON, resolving to `classify`'s output row: `{ id, label, probs,
    /// explanation?, evidence?, affect?, retrieved? }`. With `index` (a `.gbx` file's bytes) the
    /// prompt is RAEmoLLM's few-shot prompt of retrieved examples. `onText(piece)` receives the
    /// explanation as it is generated.
    pub fn classify(
        &self,
        task: &str,
        input: JsValue,
        options: JsValue,
        index: Option<Vec<u8>>,
        on_text: Option<js_sys::Function>,
    ) -> Result<Task, JsValue> {
        let choices: Choices = self::options(options.clone())?;
        let model_name = self::options::<ModelName>(options)?.model_name.unwrap_or_default();
        let table = Table::builtin();
        let task = match task.trim_start().starts_with('{') {
            true => Table::parse_task(task).map_err(task_error)?,
            false => table.task(task).cloned().map_err(task_error)?,
        };
        let input = parse_input(input, &task)?;
        let index = index.map(|bytes| Index::from_bytes(&bytes)).transpose().map_err(task_error)?;
        let (options, embedder) =
            choices.check(&task, index.as_ref(), &model_name).map_err(|e| js_error(ErrorName::InputError, e))?;
        let lexicons = match choices.affect {
            true => Some(self.resources.lexicons.borrow().clone().ok_or_else(|| {
                js_error(ErrorName::InputError, "affect features need the lexicons: call useLexicons first")
            })?),
            false => None,
        };
        let minilm = match embedder {
            Some(QueryEmbedder::MiniLm) => Some(self.resources.minilm.borrow().clone().ok_or_else(|| {
                js_error(ErrorName::InputError, "this index was built with MiniLM: call useEmbedder first")
            })?),
            _ => None,
        };
        let state = Rc::clone(&self.state);
        Ok(Task::new(move || {
            state.compute(|loaded| {
                with_model!(loaded, loaded => {
                    let mut classifier = Classifier::new(&loaded.model, &loaded.tokenizer, &table, &task, options.clone());
                    classifier.lexicons = lexicons.as_deref();
                    classifier.retrieval = index.as_ref().map(|index| Retrieval::new(index, minilm.as_deref()));
                    let mut stream = |piece: &str| stream_to(&on_text, piece);
                    to_js(&classifier.run(&input, &mut stream).map_err(task_error)?)
                })
            })
        }))
    }

    /// A task resolving to SePO's token rewards of `response` after `prompt`, with this model as
    /// the oracle and `reference` as the reference: `token-rewards --json`'s object (`k`,
    /// `rejected`, `selected_count`, `tokens`). Both models must share a tokenizer.
    #[wasm_bindgen(js_name = tokenRewards)]
    pub fn token_rewards(
        &self,
        reference: &Engine,
        prompt: &str,
        response: &str,
        k: f32,
        rejected: bool,
    ) -> Result<Task, JsValue> {
        let tokenizer = |e| js_error(ErrorName::TokenizerError, e);
        let prompt = self.state.tokenizer().encode(prompt, true, true).map_err(tokenizer)?;
        let response = self.state.tokenizer().encode(response, false, false).map_err(tokenizer)?;
        let (oracle, reference) = (Rc::clone(&self.state), Rc::clone(&reference.state));
        Ok(Task::new(move || {
            oracle.compute(|oracle_model| {
                reference.compute(|reference_model| {
                    with_model!(oracle_model, o => with_model!(reference_model, r => {
                        let interp = |e| js_error(ErrorName::InterpError, e);
                        check_shared_tokenizer((&o.model, &o.tokenizer), (&r.model, &r.tokenizer)).map_err(interp)?;
                        to_js(&token_rewards(&o.model, &r.model, &o.tokenizer, &prompt, &response, k, rejected).map_err(interp)?)
                    }))
                })
            })
        }))
    }
}
