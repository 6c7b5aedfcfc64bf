//! Trains glassbox's own LLaVA-architecture model on the shapes task ([`crate::vision::shapes`]), the
//! fixture whose ground truth (which shape, which colour, where) the heatmaps are checked
//! against. No vision weights can be fetched here, so the project makes its own.
//!
//! The model is LLaVA's: a CLIP ViT computed as [`crate::vision::clip`] computes it (pre-LN, quick-GELU
//! MLPs, class token first and dropped at the end), the two-layer erf-GELU projector, and a
//! llama language model reading `USER: <image>\n…` with the image's 64 embeddings in place of
//! `<image>`. The language model is small and trained from scratch with SmolLM2's tokenizer,
//! because backpropagating through a frozen SmolLM2 for every sample costs far more than the
//! 15 minutes of two CPU cores the fixture may take (`--lm-*` at SmolLM2's shape measures it;
//! ARCHITECTURE.md has the numbers). Everything trains jointly, from a seeded initialisation,
//! with AdamW on the cross-entropy of the answer token after the prompt's last token, plus the
//! mean cross-entropy of every other text token after the image. That second term is ordinary
//! language modelling, and it is what teaches the tower shapes: predicting "circle" in "What is
//! the color of the" takes seeing which shapes the image holds. A third term, a linear probe on
//! the tower's output predicting which shape covers each patch (the scene's ground truth),
//! gives the tower that signal directly, and a fourth, a probe on the last position after the
//! first layer naming the shape asked about, has the first layer bring the question there for
//! the second to look for; without them the 15-minute budget ends on the plateau where the model
//! names some colour in the image (accuracy about 0.6). Both probes are dropped from the files.
//!
//! Only the few dozen tokens the task uses have trained embeddings; every other row of the
//! (tied) embedding is zero, so its logit is exactly 0. Training therefore computes the full
//! softmax cheaply: `log p(a) = z_a − log(Σ_{used} e^{z_u} + (V − K)·e⁰)` for K used tokens of
//! V, which is what the exported model computes over all V.
//!
//! The result is written as a llava-1.5 mmproj GGUF and a llama GGUF, which load through the
//! same readers as real files. The mmproj stores one extra block whose output projections are
//! zero: an identity, so llama.cpp's clip.cpp, which runs one stored block fewer
//! (docs/llava-mmproj.md), computes the same features as glassbox and Hugging Face.

use std::ops::Range;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use crate::gguf::write::{Metadata, NewTensor};
use crate::gguf::{Array, GgmlType, Gguf, Value};
use crate::model::synthetic::{vocab_size, LlamaShape, SyntheticError};
use crate::numeric::Rng;
use crate::tokenizer::{Tokenizer, TokenizerError};
use crate::vision::llava::{answer_token, image_prompt_ids, LlavaError};
use crate::vision::preprocess::Preprocess;
use crate::vision::shapes::{scene, Scene, COLOURS, SHAPES};

/// OpenAI CLIP's normalisation, which llava-1.5's mmproj carries.
const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// The model's size. The defaults are the committed fixture's.
#[derive(Clone, Debug)]
pub struct FixtureShape {
    pub image_size: usize,
    pub patch_size: usize,
    pub vit_width: usize,
    pub vit_ffn_width: usize,
    pub vit_heads: usize,
    pub vit_layers: usize,
    pub lm: LlamaShape,
}

impl Default for FixtureShape {
    fn default() -> Self {
        FixtureShape {
            image_size: 96,
            patch_size: 16,
            vit_width: 64,
            vit_ffn_width: 128,
            vit_heads: 4,
            vit_layers: 3,
            lm: LlamaShape { layers: 2, width: 64, ffn_width: 128, heads: 4, kv_heads: 4, context_length: 128 },
        }
    }
}

/// How the model is trained.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub steps: usize,
    pub batch: usize,
    /// The peak learning rate, reached after `warmup` steps and decayed to a tenth by a cosine.
    pub learning_rate: f64,
    pub warmup: usize,
    pub weight_decay: f64,
    /// Seeds the initialisation and the training scenes (`scene(seed, step · batch + i)`).
    pub seed: u64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule { steps: 3000, batch: 32, learning_rate: 2e-3, warmup: 100, weight_decay: 0.01, seed: 1 }
    }
}

