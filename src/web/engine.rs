//! `Engine`: a language model loaded in the browser, on WebGPU or on the wasm CPU.
//!
//! Loading streams the weights from a `Blob` tensor by tensor, so on WebGPU the file never sits
//! in wasm memory: at most one tensor does, on its way to a GPU buffer. Every computation is a
//! [`Task`] that `runTask` runs, because a GPU read waits for the browser's event loop.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use wasm_bindgen::prelude::*;

use super::task::Task;
use super::{js_error, options, to_js, ErrorName};
use crate::backend::candle::CandleBackend;
#[cfg(feature = "webgpu")]
use crate::backend::webgpu::{GpuDevice, WebGpuBackend};
use crate::backend::Backend;
use crate::generate::{generate, GenerateRequest, Sampling};
use crate::gguf::ModelCard;
use crate::gguf::{Gguf, GgufError, TensorInfo};
use crate::hooks::{Intervention, Positions, DEFAULT_MAX_RECORDING_BYTES};
use crate::inspect::ModelSummary;
use crate::interp::ablation::Mask;
use crate::interp::attribution::{attribute_with_progress, AttributionOptions, DEFAULT_GRAPH_EDGES};
use crate::interp::lens::{logit_lens, LensRequest, LensScale, Unembedding};
use crate::interp::steering::SteeringVector;
use crate::jspi;
use crate::model::{AnyLoaded, Config, Loaded, Model, ModelError, WeightSource};
use crate::tasks::embed::MiniLm;
use crate::tasks::pipeline::Lexicons;
use crate::tokenizer::{ChatMessage, Tokenizer};
use crate::with_model;

/// Where the model runs.
pub(super) struct Placement {
    pub(super) model: AnyLoaded,
    /// A line naming the device, for people choosing a backend.
    device: String,
    /// Why the model runs on the CPU when WebGPU was wanted: `auto` found no usable adapter, or
    /// the GPU was lost and the model reloaded.
    fallback_reason: Option<String>,
}

pub(super) struct State {
    /// Replaced only when the GPU is lost, between computations.
    pub(super) placement: RefCell<Placement>,
    /// The file, kept to reload the weights onto the CPU if the GPU is lost.
    source: web_sys::Blob,
    /// The persistent edit: heads and neurons zeroed in `topTokens` and `generate`. Borrowed
    /// only for a moment, so `setMask` works while a task waits on the GPU.
    mask: RefCell<Mask>,
    /// Steering vectors added while the model runs, kept like the mask until cleared.
    steering: RefCell<Vec<Intervention>>,
    /// What `inspectGguf` says of the file, for `Engine.card`.
    card: ModelCard,
    /// The same model with its weights dequantised to f32 on the CPU, loaded from `source` the
    /// first time a call asks for it (`attribute`'s `floatWeights`).
    float_model: RefCell<Option<Rc<Loaded<CandleBackend>>>>,
}

/// Why reading the model's file again can fail where the first load succeeded: the header is
/// read first, so a file that is gone fails there.
const REREAD_HINT: &str =
    " (the model's file was read again: one deleted from this device's kept models since it was loaded must be loaded anew)";

/// The f32 copy of the weights (four bytes a weight) and the weights as stored, which may also be
/// on the wasm heap, together: refused past this, which leaves the rest of wasm32's 4 GiB for
/// the computations on either.
const FLOAT_WEIGHTS_BUDGET: u64 = 2 << 30;

/// `{ backend: "auto" | "webgpu" | "cpu", onProgress(loaded, total) }`, both optional.
pub(super) fn load_options(options: &JsValue) -> Result<(Option<js_sys::Function>, String), JsValue> {
    let field = |name: &str| {
        if options.is_object() {
            js_sys::Reflect::get(options, &name.into()).unwrap_or(JsValue::UNDEFINED)
        } else {
            JsValue::UNDEFINED
        }
    };
    let on_progress = field("onProgress").dyn_into::<js_sys::Function>().ok();
    let backend = field("backend");
    let choice = if backend.is_undefined() {
        "auto".to_string()
    } else {
        backend
            .as_string()
            .ok_or_else(|| js_error(ErrorName::InputError, "options.backend must be \"auto\", \"webgpu\" or \"cpu\""))?
    };
    Ok((on_progress, choice))
}

