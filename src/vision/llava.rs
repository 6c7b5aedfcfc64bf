//! LLaVA: the tower's image embeddings in the language model's prompt, and the patch heatmaps
//! of "Understanding Multimodal LLMs: the Mechanistic Interpretability of Llava in Visual
//! Question Answering".
//!
//! The prompt's `<image>` becomes one placeholder token per patch, and the embeddings replace
//! the residual stream entering layer 0 at those positions (`PatchResidPre`), which is exactly
//! LLaVA's `inputs_embeds`; every hook and interpretability method then works unchanged (the
//! `hook_embed` recording still shows the placeholder's embedding, `resid_pre` of layer 0 the
//! image's).

use std::ops::Range;

use serde::Serialize;

use super::clip::{ClipTower, VisionError};
use crate::backend::Backend;
use crate::hooks::{HookPoint, HookRequest, Intervention, Positions};
use crate::interp::attribution::{position_scores, HeadScore};
use crate::interp::lens::{logit_lens_with, LensRequest, LensScale, LensToken, Unembedding};
use crate::interp::InterpError;
use crate::model::{Model, ModelError};
use crate::numeric::log_softmax;
use crate::tokenizer::{Tokenizer, TokenizerError};

pub const IMAGE_PLACEHOLDER: &str = "<image>";

