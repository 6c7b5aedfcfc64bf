//! `glassbox probe train` and `probe apply`: linear probes on a recorded activation
//! (glassbox::interp::probe), over labelled JSONL rows.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use glassbox::hooks::{select_hooks, DEFAULT_MAX_RECORDING_BYTES};
use glassbox::interp::probe::{
    cross_validated_accuracy, features, stratified_folds, Logistic, Pooling, Probe, DEFAULT_C,
};
use glassbox::safetensors::{self, TensorView};
use glassbox::tasks::rows::{jsonl_lines, row_id};
use glassbox::with_model;
use serde::Serialize;
use serde_json::{json, Value};

use super::compute::Loader;
use super::{print_json, read_file, text_err, TokenizerArg, Written};

#[derive(Subcommand)]
pub enum ProbeCommand {
    /// Fits a logistic-regression probe to a hook's activation over labelled rows; with a glob
    /// (`blocks.*.hook_resid_post`), reports each hook's cross-validated accuracy and keeps the best.
    Train(TrainArgs),
    /// Labels rows with a probe: each row's class probabilities, as JSONL on stdout.
    Apply(ApplyArgs),
}

#[derive(Args)]
pub struct RowArgs {
    model: PathBuf,
    /// JSONL rows, each with a text field (and, to train, a label field).
    #[arg(long)]
    input: PathBuf,
    /// The field(s) read as the prompt; several (`--text-field context,claim`) are joined by
    /// line breaks, in the order given. `text` when training; the probe's own when applying.
    #[arg(long, value_delimiter = ',')]
    text_field: Vec<String>,
    #[command(flatten)]
    tokenizer: TokenizerArg,
}

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    rows: RowArgs,
    #[arg(long, default_value = "label")]
    label_field: String,
    /// The hook(s) read, by TransformerLens name; `*` matches any run of characters.
    #[arg(long)]
    hook: String,
    /// `last` (the last position's vector) or `mean` (the mean over positions).
    #[arg(long, default_value = "last")]
    position: String,
    /// Folds of the cross-validation (stratified: each class's rows dealt to them in turn).
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Cross-validates by leaving out one value of this field at a time (`--group-field domain`)
    /// instead of stratified folds.
    #[arg(long)]
    group_field: Option<String>,
    /// Inverse L2 regularisation strength, as scikit-learn's `C`.
    #[arg(long, default_value_t = DEFAULT_C)]
    c: f64,
    /// The probe of the best hook, fitted on every row, as safetensors.
    #[arg(long)]
    output: PathBuf,
    /// Also writes the features: one `[rows, width]` tensor per hook, named by it, and `labels`
    /// (each row's class index; the classes are in the metadata), for NumPy or scikit-learn.
    #[arg(long)]
    features: Option<PathBuf>,
}

#[derive(Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    rows: RowArgs,
    /// A probe written by `probe train`.
    #[arg(long)]
    probe: PathBuf,
}

/// A row that could not be used, by its line.
#[derive(Serialize)]
struct Skipped {
    line: usize,
    error: String,
}

/// A JSON value as a label: strings as they are, numbers and booleans as their text.
fn label_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

/// One usable input row.
struct Row {
    line: usize,
    id: Option<String>,
    text: String,
    /// With a label field.
    label: Option<String>,
    /// With a group field.
    group: Option<String>,
}

/// The input's usable rows and the lines it skipped; `label_field` and `group_field` must be in
/// every row when given.
fn read_rows(
    args: &RowArgs,
    text_fields: &[String],
    label_field: Option<&str>,
    group_field: Option<&str>,
) -> Result<(Vec<Row>, Vec<Skipped>), String> {
    let bytes = read_file(&args.input)?;
    let (mut rows, mut skipped) = (Vec::new(), Vec::new());
    for (line, text) in jsonl_lines(&bytes) {
        let parsed = text.and_then(|text| {
            let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
            let object = value.as_object().ok_or("not a JSON object")?;
            let fields = text_fields
                .iter()
                .map(|name| object.get(name).and_then(Value::as_str).ok_or_else(|| format!("no text field {name:?}")))
                .collect::<Result<Vec<_>, _>>()?;
            let optional = |field: Option<&str>, what: &str| -> Result<Option<String>, String> {
                field
                    .map(|name| {
                        object.get(name).and_then(label_text).ok_or_else(|| format!("no {what} field {name:?}"))
                    })
                    .transpose()
            };
            Ok(Row {
                line,
                id: object.get("id").and_then(row_id),
                text: fields.join("\n"),
                label: optional(label_field, "label")?,
                group: optional(group_field, "group")?,
            })
        });
        match parsed {
            Ok(row) => rows.push(row),
            Err(error) => skipped.push(Skipped { line, error }),
        }
    }
    Ok((rows, skipped))
}

