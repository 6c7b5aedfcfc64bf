//! EMPEC's exam: `exam` (questions in, replies out, the accuracy table at the end),
//! `exam extract` (the answer letters of replies, without a model) and `evaluate --task exam`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use glassbox::tasks::exam::{self, extract, ExamReply, Language, Question, Reading, Scored};
use glassbox::tasks::pipeline::Mode;
use glassbox::tasks::rows::{jsonl_lines, row_id};
use glassbox::with_model;
use serde_json::{json, Value};

use super::compute::Loader;
use super::tasks::parse_shard;
use super::terminal::escape_controls;
use super::{print_json, read_file, text_err, TokenizerArg, Written};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ExamArgs {
    #[command(subcommand)]
    command: Option<ExamCommand>,
    /// The GGUF model that takes the exam.
    #[arg(required = true)]
    model: Option<PathBuf>,
    /// JSONL questions `{"id", "question", "answer"?, "profession"?, "subject"?, "language"?}`,
    /// the options A–D inside the question or as `"options": {"A": …}`.
    #[arg(long, required = true)]
    input: Option<PathBuf>,
    /// JSONL replies `{"id", "output"|"probs", "answer", "gold", "correct", …}`, written as each
    /// question finishes.
    #[arg(long, required = true)]
    output: Option<PathBuf>,
    /// `generate` (eval_empec's greedy reply, read by its expressions) or `score` (the
    /// probability of each option letter as the reply's start).
    #[arg(long, default_value = "generate")]
    mode: String,
    #[arg(long, default_value_t = exam::DEFAULT_MAX_NEW_TOKENS)]
    max_new_tokens: usize,
    /// Run only questions whose 0-based line number is i modulo n: `--shard 0/4` ... `--shard 3/4`.
    #[arg(long)]
    shard: Option<String>,
    /// Print each reply to stderr as it is written.
    #[arg(long)]
    stream: bool,
    #[command(flatten)]
    tokenizer: TokenizerArg,
}

#[derive(Subcommand)]
enum ExamCommand {
    /// Read the answer letter of each reply as eval_empec does (no model): JSONL
    /// `{"id", "output", "language"?}` in, `{"id", "answer", "answer_normalised"}` out.
    Extract(ExtractArgs),
}

#[derive(Args)]
struct ExtractArgs {
    #[arg(long)]
    input: PathBuf,
    #[arg(long)]
    output: PathBuf,
    /// The extraction for rows without a `"language"`: `zh` (extract_ans_zh) or `en`.
    #[arg(long, default_value = "zh")]
    language: String,
}

fn language_named(name: &str) -> Result<Language, String> {
    match name {
        "zh" => Ok(Language::Chinese),
        "en" => Ok(Language::English),
        other => Err(format!("language {other:?}: expected zh or en")),
    }
}

fn create(path: &Path) -> Result<std::io::BufWriter<std::fs::File>, String> {
    Ok(std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?))
}

pub fn exam(out: &mut impl Write, loader: &Loader, args: &ExamArgs) -> Written {
    if let Some(ExamCommand::Extract(extract_args)) = &args.command {
        return extract_replies(extract_args);
    }
    let (Some(model), Some(input), Some(output)) = (&args.model, &args.input, &args.output) else {
        return Err("exam needs MODEL, --input and --output".into());
    };
    let mode =
        Mode::from_name(&args.mode).ok_or_else(|| format!("--mode {:?}: expected generate or score", args.mode))?;
    let shard = args.shard.as_deref().map(parse_shard).transpose()?;
    let input_file = read_file(input)?;
    let mut writer = create(output)?;
    let any = loader.load(model, &args.tokenizer)?;
    let (mut replies, mut failed) = (Vec::<ExamReply>::new(), 0usize);
    with_model!(any, loaded => {
        for (number, line) in jsonl_lines(&input_file) {
            if shard.is_some_and(|(i, n)| (number - 1) % n != i) {
                continue;
            }
            let result = line.and_then(|line| Question::from_row(line).map_err(text_err)).and_then(|question| {
                let mut stream = |piece: &str| {
                    if args.stream {
                        eprint!("{}", escape_controls(piece));
                    }
                    true
                };
                let reply = exam::answer(&loaded.model, &loaded.tokenizer, &question, mode, args.max_new_tokens, &mut stream)
                    .map_err(|e| format!("id {:?}: {e}", question.id))?;
                if args.stream {
                    eprintln!();
                }
                Ok(reply)
            });
            match result {
                Ok(reply) => {
                    let json = serde_json::to_string(&reply).map_err(text_err)?;
                    if let Err(e) = writeln!(writer, "{json}").and_then(|()| writer.flush()) {
                        return Ok(Err(e));
                    }
                    replies.push(reply);
                }
                Err(e) => {
                    eprintln!("{}:{number}: {}", input.display(), escape_controls(&e));
                    failed += 1;
                }
            }
        }
    });
    eprintln!("exam: {} replies written to {}, {failed} errors", replies.len(), output.display());
    let scored: Vec<Scored> = replies.iter().filter_map(ExamReply::scored).collect();
    if failed > 0 {
        return Err(format!("{failed} of {} questions failed (see the messages above)", replies.len() + failed));
    }
    print_json(out, &json!({ "mode": args.mode, "report": exam::report(&scored) }))
}

/// `exam extract`: each reply's letter, faithfully and normalised. A bad row is reported with
/// its line number and the rest still run.
fn extract_replies(args: &ExtractArgs) -> Written {
    let fallback = language_named(&args.language)?;
    let mut writer = create(&args.output)?;
    let (mut written, mut failed) = (0usize, 0usize);
    for (number, line) in jsonl_lines(&read_file(&args.input)?) {
        let row = line.and_then(|line| {
            let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
            let id = row_id(&value["id"]).ok_or("no \"id\" (a string or a number)")?;
            let output = value["output"].as_str().ok_or("no \"output\" (a string)")?;
            let language = match value["language"].as_str() {
                None => fallback,
                Some(tag) => language_named(tag.split('-').next().unwrap_or(tag))?,
            };
            let read = |reading| extract(output, language, reading).map(String::from);
            Ok(json!({ "id": id, "answer": read(Reading::Faithful), "answer_normalised": read(Reading::Normalised) }))
        });
        match row {
            Ok(row) => {
                if let Err(e) = writeln!(writer, "{row}") {
                    return Ok(Err(e));
                }
                written += 1;
            }
            Err(e) => {
                eprintln!("{}:{number}: {}", args.input.display(), escape_controls(&e));
                failed += 1;
            }
        }
    }
    if let Err(e) = writer.flush() {
        return Ok(Err(e));
    }
    eprintln!("exam extract: {written} answers written to {}, {failed} errors", args.output.display());
    if failed > 0 {
        return Err(format!("{failed} of {} rows failed (see the messages above)", written + failed));
    }
    Ok(Ok(()))
}