impl State {
    /// `"webgpu"` or `"cpu"`: where the model computes now.
    pub(super) fn backend_name(&self) -> &'static str {
        match self.placement.borrow().model {
            AnyLoaded::Candle(_) => "cpu",
            #[cfg(feature = "webgpu")]
            AnyLoaded::WebGpu(_) => "webgpu",
        }
    }

    /// The model's tokenizer, borrowed for a moment (the placement changes only between
    /// computations).
    pub(super) fn tokenizer(&self) -> std::cell::Ref<'_, Tokenizer> {
        std::cell::Ref::map(self.placement.borrow(), |p| p.model.tokenizer())
    }

    /// Loads the GGUF model in `source` onto the backend `choice` names.
    pub(super) fn open(
        source: web_sys::Blob,
        on_progress: Option<js_sys::Function>,
        choice: &str,
    ) -> Result<State, JsValue> {
        let source = BlobGguf::open(source, on_progress).map_err(|e| js_error(ErrorName::GgufError, e))?;
        let config = Config::from_gguf(&source.header).map_err(model_error)?;
        let card = ModelSummary::from_gguf(&source.header).map_err(|e| js_error(ErrorName::GgufError, e))?.card;
        let placement = RefCell::new(load(choice, config, &source)?);
        Ok(State {
            placement,
            source: source.blob,
            mask: RefCell::default(),
            steering: RefCell::default(),
            card,
            float_model: RefCell::default(),
        })
    }

    /// The model's file, opened again to reload the weights.
    fn reopened(&self) -> Result<BlobGguf, JsValue> {
        BlobGguf::open(self.source.clone(), None)
            .map_err(|e| js_error(ErrorName::GgufError, format!("{e}{REREAD_HINT}")))
    }

    /// The model with f32 weights, loaded from the file on first use; refused with a
    /// `ModelError` when the copy would take more than [`FLOAT_WEIGHTS_BUDGET`].
    fn float_model(&self) -> Result<Rc<Loaded<CandleBackend>>, JsValue> {
        if let Some(loaded) = self.float_model.borrow().as_ref() {
            return Ok(Rc::clone(loaded));
        }
        let source = self.reopened()?;
        let as_f32 =
            source.header.tensors.iter().map(|t| t.element_count().saturating_mul(4)).fold(0, u64::saturating_add);
        let bytes = as_f32.saturating_add(source.total);
        if bytes > FLOAT_WEIGHTS_BUDGET {
            return Err(model_error(format!(
                "the model's weights as f32 ({} MB) beside them as stored ({} MB) need more than the {} MB this page gives them",
                as_f32 >> 20,
                source.total >> 20,
                FLOAT_WEIGHTS_BUDGET >> 20
            )));
        }
        let config = Config::from_gguf(&source.header).map_err(model_error)?;
        let loaded = Rc::new(loaded_on(CandleBackend::with_float_weights(candle_core::Device::Cpu), config, &source)?);
        self.float_model.replace(Some(Rc::clone(&loaded)));
        Ok(loaded)
    }

    /// The persistent changes every prompt-driven call runs with: the mask, then the steering.
    fn interventions(&self) -> Vec<Intervention> {
        let mut interventions = self.mask.borrow().interventions();
        interventions.extend(self.steering.borrow().iter().cloned());
        interventions
    }

    /// Runs `work` on the model. When it fails because the WebGPU device was lost, reloads the
    /// weights onto the CPU from the file, says why in `fallbackReason`, and runs it again.
    pub(super) fn compute(&self, work: impl Fn(&AnyLoaded) -> Result<JsValue, JsValue>) -> Result<JsValue, JsValue> {
        let outcome = work(&self.placement.borrow().model);
        let lost = match &self.placement.borrow().model {
            #[cfg(feature = "webgpu")]
            AnyLoaded::WebGpu(loaded) if outcome.is_err() => loaded.model.backend().device().lost(),
            _ => None,
        };
        let Some(reason) = lost else { return outcome };
        let source = self.reopened()?;
        let config = Config::from_gguf(&source.header).map_err(model_error)?;
        let mut on_cpu = load("cpu", config, &source)?;
        on_cpu.fallback_reason =
            Some(format!("the WebGPU device was lost ({reason}); the model was reloaded onto the CPU"));
        *self.placement.borrow_mut() = on_cpu;
        work(&self.placement.borrow().model)
    }
}

