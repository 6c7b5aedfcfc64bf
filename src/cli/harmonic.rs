//! HARMONIC: `harmonic generate` (synthetic rows from the model), `harmonic baseline` (SMOTE
//! within neighbour groups, or resampling) and `harmonic evaluate` (privacy and fidelity).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand};
use glassbox::tabular::evaluate::report;
use glassbox::tabular::lle::language_model_efficiency;
use glassbox::tabular::synth::{resample, smote, synthesise, Schema, SynthesisOptions, TEMPERATURE};
use glassbox::tabular::table::{Table, MAX_CSV_BYTES};
use glassbox::with_model;
use serde_json::json;

use super::compute::Loader;
use super::{print_json, text_err, TokenizerArg, Written};

#[derive(Subcommand)]
pub enum HarmonicCommand {
    /// Synthetic rows from the model: each prompt shows a real row's five nearest neighbours as
    /// JSON and asks for one more; replies that are not rows of the table are rejected and counted.
    Generate(GenerateArgs),
    /// The baselines on the same neighbour groups: `smote` (interpolation within a group) or
    /// `resample` (real rows drawn with replacement).
    Baseline(BaselineArgs),
    /// Privacy (DCR, copies), fidelity (KS, total variation, correlations) and, with --test,
    /// utility (classifiers trained on the synthetic rows and on the real ones, tested on held-out
    /// real rows) of a synthetic table (JSON).
    Evaluate(EvaluateArgs),
}

