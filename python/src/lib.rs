//! `glassbox._native`: the Rust core for Python. A thin layer, as `web/` is for the browser:
//! each method turns its arguments into the core's types, runs the core on the model's thread
//! (worker.rs) with the interpreter released, and returns JSON text (which the Python half turns
//! into dataclasses) or NumPy arrays.

mod errors;
mod worker;

use std::path::PathBuf;

use glassbox::backend::Backend;
use glassbox::generate::{generate, GenerateRequest, Sampling};
use glassbox::gguf::GgufFile;
use glassbox::hooks::{select_hooks, Activation, Intervention, Positions, DEFAULT_MAX_RECORDING_BYTES};
use glassbox::inspect::ModelSummary;
use glassbox::interp::ablation::Mask;
use glassbox::interp::attribution::{attribute_with_progress, AttributionOptions};
use glassbox::interp::lens::{logit_lens, LensRequest, LensScale, Unembedding};
use glassbox::interp::patching::{activation_patching, PatchSite, PatchingMethod};
use glassbox::interp::steering::SteeringVector;
use glassbox::model::loader::{BackendChoice, Loader};
use glassbox::model::{Config, Loaded, ModelError};
use glassbox::tasks::embed::MiniLm;
use glassbox::tasks::index::Index;
use glassbox::tasks::pipeline::{Choices, Classifier, Lexicons, QueryEmbedder, Retrieval};
use glassbox::tasks::rows::{jsonl_lines, parse_task_row};
use glassbox::tasks::templates::Table;
use glassbox::tokenizer::{ChatMessage, Tokenizer};
use glassbox::with_model;
use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use serde_json::json;

use errors::{Failure, Kind};
use worker::{Callbacks, Reporter, Worker};

/// A prompt as text (tokenized with special tokens recognised, as the CLI does) or token ids.
#[derive(FromPyObject)]
enum Prompt {
    Text(String),
    Ids(Vec<u32>),
}

impl Prompt {
    fn ids(&self, tokenizer: &Tokenizer) -> Result<Vec<u32>, Failure> {
        match self {
            Prompt::Text(text) => Ok(tokenizer.encode(text, true, true)?),
            Prompt::Ids(ids) => Ok(ids.clone()),
        }
    }
}

/// A token by id or by its text (which must be one token).
#[derive(FromPyObject)]
enum TokenChoice {
    Id(u32),
    Text(String),
}

impl TokenChoice {
    fn id(&self, tokenizer: &Tokenizer) -> Result<u32, Failure> {
        match self {
            TokenChoice::Id(id) => Ok(*id),
            TokenChoice::Text(text) => Ok(tokenizer.single_token(text)?),
        }
    }
}

/// `"all"`, `"last"` or a list of positions.
#[derive(FromPyObject)]
enum PositionsArg {
    Named(String),
    List(Vec<usize>),
}

impl PositionsArg {
    fn positions(&self) -> Result<Positions, Failure> {
        match self {
            PositionsArg::Named(name) => Positions::parse(name).map_err(Failure::input),
            PositionsArg::List(list) => Ok(Positions::Only(list.clone())),
        }
    }
}

/// The changes a call makes inside the forward pass: heads and neurons zeroed (`"L.H"`,
/// `"L.N"`), and steering vectors added to a layer's output residual.
#[derive(Default)]
struct Changes {
    heads: Vec<String>,
    neurons: Vec<String>,
    steer: Vec<(Vec<f32>, usize, f32)>,
}

impl Changes {
    fn interventions<B: Backend>(&self, loaded: &Loaded<B>) -> Result<Vec<Intervention>, Failure> {
        let config = loaded.model.config();
        let mut interventions = Mask::parse(&self.heads, &self.neurons, config)
            .map_err(|e| Failure::input(format!("ablate: {e}")))?
            .interventions();
        interventions.extend(self.steer.iter().map(|(vector, layer, coefficient)| Intervention::Steer {
            layer: *layer,
            vector: vector.clone(),
            coefficient: *coefficient,
        }));
        loaded.model.check_interventions(&interventions)?;
        Ok(interventions)
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<String, Failure> {
    Ok(serde_json::to_string(value)?)
}

/// An activation as a NumPy array of its shape.
fn array<'py>(py: Python<'py>, activation: Activation) -> PyResult<Bound<'py, PyAny>> {
    let flat = PyArray1::from_vec(py, activation.data);
    Ok(flat.reshape(activation.shape)?.into_any())
}