pub fn probe(out: &mut impl Write, loader: &Loader, command: &ProbeCommand, json: bool) -> Written {
    match command {
        ProbeCommand::Train(args) => train(out, loader, args, json),
        ProbeCommand::Apply(args) => apply(out, loader, args),
    }
}

fn train(out: &mut impl Write, loader: &Loader, args: &TrainArgs, json: bool) -> Written {
    let pooling = Pooling::parse(&args.position).map_err(text_err)?;
    let text_fields =
        if args.rows.text_field.is_empty() { vec!["text".to_string()] } else { args.rows.text_field.clone() };
    let (rows, skipped) = read_rows(&args.rows, &text_fields, Some(&args.label_field), args.group_field.as_deref())?;
    let mut classes: Vec<String> = rows.iter().filter_map(|r| r.label.clone()).collect();
    // In sorted order, as scikit-learn orders its classes (the second is the binary positive).
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        return Err(format!(
            "{}: {} usable rows in {} classes; a probe needs two classes or more",
            args.rows.input.display(),
            rows.len(),
            classes.len()
        ));
    }
    let labels: Vec<usize> = rows
        .iter()
        .map(|r| classes.binary_search(r.label.as_ref().expect("read with labels")).expect("listed"))
        .collect();
    let fold_of = match &args.group_field {
        Some(_) => {
            let mut groups: Vec<&String> = rows.iter().filter_map(|r| r.group.as_ref()).collect();
            groups.sort();
            groups.dedup();
            rows.iter()
                .map(|r| groups.binary_search(&r.group.as_ref().expect("read with groups")).expect("listed"))
                .collect()
        }
        None => stratified_folds(&labels, classes.len(), args.folds).map_err(text_err)?,
    };
    let folds = fold_of.iter().max().map_or(0, |&f| f + 1);
    let any = loader.load(&args.rows.model, &args.rows.tokenizer)?;
    with_model!(any, loaded => {
        let points = select_hooks(&args.hook, loaded.model.config().hook_shape()).map_err(text_err)?;
        let ids = rows
            .iter()
            .map(|r| loaded.tokenizer.encode(&r.text, true, false).map_err(text_err))
            .collect::<Result<Vec<_>, _>>()?;
        let recorded = features(&loaded.model, &ids, &points, pooling, DEFAULT_MAX_RECORDING_BYTES).map_err(text_err)?;
        let accuracies = recorded
            .iter()
            .map(|(x, _)| cross_validated_accuracy(x, &labels, classes.len(), &fold_of, args.c).map_err(text_err))
            .collect::<Result<Vec<f64>, _>>()?;
        // The first of the most accurate, so an earlier layer wins a tie.
        let best = (0..points.len()).fold(0, |best, i| if accuracies[i] > accuracies[best] { i } else { best });
        let scores: Vec<Value> = points
            .iter()
            .zip(&accuracies)
            .map(|(point, accuracy)| json!({ "hook": point.to_string(), "cv_accuracy": accuracy }))
            .collect();
        let logistic = Logistic::fit(&recorded[best].0, &labels, classes.len(), args.c).map_err(text_err)?;
        let probe = Probe { hook: points[best], pooling, text_fields: text_fields.clone(), classes: classes.clone(), logistic };
        std::fs::write(&args.output, probe.to_safetensors()).map_err(|e| format!("{}: {e}", args.output.display()))?;
        if let Some(path) = &args.features {
            let names: Vec<String> = points.iter().map(ToString::to_string).collect();
            let shapes: Vec<[usize; 2]> = recorded.iter().map(|(_, width)| [rows.len(), *width]).collect();
            let label_values: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
            let label_shape = [rows.len()];
            let mut tensors: Vec<TensorView> = names
                .iter()
                .zip(&recorded)
                .zip(&shapes)
                .map(|((name, (x, _)), shape)| TensorView { name, shape, data: x })
                .collect();
            tensors.push(TensorView { name: "labels", shape: &label_shape, data: &label_values });
            let metadata = [("classes".to_string(), serde_json::to_string(&classes).map_err(text_err)?)].into();
            std::fs::write(path, safetensors::write(&tensors, &metadata)).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let report = json!({
            "rows": rows.len(),
            "classes": classes,
            "folds": folds,
            "folds_by": args.group_field.as_deref().unwrap_or("stratified"),
            "c": args.c,
            "position": pooling.name(),
            "hooks": scores,
            "best": points[best].to_string(),
            "output": args.output,
            "skipped": skipped,
        });
        if json {
            return print_json(out, &report);
        }
        let mut text = String::new();
        for (point, accuracy) in points.iter().zip(&accuracies) {
            text += &format!("{:<32} cross-validated accuracy {accuracy:.3}\n", point.to_string());
        }
        text += &format!(
            "{} rows, classes {}, {folds} folds{}; the probe on {} written to {}",
            rows.len(),
            classes.join(", "),
            args.group_field.as_ref().map(|g| format!(" (one per {g})")).unwrap_or_default(),
            points[best],
            args.output.display()
        );
        for s in &skipped {
            text += &format!("\nline {}: skipped: {}", s.line, s.error);
        }
        Ok(writeln!(out, "{text}"))
    })
}