impl Schedule {
    fn learning_rate_at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.learning_rate * (step + 1) as f64 / self.warmup as f64;
        }
        let progress = (step - self.warmup) as f64 / (self.steps - self.warmup).max(1) as f64;
        self.learning_rate * (0.1 + 0.45 * (1.0 + (std::f64::consts::PI * progress).cos()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Prompt(#[from] LlavaError),
    #[error(transparent)]
    Shape(#[from] SyntheticError),
    #[error(transparent)]
    Scene(#[from] crate::vision::shapes::BadSceneSize),
    #[error("every prompt must tokenise to the same length and image position; {0:?} does not")]
    RaggedPrompts(String),
    #[error("the shape does not fit: {0}")]
    BadShape(&'static str),
    #[error("training: {0}")]
    Compute(#[from] candle_core::Error),
}

type Result<T, E = TrainError> = std::result::Result<T, E>;

/// One logged step: the batch's loss and answer accuracy, and the time since the start.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepLog {
    pub step: usize,
    pub loss: f32,
    /// The answer's cross-entropy, and how often it is the top token.
    pub answer_loss: f32,
    pub accuracy: f32,
    /// How often the probe names the shape covering a patch, over patches a shape covers.
    pub probe_accuracy: f32,
    pub seconds: f64,
}

/// The trained model as two GGUF files' contents, and the training log.
pub struct Trained {
    pub mmproj: (Metadata, Vec<NewTensor>),
    pub lm: (Metadata, Vec<NewTensor>),
    pub log: Vec<StepLog>,
}

/// How a parameter is stored in the GGUF.
#[derive(Clone, Copy)]
enum Storage {
    F32,
    F16,
    Q8_0,
}

struct Param {
    name: String,
    var: Var,
    /// GGUF order: the contiguous dimension first.
    gguf_shape: Vec<u64>,
    storage: Storage,
}

#[derive(Clone, Copy, PartialEq)]
enum File {
    Mmproj,
    Lm,
}

impl Param {
    /// The file the parameter is stored in, by its GGUF name; none for the training probes.
    fn file(&self) -> Option<File> {
        if self.name.starts_with(PROBE) {
            None
        } else if self.name.starts_with("v.") || self.name.starts_with("mm.") {
            Some(File::Mmproj)
        } else {
            Some(File::Lm)
        }
    }
}

/// The parameters, created in a fixed order from one seeded generator.
struct Params {
    rng: Rng,
    list: Vec<Param>,
}

impl Params {
    fn add(&mut self, name: String, dims: &[usize], values: Vec<f32>, storage: Storage) -> Result<Tensor> {
        let var = Var::from_vec(values, dims, &Device::Cpu)?;
        let tensor = var.as_tensor().clone();
        self.list.push(Param { name, var, gguf_shape: dims.iter().rev().map(|&d| d as u64).collect(), storage });
        Ok(tensor)
    }

    /// Normal with standard deviation `std` (Box–Muller on the seeded generator).
    fn normal(&mut self, name: String, dims: &[usize], std: f32, storage: Storage) -> Result<Tensor> {
        let n: usize = dims.iter().product();
        let mut uniform = || ((self.rng.next_u64() >> 40) as f32 + 0.5) / (1u64 << 24) as f32;
        let values =
            (0..n).map(|_| std * (-2.0 * uniform().ln()).sqrt() * (std::f32::consts::TAU * uniform()).cos()).collect();
        self.add(name, dims, values, storage)
    }

    fn constant(&mut self, name: String, dims: &[usize], value: f32) -> Result<Tensor> {
        self.add(name, dims, vec![value; dims.iter().product()], Storage::F32)
    }

    /// A `[out, in]` weight (stored `[in, out]`) and, when `bias`, its bias.
    fn linear(&mut self, name: &str, out: usize, input: usize, bias: bool, storage: Storage) -> Result<Linear> {
        let weight = self.normal(format!("{name}.weight"), &[out, input], INIT_STD, storage)?;
        let bias = if bias { Some(self.constant(format!("{name}.bias"), &[out], 0.0)?) } else { None };
        Ok(Linear { weight, bias })
    }

    fn layer_norm(&mut self, name: &str, width: usize) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: self.constant(format!("{name}.weight"), &[width], 1.0)?,
            bias: self.constant(format!("{name}.bias"), &[width], 0.0)?,
        })
    }
}

/// The training-only probe's name; neither file stores it.
const PROBE: &str = "train.probe";
/// GPT-2's initialisation scale.
const INIT_STD: f32 = 0.02;
const LAYER_NORM_EPS: f64 = 1e-5;
const RMS_NORM_EPS: f64 = 1e-5;
const ROPE_THETA: f32 = 10_000.0;

/// MAE's fixed 2-D sine-cosine position embeddings as the starting point (the class token's row
/// zero): the tower knows where each patch is from the first step, instead of learning it.
fn sincos_positions(grid: usize, width: usize) -> Vec<f32> {
    let quarter = width / 4;
    let mut rows = vec![0f32; width];
    for cell in 0..grid * grid {
        for coordinate in [(cell % grid) as f32, (cell / grid) as f32] {
            let angles: Vec<f32> =
                (0..quarter).map(|i| coordinate / 10_000f32.powf(i as f32 / quarter as f32)).collect();
            rows.extend(angles.iter().map(|a| a.sin()));
            rows.extend(angles.iter().map(|a| a.cos()));
        }
        rows.resize((cell + 2) * width, 0.0);
    }
    rows
}

struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// `x · Wᵀ + b` over the last dimension of `x`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let input = dims[dims.len() - 1];
        let rows = x.elem_count() / input;
        let y = x.reshape((rows, input))?.matmul(&self.weight.t()?)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims;
        *out_dims.last_mut().expect("a linear input has dimensions") = y.dim(1)?;
        y.reshape(out_dims)
    }
}

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
        centred
            .broadcast_div(&(variance + LAYER_NORM_EPS)?.sqrt()?)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

