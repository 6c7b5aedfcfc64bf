//! The `glassbox` command line. Every command takes `--json`; the names and flags are a
//! contract that scripts rely on.

#[cfg(feature = "lab")]
mod bench;
mod compute;
mod exam;
mod harmonic;
mod interp;
#[cfg(feature = "lab")]
mod lab;
mod model;
mod parity;
mod probe;
mod tasks;
mod terminal;
mod vision;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use glassbox::gguf::GgufFile;
use glassbox::hooks::Intervention;
use glassbox::interp::ablation::Mask;
use glassbox::interp::steering::SteeringVector;
use glassbox::model::Config;
use glassbox::tokenizer::{ChatMessage, Tokenizer};

use compute::{BackendChoice, Loader};

#[derive(Parser)]
#[command(name = "glassbox", version, about = "Look inside a language model on your own device")]
struct Cli {
    /// Where to compute: `auto` takes CUDA when built in and a GPU opens, else the CPU.
    #[arg(long, global = true, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// Print the result as JSON (the commands that always print JSON ignore it).
    #[arg(long, global = true)]
    json: bool,
    /// Threads of the CPU kernels (default: one per physical core).
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a GGUF model's card: architecture, sizes, tokenizer and tensor types.
    Info(model::InfoArgs),
    /// Split text into the model's tokens.
    Tokenize(model::TokenizeArgs),
    /// Generate a continuation of a prompt.
    Generate(model::GenerateArgs),
    /// The most likely next tokens after a prompt, with log-probabilities.
    Logits(model::LogitsArgs),
    /// Record named activations over a prompt into a safetensors file.
    Record(model::RecordArgs),
    /// Log-probability-increase attribution of layers, heads, positions and neurons.
    Attribute(interp::AttributeArgs),
    /// Activation patching: how much of the answer each layer's residual at each position carries.
    Patch(interp::PatchArgs),
    /// A steering vector: the difference of mean residuals between two prompt sets.
    SteerVector(interp::SteerVectorArgs),
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
    /// Compare `--backend` with the CPU on a prompt list: top-1 tokens and top-10 heads.
    CompareBackends(parity::CompareArgs),
    /// Linear probes on a recorded activation: train (with cross-validated accuracy per hook)
    /// and apply.
    Probe {
        #[command(subcommand)]
        command: probe::ProbeCommand,
    },
    /// What quantisation does to the circuit: each prompt with the file's quantised weights and
    /// with them dequantised to f32 (residual stream by layer, top-1, shared top heads and neurons).
    CompareWeights(parity::CompareWeightsArgs),
    /// Score predictions against gold labels (JSONL, matched by id): accuracy, macro-, micro- and
    /// weighted F1, the confusion matrix, ROUGE of explanations, the FMD challenge score (JSON);
    /// with `--task exam`, exam replies' letters against the questions' answers, per profession
    /// and subject.
    Evaluate(tasks::EvaluateArgs),
    /// Classify JSONL rows with a claim task: label probabilities, and optionally the
    /// explanation, evidence tokens, affect features and retrieved examples (JSONL out).
    Classify(tasks::ClassifyArgs),
    /// Retrieval indexes for RAEmoLLM's few-shot prompts.
    Index {
        #[command(subcommand)]
        command: tasks::IndexCommand,
    },
    /// EMPEC: answer multiple-choice exam questions (greedy reply or option-letter scoring), read
    /// each reply's letter as eval_empec does, and print the accuracy per profession and subject.
    Exam(exam::ExamArgs),
    /// HARMONIC: private tabular synthesis with the model, its baselines, and the privacy and
    /// fidelity of a synthetic table.
    Harmonic {
        #[command(subcommand)]
        command: harmonic::HarmonicCommand,
    },
    /// MetaAligner: edit an answer to improve it on the chosen objectives.
    Align(tasks::AlignArgs),
    /// LLaVA: the answer to a question about an image, with its probability.
    Vqa(vision::VqaArgs),
    /// LLaVA: which image patches drive the answer (the seed's LPI map, or a baseline).
    Heatmap(vision::HeatmapArgs),
    /// LLaVA: the visual logit lens, the top tokens of each image position at chosen layers.
    LensImage(vision::LensImageArgs),
    /// Draw a scene of the shapes task (PNG) and print its prompt, answer and shapes (JSON).
    Scene(vision::SceneArgs),
    /// Write a llama-architecture GGUF with random weights (for speed measurements only), with
    /// the tokenizer of an existing GGUF.
    SynthModel(model::SynthModelArgs),
    /// Measure prefill and decode speed and peak memory (set RAYON_NUM_THREADS for threads).
    #[cfg(feature = "lab")]
    Bench(bench::BenchArgs),
    /// Time attribution against plain forward passes of the same prompt (JSON).
    #[cfg(feature = "lab")]
    BenchAttribution(bench::BenchAttributionArgs),
    /// Time each WebGPU kernel on SmolLM2's shapes: GB/s and GFLOP/s (JSON).
    #[cfg(all(feature = "lab", feature = "webgpu"))]
    BenchKernels,
    /// Run a committed experiment.
    #[cfg(feature = "lab")]
    Experiment {
        #[command(subcommand)]
        experiment: lab::Experiment,
    },
    /// Train the LLaVA-architecture fixture on the shapes task and write its mmproj and language
    /// model GGUFs (`make fixtures`).
    #[cfg(feature = "lab")]
    TrainVqaFixture(lab::TrainFixtureArgs),
}

#[derive(Args)]
pub(crate) struct TokenizerArg {
    /// A tokenizer.json to use instead of the vocabulary inside the GGUF.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
}

impl TokenizerArg {
    /// Whether a tokenizer.json was given.
    pub(crate) fn is_given(&self) -> bool {
        self.tokenizer.is_some()
    }

