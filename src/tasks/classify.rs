//! One input through a task: label probabilities by constrained scoring, the seed's free
//! generation read by its regex, a streamed explanation, and evidence highlights.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Serialize;

use super::index::Index;
use super::templates::{Label, Shot, Spanned, Table, Task};
use super::{Result, TaskError};
use crate::backend::Backend;
use crate::generate::{generate, score_continuations, GenerateRequest, StopReason, Writing};
use crate::interp::attribution::position_scores;
use crate::interp::lens::Unembedding;
use crate::model::Model;
use crate::numeric::log_sum_exp;
use crate::tokenizer::{ChatMessage, Tokenizer};

/// What goes around a task's instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrapping {
    /// The seeds' `Human: \n{instr}\n\nAssistant:\n`.
    Seed,
    /// The model's own chat template, the instruction as the user's turn.
    Chat,
}

/// A prompt ready to run: its text (with where the input fields lie) and whether control
/// tokens in it are parsed (only a chat template writes them; in user text they stay text).
pub struct Prompt {
    pub spanned: Spanned,
    parse_special: bool,
}

/// Retrieved examples for RAEmoLLM's few-shot prompt, with the target's sentiment intensity in
/// the affect variant.
pub struct Examples<'i> {
    pub index: &'i Index,
    pub hits: &'i [super::index::Hit],
    pub target_intensity: Option<f64>,
}

/// The prompt for `fields`: the task's instruction, or its few-shot prompt around `examples`,
/// wrapped. Example texts are the task's retrieval target filled from each record's fields.
pub fn prompt(
    table: &Table,
    task: &Task,
    fields: &BTreeMap<&str, &str>,
    wrapping: Wrapping,
    tokenizer: &Tokenizer,
    examples: Option<&Examples>,
) -> Result<Prompt> {
    let instruction = match examples {
        None => task.instruction_spanned(fields)?,
        Some(examples) => {
            let (retrieval, target) = task.retrieval_target(fields)?;
            let texts: Vec<(String, &str, Option<f64>)> = examples
                .hits
                .iter()
                .map(|hit| {
                    let record = &examples.index.records[hit.record];
                    let record_fields: BTreeMap<&str, &str> =
                        record.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    let (_, text) = task.retrieval_target(&record_fields)?;
                    let intensity = examples.target_intensity.and(record.intensity);
                    Ok((text.text, record.label.as_str(), intensity))
                })
                .collect::<Result<_>>()?;
            if examples.target_intensity.is_some() {
                if let Some(hit) = examples.hits.iter().find(|h| examples.index.records[h.record].intensity.is_none()) {
                    return Err(TaskError::BadInput(format!(
                        "the affect variant needs each example's intensity; index record {:?} has none (build the index with --affect-model)",
                        examples.index.records[hit.record].id
                    )));
                }
            }
            let shots: Vec<(Shot, &str)> =
                texts.iter().map(|(text, label, intensity)| (Shot { text, intensity: *intensity }, *label)).collect();
            table.few_shot_spanned(&retrieval.task_prompt, &target, examples.target_intensity, &shots)
        }
    };
    Ok(match wrapping {
        Wrapping::Seed => Prompt { spanned: table.wrap_spanned(&instruction), parse_special: false },
        Wrapping::Chat => {
            let prompt = chat_prompt(tokenizer, &instruction.text)?;
            let at = prompt.spanned.text.find(&instruction.text).ok_or(TaskError::ChatTemplateAltersText)?;
            let spans = instruction.spans.iter().map(|(f, r)| (f.clone(), r.start + at..r.end + at)).collect();
            Prompt { spanned: Spanned { text: prompt.spanned.text, spans }, parse_special: true }
        }
    })
}

/// `user_turn` as the user's message in the model's chat template, ready for the reply.
pub fn chat_prompt(tokenizer: &Tokenizer, user_turn: &str) -> Result<Prompt> {
    let text =
        tokenizer.apply_chat_template(&[ChatMessage { role: "user".into(), content: user_turn.to_string() }], true)?;
    Ok(Prompt { spanned: Spanned { text, spans: Vec::new() }, parse_special: true })
}

/// Softmax-normalised label probabilities: `P(label) = Σ_{w ∈ words(label)} p(w | prompt) / Σ_{label'}
/// Σ_{w'} p(w' | prompt)`, each `p(w | prompt) = exp Σ_j log p(w_j | prompt, w_<j)` over the
/// word's tokens, all continuations sharing the prompt's KV cache.
#[derive(Clone, Debug, Serialize)]
pub struct LabelScores {
    pub labels: Vec<String>,
    pub probs: Vec<f64>,
    /// The index of the most probable label.
    pub best: usize,
    /// The first token of the predicted label's most probable word: what evidence explains.
    pub target_token: u32,
}

