//! The claim tasks' commands: `classify` (JSONL in, JSONL out), `index build`, `align`, and
//! `evaluate` (metrics of predictions against gold labels).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use glassbox::generate::{generate, Writing};
use glassbox::tasks::embed::{llm_embedding, MiniLm};
use glassbox::tasks::evaluate::Side;
use glassbox::tasks::index::{vote, Index, Record};
use glassbox::tasks::pipeline::{self, llm_intensity, Choices, Classifier, Lexicons, QueryEmbedder, Retrieval};
use glassbox::tasks::rows::{jsonl_lines, parse_row, parse_task_row};
use glassbox::tasks::templates::{Table, Task};
use glassbox::with_model;
use serde_json::{json, Value};

use super::compute::Loader;
use super::{read_file, text_err, TokenizerArg, Written};

#[derive(Args)]
pub struct EvaluateArgs {
    /// The task the predictions are for (`fmd` adds the challenge score; `exam` reads exam
    /// questions and replies).
    #[arg(long)]
    task: String,
    /// JSONL rows `{"id", "label", "explanation"?}`: the gold answers (for `exam`, the questions
    /// with their `answer`, `profession` and `subject`).
    #[arg(long)]
    gold: PathBuf,
    /// JSONL rows `{"id", "label", "explanation"?}`, as `classify` writes them (for `exam`,
    /// `{"id", "answer", "answer_normalised"?}`, as `exam` and `exam extract` write them).
    #[arg(long)]
    pred: PathBuf,
}

/// Scores `pred` against `gold` (`glassbox::tasks::evaluate`): each skipped or repeated row on
/// stderr with its file and line, then the report.
pub fn evaluate(out: &mut impl Write, args: &EvaluateArgs) -> Written {
    let (gold, pred) = (read_file(&args.gold)?, read_file(&args.pred)?);
    let evaluation = glassbox::tasks::evaluate::evaluate(&args.task, &gold, &pred);
    for problem in &evaluation.problems {
        let path = match problem.side {
            Side::Gold => &args.gold,
            Side::Pred => &args.pred,
        };
        eprintln!("{}:{}: {}", path.display(), problem.line, super::terminal::escape_controls(&problem.message));
    }
    let exam = args.task == "exam";
    let Some(report) = evaluation.report else {
        let (rows, of) = if exam { ("reply", "a question") } else { ("prediction", "an id") };
        return Err(format!("no {rows} in {} matches {of} of {}", args.pred.display(), args.gold.display()));
    };
    if evaluation.missing > 0 || !evaluation.problems.is_empty() {
        let what = if exam { "questions without a reply" } else { "gold rows without a prediction" };
        eprintln!("evaluate: {} {what}, {} rows skipped or repeated", evaluation.missing, evaluation.problems.len());
    }
    Ok(writeln!(out, "{report}"))
}

/// How explanations and edits are written. The defaults keep a small model's greedy decoding from
/// looping (one sentence repeated to the token limit); `--greedy-writing` writes as the seeds'
/// code does.
#[derive(Args)]
pub struct WritingArgs {
    /// Plain greedy decoding: no repetition rules, no sentence or paragraph stop.
    #[arg(long)]
    greedy_writing: bool,
    /// CTRL's penalty on tokens already in the context (1: off), as `generate`'s.
    #[arg(long)]
    repeat_penalty: Option<f32>,
    /// Never repeat a run of this many written tokens (0: off).
    #[arg(long)]
    no_repeat_ngram: Option<usize>,
    /// Stop after this many sentences (0: no limit).
    #[arg(long)]
    max_sentences: Option<usize>,
    /// Stop at the first blank line (true or false).
    #[arg(long)]
    one_paragraph: Option<bool>,
}

impl WritingArgs {
    fn writing(&self) -> Writing {
        let base = if self.greedy_writing { Writing::GREEDY } else { Writing::default() };
        Writing {
            repetition_penalty: self.repeat_penalty.unwrap_or(base.repetition_penalty),
            no_repeat_ngram: self.no_repeat_ngram.unwrap_or(base.no_repeat_ngram),
            max_sentences: self.max_sentences.unwrap_or(base.max_sentences),
            one_paragraph: self.one_paragraph.unwrap_or(base.one_paragraph),
        }
    }
}

