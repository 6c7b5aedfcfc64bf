//! One input row through a task, as `glassbox classify` and the browser run it: label
//! probabilities, and on request the explanation, evidence, affect features and retrieved
//! examples.

use std::cell::OnceCell;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::affect::{Empath, Vader, VaderScores};
use super::classify::{evidence, explain, generate_freely, prompt, score_labels, Evidence, Examples, Wrapping};
use super::embed::{llm_embedding, MiniLm};
use super::index::{Hit, Index};
use super::nrc::Nrc;
use super::templates::{Table, Task};
use super::{Result, TaskError};
use crate::backend::Backend;
use crate::generate::Writing;
use crate::interp::lens::Unembedding;
use crate::model::Model;
use crate::tokenizer::Tokenizer;

/// The Empath categories reported with the affect features.
pub const EMPATH_CATEGORIES: &[&str] = &[
    "deception",
    "fear",
    "anger",
    "sadness",
    "disgust",
    "negative_emotion",
    "positive_emotion",
    "trust",
    "optimism",
    "money",
];

/// One input: an id, the task's fields (`claim`, `context`, `text`, ...) and, for retrieval,
/// its domain.
#[derive(Clone, Debug, Default)]
pub struct Input {
    pub id: String,
    pub fields: BTreeMap<String, String>,
    pub domain: Option<String>,
}

