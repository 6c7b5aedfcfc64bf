//! The unembedding `U` read as a logit lens, and log-probability increase (LPI) on top of it.
//!
//! `U(v) = W_U · (g ⊙ v / s)`, with `g` the final RMSNorm's weight. Two variants of `s`:
//! - [`LensScale::Fixed`], the seed papers' lens: `s = sqrt(mean(h_L²) + ε)`, the RMS of the
//!   final residual at the projected position, the same for every vector projected there. `U`
//!   is then linear, so contributions to a logit add up exactly.
//! - [`LensScale::OwnRms`], the standard logit lens: each vector divided by its own RMS.
//!
//! `W_U` is dequantised once to f32, on the backend's device, so `U` rounds nothing: the quantised kernel would round
//! each input vector to 8 bits, and `U(b + Δ) = U(b) + U(Δ)` would then hold only roughly.

use serde::Serialize;

use super::{InterpError, Result};
use crate::backend::candle::{CandleBackend, CandleMatrix};
use crate::backend::Backend;
use crate::hooks::{HookPoint, HookRequest, Positions};
use crate::model::Model;
use crate::tokenizer::Tokenizer;

/// Logits held at once by one projection (64 MB): enough rows that the product's packing of
/// `W_U` is spread over many of them, few enough for a browser's memory.
const PROJECT_FLOATS: usize = 1 << 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LensScale {
    Fixed,
    OwnRms,
}

/// `W_U` as f32, with the final norm's weight.
pub struct Unembedding<'m, B: Backend> {
    model: &'m Model<B>,
    float: FloatUnembedding<B>,
    vocab: usize,
    width: usize,
}

/// Where the f32 products with `W_U` run. On a device that is the CPU running a GPU's programs
/// in software (a software WebGPU adapter), they run on the CPU kernels instead: the same
/// processor multiplies f32 matrices an order of magnitude faster without the emulation, and
/// these products are most of an attribution's work. Their inputs are host rows already (hook
/// recordings), and only logits or log-probabilities come out.
enum FloatUnembedding<B: Backend> {
    Device(B::Matrix),
    Host(CandleBackend, CandleMatrix),
}

impl<'m, B: Backend> Unembedding<'m, B> {
    /// The products on the backend's device, or on the CPU kernels where the device emulates a
    /// GPU on the CPU.
    pub fn new(model: &'m Model<B>) -> Result<Self> {
        let be = model.backend();
        if !be.emulated_on_cpu() {
            return Self::on_device(model);
        }
        let host = CandleBackend::cpu();
        let (dims, values) = be.download(&be.dequantize(model.unembedding())?)?;
        let weights = host.upload(dims[0], dims[1], &values)?;
        Ok(Self::with(model, FloatUnembedding::Host(host, CandleMatrix::Float(weights))))
    }

    /// The products on the backend's device, whatever it is: what checks a device's own path
    /// against the CPU use.
    pub fn on_device(model: &'m Model<B>) -> Result<Self> {
        Ok(Self::with(model, FloatUnembedding::Device(model.backend().dequantized(model.unembedding())?)))
    }

    fn with(model: &'m Model<B>, float: FloatUnembedding<B>) -> Self {
        let c = model.config();
        Unembedding { model, float, vocab: c.vocab_size, width: c.width }
    }

