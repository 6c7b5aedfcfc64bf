//! The JavaScript API, compiled only for `wasm32`. It converts; the work happens in the core.
//!
//! Every export returns a `Result`, so failures reach JavaScript as exceptions whose `name` says
//! which part failed (`GgufError`, `GpuError`, `InputError`) and whose `message` says why.

#[cfg(feature = "webgpu")]
use std::rc::Rc;

use serde::Serialize;
use wasm_bindgen::prelude::*;

#[cfg(feature = "webgpu")]
use crate::backend::webgpu::GpuDevice;
use crate::backend::candle::CandleBackend;
use crate::generate::{generate, log_softmax, top_k, GenerateRequest, Sampling};
use crate::gguf::Gguf;
use crate::hooks::{HookRequest, Positions};
use crate::interp::ablation::Mask;
use crate::interp::attribution::{attribute, AttributionOptions};
use crate::interp::lens::{logit_lens, LensRequest, LensScale, Unembedding};
use crate::inspect::ModelSummary;
use crate::model::{Config, InMemoryGguf, Model};
use crate::tokenizer::{ChatMessage, Tokenizer};

fn js_error(name: &str, error: impl std::fmt::Display) -> JsValue {
    let e = js_sys::Error::new(&error.to_string());
    e.set_name(name);
    e.into()
}

/// JS numbers are exact integers only up to 2^53.
fn file_length(value: f64) -> Result<u64, JsValue> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    if (0.0..=MAX_SAFE).contains(&value) && value.fract() == 0.0 {
        Ok(value as u64)
    } else {
        Err(js_error("InputError", format!("file length {value} is not a whole number of bytes")))
    }
}

/// Reads a GGUF header and returns `{ card, tensors }`.
///
/// `header` is the start of the file (all of it, or enough to hold the header) and `fileLength`
/// its full size, so tensor bounds are checked against the real file.
#[wasm_bindgen(js_name = inspectGguf)]
pub fn inspect_gguf(header: &[u8], #[wasm_bindgen(js_name = fileLength)] file_length_bytes: f64) -> Result<JsValue, JsValue> {
    let gguf = Gguf::parse(header, file_length(file_length_bytes)?).map_err(|e| js_error("GgufError", e))?;
    to_js(&ModelSummary::from_gguf(&gguf).map_err(|e| js_error("GgufError", e))?)
}

fn to_js(value: &impl Serialize) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| js_error("InputError", e))
}

/// A language model running on the CPU inside the wasm module.
#[wasm_bindgen]
pub struct Engine {
    model: Model<CandleBackend>,
    tokenizer: Tokenizer,
    /// The persistent edit: heads and neurons zeroed in `topTokens` and `generate`.
    mask: Mask,
}

/// `setMask`'s argument: `{ heads: ["L.H", ...], neurons: ["L.I", ...] }`.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct MaskSpec {
    heads: Vec<String>,
    neurons: Vec<String>,
}

/// `attribute`'s options, all optional: `{ target, top, exactNeurons, exactAll }`.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct AttributeOptions {
    target: Option<u32>,
    top: Option<usize>,
    exact_neurons: Option<usize>,
    exact_all: bool,
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

fn options<T: serde::de::DeserializeOwned + Default>(value: JsValue) -> Result<T, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(T::default());
    }
    serde_wasm_bindgen::from_value(value).map_err(|e| js_error("InputError", e))
}

#[derive(Serialize)]
struct TopToken {
    id: u32,
    token: String,
    logprob: f32,
}

#[wasm_bindgen]
impl Engine {
    /// Loads a whole GGUF file held in memory. Rejects with a `GgufError`, `ModelError` or
    /// `TokenizerError` naming what is wrong with it.
    pub fn load(bytes: &[u8]) -> Result<Engine, JsValue> {
        let source = InMemoryGguf::parse(bytes).map_err(|e| js_error("ModelError", e))?;
        let config = Config::from_gguf(&source.header).map_err(|e| js_error("ModelError", e))?;
        let tokenizer = Tokenizer::from_gguf(&source.header).map_err(|e| js_error("TokenizerError", e))?;
        let model = Model::load(CandleBackend::cpu(), config, &source).map_err(|e| js_error("ModelError", e))?;
        Ok(Engine { model, tokenizer, mask: Mask::default() })
    }

    /// Zeroes these heads and neurons in every later `topTokens` and `generate` call, until
    /// `clearMask`. Rejects with an `InterpError` naming any that does not exist.
    #[wasm_bindgen(js_name = setMask)]
    pub fn set_mask(&mut self, mask: JsValue) -> Result<(), JsValue> {
        let spec: MaskSpec = options(mask)?;
        self.mask = Mask::parse(&spec.heads, &spec.neurons, self.model.config()).map_err(|e| js_error("InterpError", e))?;
        Ok(())
    }

    #[wasm_bindgen(js_name = clearMask)]
    pub fn clear_mask(&mut self) {
        self.mask = Mask::default();
    }

