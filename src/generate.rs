//! Text generation and continuation scoring on top of the model's forward pass.

use serde::{Deserialize, Serialize};

use std::collections::HashSet;

use crate::backend::{Backend, BackendError, TopK};
use crate::hooks::{HookRequest, Intervention, Positions};
use crate::model::{KvCache, Model, ModelError};
use crate::numeric::{argmax, log_softmax, top_k, Rng};
use crate::tokenizer::{Tokenizer, TokenizerError};

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("invalid sampling setting: {0}")]
    BadSampling(String),
}

pub type Result<T, E = GenerateError> = std::result::Result<T, E>;

/// How the next token is picked. `temperature == 0` is greedy decoding.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampling {
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `p` (1: all).
    pub top_p: f32,
    /// llama.cpp/CTRL penalty on tokens already in the context: positive logits are divided by
    /// it, negative ones multiplied (1: off).
    pub repetition_penalty: f32,
    /// No run of this many tokens occurs twice in the generated text: a token that would repeat
    /// one is never picked (Hugging Face's `no_repeat_ngram_size`, over the generated tokens
    /// only, so that the prompt's words can be quoted; 0: off).
    pub no_repeat_ngram: usize,
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling { temperature: 0.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0, no_repeat_ngram: 0, seed: 0 }
    }
}

impl Sampling {
    fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(GenerateError::BadSampling(what));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(format!("temperature {} must be a finite number ≥ 0", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top-p {} must be in (0, 1]", self.top_p));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad(format!("repetition penalty {} must be a finite number > 0", self.repetition_penalty));
        }
        Ok(())
    }
}

/// The most entries a sampler asks a backend to rank and read back (its top k and the tokens its
/// rules change); a sampler needing more reads the whole row.
const MOST_CANDIDATES: usize = 64;

/// Picks the next token from `logits` given the tokens so far.
pub struct Sampler {
    settings: Sampling,
    rng: Rng,
}

/// The tokens whose logits a sampler's rules change for one step, each once and inside the
/// vocabulary.
struct Changes {
    /// Would repeat a run of the generation ([`Sampling::no_repeat_ngram`]).
    banned: HashSet<u32>,
    /// Already in the context, when [`Sampling::repetition_penalty`] is on.
    penalised: HashSet<u32>,
}

impl Changes {
    fn tokens(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self.banned.union(&self.penalised).copied().collect();
        all.sort_unstable();
        all
    }
}

impl Sampler {
    pub fn new(settings: Sampling) -> Result<Self> {
        settings.validate()?;
        let rng = Rng(settings.seed);
        Ok(Sampler { settings, rng })
    }

    /// The next token after `context`, whose last `generated` tokens are the generation's own.
    pub fn sample(&mut self, logits: &[f32], context: &[u32], generated: usize) -> u32 {
        let changes = self.changes(context, generated, logits.len());
        self.choose_in_row(logits, &changes)
    }

    /// As [`sample`](Sampler::sample) for the `[1, vocab]` logits on `backend`, reading back
    /// only what the choice depends on: the top k (1 when greedy) ranked on the device, and
    /// the tokens the rules change. The k best after the changes are among the `k + changed`
    /// best before them or are changed ones, so the choice is the one the whole row gives.
    /// Sampling from the whole vocabulary (top-k 0), and a backend on the host, read the row.
    pub fn pick<B: Backend>(
        &mut self,
        backend: &B,
        logits: &B::Tensor,
        vocab: usize,
        context: &[u32],
        generated: usize,
    ) -> Result<u32, BackendError> {
        let changes = self.changes(context, generated, vocab);
        let changed = changes.tokens();
        // A backend without a device reads the row for free, and ranks it no faster.
        let on_device = backend.device_counts().is_some();
        match self.candidates_needed(changed.len(), vocab).filter(|_| on_device) {
            Some(asked) => {
                let top = backend.top_k(logits, asked, &changed)?;
                Ok(self.choose_among(top, changed, &changes))
            }
            None => Ok(self.choose_in_row(&backend.download(logits)?.1, &changes)),
        }
    }

    /// The choice among a whole row of logits.
    fn choose_in_row(&mut self, row: &[f32], changes: &Changes) -> u32 {
        self.choose(row.iter().enumerate().map(|(id, &l)| (id as u32, l)).collect(), changes)
    }

    /// How many of the best tokens the choice needs ranked, when `changed` tokens change: k (1
    /// when greedy) and one more for each change; none (read the row) when that passes
    /// [`MOST_CANDIDATES`] or sampling draws from the whole vocabulary.
    fn candidates_needed(&self, changed: usize, vocab: usize) -> Option<usize> {
        let k = if self.settings.temperature == 0.0 { 1 } else { self.settings.top_k };
        Some(k + changed).filter(|&asked| k > 0 && asked <= MOST_CANDIDATES.min(vocab))
    }