fn apply(out: &mut impl Write, loader: &Loader, args: &ApplyArgs) -> Written {
    let probe =
        Probe::from_safetensors(&read_file(&args.probe)?).map_err(|e| format!("{}: {e}", args.probe.display()))?;
    let text_fields =
        if args.rows.text_field.is_empty() { probe.text_fields.clone() } else { args.rows.text_field.clone() };
    let (rows, skipped) = read_rows(&args.rows, &text_fields, None, None)?;
    let any = loader.load(&args.rows.model, &args.rows.tokenizer)?;
    with_model!(any, loaded => {
        let shape = loaded.model.config().hook_shape();
        if !glassbox::hooks::HookPoint::all(shape).contains(&probe.hook) {
            return Err(format!("{}: the probe reads {}, which this model does not have", args.probe.display(), probe.hook));
        }
        let mut lines: Vec<(usize, Value)> = skipped.into_iter().map(|s| (s.line, json!({ "line": s.line, "error": s.error }))).collect();
        let ids = rows
            .iter()
            .map(|r| loaded.tokenizer.encode(&r.text, true, false).map_err(text_err))
            .collect::<Result<Vec<_>, _>>()?;
        let recorded = features(&loaded.model, &ids, &[probe.hook], probe.pooling, DEFAULT_MAX_RECORDING_BYTES).map_err(text_err)?;
        let (features, width) = &recorded[0];
        let logistic = &probe.logistic;
        if !rows.is_empty() && *width != logistic.width {
            return Err(format!("{}: {} has {width} values here, the probe reads {}", args.probe.display(), probe.hook, logistic.width));
        }
        for (Row { line, id, .. }, x) in rows.iter().zip(features.chunks_exact(logistic.width)) {
            let probabilities = logistic.probabilities(x);
            let label = &probe.classes[logistic.predict(x)];
            let by_class: serde_json::Map<String, Value> =
                probe.classes.iter().zip(&probabilities).map(|(c, p)| (c.clone(), json!(p))).collect();
            lines.push((*line, json!({ "line": line, "id": id, "label": label, "probabilities": by_class })));
        }
        lines.sort_by_key(|(line, _)| *line);
        for (_, value) in lines {
            print_json(out, &value)?.map_err(text_err)?;
        }
        Ok(Ok(()))
    })
}