/// Where `classify` and `index build` find the lexicons and the sentence embedder.
#[derive(Args)]
pub struct ResourceArgs {
    /// The folder `make setup` fills with the VADER and Empath lexicons.
    #[arg(long, default_value = "models/lexicons")]
    lexicons: PathBuf,
    /// The all-MiniLM-L6-v2 folder (model.safetensors, tokenizer.json, config.json).
    #[arg(long, default_value = "models/all-MiniLM-L6-v2")]
    minilm: PathBuf,
    /// Add NRC emotion frequencies to the affect features. The NRC lexicon is for research and
    /// non-commercial use only; `python3 scripts/fetch_models.py --nrc` fetches it.
    #[arg(long)]
    nrc: bool,
}

impl ResourceArgs {
    fn lexicons(&self) -> Result<Lexicons, String> {
        Lexicons::from_folder(&self.lexicons, self.nrc).map_err(text_err)
    }

    fn minilm(&self) -> Result<MiniLm, String> {
        MiniLm::from_folder(&self.minilm).map_err(text_err)
    }
}

#[derive(Args)]
pub struct ClassifyArgs {
    model: PathBuf,
    /// fmd, conspiracy, relatedness, pheme, or `custom` with --task-file.
    #[arg(long)]
    task: String,
    /// A task as JSON (instruction, fields, labels with their words), for `--task custom`.
    #[arg(long)]
    task_file: Option<PathBuf>,
    /// JSONL rows `{"id", "claim"|"text", "context"?, "label"?, "domain"?}`.
    #[arg(long)]
    input: PathBuf,
    /// JSONL rows `{"id", "label", "probs", ...}`, written as each row finishes.
    #[arg(long)]
    output: PathBuf,
    /// Generate the explanation after the verdict (streamed to stderr with --stream).
    #[arg(long)]
    explain: bool,
    /// Attribute the verdict to the input's tokens (LPI through the top heads).
    #[arg(long)]
    evidence: bool,
    /// VADER, Empath and the model's own sentiment intensity. With --retrieve and an index built
    /// with --affect-model, the prompt is RAEmoLLM's affect variant (intensities after each text).
    #[arg(long)]
    affect: bool,
    /// An index (`glassbox index build`): RAEmoLLM's few-shot prompt with retrieved examples.
    #[arg(long)]
    retrieve: Option<PathBuf>,
    #[arg(long, default_value_t = 4)]
    k: usize,
    /// Run only rows whose 0-based line number is i modulo n: `--shard 0/4` ... `--shard 3/4`.
    #[arg(long)]
    shard: Option<String>,
    /// Run on Ray Data through the Python package (`python -m glassbox.ray`): on the cluster at
    /// ADDRESS (`ray start --head` prints it), or on a local one started for the run. The
    /// interpreter is $GLASSBOX_PYTHON, else python3.
    #[arg(long, value_name = "ADDRESS", num_args = 0..=1, default_missing_value = "")]
    ray: Option<String>,
    /// Ray's workers, each opening the model once.
    #[arg(long, default_value_t = 2)]
    ray_workers: usize,
    /// `score` (constrained label scoring) or `generate` (the seeds' free generation and regex).
    #[arg(long, default_value = "score")]
    mode: String,
    /// Wrap the instruction in the model's chat template instead of the seeds' `Human:` wrapper.
    #[arg(long)]
    chat: bool,
    #[arg(long, default_value_t = 128)]
    max_new_tokens: usize,
    #[command(flatten)]
    writing: WritingArgs,
    /// Print the explanation or generation to stderr as it is written.
    #[arg(long)]
    stream: bool,
    #[command(flatten)]
    resources: ResourceArgs,
    #[command(flatten)]
    tokenizer: TokenizerArg,
}

/// `i/n` with `i < n`.
pub(crate) fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    let bad = || format!("--shard {text:?}: expected i/n with 0 ≤ i < n, e.g. 0/4");
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