impl Input {
    /// The text affect and retrieval look at: `text`, else `claim`.
    pub fn main_text(&self) -> Result<&str> {
        self.fields
            .get("text")
            .or_else(|| self.fields.get("claim"))
            .map(String::as_str)
            .ok_or_else(|| TaskError::BadInput("the row has neither \"text\" nor \"claim\"".into()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Constrained scoring of the labels.
    Score,
    /// The seeds' free generation, read by their regex (probabilities are still scored).
    Generate,
}

impl Mode {
    /// `score` or `generate`.
    pub fn from_name(name: &str) -> Option<Mode> {
        match name {
            "score" => Some(Mode::Score),
            "generate" => Some(Mode::Generate),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct Options {
    pub wrapping: Wrapping,
    pub mode: Mode,
    pub explain: bool,
    pub evidence: bool,
    pub affect: bool,
    pub max_new_tokens: usize,
    /// How the explanation is written (the `generate` mode writes as the seeds do, greedily).
    pub writing: Writing,
    /// Evidence goes through this many top heads and reports this many tokens.
    pub evidence_heads: usize,
    pub evidence_top: usize,
    /// RAEmoLLM's k and similarity threshold.
    pub retrieve_k: usize,
    pub retrieve_min_score: f32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            wrapping: Wrapping::Seed,
            mode: Mode::Score,
            explain: false,
            evidence: false,
            affect: false,
            max_new_tokens: 128,
            writing: Writing::default(),
            evidence_heads: 10,
            evidence_top: 10,
            retrieve_k: 4,
            retrieve_min_score: 0.2,
        }
    }
}

/// What a caller chooses for a classification, from the CLI's flags or the browser's options
/// object (`{ explain, evidence, affect, mode, chat, maxNewTokens, writing, k }`, all optional):
/// [`Choices::check`] turns it into [`Options`] for both, the same way.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Choices {
    pub explain: bool,
    pub evidence: bool,
    pub affect: bool,
    /// `score` (the default) or `generate`.
    pub mode: Option<String>,
    /// The model's chat template instead of the seeds' `Human:` wrapper.
    pub chat: bool,
    pub max_new_tokens: Option<usize>,
    /// How the explanation is written: `{ repetitionPenalty, noRepeatNgram, maxSentences,
    /// oneParagraph }`, each left out taking [`Writing::default`]'s value.
    pub writing: Option<Writing>,
    /// RAEmoLLM's k.
    pub k: Option<usize>,
}

/// Which sentence embedder a retrieval index must be queried with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryEmbedder {
    MiniLm,
    /// The classifying model itself (the seed's LLM embedding).
    Model,
}

impl Choices {
    /// The options for `task`, with `index` (when given) built for MiniLM or for the model whose
    /// file is named `model_file_name`; the embedder the index needs comes with them. An error
    /// says what does not fit: an unknown mode, a few-shot-only task without an index, an index
    /// of another model.
    pub fn check(
        &self,
        task: &Task,
        index: Option<&Index>,
        model_file_name: &str,
    ) -> Result<(Options, Option<QueryEmbedder>)> {
        let mode_name = self.mode.as_deref().unwrap_or("score");
        let mode = Mode::from_name(mode_name)
            .ok_or_else(|| TaskError::BadInput(format!("mode {mode_name:?} is neither \"score\" nor \"generate\"")))?;
        if task.instruction.is_none() && index.is_none() {
            return Err(TaskError::BadInput(format!(
                "task {:?} is a few-shot prompt only: give it an index of examples",
                task.name
            )));
        }
        let embedder = match index {
            None => None,
            Some(index) if index.embedder == "minilm" => Some(QueryEmbedder::MiniLm),
            Some(index) if index.embedder == llm_embedder_name(model_file_name) => Some(QueryEmbedder::Model),
            Some(index) => {
                return Err(TaskError::BadInput(format!(
                    "the index was built with the embedder {:?}; it can be queried with minilm or {:?}",
                    index.embedder,
                    llm_embedder_name(model_file_name)
                )))
            }
        };
        let defaults = Options::default();
        let writing = self.writing.clone().unwrap_or_default();
        writing.check().map_err(|e| TaskError::BadInput(format!("the explanation's writing: {e}")))?;
        let options = Options {
            wrapping: if self.chat { Wrapping::Chat } else { Wrapping::Seed },
            mode,
            explain: self.explain,
            evidence: self.evidence,
            affect: self.affect,
            max_new_tokens: self.max_new_tokens.unwrap_or(defaults.max_new_tokens),
            writing,
            retrieve_k: self.k.unwrap_or(defaults.retrieve_k),
            ..defaults
        };
        Ok((options, embedder))
    }
}

/// VADER and Empath, and NRC when the user fetched it, loaded once.
pub struct Lexicons {
    pub vader: Vader,
    pub empath: Empath,
    pub nrc: Option<Nrc>,
}

#[cfg(not(target_arch = "wasm32"))]
impl Lexicons {
    /// VADER and Empath from the folder `make setup` fills (`models/lexicons`), and with `nrc`
    /// NRC's, which `python3 scripts/fetch_models.py --nrc` fetches (research and non-commercial
    /// use only).
    pub fn from_folder(folder: &std::path::Path, nrc: bool) -> Result<Lexicons> {
        let read = |name: &str, hint: &str| {
            let path = folder.join(name);
            std::fs::read_to_string(&path).map_err(|e| TaskError::BadInput(format!("{}: {e} ({hint})", path.display())))
        };
        let fetched = "make setup fetches the lexicons";
        let affect = |e: super::affect::AffectError| TaskError::BadInput(e.to_string());
        let nrc = match nrc {
            true => Some(
                Nrc::new(&read("nrc_en.json", "`python3 scripts/fetch_models.py --nrc` fetches it")?)
                    .map_err(affect)?,
            ),
            false => None,
        };
        Ok(Lexicons {
            vader: Vader::new(&read("vader_lexicon.txt", fetched)?, &read("emoji_utf8_lexicon.txt", fetched)?)
                .map_err(affect)?,
            empath: Empath::new(&read("empath_categories.tsv", fetched)?).map_err(affect)?,
            nrc,
        })
    }
}

/// The sentence embedder an index was built with.
pub enum Embedder<'a> {
    MiniLm(&'a MiniLm),
    /// The classifying model itself (the seed's embedding).
    Llm,
}

pub struct Retrieval<'a> {
    pub index: &'a Index,
    pub embedder: Embedder<'a>,
}

impl<'a> Retrieval<'a> {
    /// Queries `index` with MiniLM when given (a `minilm` index), else with the classifying model.
    pub fn new(index: &'a Index, minilm: Option<&'a MiniLm>) -> Self {
        Retrieval { index, embedder: minilm.map_or(Embedder::Llm, Embedder::MiniLm) }
    }
}

/// The embedder name an index built with the seed's LLM embedding records: `llm:` and the
/// model's file name.
pub fn llm_embedder_name(model_file_name: &str) -> String {
    format!("llm:{model_file_name}")
}

#[derive(Clone, Debug, Serialize)]
pub struct Affect {
    pub vader: VaderScores,
    pub empath: BTreeMap<String, f64>,
    /// NRC emotion frequencies, only with the optional lexicon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nrc: Option<BTreeMap<String, f64>>,
    /// The model's own sentiment intensity from the Vreg instruction: `Σ_v v·P(v)` over the
    /// label-scored numbers 0.0, 0.1, ..., 1.0.
    pub llm_intensity: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Retrieved {
    pub id: String,
    pub label: String,
    pub score: f32,
}

/// An output row of `classify`.
#[derive(Clone, Debug, Serialize)]
pub struct Output {
    pub id: String,
    /// `None` only in generate mode, when the generation names no label.
    pub label: Option<String>,
    pub probs: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Vec<Evidence>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affect: Option<Affect>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrieved: Option<Vec<Retrieved>>,
}

/// Everything one classification needs, loaded once for many rows.
pub struct Classifier<'a, B: Backend> {
    pub model: &'a Model<B>,
    pub tokenizer: &'a Tokenizer,
    pub table: &'a Table,
    pub task: &'a Task,
    pub lexicons: Option<&'a Lexicons>,
    pub retrieval: Option<Retrieval<'a>>,
    pub options: Options,
    /// The f32 unembedding evidence needs, made on first use and kept for later rows.
    unembedding: OnceCell<Unembedding<'a, B>>,
}

impl<'a, B: Backend> Classifier<'a, B> {
    pub fn new(
        model: &'a Model<B>,
        tokenizer: &'a Tokenizer,
        table: &'a Table,
        task: &'a Task,
        options: Options,
    ) -> Self {
        Classifier {
            model,
            tokenizer,
            table,
            task,
            lexicons: None,
            retrieval: None,
            options,
            unembedding: OnceCell::new(),
        }
    }

