//! HARMONIC's synthesis: for an anchor row, its neighbour group as JSON examples in the paper's
//! prompt, one sampled reply (temperature 0.7), parsed back into a row of the table's schema.
//! A reply that is not one JSON object with exactly the table's columns, or has a number column
//! that is not a number or a value outside a categorical column's (or a class label's) real
//! values, is rejected and counted, never repaired. Two baselines draw from the same table:
//! SMOTE within the neighbour groups and plain resampling of real rows.
//!
//! The prompt is `scripts/preprocess_data.py`'s `process` (sample_format "dict") word for word:
//! the columns in the table's order with the label moved last, every value a JSON string as the
//! CSV writes it. HARMONIC writes values between quotes without escaping them; here they are
//! JSON-escaped, which differs only for a value holding `"` or `\`. The anchor itself is not
//! shown: its five neighbours are the examples, as in HARMONIC's training instructions, where
//! the model learns to write a row like the one its neighbours surround.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::neighbours::{encoded_rows, nearest, GROUP_NEIGHBOURS};
use super::table::{number, Kind, Table};
use super::{Result, TabularError};
use crate::backend::Backend;
use crate::generate::{generate, GenerateRequest, Sampling};
use crate::model::Model;
use crate::numeric::Rng;
use crate::tokenizer::{ChatMessage, Tokenizer};

/// The paper's sampling temperature.
pub const TEMPERATURE: f32 = 0.7;

/// A label with at most this many distinct values is a class label.
pub const MAX_CLASSES: usize = 20;

pub(super) const NUMBER_WORDS: [&str; 9] = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];

/// What the prompt says about the table: its subject and the label's task.
#[derive(Clone, Debug)]
pub struct Schema<'t> {
    pub table: &'t Table,
    pub label: usize,
    /// The table's columns in the prompt's order: the features as they stand, then the label.
    pub order: Vec<usize>,
    /// HARMONIC's `des`: what the rows are about ("user credit scores").
    pub description: String,
    /// HARMONIC's `task_type`: "binary classification", "multiclass classification" or
    /// "regression".
    pub task_type: String,
    categories: Vec<Option<BTreeSet<String>>>,
    classes: Option<Vec<f64>>,
}