    /// The choice among the ranked best tokens `top` and the `changed` tokens, whose logits
    /// `top.picked` holds.
    fn choose_among(&mut self, top: TopK, changed: Vec<u32>, changes: &Changes) -> u32 {
        let mut candidates: Vec<(u32, f32)> =
            top.ids.into_iter().zip(top.values).chain(changed.into_iter().zip(top.picked)).collect();
        candidates.sort_unstable_by_key(|&(id, _)| id);
        candidates.dedup_by_key(|&mut (id, _)| id);
        self.choose(candidates, changes)
    }

    fn changes(&self, context: &[u32], generated: usize, vocab: usize) -> Changes {
        let s = &self.settings;
        let own = &context[context.len() - generated.min(context.len())..];
        let in_vocabulary = |id: &u32| (*id as usize) < vocab;
        let banned = repeated_ngram_ends(own, s.no_repeat_ngram).into_iter().filter(in_vocabulary).collect();
        let penalised = if s.repetition_penalty == 1.0 {
            HashSet::new()
        } else {
            context.iter().copied().filter(in_vocabulary).collect()
        };
        Changes { banned, penalised }
    }

    /// The choice among `candidates` (token, logit), in token order: the whole vocabulary, or
    /// every token that can rank among the top k once `changes` are made.
    fn choose(&mut self, candidates: Vec<(u32, f32)>, changes: &Changes) -> u32 {
        let s = &self.settings;
        let mut logits = candidates;
        // Each rule looks up every candidate, which costs a vocabulary's hashes: only when on.
        if !changes.banned.is_empty() {
            let unbanned = logits.clone();
            for (id, l) in &mut logits {
                if changes.banned.contains(id) {
                    *l = f32::NEG_INFINITY;
                }
            }
            // A rule that bans every token (n = 1 over a tiny vocabulary) yields to the model.
            if logits.iter().all(|&(_, l)| l == f32::NEG_INFINITY) {
                logits = unbanned;
            }
        }
        if !changes.penalised.is_empty() {
            for (id, l) in &mut logits {
                if changes.penalised.contains(id) {
                    *l = if *l > 0.0 { *l / s.repetition_penalty } else { *l * s.repetition_penalty };
                }
            }
        }
        let values: Vec<f32> = logits.iter().map(|&(_, l)| l).collect();
        if s.temperature == 0.0 {
            return logits[argmax(&values) as usize].0;
        }
        let mut order = top_k(&values, if s.top_k > 0 { s.top_k } else { values.len() });
        let max = values[order[0]];
        let mut probs: Vec<f32> = order.iter().map(|&i| ((values[i] - max) / s.temperature).exp()).collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if s.top_p < 1.0 {
            let mut mass = 0.0;
            let keep = probs.iter().position(|p| {
                mass += p;
                mass >= s.top_p
            });
            let keep = keep.map_or(probs.len(), |i| i + 1);
            probs.truncate(keep);
            order.truncate(keep);
            let total: f32 = probs.iter().sum();
            probs.iter_mut().for_each(|p| *p /= total);
        }
        let mut draw = self.rng.next_f32();
        for (p, &i) in probs.iter().zip(&order) {
            if draw < *p {
                return logits[i].0;
            }
            draw -= p;
        }
        logits[*order.last().expect("top_k ≥ 1 and the vocabulary is not empty")].0
    }
}

/// The tokens that would complete a second copy of an `n`-token run of `tokens`: each token that
/// followed an earlier occurrence of the last `n − 1` tokens.
fn repeated_ngram_ends(tokens: &[u32], n: usize) -> Vec<u32> {
    if n == 0 || tokens.len() < n {
        return Vec::new();
    }
    let prefix = &tokens[tokens.len() + 1 - n..];
    tokens.windows(n).filter(|run| &run[..n - 1] == prefix).map(|run| run[n - 1]).collect()
}

