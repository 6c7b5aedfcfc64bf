//! The CLIP ViT vision tower and LLaVA's MLP projector, from a llava-1.5 mmproj GGUF
//! (docs/llava-mmproj.md), computed as Hugging Face's LLaVA computes them:
//!
//! `x_0 = [class; patches · W_patch] + pos`, `x = pre_ln(x_0)`; each block
//! `x += attn(ln1(x))`, `x += fc2(quick_gelu(fc1(ln2(x))))` with `quick_gelu(h) = h·σ(1.702h)`;
//! the output of the last stored block (llama.cpp's converter already dropped CLIP's last
//! layer, so this is llava-1.5's penultimate layer), class token dropped, then
//! `mm.2 · gelu(mm.0 · x + b0) + b2` with the erf GELU.
//!
//! Two of llama.cpp's current choices differ (docs/llava-mmproj.md): it runs one block fewer,
//! and uses the tanh GELU in the projector. glassbox follows the model as trained.

use candle_core::{Device, Tensor};

use crate::backend::candle::dequantize_to_f32;
use crate::encoder::{EncoderWeights, LayerNorm, Linear, SelfAttention};
use crate::gguf::{Array, Gguf, Value};
use crate::model::WeightSource;

#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error("the mmproj has no {0:?} (is it a llava-1.5 mmproj GGUF?)")]
    MissingKey(&'static str),
    #[error("the mmproj's {key} is {value}, which glassbox cannot use: {why}")]
    BadValue { key: &'static str, value: String, why: &'static str },
    #[error("projector type {0:?} is not supported; glassbox reads llava-1.5's \"mlp\"")]
    UnsupportedProjector(String),
    #[error("tensor {0:?} is missing from the mmproj")]
    MissingTensor(String),
    #[error("tensor {name:?} has shape {found:?}; the mmproj's hyperparameters need {expected:?}")]
    BadShape { name: String, found: Vec<usize>, expected: Vec<usize> },
    #[error("the pixels are {found} values; the tower takes 3 × {size} × {size}")]
    BadPixels { found: usize, size: usize },
    #[error("computing the tower: {0}")]
    Compute(String),
}

type Result<T, E = VisionError> = std::result::Result<T, E>;

fn compute(e: impl std::fmt::Display) -> VisionError {
    VisionError::Compute(e.to_string())
}

/// The tower's shape, from the mmproj's `clip.*` keys.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipConfig {
    pub image_size: usize,
    pub patch_size: usize,
    pub width: usize,
    pub ffn_width: usize,
    pub heads: usize,
    /// Blocks stored in the file, all of which run.
    pub layers: usize,
    pub eps: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// Larger than any CLIP glassbox could hold in memory; only guards the arithmetic below.
const MAX_DIM: u64 = 1 << 16;

/// The largest tower input side accepted: real towers take 224 to 896 pixels, and an image this
/// size is already 48 MB of normalised floats, made before the tower's weights are read.
pub const MAX_IMAGE_SIZE: usize = 2048;

