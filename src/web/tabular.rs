//! HARMONIC in the browser: tables read, resampled and compared without a model, and synthesis on an
//! [`Engine`], as `glassbox harmonic` runs them natively. The table never leaves the page.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use super::engine::Engine;
use super::task::Task;
use super::{js_error, options, to_js, ErrorName};
use crate::tabular::evaluate::report;
use crate::tabular::synth::{resample, smote, synthesise, Attempt, Schema, SynthesisOptions, TEMPERATURE};
use crate::tabular::table::{Kind, Table};
use crate::with_model;

fn input_error(e: impl std::fmt::Display) -> JsValue {
    js_error(ErrorName::InputError, e)
}

fn parse(csv: &str) -> Result<Table, JsValue> {
    Table::parse_csv(csv).map_err(input_error)
}

#[derive(Serialize)]
struct TableView<'t> {
    columns: &'t [String],
    kinds: &'t [Kind],
    rows: &'t [Vec<String>],
}

/// `{ columns, kinds: ("numeric" | "categorical")[], rows: string[][] }`, or an `InputError`
/// saying what is wrong with the CSV (ragged rows, an empty cell, a missing name, the size).
#[wasm_bindgen(js_name = readTable)]
pub fn read_table(csv: &str) -> Result<JsValue, JsValue> {
    let table = parse(csv)?;
    to_js(&TableView { columns: &table.columns, kinds: &table.kinds, rows: &table.rows })
}

/// A baseline's synthetic table as CSV: `smote` (within neighbour groups) or `resample`.
#[wasm_bindgen(js_name = tableBaseline)]
pub fn table_baseline(csv: &str, label: &str, method: &str, n: u32, seed: u32) -> Result<String, JsValue> {
    let table = parse(csv)?;
    let schema = Schema::new(&table, label, "").map_err(input_error)?;
    let rows = match method {
        "smote" => smote(&schema, n as usize, u64::from(seed)).map_err(input_error)?,
        "resample" => resample(&table, n as usize, u64::from(seed)),
        other => return Err(input_error(format!("method {other:?}: expected smote or resample"))),
    };
    Ok(table.with_rows(rows).to_csv())
}

/// `harmonic evaluate`'s report of `synthetic` against `real` (and, with `test`, the
/// classifiers' accuracy on it).
#[wasm_bindgen(js_name = evaluateTable)]
pub fn evaluate_table(
    real: &str,
    synthetic: &str,
    label: &str,
    test: Option<String>,
    seed: u32,
) -> Result<JsValue, JsValue> {
    let (real, synthetic) = (parse(real)?, parse(synthetic)?);
    let test = test.as_deref().map(parse).transpose()?;
    to_js(&report(&real, &synthetic, label, test.as_ref(), u64::from(seed)).map_err(input_error)?)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct SynthesisRequest {
    label: String,
    n: usize,
    seed: u64,
    description: String,
    first_attempt: usize,
    max_attempts: Option<usize>,
    chat: bool,
    temperature: Option<f32>,
}

#[derive(Serialize)]
struct Synthesised {
    rows: Vec<Vec<String>>,
    attempts: Vec<Attempt>,
}

/// The most prompts one call makes: a page asks again for more, so that it can show progress
/// and stop between calls.
const MAX_ATTEMPTS_PER_CALL: usize = 10_000;

#[wasm_bindgen]
impl Engine {
    /// A task writing up to `n` rows like the table's (`harmonic generate`): `{ label, n, seed?,
    /// description?, firstAttempt?, maxAttempts? (4 × n), chat?, temperature? (0.7) }`, resolving
    /// to `{ rows, attempts }`; `onAttempt(attempt)` sees each prompt's reply as it ends. Calls
    /// with consecutive `firstAttempt`s continue one seeded sequence.
    pub fn synthesise(
        &self,
        csv: &str,
        request: JsValue,
        on_attempt: Option<js_sys::Function>,
    ) -> Result<Task, JsValue> {
        let request: SynthesisRequest = options(request)?;
        let table = parse(csv)?;
        let max_attempts = request.max_attempts.unwrap_or(request.n.saturating_mul(4));
        if max_attempts > MAX_ATTEMPTS_PER_CALL {
            return Err(input_error(format!("{max_attempts} prompts in one call; at most {MAX_ATTEMPTS_PER_CALL}")));
        }
        let options = SynthesisOptions {
            seed: request.seed,
            temperature: request.temperature.unwrap_or(TEMPERATURE),
            max_attempts,
            chat: request.chat,
            first_attempt: request.first_attempt,
        };
        let state = Rc::clone(&self.state);
        Ok(Task::new(move || {
            let schema = Schema::new(&table, &request.label, &request.description).map_err(input_error)?;
            state.compute(|loaded| {
                with_model!(loaded, loaded => {
                    let synthesis = synthesise(&loaded.model, &loaded.tokenizer, &schema, request.n, &options, |attempt, _| {
                        if let (Some(callback), Ok(value)) = (&on_attempt, to_js(attempt)) {
                            // The callback is a view: one that throws must not fail the task.
                            let _ = callback.call1(&JsValue::NULL, &value);
                        }
                        true
                    })
                    .map_err(|e| js_error(ErrorName::TaskError, e))?;
                    to_js(&Synthesised { rows: synthesis.rows, attempts: synthesis.attempts })
                })
            })
        }))
    }
}