/// What `classify` may need beyond the model, given once by the caller. Shared with running
/// tasks, so replacing one never disturbs a classification in flight.
#[derive(Default)]
pub(super) struct Resources {
    pub(super) lexicons: RefCell<Option<Rc<Lexicons>>>,
    pub(super) minilm: RefCell<Option<Rc<MiniLm>>>,
}

/// A language model in the browser.
#[wasm_bindgen]
pub struct Engine {
    pub(super) state: Rc<State>,
    pub(super) resources: Rc<Resources>,
}

/// `setMask`'s argument: `{ heads: ["L.H", ...], neurons: ["L.I", ...] }`.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct MaskSpec {
    heads: Vec<String>,
    neurons: Vec<String>,
}

/// A token named by its id or by its text.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum TokenChoice {
    Id(u32),
    Text(String),
}

/// `attribute`'s options, all optional: `{ target, top, exactNeurons, exactAll, floatWeights,
/// graph, graphEdges }`, `target` a token id or a token's text; `floatWeights` attributes with the
/// weights dequantised to f32 on the CPU, as `glassbox compare-weights` does; `graph` adds the
/// attribution graph, its `graphEdges` strongest edges scored exactly.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct AttributeOptions {
    target: Option<TokenChoice>,
    top: Option<usize>,
    exact_neurons: Option<usize>,
    exact_all: bool,
    float_weights: bool,
    graph: bool,
    graph_edges: Option<usize>,
}

/// `lens`'s options, all optional: `{ layers, positions, topK, scale: "fixed" | "own_rms" }`.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct LensOptions {
    layers: Option<Vec<usize>>,
    positions: Option<Vec<usize>>,
    top_k: Option<usize>,
    scale: Option<String>,
}

/// `record`'s options: `{ hooks, positions, maxBytes, format }`. `hooks` names the hooks as the
/// CLI's `record` does (comma-separated TransformerLens names, `*` globs); `positions` is "all"
/// (the default), "last" or a list of positions; `format` is "arrays" (the default) or
/// "safetensors", the file `glassbox record` writes.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RecordOptions {
    hooks: String,
    positions: Option<PositionsChoice>,
    max_bytes: Option<u64>,
    format: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum PositionsChoice {
    Named(String),
    List(Vec<usize>),
}

/// A GGUF file behind a `Blob` (a `File`, or a download saved as one), read a slice at a time.
pub(super) struct BlobGguf {
    blob: web_sys::Blob,
    pub(super) header: Gguf,
    on_progress: Option<js_sys::Function>,
    loaded: Cell<u64>,
    total: u64,
}

impl BlobGguf {
    pub(super) fn open(blob: web_sys::Blob, on_progress: Option<js_sys::Function>) -> Result<BlobGguf, GgufError> {
        let read_error =
            |message: String| GgufError::Io { path: "the chosen file".into(), source: std::io::Error::other(message) };
        let file_len =
            super::file_length(blob.size()).map_err(|_| read_error(format!("a Blob of {} bytes", blob.size())))?;
        let header = Gguf::read_header(file_len, |len| jspi::read_blob(&blob, 0, len).map_err(read_error))?;
        let total = header.tensors.iter().map(|t| t.byte_len).sum();
        Ok(BlobGguf { blob, header, on_progress, loaded: Cell::new(0), total })
    }
}

impl WeightSource for BlobGguf {
    fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    fn read(&self, tensor: &TensorInfo) -> crate::model::Result<Vec<u8>> {
        // The header parser checked this range against the Blob's size.
        let bytes = jspi::read_blob(&self.blob, tensor.file_offset, tensor.byte_len).map_err(ModelError::Read)?;
        self.loaded.set(self.loaded.get() + tensor.byte_len);
        if let Some(report) = &self.on_progress {
            // Progress is advisory: a throwing callback must not fail the load.
            let _ = report.call2(&JsValue::NULL, &(self.loaded.get() as f64).into(), &(self.total as f64).into());
        }
        Ok(bytes)
    }
}

pub(super) fn model_error(e: impl std::fmt::Display) -> JsValue {
    js_error(ErrorName::ModelError, e)
}

/// The model in `source` on `backend`, with its tokenizer.
fn loaded_on<B: Backend>(backend: B, config: Config, source: &BlobGguf) -> Result<Loaded<B>, JsValue> {
    let model = Model::load(backend, config, source).map_err(model_error)?;
    let tokenizer = Tokenizer::from_gguf(&source.header).map_err(|e| js_error(ErrorName::TokenizerError, e))?;
    Loaded::new(model, tokenizer).map_err(model_error)
}