impl ClipConfig {
    pub fn from_gguf(gguf: &Gguf) -> Result<ClipConfig> {
        let dim = |key: &'static str| -> Result<usize> {
            let value = gguf.get(key).ok_or(VisionError::MissingKey(key))?;
            match value.as_u64() {
                Some(n) if (1..=MAX_DIM).contains(&n) => Ok(n as usize),
                _ => {
                    Err(VisionError::BadValue { key, value: format!("{value:?}"), why: "expected a positive integer" })
                }
            }
        };
        let triple = |key: &'static str| -> Result<[f32; 3]> {
            match gguf.get(key) {
                Some(Value::Array(Array::F32(v))) if v.len() == 3 => Ok([v[0], v[1], v[2]]),
                Some(other) => {
                    Err(VisionError::BadValue { key, value: format!("{other:?}"), why: "expected three f32" })
                }
                None => Err(VisionError::MissingKey(key)),
            }
        };
        // Some 2023 files lack the key; they are all llava "mlp" projectors.
        if let Some(kind) = gguf.get("clip.projector_type").and_then(Value::as_str) {
            if kind != "mlp" {
                return Err(VisionError::UnsupportedProjector(kind.to_string()));
            }
        }
        let config = ClipConfig {
            image_size: dim("clip.vision.image_size")?,
            patch_size: dim("clip.vision.patch_size")?,
            width: dim("clip.vision.embedding_length")?,
            ffn_width: dim("clip.vision.feed_forward_length")?,
            heads: dim("clip.vision.attention.head_count")?,
            layers: dim("clip.vision.block_count")?,
            eps: gguf.get("clip.vision.attention.layer_norm_epsilon").and_then(Value::as_f64).unwrap_or(1e-5) as f32,
            mean: triple("clip.vision.image_mean")?,
            std: triple("clip.vision.image_std")?,
        };
        if config.image_size > MAX_IMAGE_SIZE {
            return Err(VisionError::BadValue {
                key: "clip.vision.image_size",
                value: config.image_size.to_string(),
                why: "it is larger than the 2048 pixels glassbox accepts",
            });
        }
        if config.image_size % config.patch_size != 0 {
            return Err(VisionError::BadValue {
                key: "clip.vision.patch_size",
                value: config.patch_size.to_string(),
                why: "it does not divide the image size",
            });
        }
        if config.width % config.heads != 0 {
            return Err(VisionError::BadValue {
                key: "clip.vision.attention.head_count",
                value: config.heads.to_string(),
                why: "it does not divide the width",
            });
        }
        Ok(config)
    }

    /// The tower's preprocessing: its size, mean and std, padded to a square first or not.
    pub fn preprocess(&self, pad_to_square: bool) -> super::preprocess::Preprocess {
        super::preprocess::Preprocess {
            image_size: self.image_size as u32,
            mean: self.mean,
            std: self.std,
            pad_to_square,
        }
    }

    /// Patches per side: 24 for llava-1.5 (336 / 14), so 576 image embeddings.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
}

struct Block {
    ln1: LayerNorm,
    attention: SelfAttention,
    out: Linear,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// The tower and projector on the CPU, in f32.
pub struct ClipTower {
    pub config: ClipConfig,
    patch: Tensor,
    patch_bias: Option<Tensor>,
    class: Tensor,
    position: Tensor,
    pre_ln: LayerNorm,
    blocks: Vec<Block>,
    mm0: Linear,
    mm2: Linear,
}

struct Loader<'s, S: WeightSource> {
    source: &'s S,
}

impl<S: WeightSource> Loader<'_, S> {
    fn find(&self, name: &str) -> Option<&crate::gguf::TensorInfo> {
        self.source.tensors().iter().find(|t| t.name == name)
    }

    /// fc1 (width → ffn) and fc2 (ffn → width). llama.cpp's legacy converter stores fc1 as
    /// `ffn_down` and fc2 as `ffn_up`; newer converters the other way round. The shapes tell
    /// which is which; when they cannot (ffn = width), the legacy naming holds.
    fn mlp(&mut self, block: &str, width: usize, ffn: usize) -> Result<(Linear, Linear)> {
        let (down, up) = (format!("{block}.ffn_down"), format!("{block}.ffn_up"));
        let expands = |name: &str| {
            self.find(&format!("{name}.weight"))
                .is_some_and(|t| t.shape.first() == Some(&(width as u64)) && t.shape.get(1) == Some(&(ffn as u64)))
        };
        let (first, second) = if expands(&down) || !expands(&up) { (down, up) } else { (up, down) };
        Ok((self.linear(&first, ffn, width)?, self.linear(&second, width, ffn)?))
    }
}

impl<S: WeightSource> EncoderWeights for Loader<'_, S> {
    type Error = VisionError;

    fn tensor(&mut self, name: &str, expected: &[usize]) -> Result<Tensor> {
        let info = self.find(name).ok_or_else(|| VisionError::MissingTensor(name.to_string()))?;
        let found: Vec<usize> = info.shape.iter().rev().map(|&d| d as usize).collect();
        // A vector may be stored with trailing unit dimensions.
        let squeezed: Vec<usize> =
            found.iter().copied().skip_while(|&d| d == 1 && found.len() > expected.len()).collect();
        if squeezed != expected {
            return Err(VisionError::BadShape { name: name.to_string(), found, expected: expected.to_vec() });
        }
        let bytes = self.source.read(info).map_err(compute)?;
        dequantize_to_f32(info, &bytes)
            .and_then(|t| t.reshape(expected).map_err(|e| crate::backend::BackendError(e.to_string())))
            .map_err(compute)
    }
}