impl<'t> Schema<'t> {
    pub fn new(table: &'t Table, label: &str, description: &str) -> Result<Schema<'t>> {
        let label = table.column(label)?;
        if table.columns.len() < 2 {
            return Err(TabularError::BadInput("the table needs a label and at least one feature column".into()));
        }
        let order = (0..table.columns.len()).filter(|&c| c != label).chain([label]).collect();
        let distinct = table.categories(label).len();
        let task_type = match (table.kinds[label], distinct) {
            (_, 0..=2) => "binary classification",
            (Kind::Categorical, _) | (_, 3..=MAX_CLASSES) => "multiclass classification",
            _ => "regression",
        };
        let categories = (0..table.columns.len())
            .map(|c| (table.kinds[c] == Kind::Categorical).then(|| table.categories(c).into_iter().collect()))
            .collect();
        let classes = (table.kinds[label] == Kind::Numeric && task_type != "regression").then(|| {
            let mut values = table.numbers(label);
            values.sort_by(f64::total_cmp);
            values.dedup();
            values
        });
        Ok(Schema {
            table,
            label,
            order,
            description: description.to_string(),
            task_type: task_type.to_string(),
            categories,
            classes,
        })
    }

    pub fn is_classification(&self) -> bool {
        self.task_type != "regression"
    }

    /// A row as HARMONIC writes one: `{"name": "value", ...}` in the prompt's column order.
    pub fn row_json(&self, row: &[String]) -> String {
        let pairs: Vec<String> = self
            .order
            .iter()
            .map(|&c| format!("{}: {}", Value::from(self.table.columns[c].as_str()), Value::from(row[c].as_str())))
            .collect();
        format!("{{{}}}", pairs.join(", "))
    }

    /// The paper's prompt around `examples` (row numbers, at most nine).
    pub fn prompt(&self, examples: &[usize]) -> String {
        let n = examples.len();
        let last = &self.table.columns[self.label];
        let mut prompt = format!(
            "Here are {n} tabular data about {}, each containing {} columns of features and 1 column of labels, \
             where the {last} column is a {} label. I will transmit the data to you in JSON format. \
             Please generate an approximate sample based on these {n} examples.\n",
            self.description,
            self.table.columns.len() - 1,
            self.task_type,
        );
        for (i, &row) in examples.iter().enumerate() {
            prompt.push_str(&format!("Example {}: {}\n", NUMBER_WORDS[i], self.row_json(&self.table.rows[row])));
        }
        prompt.push_str("Generate one sample: ");
        prompt
    }

    /// The row a reply gives, in the table's column order, or why it is rejected.
    pub fn parse_reply(&self, reply: &str) -> std::result::Result<Vec<String>, Rejection> {
        let start = reply.find('{').ok_or(Rejection::NotJson)?;
        let end = reply[start..].find('}').ok_or(Rejection::NotJson)? + start;
        let object: serde_json::Map<String, Value> =
            serde_json::from_str(&reply[start..=end]).map_err(|_| Rejection::NotJson)?;
        let columns = &self.table.columns;
        if let Some(unknown) = object.keys().find(|k| !columns.contains(k)) {
            return Err(Rejection::UnknownColumn(unknown.clone()));
        }
        let mut row = Vec::with_capacity(columns.len());
        for (c, name) in columns.iter().enumerate() {
            let value = match object.get(name) {
                Some(Value::String(s)) => s.trim().to_string(),
                Some(Value::Number(n)) => n.to_string(),
                Some(_) => return Err(Rejection::NotAValue(name.clone())),
                None => return Err(Rejection::MissingColumn(name.clone())),
            };
            if value.is_empty() {
                return Err(Rejection::NotAValue(name.clone()));
            }
            match (&self.categories[c], self.table.kinds[c]) {
                (Some(known), _) if !known.contains(&value) => return Err(Rejection::UnknownCategory(name.clone())),
                (_, Kind::Numeric) => {
                    let v = number(&value).ok_or_else(|| Rejection::NotANumber(name.clone()))?;
                    if c == self.label && self.classes.as_ref().is_some_and(|classes| !classes.contains(&v)) {
                        return Err(Rejection::UnknownCategory(name.clone()));
                    }
                }
                _ => {}
            }
            row.push(value);
        }
        Ok(row)
    }
}

/// Why a reply gave no row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// No `{...}` that parses as one JSON object.
    NotJson,
    MissingColumn(String),
    UnknownColumn(String),
    /// A value that is neither a string nor a number, or empty.
    NotAValue(String),
    NotANumber(String),
    /// A value outside a categorical column's real values, or a class label that is not one.
    UnknownCategory(String),
}

impl Rejection {
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::NotJson => "not_json",
            Rejection::MissingColumn(_) => "missing_column",
            Rejection::UnknownColumn(_) => "unknown_column",
            Rejection::NotAValue(_) => "not_a_value",
            Rejection::NotANumber(_) => "not_a_number",
            Rejection::UnknownCategory(_) => "unknown_category",
        }
    }

    pub fn column(&self) -> Option<&str> {
        match self {
            Rejection::NotJson => None,
            Rejection::MissingColumn(c)
            | Rejection::UnknownColumn(c)
            | Rejection::NotAValue(c)
            | Rejection::NotANumber(c)
            | Rejection::UnknownCategory(c) => Some(c),
        }
    }
}

/// One prompt and what came of it.
#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    /// The anchor row (0-based, among the data rows) whose neighbours were the examples.
    pub anchor: usize,
    pub examples: Vec<usize>,
    pub reply: String,
    /// Why the reply was rejected; absent when it gave a row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
}

#[derive(Clone, Debug)]
pub struct SynthesisOptions {
    pub seed: u64,
    pub temperature: f32,
    /// Prompts to try before giving up on reaching `n` rows.
    pub max_attempts: usize,
    /// The prompt as the user's turn of the model's chat template (HARMONIC prompts without one).
    pub chat: bool,
    /// Where in the seeded sequence of anchors (and of sampling seeds) to start, so that a run
    /// done in parts gives the rows one run would.
    pub first_attempt: usize,
}

/// The rows accepted and every attempt.
#[derive(Clone, Debug)]
pub struct Synthesis {
    pub rows: Vec<Vec<String>>,
    pub attempts: Vec<Attempt>,
}

impl Synthesis {
    /// Rejections counted by reason.
    pub fn rejections(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for reason in self.attempts.iter().filter_map(|a| a.rejected) {
            *counts.entry(reason).or_default() += 1;
        }
        counts
    }
}

/// Anchors in a seeded order, each row once before any repeats.
fn anchor_order(rows: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows).collect();
    let mut rng = Rng(seed);
    for i in (1..rows).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    order
}