fn load_task(table: &Table, name: &str, file: &Option<PathBuf>) -> Result<Task, String> {
    match (name, file) {
        ("custom", Some(path)) => {
            let json = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Table::parse_task(&json).map_err(text_err)
        }
        ("custom", None) => Err("--task custom needs --task-file".into()),
        (name, _) => table.task(name).cloned().map_err(text_err),
    }
}

fn read_index(path: &Path) -> Result<Index, String> {
    let bytes = read_file(path)?;
    Index::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// The embedder name an index records for the LLM embedding of `model`.
/// The model file's name, which an index built with its LLM embedding records.
fn file_name(model: &Path) -> String {
    model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn llm_embedder_name(model: &Path) -> String {
    pipeline::llm_embedder_name(&file_name(model))
}

fn choices(args: &ClassifyArgs) -> Choices {
    Choices {
        explain: args.explain,
        evidence: args.evidence,
        affect: args.affect,
        mode: Some(args.mode.clone()),
        chat: args.chat,
        max_new_tokens: Some(args.max_new_tokens),
        writing: Some(args.writing.writing()),
        k: Some(args.k),
    }
}

/// `classify` on Ray Data: the Python package's `glassbox.ray` with the same task, rows and
/// choices, its exit status passed on.
fn on_ray(loader: &Loader, args: &ClassifyArgs, task: &Task, choices: &Choices, address: &str) -> Written {
    let refused = [
        (args.shard.is_some(), "--shard (Ray splits the rows itself)"),
        (args.tokenizer.is_given(), "--tokenizer (the workers read the GGUF's own vocabulary)"),
        (args.stream, "--stream (the workers write no text as it comes)"),
    ];
    if let Some((_, flag)) = refused.iter().find(|(given, _)| *given) {
        return Err(format!("--ray does not take {flag}"));
    }
    // The task as checked above: a custom one travels as its JSON.
    let task = match (args.task.as_str(), &args.task_file) {
        ("custom", Some(path)) => std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
        _ => task.name.clone(),
    };
    let (backend, threads) = loader.choices();
    let python = std::env::var_os("GLASSBOX_PYTHON").unwrap_or_else(|| "python3".into());
    let mut command = std::process::Command::new(&python);
    command.args(["-m", "glassbox.ray", "classify", "--task", &task, "--workers", &args.ray_workers.to_string()]);
    command.args(["--backend", backend]);
    if let Some(threads) = threads {
        command.args(["--threads", &threads.to_string()]);
    }
    command.arg("--model").arg(&args.model).arg("--input").arg(&args.input).arg("--output").arg(&args.output);
    command.arg("--options").arg(serde_json::to_string(choices).map_err(text_err)?);
    command.arg("--lexicons").arg(&args.resources.lexicons).arg("--minilm").arg(&args.resources.minilm);
    if let Some(index) = &args.retrieve {
        command.arg("--retrieve").arg(index);
    }
    if args.resources.nrc {
        command.arg("--nrc");
    }
    if !address.is_empty() {
        command.args(["--address", address]);
    }
    let status = command.status().map_err(|e| {
        format!("{}: {e} (--ray runs the Python package: make setup installs it)", python.to_string_lossy())
    })?;
    match status.success() {
        true => Ok(Ok(())),
        false => Err(format!("the Ray run ended with {status}")),
    }
}

/// Classifies every row of the input, writing each result as it finishes. A bad row is
/// reported on stderr with its line number; the run goes on, and fails at the end if any did.
pub fn classify(loader: &Loader, args: &ClassifyArgs) -> Written {
    let table = Table::builtin();
    let task = load_task(&table, &args.task, &args.task_file)?;
    let shard = args.shard.as_deref().map(parse_shard).transpose()?;
    let input_file = read_file(&args.input)?;
    let index = args.retrieve.as_deref().map(read_index).transpose()?;
    let choices = choices(args);
    let (options, embedder) = choices.check(&task, index.as_ref(), &file_name(&args.model)).map_err(text_err)?;
    if let Some(address) = &args.ray {
        return on_ray(loader, args, &task, &choices, address);
    }
    let lexicons = if args.affect { Some(args.resources.lexicons()?) } else { None };
    let minilm = match embedder {
        Some(QueryEmbedder::MiniLm) => Some(args.resources.minilm()?),
        _ => None,
    };
    let mut output = std::io::BufWriter::new(
        std::fs::File::create(&args.output).map_err(|e| format!("{}: {e}", args.output.display()))?,
    );
    let any = loader.load(&args.model, &args.tokenizer)?;
    let (mut written, mut failed) = (0usize, 0usize);
    with_model!(any, loaded => {
        let mut classifier = Classifier::new(&loaded.model, &loaded.tokenizer, &table, &task, options);
        classifier.lexicons = lexicons.as_ref();
        classifier.retrieval = index.as_ref().map(|index| Retrieval::new(index, minilm.as_ref()));
        for (number, line) in jsonl_lines(&input_file) {
            if shard.is_some_and(|(i, n)| (number - 1) % n != i) {
                continue;
            }
            let result = line.and_then(|line| parse_task_row(line, &task)).and_then(|input| {
                let mut stream = |piece: &str| {
                    if args.stream {
                        eprint!("{}", super::terminal::escape_controls(piece));
                    }
                    true
                };
                let row = classifier.run(&input, &mut stream).map_err(|e| format!("id {:?}: {e}", input.id))?;
                if args.stream {
                    eprintln!();
                }
                Ok(row)
            });
            match result {
                Ok(row) => {
                    let json = serde_json::to_string(&row).map_err(text_err)?;
                    if let Err(e) = writeln!(output, "{json}").and_then(|()| output.flush()) {
                        return Ok(Err(e));
                    }
                    written += 1;
                }
                Err(e) => {
                    eprintln!("{}:{number}: {}", args.input.display(), super::terminal::escape_controls(&e));
                    failed += 1;
                }
            }
        }
    });
    eprintln!("classify: {written} rows written to {}, {failed} errors", args.output.display());
    if failed > 0 {
        return Err(format!("{failed} of {} rows failed (see the messages above)", written + failed));
    }
    Ok(Ok(()))
}

#[derive(Subcommand)]
pub enum IndexCommand {
    /// Embed labelled rows and save them as a retrieval index (.gbx).
    Build(IndexBuildArgs),
    /// The k-NN baseline: label rows by a similarity-weighted vote of their retrieved examples
    /// (MiniLM indexes; no language model involved). Writes `classify`'s JSONL rows.
    Vote(IndexVoteArgs),
}

#[derive(Args)]
pub struct IndexVoteArgs {
    /// An index built with `--embedder minilm`.
    #[arg(long)]
    index: PathBuf,
    /// JSONL rows `{"id", "claim"|"text", ..., "domain"?}`.
    #[arg(long)]
    input: PathBuf,
    #[arg(long)]
    output: PathBuf,
    #[arg(long, default_value_t = 4)]
    k: usize,
    /// Hits under this cosine similarity are dropped, as in RAEmoLLM's retrieval.
    #[arg(long, default_value_t = 0.2)]
    min_score: f32,
    #[command(flatten)]
    resources: ResourceArgs,
}

#[derive(Args)]
pub struct IndexBuildArgs {
    /// `minilm` (all-MiniLM-L6-v2) or `llm` (the seed's: the model's mean last hidden state).
    #[arg(long)]
    embedder: String,
    /// The GGUF (for `llm`), or the all-MiniLM-L6-v2 folder (for `minilm`).
    model: PathBuf,
    /// JSONL rows `{"id", "claim"|"text", ..., "label", "domain"?}`.
    #[arg(long)]
    input: PathBuf,
    #[arg(long)]
    output: PathBuf,
    /// Store each example's sentiment intensity from this GGUF's Vreg score (the affect variant).
    #[arg(long)]
    affect_model: Option<PathBuf>,
    #[command(flatten)]
    tokenizer: TokenizerArg,
}

/// JSONL rows as index records, with each one's text to embed and line number; without
/// `need_label`, an absent label is empty.
fn read_records(path: &Path, need_label: bool) -> Result<Vec<(usize, Record, String)>, String> {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (number, line) in jsonl_lines(&read_file(path)?) {
        let parsed: Result<(Record, String), String> = line.and_then(|line| {
            serde_json::from_str::<Value>(line).map_err(|e| format!("not JSON: {e}")).and_then(|v| {
                let input = parse_row(line)?;
                let label = match v["label"].as_str() {
                    Some(label) => label.to_string(),
                    None if need_label => return Err("no string \"label\"".into()),
                    None => String::new(),
                };
                let main = input.main_text().map_err(text_err)?.to_string();
                Ok((Record { id: input.id, fields: input.fields, label, domain: input.domain, intensity: None }, main))
            })
        });
        match parsed {
            Ok((record, main)) => rows.push((number, record, main)),
            Err(e) => problems.push(format!("{}:{number}: {e}", path.display())),
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    Ok(rows)
}

pub fn index(out: &mut impl Write, loader: &Loader, command: &IndexCommand) -> Written {
    match command {
        IndexCommand::Build(args) => build_index(out, loader, args),
        IndexCommand::Vote(args) => vote_with_index(out, args),
    }
}

/// Each row's label by [`vote`], leave-one-domain-out like the retrieval for prompts; a row
/// with no hit above the threshold takes the index's most common label.
fn vote_with_index(out: &mut impl Write, args: &IndexVoteArgs) -> Written {
    let index = read_index(&args.index)?;
    if index.embedder != "minilm" {
        return Err(format!("index vote reads MiniLM indexes; this one was built with {:?}", index.embedder));
    }
    let minilm = args.resources.minilm()?;
    let mut labels: Vec<String> = index.records.iter().map(|r| r.label.clone()).collect();
    labels.sort();
    labels.dedup();
    let most_common = labels
        .iter()
        .max_by_key(|l| (index.records.iter().filter(|r| &r.label == *l).count(), std::cmp::Reverse(*l)))
        .cloned();
    let mut output = std::io::BufWriter::new(
        std::fs::File::create(&args.output).map_err(|e| format!("{}: {e}", args.output.display()))?,
    );
    let (mut written, mut fallbacks) = (0, 0);
    for (number, record, text) in read_records(&args.input, false)? {
        let query = minilm.embed(&text).map_err(|e| format!("{}:{number}: {e}", args.input.display()))?;
        let hits = index
            .search(&query, args.k, args.min_score, Some(&record.id), record.domain.as_deref())
            .map_err(text_err)?;
        let (label, probs) = match vote(&index, &hits, &labels) {
            Some(shares) => {
                let best = (0..shares.len())
                    .max_by(|&a, &b| shares[a].total_cmp(&shares[b]).then(b.cmp(&a)))
                    .expect("labels exist");
                (labels[best].clone(), shares)
            }
            None => {
                fallbacks += 1;
                let fallback = most_common.clone().unwrap_or_default();
                let probs = labels.iter().map(|l| if *l == fallback { 1.0 } else { 0.0 }).collect();
                (fallback, probs)
            }
        };
        let retrieved: Vec<Value> = hits.iter().map(|h| json!({ "id": index.records[h.record].id, "label": index.records[h.record].label, "score": h.score })).collect();
        let probs: serde_json::Map<String, Value> =
            labels.iter().cloned().zip(probs.into_iter().map(Value::from)).collect();
        if let Err(e) =
            writeln!(output, "{}", json!({ "id": record.id, "label": label, "probs": probs, "retrieved": retrieved }))
        {
            return Ok(Err(e));
        }
        written += 1;
    }
    if let Err(e) = output.flush() {
        return Ok(Err(e));
    }
    Ok(writeln!(out, "{}", json!({ "output": args.output, "rows": written, "without_hits": fallbacks })))
}

fn build_index(out: &mut impl Write, loader: &Loader, args: &IndexBuildArgs) -> Written {
    let table = Table::builtin();
    let mut rows = read_records(&args.input, true)?;
    if let Some(model) = &args.affect_model {
        let any = loader.load(model, &args.tokenizer)?;
        with_model!(any, loaded => {
            for (number, record, text) in rows.iter_mut() {
                let intensity = llm_intensity(&loaded.model, &loaded.tokenizer, &table, text).map_err(|e| format!("{}:{number}: {e}", args.input.display()))?;
                record.intensity = Some(intensity);
            }
        });
    }
    let (embedder, vectors) = match args.embedder.as_str() {
        "minilm" => {
            let resources = ResourceArgs { lexicons: PathBuf::new(), minilm: args.model.clone(), nrc: false };
            let minilm = resources.minilm()?;
            let mut vectors = Vec::new();
            for (number, _, text) in &rows {
                vectors.extend(minilm.embed(text).map_err(|e| format!("{}:{number}: {e}", args.input.display()))?);
            }
            ("minilm".to_string(), vectors)
        }
        "llm" => {
            let any = loader.load(&args.model, &args.tokenizer)?;
            let mut vectors = Vec::new();
            with_model!(any, loaded => {
                for (number, _, text) in &rows {
                    let v = llm_embedding(&loaded.model, &loaded.tokenizer, &table, text).map_err(|e| format!("{}:{number}: {e}", args.input.display()))?;
                    vectors.extend(v);
                }
            });
            (llm_embedder_name(&args.model), vectors)
        }
        other => return Err(format!("--embedder {other:?}: expected minilm or llm")),
    };
    let count = rows.len();
    let index = Index::new(embedder, rows.into_iter().map(|(_, r, _)| r).collect(), vectors).map_err(text_err)?;
    std::fs::write(&args.output, index.to_bytes()).map_err(|e| format!("{}: {e}", args.output.display()))?;
    Ok(writeln!(
        out,
        "{}",
        json!({ "output": args.output, "records": count, "dims": index.dims, "embedder": index.embedder })
    ))
}

#[derive(Args)]
pub struct AlignArgs {
    model: PathBuf,
    #[arg(long)]
    question: String,
    #[arg(long)]
    answer: String,
    /// Objective keys, comma-separated (harmlessness, helpfulness, humour, specific, factual,
    /// readable, fair, repeat, length, ...), or user objectives given as `Name: description`.
    #[arg(long, value_delimiter = ',', default_value = "harmlessness,helpfulness,humour")]
    aspects: Vec<String>,
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    #[command(flatten)]
    writing: WritingArgs,
    #[command(flatten)]
    tokenizer: TokenizerArg,
}

/// MetaAligner: the model edits `answer` for the chosen objectives, written as `--greedy-writing`
/// and its neighbours say (the seed's inference script decodes greedily).
pub fn align(out: &mut impl Write, loader: &Loader, args: &AlignArgs, json: bool) -> Written {
    let table = Table::builtin();
    let mut aspects: Vec<(String, String)> = Vec::new();
    for aspect in &args.aspects {
        match aspect.split_once(':') {
            Some((name, description)) => aspects.push((name.trim().to_string(), description.trim().to_string())),
            None => {
                let objective = table.objectives(&[aspect.trim()]).map_err(text_err)?[0];
                aspects.push((objective.name.clone(), objective.description.clone()));
            }
        }
    }
    let pairs: Vec<(&str, &str)> = aspects.iter().map(|(n, d)| (n.as_str(), d.as_str())).collect();
    let prompt = table.align(&pairs, &args.question, &args.answer);
    let any = loader.load(&args.model, &args.tokenizer)?;
    with_model!(any, loaded => {
        let ids = loaded.tokenizer.encode(&prompt, true, false).map_err(text_err)?;
        let request = args.writing.writing().request(args.max_new_tokens, Vec::new());
        let generation = generate(&loaded.model, &loaded.tokenizer, &ids, &request, |_, _| true).map_err(text_err)?;
        let edit = generation.text.trim();
        if json {
            Ok(writeln!(out, "{}", json!({ "prompt": prompt, "aspects": aspects, "edit": edit, "stop_reason": generation.stop_reason })))
        } else {
            Ok(writeln!(out, "{edit}"))
        }
    })
}