/// The end of the `n`-th sentence of `text` (just after its `.`, `!` or `?`), once a space or line
/// break follows it. A full stop ends none after a list's number at the start of a line ("1. ")
/// or after a one-letter word ("e.g. ", "U.S. ").
fn end_of_sentence(text: &str, n: usize) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let chars: Vec<char> = text.chars().collect();
    let offsets: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let ends_here = |k: usize| -> bool {
        let word_start = chars[..k].iter().rposition(|c| c.is_whitespace() || *c == '.').map_or(0, |p| p + 1);
        let word = &chars[word_start..k];
        let list_number = !word.is_empty()
            && word.iter().all(char::is_ascii_digit)
            && chars[..word_start].iter().rev().take_while(|&&c| c != '\n').all(|c| c.is_whitespace());
        let initial = word.len() == 1 && word[0].is_alphabetic();
        match chars[k] {
            '!' | '?' => true,
            '.' => !list_number && !initial,
            _ => false,
        }
    };
    let mut ends = (0..chars.len().saturating_sub(1))
        .filter(|&k| chars[k + 1].is_whitespace() && ends_here(k))
        .map(|k| offsets[k] + 1);
    ends.nth(n - 1)
}

/// Where the first paragraph of `text` ends: at a blank line after some text.
fn end_of_paragraph(text: &str) -> Option<usize> {
    let start = text.len() - text.trim_start().len();
    text[start..].find("\n\n").map(|i| start + i)
}

/// How explanations and edits are written: greedy decoding with rules against the loops greedy
/// decoding falls into on small models (one sentence repeated until the token limit).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Writing {
    /// As [`Sampling::repetition_penalty`].
    pub repetition_penalty: f32,
    /// As [`Sampling::no_repeat_ngram`].
    pub no_repeat_ngram: usize,
    /// As [`GenerateRequest::max_sentences`].
    pub max_sentences: usize,
    /// As [`GenerateRequest::one_paragraph`].
    pub one_paragraph: bool,
}

impl Default for Writing {
    fn default() -> Self {
        Writing { repetition_penalty: 1.0, no_repeat_ngram: 4, max_sentences: 4, one_paragraph: true }
    }
}

impl Writing {
    /// Plain greedy decoding, as the seeds' own code writes.
    pub const GREEDY: Writing =
        Writing { repetition_penalty: 1.0, no_repeat_ngram: 0, max_sentences: 0, one_paragraph: false };

    /// An error naming a setting out of range.
    pub fn check(&self) -> Result<()> {
        self.request(0, Vec::new()).sampling.validate()
    }