    pub fn model(&self) -> &'m Model<B> {
        self.model
    }

    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// How many rows one projection takes, so that its logits stay within [`PROJECT_FLOATS`].
    pub fn rows_per_projection(&self) -> usize {
        (PROJECT_FLOATS / self.vocab.max(1)).max(1)
    }

    /// `U(v) = W_U · (g ⊙ v / s)` for each row `v` of `rows` (`[n, d]`) with its scale:
    /// `[n, vocab]`. Callers project [`rows_per_projection`](Self::rows_per_projection) rows at a
    /// time.
    pub fn project(&self, rows: &[f32], scales: &[f32]) -> Result<Vec<f32>> {
        let scaled = self.scaled(rows, scales);
        match &self.float {
            FloatUnembedding::Device(w) => project(self.model.backend(), w, &scaled, scales.len(), self.width),
            FloatUnembedding::Host(be, w) => project(be, w, &scaled, scales.len(), self.width),
        }
    }

    /// `log softmax(bases[pairs[i]] + U(rows[i]))[target]` for each row `i` of `rows`, at one
    /// scale, where the products ran: only these numbers come back from a device.
    fn shifted_log_probs(
        &self,
        bases: &[&[f32]],
        rows: &[f32],
        scale: f32,
        pairs: &[usize],
        target: usize,
    ) -> Result<Vec<f64>> {
        let scaled = self.scaled(rows, &vec![scale; pairs.len()]);
        match &self.float {
            FloatUnembedding::Device(w) => shifted(self.model.backend(), w, &scaled, self.width, bases, pairs, target),
            FloatUnembedding::Host(be, w) => shifted(be, w, &scaled, self.width, bases, pairs, target),
        }
    }

    /// `g ⊙ v / s` for each row `v` with its scale `s`.
    fn scaled(&self, rows: &[f32], scales: &[f32]) -> Vec<f32> {
        let g = self.model.final_norm_weight();
        rows.chunks(self.width)
            .zip(scales)
            .flat_map(|(row, &s)| row.iter().zip(g).map(move |(v, g)| g * v / s))
            .collect()
    }

    /// `W_Uᵀ y` for each row `y` of `rows` (`[n, vocab]`): `[n, d]`.
    fn pull_back(&self, rows: &[f32]) -> Result<Vec<f32>> {
        match &self.float {
            FloatUnembedding::Device(w) => pull_back(self.model.backend(), w, rows, self.vocab),
            FloatUnembedding::Host(be, w) => pull_back(be, w, rows, self.vocab),
        }
    }
}

fn project<C: Backend>(be: &C, w: &C::Matrix, scaled: &[f32], n: usize, width: usize) -> Result<Vec<f32>> {
    let x = be.upload(n, width, scaled)?;
    Ok(be.download(&be.linear(&x, w)?)?.1)
}

fn shifted<C: Backend>(
    be: &C,
    w: &C::Matrix,
    scaled: &[f32],
    width: usize,
    bases: &[&[f32]],
    pairs: &[usize],
    target: usize,
) -> Result<Vec<f64>> {
    let x = be.upload(pairs.len(), width, scaled)?;
    Ok(be.shifted_log_probs(bases, &be.linear(&x, w)?, pairs, target)?)
}

fn pull_back<C: Backend>(be: &C, w: &C::Matrix, rows: &[f32], vocab: usize) -> Result<Vec<f32>> {
    let y = be.upload(rows.len() / vocab, vocab, rows)?;
    Ok(be.download(&be.linear_transposed(&y, w)?)?.1)
}

use crate::numeric::log_prob_of_sum;

/// `U(b)` of one base vector `b`, and `log softmax(U(b))[w]`.
pub struct LpiBase {
    logits: Vec<f32>,
    logprob: f64,
}

impl LpiBase {
    pub fn logprob(&self) -> f64 {
        self.logprob
    }
}

/// Log-probability increase of a target token under the fixed-scale lens:
/// `LPI(b, Δ) = log softmax(U(b+Δ))[w] − log softmax(U(b))[w]`.
///
/// `U` is linear at a fixed scale, so `U(b+Δ) = U(b) + U(Δ)`: each base is projected once and
/// each Δ once, which is the exact LPI (not an approximation).
pub struct Lpi<'u, 'm, B: Backend> {
    pub unembedding: &'u Unembedding<'m, B>,
    /// The fixed `s`: the final residual's RMS at the last position.
    pub scale: f32,
    pub target: u32,
}

