//! The interpretability commands: each parses its flags, calls `glassbox::interp`, and prints
//! the result's serde form (`--json`) or a short table.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use glassbox::interp::ablation::{evaluate_mask, head_ablation_scan, prompt_set, Mask};
use glassbox::interp::attribution::{
    attribute as run_attribution, ffn_neuron_lpi, AttributionOptions, DEFAULT_GRAPH_EDGES,
};
use glassbox::interp::cna::{comparative_neuron_analysis, CnaOptions};
use glassbox::interp::input_attribution::{input_attribution, InputAttribution, InputMethod};
use glassbox::interp::lens::{logit_lens, LensRequest, LensScale, Unembedding};
use glassbox::interp::patching::{activation_patching, PatchSite, PatchingMethod};
use glassbox::interp::rewards::{check_shared_tokenizer, token_rewards as run_token_rewards, DEFAULT_FRACTION};
use glassbox::interp::steering::SteeringVector;
use glassbox::interp::HeadId;
use glassbox::tokenizer::Tokenizer;
use glassbox::with_model;

use super::compute::{advance, progress_bar, Loader};
use super::{print_json, prompt_ids, text_err, AblationArgs, PromptArgs, TokenizerArg, Written};

/// A token given as text must be exactly one token.
fn target_id(tokenizer: &Tokenizer, text: &Option<String>) -> Result<Option<u32>, String> {
    let Some(text) = text else { return Ok(None) };
    tokenizer.single_token(text).map(Some).map_err(|e| format!("--target: {e}"))
}

/// What `attribute` and `cna` share: which token, how many neurons to list and to score exactly.
#[derive(Args)]
struct ScoringArgs {
    /// The token to explain (default: the model's top-1).
    #[arg(long)]
    target: Option<String>,
    /// How many neurons (and value and query neurons) to list.
    #[arg(long, default_value_t = 100)]
    top: usize,
    /// Neurons, by first-order score, that get an exact LPI.
    #[arg(long, default_value_t = 1000)]
    exact_neurons: usize,
}

#[derive(Args)]
pub struct AttributeArgs {
    model: PathBuf,
    #[command(flatten)]
    prompt: PromptArgs,
    #[command(flatten)]
    scoring: ScoringArgs,
    /// Score every FFN neuron exactly (about a thousand forward passes' worth of work).
    #[arg(long)]
    exact_all: bool,
    /// Neurons always scored exactly and listed, as LAYER.NEURON.
    #[arg(long, value_delimiter = ',')]
    neurons: Vec<String>,
    /// Also draw the attribution graph: every head's contribution from every position into the
    /// last one, scored to first order, the strongest `--graph-edges` of them exactly.
    #[arg(long)]
    graph: bool,
    /// How many of the graph's edges to score exactly (each costs one vocabulary projection).
    #[arg(long, default_value_t = DEFAULT_GRAPH_EDGES, requires = "graph")]
    graph_edges: usize,
    /// Also score each prompt token's embedding by its gradient: gradient × input, or integrated
    /// gradients (one forward and backward pass per quadrature point).
    #[arg(long, value_enum)]
    input_attribution: Option<InputAttributionArg>,
    /// The most backward passes integrated gradients may take (up to 1024); it stops sooner once
    /// its scores add up to the log-probability's change within 10⁻⁴ of it.
    #[arg(long, default_value_t = 256)]
    steps: usize,
    /// Integrated gradients' path starts from this token's embedding at every position rather
    /// than from zero (one token; use one for models whose activations are all zero at a zero
    /// input, Llama-family models without biases, and for Gemma 3's post-norms).
    #[arg(long)]
    baseline_token: Option<String>,
    /// Load every weight dequantised to f32 (about 4–8× the memory of a quantised file): the
    /// network that the gradients differentiate, whose forward pass does not round activations
    /// to 8 bits, so integrated gradients' completeness gap is the quadrature's alone.
    #[arg(long)]
    pub float_weights: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum InputAttributionArg {
    GradXInput,
    IntegratedGradients,
}

/// `attribute --json`'s output: the attribution, and the input attribution when asked for.
#[derive(serde::Serialize)]
struct AttributeReport<'a> {
    #[serde(flatten)]
    attribution: &'a glassbox::interp::attribution::Attribution,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_attribution: Option<InputAttribution>,
}

