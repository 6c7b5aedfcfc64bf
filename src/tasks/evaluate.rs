//! Predictions scored against gold rows, both JSONL and matched by id: the claim tasks' metrics
//! (accuracy, F1s, the confusion matrix, ROUGE of explanations, the FMD challenge score) and
//! EMPEC's exam report. What `glassbox evaluate` prints, for the CLI and Python alike; a row that
//! cannot be read is a [`Problem`] with its line, and the rest are scored.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::exam::{self, Question, Scored};
use super::metrics::{classification, fmd_score, rouge, rouge_tokens, MAX_ROUGE_TOKENS};
use super::rows::{jsonl_lines, row_id};

/// Which input a problem is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Gold,
    Pred,
}

/// A row skipped or repeated, with its 1-based line.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub side: Side,
    pub line: usize,
    pub message: String,
}

pub struct Evaluation {
    /// The report `glassbox evaluate` prints (with the count of problems and the missing ids);
    /// `None` when no prediction matches a gold row.
    pub report: Option<Value>,
    pub problems: Vec<Problem>,
    /// Gold rows without a prediction.
    pub missing: usize,
}

/// One JSONL row's label and explanation.
struct Row {
    label: String,
    explanation: Option<String>,
}

/// What a prediction of `null` (a free generation that names no label) is scored as: a label
/// of its own, wrong for every gold row, as the seeds' evaluation counts it.
const NO_LABEL: &str = "(none)";

/// `pred` against `gold` for `task`: `exam` reads exam questions and replies; any other task
/// reads `{"id", "label", "explanation"?}` rows (`fmd` adds the challenge score).
pub fn evaluate(task: &str, gold: &[u8], pred: &[u8]) -> Evaluation {
    if task == "exam" {
        return evaluate_exam(gold, pred);
    }
    let mut problems = Vec::new();
    let gold = read_rows(gold, Side::Gold, false, &mut problems);
    let pred = read_rows(pred, Side::Pred, true, &mut problems);
    let mut ids: Vec<&String> = gold.keys().collect();
    ids.sort();
    let missing: Vec<&String> = ids.iter().copied().filter(|id| !pred.contains_key(*id)).collect();
    let scored: Vec<&String> = ids.iter().copied().filter(|id| pred.contains_key(*id)).collect();
    if scored.is_empty() {
        return Evaluation { report: None, problems, missing: missing.len() };
    }
    let gold_labels: Vec<&str> = scored.iter().map(|id| gold[*id].label.as_str()).collect();
    let pred_labels: Vec<&str> = scored.iter().map(|id| pred[*id].label.as_str()).collect();
    let metrics = classification(&gold_labels, &pred_labels);
    let explained: Vec<(&str, &str)> = scored
        .iter()
        .filter_map(|id| Some((pred[*id].explanation.as_deref()?, gold[*id].explanation.as_deref()?)))
        .collect();
    let mut report = json!({
        "task": task,
        "count": scored.len(),
        "accuracy": metrics.accuracy,
        "macro_f1": metrics.macro_f1,
        "micro_f1": metrics.micro_f1,
        "weighted_f1": metrics.weighted_f1,
        "weighted_precision": metrics.weighted.precision,
        "weighted_recall": metrics.weighted.recall,
        "labels": metrics.labels,
        "confusion": metrics.confusion,
        "per_class": metrics.per_class.iter().map(|(label, s, support)| {
            (label.clone(), json!({ "precision": s.precision, "recall": s.recall, "f1": s.f1, "support": support }))
        }).collect::<serde_json::Map<_, _>>(),
        "missing": missing,
        "problems": problems.len(),
    });
    if !explained.is_empty() {
        let scores = rouge(&explained);
        report["rouge"] = json!(scores);
        report["explained"] = json!(explained.len());
        if task == "fmd" {
            report["fmd_score"] = json!(fmd_score(&metrics, &scores));
        }
    }
    Evaluation { report: Some(report), problems, missing: missing.len() }
}