#[derive(Debug, thiserror::Error)]
pub enum LlavaError {
    #[error(transparent)]
    Vision(#[from] VisionError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Interp(#[from] InterpError),
    #[error(transparent)]
    Scene(#[from] super::shapes::BadSceneSize),
    #[error("the prompt needs exactly one {IMAGE_PLACEHOLDER}; it has {0}")]
    Placeholders(usize),
    #[error("the answer {0:?} is not one token")]
    AnswerNotOneToken(String),
    #[error("the projector gives {found}-wide embeddings; the language model is {expected} wide")]
    Width { found: usize, expected: usize },
}

type Result<T, E = LlavaError> = std::result::Result<T, E>;

/// A prompt with its image: token ids (placeholders where the image goes), where the image
/// lies, and the embeddings that replace the placeholders.
#[derive(Clone, Debug)]
pub struct ImagePrompt {
    pub ids: Vec<u32>,
    pub image: Range<usize>,
    /// `[image.len(), width]`, row-major.
    pub embeddings: Vec<f32>,
}

impl ImagePrompt {
    /// `<image>` expanded: the text before it with BOS, one placeholder per patch, the text after.
    pub fn new<B: Backend>(
        tower: &ClipTower,
        model: &Model<B>,
        tokenizer: &Tokenizer,
        prompt: &str,
        pixels: &[f32],
    ) -> Result<ImagePrompt> {
        let patches = tower.config.grid() * tower.config.grid();
        let (ids, image) = image_prompt_ids(tokenizer, prompt, patches, model.config().context_length)?;
        let embeddings = tower.embed(pixels)?;
        let width = model.config().width;
        if embeddings.len() != patches * width {
            return Err(LlavaError::Width { found: embeddings.len() / patches, expected: width });
        }
        Ok(ImagePrompt { ids, image, embeddings })
    }

    pub fn interventions(&self) -> Vec<Intervention> {
        let width = self.embeddings.len() / self.image.len();
        self.image
            .clone()
            .zip(self.embeddings.chunks(width))
            .map(|(position, row)| Intervention::PatchResidPre { layer: 0, position, values: row.to_vec() })
            .collect()
    }

    /// The mean of the image's patch embeddings: what occlusion puts in a removed patch's place.
    fn mean_patch(&self) -> Vec<f32> {
        let n = self.image.len();
        let width = self.embeddings.len() / n;
        let mut mean = vec![0f32; width];
        for row in self.embeddings.chunks(width) {
            mean.iter_mut().zip(row).for_each(|(m, v)| *m += v / n as f32);
        }
        mean
    }

    /// The prompt with the embeddings of `patches` (indices into the image) replaced by `row`.
    fn with_replaced(&self, patches: &[usize], row: &[f32]) -> Vec<Intervention> {
        let mut interventions = self.interventions();
        for &i in patches {
            if let Intervention::PatchResidPre { values, .. } = &mut interventions[i] {
                values.copy_from_slice(row);
            }
        }
        interventions
    }

    /// The next token's log-probabilities with `patches` replaced by the mean patch embedding.
    pub fn logprobs_with_removed<B: Backend>(&self, model: &Model<B>, patches: &[usize]) -> Result<Vec<f32>> {
        logprobs_with(model, self, &self.with_replaced(patches, &self.mean_patch()))
    }
}

/// The prompt's ids with `<image>` expanded (the text before it with BOS, one placeholder per
/// patch, the text after), and where the placeholders lie.
pub fn image_prompt_ids(
    tokenizer: &Tokenizer,
    prompt: &str,
    patches: usize,
    context_length: usize,
) -> Result<(Vec<u32>, Range<usize>)> {
    let parts: Vec<&str> = prompt.split(IMAGE_PLACEHOLDER).collect();
    let [before, after] = parts[..] else {
        return Err(LlavaError::Placeholders(parts.len() - 1));
    };
    let mut ids = tokenizer.encode(before, true, false)?;
    let start = ids.len();
    // Any valid id: its embedding is replaced before layer 0 reads it.
    ids.extend(std::iter::repeat_n(0, patches));
    ids.extend(tokenizer.encode(after, false, false)?);
    if ids.len() > context_length {
        return Err(ModelError::PromptTooLong { len: ids.len(), max: context_length }.into());
    }
    Ok((ids, start..start + patches))
}

/// The token of an answer word as it follows the prompt (` red`); an error unless it is one.
pub fn answer_token(tokenizer: &Tokenizer, word: &str) -> Result<u32> {
    match tokenizer.encode(&format!(" {word}"), false, false)?[..] {
        [id] => Ok(id),
        _ => Err(LlavaError::AnswerNotOneToken(word.to_string())),
    }
}

/// The next token's log-probabilities after the prompt.
pub fn next_token_logprobs<B: Backend>(model: &Model<B>, prompt: &ImagePrompt) -> Result<Vec<f32>> {
    logprobs_with(model, prompt, &prompt.interventions())
}

/// The next token's log-probabilities after the prompt's ids with `interventions` (the image,
/// possibly altered).
fn logprobs_with<B: Backend>(
    model: &Model<B>,
    prompt: &ImagePrompt,
    interventions: &[Intervention],
) -> Result<Vec<f32>> {
    let run =
        model.forward(&prompt.ids, &mut model.new_cache(), &HookRequest::new(), interventions, &Positions::Last)?;
    Ok(log_softmax(&run.logits.data))
}

/// One image patch at one layer of the visual logit lens.
#[derive(Clone, Debug, Serialize)]
pub struct PatchLens {
    pub layer: usize,
    /// Row-major over the patch grid.
    pub patch: usize,
    pub row: usize,
    pub col: usize,
    pub tokens: Vec<LensToken>,
}

/// JSON: `{"grid": g, "cells": [{"layer", "patch", "row", "col", "tokens": [{"id", "token",
/// "prob"}]}]}`, cells by layer then patch.
#[derive(Clone, Debug, Serialize)]
pub struct VisualLens {
    pub grid: usize,
    pub cells: Vec<PatchLens>,
}

/// The seed's projection of visual embeddings into the word-embedding space: the top `top_k`
/// tokens of `U(resid_post_l)` at each image position, for each of `layers` (all when `None`).
pub fn visual_lens<B: Backend>(
    unembedding: &Unembedding<B>,
    tokenizer: &Tokenizer,
    prompt: &ImagePrompt,
    grid: usize,
    layers: Option<Vec<usize>>,
    top_k: usize,
) -> Result<VisualLens> {
    let request =
        LensRequest { layers, positions: Some(prompt.image.clone().collect()), top_k, scale: LensScale::Fixed };
    let lens = logit_lens_with(unembedding, tokenizer, &prompt.ids, &request, &prompt.interventions())?;
    let cells = lens
        .cells
        .into_iter()
        .map(|cell| {
            let patch = cell.position - prompt.image.start;
            PatchLens { layer: cell.layer, patch, row: patch / grid, col: patch % grid, tokens: cell.tokens }
        })
        .collect();
    Ok(VisualLens { grid, cells })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The seed's: LPI through the top head(s) by LPI at the last position.
    Lpi,
    /// The seed's baseline: mean last-token attention over all layers and heads.
    Attention,
    /// One forward pass per patch with its embedding replaced by the mean patch embedding.
    Occlusion,
}

/// A patch heatmap: `grid × grid` cells, row-major, min-max normalised and then divided by
/// their sum (uniform when every raw score is equal).
#[derive(Clone, Debug, Serialize)]
pub struct Heatmap {
    pub method: Method,
    pub grid: usize,
    pub cells: Vec<f32>,
    /// The raw scores before normalising.
    pub raw: Vec<f32>,
    /// The heads the LPI map went through.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub heads: Vec<HeadScore>,
}

impl Heatmap {
    /// Step 5 of the seed's method: the cells upsampled to `size` × `size` with bicubic
    /// (Catmull-Rom) filtering, row-major.
    pub fn upsampled(&self, size: u32) -> Vec<f32> {
        let grid = self.grid as u32;
        let cells = image::ImageBuffer::<image::Luma<f32>, Vec<f32>>::from_raw(grid, grid, self.cells.clone())
            .expect("grid × grid cells");
        image::imageops::resize(&cells, size, size, image::imageops::FilterType::CatmullRom).into_raw()
    }

    /// The heatmap over the image the tower saw (`pixels` un-normalised with `mean` and `std`):
    /// red, with opacity `opacity × cell / max cell`.
    pub fn overlay(&self, pixels: &[f32], size: u32, mean: [f32; 3], std: [f32; 3], opacity: f32) -> image::RgbImage {
        let heat = self.upsampled(size);
        let top = heat.iter().copied().fold(f32::MIN_POSITIVE, f32::max);
        let plane = (size * size) as usize;
        image::RgbImage::from_fn(size, size, |x, y| {
            let i = (y * size + x) as usize;
            let a = (opacity * heat[i].max(0.0) / top).clamp(0.0, 1.0);
            image::Rgb(std::array::from_fn(|c| {
                let seen = ((pixels[c * plane + i] * std[c] + mean[c]) * 255.0).clamp(0.0, 255.0);
                let red = if c == 0 { 255.0 } else { 0.0 };
                (seen * (1.0 - a) + red * a).round() as u8
            }))
        })
    }
}

/// Step 4 of the seed's method: `(s − min s) / (max s − min s)`, then divided by its sum.
pub fn normalise(raw: &[f32]) -> Vec<f32> {
    let (min, max) = raw.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let scaled: Vec<f32> = raw.iter().map(|&v| if max > min { (v - min) / (max - min) } else { 1.0 }).collect();
    let total: f32 = scaled.iter().sum();
    scaled.iter().map(|v| v / total).collect()
}

fn heatmap(method: Method, raw: Vec<f32>, heads: Vec<HeadScore>) -> Heatmap {
    let grid = (raw.len() as f64).sqrt().round() as usize;
    Heatmap { method, grid, cells: normalise(&raw), raw, heads }
}

/// Steps 1–4 of the seed's method, summed over the `heads` top heads (1 is the seed's own):
/// `s_t = Σ_{(l,h)} LPI(x_l, α_{h,last,t}·v_{t,h}·W_O[h])` for each image position t, exactly.
pub fn lpi_heatmap<B: Backend>(
    unembedding: &Unembedding<B>,
    prompt: &ImagePrompt,
    target: u32,
    heads: usize,
) -> Result<Heatmap> {
    let image: Vec<usize> = prompt.image.clone().collect();
    let (totals, used) = position_scores(
        unembedding,
        &prompt.ids,
        target,
        heads.max(1),
        image.len(),
        Some(&image),
        &prompt.interventions(),
    )?;
    Ok(heatmap(Method::Lpi, image.iter().map(|&t| totals[t].score).collect(), used))
}

/// The heatmap of `method` explaining `target` (`heads`: how many top heads the LPI map sums).
pub fn heatmap_by<B: Backend>(
    model: &Model<B>,
    prompt: &ImagePrompt,
    method: Method,
    target: u32,
    heads: usize,
) -> Result<Heatmap> {
    match method {
        Method::Lpi => lpi_heatmap(&Unembedding::new(model)?, prompt, target, heads),
        Method::Attention => attention_heatmap(model, prompt),
        Method::Occlusion => occlusion_heatmap(model, prompt, target),
    }
}

/// The mean over layers and heads of the last token's attention to each image position.
pub fn attention_heatmap<B: Backend>(model: &Model<B>, prompt: &ImagePrompt) -> Result<Heatmap> {
    let c = model.config();
    let hooks = (0..c.layers).fold(HookRequest::new(), |h, l| h.with(HookPoint::AttnPattern(l), Positions::Last));
    let run = model.forward(&prompt.ids, &mut model.new_cache(), &hooks, &prompt.interventions(), &Positions::Last)?;
    let len = prompt.ids.len();
    let mut raw = vec![0f32; prompt.image.len()];
    for l in 0..c.layers {
        // The pattern at the last query is `[H, 1, T]`.
        let pattern = &run.recording.get(HookPoint::AttnPattern(l)).expect("requested").data;
        for h in 0..c.heads {
            for (cell, t) in raw.iter_mut().zip(prompt.image.clone()) {
                *cell += pattern[h * len + t] / (c.layers * c.heads) as f32;
            }
        }
    }
    Ok(heatmap(Method::Attention, raw, Vec::new()))
}

/// `p(target) − p(target | patch t replaced by the mean patch embedding)` for each patch.
pub fn occlusion_heatmap<B: Backend>(model: &Model<B>, prompt: &ImagePrompt, target: u32) -> Result<Heatmap> {
    let vocab = model.config().vocab_size;
    if target as usize >= vocab {
        return Err(ModelError::BadTokenId { id: target, vocab_size: vocab }.into());
    }
    let mean = prompt.mean_patch();
    let p = |interventions: &[Intervention]| -> Result<f32> {
        Ok(logprobs_with(model, prompt, interventions)?[target as usize].exp())
    };
    let base = p(&prompt.interventions())?;
    let raw = (0..prompt.image.len())
        .map(|i| Ok(base - p(&prompt.with_replaced(&[i], &mean))?))
        .collect::<Result<Vec<f32>>>()?;
    Ok(heatmap(Method::Occlusion, raw, Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_map_upsamples_flat_and_the_overlay_keeps_the_image_where_cold() {
        let map = heatmap(Method::Lpi, vec![2.0; 4], Vec::new());
        assert!(map.upsampled(6).iter().all(|&v| (v - 0.25).abs() < 1e-6));
        // One hot cell, top left of 4 × 4. The bottom-right pixel of an 8 × 8 overlay samples
        // source cells 2–5 only (bicubic reaches two cells), so it is cold and shows the image:
        // 0.5 · 0.5 + 0.5 = 0.75 → 191.
        let mut cells = vec![0.0; 16];
        cells[0] = 1.0;
        let hot = heatmap(Method::Lpi, cells, Vec::new());
        let pixels = vec![0.5; 3 * 64];
        let image = hot.overlay(&pixels, 8, [0.5; 3], [0.5; 3], 0.6);
        assert_eq!(image.get_pixel(7, 7).0, [191, 191, 191]);
        assert!(image.get_pixel(0, 0).0[0] > image.get_pixel(0, 0).0[1]);
    }

    #[test]
    fn normalising_is_min_max_then_sum() {
        // [1, 3, 2, 2] → [0, 1, 0.5, 0.5] → / 2 → [0, 0.5, 0.25, 0.25].
        assert_eq!(normalise(&[1.0, 3.0, 2.0, 2.0]), [0.0, 0.5, 0.25, 0.25]);
        assert_eq!(normalise(&[4.0; 4]), [0.25; 4]);
    }
}