pub fn attribute(out: &mut impl Write, loader: &Loader, args: &AttributeArgs, json: bool) -> Written {
    let any = loader.load(&args.model, &args.prompt.tokenizer)?;
    with_model!(any, loaded => {
        let ids = prompt_ids(&loaded.tokenizer, &args.prompt)?;
        let options = AttributionOptions {
            target: target_id(&loaded.tokenizer, &args.scoring.target)?,
            exact_neurons: args.scoring.exact_neurons,
            exact_all: args.exact_all,
            always_exact: Mask::parse(&[], &args.neurons, loaded.model.config()).map_err(text_err)?.neurons.into_iter().collect(),
            top: args.scoring.top,
            graph_edges: args.graph.then_some(args.graph_edges),
            ..Default::default()
        };
        let unembedding = Unembedding::new(&loaded.model).map_err(text_err)?;
        let result = run_attribution(&unembedding, &loaded.tokenizer, &ids, &options).map_err(text_err)?;
        let input_attribution = match args.input_attribution {
            None => None,
            Some(method) => {
                let method = match method {
                    InputAttributionArg::GradXInput => InputMethod::GradientTimesInput,
                    InputAttributionArg::IntegratedGradients => {
                        let baseline = args.baseline_token.as_deref().map(|text| {
                            loaded.tokenizer.single_token(text).map_err(|e| format!("--baseline-token: {e}"))
                        });
                        InputMethod::IntegratedGradients { steps: args.steps, baseline: baseline.transpose()? }
                    }
                };
                let bar = progress_bar("input attribution {bar:30} {pos}/{len} backward passes", None);
                let scored = input_attribution(&loaded.model, &ids, result.target.id, method, &mut advance(&bar));
                bar.finish_and_clear();
                Some(scored.map_err(text_err)?)
            }
        };
        if json {
            return print_json(out, &AttributeReport { attribution: &result, input_attribution });
        }
        let t = &result.target;
        Ok((|| {
            writeln!(out, "target {:?} (id {}), log p = {:.4}", t.token, t.id, t.logprob)?;
            writeln!(out, "top heads (LPI):")?;
            for h in result.heads.iter().take(10) {
                writeln!(out, "  {:>2}.{:<2} {:+.4}", h.layer, h.head, h.score)?;
            }
            writeln!(out, "top FFN neurons (LPI; ~ = first-order):")?;
            for n in result.neurons.iter().take(10) {
                writeln!(out, "  {:>2}.{:<5} {:+.4}{}", n.layer, n.neuron, n.score, if n.exact { "" } else { " ~" })?;
            }
            if let Some(graph) = &result.graph {
                writeln!(out, "strongest graph edges (c = LPI through the head into the last position; {} of {} exact):", graph.edges.len(), graph.edges_scored)?;
                for e in graph.edges.iter().take(10) {
                    let token = &result.input_tokens[e.position];
                    writeln!(out, "  {:>2}.{:<2} from {:>3} {:<16} {:+.4}", e.layer, e.head, e.position, format!("{token:?}"), e.score)?;
                }
            }
            if let Some(input) = &input_attribution {
                match (input.steps, input.completeness_gap) {
                    (Some(steps), Some(gap)) => writeln!(
                        out,
                        "prompt tokens (integrated gradients, {steps} points; log p here {:.4}, at the baseline {:.4}, \
                         completeness gap {gap:.2e}):",
                        input.value,
                        input.baseline_value.unwrap_or(f32::NAN),
                    )?,
                    _ => writeln!(out, "prompt tokens (gradient × input):")?,
                }
                for (token, score) in result.input_tokens.iter().zip(&input.scores) {
                    writeln!(out, "  {:<16} {score:+.4}", format!("{token:?}"))?;
                }
            }
            Ok(())
        })())
    })
}