    /// A request for up to `max_tokens` written this way, stopping also at `stop_strings`.
    pub fn request(&self, max_tokens: usize, stop_strings: Vec<String>) -> GenerateRequest {
        GenerateRequest {
            max_tokens,
            sampling: Sampling {
                repetition_penalty: self.repetition_penalty,
                no_repeat_ngram: self.no_repeat_ngram,
                ..Sampling::default()
            },
            stop_strings,
            max_sentences: self.max_sentences,
            one_paragraph: self.one_paragraph,
            interventions: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct GenerateRequest {
    pub max_tokens: usize,
    pub sampling: Sampling,
    /// Generation stops when the text ends with one of these; it is cut from the result.
    pub stop_strings: Vec<String>,
    /// Generation stops after this many sentences, the text cut at the last one's end (0: no
    /// limit).
    pub max_sentences: usize,
    /// Generation stops at the first blank line after some text, which is cut from the result.
    pub one_paragraph: bool,
    pub interventions: Vec<Intervention>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndOfSequence,
    StopString,
    SentenceBudget,
    ParagraphEnd,
    MaxTokens,
    ContextFull,
    /// The `on_token` callback asked to stop.
    Cancelled,
}

#[derive(Clone, Debug, Serialize)]
pub struct Generation {
    pub text: String,
    /// Every token generated: where a stop string, a sentence or a paragraph end cut the text,
    /// the tokens past the cut too.
    pub ids: Vec<u32>,
    pub stop_reason: StopReason,
}

/// Prefills `prompt`, then decodes token by token, calling `on_token(id, text_so_far)` after
/// each; `on_token` returning false stops early.
pub fn generate<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    request: &GenerateRequest,
    mut on_token: impl FnMut(u32, &str) -> bool,
) -> Result<Generation> {
    let mut sampler = Sampler::new(request.sampling.clone())?;
    let mut cache = model.new_cache();
    let mut context = prompt.to_vec();
    let mut ids = Vec::new();
    let mut text = String::new();
    let mut logits = model.next_token_logits(prompt, &mut cache, &request.interventions)?;
    let (context_length, vocab) = (model.config().context_length, model.config().vocab_size);
    if request.max_tokens == 0 {
        return Ok(Generation { text, ids, stop_reason: StopReason::MaxTokens });
    }
    let stop_reason = loop {
        let next = sampler.pick(model.backend(), &logits, vocab, &context, ids.len()).map_err(ModelError::from)?;
        if Some(next) == tokenizer.eos_id() {
            break StopReason::EndOfSequence;
        }
        ids.push(next);
        context.push(next);
        text = tokenizer.decode(&ids)?;
        if let Some(stop) = request.stop_strings.iter().find(|s| !s.is_empty() && text.ends_with(s.as_str())) {
            text.truncate(text.len() - stop.len());
            break StopReason::StopString;
        }
        if let Some(end) = request.one_paragraph.then(|| end_of_paragraph(&text)).flatten() {
            text.truncate(end);
            break StopReason::ParagraphEnd;
        }
        if let Some(end) = end_of_sentence(&text, request.max_sentences) {
            text.truncate(end);
            break StopReason::SentenceBudget;
        }
        if !on_token(next, &text) {
            break StopReason::Cancelled;
        }
        if cache.len() + 1 > context_length {
            break StopReason::ContextFull;
        }
        // Checked here rather than before the next pick, so that no forward pass runs for a
        // token that will not be picked.
        if ids.len() >= request.max_tokens {
            break StopReason::MaxTokens;
        }
        logits = model.next_token_logits(&[next], &mut cache, &request.interventions)?;
    };
    Ok(Generation { text, ids, stop_reason })
}

/// The total log-probability of each candidate continuation after `prompt`, all sharing the
/// prompt's KV cache: `Σ_j log p(c_j | prompt, c_<j)`.
pub fn score_continuations<B: Backend>(
    model: &Model<B>,
    prompt: &[u32],
    candidates: &[Vec<u32>],
    interventions: &[Intervention],
) -> Result<Vec<f32>> {
    let none = HookRequest::new();
    let mut prompt_cache: KvCache<B> = model.new_cache();
    let first = model.forward(prompt, &mut prompt_cache, &none, interventions, &Positions::Last)?;
    let first_logprobs = log_softmax(&first.logits.data);
    candidates
        .iter()
        .map(|candidate| {
            let Some((&head, rest)) = candidate.split_first() else {
                return Err(GenerateError::Model(ModelError::EmptyPrompt));
            };
            let mut total = first_logprobs
                .get(head as usize)
                .copied()
                .ok_or(ModelError::BadTokenId { id: head, vocab_size: first_logprobs.len() })?;
            if !rest.is_empty() {
                let mut cache = prompt_cache.clone();
                let out = model.forward(
                    &candidate[..candidate.len() - 1],
                    &mut cache,
                    &none,
                    interventions,
                    &Positions::All,
                )?;
                let vocab = out.logits.shape[1];
                for (row, &next) in out.logits.data.chunks(vocab).zip(rest) {
                    total += log_softmax(row)[next as usize];
                }
            }
            Ok(total)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(settings: Sampling) -> Sampler {
        Sampler::new(settings).unwrap()
    }

    #[test]
    fn greedy_takes_the_largest_logit_after_the_penalty() {
        let logits = [1.0, 3.0, 2.0];
        assert_eq!(sampler(Sampling::default()).sample(&logits, &[], 0), 1);
        // Token 1's logit 3.0 / 2 = 1.5 < 2.0.
        let penalised = Sampling { repetition_penalty: 2.0, ..Default::default() };
        assert_eq!(sampler(penalised).sample(&logits, &[1, 1], 0), 2);
    }

    #[test]
    fn top_k_one_is_greedy_at_any_temperature() {
        let settings = Sampling { temperature: 5.0, top_k: 1, seed: 7, ..Default::default() };
        let mut s = sampler(settings);
        for _ in 0..50 {
            assert_eq!(s.sample(&[0.0, 0.5, 0.2], &[], 0), 1);
        }
    }

    #[test]
    fn top_p_keeps_the_smallest_nucleus() {
        // Probabilities ∝ e^[ln 6, ln 3, ln 1] = [0.6, 0.3, 0.1]: p = 0.85 keeps tokens 0 and 1.
        let logits = [6f32.ln(), 3f32.ln(), 1f32.ln()];
        let mut s = sampler(Sampling { temperature: 1.0, top_p: 0.85, seed: 3, ..Default::default() });
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            counts[s.sample(&logits, &[], 0) as usize] += 1;
        }
        assert_eq!(counts[2], 0);
        let share = counts[0] as f32 / 3000.0;
        assert!((share - 2.0 / 3.0).abs() < 0.04, "token 0 drawn {share} of the time, expected 2/3");
    }

    #[test]
    fn the_same_seed_draws_the_same_tokens() {
        let settings = Sampling { temperature: 1.0, seed: 42, ..Default::default() };
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let draw = |s: &mut Sampler| (0..20).map(|_| s.sample(&logits, &[], 0)).collect::<Vec<_>>();
        assert_eq!(draw(&mut sampler(settings.clone())), draw(&mut sampler(settings)));
    }

    #[test]
    fn no_repeat_ngram_bans_what_would_repeat_a_run_of_the_generation() {
        // Generated 5 6 7 5 6: with n = 3 the run "5 6 7" would repeat, so 7 is banned. The
        // prompt's "5 6 9" does not count, so 9, the next largest logit, wins; counting the whole
        // context would ban it too, and token 3 would win.
        let mut logits = vec![0.0f32; 10];
        logits[7] = 5.0;
        logits[9] = 4.0;
        logits[3] = 3.0;
        let context = [5, 6, 9, 5, 6, 7, 5, 6];
        let banning = Sampling { no_repeat_ngram: 3, ..Default::default() };
        assert_eq!(sampler(banning.clone()).sample(&logits, &context, 5), 9);
        assert_eq!(sampler(banning.clone()).sample(&logits, &context, context.len()), 3);
        assert_eq!(sampler(Sampling::default()).sample(&logits, &context, 5), 7);
        assert_eq!(repeated_ngram_ends(&[5, 6, 7, 5, 6], 3), vec![7]);
        assert_eq!(repeated_ngram_ends(&[1, 1, 1], 2), vec![1, 1]);
        assert!(repeated_ngram_ends(&[5, 6], 3).is_empty());
    }

    #[test]
    fn sentences_end_at_a_stop_before_a_space_not_after_a_list_number_or_an_initial() {
        let text = "It is false.\n1. The rise in 2020. Is 3.5% e.g. off? Then";
        assert_eq!(end_of_sentence(text, 1), Some("It is false.".len()));
        assert_eq!(end_of_sentence(text, 2), Some("It is false.\n1. The rise in 2020.".len()));
        assert_eq!(end_of_sentence(text, 3), Some(text.len() - " Then".len()));
        assert_eq!(end_of_sentence(text, 4), None);
        assert_eq!(end_of_sentence("The U.S. rate fell. Then", 1), Some("The U.S. rate fell.".len()));
        assert_eq!(end_of_sentence("Done.", 1), None, "no space after it yet");
        assert_eq!(end_of_sentence(text, 0), None);
    }

    /// Where only the top candidates and the changed tokens are read back, every rule still
    /// chooses what it chooses from the whole row: ties at the top, bans and penalties (both
    /// ways) on the most likely tokens, greedy and sampled, small and large k.
    #[test]
    fn picking_from_the_top_candidates_chooses_what_the_whole_row_chooses() {
        let vocab = 300;
        let mut cases = 0;
        for seed in 0..6u64 {
            let mut row: Vec<f32> = crate::numeric::pseudo_random(vocab, seed).iter().map(|v| v * 8.0).collect();
            let best = top_k(&row, 8);
            row[best[1]] = row[best[0]];
            // The generation so far repeats the likeliest tokens, so that the rules change them.
            let own: Vec<u32> = [0, 1, 2, 0, 3, 1, 0].iter().map(|&i| best[i] as u32).collect();
            let context: Vec<u32> = [7u32, 250].iter().copied().chain(own.iter().copied()).collect();
            for temperature in [0.0, 0.7, 1.5] {
                for top_k in [1, 5, 30] {
                    for (top_p, repetition_penalty, no_repeat_ngram) in
                        [(1.0, 1.0, 0), (0.8, 1.4, 2), (1.0, 0.7, 2), (0.9, 1.0, 1)]
                    {
                        let settings =
                            Sampling { temperature, top_k, top_p, repetition_penalty, no_repeat_ngram, seed };
                        let (mut whole, mut top) = (sampler(settings.clone()), sampler(settings));
                        for _ in 0..5 {
                            let expected = whole.sample(&row, &context, own.len());
                            let changes = top.changes(&context, own.len(), vocab);
                            let changed = changes.tokens();
                            let asked = top.candidates_needed(changed.len(), vocab).unwrap();
                            let ranked = TopK::of(&row, asked, &changed);
                            let got = top.choose_among(ranked, changed, &changes);
                            assert_eq!(got, expected, "seed {seed}, t {temperature}, k {top_k}, p {top_p}");
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 6 * 3 * 3 * 4 * 5);
    }

    #[test]
    fn bad_settings_are_rejected() {
        for bad in [
            Sampling { temperature: -1.0, ..Default::default() },
            Sampling { top_p: 0.0, ..Default::default() },
            Sampling { repetition_penalty: 0.0, ..Default::default() },
        ] {
            assert!(matches!(Sampler::new(bad), Err(GenerateError::BadSampling(_))));
        }
    }
}