#[derive(Args)]
pub struct TableArgs {
    /// The real table (CSV with a header). It stays on this machine.
    #[arg(long)]
    input: PathBuf,
    /// The label column (moved last in the prompt, as HARMONIC's tables have it).
    #[arg(long)]
    label: String,
    /// How many synthetic rows to write.
    #[arg(long)]
    n: usize,
    #[arg(long)]
    output: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
pub struct GenerateArgs {
    model: PathBuf,
    #[command(flatten)]
    table: TableArgs,
    /// What the rows are about, for the prompt's "tabular data about {description}" (default:
    /// the file's name).
    #[arg(long)]
    description: Option<String>,
    #[arg(long, default_value_t = TEMPERATURE)]
    temperature: f32,
    /// Prompts to try before stopping short of N rows (default: 4 × N).
    #[arg(long)]
    max_attempts: Option<usize>,
    /// Ask in the model's chat template (HARMONIC's fine-tuned model is prompted without one).
    #[arg(long)]
    chat: bool,
    /// Write every attempt (anchor, examples, reply, why it was rejected) as JSONL here.
    #[arg(long)]
    log: Option<PathBuf>,
    #[command(flatten)]
    tokenizer: TokenizerArg,
}

#[derive(Args)]
pub struct BaselineArgs {
    /// `smote` or `resample`.
    #[arg(long)]
    method: String,
    #[command(flatten)]
    table: TableArgs,
}

#[derive(Args)]
pub struct EvaluateArgs {
    #[arg(long)]
    real: PathBuf,
    #[arg(long)]
    synthetic: PathBuf,
    #[arg(long)]
    label: String,
    /// Held-out real rows: machine-learning efficiency of classifiers trained on the synthetic
    /// table, beside the same classifiers trained on the real one.
    #[arg(long)]
    test: Option<PathBuf>,
    /// The random forest's seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// With --test: LLE, this model's accuracy on the test rows with the synthetic rows nearest
    /// each as its examples.
    #[arg(long)]
    lle_model: Option<PathBuf>,
    /// What the rows are about, for the LLE prompt (default: the real file's name).
    #[arg(long)]
    description: Option<String>,
    #[command(flatten)]
    tokenizer: TokenizerArg,
}

pub fn read_table(path: &Path) -> Result<Table, String> {
    let size = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.len();
    if size > MAX_CSV_BYTES as u64 {
        return Err(format!("{}: {size} bytes; at most {MAX_CSV_BYTES} are read", path.display()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Table::parse_csv(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_table(path: &Path, table: &Table) -> Result<(), String> {
    std::fs::write(path, table.to_csv()).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn harmonic(out: &mut impl Write, loader: &Loader, command: &HarmonicCommand) -> Written {
    match command {
        HarmonicCommand::Generate(args) => generate(out, loader, args),
        HarmonicCommand::Baseline(args) => baseline(out, args),
        HarmonicCommand::Evaluate(args) => evaluate(out, loader, args),
    }
}

/// `--description`, else the file's name in words.
fn described(description: &Option<String>, path: &Path) -> String {
    description
        .clone()
        .unwrap_or_else(|| path.file_stem().map(|s| s.to_string_lossy().replace(['_', '-'], " ")).unwrap_or_default())
}

fn generate(out: &mut impl Write, loader: &Loader, args: &GenerateArgs) -> Written {
    let table = read_table(&args.table.input)?;
    let description = described(&args.description, &args.table.input);
    let schema = Schema::new(&table, &args.table.label, &description).map_err(text_err)?;
    let options = SynthesisOptions {
        seed: args.table.seed,
        temperature: args.temperature,
        max_attempts: args.max_attempts.unwrap_or(args.table.n.saturating_mul(4)),
        chat: args.chat,
        first_attempt: 0,
    };
    let mut log = args
        .log
        .as_ref()
        .map(|p| std::fs::File::create(p).map(std::io::BufWriter::new).map_err(|e| format!("{}: {e}", p.display())))
        .transpose()?;
    let any = loader.load(&args.model, &args.tokenizer)?;
    let start = Instant::now();
    let mut prompts = 0;
    let synthesis = with_model!(any, loaded => {
        synthesise(&loaded.model, &loaded.tokenizer, &schema, args.table.n, &options, |attempt, accepted| {
            prompts += 1;
            eprint!("\rharmonic: {accepted} of {} rows from {prompts} prompts", args.table.n);
            if let Some(log) = log.as_mut() {
                let _ = serde_json::to_writer(&mut *log, attempt).map(|()| writeln!(log));
            }
            true
        })
    })
    .map_err(text_err)?;
    eprintln!();
    if let Some(mut log) = log {
        log.flush().map_err(text_err)?;
    }
    write_table(&args.table.output, &table.with_rows(synthesis.rows.clone()))?;
    let attempts = synthesis.attempts.len();
    let rejected = attempts - synthesis.rows.len();
    print_json(
        out,
        &json!({
            "method": "harmonic",
            "requested": args.table.n,
            "rows": synthesis.rows.len(),
            "attempts": attempts,
            "rejected": rejected,
            "rejection_rate": if attempts == 0 { 0.0 } else { rejected as f64 / attempts as f64 },
            "rejections": synthesis.rejections(),
            "prompt_example": schema.prompt(&synthesis.attempts.first().map(|a| a.examples.clone()).unwrap_or_default()),
            "seconds": start.elapsed().as_secs_f64(),
        }),
    )
}

fn baseline(out: &mut impl Write, args: &BaselineArgs) -> Written {
    let table = read_table(&args.table.input)?;
    let schema = Schema::new(&table, &args.table.label, "").map_err(text_err)?;
    let start = Instant::now();
    let rows = match args.method.as_str() {
        "smote" => smote(&schema, args.table.n, args.table.seed).map_err(text_err)?,
        "resample" => resample(&table, args.table.n, args.table.seed),
        other => return Err(format!("--method {other:?}: expected smote or resample")),
    };
    write_table(&args.table.output, &table.with_rows(rows))?;
    print_json(out, &json!({ "method": args.method, "rows": args.table.n, "seconds": start.elapsed().as_secs_f64() }))
}

fn evaluate(out: &mut impl Write, loader: &Loader, args: &EvaluateArgs) -> Written {
    let real = read_table(&args.real)?;
    let synthetic = read_table(&args.synthetic)?;
    let test = args.test.as_deref().map(read_table).transpose()?;
    let report = report(&real, &synthetic, &args.label, test.as_ref(), args.seed).map_err(text_err)?;
    let lle = match (&args.lle_model, &test) {
        (None, _) => None,
        (Some(_), None) => return Err("--lle-model needs --test".into()),
        (Some(model), Some(test)) => {
            let schema =
                Schema::new(&real, &args.label, &described(&args.description, &args.real)).map_err(text_err)?;
            let any = loader.load(model, &args.tokenizer)?;
            let lle = with_model!(any, loaded => {
                language_model_efficiency(&loaded.model, &loaded.tokenizer, &schema, &synthetic, test, |row| {
                    eprint!("\rharmonic: LLE {} of {} test rows", row + 1, test.rows.len());
                })
            })
            .map_err(text_err)?;
            eprintln!();
            Some(json!({ "accuracy": lle.accuracy, "test_rows": lle.test_rows }))
        }
    };
    let mut json = serde_json::to_value(&report).map_err(text_err)?;
    json["lle"] = json!(lle);
    print_json(out, &json)
}