/// Loads onto the backend `choice` names; `auto` takes WebGPU when a hardware adapter opens and
/// this browser can wait for it, else the CPU with the reason. A software adapter (SwiftShader)
/// runs the kernels on the CPU slower than the wasm CPU backend does (BENCHMARKS.md: about a
/// ninth of its decode speed), so `auto` passes it over; `webgpu` still takes it.
fn load(choice: &str, config: Config, source: &BlobGguf) -> Result<Placement, JsValue> {
    let cpu = |fallback_reason| -> Result<_, JsValue> {
        let loaded = loaded_on(CandleBackend::cpu(), config.clone(), source)?;
        Ok(Placement { model: loaded.into(), device: "CPU (wasm)".to_string(), fallback_reason })
    };
    match choice {
        "cpu" => cpu(None),
        "webgpu" | "auto" => match open_gpu() {
            #[cfg(feature = "webgpu")]
            Ok(gpu) if choice == "auto" && gpu.is_software() => cpu(Some(format!(
                "the WebGPU adapter ({}) runs on the CPU, where the wasm CPU backend is faster",
                gpu.description()
            ))),
            #[cfg(feature = "webgpu")]
            Ok(gpu) => {
                let device = format!("WebGPU: {}", gpu.description());
                let loaded = loaded_on(WebGpuBackend::new(gpu), config.clone(), source)?;
                Ok(Placement { model: loaded.into(), device, fallback_reason: None })
            }
            Err(reason) if choice == "auto" => cpu(Some(reason)),
            Err(reason) => Err(js_error(ErrorName::GpuError, reason)),
        },
        other => {
            Err(js_error(ErrorName::InputError, format!("backend {other:?} is not \"auto\", \"webgpu\" or \"cpu\"")))
        }
    }
}

#[cfg(feature = "webgpu")]
fn open_gpu() -> Result<GpuDevice, String> {
    jspi::wait_for(GpuDevice::new())?.map_err(|e| e.to_string())
}

#[cfg(not(feature = "webgpu"))]
fn open_gpu() -> Result<std::convert::Infallible, String> {
    Err("this glassbox build has no WebGPU backend".to_string())
}

fn attribution<B: Backend>(
    loaded: &Loaded<B>,
    ids: &[u32],
    options: &AttributionOptions,
    on_progress: &Option<js_sys::Function>,
) -> Result<JsValue, JsValue> {
    let unembedding = Unembedding::new(&loaded.model).map_err(model_error)?;
    let mut go_on = |done: usize, total: usize| go_on_after(on_progress, done, total);
    let attributed = attribute_with_progress(&unembedding, &loaded.tokenizer, ids, options, &mut go_on);
    to_js(&attributed.map_err(|e| js_error(ErrorName::InterpError, e))?)
}

/// Hands a piece of streamed text to `on_text` and answers whether to go on. The stream is a view:
/// its answer `false` stops the work, but a throwing callback does not.
pub(super) fn stream_to(on_text: &Option<js_sys::Function>, piece: &str) -> bool {
    match on_text {
        Some(callback) => callback.call1(&JsValue::NULL, &piece.into()).map_or(true, |go_on| go_on != JsValue::FALSE),
        None => true,
    }
}

/// What a progress callback answers: `false` (or a throw) stops the work; none goes on.
pub(super) fn go_on_after(on_progress: &Option<js_sys::Function>, done: usize, total: usize) -> bool {
    match on_progress {
        Some(callback) => {
            callback.call2(&JsValue::NULL, &done.into(), &total.into()).is_ok_and(|go_on| go_on != JsValue::FALSE)
        }
        None => true,
    }
}

fn top_tokens<B: Backend>(loaded: &Loaded<B>, state: &State, ids: &[u32], k: usize) -> Result<JsValue, JsValue> {
    let tokens = loaded.top_tokens(ids, &state.interventions(), k).map_err(|e| match e {
        ModelError::Tokenizer(e) => js_error(ErrorName::TokenizerError, e),
        other => model_error(other),
    })?;
    to_js(&tokens)
}