/// The prompt's text and its trailing spaces split apart: byte-level BPE and SentencePiece both
/// attach a space to the word after it, so `Prediction: ` + `True` is scored as `Prediction:` +
/// ` True`, the way the text tokenises in one piece.
fn split_trailing_spaces(text: &str) -> (&str, &str) {
    let trimmed = text.trim_end_matches(' ');
    (trimmed, &text[trimmed.len()..])
}

/// Returns the scores and the text they were scored after (the prompt, the answer prefix,
/// trailing spaces moved to the labels).
pub fn score_labels<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    prompt: &Prompt,
    answer_prefix: &str,
    labels: &[Label],
) -> Result<(LabelScores, String)> {
    if labels.is_empty() {
        return Err(TaskError::BadInput("the task has no labels to score".into()));
    }
    let full = format!("{}{answer_prefix}", prompt.spanned.text);
    let (head, spaces) = split_trailing_spaces(&full);
    let ids = encode_checked(model, tokenizer, head, prompt.parse_special)?;
    let mut candidates = Vec::new();
    let mut owner = Vec::new();
    for (l, label) in labels.iter().enumerate() {
        for word in &label.words {
            candidates.push(tokenizer.encode(&format!("{spaces}{word}"), false, false)?);
            owner.push(l);
        }
    }
    if ids.len() + candidates.iter().map(Vec::len).max().unwrap_or(0) > model.config().context_length {
        return Err(TaskError::TooLong { tokens: ids.len(), context: model.config().context_length });
    }
    let word_logprobs = score_continuations(model, &ids, &candidates, &[])?;
    let label_logprobs: Vec<f32> = (0..labels.len())
        .map(|l| {
            log_sum_exp(
                &owner.iter().zip(&word_logprobs).filter(|(&o, _)| o == l).map(|(_, &lp)| lp).collect::<Vec<_>>(),
            )
        })
        .collect();
    let total = log_sum_exp(&label_logprobs);
    let probs: Vec<f64> = label_logprobs.iter().map(|&lp| ((lp - total) as f64).exp()).collect();
    let best =
        (0..probs.len()).max_by(|&a, &b| probs[a].total_cmp(&probs[b]).then(b.cmp(&a))).expect("labels are not empty");
    let best_word = (0..candidates.len())
        .filter(|&c| owner[c] == best)
        .max_by(|&a, &b| word_logprobs[a].total_cmp(&word_logprobs[b]).then(b.cmp(&a)))
        .expect("every label has a word");
    let target_token = candidates[best_word][0];
    let labels = labels.iter().map(|l| l.name.clone()).collect();
    Ok((LabelScores { labels, probs, best, target_token }, head.to_string()))
}

fn encode_checked<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    text: &str,
    parse_special: bool,
) -> Result<Vec<u32>> {
    let ids = tokenizer.encode(text, true, parse_special)?;
    if ids.len() >= model.config().context_length {
        return Err(TaskError::TooLong { tokens: ids.len(), context: model.config().context_length });
    }
    Ok(ids)
}

/// The seed wrapper's next turn: a model that starts it has finished its answer.
const SEED_NEXT_TURN: &str = "\nHuman:";

/// The continuation of `text` that `request` asks for (its tokens capped by the context left),
/// each new piece passed to `on_text` as it comes; its answer `false` stops the generation with
/// [`TaskError::Stopped`].
pub(crate) fn continue_text<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    text: &str,
    parse_special: bool,
    mut request: GenerateRequest,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<String> {
    let ids = encode_checked(model, tokenizer, text, parse_special)?;
    request.max_tokens = request.max_tokens.min(model.config().context_length - ids.len());
    let mut shown = 0;
    let generation = generate(model, tokenizer, &ids, &request, |_, so_far| {
        // A token can end inside a multi-byte character: show only whole characters.
        if so_far.len() > shown && !so_far.ends_with('\u{FFFD}') {
            let go_on = on_text(&so_far[shown..]);
            shown = so_far.len();
            return go_on;
        }
        true
    })?;
    if generation.stop_reason == StopReason::Cancelled {
        return Err(TaskError::Stopped);
    }
    if generation.text.len() > shown {
        on_text(&generation.text[shown..]);
    }
    Ok(generation.text)
}