#[derive(Clone, Copy, ValueEnum)]
enum ScaleArg {
    /// The seed papers' lens: the final residual's RMS at each position.
    Fixed,
    /// The standard logit lens: each vector's own RMS.
    OwnRms,
}

#[derive(Args)]
pub struct LensArgs {
    model: PathBuf,
    #[command(flatten)]
    prompt: PromptArgs,
    /// Positions to project (default: all).
    #[arg(long, value_delimiter = ',')]
    positions: Option<Vec<usize>>,
    /// Layers to project (default: all).
    #[arg(long, value_delimiter = ',')]
    layers: Option<Vec<usize>>,
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    #[arg(long, value_enum, default_value_t = ScaleArg::Fixed)]
    scale: ScaleArg,
}

pub fn lens(out: &mut impl Write, loader: &Loader, args: &LensArgs, json: bool) -> Written {
    let any = loader.load(&args.model, &args.prompt.tokenizer)?;
    with_model!(any, loaded => {
        let ids = prompt_ids(&loaded.tokenizer, &args.prompt)?;
        let request = LensRequest {
            layers: args.layers.clone(),
            positions: args.positions.clone(),
            top_k: args.top_k,
            scale: match args.scale {
                ScaleArg::Fixed => LensScale::Fixed,
                ScaleArg::OwnRms => LensScale::OwnRms,
            },
        };
        let unembedding = Unembedding::new(&loaded.model).map_err(text_err)?;
        let result = logit_lens(&unembedding, &loaded.tokenizer, &ids, &request).map_err(text_err)?;
        if json {
            return print_json(out, &result);
        }
        Ok(result.cells.iter().try_for_each(|cell| {
            let tokens: Vec<String> = cell.tokens.iter().map(|t| format!("{:?} {:.3}", t.token, t.prob)).collect();
            writeln!(out, "layer {:>2} pos {:>3} {:?}: {}", cell.layer, cell.position, result.input_tokens[cell.position], tokens.join(", "))
        }))
    })
}

#[derive(Args)]
pub struct AblationScanArgs {
    model: PathBuf,
    #[command(flatten)]
    prompt: PromptArgs,
    #[arg(long)]
    target: Option<String>,
}

pub fn ablation_scan(out: &mut impl Write, loader: &Loader, args: &AblationScanArgs, json: bool) -> Written {
    let any = loader.load(&args.model, &args.prompt.tokenizer)?;
    with_model!(any, loaded => {
        let ids = prompt_ids(&loaded.tokenizer, &args.prompt)?;
        let target = match target_id(&loaded.tokenizer, &args.target)? {
            Some(id) => id,
            None => glassbox::interp::ablation::top_token(&loaded.model, &ids).map_err(text_err)?,
        };
        let scan = head_ablation_scan(&loaded.model, &ids, target).map_err(text_err)?;
        if json {
            return print_json(out, &scan);
        }
        Ok((|| {
            writeln!(out, "p(target id {}) = {:.4}; largest drops:", scan.target_id, scan.prob)?;
            scan.heads.iter().take(10).try_for_each(|h| writeln!(out, "  {:>2}.{:<2} {:+.4}", h.layer, h.head, h.drop))
        })())
    })
}

#[derive(Args)]
pub struct CnaArgs {
    model: PathBuf,
    #[command(flatten)]
    prompt: PromptArgs,
    /// The heads to ablate, as LAYER.HEAD.
    #[arg(long, value_delimiter = ',', required = true)]
    heads: Vec<String>,
    #[command(flatten)]
    scoring: ScoringArgs,
}