impl<B: Backend> Lpi<'_, '_, B> {
    /// The bases `rows` (`[n, d]`), projected.
    pub fn bases(&self, rows: &[f32]) -> Result<Vec<LpiBase>> {
        let width = self.unembedding.width;
        let mut out = Vec::with_capacity(rows.len() / width);
        for chunk in rows.chunks(self.unembedding.rows_per_projection() * width) {
            let n = chunk.len() / width;
            let logits = self.unembedding.project(chunk, &vec![self.scale; n])?;
            for row in logits.chunks(self.unembedding.vocab) {
                let logprob = log_prob_of_sum(row, None, self.target as usize);
                out.push(LpiBase { logits: row.to_vec(), logprob });
            }
        }
        Ok(out)
    }

    /// Exact `LPI(bases[i], Δ)` for each `(i, Δ)`. The projections of the Δs stay where they
    /// ran: a device reads back one log-probability per Δ.
    pub fn exact(&self, bases: &[LpiBase], deltas: &[(usize, Vec<f32>)]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(deltas.len());
        for chunk in deltas.chunks(self.unembedding.rows_per_projection()) {
            let rows: Vec<f32> = chunk.iter().flat_map(|(_, d)| d.iter().copied()).collect();
            let mut used: Vec<usize> = chunk.iter().map(|(base, _)| *base).collect();
            used.sort_unstable();
            used.dedup();
            let used_bases = used
                .iter()
                .map(|&b| bases.get(b).ok_or(InterpError::BadRequest(format!("no LPI base {b} of {}", bases.len()))))
                .collect::<Result<Vec<_>>>()?;
            let logits: Vec<&[f32]> = used_bases.iter().map(|b| b.logits.as_slice()).collect();
            let pairs: Vec<usize> = chunk.iter().map(|(base, _)| used.partition_point(|&u| u < *base)).collect();
            let shifted =
                self.unembedding.shifted_log_probs(&logits, &rows, self.scale, &pairs, self.target as usize)?;
            out.extend(pairs.iter().zip(shifted).map(|(&p, logprob)| (logprob - used_bases[p].logprob) as f32));
        }
        Ok(out)
    }

    /// The first-order approximation of LPI at each base: the gradient
    /// `∂ log softmax(U(b))[w] / ∂b = g ⊙ (W_U[w] − Σ_v p_v·W_U[v]) / s`, `p = softmax(U(b))`,
    /// so that `LPI(b, Δ) ≈ gradient · Δ`: one dot product per candidate.
    pub fn gradients(&self, bases: &[LpiBase]) -> Result<Vec<Vec<f32>>> {
        let vocab = self.unembedding.vocab;
        let mut residuals = Vec::with_capacity(bases.len() * vocab);
        for base in bases {
            let max = base.logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let total: f64 = base.logits.iter().map(|&z| f64::from((z - max).exp())).sum();
            let start = residuals.len();
            residuals.extend(base.logits.iter().map(|&z| -((f64::from((z - max).exp()) / total) as f32)));
            residuals[start + self.target as usize] += 1.0;
        }
        let g = self.unembedding.model.final_norm_weight();
        let pulled = self.unembedding.pull_back(&residuals)?;
        Ok(pulled
            .chunks(self.unembedding.width)
            .map(|row| row.iter().zip(g).map(|(v, g)| g * v / self.scale).collect())
            .collect())
    }
}

/// Which cells of the logit lens to project. `None` means all.
#[derive(Clone, Debug)]
pub struct LensRequest {
    pub layers: Option<Vec<usize>>,
    pub positions: Option<Vec<usize>>,
    pub top_k: usize,
    pub scale: LensScale,
}

#[derive(Clone, Debug, Serialize)]
pub struct LensToken {
    pub id: u32,
    pub token: String,
    pub prob: f32,
}

/// The top tokens of `U(resid_post_l)` at one position.
#[derive(Clone, Debug, Serialize)]
pub struct LensCell {
    pub layer: usize,
    pub position: usize,
    pub tokens: Vec<LensToken>,
}

/// JSON: `{"scale": "fixed"|"own_rms", "input_tokens": [..], "cells": [{"layer", "position",
/// "tokens": [{"id", "token", "prob"}]}]}`, cells by layer then position.
#[derive(Clone, Debug, Serialize)]
pub struct LogitLens {
    pub scale: LensScale,
    pub input_tokens: Vec<String>,
    pub cells: Vec<LensCell>,
}