impl ClipTower {
    /// The tower from an mmproj's tensors; `projection` is the language model's width, which
    /// `mm.2` must produce.
    pub fn load<S: WeightSource>(config: ClipConfig, source: &S, projection: usize) -> Result<ClipTower> {
        let mut l = Loader { source };
        let (d, p) = (config.width, config.patch_size);
        let positions = config.grid() * config.grid() + 1;
        let patch = l.tensor("v.patch_embd.weight", &[d, 3, p, p])?.reshape((d, 3 * p * p)).map_err(compute)?;
        let patch_bias = match l.find("v.patch_embd.bias") {
            Some(_) => Some(l.tensor("v.patch_embd.bias", &[d])?),
            None => None,
        };
        let blocks = (0..config.layers)
            .map(|i| {
                let b = format!("v.blk.{i}");
                let (fc1, fc2) = l.mlp(&b, d, config.ffn_width)?;
                Ok(Block {
                    ln1: l.norm(&format!("{b}.ln1"), d, config.eps)?,
                    attention: SelfAttention {
                        q: l.linear(&format!("{b}.attn_q"), d, d)?,
                        k: l.linear(&format!("{b}.attn_k"), d, d)?,
                        v: l.linear(&format!("{b}.attn_v"), d, d)?,
                        heads: config.heads,
                    },
                    out: l.linear(&format!("{b}.attn_out"), d, d)?,
                    ln2: l.norm(&format!("{b}.ln2"), d, config.eps)?,
                    fc1,
                    fc2,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let hidden = l
            .find("mm.0.bias")
            .ok_or_else(|| VisionError::MissingTensor("mm.0.bias".into()))?
            .shape
            .first()
            .map(|&h| h as usize)
            .ok_or(VisionError::BadValue {
                key: "mm.0.bias",
                value: "a tensor with no dimensions".into(),
                why: "its length is the projector's hidden width",
            })?;
        Ok(ClipTower {
            patch,
            patch_bias,
            class: l.tensor("v.class_embd", &[d])?,
            position: l.tensor("v.position_embd.weight", &[positions, d])?,
            pre_ln: l.norm("v.pre_ln", d, config.eps)?,
            blocks,
            mm0: l.linear("mm.0", hidden, d)?,
            mm2: l.linear("mm.2", projection, hidden)?,
            config,
        })
    }

    /// The projected image embeddings, `[grid², projection]` row-major, for preprocessed pixels
    /// `[3, S, S]` (see [`super::preprocess::Preprocess`]).
    pub fn embed(&self, pixels: &[f32]) -> Result<Vec<f32>> {
        let c = &self.config;
        let (s, p, g) = (c.image_size, c.patch_size, c.grid());
        if pixels.len() != 3 * s * s {
            return Err(VisionError::BadPixels { found: pixels.len(), size: s });
        }
        let run = || -> candle_core::Result<Vec<f32>> {
            // [3, g, p, g, p] → [g, g, 3, p, p]: one row per patch, in the conv weight's order.
            let patches = Tensor::from_slice(pixels, (3, g, p, g, p), &Device::Cpu)?
                .permute((1, 3, 0, 2, 4))?
                .reshape((g * g, 3 * p * p))?;
            let mut x = patches.matmul(&self.patch.t()?)?;
            if let Some(bias) = &self.patch_bias {
                x = x.broadcast_add(bias)?;
            }
            x = Tensor::cat(&[&self.class.unsqueeze(0)?, &x], 0)?.add(&self.position)?;
            x = self.pre_ln.forward(&x)?;
            for block in &self.blocks {
                x = x.add(&block.out.forward(&block.attention.forward(&block.ln1.forward(&x)?)?)?)?;
                let hidden = block.fc1.forward(&block.ln2.forward(&x)?)?;
                let quick_gelu = (&hidden * candle_nn::ops::sigmoid(&(&hidden * 1.702)?)?)?;
                x = x.add(&block.fc2.forward(&quick_gelu)?)?;
            }
            let patches = x.narrow(0, 1, g * g)?;
            let hidden = self.mm0.forward(&patches)?.gelu_erf()?;
            self.mm2.forward(&hidden)?.flatten_all()?.to_vec1()
        };
        run().map_err(compute)
    }
}
