//! `VisionEngine`: LLaVA in the browser, an mmproj's tower on the wasm CPU and the language
//! model wherever [`super::engine`] put it. Images arrive as PNG or JPEG bytes and are decoded
//! under [`ImageLimits`], as the CLI decodes them.

use std::rc::Rc;

use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::engine::{load_options, BlobGguf, State};
use super::task::Task;
use super::{js_error, options, to_js, ErrorName};
use crate::backend::Backend;
use crate::interp::lens::Unembedding;
use crate::model::Loaded;
use crate::numeric::{argmax, top_k};
use crate::vision::clip::{ClipConfig, ClipTower};
use crate::vision::llava::{heatmap_by, next_token_logprobs, visual_lens, ImagePrompt, Method};
use crate::vision::preprocess::{decode, ImageLimits, Preprocess};
use crate::vision::shapes::scene;
use crate::with_model;

#[wasm_bindgen]
pub struct VisionEngine {
    language: Rc<State>,
    tower: Rc<ClipTower>,
    preprocess: Preprocess,
}

/// `heatmap`'s options, all optional: `{ method: "lpi" | "attention" | "occlusion", heads,
/// target }` (`target`, a token id, defaults to the model's answer).
#[derive(serde::Deserialize)]
#[serde(default)]
struct HeatmapOptions {
    method: Method,
    heads: usize,
    target: Option<u32>,
}

impl Default for HeatmapOptions {
    fn default() -> Self {
        HeatmapOptions { method: Method::Lpi, heads: 1, target: None }
    }
}

/// `lens`'s options, all optional: `{ layers, topK }`.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct VisualLensOptions {
    layers: Option<Vec<usize>>,
    top_k: Option<usize>,
}

#[derive(Serialize)]
struct Answer {
    id: u32,
    token: String,
    prob: f32,
}

fn vision_error(e: impl std::fmt::Display) -> JsValue {
    js_error(ErrorName::VisionError, e)
}

impl VisionEngine {
    /// `image` decoded, preprocessed and embedded into `prompt` for `model`.
    fn prompt<B: Backend>(&self, loaded: &Loaded<B>, image: &[u8], prompt: &str) -> Result<ImagePrompt, JsValue> {
        let decoded = decode(image, ImageLimits::default()).map_err(|e| js_error(ErrorName::ImageError, e))?;
        ImagePrompt::new(&self.tower, &loaded.model, &loaded.tokenizer, prompt, &self.preprocess.apply(&decoded))
            .map_err(vision_error)
    }

    fn answer_of(&self, id: u32, logprobs: &[f32]) -> Result<Answer, JsValue> {
        let token = self.language.tokenizer().decode(&[id]).map_err(|e| js_error(ErrorName::TokenizerError, e))?;
        Ok(Answer { id, token, prob: logprobs[id as usize].exp() })
    }
}

/// Scene `index` of the stream `seed` from the fixture's generator, `size` pixels square:
/// `{ png, prompt, answer, target, shapes }`, as the CLI's `scene --png` gives it, with the image
/// as PNG bytes (a `Uint8Array`).
#[wasm_bindgen(js_name = drawScene)]
pub fn draw_scene(seed: u32, index: u32, size: u32) -> Result<JsValue, JsValue> {
    let drawn = scene(seed.into(), index.into(), size).map_err(|e| js_error(ErrorName::InputError, e))?;
    let mut png = std::io::Cursor::new(Vec::new());
    drawn.image.write_to(&mut png, image::ImageFormat::Png).map_err(|e| js_error(ErrorName::ImageError, e))?;
    let report = to_js(
        &serde_json::json!({ "prompt": drawn.prompt(), "answer": drawn.answer(), "target": drawn.target, "shapes": drawn.shapes }),
    )?;
    js_sys::Reflect::set(&report, &"png".into(), &js_sys::Uint8Array::from(png.get_ref().as_slice()))?;
    Ok(report)
}