fn checked(list: &Option<Vec<usize>>, len: usize, what: &str) -> Result<Vec<usize>> {
    match list {
        None => Ok((0..len).collect()),
        Some(list) => match list.iter().find(|&&i| i >= len) {
            Some(bad) => Err(InterpError::BadRequest(format!("{what} {bad} is out of range (there are {len})"))),
            None => Ok(list.clone()),
        },
    }
}

/// The logit lens over each layer's output `resid_post`: `softmax(U(resid_post_l[t]))`, top-k
/// per cell. Only the requested cells are projected, a chunk at a time, and only their top-k
/// are kept: no layers × positions × vocab tensor is ever held.
///
/// With [`LensScale::Fixed`], `s` is the final residual's RMS at the cell's position, so the
/// last layer's cells are the model's own output distribution.
pub fn logit_lens<B: Backend>(
    unembedding: &Unembedding<B>,
    tokenizer: &Tokenizer,
    ids: &[u32],
    request: &LensRequest,
) -> Result<LogitLens> {
    logit_lens_with(unembedding, tokenizer, ids, request, &[])
}

/// [`logit_lens`] of a pass run with `interventions` (LLaVA's visual lens patches the image
/// embeddings in).
pub fn logit_lens_with<B: Backend>(
    unembedding: &Unembedding<B>,
    tokenizer: &Tokenizer,
    ids: &[u32],
    request: &LensRequest,
    interventions: &[crate::hooks::Intervention],
) -> Result<LogitLens> {
    let model = unembedding.model();
    let c = model.config();
    let layers = checked(&request.layers, c.layers, "layer")?;
    let positions = checked(&request.positions, ids.len(), "position")?;
    let top_k = request.top_k.clamp(1, c.vocab_size);
    let at = Positions::Only(positions.clone());
    let mut hooks = HookRequest::new().with(HookPoint::LnFinalScale, at.clone());
    for &l in &layers {
        hooks = hooks.with(HookPoint::ResidPost(l), at.clone());
    }
    let mut cache = model.new_cache();
    let run = model.forward(ids, &mut cache, &hooks, interventions, &Positions::Last)?;
    let final_scale = run.recording.get(HookPoint::LnFinalScale).expect("requested").data.clone();

    let cells_at: Vec<(usize, usize, usize)> =
        layers.iter().flat_map(|&l| positions.iter().enumerate().map(move |(i, &p)| (l, i, p))).collect();
    let mut cells = Vec::with_capacity(cells_at.len());
    for chunk in cells_at.chunks(unembedding.rows_per_projection()) {
        let mut rows = Vec::with_capacity(chunk.len() * c.width);
        let mut scales = Vec::with_capacity(chunk.len());
        for &(l, i, _) in chunk {
            let row = run.recording.get(HookPoint::ResidPost(l)).expect("requested").row(i);
            rows.extend_from_slice(row);
            scales.push(match request.scale {
                LensScale::Fixed => final_scale[i],
                LensScale::OwnRms => {
                    let mean = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
                    (mean + c.norm_eps as f32).sqrt()
                }
            });
        }
        let logits = unembedding.project(&rows, &scales)?;
        for (&(layer, _, position), row) in chunk.iter().zip(logits.chunks(c.vocab_size)) {
            let logprobs = crate::numeric::log_softmax(row);
            let ids: Vec<u32> = crate::numeric::top_k(&logprobs, top_k).into_iter().map(|i| i as u32).collect();
            let texts = tokenizer.token_texts(&ids)?;
            let tokens = ids
                .iter()
                .zip(texts)
                .map(|(&id, token)| LensToken { id, token, prob: logprobs[id as usize].exp() })
                .collect();
            cells.push(LensCell { layer, position, tokens });
        }
    }
    Ok(LogitLens { scale: request.scale, input_tokens: tokenizer.token_texts(ids)?, cells })
}