    /// The row's output; the explanation (or the free generation) streams through `on_text`.
    pub fn run(&self, input: &Input, on_text: &mut dyn FnMut(&str) -> bool) -> Result<Output> {
        let fields: BTreeMap<&str, &str> = input.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let affect = if self.options.affect { Some(self.affect(input.main_text()?)?) } else { None };
        let hits = match &self.retrieval {
            Some(retrieval) => Some(self.retrieve(retrieval, input)?),
            None => None,
        };
        let examples = match (&self.retrieval, &hits) {
            (Some(retrieval), Some(hits)) => Some(Examples {
                index: retrieval.index,
                hits,
                // RAEmoLLM's affect variant: when the examples carry their intensities too.
                target_intensity: affect
                    .as_ref()
                    .map(|a| a.llm_intensity)
                    .filter(|_| retrieval.index.records.iter().all(|r| r.intensity.is_some())),
            }),
            _ => None,
        };
        let prompt = prompt(self.table, self.task, &fields, self.options.wrapping, self.tokenizer, examples.as_ref())?;
        // The few-shot prompt ends where its label goes; the instruction has the answer prefix.
        let answer_prefix = match examples {
            Some(_) => "",
            None => self.task.answer_prefix.as_deref().unwrap_or(""),
        };
        let (scores, scored) = score_labels(self.model, self.tokenizer, &prompt, answer_prefix, &self.task.labels)?;
        let probs = scores.labels.iter().cloned().zip(scores.probs.iter().copied()).collect();
        let mut label = Some(scores.labels[scores.best].clone());
        let mut generation = None;
        let mut explanation = None;
        if self.options.mode == Mode::Generate {
            let free =
                generate_freely(self.model, self.tokenizer, self.task, &prompt, self.options.max_new_tokens, on_text)?;
            label = free.label;
            explanation = free.explanation.filter(|_| self.options.explain);
            generation = Some(free.text);
        } else if self.options.explain {
            explanation = Some(explain(
                self.model,
                self.tokenizer,
                self.task,
                &prompt,
                &scores.labels[scores.best],
                self.options.writing.request(self.options.max_new_tokens, Vec::new()),
                on_text,
            )?);
        }
        let evidence = if self.options.evidence {
            if self.unembedding.get().is_none() {
                let made = Unembedding::new(self.model)?;
                let _ = self.unembedding.set(made);
            }
            let unembedding = self.unembedding.get().expect("set just above");
            Some(evidence(
                unembedding,
                self.tokenizer,
                &prompt,
                &scored,
                scores.target_token,
                self.options.evidence_heads,
                self.options.evidence_top,
            )?)
        } else {
            None
        };
        let retrieved = match (&self.retrieval, hits) {
            (Some(retrieval), Some(hits)) => Some(
                hits.iter()
                    .map(|h| {
                        let record = &retrieval.index.records[h.record];
                        Retrieved { id: record.id.clone(), label: record.label.clone(), score: h.score }
                    })
                    .collect(),
            ),
            _ => None,
        };
        Ok(Output { id: input.id.clone(), label, probs, generation, explanation, evidence, affect, retrieved })
    }

