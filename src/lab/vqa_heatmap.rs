//! `experiment vqa-heatmap`: the seed's patch heatmap against its baselines on fresh scenes of
//! the shapes task, where the ground truth (the asked-about shape's box) is known.
//!
//! For each of N scenes `scene(seed, i)`, drawn at the tower's image size:
//! - **accuracy**: the top next token is the answer's colour word;
//! - **pointing game**: the heatmap's top cell (grid cell `[c·P, (c+1)·P)` on each axis)
//!   overlaps the target shape's box;
//! - **deletion AUC**: the top `k` of the 64 … patches in the method's order are replaced by the
//!   image's mean patch embedding (as occlusion does), for `k = round(f · patches)`,
//!   `f = 0, 0.05, …, 0.5`, and `AUC = (1/0.5) ∫₀^0.5 p(answer | f) df` by the trapezoid rule:
//!   the mean p(answer) over the range; lower means the order found what matters sooner;
//! - **time**: each heatmap, its own forward passes included, over one plain forward pass of
//!   the same prompt (the tower's embedding, which both share, is not counted).
//!
//! Every heatmap explains the gold answer token.

use std::time::Instant;

use serde::Serialize;

use crate::backend::Backend;
use crate::interp::lens::Unembedding;
use crate::model::Model;
use crate::numeric::{argmax, top_k};
use crate::tokenizer::Tokenizer;
use crate::vision::clip::ClipTower;
use crate::vision::llava::{
    answer_token, attention_heatmap, lpi_heatmap, next_token_logprobs, occlusion_heatmap, Heatmap, ImagePrompt,
    LlavaError,
};
use crate::vision::preprocess::Preprocess;
use crate::vision::shapes::{scene, Scene};

type Result<T, E = LlavaError> = std::result::Result<T, E>;

/// One number per heatmap method.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct PerMethod {
    pub lpi: f64,
    pub attention: f64,
    pub occlusion: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TimeVsForward {
    pub lpi: f64,
    pub occlusion: f64,
}

/// The experiment's report; its JSON keys are a contract (scripts/bench.py reads them).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct VqaReport {
    pub n: usize,
    pub accuracy: f64,
    pub pointing: PerMethod,
    pub deletion_auc: PerMethod,
    pub time_vs_forward: TimeVsForward,
}

/// The deletion curve's fractions of patches removed.
const DELETION_STEPS: usize = 10;
const DELETION_MAX: f64 = 0.5;

/// Whether the heatmap's top cell overlaps the box `[x0, y0, x1, y1)` (pixels of an image whose
/// side is `patch · grid`).
pub fn points_at(map: &Heatmap, patch: u32, bbox: [u32; 4]) -> bool {
    let top = argmax(&map.cells) as usize;
    let (row, col) = ((top / map.grid) as u32, (top % map.grid) as u32);
    let overlaps = |start: u32, low: u32, high: u32| start < high && low < start + patch;
    overlaps(col * patch, bbox[0], bbox[2]) && overlaps(row * patch, bbox[1], bbox[3])
}

/// The mean of `p(answer)` over `f ∈ [0, 0.5]` with the `k = round(f · n)` top cells of
/// `map` removed (trapezoid rule over f = 0, 0.05, …, 0.5).
fn deletion_auc<B: Backend>(model: &Model<B>, prompt: &ImagePrompt, map: &Heatmap, answer: usize) -> Result<f64> {
    let n = prompt.image.len();
    // Highest first; equal scores keep patch order, so the curve is reproducible.
    let order = top_k(&map.cells, n);
    let curve = (0..=DELETION_STEPS)
        .map(|step| {
            let k = (DELETION_MAX * step as f64 / DELETION_STEPS as f64 * n as f64).round() as usize;
            Ok(prompt.logprobs_with_removed(model, &order[..k])?[answer].exp() as f64)
        })
        .collect::<Result<Vec<f64>>>()?;
    let area: f64 = curve.windows(2).map(|w| (w[0] + w[1]) / 2.0).sum::<f64>() / DELETION_STEPS as f64;
    Ok(area)
}

/// What one scene contributed.
struct SceneResult {
    correct: bool,
    pointing: [bool; 3],
    deletion: [f64; 3],
    seconds: [f64; 3],
}