/// The hooks `spec` names over `ids`, as `{ [hook]: { shape, positions, data: Float32Array } }`,
/// or with `as_file` as the bytes of a safetensors file.
fn record<B: Backend>(
    loaded: &Loaded<B>,
    state: &State,
    ids: &[u32],
    spec: &str,
    positions: &Positions,
    max_bytes: u64,
    as_file: bool,
) -> Result<JsValue, JsValue> {
    let interventions = state.interventions();
    let recording = loaded.model.record(ids, spec, positions, &interventions, max_bytes).map_err(|e| match e {
        ModelError::UnknownHook(_) | ModelError::RecordingTooLarge { .. } => js_error(ErrorName::InputError, e),
        other => model_error(other),
    })?;
    if as_file {
        return Ok(js_sys::Uint8Array::from(recording.to_safetensors().as_slice()).into());
    }
    let recorded = js_sys::Object::new();
    for (point, activation) in &recording.activations {
        let entry = js_sys::Object::new();
        js_sys::Reflect::set(&entry, &"shape".into(), &to_js(&activation.shape)?)?;
        js_sys::Reflect::set(&entry, &"positions".into(), &to_js(&activation.positions)?)?;
        js_sys::Reflect::set(&entry, &"data".into(), &js_sys::Float32Array::from(activation.data.as_slice()))?;
        js_sys::Reflect::set(&recorded, &point.to_string().into(), &entry)?;
    }
    Ok(recorded.into())
}

#[wasm_bindgen]
impl Engine {
    /// A task that loads the GGUF model in `source` (a `Blob` or `File`) and resolves to an
    /// `Engine`. Rejects with a `GgufError`, `ModelError`, `TokenizerError` or `GpuError` naming
    /// what is wrong.
    pub fn open(source: web_sys::Blob, options: JsValue) -> Result<Task, JsValue> {
        let (on_progress, choice) = load_options(&options)?;
        Ok(Task::new(move || {
            let state = Rc::new(State::open(source, on_progress, &choice)?);
            Ok(Engine { state, resources: Rc::default() }.into())
        }))
    }

    /// A task resolving to a steering vector as safetensors bytes (a `Uint8Array`): the mean
    /// residual leaving `layer` at the last position over the `positive` prompts minus that over
    /// the `negative` ones.
    #[wasm_bindgen(js_name = steeringVector)]
    pub fn steering_vector(&self, positive: Vec<String>, negative: Vec<String>, layer: usize) -> Result<Task, JsValue> {
        let encode = |prompts: &[String]| -> Result<Vec<Vec<u32>>, JsValue> {
            prompts
                .iter()
                .map(|p| {
                    self.state.tokenizer().encode(p, true, true).map_err(|e| js_error(ErrorName::TokenizerError, e))
                })
                .collect()
        };
        let (positive, negative) = (encode(&positive)?, encode(&negative)?);
        let state = Rc::clone(&self.state);
        Ok(Task::new(move || {
            state.compute(|loaded| {
                with_model!(loaded, loaded => {
                    let vector = SteeringVector::contrast(&loaded.model, &positive, &negative, layer)
                        .map_err(|e| js_error(ErrorName::InterpError, e))?;
                    Ok(js_sys::Uint8Array::from(vector.to_safetensors().as_slice()).into())
                })
            })
        }))
    }

    /// Adds `coefficient` times the steering vector in `file` (safetensors bytes from
    /// `steeringVector` or the CLI's `steer-vector`) to the residual leaving `layer`, in every
    /// later `topTokens`, `generate` and `record` until `clearSteering`.
    #[wasm_bindgen(js_name = addSteering)]
    pub fn add_steering(&self, file: &[u8], layer: usize, coefficient: f32) -> Result<(), JsValue> {
        let vector = SteeringVector::from_safetensors(file).map_err(|e| js_error(ErrorName::InputError, e))?;
        let steering = vector.at(layer, coefficient);
        with_model!(&self.state.placement.borrow().model, loaded => {
            loaded.model.check_interventions(std::slice::from_ref(&steering))
        })
        .map_err(|e| js_error(ErrorName::InputError, e))?;
        self.state.steering.borrow_mut().push(steering);
        Ok(())
    }

    #[wasm_bindgen(js_name = clearSteering)]
    pub fn clear_steering(&self) {
        self.state.steering.borrow_mut().clear();
    }