    pub fn affect(&self, text: &str) -> Result<Affect> {
        let lexicons = self
            .lexicons
            .ok_or_else(|| TaskError::BadInput("affect features need the VADER and Empath lexicons".into()))?;
        let empath = lexicons
            .empath
            .analyze(text, Some(EMPATH_CATEGORIES), true)
            .map_err(|e| TaskError::BadInput(e.to_string()))?;
        Ok(Affect {
            vader: lexicons.vader.polarity_scores(text),
            empath,
            nrc: lexicons.nrc.as_ref().map(|nrc| nrc.analyze(text)),
            llm_intensity: llm_intensity(self.model, self.tokenizer, self.table, text)?,
        })
    }

    fn retrieve(&self, retrieval: &Retrieval, input: &Input) -> Result<Vec<Hit>> {
        let text = input.main_text()?;
        let query = match retrieval.embedder {
            Embedder::MiniLm(minilm) => minilm.embed(text)?,
            Embedder::Llm => llm_embedding(self.model, self.tokenizer, self.table, text)?,
        };
        let id = (!input.id.is_empty()).then_some(input.id.as_str());
        Ok(retrieval.index.search(
            &query,
            self.options.retrieve_k,
            self.options.retrieve_min_score,
            id,
            input.domain.as_deref(),
        )?)
    }
}

/// RAEmoLLM's affective instruction (Vreg), wrapped, read as a number: the expectation of the
/// label-scored values `0.0, 0.1, ..., 1.0`.
pub fn llm_intensity<B: Backend>(model: &Model<B>, tokenizer: &Tokenizer, table: &Table, text: &str) -> Result<f64> {
    let vreg = table.task("vreg")?;
    let fields = BTreeMap::from([("x", text)]);
    let prompt = prompt(table, vreg, &fields, Wrapping::Seed, tokenizer, None)?;
    let (scores, _) = score_labels(model, tokenizer, &prompt, "", &vreg.labels)?;
    scores
        .labels
        .iter()
        .zip(&scores.probs)
        .map(|(value, p)| {
            value
                .parse::<f64>()
                .map(|v| v * p)
                .map_err(|_| TaskError::BadInput(format!("vreg label {value:?} is not a number")))
        })
        .sum()
}
