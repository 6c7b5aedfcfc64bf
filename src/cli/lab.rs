//! The research commands (feature `lab`): the committed experiments and the LLaVA fixture's
//! trainer, over `glassbox::lab`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use glassbox::gguf::write::write_gguf_file;
use glassbox::gguf::GgufFile;
use glassbox::interp::lens::Unembedding;
use glassbox::lab::arithmetic::{run_arithmetic, ExperimentOptions};
use glassbox::lab::steering::steering_experiment;
use glassbox::lab::train_fixture::{train, FixtureShape, Schedule};
use glassbox::lab::vqa_heatmap::vqa_heatmap_experiment;
use glassbox::model::synthetic::LlamaShape;
use glassbox::tasks::affect::Vader;
use glassbox::vision::clip::{ClipConfig, ClipTower};
use glassbox::with_model;
use serde_json::json;

use super::compute::Loader;
use super::{print_json, text_err, TokenizerArg, Written};

#[derive(Subcommand)]
pub enum Experiment {
    /// Single-digit additions: accuracy, head agreement (LPI vs ablation scan), neuron
    /// faithfulness and CNA.
    Arithmetic {
        model: PathBuf,
        /// Analyse at most this many correctly answered prompts.
        #[arg(long)]
        max_analysed: Option<usize>,
        /// Run the head-ablation scan (271 forward passes each) on this many analysed prompts.
        #[arg(long, default_value_t = 5)]
        scan_prompts: usize,
        #[arg(long, default_value_t = 1000)]
        exact_neurons: usize,
    },
    /// LLaVA on fresh scenes of the shapes task: answer accuracy, and the pointing game,
    /// deletion AUC and cost of the LPI heatmap, the attention-mean and occlusion baselines.
    VqaHeatmap(VqaExperimentArgs),
    /// Steering with "I love" minus "I hate": VADER compound of continuations of neutral prompts,
    /// unsteered, steered and pushed by a random vector of the same norm.
    Steering {
        model: PathBuf,
        #[arg(long, default_value_t = 4)]
        layer: usize,
        #[arg(long, default_value_t = 8.0)]
        coefficient: f32,
        #[arg(long, default_value_t = 24)]
        max_tokens: usize,
        /// The folder with vader_lexicon.txt and emoji_utf8_lexicon.txt (`make setup` fills it).
        #[arg(long, default_value = "models/lexicons")]
        lexicons: PathBuf,
    },
}

pub fn experiment(out: &mut impl Write, loader: &Loader, experiment: &Experiment, json: bool) -> Written {
    let (model, max_analysed, scan_prompts, exact_neurons) = match experiment {
        Experiment::Arithmetic { model, max_analysed, scan_prompts, exact_neurons } => {
            (model, max_analysed, scan_prompts, exact_neurons)
        }
        Experiment::VqaHeatmap(args) => return vqa_experiment(out, loader, args, json),
        Experiment::Steering { model, layer, coefficient, max_tokens, lexicons } => {
            let read = |name: &str| {
                std::fs::read_to_string(lexicons.join(name))
                    .map_err(|e| format!("{}: {e}", lexicons.join(name).display()))
            };
            let vader = Vader::new(&read("vader_lexicon.txt")?, &read("emoji_utf8_lexicon.txt")?).map_err(text_err)?;
            let any = loader.load(model, &TokenizerArg { tokenizer: None })?;
            return with_model!(any, loaded => {
                let report = steering_experiment(&loaded, &vader, *layer, *coefficient, *max_tokens).map_err(text_err)?;
                if json {
                    return print_json(out, &report);
                }
                Ok(writeln!(out, "{}", serde_json::to_string_pretty(&report).map_err(text_err)?))
            });
        }
    };
    let any = loader.load(model, &TokenizerArg { tokenizer: None })?;
    with_model!(any, loaded => {
        let unembedding = Unembedding::new(&loaded.model).map_err(text_err)?;
        let options = ExperimentOptions {
            max_analysed: *max_analysed,
            scan_prompts: *scan_prompts,
            exact_neurons: *exact_neurons,
            ..Default::default()
        };
        let report = run_arithmetic(&unembedding, &loaded.tokenizer, &options).map_err(text_err)?;
        if json {
            return print_json(out, &report);
        }
        Ok(writeln!(out, "{}", serde_json::to_string_pretty(&report).map_err(text_err)?))
    })
}