pub fn cna(out: &mut impl Write, loader: &Loader, args: &CnaArgs, json: bool) -> Written {
    let any = loader.load(&args.model, &args.prompt.tokenizer)?;
    with_model!(any, loaded => {
        let ids = prompt_ids(&loaded.tokenizer, &args.prompt)?;
        let c = loaded.model.config();
        let heads: Vec<HeadId> = Mask::parse(&args.heads, &[], c).map_err(text_err)?.heads.into_iter().collect();
        let options = CnaOptions {
            target: target_id(&loaded.tokenizer, &args.scoring.target)?,
            exact_neurons: args.scoring.exact_neurons,
            top: args.scoring.top,
            ..Default::default()
        };
        let unembedding = Unembedding::new(&loaded.model).map_err(text_err)?;
        let result = comparative_neuron_analysis(&unembedding, &loaded.tokenizer, &ids, &heads, &options).map_err(text_err)?;
        if json {
            return print_json(out, &result);
        }
        Ok(result.neurons.iter().take(20).try_for_each(|n| {
            writeln!(out, "{:>2}.{:<5} CNA {:+.4} (orig {:+.4}, ablated {:+.4})", n.layer, n.neuron, n.score, n.original, n.ablated)
        }))
    })
}

#[derive(Args)]
pub struct TokenRewardsArgs {
    oracle: PathBuf,
    reference: PathBuf,
    #[arg(long)]
    prompt: String,
    #[arg(long)]
    response: String,
    /// The fraction of response tokens selected.
    #[arg(long, default_value_t = DEFAULT_FRACTION)]
    k: f32,
    /// The response is a rejected one: select the lowest rewards.
    #[arg(long)]
    rejected: bool,
}

pub fn token_rewards(out: &mut impl Write, loader: &Loader, args: &TokenRewardsArgs, json: bool) -> Written {
    let none = TokenizerArg { tokenizer: None };
    let oracle = loader.load(&args.oracle, &none)?;
    let reference = loader.load(&args.reference, &none)?;
    let result = with_model!(oracle, oracle => with_model!(reference, reference => {
        check_shared_tokenizer((&oracle.model, &oracle.tokenizer), (&reference.model, &reference.tokenizer)).map_err(text_err)?;
        let prompt = oracle.tokenizer.encode(&args.prompt, true, true).map_err(text_err)?;
        let response = oracle.tokenizer.encode(&args.response, false, false).map_err(text_err)?;
        run_token_rewards(&oracle.model, &reference.model, &oracle.tokenizer, &prompt, &response, args.k, args.rejected)
            .map_err(text_err)?
    }));
    if json {
        return print_json(out, &result);
    }
    Ok(result.tokens.iter().try_for_each(|t| {
        writeln!(
            out,
            "{:>4} {:<16} r = {:+.4}{}",
            t.position,
            format!("{:?}", t.token),
            t.reward,
            if t.selected { "  *" } else { "" }
        )
    }))
}

#[derive(Args)]
pub struct MaskEvalArgs {
    model: PathBuf,
    #[command(flatten)]
    ablations: AblationArgs,
    /// Prune every FFN neuron of layers FROM_LAYER.. except the K with the highest mean LPI for
    /// the answers of the arithmetic set.
    #[arg(long, requires = "from_layer")]
    keep_top_neurons: Option<usize>,
    #[arg(long)]
    from_layer: Option<usize>,
}