/// The table's rows as the kNN sees them, and the anchors in their seeded order.
fn groups(schema: &Schema, seed: u64) -> Result<(Vec<Vec<f64>>, Vec<usize>)> {
    let rows = schema.table.rows.len();
    if rows <= GROUP_NEIGHBOURS {
        return Err(TabularError::BadInput(format!(
            "the table has {rows} rows; a neighbour group needs at least {}",
            GROUP_NEIGHBOURS + 1
        )));
    }
    Ok((encoded_rows(schema.table, schema.label), anchor_order(rows, seed)))
}

/// Up to `n` synthetic rows from the model, one prompt per anchor; `on_attempt` sees each
/// attempt as it ends and may return false to stop.
pub fn synthesise<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    schema: &Schema,
    n: usize,
    options: &SynthesisOptions,
    mut on_attempt: impl FnMut(&Attempt, usize) -> bool,
) -> Result<Synthesis> {
    let table = schema.table;
    let (points, anchors) = groups(schema, options.seed)?;
    let mut synthesis = Synthesis { rows: Vec::new(), attempts: Vec::new() };
    for attempt in options.first_attempt..options.first_attempt.saturating_add(options.max_attempts) {
        if synthesis.rows.len() >= n {
            break;
        }
        let anchor = anchors[attempt % anchors.len()];
        let examples: Vec<usize> = nearest(&points, anchor, GROUP_NEIGHBOURS).into_iter().map(|(i, _)| i).collect();
        let prompt = schema.prompt(&examples);
        let (text, parse_special) = match options.chat {
            true => (tokenizer.apply_chat_template(&[ChatMessage::new("user", prompt)], true)?, true),
            false => (prompt, false),
        };
        let ids = tokenizer.encode(&text, true, parse_special)?;
        let context = model.config().context_length;
        let longest = examples.iter().map(|&e| schema.row_json(&table.rows[e]).len()).max().unwrap_or(0);
        // Every token is at least a byte, so a row as long as the longest example fits.
        let budget = (longest + 16).min(context.saturating_sub(ids.len()));
        if budget == 0 {
            return Err(TabularError::TooLong { tokens: ids.len(), context });
        }
        let request = GenerateRequest {
            max_tokens: budget,
            sampling: Sampling {
                temperature: options.temperature,
                seed: options.seed.wrapping_add(attempt as u64),
                ..Sampling::default()
            },
            ..GenerateRequest::default()
        };
        // The first `}` after a `{` closes the row: HARMONIC reads up to it.
        let generation = generate(model, tokenizer, &ids, &request, |_, so_far| {
            !so_far.find('{').is_some_and(|open| so_far[open..].contains('}'))
        })?;
        let outcome = schema.parse_reply(&generation.text);
        let record = Attempt {
            anchor,
            examples,
            reply: generation.text,
            rejected: outcome.as_ref().err().map(Rejection::reason),
            column: outcome.as_ref().err().and_then(Rejection::column).map(str::to_string),
        };
        if let Ok(row) = outcome {
            synthesis.rows.push(row);
        }
        let go_on = on_attempt(&record, synthesis.rows.len());
        synthesis.attempts.push(record);
        if !go_on {
            break;
        }
    }
    Ok(synthesis)
}

/// A value written as the column writes its values: whole numbers where every real value is
/// whole, else the shortest text that reads back as the same f64.
fn format_like(value: f64, whole: bool) -> String {
    if whole {
        format!("{}", value.round())
    } else {
        format!("{value}")
    }
}

/// SMOTE within the neighbour groups: for an anchor (in the same seeded order as the model's),
/// a neighbour from its group of the same label (the nearest such; any group member when none
/// shares it), and each numeric feature at `x + u·(y − x)` with one `u ~ U[0, 1)` per row; each
/// categorical feature from the anchor or that neighbour with equal odds; the label the anchor's.
pub fn smote(schema: &Schema, n: usize, seed: u64) -> Result<Vec<Vec<String>>> {
    let table = schema.table;
    let (points, anchors) = groups(schema, seed)?;
    let whole: Vec<bool> = (0..table.columns.len())
        .map(|c| table.kinds[c] == Kind::Numeric && table.numbers(c).iter().all(|v| v.fract() == 0.0))
        .collect();
    let mut rng = Rng(seed ^ 0x5eed_5a0e);
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let anchor = anchors[i % anchors.len()];
        let group = nearest(&points, anchor, GROUP_NEIGHBOURS);
        let anchor_row = &table.rows[anchor];
        let same_label = group.iter().find(|(g, _)| table.rows[*g][schema.label] == anchor_row[schema.label]);
        let neighbour = &table.rows[same_label.unwrap_or(&group[0]).0];
        let u = rng.next_u64() as f64 / (u64::MAX as f64 + 1.0);
        let row = (0..table.columns.len())
            .map(|c| {
                if c == schema.label {
                    return anchor_row[c].clone();
                }
                match table.kinds[c] {
                    Kind::Numeric => {
                        let (x, y) = (number(&anchor_row[c]).unwrap_or(0.0), number(&neighbour[c]).unwrap_or(0.0));
                        format_like(x + u * (y - x), whole[c])
                    }
                    Kind::Categorical => match rng.next_u64() & 1 {
                        0 => anchor_row[c].clone(),
                        _ => neighbour[c].clone(),
                    },
                }
            })
            .collect();
        rows.push(row);
    }
    Ok(rows)
}