/// Where the trained fixture goes, and how it is trained.
#[derive(Args)]
pub struct TrainFixtureArgs {
    /// The GGUF whose tokenizer the language model takes (SmolLM2's).
    #[arg(long)]
    tokenizer_from: PathBuf,
    #[arg(long)]
    mmproj_out: PathBuf,
    #[arg(long)]
    lm_out: PathBuf,
    #[arg(long, default_value_t = Schedule::default().steps)]
    steps: usize,
    #[arg(long, default_value_t = Schedule::default().batch)]
    batch: usize,
    #[arg(long, default_value_t = Schedule::default().learning_rate)]
    learning_rate: f64,
    #[arg(long, default_value_t = Schedule::default().seed)]
    seed: u64,
    /// The language model's shape (SmolLM2's is 30 layers, 576 wide, 1536 FFN, 9 heads, 3 KV
    /// heads: a few steps at that shape time what training through it would cost).
    #[arg(long, default_value_t = FixtureShape::default().lm.layers)]
    lm_layers: usize,
    #[arg(long, default_value_t = FixtureShape::default().lm.width)]
    lm_width: usize,
    #[arg(long, default_value_t = FixtureShape::default().lm.ffn_width)]
    lm_ffn_width: usize,
    #[arg(long, default_value_t = FixtureShape::default().lm.heads)]
    lm_heads: usize,
    #[arg(long, default_value_t = FixtureShape::default().lm.kv_heads)]
    lm_kv_heads: usize,
}

/// Trains the LLaVA-architecture fixture and writes its mmproj and language model; the log goes
/// to stderr as JSON lines.
pub fn train_fixture(out: &mut impl Write, args: &TrainFixtureArgs) -> Written {
    let source = GgufFile::open(&args.tokenizer_from).map_err(|e| format!("{}: {e}", args.tokenizer_from.display()))?;
    let defaults = FixtureShape::default();
    let shape = FixtureShape {
        lm: LlamaShape {
            layers: args.lm_layers,
            width: args.lm_width,
            ffn_width: args.lm_ffn_width,
            heads: args.lm_heads,
            kv_heads: args.lm_kv_heads,
            ..defaults.lm.clone()
        },
        ..defaults
    };
    let schedule = Schedule {
        steps: args.steps,
        batch: args.batch,
        learning_rate: args.learning_rate,
        seed: args.seed,
        ..Schedule::default()
    };
    let trained = train(&shape, &schedule, &source.header, |entry| eprintln!("{}", json!(entry))).map_err(text_err)?;
    for (path, (metadata, tensors)) in [(&args.mmproj_out, &trained.mmproj), (&args.lm_out, &trained.lm)] {
        write_gguf_file(path, metadata, tensors).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let last = trained.log.last().ok_or("no training steps were run")?;
    Ok(writeln!(
        out,
        "{}",
        json!({ "mmproj": args.mmproj_out, "lm": args.lm_out, "steps": args.steps, "seconds": last.seconds, "final": last })
    ))
}

#[derive(Args)]
pub struct VqaExperimentArgs {
    mmproj: PathBuf,
    model: PathBuf,
    /// The scene stream: scenes `0..n` of this seed (the fixture trained on seed 1).
    #[arg(long, default_value_t = 2)]
    seed: u64,
    #[arg(long, default_value_t = 100)]
    n: usize,
}

pub fn vqa_experiment(out: &mut impl Write, loader: &Loader, args: &VqaExperimentArgs, json: bool) -> Written {
    let mmproj = GgufFile::open(&args.mmproj).map_err(|e| format!("{}: {e}", args.mmproj.display()))?;
    let tower_config = ClipConfig::from_gguf(&mmproj.header).map_err(text_err)?;
    let preprocess = tower_config.preprocess(false);
    let any = loader.load(&args.model, &TokenizerArg { tokenizer: None })?;
    with_model!(any, loaded => {
        let tower = ClipTower::load(tower_config.clone(), &mmproj, loaded.model.config().width).map_err(text_err)?;
        let unembedding = Unembedding::new(&loaded.model).map_err(text_err)?;
        let report = vqa_heatmap_experiment(&tower, &unembedding, &loaded.tokenizer, &preprocess, args.seed, args.n, |i| {
            if !json && i % 10 == 0 {
                eprintln!("scene {i} of {}", args.n);
            }
        })
        .map_err(text_err)?;
        let text = if json { serde_json::to_string(&report) } else { serde_json::to_string_pretty(&report) };
        Ok(writeln!(out, "{}", text.map_err(text_err)?))
    })
}
