//! The commands on a model file itself: `info`, `tokenize`, `generate`, `logits`, `record` and
//! `synth-model`.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use glassbox::generate::{generate as run_generation, GenerateRequest, Sampling};
use glassbox::gguf::write::write_gguf_file;
use glassbox::gguf::{GgmlType, GgufFile};
use glassbox::hooks::{Positions, DEFAULT_MAX_RECORDING_BYTES};
use glassbox::inspect::ModelSummary;
use glassbox::model::synthetic::{LlamaShape, SyntheticLlama};
use glassbox::with_model;
use serde_json::json;

use super::compute::Loader;
use super::{prompt_ids, text_err, InterventionArgs, PromptArgs, TokenizerArg, Written};

#[derive(Args)]
pub struct InfoArgs {
    model: PathBuf,
    /// Also list every tensor: name, type, shape (ggml order) and file offset.
    #[arg(long)]
    tensors: bool,
}

pub fn info(out: &mut impl Write, args: &InfoArgs, json: bool) -> Written {
    let file = GgufFile::open(&args.model).map_err(text_err)?;
    let summary = ModelSummary::from_gguf(&file.header).map_err(text_err)?;
    if json {
        let text = if args.tensors {
            serde_json::to_string_pretty(&summary)
        } else {
            serde_json::to_string_pretty(&summary.card)
        };
        return Ok(writeln!(out, "{}", text.map_err(text_err)?));
    }
    Ok(writeln!(out, "{}", summary.card).and_then(|()| {
        summary
            .tensors
            .iter()
            .filter(|_| args.tensors)
            .try_for_each(|t| writeln!(out, "{:<40} {:<6} {:?} @{}", t.name, t.ggml_type, t.shape, t.file_offset))
    }))
}

#[derive(Args)]
pub struct TokenizeArgs {
    model: PathBuf,
    text: String,
    #[command(flatten)]
    tokenizer: TokenizerArg,
}

pub fn tokenize(out: &mut impl Write, args: &TokenizeArgs, json: bool) -> Written {
    let file = GgufFile::open(&args.model).map_err(text_err)?;
    let tokenizer = args.tokenizer.load(&file)?;
    let ids = tokenizer.encode(&args.text, true, true).map_err(text_err)?;
    let tokens = tokenizer.token_texts(&ids).map_err(text_err)?;
    if json {
        return Ok(writeln!(out, "{}", json!({ "ids": ids, "tokens": tokens })));
    }
    Ok(ids.iter().zip(&tokens).try_for_each(|(id, token)| writeln!(out, "{id:>7} {token:?}")))
}