    /// Token ids of `text`, with special tokens such as `<|im_start|>` recognised.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, JsValue> {
        self.tokenizer.encode(text, true, true).map_err(|e| js_error("TokenizerError", e))
    }

    /// The chat template applied to one user message, ready for `tokenize`.
    #[wasm_bindgen(js_name = chatPrompt)]
    pub fn chat_prompt(&self, user_message: &str) -> Result<String, JsValue> {
        self.tokenizer
            .apply_chat_template(&[ChatMessage::new("user", user_message)], true)
            .map_err(|e| js_error("TokenizerError", e))
    }

    /// The `k` most likely next tokens after `ids`: `[{ id, token, logprob }]`.
    #[wasm_bindgen(js_name = topTokens)]
    pub fn top_tokens(&self, ids: Vec<u32>, k: usize) -> Result<JsValue, JsValue> {
        let mut cache = self.model.new_cache();
        let forward = self
            .model
            .forward(&ids, &mut cache, &HookRequest::new(), &self.mask.interventions(), &Positions::Last)
            .map_err(|e| js_error("ModelError", e))?;
        let logprobs = log_softmax(&forward.logits.data);
        let top = top_k(&logprobs, k)
            .into_iter()
            .map(|i| {
                let token = self.tokenizer.decode(&[i as u32]).map_err(|e| js_error("TokenizerError", e))?;
                Ok(TopToken { id: i as u32, token, logprob: logprobs[i] })
            })
            .collect::<Result<Vec<_>, JsValue>>()?;
        to_js(&top)
    }

    /// Log-probability-increase attribution at the last position of `ids`: the JSON of
    /// `interp::attribution::Attribution` (target, layers, heads, neurons, positions, value and
    /// query neurons).
    pub fn attribute(&self, ids: Vec<u32>, options: JsValue) -> Result<JsValue, JsValue> {
        let given: AttributeOptions = self::options(options)?;
        let defaults = AttributionOptions::default();
        let options = AttributionOptions {
            target: given.target,
            top: given.top.unwrap_or(defaults.top),
            exact_neurons: given.exact_neurons.unwrap_or(defaults.exact_neurons),
            exact_all: given.exact_all,
            ..defaults
        };
        let unembedding = Unembedding::new(&self.model).map_err(|e| js_error("ModelError", e))?;
        to_js(&attribute(&unembedding, &self.tokenizer, &ids, &options).map_err(|e| js_error("InterpError", e))?)
    }

    /// The logit lens over `ids`: the JSON of `interp::lens::LogitLens`.
    pub fn lens(&self, ids: Vec<u32>, options: JsValue) -> Result<JsValue, JsValue> {
        let given: LensOptions = self::options(options)?;
        let scale = match given.scale.as_deref() {
            None | Some("fixed") => LensScale::Fixed,
            Some("own_rms") => LensScale::OwnRms,
            Some(other) => return Err(js_error("InputError", format!("scale {other:?} is neither \"fixed\" nor \"own_rms\""))),
        };
        let request = LensRequest { layers: given.layers, positions: given.positions, top_k: given.top_k.unwrap_or(5), scale };
        let unembedding = Unembedding::new(&self.model).map_err(|e| js_error("ModelError", e))?;
        to_js(&logit_lens(&unembedding, &self.tokenizer, &ids, &request).map_err(|e| js_error("InterpError", e))?)
    }

    /// Generates up to `max_tokens` after `prompt`: `{ text, ids, stop_reason }`. Temperature 0
    /// is greedy; `seed` makes sampling repeatable.
    pub fn generate(&self, prompt: &str, max_tokens: usize, temperature: f32, seed: u32) -> Result<JsValue, JsValue> {
        let ids = self.tokenize(prompt)?;
        let request = GenerateRequest {
            max_tokens,
            sampling: Sampling { temperature, seed: seed.into(), ..Sampling::default() },
            stop_strings: Vec::new(),
            interventions: self.mask.interventions(),
        };
        let generation = generate(&self.model, &self.tokenizer, &ids, &request, |_, _| true)
            .map_err(|e| js_error("ModelError", e))?;
        to_js(&generation)
    }
}

/// A WebGPU device opened through wgpu.
#[cfg(feature = "webgpu")]
#[wasm_bindgen]
pub struct WebGpu {
    device: Rc<GpuDevice>,
}

#[cfg(feature = "webgpu")]
#[wasm_bindgen]
impl WebGpu {
    /// Opens the browser's default adapter. Rejects with a `GpuError` where WebGPU is missing.
    pub async fn open() -> Result<WebGpu, JsValue> {
        let device = GpuDevice::new().await.map_err(|e| js_error("GpuError", e))?;
        Ok(WebGpu { device: Rc::new(device) })
    }

    #[wasm_bindgen(getter)]
    pub fn description(&self) -> String {
        self.device.description()
    }

    /// `x · Wᵀ` for `x: [t, cols]` (a `Float32Array`) and `W: [rows, cols]` given as GGUF block
    /// bytes of type `ggmlType` ("F32", "F16", "Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q5_K",
    /// "Q6_K"); resolves to a `Float32Array` `[t, rows]`.
    pub fn matmul(&self, ggml_type: &str, weights: Vec<u8>, rows: usize, cols: usize, x: Vec<f32>) -> js_sys::Promise {
        let device = Rc::clone(&self.device);
        let ggml_type = ggml_type.to_string();
        wasm_bindgen_futures::future_to_promise(async move {
            let kind = crate::gguf::GgmlType::from_name(&ggml_type)
                .ok_or_else(|| js_error("InputError", format!("{ggml_type:?} is not a GGUF tensor type")))?;
            let out = device.matmul(kind, &weights, rows, cols, &x).await.map_err(|e| js_error("GpuError", e))?;
            Ok(js_sys::Float32Array::from(out.as_slice()).into())
        })
    }

    /// `a·x + y` on the GPU; resolves to a `Float32Array`.
    pub fn saxpy(&self, a: f32, x: Vec<f32>, y: Vec<f32>) -> js_sys::Promise {
        let device = Rc::clone(&self.device);
        wasm_bindgen_futures::future_to_promise(async move {
            let out = device.saxpy(a, &x, &y).await.map_err(|e| js_error("GpuError", e))?;
            Ok(js_sys::Float32Array::from(out.as_slice()).into())
        })
    }
}
