//! The claim tasks' commands: `evaluate` (metrics of predictions against gold labels).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use glassbox::tasks::metrics::{classification, fmd_score, rouge};
use serde_json::{json, Value};

#[derive(Args)]
pub struct EvaluateArgs {
    /// The task the predictions are for (`fmd` adds the challenge score).
    #[arg(long)]
    task: String,
    /// JSONL rows `{"id", "label", "explanation"?}`: the gold answers.
    #[arg(long)]
    gold: PathBuf,
    /// JSONL rows `{"id", "label", "explanation"?}`, as `classify` writes them.
    #[arg(long)]
    pred: PathBuf,
}

/// One JSONL row's id, label and explanation.
struct Row {
    label: String,
    explanation: Option<String>,
}

/// The rows of a JSONL file by id. A row that is not an object with a string or number `id`
/// and a string `label` is reported on stderr with its line number, and skipped.
fn read_rows(path: &Path, problems: &mut usize) -> Result<HashMap<String, Row>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows = HashMap::new();
    for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        let row = parsed.ok().and_then(|v| {
            let id = match &v["id"] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            let label = v["label"].as_str()?.to_string();
            Some((id, Row { label, explanation: v["explanation"].as_str().map(str::to_string) }))
        });
        match row {
            Some((id, row)) => {
                if rows.insert(id.clone(), row).is_some() {
                    eprintln!("{}:{}: id {id:?} repeats an earlier row; the later one counts", path.display(), number + 1);
                    *problems += 1;
                }
            }
            None => {
                eprintln!("{}:{}: not a JSON object with an \"id\" and a string \"label\"", path.display(), number + 1);
                *problems += 1;
            }
        }
    }
    Ok(rows)
}

/// Accuracy, macro/micro/weighted F1 and the confusion matrix of `pred` against `gold`,
/// matched by id, plus ROUGE when both sides have explanations, and the FMD challenge score.
pub fn evaluate(out: &mut impl Write, args: &EvaluateArgs) -> Result<std::io::Result<()>, String> {
    let mut problems = 0;
    let gold = read_rows(&args.gold, &mut problems)?;
    let pred = read_rows(&args.pred, &mut problems)?;
    let mut ids: Vec<&String> = gold.keys().collect();
    ids.sort();
    let missing: Vec<&String> = ids.iter().copied().filter(|id| !pred.contains_key(*id)).collect();
    let scored: Vec<&String> = ids.iter().copied().filter(|id| pred.contains_key(*id)).collect();
    if scored.is_empty() {
        return Err(format!("no prediction in {} matches an id of {}", args.pred.display(), args.gold.display()));
    }
    let gold_labels: Vec<&str> = scored.iter().map(|id| gold[*id].label.as_str()).collect();
    let pred_labels: Vec<&str> = scored.iter().map(|id| pred[*id].label.as_str()).collect();
    let metrics = classification(&gold_labels, &pred_labels);
    let explained: Vec<(&str, &str)> = scored
        .iter()
        .filter_map(|id| Some((pred[*id].explanation.as_deref()?, gold[*id].explanation.as_deref()?)))
        .collect();
    let mut report = json!({
        "task": args.task,
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
        "problems": problems,
    });
    if !explained.is_empty() {
        let scores = rouge(&explained);
        report["rouge"] = json!(scores);
        report["explained"] = json!(explained.len());
        if args.task == "fmd" {
            report["fmd_score"] = json!(fmd_score(&metrics, &scores));
        }
    }
    if !missing.is_empty() || problems > 0 {
        eprintln!("evaluate: {} gold rows without a prediction, {problems} rows skipped or repeated", missing.len());
    }
    Ok(writeln!(out, "{report}"))
}