/// FMDLlama's explanation: the text the model writes after `Prediction: {label}.\nExplanation:`
/// (the seed's expected output format), as `request` asks (it stops also where the seed's next
/// turn would start), streamed through `on_text`.
pub fn explain<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    task: &Task,
    prompt: &Prompt,
    label: &str,
    mut request: GenerateRequest,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<String> {
    let (Some(answer), Some(explanation)) = (&task.answer_prefix, &task.explanation_prefix) else {
        return Err(TaskError::NoExplanationFormat(task.name.clone()));
    };
    let text = format!("{}{answer}{label}.\n{explanation}", prompt.spanned.text);
    request.stop_strings.push(SEED_NEXT_TURN.to_string());
    Ok(continue_text(model, tokenizer, &text, prompt.parse_special, request, on_text)?.trim().to_string())
}

/// The seed's own evaluation: a free greedy generation, the label read by its regex
/// (`Prediction: (\w+)`; for a task without an answer prefix, the label word the answer starts
/// with) and the explanation as the text after `Explanation:`.
pub struct FreeGeneration {
    pub text: String,
    pub label: Option<String>,
    pub explanation: Option<String>,
}

pub fn generate_freely<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    task: &Task,
    prompt: &Prompt,
    max_tokens: usize,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<FreeGeneration> {
    let request = Writing::GREEDY.request(max_tokens, vec![SEED_NEXT_TURN.to_string()]);
    let text = continue_text(model, tokenizer, &prompt.spanned.text, prompt.parse_special, request, on_text)?;
    let label = task.label_in_generation(&text).map(|l| l.name.clone());
    let explanation =
        task.explanation_prefix.as_deref().and_then(|p| text.find(p).map(|at| text[at + p.len()..].trim().to_string()));
    Ok(FreeGeneration { text, label, explanation })
}

/// An input token that drove the verdict: its text as the user wrote it, its character range
/// in that field, and `s_t` (see [`position_scores`]).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Evidence {
    pub field: String,
    pub token: String,
    pub start: usize,
    pub end: usize,
    pub score: f32,
}

/// The `top` input-field tokens with the highest `s_t` for the predicted label's first token,
/// through the `heads` top heads; `scored` is the text the labels were scored after. Positions
/// are ranked to first order and the best `2 × top` of the whole prompt scored exactly; only
/// exact scores are reported.
pub fn evidence<B: Backend>(
    unembedding: &Unembedding<B>,
    tokenizer: &Tokenizer,
    prompt: &Prompt,
    scored: &str,
    target: u32,
    heads: usize,
    top: usize,
) -> Result<Vec<Evidence>> {
    let (ids, offsets) = tokenizer.encode_with_offsets(scored, true, prompt.parse_special)?;
    // A token such as ` Shares` starts in the template's space and ends in the field.
    let in_fields: Vec<Option<FieldToken>> = offsets
        .iter()
        .map(|range| {
            prompt.spanned.spans.iter().find_map(|(field, span)| {
                let (start, end) = (range.start.max(span.start), range.end.min(span.end));
                (start < end).then_some(FieldToken { field, span, range: start..end })
            })
        })
        .collect();
    let eligible: Vec<usize> = (0..ids.len()).filter(|&t| in_fields[t].is_some()).collect();
    let (scores, _) = position_scores(unembedding, &ids, target, heads, 2 * top, Some(&eligible), &[])?;
    let mut found: Vec<Evidence> = Vec::new();
    for t in eligible.into_iter().filter(|&t| scores[t].exact) {
        let token = in_fields[t].clone().expect("eligible positions are in a field");
        found.push(in_field(scored, &token, scores[t].score));
    }
    found.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.start.cmp(&b.start)));
    found.truncate(top);
    Ok(found)
}

/// The part of a prompt token inside a field: the field, its span in the prompt, and the
/// token's byte range clipped to it.
#[derive(Clone)]
struct FieldToken<'p> {
    field: &'p str,
    span: &'p Range<usize>,
    range: Range<usize>,
}

/// A token's byte range in the prompt, within its field, as a character range in the field's
/// own text.
fn in_field(prompt: &str, token: &FieldToken, score: f32) -> Evidence {
    let (span, field) = (token.span, token.field);
    let token = &token.range;
    let value = &prompt[span.start..span.end.min(prompt.len())];
    let floor = |mut at: usize| {
        at = at.min(value.len());
        while !value.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    let (start, end) = (floor(token.start - span.start), floor(token.end - span.start));
    // Highlight the word, not the space BPE attaches before it.
    let start = start + (value[start..end].len() - value[start..end].trim_start().len());
    Evidence {
        field: field.to_string(),
        token: value[start..end].to_string(),
        start: value[..start].chars().count(),
        end: value[..end].chars().count(),
        score,
    }
}