#[wasm_bindgen]
impl VisionEngine {
    /// A task that loads a llava-1.5 mmproj (`mmproj`) and its language model (`model`), both
    /// `Blob`s, and resolves to a `VisionEngine`. `options` are `Engine.open`'s; the tower runs
    /// on the CPU.
    pub fn open(mmproj: web_sys::Blob, model: web_sys::Blob, options: JsValue) -> Result<Task, JsValue> {
        let (on_progress, choice) = load_options(&options)?;
        Ok(Task::new(move || {
            let language = State::open(model, on_progress, &choice)?;
            let mmproj = BlobGguf::open(mmproj, None).map_err(|e| js_error(ErrorName::GgufError, e))?;
            let config = ClipConfig::from_gguf(&mmproj.header).map_err(vision_error)?;
            let width = language.placement.borrow().model.config().width;
            let preprocess = config.preprocess(false);
            let tower = ClipTower::load(config, &mmproj, width).map_err(vision_error)?;
            Ok(VisionEngine { language: Rc::new(language), tower: Rc::new(tower), preprocess }.into())
        }))
    }

    /// `"webgpu"` or `"cpu"`: where the language model computes.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.language.backend_name().to_string()
    }

    /// A task resolving to `{ answer, top }`: the `k` most likely next tokens after the prompt
    /// with `image` (PNG or JPEG bytes) in place of its `<image>`, each `{ id, token, prob }`.
    pub fn answer(&self, image: Vec<u8>, prompt: String, k: usize) -> Task {
        let this = self.share();
        Task::new(move || {
            this.language.compute(|loaded| {
                with_model!(loaded, loaded => {
                    let model = &loaded.model;
                    let logprobs = next_token_logprobs(model, &this.prompt(loaded, &image, &prompt)?).map_err(vision_error)?;
                    let top = top_k(&logprobs, k.max(1)).into_iter().map(|id| this.answer_of(id as u32, &logprobs)).collect::<Result<Vec<_>, JsValue>>()?;
                    to_js(&serde_json::json!({ "answer": top[0], "top": top }))
                })
            })
        })
    }

    /// A task resolving to `{ target: { id, token, prob }, heatmap: { method, grid, cells, raw,
    /// heads } }`, the patch heatmap of the prompt's answer, as the CLI's `heatmap --json`
    /// gives it; `cells` (normalised, row-major over the patch grid) is a `Float32Array`.
    pub fn heatmap(&self, image: Vec<u8>, prompt: String, options: JsValue) -> Result<Task, JsValue> {
        let given: HeatmapOptions = self::options(options)?;
        let this = self.share();
        Ok(Task::new(move || {
            this.language.compute(|loaded| {
                with_model!(loaded, loaded => {
                    let model = &loaded.model;
                    let image_prompt = this.prompt(loaded, &image, &prompt)?;
                    let logprobs = next_token_logprobs(model, &image_prompt).map_err(vision_error)?;
                    let target = given.target.unwrap_or_else(|| argmax(&logprobs));
                    if target as usize >= logprobs.len() {
                        return Err(js_error(ErrorName::InputError, format!("target {target} is not a token id of this model")));
                    }
                    let map = heatmap_by(model, &image_prompt, given.method, target, given.heads).map_err(vision_error)?;
                    let report = to_js(&serde_json::json!({ "target": this.answer_of(target, &logprobs)?, "heatmap": map }))?;
                    let heatmap = js_sys::Reflect::get(&report, &"heatmap".into())?;
                    js_sys::Reflect::set(&heatmap, &"cells".into(), &js_sys::Float32Array::from(map.cells.as_slice()))?;
                    Ok(report)
                })
            })
        }))
    }

    /// A task resolving to the visual logit lens, as the CLI's `lens-image --json` gives it:
    /// `{ grid, cells: [{ layer, patch, row, col, tokens: [{ id, token, prob }] }] }`.
    pub fn lens(&self, image: Vec<u8>, prompt: String, options: JsValue) -> Result<Task, JsValue> {
        let given: VisualLensOptions = self::options(options)?;
        let this = self.share();
        Ok(Task::new(move || {
            this.language.compute(|loaded| {
                with_model!(loaded, loaded => {
                    let image_prompt = this.prompt(loaded, &image, &prompt)?;
                    let unembedding = Unembedding::new(&loaded.model).map_err(vision_error)?;
                    let lens = visual_lens(&unembedding, &loaded.tokenizer, &image_prompt, this.tower.config.grid(), given.layers.clone(), given.top_k.unwrap_or(5));
                    to_js(&lens.map_err(vision_error)?)
                })
            })
        }))
    }
}

impl VisionEngine {
    /// A handle for a task, which must own what it uses.
    fn share(&self) -> VisionEngine {
        VisionEngine {
            language: Rc::clone(&self.language),
            tower: Rc::clone(&self.tower),
            preprocess: self.preprocess.clone(),
        }
    }
}