pub fn mask_eval(out: &mut impl Write, loader: &Loader, args: &MaskEvalArgs, json: bool) -> Written {
    let any = loader.load(&args.model, &TokenizerArg { tokenizer: None })?;
    with_model!(any, loaded => {
        let items = prompt_set(&loaded.tokenizer).map_err(text_err)?;
        let c = loaded.model.config();
        let mut mask = args.ablations.mask(c)?;
        if let (Some(keep), Some(from_layer)) = (args.keep_top_neurons, args.from_layer) {
            let unembedding = Unembedding::new(&loaded.model).map_err(text_err)?;
            let mut mean = vec![0.0f32; c.layers * c.ffn_width];
            for item in &items {
                let scores = ffn_neuron_lpi(&unembedding, &item.ids, item.answer, 1000).map_err(text_err)?;
                mean.iter_mut().zip(scores).for_each(|(m, s)| *m += s / items.len() as f32);
            }
            let pruned = Mask::keep_top_neurons(c.layers, c.ffn_width, from_layer, &mean, keep).map_err(text_err)?;
            mask.neurons.extend(pruned.neurons);
        }
        let result = evaluate_mask(&loaded.model, &items, &mask).map_err(text_err)?;
        if json {
            return print_json(out, &result);
        }
        Ok(writeln!(
            out,
            "accuracy {:.3} -> {:.3} on {} prompts ({} heads, {} neurons masked)",
            result.before, result.after, result.n, result.masked_heads, result.masked_neurons
        ))
    })
}