    /// `"webgpu"` or `"cpu"`: where this model computes.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.state.backend_name().to_string()
    }

    /// The model card: `inspectGguf(...).card` of the loaded file.
    #[wasm_bindgen(getter)]
    pub fn card(&self) -> Result<JsValue, JsValue> {
        to_js(&self.state.card)
    }

    /// The device, e.g. `WebGPU: SwiftShader (BrowserWebGpu, Cpu)` or `CPU (wasm)`.
    #[wasm_bindgen(getter)]
    pub fn device(&self) -> String {
        self.state.placement.borrow().device.clone()
    }

    /// The device work this model's backend has done so far, counted (`{ submits, dispatches,
    /// readbacks, readback_bytes, buffers_created }`); undefined on the CPU.
    #[wasm_bindgen(getter, js_name = deviceCounts)]
    pub fn device_counts(&self) -> Result<JsValue, JsValue> {
        let placement = self.state.placement.borrow();
        match with_model!(&placement.model, loaded => loaded.model.backend().device_counts()) {
            Some(counts) => to_js(&counts),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// Why the model runs on the CPU though WebGPU was wanted (no adapter, no JS Promise
    /// Integration, a lost GPU, ...); undefined otherwise.
    #[wasm_bindgen(getter, js_name = fallbackReason)]
    pub fn fallback_reason(&self) -> Option<String> {
        self.state.placement.borrow().fallback_reason.clone()
    }

    /// Zeroes these heads and neurons in every later `topTokens` and `generate` call, until
    /// `clearMask`. Throws an `InterpError` naming any that does not exist.
    #[wasm_bindgen(js_name = setMask)]
    pub fn set_mask(&self, mask: JsValue) -> Result<(), JsValue> {
        let spec: MaskSpec = options(mask)?;
        let parsed = Mask::parse(&spec.heads, &spec.neurons, self.state.placement.borrow().model.config())
            .map_err(|e| js_error(ErrorName::InterpError, e))?;
        self.state.mask.replace(parsed);
        Ok(())
    }

    #[wasm_bindgen(js_name = clearMask)]
    pub fn clear_mask(&self) {
        self.state.mask.replace(Mask::default());
    }

    /// Token ids of `text`, with special tokens such as `<|im_start|>` recognised.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, JsValue> {
        self.state.tokenizer().encode(text, true, true).map_err(|e| js_error(ErrorName::TokenizerError, e))
    }

    /// The chat template applied to one user message, ready for `tokenize`.
    #[wasm_bindgen(js_name = chatPrompt)]
    pub fn chat_prompt(&self, user_message: &str) -> Result<String, JsValue> {
        self.state
            .tokenizer()
            .apply_chat_template(&[ChatMessage::new("user", user_message)], true)
            .map_err(|e| js_error(ErrorName::TokenizerError, e))
    }

    /// A task resolving to the `k` most likely next tokens after `ids`: `[{ id, token, logprob }]`.
    #[wasm_bindgen(js_name = topTokens)]
    pub fn top_tokens(&self, ids: Vec<u32>, k: usize) -> Task {
        let state = Rc::clone(&self.state);
        Task::new(move || state.compute(|loaded| with_model!(loaded, loaded => top_tokens(loaded, &state, &ids, k))))
    }

    /// A task resolving to the log-probability-increase attribution at the last position of
    /// `ids`: the JSON of `interp::attribution::Attribution` (target, layers, heads, neurons,
    /// positions, value and query neurons, the graph when asked for). `on_progress(done, total)`
    /// is called after each step; `false` stops the work there (an `InterpError`).
    pub fn attribute(
        &self,
        ids: Vec<u32>,
        options: JsValue,
        on_progress: Option<js_sys::Function>,
    ) -> Result<Task, JsValue> {
        let given: AttributeOptions = self::options(options)?;
        let defaults = AttributionOptions::default();
        let target = match given.target {
            Some(TokenChoice::Text(text)) => {
                Some(self.state.tokenizer().single_token(&text).map_err(|e| js_error(ErrorName::TokenizerError, e))?)
            }
            Some(TokenChoice::Id(id)) => Some(id),
            None => None,
        };
        let options = AttributionOptions {
            target,
            top: given.top.unwrap_or(defaults.top),
            exact_neurons: given.exact_neurons.unwrap_or(defaults.exact_neurons),
            exact_all: given.exact_all,
            graph_edges: given.graph.then(|| given.graph_edges.unwrap_or(DEFAULT_GRAPH_EDGES)),
            ..defaults
        };
        let float_weights = given.float_weights;
        let state = Rc::clone(&self.state);
        Ok(Task::new(move || {
            if float_weights {
                return attribution(state.float_model()?.as_ref(), &ids, &options, &on_progress);
            }
            state.compute(|loaded| with_model!(loaded, loaded => attribution(loaded, &ids, &options, &on_progress)))
        }))
    }

    /// A task resolving to the activations that `options.hooks` names over `ids` (see
    /// `RecordOptions`), with the mask applied: `{ [hook]: { shape, positions, data } }`, each
    /// `data` a `Float32Array` shaped as `hooks::HookPoint` documents. A name matching no hook, or
    /// a recording past `maxBytes` (512 MB unless given), rejects with an `InputError` before the
    /// forward pass runs.
    pub fn record(&self, ids: Vec<u32>, options: JsValue) -> Result<Task, JsValue> {
        let given: RecordOptions = self::options(options)?;
        let positions = match given.positions {
            None => Positions::All,
            Some(PositionsChoice::Named(name)) => {
                Positions::parse(&name).map_err(|e| js_error(ErrorName::InputError, e))?
            }
            Some(PositionsChoice::List(list)) => Positions::Only(list),
        };
        let max_bytes = given.max_bytes.unwrap_or(DEFAULT_MAX_RECORDING_BYTES);
        let as_file = match given.format.as_deref() {
            None | Some("arrays") => false,
            Some("safetensors") => true,
            Some(other) => {
                return Err(js_error(
                    ErrorName::InputError,
                    format!("format {other:?}: expected arrays or safetensors"),
                ))
            }
        };
        let state = Rc::clone(&self.state);
        Ok(Task::new(move || {
            state.compute(|loaded| {
                with_model!(loaded, loaded => record(loaded, &state, &ids, &given.hooks, &positions, max_bytes, as_file))
            })
        }))
    }

    /// A task resolving to the logit lens over `ids`: the JSON of `interp::lens::LogitLens`.
    pub fn lens(&self, ids: Vec<u32>, options: JsValue) -> Result<Task, JsValue> {
        let given: LensOptions = self::options(options)?;
        let scale = match given.scale.as_deref() {
            None | Some("fixed") => LensScale::Fixed,
            Some("own_rms") => LensScale::OwnRms,
            Some(other) => {
                return Err(js_error(
                    ErrorName::InputError,
                    format!("scale {other:?} is neither \"fixed\" nor \"own_rms\""),
                ))
            }
        };
        let request =
            LensRequest { layers: given.layers, positions: given.positions, top_k: given.top_k.unwrap_or(5), scale };
        let state = Rc::clone(&self.state);
        Ok(Task::new(move || {
            state.compute(|loaded| {
                with_model!(loaded, loaded => {
                    let unembedding = Unembedding::new(&loaded.model).map_err(model_error)?;
                    to_js(&logit_lens(&unembedding, &loaded.tokenizer, &ids, &request).map_err(|e| js_error(ErrorName::InterpError, e))?)
                })
            })
        }))
    }

    /// A task generating up to `max_tokens` after `prompt`, resolving to `{ text, ids,
    /// stop_reason }`. Temperature 0 is greedy; `seed` makes sampling repeatable. `onToken(text,
    /// id)`, when given, is called after each new token with the text generated so far and the
    /// token's id; returning `false` from it stops the generation.
    pub fn generate(
        &self,
        prompt: &str,
        max_tokens: usize,
        temperature: f32,
        seed: u32,
        on_token: Option<js_sys::Function>,
    ) -> Result<Task, JsValue> {
        let ids = self.tokenize(prompt)?;
        let state = Rc::clone(&self.state);
        Ok(Task::new(move || {
            let request = GenerateRequest {
                max_tokens,
                sampling: Sampling { temperature, seed: seed.into(), ..Sampling::default() },
                interventions: state.interventions(),
                ..GenerateRequest::default()
            };
            state.compute(|loaded| {
                let report = |id: u32, text: &str| match &on_token {
                    // A throwing callback stops the generation, as `false` does.
                    Some(callback) => callback
                        .call2(&JsValue::NULL, &text.into(), &id.into())
                        .is_ok_and(|go_on| go_on != JsValue::FALSE),
                    None => true,
                };
                let generation =
                    with_model!(loaded, loaded => generate(&loaded.model, &loaded.tokenizer, &ids, &request, report));
                to_js(&generation.map_err(model_error)?)
            })
        }))
    }
}
