//! LLE: the language model's own accuracy on real test rows with synthetic rows as its examples.
//! HARMONIC fine-tunes an LLM on the synthetic rows (`scripts/pre_llmeval_ft.py`); here the
//! rows are given in context instead: for each test row, the `k` synthetic rows nearest to it
//! (its features standardised and one-hot as in encode.rs, the label left out) are the examples
//! of HARMONIC's prompt, then the test row without its label, and the classes are scored as the
//! continuation after the row's JSON up to the label's value (sharing the prompt's KV cache); the
//! most probable class is the prediction.

use serde::Serialize;

use super::encode::Encoder;
use super::synth::{Schema, NUMBER_WORDS};
use super::table::Table;
use super::{Result, TabularError};
use crate::backend::Backend;
use crate::generate::score_continuations;
use crate::model::Model;
use crate::tokenizer::Tokenizer;

/// Examples per test row.
pub const EXAMPLES: usize = 5;

#[derive(Clone, Debug, Serialize)]
pub struct LanguageModelEfficiency {
    pub accuracy: f64,
    pub test_rows: usize,
    /// Each test row's predicted class.
    pub predictions: Vec<String>,
}

/// The prompt for `row` of `test` after `examples` (rows of the synthetic table).
fn prompt(schema: &Schema, synthetic: &Table, examples: &[usize], row: &[String]) -> String {
    let table = schema.table;
    let label = &table.columns[schema.label];
    let mut text = format!(
        "Here are {} tabular data about {}, each containing {} columns of features and 1 column of labels, where \
         the {label} column is a {} label. I will transmit the data to you in JSON format.\n",
        examples.len(),
        schema.description,
        table.columns.len() - 1,
        schema.task_type,
    );
    for (i, &e) in examples.iter().enumerate() {
        text.push_str(&format!("Example {}: {}\n", NUMBER_WORDS[i], schema.row_json(&synthetic.rows[e])));
    }
    let full = schema.row_json(row);
    // The row's JSON up to the label's value, which the model is asked for.
    let open = full.rfind(": \"").map_or(full.len(), |at| at + 3);
    text.push_str(&format!("Complete this sample: {}", &full[..open]));
    text
}

/// `schema` describes the real table; `synthetic` and `test` share its columns.
pub fn language_model_efficiency<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    schema: &Schema,
    synthetic: &Table,
    test: &Table,
    mut on_row: impl FnMut(usize),
) -> Result<LanguageModelEfficiency> {
    if !schema.is_classification() {
        return Err(TabularError::BadInput("LLE scores a class label; this label is a regression target".into()));
    }
    if synthetic.rows.is_empty() {
        return Err(TabularError::BadInput("there are no synthetic rows to use as examples".into()));
    }
    let real = schema.table;
    let classes = real.categories(schema.label);
    let encoder = Encoder::fit(real, synthetic, Some(schema.label));
    let (examples_space, test_space) = (encoder.transform(synthetic), encoder.transform(test));
    let candidates: Vec<Vec<u32>> = classes
        .iter()
        .map(|c| tokenizer.encode(&format!("{c}\""), false, false))
        .collect::<std::result::Result<_, _>>()?;
    let mut predictions = Vec::with_capacity(test.rows.len());
    let mut correct = 0;
    for (r, row) in test.rows.iter().enumerate() {
        let mut nearest: Vec<(usize, f64)> = examples_space
            .iter()
            .enumerate()
            .map(|(i, e)| (i, e.iter().zip(&test_space[r]).map(|(a, b)| (a - b) * (a - b)).sum::<f64>()))
            .collect();
        nearest.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let examples: Vec<usize> = nearest.iter().take(EXAMPLES).map(|&(i, _)| i).collect();
        let ids = tokenizer.encode(&prompt(schema, synthetic, &examples, row), true, false)?;
        let context = model.config().context_length;
        if ids.len() + candidates.iter().map(Vec::len).max().unwrap_or(0) > context {
            return Err(TabularError::TooLong { tokens: ids.len(), context });
        }
        let scores = score_continuations(model, &ids, &candidates, &[])?;
        let best = (0..classes.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(b.cmp(&a))).unwrap_or(0);
        correct += usize::from(classes[best] == row[schema.label]);
        predictions.push(classes[best].clone());
        on_row(r);
    }
    Ok(LanguageModelEfficiency {
        accuracy: correct as f64 / test.rows.len() as f64,
        test_rows: test.rows.len(),
        predictions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_stops_where_the_label_value_begins() {
        let real = Table::parse_csv("x,c,y\n1,a,0\n2,b,1\n3,a,0\n").unwrap();
        let schema = Schema::new(&real, "y", "points").unwrap();
        let synthetic = real.with_rows(vec![real.rows[2].clone(), real.rows[0].clone()]);
        let text = prompt(&schema, &synthetic, &[1, 0], &real.rows[1]);
        assert_eq!(
            text,
            "Here are 2 tabular data about points, each containing 2 columns of features and 1 column of labels, \
             where the y column is a binary classification label. I will transmit the data to you in JSON format.\n\
             Example one: {\"x\": \"1\", \"c\": \"a\", \"y\": \"0\"}\n\
             Example two: {\"x\": \"3\", \"c\": \"a\", \"y\": \"0\"}\n\
             Complete this sample: {\"x\": \"2\", \"c\": \"b\", \"y\": \""
        );
    }
}
