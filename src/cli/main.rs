//! The `glassbox` command line. Every command takes `--json`; the names and flags are a
//! contract that scripts rely on.

mod bench;
mod compute;
mod interp;
mod parity;
mod tasks;
mod vision;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use glassbox::generate::{generate, GenerateRequest, Sampling};
use glassbox::gguf::write::write_gguf_file;
use glassbox::gguf::{GgmlType, GgufFile, TensorInfo};
use glassbox::inspect::ModelSummary;
use glassbox::interp::ablation::Mask;
use glassbox::model::synthetic::{LlamaShape, SyntheticLlama};
use glassbox::model::{Config, WeightSource};
use glassbox::with_model;

use compute::{BackendChoice, Loader};
use glassbox::tokenizer::{ChatMessage, Tokenizer};
use serde_json::json;

#[derive(Parser)]
#[command(name = "glassbox", version, about = "Look inside a language model on your own device")]
struct Cli {
    /// Where to compute: `auto` takes CUDA when built in and a GPU opens, else the CPU.
    #[arg(long, global = true, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a GGUF model's card: architecture, sizes, tokenizer and tensor types.
    Info {
        model: PathBuf,
        #[arg(long)]
        json: bool,
        /// Also list every tensor: name, type, shape (ggml order) and file offset.
        #[arg(long)]
        tensors: bool,
    },
    /// Split text into the model's tokens.
    Tokenize {
        model: PathBuf,
        text: String,
        #[command(flatten)]
        tokenizer: TokenizerArg,
        #[arg(long)]
        json: bool,
    },
    /// Generate a continuation of a prompt.
    Generate {
        model: PathBuf,
        #[command(flatten)]
        prompt: PromptArgs,
        #[arg(long, default_value_t = 64)]
        max_tokens: usize,
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        #[arg(long, default_value_t = 1.0)]
        top_p: f32,
        #[arg(long, default_value_t = 1.0)]
        repeat_penalty: f32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Stop when the output ends with this text (repeatable).
        #[arg(long)]
        stop: Vec<String>,
        #[command(flatten)]
        ablations: AblationArgs,
        #[arg(long)]
        json: bool,
    },
    /// Measure prefill and decode speed and peak memory (set RAYON_NUM_THREADS for threads).
    Bench {
        model: PathBuf,
        /// Text whose tokens are prefilled before the timed decode steps.
        #[arg(long)]
        short: PathBuf,
        /// Text prefilled in one timed batch.
        #[arg(long)]
        long: PathBuf,
    },
    /// Log-probability-increase attribution of layers, heads, positions and neurons.
    Attribute(interp::AttributeArgs),
    /// The logit lens: the top tokens of each layer's residual stream.
    Lens(interp::LensArgs),
    /// Zero each head in turn and rank heads by the drop in p(target) (slow baseline).
    AblationScan(interp::AblationScanArgs),
    /// Comparative neuron analysis: neuron LPI with and without the chosen heads.
    Cna(interp::CnaArgs),
    /// SePO token rewards: log π_oracle − log π_ref per response token.
    TokenRewards(interp::TokenRewardsArgs),
    /// Accuracy on the arithmetic prompt set before and after a mask of heads and neurons.
    MaskEval(interp::MaskEvalArgs),
    /// Run a committed experiment.
    Experiment {
        #[command(subcommand)]
        experiment: interp::Experiment,
    },
    /// Time attribution against plain forward passes of the same prompt (JSON).
    BenchAttribution {
        model: PathBuf,
        #[arg(long)]
        prompt: String,
    },
    /// Time each WebGPU kernel on SmolLM2's shapes: GB/s and GFLOP/s (JSON).
    #[cfg(feature = "webgpu")]
    BenchKernels,
    /// Compare `--backend` with the CPU on a prompt list: top-1 tokens and top-10 heads.
    CompareBackends(parity::CompareArgs),
    /// Score predictions against gold labels (JSONL, matched by id): accuracy, macro-, micro- and
    /// weighted F1, the confusion matrix, ROUGE of explanations, the FMD challenge score (JSON).
    Evaluate(tasks::EvaluateArgs),
    /// Classify JSONL rows with a claim task: label probabilities, and optionally the
    /// explanation, evidence tokens, affect features and retrieved examples (JSONL out).
    Classify(tasks::ClassifyArgs),
    /// Retrieval indexes for RAEmoLLM's few-shot prompts.
    Index {
        #[command(subcommand)]
        command: tasks::IndexCommand,
    },
    /// MetaAligner: edit an answer to improve it on the chosen objectives.
    Align(tasks::AlignArgs),
    /// LLaVA: the answer to a question about an image, with its probability.
    Vqa {
        #[command(flatten)]
        input: vision::ImageArgs,
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        #[arg(long)]
        json: bool,
    },
    /// LLaVA: which image patches drive the answer (the seed's LPI map, or a baseline).
    Heatmap(vision::HeatmapArgs),
    /// LLaVA: the visual logit lens, the top tokens of each image position at chosen layers.
    LensImage(vision::LensImageArgs),
    /// Train the LLaVA-architecture fixture on the shapes task and write its mmproj and language
    /// model GGUFs (`make fixtures`).
    TrainVqaFixture(vision::TrainFixtureArgs),
    /// Draw a scene of the shapes task (PNG) and print its prompt, answer and shapes (JSON).
    Scene(vision::SceneArgs),
    /// Write a llama-architecture GGUF with random weights (for speed measurements only), with
    /// the tokenizer of an existing GGUF.
    SynthModel {
        /// The GGUF whose tokenizer the new model takes.
        #[arg(long)]
        tokenizer_from: PathBuf,
        #[arg(long, default_value_t = 16)]
        layers: usize,
        #[arg(long, default_value_t = 2048)]
        width: usize,
        #[arg(long, default_value_t = 8192)]
        ffn_width: usize,
        #[arg(long, default_value_t = 32)]
        heads: usize,
        #[arg(long, default_value_t = 8)]
        kv_heads: usize,
        #[arg(long, default_value_t = 2048)]
        context_length: usize,
        /// q4_0, q8_0 or f32.
        #[arg(long, default_value = "q4_0")]
        weight_type: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        output: PathBuf,
    },
    /// The most likely next tokens after a prompt, with log-probabilities.
    Logits {
        model: PathBuf,
        #[command(flatten)]
        prompt: PromptArgs,
        #[arg(long, default_value_t = 10)]
        top_k: usize,
        #[command(flatten)]
        ablations: AblationArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub(crate) struct TokenizerArg {
    /// A tokenizer.json to use instead of the vocabulary inside the GGUF.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
}

impl TokenizerArg {
    pub(crate) fn load(&self, file: &GgufFile) -> Result<Tokenizer, String> {
        match &self.tokenizer {
            None => Tokenizer::from_gguf(&file.header).map_err(text_err),
            Some(path) => {
                let json = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                Tokenizer::from_tokenizer_json(&json, &file.header).map_err(text_err)
            }
        }
    }
}

#[derive(Args)]
pub(crate) struct PromptArgs {
    #[arg(long)]
    prompt: String,
    /// Wrap the prompt as a user message in the model's chat template.
    #[arg(long)]
    chat: bool,
    #[command(flatten)]
    tokenizer: TokenizerArg,
}

#[derive(Args)]
pub(crate) struct AblationArgs {
    /// Zero these attention heads, as LAYER.HEAD pairs: `--ablate-heads 4.2,17.0`.
    #[arg(long, value_delimiter = ',')]
    ablate_heads: Vec<String>,
    /// Zero these FFN neurons, as LAYER.NEURON pairs.
    #[arg(long, value_delimiter = ',')]
    ablate_neurons: Vec<String>,
}

impl AblationArgs {
    pub(crate) fn mask(&self, config: &Config) -> Result<Mask, String> {
        Mask::parse(&self.ablate_heads, &self.ablate_neurons, config).map_err(text_err)
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("glassbox: {message}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn text_err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A command's outcome: a usage or model error, or else the result of writing its output.
pub(crate) type Written = Result<std::io::Result<()>, String>;

pub(crate) fn print_json(out: &mut impl Write, value: &impl serde::Serialize) -> Written {
    Ok(writeln!(out, "{}", serde_json::to_string(value).map_err(text_err)?))
}

/// Reads weights from the file while advancing a progress bar on stderr.
pub(crate) struct ProgressSource<'a> {
    file: &'a GgufFile,
    bar: indicatif::ProgressBar,
}

impl WeightSource for ProgressSource<'_> {
    fn tensors(&self) -> &[TensorInfo] {
        self.file.tensors()
    }
    fn read(&self, tensor: &TensorInfo) -> glassbox::model::Result<Vec<u8>> {
        let bytes = self.file.read(tensor)?;
        self.bar.inc(bytes.len() as u64);
        Ok(bytes)
    }
}

pub(crate) fn prompt_ids(tokenizer: &Tokenizer, args: &PromptArgs) -> Result<Vec<u32>, String> {
    let text = if args.chat {
        tokenizer.apply_chat_template(&[ChatMessage::new("user", args.prompt.clone())], true).map_err(text_err)?
    } else {
        args.prompt.clone()
    };
    // Control tokens written in a prompt (`<|im_start|>`) are meant as such, as in llama.cpp.
    tokenizer.encode(&text, true, true).map_err(text_err)
}

fn run(cli: Cli) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    let loader = Loader::new(cli.backend);
    let written = match cli.command {
        Command::Info { model, json, tensors } => {
            let file = GgufFile::open(&model).map_err(text_err)?;
            let summary = ModelSummary::from_gguf(&file.header).map_err(text_err)?;
            if json {
                let text = if tensors {
                    serde_json::to_string_pretty(&summary)
                } else {
                    serde_json::to_string_pretty(&summary.card)
                };
                writeln!(out, "{}", text.map_err(text_err)?)
            } else {
                writeln!(out, "{}", summary.card).and_then(|()| {
                    summary.tensors.iter().filter(|_| tensors).try_for_each(|t| {
                        writeln!(out, "{:<40} {:<6} {:?} @{}", t.name, t.ggml_type, t.shape, t.file_offset)
                    })
                })
            }
        }
        Command::Tokenize { model, text, tokenizer, json } => {
            let file = GgufFile::open(&model).map_err(text_err)?;
            let tokenizer = tokenizer.load(&file)?;
            let ids = tokenizer.encode(&text, true, true).map_err(text_err)?;
            let tokens = tokenizer.token_texts(&ids).map_err(text_err)?;
            if json {
                writeln!(out, "{}", json!({ "ids": ids, "tokens": tokens }))
            } else {
                ids.iter().zip(&tokens).try_for_each(|(id, token)| writeln!(out, "{id:>7} {token:?}"))
            }
        }
        Command::Generate {
            model,
            prompt,
            max_tokens,
            temperature,
            top_k,
            top_p,
            repeat_penalty,
            seed,
            stop,
            ablations,
            json,
        } => {
            let any = loader.load(&model, &prompt.tokenizer)?;
            with_model!(any, loaded => {
                let ids = prompt_ids(&loaded.tokenizer, &prompt)?;
                let request = GenerateRequest {
                    max_tokens,
                    sampling: Sampling { temperature, top_k, top_p, repetition_penalty: repeat_penalty, seed },
                    stop_strings: stop,
                    interventions: ablations.mask(loaded.model.config())?.interventions(),
                };
                let mut printed = 0;
                let mut stream_error = None;
                let generation = generate(&loaded.model, &loaded.tokenizer, &ids, &request, |_, text| {
                    if json {
                        return true;
                    }
                    // Print only whole characters; a token may end inside a multi-byte one.
                    let complete = text.trim_end_matches('\u{fffd}');
                    if complete.len() > printed && complete.is_char_boundary(printed) {
                        if let Err(e) = write!(out, "{}", &complete[printed..]).and_then(|()| out.flush()) {
                            stream_error = Some(e);
                            return false;
                        }
                        printed = complete.len();
                    }
                    true
                })
                .map_err(text_err)?;
                match stream_error {
                    Some(e) => Err(e),
                    None if json => writeln!(
                        out,
                        "{}",
                        json!({ "text": generation.text, "ids": generation.ids, "stop_reason": generation.stop_reason })
                    ),
                    None => writeln!(out, "{}", generation.text.get(printed..).unwrap_or("")),
                }
            })
        }
        Command::Bench { model, short, long } => {
            let start = std::time::Instant::now();
            let any = loader.load(&model, &TokenizerArg { tokenizer: None })?;
            with_model!(any, loaded => {
                let load_s = start.elapsed().as_secs_f64();
                let read = |path: &Path| std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()));
                // Tokenised as the llama.cpp harness does: BOS where the model asks, no special tokens.
                let short = loaded.tokenizer.encode(read(&short)?.trim(), true, false).map_err(text_err)?;
                let long = loaded.tokenizer.encode(read(&long)?.trim(), true, false).map_err(text_err)?;
                let report = bench::run(&loaded.model, load_s, &short, &long)?;
                let mut report = serde_json::to_value(&report).map_err(text_err)?;
                report["backend"] = json!(loader.backend_name()?);
                writeln!(out, "{report}")
            })
        }
        Command::BenchAttribution { model, prompt } => {
            let any = loader.load(&model, &TokenizerArg { tokenizer: None })?;
            with_model!(any, loaded => {
                let ids = loaded.tokenizer.encode(&prompt, true, false).map_err(text_err)?;
                let unembedding = glassbox::interp::lens::Unembedding::new(&loaded.model).map_err(text_err)?;
                let report = bench::attribution(&unembedding, &loaded.tokenizer, &ids)?;
                writeln!(out, "{report}")
            })
        }
        Command::Attribute(args) => interp::attribute(&mut out, &loader, &args)?,
        Command::Lens(args) => interp::lens(&mut out, &loader, &args)?,
        Command::AblationScan(args) => interp::ablation_scan(&mut out, &loader, &args)?,
        Command::Cna(args) => interp::cna(&mut out, &loader, &args)?,
        Command::TokenRewards(args) => interp::token_rewards(&mut out, &loader, &args)?,
        Command::MaskEval(args) => interp::mask_eval(&mut out, &loader, &args)?,
        Command::Experiment { experiment } => interp::experiment(&mut out, &loader, &experiment)?,
        #[cfg(feature = "webgpu")]
        Command::BenchKernels => writeln!(out, "{}", bench::kernels()?),
        Command::Evaluate(args) => tasks::evaluate(&mut out, &args)?,
        Command::Classify(args) => tasks::classify(&loader, &args)?,
        Command::Index { command } => tasks::index(&mut out, &loader, &command)?,
        Command::Align(args) => tasks::align(&mut out, &loader, &args)?,
        Command::Vqa { input, top_k, json } => vision::vqa(&mut out, &loader, &input, top_k, json)?,
        Command::Heatmap(args) => vision::heatmap(&mut out, &loader, &args)?,
        Command::LensImage(args) => vision::lens_image(&mut out, &loader, &args)?,
        Command::TrainVqaFixture(args) => vision::train_fixture(&mut out, &args)?,
        Command::Scene(args) => vision::scene(&mut out, &args)?,
        Command::CompareBackends(args) => {
            let tested = Loader::new(cli.backend).with_float_weights(args.float_weights);
            parity::compare_backends(&mut out, &tested, &args)?
        }
        Command::SynthModel {
            tokenizer_from,
            layers,
            width,
            ffn_width,
            heads,
            kv_heads,
            context_length,
            weight_type,
            seed,
            output,
        } => {
            let weight_type = GgmlType::from_name(&weight_type.to_uppercase())
                .ok_or_else(|| format!("unknown tensor type {weight_type:?}"))?;
            let shape = SyntheticLlama {
                shape: LlamaShape { layers, width, ffn_width, heads, kv_heads, context_length },
                weight_type,
                seed,
            };
            let source = GgufFile::open(&tokenizer_from).map_err(text_err)?;
            let (metadata, tensors) = shape.build(&source.header).map_err(text_err)?;
            write_gguf_file(&output, &metadata, &tensors).map_err(|e| format!("{}: {e}", output.display()))?;
            let bytes: usize = tensors.iter().map(|t| t.data.len()).sum();
            writeln!(out, "{}: {} tensors, {bytes} bytes of weights", output.display(), tensors.len())
        }
        Command::Logits { model, prompt, top_k, ablations, json } => {
            let any = loader.load(&model, &prompt.tokenizer)?;
            with_model!(any, loaded => {
                let ids = prompt_ids(&loaded.tokenizer, &prompt)?;
                let mut cache = loaded.model.new_cache();
                let interventions = ablations.mask(loaded.model.config())?.interventions();
                let top = loaded.model.next_token_top_k(&ids, &mut cache, &interventions, top_k).map_err(text_err)?;
                let tokens = loaded.tokenizer.token_texts(&top.ids).map_err(text_err)?;
                let logprobs = top.values.iter().map(|v| v - top.log_sum_exp);
                if json {
                    let top: Vec<_> = top
                        .ids
                        .iter()
                        .zip(&tokens)
                        .zip(logprobs)
                        .map(|((&id, token), logprob)| json!({ "id": id, "token": token, "logprob": logprob }))
                        .collect();
                    writeln!(out, "{}", json!({ "top": top }))
                } else {
                    top.ids.iter().zip(&tokens).zip(logprobs).try_for_each(|((&id, token), logprob)| {
                        writeln!(out, "{logprob:>9.4} {id:>7} {token:?}")
                    })
                }
            })
        }
    };
    match written {
        // A closed pipe (`glassbox info --tensors m.gguf | head`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(text_err),
    }
}