/// The rows by id. A row that is not an object with a string or number `id` and a string
/// `label` (or, where `null_allowed`, `null`) is a problem, and skipped.
fn read_rows(bytes: &[u8], side: Side, null_allowed: bool, problems: &mut Vec<Problem>) -> HashMap<String, Row> {
    let mut problem = |line, message: String| problems.push(Problem { side, line, message });
    let mut rows = HashMap::new();
    for (number, line) in jsonl_lines(bytes) {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                problem(number, e);
                continue;
            }
        };
        let parsed: Result<Value, _> = serde_json::from_str(line);
        let row = parsed.ok().and_then(|v| {
            let id = row_id(&v["id"])?;
            let label = match &v["label"] {
                Value::String(label) => label.clone(),
                Value::Null if null_allowed && v.get("label").is_some() => NO_LABEL.to_string(),
                _ => return None,
            };
            Some((id, Row { label, explanation: v["explanation"].as_str().map(str::to_string) }))
        });
        match row {
            Some((id, mut row)) => {
                let explanation_tokens = row.explanation.as_deref().map_or(0, |e| rouge_tokens(e).len());
                if explanation_tokens > MAX_ROUGE_TOKENS {
                    problem(
                        number,
                        format!(
                            "the explanation is {explanation_tokens} words; ROUGE compares at most \
                             {MAX_ROUGE_TOKENS}, so this row is scored without it"
                        ),
                    );
                    row.explanation = None;
                }
                if rows.insert(id.clone(), row).is_some() {
                    problem(number, format!("id {id:?} repeats an earlier row; the later one counts"));
                }
            }
            None => problem(number, "not a JSON object with an \"id\" and a string \"label\"".into()),
        }
    }
    rows
}

/// A reply row's letter field: a letter, `null` (no answer), or absent.
fn letter_field(row: &Value, key: &str) -> Result<Option<Option<char>>, String> {
    match row.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if s.len() == 1 && exam::LETTERS.contains(&s.chars().next().unwrap_or(' ')) => {
            Ok(Some(s.chars().next()))
        }
        Some(other) => Err(format!("\"{key}\": {other} is not A, B, C, D or null")),
    }
}

/// The questions' answers against the replies' letters, matched by id.
fn evaluate_exam(gold: &[u8], pred: &[u8]) -> Evaluation {
    let mut problems = Vec::new();
    let mut problem = |side, line, message: String| problems.push(Problem { side, line, message });
    let mut questions = Vec::new();
    for (number, line) in jsonl_lines(gold) {
        match line.and_then(|line| Question::from_row(line).map_err(|e| e.to_string())) {
            Ok(question) if question.answer.is_some() => questions.push(question),
            Ok(question) => problem(Side::Gold, number, format!("id {:?} has no \"answer\"", question.id)),
            Err(e) => problem(Side::Gold, number, e),
        }
    }
    let mut replies: HashMap<String, (Option<char>, Option<Option<char>>)> = HashMap::new();
    for (number, line) in jsonl_lines(pred) {
        let row = line.and_then(|line| {
            let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
            let id = row_id(&value["id"]).ok_or("no \"id\" (a string or a number)")?;
            let answer = letter_field(&value, "answer")?.ok_or("no \"answer\" (a letter or null)")?;
            Ok((id, answer, letter_field(&value, "answer_normalised")?))
        });
        match row {
            Ok((id, answer, normalised)) => {
                if replies.insert(id.clone(), (answer, normalised)).is_some() {
                    problem(Side::Pred, number, format!("id {id:?} repeats an earlier row; the later one counts"));
                }
            }
            Err(e) => problem(Side::Pred, number, e),
        }
    }
    let mut missing = Vec::new();
    let mut scored = Vec::new();
    for question in &questions {
        match (replies.get(&question.id), question.answer) {
            (Some(&(answer, normalised)), Some(gold)) => scored.push(Scored {
                gold,
                answer,
                normalised,
                profession: question.profession.as_deref(),
                subject: question.subject.as_deref(),
            }),
            _ => missing.push(question.id.as_str()),
        }
    }
    if scored.is_empty() {
        return Evaluation { report: None, missing: missing.len(), problems };
    }
    let report =
        json!({ "task": "exam", "report": exam::report(&scored), "missing": missing, "problems": problems.len() });
    Evaluation { report: Some(report), missing: missing.len(), problems }
}