/// A recorded hook: its name, its array and the positions of its rows.
type CacheEntry<'py> = (String, Bound<'py, PyAny>, Vec<usize>);

/// What opening a model says of it, computed on its thread.
struct Opened {
    card: String,
    config: String,
    backend: String,
    fallback_reason: Option<String>,
}

/// A GGUF language model, loaded on its own thread.
#[pyclass(module = "glassbox._native", frozen)]
struct Model {
    worker: Worker,
    #[pyo3(get)]
    card: String,
    #[pyo3(get)]
    config: String,
    #[pyo3(get)]
    backend: String,
    #[pyo3(get)]
    fallback_reason: Option<String>,
}

fn config_json(config: &Config) -> serde_json::Value {
    json!({
        "architecture": config.architecture,
        "layers": config.layers,
        "heads": config.heads,
        "kv_heads": config.kv_heads,
        "head_dim": config.head_dim,
        "width": config.width,
        "ffn_width": config.ffn_width,
        "vocab_size": config.vocab_size,
        "context_length": config.context_length,
    })
}

#[pymethods]
impl Model {
    /// Opens the GGUF file at `path` on `backend` (`auto`, `cpu`, `cuda` or `webgpu`).
    #[staticmethod]
    #[pyo3(signature = (path, backend = "auto", threads = None, float_weights = false, progress = None))]
    fn open(
        py: Python<'_>,
        path: PathBuf,
        backend: &str,
        threads: Option<usize>,
        float_weights: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Model> {
        let choice = BackendChoice::from_name(backend).ok_or_else(|| {
            Failure::input(format!("backend {backend:?} is not \"auto\", \"cpu\", \"cuda\" or \"webgpu\"")).into_py()
        })?;
        if threads == Some(0) {
            return Err(Failure::input("threads must be at least 1").into_py());
        }
        let callbacks = Callbacks { progress, on_text: None };
        let (worker, opened) = Worker::start(py, &callbacks, move |reporter: &Reporter| {
            let loader = Loader::new(choice).with_threads(threads).with_float_weights(float_weights);
            let file = GgufFile::open(&path).map_err(|e| Failure::new(Kind::Gguf, e))?;
            let card = ModelSummary::from_gguf(&file.header).map_err(|e| Failure::new(Kind::Gguf, e))?.card;
            let tokenizer = Tokenizer::from_gguf(&file.header)?;
            let total: u64 = file.header.tensors.iter().map(|t| t.byte_len).sum();
            let read = std::cell::Cell::new(0u64);
            let loaded = loader.load(&file, tokenizer, &|bytes| {
                read.set(read.get() + bytes);
                reporter.go_on(read.get() as usize, total as usize);
            })?;
            let opened = Opened {
                card: to_json(&card)?,
                config: config_json(loaded.config()).to_string(),
                backend: loader.backend_name()?,
                fallback_reason: loader.fallback_reason().map(str::to_string),
            };
            Ok((loaded, opened))
        })?;
        Ok(Model {
            worker,
            card: opened.card,
            config: opened.config,
            backend: opened.backend,
            fallback_reason: opened.fallback_reason,
        })
    }

    /// Token ids of `text`, special tokens such as `<|im_start|>` recognised.
    fn tokenize(&self, py: Python<'_>, text: String) -> PyResult<Vec<u32>> {
        self.worker.call(py, &Callbacks::default(), move |any, _| Ok(any.tokenizer().encode(&text, true, true)?))
    }

    /// Each token's text.
    fn token_texts(&self, py: Python<'_>, ids: Vec<u32>) -> PyResult<Vec<String>> {
        self.worker.call(py, &Callbacks::default(), move |any, _| Ok(any.tokenizer().token_texts(&ids)?))
    }

    fn decode(&self, py: Python<'_>, ids: Vec<u32>) -> PyResult<String> {
        self.worker.call(py, &Callbacks::default(), move |any, _| Ok(any.tokenizer().decode(&ids)?))
    }

    /// The chat template applied to one user message.
    fn chat_prompt(&self, py: Python<'_>, message: String) -> PyResult<String> {
        self.worker.call(py, &Callbacks::default(), move |any, _| {
            Ok(any.tokenizer().apply_chat_template(&[ChatMessage::new("user", message)], true)?)
        })
    }

    /// `{ text, ids, stop_reason }` as JSON.
    #[pyo3(signature = (prompt, max_tokens, temperature, top_k, top_p, repeat_penalty, no_repeat_ngram, seed, stop, max_sentences, one_paragraph, heads, neurons, steer, on_text = None))]
    #[allow(clippy::too_many_arguments)]
    fn generate(
        &self,
        py: Python<'_>,
        prompt: Prompt,
        max_tokens: usize,
        temperature: f32,
        top_k: usize,
        top_p: f32,
        repeat_penalty: f32,
        no_repeat_ngram: usize,
        seed: u64,
        stop: Vec<String>,
        max_sentences: usize,
        one_paragraph: bool,
        heads: Vec<String>,
        neurons: Vec<String>,
        steer: Vec<(Vec<f32>, usize, f32)>,
        on_text: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let changes = Changes { heads, neurons, steer };
        let callbacks = Callbacks { progress: None, on_text };
        self.worker.call(py, &callbacks, move |any, reporter| {
            with_model!(any, loaded => {
                let ids = prompt.ids(&loaded.tokenizer)?;
                let request = GenerateRequest {
                    max_tokens,
                    sampling: Sampling { temperature, top_k, top_p, repetition_penalty: repeat_penalty, no_repeat_ngram, seed },
                    stop_strings: stop,
                    max_sentences,
                    one_paragraph,
                    interventions: changes.interventions(loaded)?,
                };
                let (mut streamed, mut stopped) = (0, false);
                let generation = generate(&loaded.model, &loaded.tokenizer, &ids, &request, |_, text| {
                    // Only whole characters go out: a token may end inside a multi-byte one.
                    let complete = text.trim_end_matches('\u{fffd}');
                    if complete.len() > streamed && complete.is_char_boundary(streamed) {
                        let piece = &complete[streamed..];
                        streamed = complete.len();
                        stopped = !reporter.text(piece);
                    }
                    !stopped
                })?;
                // What the last tokens completed, and what a stop rule ended on, after the stream.
                if let Some(rest) = generation.text.get(streamed..).filter(|rest| !rest.is_empty() && !stopped) {
                    reporter.text(rest);
                }
                to_json(&generation)
            })
        })
    }

    /// The logits at `logits` (`"all"`, `"last"` or positions) and the activations the hooks in
    /// `names` record at `positions`, each `(name, array, positions)`.
    #[pyo3(signature = (prompt, names, positions, logits, max_bytes, heads, neurons, steer))]
    #[allow(clippy::too_many_arguments)]
    fn run_with_cache<'py>(
        &self,
        py: Python<'py>,
        prompt: Prompt,
        names: Option<String>,
        positions: PositionsArg,
        logits: PositionsArg,
        max_bytes: Option<u64>,
        heads: Vec<String>,
        neurons: Vec<String>,
        steer: Vec<(Vec<f32>, usize, f32)>,
    ) -> PyResult<(Bound<'py, PyAny>, Vec<CacheEntry<'py>>)> {
        let changes = Changes { heads, neurons, steer };
        let (positions, logits_at) =
            (positions.positions().map_err(Failure::into_py)?, logits.positions().map_err(Failure::into_py)?);
        let limit = max_bytes.unwrap_or(DEFAULT_MAX_RECORDING_BYTES);
        let forward = self.worker.call(py, &Callbacks::default(), move |any, _| {
            with_model!(any, loaded => {
                let ids = prompt.ids(&loaded.tokenizer)?;
                let points = match names.as_deref() {
                    Some(spec) => select_hooks(spec, loaded.model.config().hook_shape()).map_err(ModelError::from)?,
                    None => Vec::new(),
                };
                let interventions = changes.interventions(loaded)?;
                Ok(loaded.model.run_with_cache(&ids, &points, &positions, &interventions, limit, &logits_at)?)
            })
        })?;
        let cache = forward
            .recording
            .activations
            .into_iter()
            .map(|(point, activation)| {
                let positions = activation.positions.clone();
                Ok((point.to_string(), array(py, activation)?, positions))
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok((array(py, forward.logits)?, cache))
    }

    /// The `k` most likely next tokens: `[{ id, token, logprob }]` as JSON.
    #[pyo3(signature = (prompt, k, heads, neurons, steer))]
    fn top_tokens(
        &self,
        py: Python<'_>,
        prompt: Prompt,
        k: usize,
        heads: Vec<String>,
        neurons: Vec<String>,
        steer: Vec<(Vec<f32>, usize, f32)>,
    ) -> PyResult<String> {
        let changes = Changes { heads, neurons, steer };
        self.worker.call(py, &Callbacks::default(), move |any, _| {
            with_model!(any, loaded => {
                let ids = prompt.ids(&loaded.tokenizer)?;
                to_json(&loaded.top_tokens(&ids, &changes.interventions(loaded)?, k)?)
            })
        })
    }

    /// The log-probability-increase attribution at the last position, as `glassbox attribute
    /// --json` prints it; `progress(done, total)` after each step, where Ctrl-C stops it.
    #[pyo3(signature = (prompt, target, top, exact_neurons, exact_all, graph_edges, progress = None))]
    #[allow(clippy::too_many_arguments)]
    fn attribute(
        &self,
        py: Python<'_>,
        prompt: Prompt,
        target: Option<TokenChoice>,
        top: usize,
        exact_neurons: usize,
        exact_all: bool,
        graph_edges: Option<usize>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let callbacks = Callbacks { progress, on_text: None };
        self.worker.call(py, &callbacks, move |any, reporter| {
            with_model!(any, loaded => {
                let ids = prompt.ids(&loaded.tokenizer)?;
                let options = AttributionOptions {
                    target: target.map(|t| t.id(&loaded.tokenizer)).transpose()?,
                    top,
                    exact_neurons,
                    exact_all,
                    graph_edges,
                    ..AttributionOptions::default()
                };
                let unembedding = Unembedding::new(&loaded.model)?;
                let mut go_on = |done, total| reporter.go_on(done, total);
                to_json(&attribute_with_progress(&unembedding, &loaded.tokenizer, &ids, &options, &mut go_on)?)
            })
        })
    }

    /// The logit lens, as `glassbox lens --json` prints it.
    #[pyo3(signature = (prompt, layers, positions, top_k, scale))]
    fn lens(
        &self,
        py: Python<'_>,
        prompt: Prompt,
        layers: Option<Vec<usize>>,
        positions: Option<Vec<usize>>,
        top_k: usize,
        scale: &str,
    ) -> PyResult<String> {
        let scale = match scale {
            "fixed" => LensScale::Fixed,
            "own_rms" => LensScale::OwnRms,
            other => {
                return Err(Failure::input(format!("scale {other:?} is neither \"fixed\" nor \"own_rms\"")).into_py())
            }
        };
        let request = LensRequest { layers, positions, top_k, scale };
        self.worker.call(py, &Callbacks::default(), move |any, _| {
            with_model!(any, loaded => {
                let ids = prompt.ids(&loaded.tokenizer)?;
                let unembedding = Unembedding::new(&loaded.model)?;
                to_json(&logit_lens(&unembedding, &loaded.tokenizer, &ids, &request)?)
            })
        })
    }

    /// Activation patching from `corrupt` into `clean`, as `glassbox patch --json` prints it.
    #[pyo3(signature = (clean, corrupt, answer, wrong, site, method, progress = None))]
    #[allow(clippy::too_many_arguments)]
    fn patch(
        &self,
        py: Python<'_>,
        clean: String,
        corrupt: String,
        answer: String,
        wrong: String,
        site: &str,
        method: &str,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let site = match site {
            "resid_pre" => PatchSite::ResidPre,
            "attn_out" => PatchSite::AttnOut,
            "mlp_out" => PatchSite::MlpOut,
            "head" => PatchSite::Head,
            other => {
                return Err(Failure::input(format!(
                    "site {other:?} is not \"resid_pre\", \"attn_out\", \"mlp_out\" or \"head\""
                ))
                .into_py())
            }
        };
        let method = match method {
            "exact" => PatchingMethod::Exact,
            "attribution" => PatchingMethod::Attribution,
            "both" => PatchingMethod::Both,
            other => {
                return Err(
                    Failure::input(format!("method {other:?} is not \"exact\", \"attribution\" or \"both\"")).into_py()
                )
            }
        };
        let callbacks = Callbacks { progress, on_text: None };
        self.worker.call(py, &callbacks, move |any, reporter| {
            with_model!(any, loaded => {
                let tokenizer = &loaded.tokenizer;
                let (clean_ids, corrupt_ids) = (tokenizer.encode(&clean, true, true)?, tokenizer.encode(&corrupt, true, true)?);
                let one_token = |what: &str, text: &str| {
                    tokenizer.single_token(text).map_err(|e| Failure::new(Kind::Tokenizer, format!("{what}: {e}")))
                };
                let (answer_id, wrong_id) = (one_token("answer", &answer)?, one_token("wrong", &wrong)?);
                let mut go_on = |done, total| reporter.go_on(done, total);
                let grid = activation_patching(&loaded.model, site, method, &clean_ids, &corrupt_ids, answer_id, wrong_id, &mut go_on)?;
                let (tokens, corrupt_tokens) = (tokenizer.token_texts(&clean_ids)?, tokenizer.token_texts(&corrupt_ids)?);
                to_json(&grid.report(&tokens, &corrupt_tokens, &answer, &wrong))
            })
        })
    }

    /// Classifies JSONL rows (each a JSON object as `glassbox classify --input` reads them) with
    /// a built-in task or one given as JSON. Each row gives `(True, output row as JSON)` or
    /// `(False, why)`; `options` is the browser's `{ explain, evidence, affect, mode, chat,
    /// maxNewTokens, writing, k }` as JSON.
    #[pyo3(signature = (task, rows, options, index = None, lexicons = None, minilm = None, nrc = false, model_name = String::new(), progress = None))]
    #[allow(clippy::too_many_arguments)]
    fn classify(
        &self,
        py: Python<'_>,
        task: String,
        rows: Vec<String>,
        options: String,
        index: Option<PathBuf>,
        lexicons: Option<PathBuf>,
        minilm: Option<PathBuf>,
        nrc: bool,
        model_name: String,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<(bool, String)>> {
        let choices: Choices =
            serde_json::from_str(&options).map_err(|e| Failure::input(format!("options: {e}")).into_py())?;
        let table = Table::builtin();
        let task = match task.trim_start().starts_with('{') {
            true => Table::parse_task(&task),
            false => table.task(&task).cloned(),
        }
        .map_err(|e| Failure::new(Kind::Task, e).into_py())?;
        let callbacks = Callbacks { progress, on_text: None };
        self.worker.call(py, &callbacks, move |any, reporter| {
            let index = index
                .map(|path| {
                    let bytes = std::fs::read(&path).map_err(|e| Failure::input(format!("{}: {e}", path.display())))?;
                    Index::from_bytes(&bytes).map_err(|e| Failure::new(Kind::Task, format!("{}: {e}", path.display())))
                })
                .transpose()?;
            let (options, embedder) = choices.check(&task, index.as_ref(), &model_name)?;
            let lexicons = match choices.affect {
                true => Some(Lexicons::from_folder(&lexicons.unwrap_or_else(|| "models/lexicons".into()), nrc)?),
                false => None,
            };
            let minilm = match embedder {
                Some(QueryEmbedder::MiniLm) => {
                    Some(MiniLm::from_folder(&minilm.unwrap_or_else(|| "models/all-MiniLM-L6-v2".into()))?)
                }
                _ => None,
            };
            with_model!(any, loaded => {
                let mut classifier = Classifier::new(&loaded.model, &loaded.tokenizer, &table, &task, options);
                classifier.lexicons = lexicons.as_ref();
                classifier.retrieval = index.as_ref().map(|index| Retrieval::new(index, minilm.as_ref()));
                let mut results = Vec::with_capacity(rows.len());
                for (done, row) in rows.iter().enumerate() {
                    if !reporter.go_on(done, rows.len()) {
                        return Err(Failure::new(Kind::Task, "stopped before the end, as asked"));
                    }
                    let result = parse_task_row(row, &task).and_then(|input| {
                        let output = classifier.run(&input, &mut |_| true).map_err(|e| format!("id {:?}: {e}", input.id))?;
                        serde_json::to_string(&output).map_err(|e| e.to_string())
                    });
                    results.push(match result {
                        Ok(json) => (true, json),
                        Err(why) => (false, why),
                    });
                }
                reporter.go_on(rows.len(), rows.len());
                Ok(results)
            })
        })
    }
}

/// A steering vector from the safetensors file `glassbox steer-vector` (or the browser) wrote.
#[pyfunction]
fn steering_vector(py: Python<'_>, file: Vec<u8>) -> PyResult<Bound<'_, PyAny>> {
    let vector = SteeringVector::from_safetensors(&file).map_err(|e| Failure::input(e).into_py())?;
    match vector.at(0, 1.0) {
        Intervention::Steer { vector, .. } => Ok(PyArray1::from_vec(py, vector).into_any()),
        _ => Err(Failure::internal("a steering vector gave another intervention").into_py()),
    }
}

/// Splits JSONL text into `(line number, line, why it is unreadable)`, one of the two `None`, as
/// `classify` reads its input: blank lines skipped, each line decoded on its own.
#[pyfunction]
fn jsonl_rows(bytes: Vec<u8>) -> Vec<(usize, Option<String>, Option<String>)> {
    jsonl_lines(&bytes)
        .into_iter()
        .map(|(number, line)| match line {
            Ok(line) => (number, Some(line.to_string()), None),
            Err(why) => (number, None, Some(why)),
        })
        .collect()
}

/// A row `evaluate` skipped: its side, line and why.
type RowProblem = (&'static str, usize, String);

/// `glassbox evaluate`: `pred` against `gold` (JSONL bytes) for `task`, as the report's JSON and
/// each skipped or repeated row as `(side, line, why)`, side `"gold"` or `"pred"`.
#[pyfunction]
fn evaluate(task: &str, gold: Vec<u8>, pred: Vec<u8>) -> PyResult<(String, Vec<RowProblem>)> {
    let evaluation = glassbox::tasks::evaluate::evaluate(task, &gold, &pred);
    let Some(report) = evaluation.report else {
        let what =
            if task == "exam" { "no reply matches a question" } else { "no prediction matches an id of the gold rows" };
        let skipped = evaluation
            .problems
            .first()
            .map(|p| format!("; {} rows skipped, the first: {}", evaluation.problems.len(), p.message));
        return Err(Failure::input(format!("{what}{}", skipped.unwrap_or_default())).into_py());
    };
    let problems = evaluation
        .problems
        .into_iter()
        .map(|p| {
            let side = match p.side {
                glassbox::tasks::evaluate::Side::Gold => "gold",
                glassbox::tasks::evaluate::Side::Pred => "pred",
            };
            (side, p.line, p.message)
        })
        .collect();
    Ok((report.to_string(), problems))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(steering_vector, m)?)?;
    m.add_function(wrap_pyfunction!(jsonl_rows, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    for (name, class) in [
        ("GlassboxError", py.get_type::<errors::GlassboxError>()),
        ("GgufError", py.get_type::<errors::GgufError>()),
        ("ModelError", py.get_type::<errors::ModelError>()),
        ("TokenizerError", py.get_type::<errors::TokenizerError>()),
        ("InterpError", py.get_type::<errors::InterpError>()),
        ("InputError", py.get_type::<errors::InputError>()),
        ("GpuError", py.get_type::<errors::GpuError>()),
        ("TaskError", py.get_type::<errors::TaskError>()),
    ] {
        m.add(name, class)?;
    }
    Ok(())
}