fn one_scene<B: Backend>(
    tower: &ClipTower,
    unembedding: &Unembedding<B>,
    tokenizer: &Tokenizer,
    preprocess: &Preprocess,
    scene: &Scene,
) -> Result<SceneResult> {
    let model = unembedding.model();
    let prompt = ImagePrompt::new(tower, model, tokenizer, &scene.prompt(), &preprocess.apply(&scene.image))?;
    let answer = answer_token(tokenizer, scene.answer())?;
    let clock = Instant::now();
    let logprobs = next_token_logprobs(model, &prompt)?;
    let forward = clock.elapsed().as_secs_f64();

    let timed = |f: &dyn Fn() -> Result<Heatmap>| -> Result<(Heatmap, f64)> {
        let clock = Instant::now();
        let map = f()?;
        Ok((map, clock.elapsed().as_secs_f64()))
    };
    let (lpi, lpi_seconds) = timed(&|| lpi_heatmap(unembedding, &prompt, answer, 1))?;
    let attention = attention_heatmap(model, &prompt)?;
    let (occlusion, occlusion_seconds) = timed(&|| occlusion_heatmap(model, &prompt, answer))?;
    let target = &scene.shapes[scene.target];
    let patch = tower.config.patch_size as u32;
    let maps = [&lpi, &attention, &occlusion];
    Ok(SceneResult {
        correct: argmax(&logprobs) == answer,
        pointing: maps.map(|m| points_at(m, patch, target.bbox)),
        deletion: [
            deletion_auc(model, &prompt, &lpi, answer as usize)?,
            deletion_auc(model, &prompt, &attention, answer as usize)?,
            deletion_auc(model, &prompt, &occlusion, answer as usize)?,
        ],
        seconds: [forward, lpi_seconds / forward, occlusion_seconds / forward],
    })
}

/// The experiment over `n` scenes of stream `seed`; `progress` sees each scene's index.
pub fn vqa_heatmap_experiment<B: Backend>(
    tower: &ClipTower,
    unembedding: &Unembedding<B>,
    tokenizer: &Tokenizer,
    preprocess: &Preprocess,
    seed: u64,
    n: usize,
    mut progress: impl FnMut(usize),
) -> Result<VqaReport> {
    let results = (0..n)
        .map(|i| {
            progress(i);
            one_scene(
                tower,
                unembedding,
                tokenizer,
                preprocess,
                &scene(seed, i as u64, tower.config.image_size as u32)?,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let mean = |f: &dyn Fn(&SceneResult) -> f64| results.iter().map(f).sum::<f64>() / n.max(1) as f64;
    let share = |m: usize| mean(&|r| f64::from(u8::from(r.pointing[m])));
    Ok(VqaReport {
        n,
        accuracy: mean(&|r| f64::from(u8::from(r.correct))),
        pointing: PerMethod { lpi: share(0), attention: share(1), occlusion: share(2) },
        deletion_auc: PerMethod {
            lpi: mean(&|r| r.deletion[0]),
            attention: mean(&|r| r.deletion[1]),
            occlusion: mean(&|r| r.deletion[2]),
        },
        time_vs_forward: TimeVsForward { lpi: mean(&|r| r.seconds[1]), occlusion: mean(&|r| r.seconds[2]) },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::llava::Method;

    #[test]
    fn the_pointing_game_asks_whether_the_top_cell_touches_the_box() {
        // 4 × 4 cells of 8 px; the top cell is row 1, column 2: pixels x 16..24, y 8..16.
        let mut cells = vec![0.0; 16];
        cells[6] = 1.0;
        let map = Heatmap { method: Method::Lpi, grid: 4, cells, raw: Vec::new(), heads: Vec::new() };
        assert!(points_at(&map, 8, [20, 0, 30, 9]));
        assert!(points_at(&map, 8, [0, 0, 17, 32]));
        // Boxes are half-open: ending at x = 16 or starting at y = 16 misses.
        assert!(!points_at(&map, 8, [0, 0, 16, 32]));
        assert!(!points_at(&map, 8, [16, 16, 24, 20]));
    }
}