    pub(crate) fn load(&self, file: &GgufFile) -> Result<Tokenizer, String> {
        match &self.tokenizer {
            None => Tokenizer::from_gguf(&file.header).map_err(text_err),
            Some(path) => {
                let json = read_file(path)?;
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

/// The changes a command may make inside the forward pass: ablations and steering.
#[derive(Args)]
pub(crate) struct InterventionArgs {
    #[command(flatten)]
    ablations: AblationArgs,
    /// Add a steering vector (from `steer-vector`) to the residual leaving a layer, as
    /// FILE@LAYER:COEFFICIENT (repeatable): `--steer love.safetensors@6:4`.
    #[arg(long)]
    steer: Vec<String>,
}

impl InterventionArgs {
    pub(crate) fn interventions(&self, config: &Config) -> Result<Vec<Intervention>, String> {
        let mut interventions = self.ablations.mask(config)?.interventions();
        for spec in &self.steer {
            let bad = || format!("--steer {spec:?}: expected FILE@LAYER:COEFFICIENT");
            let (file, at) = spec.rsplit_once('@').ok_or_else(bad)?;
            let (layer, coefficient) = at.split_once(':').ok_or_else(bad)?;
            let (layer, coefficient): (usize, f32) =
                (layer.parse().map_err(|_| bad())?, coefficient.parse().map_err(|_| bad())?);
            let bytes = read_file(std::path::Path::new(file))?;
            let vector = SteeringVector::from_safetensors(&bytes).map_err(|e| format!("{file}: {e}"))?;
            interventions.push(vector.at(layer, coefficient));
        }
        Ok(interventions)
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("glassbox: {}", terminal::escape_controls(&message));
            ExitCode::FAILURE
        }
    }
}

/// The bytes of the file at `path`, or an error naming it.
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn text_err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A command's outcome: a usage or model error, or else the result of writing its output.
pub(crate) type Written = Result<std::io::Result<()>, String>;

pub(crate) fn print_json(out: &mut impl Write, value: &impl serde::Serialize) -> Written {
    Ok(writeln!(out, "{}", serde_json::to_string(value).map_err(text_err)?))
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

/// Runs one command: a dispatch to the function that implements it.
fn run(cli: Cli) -> Result<(), String> {
    let out = &mut terminal::Escaped::new(std::io::stdout().lock());
    let threads = cli.threads.map(usize::from);
    let loader = Loader::new(cli.backend).with_threads(threads);
    let json = cli.json;
    let written = match cli.command {
        Command::Info(args) => model::info(out, &args, json)?,
        Command::Tokenize(args) => model::tokenize(out, &args, json)?,
        Command::Generate(args) => model::generate(out, &loader, &args, json)?,
        Command::Logits(args) => model::logits(out, &loader, &args, json)?,
        Command::Record(args) => model::record(out, &loader, &args, json)?,
        Command::Attribute(args) => {
            let loader = Loader::new(cli.backend).with_threads(threads).with_float_weights(args.float_weights);
            interp::attribute(out, &loader, &args, json)?
        }
        Command::Lens(args) => interp::lens(out, &loader, &args, json)?,
        Command::Patch(args) => interp::patch(out, &loader, &args, json)?,
        Command::SteerVector(args) => interp::steer_vector(out, &loader, &args, json)?,
        Command::AblationScan(args) => interp::ablation_scan(out, &loader, &args, json)?,
        Command::Cna(args) => interp::cna(out, &loader, &args, json)?,
        Command::TokenRewards(args) => interp::token_rewards(out, &loader, &args, json)?,
        Command::MaskEval(args) => interp::mask_eval(out, &loader, &args, json)?,
        Command::CompareBackends(args) => {
            let tested = Loader::new(cli.backend).with_threads(threads).with_float_weights(args.float_weights);
            parity::compare_backends(out, &tested, &args, json)?
        }
        Command::CompareWeights(args) => {
            let float = Loader::new(cli.backend).with_threads(threads).with_float_weights(true);
            parity::compare_weights(out, &loader, &float, &args, json)?
        }
        Command::Probe { command } => probe::probe(out, &loader, &command, json)?,
        Command::Evaluate(args) => tasks::evaluate(out, &args)?,
        Command::Classify(args) => tasks::classify(&loader, &args)?,
        Command::Index { command } => tasks::index(out, &loader, &command)?,
        Command::Exam(args) => exam::exam(out, &loader, &args)?,
        Command::Harmonic { command } => harmonic::harmonic(out, &loader, &command)?,
        Command::Align(args) => tasks::align(out, &loader, &args, json)?,
        Command::Vqa(args) => vision::vqa(out, &loader, &args, json)?,
        Command::Heatmap(args) => vision::heatmap(out, &loader, &args, json)?,
        Command::LensImage(args) => vision::lens_image(out, &loader, &args, json)?,
        Command::Scene(args) => vision::scene(out, &args)?,
        Command::SynthModel(args) => model::synth_model(out, &args)?,
        #[cfg(feature = "lab")]
        Command::Bench(args) => bench::bench(out, &loader, &args)?,
        #[cfg(feature = "lab")]
        Command::BenchAttribution(args) => bench::bench_attribution(out, &loader, &args)?,
        #[cfg(all(feature = "lab", feature = "webgpu"))]
        Command::BenchKernels => writeln!(out, "{}", bench::kernels()?),
        #[cfg(feature = "lab")]
        Command::Experiment { experiment } => lab::experiment(out, &loader, &experiment, json)?,
        #[cfg(feature = "lab")]
        Command::TrainVqaFixture(args) => lab::train_fixture(out, &args)?,
    };
    match written {
        // A closed pipe (`glassbox info --tensors m.gguf | head`) is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(text_err),
    }
}