#[derive(Args)]
pub struct GenerateArgs {
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
    /// Never repeat a run of this many generated tokens (0: off).
    #[arg(long, default_value_t = 0)]
    no_repeat_ngram: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop when the output ends with this text (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Stop after this many sentences (0: no limit).
    #[arg(long, default_value_t = 0)]
    max_sentences: usize,
    /// Stop at the first blank line.
    #[arg(long)]
    one_paragraph: bool,
    #[command(flatten)]
    interventions: InterventionArgs,
}

/// Streams the text as it is generated, or prints `{ text, ids, stop_reason }` at the end.
pub fn generate(out: &mut impl Write, loader: &Loader, args: &GenerateArgs, json: bool) -> Written {
    let any = loader.load(&args.model, &args.prompt.tokenizer)?;
    with_model!(any, loaded => {
        let ids = prompt_ids(&loaded.tokenizer, &args.prompt)?;
        let request = GenerateRequest {
            max_tokens: args.max_tokens,
            sampling: Sampling {
                temperature: args.temperature,
                top_k: args.top_k,
                top_p: args.top_p,
                repetition_penalty: args.repeat_penalty,
                no_repeat_ngram: args.no_repeat_ngram,
                seed: args.seed,
            },
            stop_strings: args.stop.clone(),
            max_sentences: args.max_sentences,
            one_paragraph: args.one_paragraph,
            interventions: args.interventions.interventions(loaded.model.config())?,
        };
        let mut printed = 0;
        let mut stream_error = None;
        let generation = run_generation(&loaded.model, &loaded.tokenizer, &ids, &request, |_, text| {
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
        Ok(match stream_error {
            Some(e) => Err(e),
            None if json => writeln!(
                out,
                "{}",
                json!({ "text": generation.text, "ids": generation.ids, "stop_reason": generation.stop_reason })
            ),
            None => writeln!(out, "{}", generation.text.get(printed..).unwrap_or("")),
        })
    })
}

#[derive(Args)]
pub struct LogitsArgs {
    model: PathBuf,
    #[command(flatten)]
    prompt: PromptArgs,
    #[arg(long, default_value_t = 10)]
    top_k: usize,
    #[command(flatten)]
    interventions: InterventionArgs,
}

pub fn logits(out: &mut impl Write, loader: &Loader, args: &LogitsArgs, json: bool) -> Written {
    let any = loader.load(&args.model, &args.prompt.tokenizer)?;
    with_model!(any, loaded => {
        let ids = prompt_ids(&loaded.tokenizer, &args.prompt)?;
        let mut cache = loaded.model.new_cache();
        let interventions = args.interventions.interventions(loaded.model.config())?;
        let top = loaded.model.next_token_top_k(&ids, &mut cache, &interventions, args.top_k).map_err(text_err)?;
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
            return Ok(writeln!(out, "{}", json!({ "top": top })));
        }
        Ok(top
            .ids
            .iter()
            .zip(&tokens)
            .zip(logprobs)
            .try_for_each(|((&id, token), logprob)| writeln!(out, "{logprob:>9.4} {id:>7} {token:?}")))
    })
}

#[derive(Args)]
pub struct RecordArgs {
    model: PathBuf,
    #[command(flatten)]
    prompt: PromptArgs,
    /// The hooks, as TransformerLens names, comma-separated; `*` matches any part:
    /// `blocks.*.hook_resid_post,blocks.5.attn.hook_pattern`.
    #[arg(long)]
    hooks: String,
    /// The positions each hook records: all, last, or a list such as 0,3,5.
    #[arg(long, default_value = "all", value_parser = Positions::parse)]
    positions: Positions,
    /// The safetensors file to write.
    #[arg(long)]
    output: PathBuf,
    /// The largest recording to make, in bytes (the limit): it is held in memory until it is
    /// written.
    #[arg(long, default_value_t = DEFAULT_MAX_RECORDING_BYTES)]
    max_bytes: u64,
    #[command(flatten)]
    interventions: InterventionArgs,
}

/// Records the named hooks over a prompt (with any ablations or steering) into a safetensors file, one F32
/// tensor per hook named by the hook, and lists what it wrote.
pub fn record(out: &mut impl Write, loader: &Loader, args: &RecordArgs, json: bool) -> Written {
    let any = loader.load(&args.model, &args.prompt.tokenizer)?;
    with_model!(any, loaded => {
        let model = &loaded.model;
        let ids = prompt_ids(&loaded.tokenizer, &args.prompt)?;
        let interventions = args.interventions.interventions(model.config())?;
        let recording =
            model.record(&ids, &args.hooks, &args.positions, &interventions, args.max_bytes).map_err(text_err)?;
        let file = recording.to_safetensors();
        std::fs::write(&args.output, &file).map_err(|e| format!("{}: {e}", args.output.display()))?;
        let shapes: serde_json::Map<String, serde_json::Value> =
            recording.activations.iter().map(|(point, a)| (point.to_string(), json!(a.shape))).collect();
        if json {
            return Ok(writeln!(
                out,
                "{}",
                json!({ "output": args.output, "tokens": ids.len(), "bytes": file.len(), "hooks": shapes })
            ));
        }
        let heading = format!("{} ({} bytes, {} tokens)", args.output.display(), file.len(), ids.len());
        Ok(std::iter::once(heading)
            .chain(shapes.iter().map(|(name, shape)| format!("  {name:<32} {shape}")))
            .try_for_each(|line| writeln!(out, "{line}")))
    })
}

#[derive(Args)]
pub struct SynthModelArgs {
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
}

pub fn synth_model(out: &mut impl Write, args: &SynthModelArgs) -> Written {
    let weight_type = GgmlType::from_name(&args.weight_type.to_uppercase())
        .ok_or_else(|| format!("unknown tensor type {:?}", args.weight_type))?;
    let shape = SyntheticLlama {
        shape: LlamaShape {
            layers: args.layers,
            width: args.width,
            ffn_width: args.ffn_width,
            heads: args.heads,
            kv_heads: args.kv_heads,
            context_length: args.context_length,
        },
        weight_type,
        seed: args.seed,
    };
    let source = GgufFile::open(&args.tokenizer_from).map_err(text_err)?;
    let (metadata, tensors) = shape.build(&source.header).map_err(text_err)?;
    write_gguf_file(&args.output, &metadata, &tensors).map_err(|e| format!("{}: {e}", args.output.display()))?;
    let bytes: usize = tensors.iter().map(|t| t.data.len()).sum();
    Ok(writeln!(out, "{}: {} tensors, {bytes} bytes of weights", args.output.display(), tensors.len()))
}