fn rms_norm(x: &Tensor, weight: &Tensor) -> candle_core::Result<Tensor> {
    let mean_square = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(mean_square + RMS_NORM_EPS)?.sqrt()?)?.broadcast_mul(weight)
}

/// `[B, T, heads·dh]` → `[B, heads, T, dh]`.
fn split_heads(x: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (b, t, width) = x.dims3()?;
    x.reshape((b, t, heads, width / heads))?.transpose(1, 2)?.contiguous()
}

fn merge_heads(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, heads, t, dh) = x.dims4()?;
    x.transpose(1, 2)?.contiguous()?.reshape((b, t, heads * dh))
}

/// `softmax(q·kᵀ/√dh + mask) · v` over `[B, heads, T, dh]`.
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let dh = q.dim(D::Minus1)?;
    let scores = (q.matmul(&k.t()?)? / (dh as f64).sqrt())?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(m)?,
        None => scores,
    };
    candle_nn::ops::softmax(&scores, D::Minus1)?.matmul(v)
}

struct VitBlock {
    ln1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

struct LmLayer {
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

struct Network {
    shape: FixtureShape,
    patch: Linear,
    class: Tensor,
    position: Tensor,
    pre_ln: LayerNorm,
    vit: Vec<VitBlock>,
    mm0: Linear,
    mm2: Linear,
    /// Training only: which shape (or none) covers each patch, read from the tower's output.
    shape_probe: Linear,
    /// Training only: which shape the question asks about, read from the last position after
    /// the first layer.
    question_probe: Linear,
    token_embd: Tensor,
    layers: Vec<LmLayer>,
    output_norm: Tensor,
}

impl Network {
    /// `used` is how many tokens get an embedding row.
    fn new(shape: &FixtureShape, used: usize, params: &mut Params) -> Result<Network> {
        let (d, p, f) = (shape.vit_width, shape.patch_size, shape.vit_ffn_width);
        let grid = shape.image_size / shape.patch_size;
        let lm = &shape.lm;
        let kv_width = lm.width / lm.heads * lm.kv_heads;
        // Stored as CLIP's conv kernel [d, 3, p, p]; applied to flattened patches.
        let kernel = params.normal("v.patch_embd.weight".into(), &[d, 3, p, p], INIT_STD, Storage::F16)?;
        let patch = Linear { weight: kernel.reshape((d, 3 * p * p))?, bias: None };
        let class = params.normal("v.class_embd".into(), &[d], INIT_STD, Storage::F32)?;
        let position = params.add(
            "v.position_embd.weight".into(),
            &[grid * grid + 1, d],
            sincos_positions(grid, d),
            Storage::F16,
        )?;
        let pre_ln = params.layer_norm("v.pre_ln", d)?;
        let vit = (0..shape.vit_layers)
            .map(|i| {
                let b = format!("v.blk.{i}");
                Ok(VitBlock {
                    ln1: params.layer_norm(&format!("{b}.ln1"), d)?,
                    q: params.linear(&format!("{b}.attn_q"), d, d, true, Storage::F16)?,
                    k: params.linear(&format!("{b}.attn_k"), d, d, true, Storage::F16)?,
                    v: params.linear(&format!("{b}.attn_v"), d, d, true, Storage::F16)?,
                    out: params.linear(&format!("{b}.attn_out"), d, d, true, Storage::F16)?,
                    ln2: params.layer_norm(&format!("{b}.ln2"), d)?,
                    // llava-1.5's converter names fc1 `ffn_down` and fc2 `ffn_up` (docs/llava-mmproj.md).
                    fc1: params.linear(&format!("{b}.ffn_down"), f, d, true, Storage::F16)?,
                    fc2: params.linear(&format!("{b}.ffn_up"), d, f, true, Storage::F16)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let shape_probe = params.linear(&format!("{PROBE}.patch_shape"), SHAPES.len() + 1, d, true, Storage::F32)?;
        let question_probe =
            params.linear(&format!("{PROBE}.asked_shape"), SHAPES.len(), lm.width, true, Storage::F32)?;
        let mm0 = params.linear("mm.0", lm.width, d, true, Storage::F16)?;
        let mm2 = params.linear("mm.2", lm.width, lm.width, true, Storage::F16)?;
        let token_embd = params.normal("token_embd.weight".into(), &[used, lm.width], INIT_STD, Storage::Q8_0)?;
        let layers = (0..lm.layers)
            .map(|l| {
                let b = format!("blk.{l}");
                Ok(LmLayer {
                    attn_norm: params.constant(format!("{b}.attn_norm.weight"), &[lm.width], 1.0)?,
                    q: params.linear(&format!("{b}.attn_q"), lm.width, lm.width, false, Storage::Q8_0)?,
                    k: params.linear(&format!("{b}.attn_k"), kv_width, lm.width, false, Storage::Q8_0)?,
                    v: params.linear(&format!("{b}.attn_v"), kv_width, lm.width, false, Storage::Q8_0)?,
                    out: params.linear(&format!("{b}.attn_output"), lm.width, lm.width, false, Storage::Q8_0)?,
                    ffn_norm: params.constant(format!("{b}.ffn_norm.weight"), &[lm.width], 1.0)?,
                    gate: params.linear(&format!("{b}.ffn_gate"), lm.ffn_width, lm.width, false, Storage::Q8_0)?,
                    up: params.linear(&format!("{b}.ffn_up"), lm.ffn_width, lm.width, false, Storage::Q8_0)?,
                    down: params.linear(&format!("{b}.ffn_down"), lm.width, lm.ffn_width, false, Storage::Q8_0)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let output_norm = params.constant("output_norm.weight".into(), &[lm.width], 1.0)?;
        Ok(Network {
            shape: shape.clone(),
            patch,
            class,
            position,
            pre_ln,
            vit,
            mm0,
            mm2,
            shape_probe,
            question_probe,
            token_embd,
            layers,
            output_norm,
        })
    }

    /// The projected image embeddings `[B, grid², lm width]` of preprocessed pixels
    /// `[B, 3, S, S]`, and the shape probe's logits `[B, grid², shapes + 1]`.
    fn image_embeddings(&self, pixels: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let (p, g) = (self.shape.patch_size, self.shape.image_size / self.shape.patch_size);
        let b = pixels.dim(0)?;
        // [B, 3, g, p, g, p] → [B, g, g, 3, p, p]: one row per patch, in the conv weight's order.
        let patches = pixels.reshape((b, 3, g, p, g, p))?.permute((0, 2, 4, 1, 3, 5))?.contiguous()?.reshape((
            b,
            g * g,
            3 * p * p,
        ))?;
        let embedded = self.patch.forward(&patches)?;
        let class = self.class.reshape((1, 1, self.shape.vit_width))?.broadcast_as((b, 1, self.shape.vit_width))?;
        let mut x = self.pre_ln.forward(&Tensor::cat(&[&class, &embedded], 1)?.broadcast_add(&self.position)?)?;
        let heads = self.shape.vit_heads;
        for block in &self.vit {
            let normed = block.ln1.forward(&x)?;
            let (q, k, v) = (
                split_heads(&block.q.forward(&normed)?, heads)?,
                split_heads(&block.k.forward(&normed)?, heads)?,
                split_heads(&block.v.forward(&normed)?, heads)?,
            );
            x = (x + block.out.forward(&merge_heads(&attend(&q, &k, &v, None)?)?)?)?;
            let hidden = block.fc1.forward(&block.ln2.forward(&x)?)?;
            let sigmoid = ((hidden.affine(-1.702, 0.0)?.exp()? + 1.0)?).recip()?;
            x = (&x + block.fc2.forward(&(hidden * sigmoid)?)?)?;
        }
        let patches = x.narrow(1, 1, g * g)?;
        Ok((self.mm2.forward(&self.mm0.forward(&patches)?.gelu_erf()?)?, self.shape_probe.forward(&patches)?))
    }

    /// llama's interleaved rotary embedding (adjacent pairs), as llama.cpp applies it to llama.
    fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
        let (b, h, t, dh) = x.dims4()?;
        let pairs = x.reshape((b, h, t, dh / 2, 2))?;
        let (even, odd) = (pairs.narrow(4, 0, 1)?, pairs.narrow(4, 1, 1)?);
        let rotated_even = (even.broadcast_mul(cos)? - odd.broadcast_mul(sin)?)?;
        let rotated_odd = (even.broadcast_mul(sin)? + odd.broadcast_mul(cos)?)?;
        Tensor::cat(&[rotated_even, rotated_odd], 4)?.reshape((b, h, t, dh))
    }

    /// The logits of the used tokens after each text position following the image,
    /// `[B, T − image end, used]`, for `[B, T]` ids (indices into the used tokens) whose image
    /// range is replaced by `image` embeddings `[B, grid², width]`; and the question probe's
    /// logits `[B, shapes]` on the last position after the first layer.
    fn text_logits(&self, ids: &Tensor, image_start: usize, image: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let lm = &self.shape.lm;
        let (b, t) = ids.dims2()?;
        let patches = image.dim(1)?;
        let embed = |from: usize, len: usize| -> candle_core::Result<Tensor> {
            let slice = ids.narrow(1, from, len)?.contiguous()?.flatten_all()?;
            self.token_embd.index_select(&slice, 0)?.reshape((b, len, lm.width))
        };
        let after = image_start + patches;
        let mut x = Tensor::cat(&[&embed(0, image_start)?, image, &embed(after, t - after)?], 1)?;

        let dh = lm.width / lm.heads;
        let inverse_frequencies: Vec<f32> = (0..dh / 2).map(|i| ROPE_THETA.powf(-2.0 * i as f32 / dh as f32)).collect();
        let angles: Vec<f32> = (0..t).flat_map(|pos| inverse_frequencies.iter().map(move |f| pos as f32 * f)).collect();
        let angles = Tensor::from_vec(angles, (t, dh / 2, 1), &Device::Cpu)?;
        let (cos, sin) = (angles.cos()?, angles.sin()?);
        let mask: Vec<f32> =
            (0..t).flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY })).collect();
        let mask = Tensor::from_vec(mask, (t, t), &Device::Cpu)?;
        let repeat = lm.heads / lm.kv_heads;
        let expand_kv = |x: Tensor| -> candle_core::Result<Tensor> {
            if repeat == 1 {
                return Ok(x);
            }
            let (b, kv, t, dh) = x.dims4()?;
            x.unsqueeze(2)?.expand((b, kv, repeat, t, dh))?.contiguous()?.reshape((b, kv * repeat, t, dh))
        };
        let run = |layer: &LmLayer, x: Tensor| -> candle_core::Result<Tensor> {
            let normed = rms_norm(&x, &layer.attn_norm)?;
            let q = Self::rope(&split_heads(&layer.q.forward(&normed)?, lm.heads)?, &cos, &sin)?;
            let k = expand_kv(Self::rope(&split_heads(&layer.k.forward(&normed)?, lm.kv_heads)?, &cos, &sin)?)?;
            let v = expand_kv(split_heads(&layer.v.forward(&normed)?, lm.kv_heads)?)?;
            let x = (x + layer.out.forward(&merge_heads(&attend(&q, &k, &v, Some(&mask))?)?)?)?;
            let normed = rms_norm(&x, &layer.ffn_norm)?;
            let gated = (layer.gate.forward(&normed)?.silu()? * layer.up.forward(&normed)?)?;
            &x + layer.down.forward(&gated)?
        };
        // `train` checked there is at least one layer.
        x = run(&self.layers[0], x)?;
        let asked = self.question_probe.forward(&x.narrow(1, t - 1, 1)?.squeeze(1)?)?;
        for layer in &self.layers[1..] {
            x = run(layer, x)?;
        }
        let text = rms_norm(&x.narrow(1, after, t - after)?, &self.output_norm)?;
        Ok((text.broadcast_matmul(&self.token_embd.t()?)?, asked))
    }
}

/// One batch of training data: ids `[B, T]`, pixels `[B, 3, S, S]`, the next token after each
/// text position following the image but the last `[B·(n − 1)]`, and the answers `[B]`.
struct Batch {
    ids: Tensor,
    /// `[B·grid²]`: 0 for background, else 1 + the index in [`SHAPES`] of the shape covering
    /// most of the patch (at least a quarter of it).
    patch_shapes: Tensor,
    /// `[B]`: the [`SHAPES`] index of the shape asked about.
    asked: Tensor,
    pixels: Tensor,
    next: Tensor,
    answers: Tensor,
}

/// The task's tokens: every prompt has the same length and image position, and uses a few
/// dozen of the vocabulary's tokens, numbered here by their rank among the used ones.
struct Prompts {
    length: usize,
    image: Range<usize>,
    /// Sorted token ids with a trained embedding.
    used: Vec<u32>,
    /// Per shape (in [`SHAPES`] order), the prompt as ranks, the image's placeholders as 0.
    ranks: Vec<Vec<u32>>,
    /// Per colour (in [`COLOURS`] order), the answer's rank.
    answers: Vec<u32>,
}

impl Prompts {
    fn new(tokenizer: &Tokenizer, patches: usize, context_length: usize) -> Result<Prompts> {
        let mut prompts = Vec::new();
        for shape in SHAPES {
            let (ids, image) = image_prompt_ids(tokenizer, &shape.prompt(), patches, context_length)?;
            if let Some((first, first_image)) = prompts.first() {
                if (ids.len(), &image) != (Vec::len(first), first_image) {
                    return Err(TrainError::RaggedPrompts(shape.prompt()));
                }
            }
            prompts.push((ids, image));
        }
        let answers = COLOURS.iter().map(|(word, _)| answer_token(tokenizer, word)).collect::<Result<Vec<u32>, _>>()?;
        let image = prompts[0].1.clone();
        let mut used: Vec<u32> = prompts
            .iter()
            .flat_map(|(ids, _)| ids[..image.start].iter().chain(&ids[image.end..]).copied())
            .chain(answers.iter().copied())
            .collect();
        used.sort_unstable();
        used.dedup();
        let rank = |id: &u32| used.binary_search(id).expect("every task token is among the used ones") as u32;
        let ranks = prompts
            .iter()
            .map(|(ids, _)| {
                ids.iter().enumerate().map(|(i, id)| if image.contains(&i) { 0 } else { rank(id) }).collect()
            })
            .collect();
        let answers = answers.iter().map(rank).collect();
        Ok(Prompts { length: prompts[0].0.len(), image, ranks, answers, used })
    }
}

/// The shape probe's cross-entropy with background patches (most of every image) weighted by
/// [`BACKGROUND_WEIGHT`], so telling the shapes apart dominates the signal.
fn shape_probe_loss(logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    let picked = candle_nn::ops::log_softmax(logits, D::Minus1)?.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?;
    let on_shapes = labels.ne(0u32)?.to_dtype(DType::F32)?;
    let weights = ((on_shapes * (1.0 - BACKGROUND_WEIGHT))? + BACKGROUND_WEIGHT)?;
    (picked * &weights)?.sum_all()?.neg()? / weights.sum_all()?
}

const BACKGROUND_WEIGHT: f64 = 0.1;

/// For each patch of `scene` (row-major), 0 if no shape covers a quarter of it, else 1 + the
/// [`SHAPES`] index of the shape covering most of it. Shapes are drawn in their exact colours,
/// which no two shapes share, so a pixel's shape is the one of its colour.
fn patch_shapes(scene: &Scene, patch: u32) -> Vec<u32> {
    let grid = scene.image.width() / patch;
    (0..grid * grid)
        .map(|cell| {
            let (x0, y0) = (cell % grid * patch, cell / grid * patch);
            let mut counts = vec![0u32; scene.shapes.len()];
            for y in y0..y0 + patch {
                for x in x0..x0 + patch {
                    let pixel = scene.image.get_pixel(x, y).0;
                    if let Some(i) = scene.shapes.iter().position(|s| COLOURS[s.colour].1 == pixel) {
                        counts[i] += 1;
                    }
                }
            }
            let (best, count) = counts.iter().enumerate().max_by_key(|&(_, c)| *c).map_or((0, 0), |(i, &c)| (i, c));
            if count * 4 >= patch * patch {
                1 + scene.shapes[best].shape.index() as u32
            } else {
                0
            }
        })
        .collect()
}

/// Trains the model; `progress` sees every logged step.
pub fn train(
    shape: &FixtureShape,
    schedule: &Schedule,
    tokenizer_source: &Gguf,
    mut progress: impl FnMut(&StepLog),
) -> Result<Trained> {
    if shape.image_size % shape.patch_size != 0 || shape.vit_width % shape.vit_heads != 0 {
        return Err(TrainError::BadShape("the patch size must divide the image and the heads the ViT width"));
    }
    let lm = &shape.lm;
    if lm.layers == 0
        || lm.width % lm.heads != 0
        || (lm.width / lm.heads) % 2 != 0
        || lm.heads % lm.kv_heads != 0
        || lm.width % 32 != 0
        || lm.ffn_width % 32 != 0
    {
        return Err(TrainError::BadShape("the language model needs a layer, even head widths, KV heads dividing the heads, and widths in whole 32-value blocks"));
    }
    let tokenizer = Tokenizer::from_gguf(tokenizer_source)?;
    let vocab = vocab_size(tokenizer_source)?;
    let grid = shape.image_size / shape.patch_size;
    let prompts = Prompts::new(&tokenizer, grid * grid, lm.context_length)?;
    // Scenes are square: no padding.
    let preprocess =
        Preprocess { image_size: shape.image_size as u32, mean: CLIP_MEAN, std: CLIP_STD, pad_to_square: false };

    let mut params = Params { rng: Rng(schedule.seed), list: Vec::new() };
    let network = Network::new(shape, prompts.used.len(), &mut params)?;
    let mut optimiser = AdamW::new(
        params.list.iter().map(|p| p.var.clone()).collect(),
        ParamsAdamW { lr: schedule.learning_rate, weight_decay: schedule.weight_decay, ..ParamsAdamW::default() },
    )?;
    let batch_at = |step: usize| -> Result<Batch> {
        let scenes: Vec<Scene> = (0..schedule.batch)
            .map(|i| scene(schedule.seed, (step * schedule.batch + i) as u64, shape.image_size as u32))
            .collect::<std::result::Result<_, _>>()?;
        let asked: Vec<usize> = scenes.iter().map(|s| s.shapes[s.target].shape.index()).collect();
        let ids: Vec<u32> = asked.iter().flat_map(|&a| prompts.ranks[a].iter().copied()).collect();
        let pixels: Vec<f32> = scenes.iter().flat_map(|s| preprocess.apply(&s.image)).collect();
        let patch_shapes: Vec<u32> = scenes.iter().flat_map(|s| patch_shapes(s, shape.patch_size as u32)).collect();
        let answers: Vec<u32> = scenes.iter().map(|s| prompts.answers[s.shapes[s.target].colour]).collect();
        let next: Vec<u32> =
            asked.iter().flat_map(|&a| prompts.ranks[a][prompts.image.end + 1..].iter().copied()).collect();
        let (b, s) = (schedule.batch, shape.image_size);
        Ok(Batch {
            ids: Tensor::from_vec(ids, (b, prompts.length), &Device::Cpu)?,
            patch_shapes: Tensor::from_vec(patch_shapes, b * prompts.image.len(), &Device::Cpu)?,
            asked: Tensor::from_vec(asked.iter().map(|&a| a as u32).collect::<Vec<_>>(), b, &Device::Cpu)?,
            pixels: Tensor::from_vec(pixels, (b, 3, s, s), &Device::Cpu)?,
            next: Tensor::from_vec(next, b * (prompts.length - prompts.image.end - 1), &Device::Cpu)?,
            answers: Tensor::from_vec(answers, b, &Device::Cpu)?,
        })
    };
    // The unused tokens' logits are all 0: together they add V − K to the softmax's denominator.
    let unused_mass = ((vocab - prompts.used.len()) as f32).ln();
    let with_unused = |logits: &Tensor, value: f32| -> candle_core::Result<Tensor> {
        let rows = logits.dim(0)?;
        Tensor::cat(&[logits, &Tensor::full(value, (rows, 1), &Device::Cpu)?], 1)
    };
    let text_positions = prompts.length - prompts.image.end;

    let start = Instant::now();
    let mut log = Vec::new();
    for step in 0..schedule.steps {
        let batch = batch_at(step)?;
        let (image, probe) = network.image_embeddings(&batch.pixels)?;
        let (text, asked) = network.text_logits(&batch.ids, prompts.image.start, &image)?;
        let used = prompts.used.len();
        let logits = text.narrow(1, text_positions - 1, 1)?.reshape((schedule.batch, used))?;
        let earlier = text.narrow(1, 0, text_positions - 1)?.reshape((schedule.batch * (text_positions - 1), used))?;
        let answer_loss = candle_nn::loss::cross_entropy(&with_unused(&logits, unused_mass)?, &batch.answers)?;
        let probe = probe.reshape(((), SHAPES.len() + 1))?;
        let loss = (&answer_loss
            + candle_nn::loss::cross_entropy(&with_unused(&earlier, unused_mass)?, &batch.next)?
            + shape_probe_loss(&probe, &batch.patch_shapes)?
            + candle_nn::loss::cross_entropy(&asked, &batch.asked)?)?;
        optimiser.set_learning_rate(schedule.learning_rate_at(step));
        optimiser.backward_step(&loss)?;
        if step % 25 == 0 || step + 1 == schedule.steps {
            let share = |predicted: Tensor, truth: &Tensor| {
                predicted.eq(truth)?.to_dtype(DType::F32)?.mean_all()?.to_scalar::<f32>()
            };
            let entry = StepLog {
                step,
                loss: loss.to_scalar::<f32>()?,
                answer_loss: answer_loss.to_scalar::<f32>()?,
                accuracy: share(with_unused(&logits, 0.0)?.argmax(D::Minus1)?, &batch.answers)?,
                probe_accuracy: {
                    let on_shapes = batch.patch_shapes.ne(0u32)?.to_dtype(DType::F32)?;
                    let right = probe.argmax(D::Minus1)?.eq(&batch.patch_shapes)?.to_dtype(DType::F32)?;
                    ((right * &on_shapes)?.sum_all()? / on_shapes.sum_all()?)?.to_scalar::<f32>()?
                },
                seconds: start.elapsed().as_secs_f64(),
            };
            progress(&entry);
            log.push(entry);
        }
    }
    Ok(Trained {
        mmproj: mmproj_file(shape, &params.list)?,
        lm: lm_file(shape, &params.list, &prompts.used, vocab, tokenizer_source)?,
        log,
    })
}

fn encode(param: &Param) -> Result<NewTensor> {
    encode_values(&param.name, param.gguf_shape.clone(), param.storage, param.var.as_tensor().flatten_all()?.to_vec1()?)
}

/// `values`, row-major in the GGUF `shape`, as a tensor of type `storage`.
fn encode_values(name: &str, shape: Vec<u64>, storage: Storage, values: Vec<f32>) -> Result<NewTensor> {
    let (ggml_type, data) = match storage {
        Storage::F32 => (GgmlType::F32, values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        Storage::F16 => (GgmlType::F16, values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect()),
        Storage::Q8_0 => {
            let blocks = values.len() / 32;
            let tensor = Tensor::from_vec(values, (blocks, 32), &Device::Cpu)?;
            let q = candle_core::quantized::QTensor::quantize(&tensor, candle_core::quantized::GgmlDType::Q8_0)?;
            (GgmlType::Q8_0, q.data()?.into_owned())
        }
    };
    Ok(NewTensor { name: name.to_string(), ggml_type, shape, data })
}

/// The llava-1.5 mmproj: the tower's keys, its blocks plus one identity block, the projector.
fn mmproj_file(shape: &FixtureShape, params: &[Param]) -> Result<(Metadata, Vec<NewTensor>)> {
    let u32_value = |n: usize| Value::U32(n as u32);
    let stored_blocks = shape.vit_layers + 1;
    let metadata: Metadata = vec![
        ("general.architecture".into(), Value::String("clip".into())),
        ("general.name".into(), Value::String("glassbox shapes LLaVA (vision tower and projector)".into())),
        ("general.description".into(), Value::String("A CLIP-style ViT and llava-1.5 MLP projector trained by `glassbox train-vqa-fixture` on the synthetic shapes task".into())),
        ("clip.has_text_encoder".into(), Value::Bool(false)),
        ("clip.has_vision_encoder".into(), Value::Bool(true)),
        ("clip.has_llava_projector".into(), Value::Bool(true)),
        ("clip.projector_type".into(), Value::String("mlp".into())),
        ("clip.use_gelu".into(), Value::Bool(false)),
        ("clip.vision.image_size".into(), u32_value(shape.image_size)),
        ("clip.vision.patch_size".into(), u32_value(shape.patch_size)),
        ("clip.vision.embedding_length".into(), u32_value(shape.vit_width)),
        ("clip.vision.feed_forward_length".into(), u32_value(shape.vit_ffn_width)),
        ("clip.vision.projection_dim".into(), u32_value(shape.lm.width)),
        ("clip.vision.attention.head_count".into(), u32_value(shape.vit_heads)),
        ("clip.vision.block_count".into(), u32_value(stored_blocks)),
        ("clip.vision.attention.layer_norm_epsilon".into(), Value::F32(LAYER_NORM_EPS as f32)),
        ("clip.vision.image_mean".into(), Value::Array(Array::F32(CLIP_MEAN.to_vec()))),
        ("clip.vision.image_std".into(), Value::Array(Array::F32(CLIP_STD.to_vec()))),
    ];
    let mut tensors =
        params.iter().filter(|p| p.file() == Some(File::Mmproj)).map(encode).collect::<Result<Vec<_>>>()?;
    // The identity block: unit norms, and zero output projections so the residual passes through.
    let (d, f) = (shape.vit_width as u64, shape.vit_ffn_width as u64);
    let b = format!("v.blk.{}", shape.vit_layers);
    let filled = |name: String, dims: Vec<u64>, value: f32| NewTensor {
        name,
        ggml_type: GgmlType::F32,
        data: value.to_le_bytes().repeat(dims.iter().product::<u64>() as usize),
        shape: dims,
    };
    for part in ["ln1", "ln2"] {
        tensors.push(filled(format!("{b}.{part}.weight"), vec![d], 1.0));
        tensors.push(filled(format!("{b}.{part}.bias"), vec![d], 0.0));
    }
    for part in ["attn_q", "attn_k", "attn_v", "attn_out"] {
        tensors.push(filled(format!("{b}.{part}.weight"), vec![d, d], 0.0));
        tensors.push(filled(format!("{b}.{part}.bias"), vec![d], 0.0));
    }
    tensors.push(filled(format!("{b}.ffn_down.weight"), vec![d, f], 0.0));
    tensors.push(filled(format!("{b}.ffn_down.bias"), vec![f], 0.0));
    tensors.push(filled(format!("{b}.ffn_up.weight"), vec![f, d], 0.0));
    tensors.push(filled(format!("{b}.ffn_up.bias"), vec![d], 0.0));
    Ok((metadata, tensors))
}

/// The llama GGUF: hyperparameters, SmolLM2's tokenizer, the trained weights, with the tied
/// embedding's `used` rows trained and the other rows of the `vocab` zero.
fn lm_file(
    shape: &FixtureShape,
    params: &[Param],
    used: &[u32],
    vocab: usize,
    tokenizer_source: &Gguf,
) -> Result<(Metadata, Vec<NewTensor>)> {
    let metadata = shape.lm.metadata("glassbox shapes LLaVA (language model)".into(), tokenizer_source)?;
    let width = shape.lm.width;
    let tensors = params
        .iter()
        .filter(|p| p.file() == Some(File::Lm))
        .map(|p| {
            if p.name != "token_embd.weight" {
                return encode(p);
            }
            let rows: Vec<f32> = p.var.as_tensor().flatten_all()?.to_vec1()?;
            let mut table = vec![0f32; vocab * width];
            for (row, &id) in rows.chunks(width).zip(used) {
                table[id as usize * width..][..width].copy_from_slice(row);
            }
            encode_values(&p.name, vec![width as u64, vocab as u64], p.storage, table)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((metadata, tensors))
}