#[derive(Args)]
pub struct PatchArgs {
    model: PathBuf,
    /// The prompt whose behaviour is traced.
    #[arg(long)]
    clean: String,
    /// The same prompt with the detail the answer depends on changed; as many tokens as --clean.
    #[arg(long)]
    corrupt: String,
    /// The clean prompt's answer, one token (a leading space is part of it: " Mary").
    #[arg(long)]
    answer: String,
    /// The corrupted prompt's answer, one token.
    #[arg(long)]
    wrong: String,
    /// The activation patched: the residual entering each layer, its attention or MLP output, or
    /// each head's output at every position (`head`: the grid's columns are heads).
    #[arg(long, value_enum, default_value_t = Site::ResidPre)]
    site: Site,
    /// `exact`: one patched forward pass per cell; `attribution`: every cell to first order from
    /// one backward pass (attribution patching); `both`, with the correlation of their cells.
    #[arg(long, value_enum, default_value_t = Method::Both)]
    method: Method,
    #[command(flatten)]
    tokenizer: TokenizerArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum Method {
    Exact,
    Attribution,
    Both,
}

#[derive(Clone, Copy, ValueEnum)]
enum Site {
    ResidPre,
    AttnOut,
    MlpOut,
    /// Each head's output at every position: the grid's columns are heads.
    Head,
}

/// Activation patching: `grid[layer][position]` (`[layer][head]` for `--site head`), 1 where the
/// clean activation restores the clean logit difference and 0 where it changes nothing.
pub fn patch(out: &mut impl Write, loader: &Loader, args: &PatchArgs, json: bool) -> Written {
    let any = loader.load(&args.model, &args.tokenizer)?;
    with_model!(any, loaded => {
        let tokenizer = &loaded.tokenizer;
        let encode = |text: &str| tokenizer.encode(text, true, true).map_err(text_err);
        let (clean, corrupt) = (encode(&args.clean)?, encode(&args.corrupt)?);
        let one_token = |flag: &str, text: &str| tokenizer.single_token(text).map_err(|e| format!("{flag}: {e}"));
        let (answer, wrong) = (one_token("--answer", &args.answer)?, one_token("--wrong", &args.wrong)?);
        let site = match args.site {
            Site::ResidPre => PatchSite::ResidPre,
            Site::AttnOut => PatchSite::AttnOut,
            Site::MlpOut => PatchSite::MlpOut,
            Site::Head => PatchSite::Head,
        };
        let bar = progress_bar("patching {bar:30} {pos}/{len} forward passes", None);
        let method = match args.method {
            Method::Exact => PatchingMethod::Exact,
            Method::Attribution => PatchingMethod::Attribution,
            Method::Both => PatchingMethod::Both,
        };
        let patched = activation_patching(&loaded.model, site, method, &clean, &corrupt, answer, wrong, &mut advance(&bar));
        bar.finish_and_clear();
        let patched = patched.map_err(text_err)?;
        let tokens = tokenizer.token_texts(&clean).map_err(text_err)?;
        if json {
            let corrupt_tokens = tokenizer.token_texts(&corrupt).map_err(text_err)?;
            return print_json(out, &patched.report(&tokens, &corrupt_tokens, &args.answer, &args.wrong));
        }
        let heading = format!(
            "logit({:?}) − logit({:?}): clean {:.3}, corrupted {:.3}",
            args.answer, args.wrong, patched.clean_metric, patched.corrupt_metric,
        );
        let columns: Vec<String> = if site.by_head() {
            (0..loaded.model.config().heads).map(|h| format!("{:>8}", format!("head {h}"))).collect()
        } else {
            tokens.iter().map(|t| format!("{:>8}", format!("{t:?}").chars().take(8).collect::<String>())).collect()
        };
        let by = if site.by_head() { "head" } else { "position" };
        let table = |title: &str, grid: &[Vec<f32>]| {
            let header = format!("{:>5} {}", "layer", columns.join(""));
            let rows = grid.iter().enumerate().map(|(layer, row)| {
                format!("{layer:>5} {}", row.iter().map(|v| format!("{v:>8.2}")).collect::<Vec<_>>().join(""))
            });
            [String::new(), format!("{title}, by layer (rows) and {by}"), header].into_iter().chain(rows).collect::<Vec<_>>()
        };
        let mut lines = vec![heading];
        if let Some(grid) = &patched.grid {
            lines.extend(table("restored fraction, patched", grid));
        }
        if let Some(grid) = &patched.attribution_grid {
            lines.extend(table("restored fraction to first order (attribution patching)", grid));
        }
        if let Some(r) = patched.correlation {
            lines.push(format!("\ncorrelation of the two grids' cells: {r:.3}"));
        }
        Ok(lines.into_iter().try_for_each(|line| writeln!(out, "{line}")))
    })
}

#[derive(Args)]
pub struct SteerVectorArgs {
    model: PathBuf,
    /// Prompts showing the behaviour, one per line.
    #[arg(long)]
    positive: PathBuf,
    /// Prompts showing its opposite, one per line.
    #[arg(long)]
    negative: PathBuf,
    /// The layer whose output (`blocks.L.hook_resid_post`) is contrasted.
    #[arg(long)]
    layer: usize,
    /// The safetensors file to write.
    #[arg(long)]
    output: PathBuf,
    #[command(flatten)]
    tokenizer: TokenizerArg,
}

/// Contrastive activation addition: the difference of mean last-position residuals leaving
/// `--layer` over the two prompt sets, for `--steer FILE@LAYER:COEFFICIENT`.
pub fn steer_vector(out: &mut impl Write, loader: &Loader, args: &SteerVectorArgs, json: bool) -> Written {
    let any = loader.load(&args.model, &args.tokenizer)?;
    with_model!(any, loaded => {
        let read = |path: &PathBuf| -> Result<Vec<Vec<u32>>, String> {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            text.lines()
                .filter(|line| !line.trim().is_empty())
                .map(|line| loaded.tokenizer.encode(line, true, true).map_err(text_err))
                .collect()
        };
        let (positive, negative) = (read(&args.positive)?, read(&args.negative)?);
        let vector = SteeringVector::contrast(&loaded.model, &positive, &negative, args.layer).map_err(text_err)?;
        std::fs::write(&args.output, vector.to_safetensors()).map_err(|e| format!("{}: {e}", args.output.display()))?;
        let norm = vector.vector.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
        if json {
            return print_json(out, &serde_json::json!({
                "output": args.output, "layer": args.layer, "positive": positive.len(), "negative": negative.len(), "norm": norm,
            }));
        }
        Ok(writeln!(
            out,
            "{}: layer {}, {} positive and {} negative prompts, norm {norm:.3}",
            args.output.display(),
            args.layer,
            positive.len(),
            negative.len()
        ))
    })
}