/// Real rows drawn uniformly with replacement: the worst case for privacy.
pub fn resample(table: &Table, n: usize, seed: u64) -> Vec<Vec<String>> {
    let mut rng = Rng(seed);
    (0..n).map(|_| table.rows[(rng.next_u64() % table.rows.len() as u64) as usize].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table::parse_csv("age,job,income,approved\n30,clerk,1.5,1\n41,nurse,2.25,0\n25,clerk,1.0,1\n").unwrap()
    }

    #[test]
    fn the_prompt_is_harmonics_with_the_label_last() {
        let table = Table::parse_csv("approved,age,job\n1,30,\"said \"\"hi\"\"\"\n0,41,nurse\n").unwrap();
        let schema = Schema::new(&table, "approved", "loan applicants").unwrap();
        assert_eq!(
            schema.prompt(&[1, 0]),
            "Here are 2 tabular data about loan applicants, each containing 2 columns of features and 1 column of \
             labels, where the approved column is a binary classification label. I will transmit the data to you \
             in JSON format. Please generate an approximate sample based on these 2 examples.\n\
             Example one: {\"age\": \"41\", \"job\": \"nurse\", \"approved\": \"0\"}\n\
             Example two: {\"age\": \"30\", \"job\": \"said \\\"hi\\\"\", \"approved\": \"1\"}\n\
             Generate one sample: "
        );
    }

    #[test]
    fn replies_are_parsed_or_rejected_never_repaired() {
        let table = table();
        let schema = Schema::new(&table, "approved", "loan applicants").unwrap();
        let row = schema.parse_reply(r#" {"age": "33", "job": "nurse", "income": 1.75, "approved": "1"} and more"#);
        assert_eq!(row.unwrap(), ["33", "nurse", "1.75", "1"]);
        let rejected = |reply: &str| schema.parse_reply(reply).unwrap_err();
        assert_eq!(rejected("no row here"), Rejection::NotJson);
        assert_eq!(rejected(r#"{"age": "33", "job": "nurse""#), Rejection::NotJson);
        assert_eq!(
            rejected(r#"{"age": "33", "job": "nurse", "approved": "1"}"#),
            Rejection::MissingColumn("income".into())
        );
        assert_eq!(
            rejected(r#"{"age": "33", "job": "pilot", "income": "1", "approved": "1"}"#),
            Rejection::UnknownCategory("job".into())
        );
        assert_eq!(
            rejected(r#"{"age": "old", "job": "clerk", "income": "1", "approved": "1"}"#),
            Rejection::NotANumber("age".into())
        );
        assert_eq!(
            rejected(r#"{"age": "3", "job": "clerk", "income": "1", "approved": "2"}"#),
            Rejection::UnknownCategory("approved".into())
        );
        assert_eq!(
            rejected(r#"{"age": "3", "job": "clerk", "income": "1", "approved": "1", "x": "1"}"#),
            Rejection::UnknownColumn("x".into())
        );
    }

    #[test]
    fn smote_interpolates_within_groups_and_resampling_copies() {
        let text = "a,b,y\n0,p,0\n10,q,0\n20,p,0\n30,q,1\n40,p,1\n50,q,1\n60,p,1\n";
        let table = Table::parse_csv(text).unwrap();
        let schema = Schema::new(&table, "y", "points").unwrap();
        for row in smote(&schema, 20, 7).unwrap() {
            let a: f64 = row[0].parse().unwrap();
            assert!((0.0..=60.0).contains(&a) && a.fract() == 0.0, "{row:?}");
            assert!(row[1] == "p" || row[1] == "q");
        }
        for row in resample(&table, 10, 3) {
            assert!(table.rows.contains(&row));
        }
    }
}
