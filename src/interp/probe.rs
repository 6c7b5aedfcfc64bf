//! Linear probes: logistic regression on a recorded activation (one vector per prompt, from
//! the last position or the mean over positions), fitted as scikit-learn's `LogisticRegression`
//! fits it by default, so that its probabilities can be checked against it:
//! - the objective is `Σ_i loss_i + ‖W‖² / (2C)`, the intercepts unpenalised;
//! - two classes are one binary model (`σ(w·x + b)` for the second class), more are one
//!   multinomial model (a weight row per class, softmax);
//! - it is minimised in f64 by L-BFGS to a tight gradient tolerance.
//!
//! Cross-validated accuracy holds out one fold at a time: stratified folds (the j-th row of each
//! class, in input order, in fold `j mod k`), or one fold per group (leave one group out).

use std::collections::BTreeMap;

use super::{InterpError, Result};
use crate::backend::Backend;
use crate::hooks::{HookPoint, Positions};
use crate::model::Model;
use crate::safetensors::{self, NamedTensor, TensorView};

/// How a prompt's activation becomes one vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// The last position's.
    Last,
    /// The mean over every position.
    Mean,
}

impl Pooling {
    pub fn parse(text: &str) -> Result<Pooling> {
        match text {
            "last" => Ok(Pooling::Last),
            "mean" => Ok(Pooling::Mean),
            other => Err(InterpError::BadRequest(format!("--position {other:?}: expected last or mean"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Pooling::Last => "last",
            Pooling::Mean => "mean",
        }
    }
}

/// One vector per prompt for each of `points`, `[points][prompts · width]`, with each point's
/// width.
pub fn features<B: Backend>(
    model: &Model<B>,
    prompts: &[Vec<u32>],
    points: &[HookPoint],
    pooling: Pooling,
    max_bytes: u64,
) -> Result<Vec<(Vec<f32>, usize)>> {
    if let Some(pattern) = points.iter().find(|p| matches!(p, HookPoint::AttnPattern(_))) {
        return Err(InterpError::BadRequest(format!(
            "{pattern}: a probe reads one vector per position, and a pattern's size depends on the prompt"
        )));
    }
    let positions = match pooling {
        Pooling::Last => Positions::Last,
        Pooling::Mean => Positions::All,
    };
    let hooks = points.iter().fold(crate::hooks::HookRequest::new(), |h, &p| h.with(p, positions.clone()));
    let mut out: Vec<(Vec<f32>, usize)> = vec![(Vec::new(), 0); points.len()];
    for ids in prompts {
        let run = model.forward(ids, &mut model.new_cache(), &hooks, &[], &Positions::Last)?;
        for (point, (values, width)) in points.iter().zip(out.iter_mut()) {
            let activation = run.recording.get(*point).expect("the hook was asked for");
            let row_width: usize = activation.shape[1..].iter().product();
            if *width == 0 {
                *width = row_width;
                let bytes = prompts.len() as u64 * row_width as u64 * points.len() as u64 * 4;
                if bytes > max_bytes {
                    return Err(InterpError::BadRequest(format!(
                        "{} prompts × {} hooks of {row_width} values take {bytes} bytes, over the cap of {max_bytes}",
                        prompts.len(),
                        points.len()
                    )));
                }
                values.reserve(prompts.len() * row_width);
            }
            let rows = activation.positions.len().max(1);
            let mut pooled = vec![0f64; row_width];
            for r in 0..rows {
                for (p, &v) in pooled.iter_mut().zip(activation.row(r)) {
                    *p += f64::from(v);
                }
            }
            values.extend(pooled.iter().map(|&p| (p / rows as f64) as f32));
        }
    }
    Ok(out)
}

/// Logistic regression's weights: one row for two classes (the second class's logit against the
/// first's), else one per class (softmax), each of `width` values with its bias.
#[derive(Clone, Debug, PartialEq)]
pub struct Logistic {
    pub classes: usize,
    pub width: usize,
    pub weights: Vec<f64>,
    pub bias: Vec<f64>,
}

/// The weight rows a model of `classes` classes has.
fn weight_rows(classes: usize) -> usize {
    if classes == 2 {
        1
    } else {
        classes
    }
}

/// The inverse regularisation strength scikit-learn uses unless told otherwise.
pub const DEFAULT_C: f64 = 1.0;

impl Logistic {
    /// Fits `x: [n, width]` with `labels[i]` a class below `classes`.
    pub fn fit(x: &[f32], labels: &[usize], classes: usize, c: f64) -> Result<Logistic> {
        let n = labels.len();
        if n == 0 || x.len() % n != 0 {
            return Err(InterpError::BadRequest(format!("{} values for {n} rows", x.len())));
        }
        if classes < 2 {
            return Err(InterpError::BadRequest("a probe needs at least two classes".into()));
        }
        if !(c > 0.0 && c.is_finite()) {
            return Err(InterpError::BadRequest(format!("C = {c}: it must be positive")));
        }
        let width = x.len() / n;
        let problem = Problem { x, labels, width, classes, c };
        let rows = weight_rows(classes);
        let theta = lbfgs(&problem, vec![0.0; rows * (width + 1)]);
        let weights = (0..rows).flat_map(|r| theta[r * (width + 1)..r * (width + 1) + width].to_vec()).collect();
        let bias = (0..rows).map(|r| theta[r * (width + 1) + width]).collect();
        Ok(Logistic { classes, width, weights, bias })
    }

    /// Each class's probability for one feature vector.
    pub fn probabilities(&self, x: &[f32]) -> Vec<f64> {
        let logits: Vec<f64> = self
            .weights
            .chunks_exact(self.width)
            .zip(&self.bias)
            .map(|(w, b)| w.iter().zip(x).map(|(w, &v)| w * f64::from(v)).sum::<f64>() + b)
            .collect();
        class_probabilities(&logits, self.classes)
    }

    /// The most probable class of one feature vector.
    pub fn predict(&self, x: &[f32]) -> usize {
        argmax(&self.probabilities(x))
    }
}

/// A probe: a logistic regression on one hook's vector, with what it reads and its class names.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub hook: HookPoint,
    pub pooling: Pooling,
    /// The input fields joined (by line breaks) into the text the probe was trained on.
    pub text_fields: Vec<String>,
    pub classes: Vec<String>,
    pub logistic: Logistic,
}

impl Probe {
    /// The text the probe reads from a row's `fields`: its text fields joined by line breaks.
    pub fn text_of(&self, fields: &BTreeMap<String, String>) -> Result<String> {
        let parts = self
            .text_fields
            .iter()
            .map(|name| {
                fields.get(name).map(String::as_str).ok_or_else(|| {
                    InterpError::BadRequest(format!(
                        "the probe reads the field {name:?}, which the input does not have"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(parts.join("\n"))
    }

    /// As a safetensors file: `weight` `[rows, width]` and `bias` `[rows]` (f32), the hook, the
    /// pooling, the text fields and the classes (JSON lists) in the metadata.
    pub fn to_safetensors(&self) -> Vec<u8> {
        let Logistic { width, weights, bias, .. } = &self.logistic;
        let rows = bias.len();
        let weights: Vec<f32> = weights.iter().map(|&w| w as f32).collect();
        let bias: Vec<f32> = bias.iter().map(|&b| b as f32).collect();
        let metadata = BTreeMap::from([
            ("hook".to_string(), self.hook.to_string()),
            ("position".to_string(), self.pooling.name().to_string()),
            ("classes".to_string(), serde_json::to_string(&self.classes).expect("strings serialise")),
            ("text_fields".to_string(), serde_json::to_string(&self.text_fields).expect("strings serialise")),
        ]);
        safetensors::write(
            &[
                TensorView { name: "weight", shape: &[rows, *width], data: &weights },
                TensorView { name: "bias", shape: &[rows], data: &bias },
            ],
            &metadata,
        )
    }

    /// Reads what [`to_safetensors`](Self::to_safetensors) writes.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Probe> {
        let bad = |why: &str| InterpError::BadRequest(format!("a probe file: {why}"));
        let (tensors, metadata) = safetensors::read(bytes).map_err(|e| bad(&e.to_string()))?;
        let hook = metadata.get("hook").and_then(|h| HookPoint::parse(h)).ok_or_else(|| bad("no known hook"))?;
        let pooling = Pooling::parse(metadata.get("position").map(String::as_str).unwrap_or_default())?;
        let classes: Vec<String> = metadata
            .get("classes")
            .and_then(|c| serde_json::from_str(c).ok())
            .ok_or_else(|| bad("no list of classes"))?;
        let text_fields: Vec<String> = match metadata.get("text_fields") {
            Some(fields) => serde_json::from_str(fields).map_err(|_| bad("its text fields are not a list of names"))?,
            None => vec!["text".to_string()],
        };
        let find = |name: &str| tensors.iter().find(|t| t.name == name);
        let (Some(NamedTensor { shape: w_shape, data: w, .. }), Some(NamedTensor { shape: b_shape, data: b, .. })) =
            (find("weight"), find("bias"))
        else {
            return Err(bad("it needs a weight and a bias"));
        };
        let rows = weight_rows(classes.len());
        if classes.len() < 2 || w_shape.len() != 2 || w_shape[0] != rows || b_shape[..] != [rows] {
            return Err(bad("its shapes do not fit its classes"));
        }
        let logistic = Logistic {
            classes: classes.len(),
            width: w_shape[1],
            weights: w.iter().map(|&v| f64::from(v)).collect(),
            bias: b.iter().map(|&v| f64::from(v)).collect(),
        };
        Ok(Probe { hook, pooling, text_fields, classes, logistic })
    }
}

/// Each row's fold in stratified k-fold: the j-th row of each class (in input order) in fold
/// `j mod k`. Every class needs at least `k` rows, so that every fold's training rows hold it.
pub fn stratified_folds(labels: &[usize], classes: usize, folds: usize) -> Result<Vec<usize>> {
    if folds < 2 {
        return Err(InterpError::BadRequest("cross-validation needs at least 2 folds".into()));
    }
    for class in 0..classes {
        let count = labels.iter().filter(|&&l| l == class).count();
        if count < folds {
            return Err(InterpError::BadRequest(format!(
                "class {class} has {count} rows, fewer than the {folds} folds"
            )));
        }
    }
    let mut seen = vec![0usize; classes];
    Ok(labels
        .iter()
        .map(|&l| {
            seen[l] += 1;
            (seen[l] - 1) % folds
        })
        .collect())
}

/// The accuracy, over every row, of probes each fitted on the rows outside one fold and tested
/// on the rows inside it; `fold_of[i]` is row i's fold.
pub fn cross_validated_accuracy(x: &[f32], labels: &[usize], classes: usize, fold_of: &[usize], c: f64) -> Result<f64> {
    let n = labels.len();
    let width = x.len() / n.max(1);
    let folds = fold_of.iter().max().map_or(0, |&f| f + 1);
    if folds < 2 {
        return Err(InterpError::BadRequest("cross-validation needs at least 2 folds".into()));
    }
    let mut correct = 0;
    for fold in 0..folds {
        let train: Vec<usize> = (0..n).filter(|&i| fold_of[i] != fold).collect();
        let train_x: Vec<f32> = train.iter().flat_map(|&i| x[i * width..(i + 1) * width].to_vec()).collect();
        let train_labels: Vec<usize> = train.iter().map(|&i| labels[i]).collect();
        let fitted = Logistic::fit(&train_x, &train_labels, classes, c)?;
        correct += (0..n)
            .filter(|&i| fold_of[i] == fold && fitted.predict(&x[i * width..(i + 1) * width]) == labels[i])
            .count();
    }
    Ok(correct as f64 / n as f64)
}

fn argmax(p: &[f64]) -> usize {
    p.iter().enumerate().fold(0, |best, (i, &v)| if v > p[best] { i } else { best })
}

/// The classes' probabilities from a probe's logits (one logit for two classes).
fn class_probabilities(logits: &[f64], classes: usize) -> Vec<f64> {
    if classes == 2 {
        let p = 1.0 / (1.0 + (-logits[0]).exp());
        return vec![1.0 - p, p];
    }
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits.iter().map(|z| (z - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// The regularised log-loss of a probe's parameters: rows of `width` weights then a bias.
struct Problem<'a> {
    x: &'a [f32],
    labels: &'a [usize],
    width: usize,
    classes: usize,
    c: f64,
}

impl Problem<'_> {
    /// The objective and its gradient at `theta`.
    fn evaluate(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let (width, rows) = (self.width, weight_rows(self.classes));
        let stride = width + 1;
        let mut gradient = vec![0f64; theta.len()];
        let mut loss = 0f64;
        for r in 0..rows {
            let w = &theta[r * stride..r * stride + width];
            loss += w.iter().map(|v| v * v).sum::<f64>() / (2.0 * self.c);
            for (g, v) in gradient[r * stride..r * stride + width].iter_mut().zip(w) {
                *g = v / self.c;
            }
        }
        for (x, &label) in self.x.chunks_exact(width).zip(self.labels) {
            let logits: Vec<f64> = (0..rows)
                .map(|r| {
                    let w = &theta[r * stride..r * stride + width];
                    w.iter().zip(x).map(|(w, &v)| w * f64::from(v)).sum::<f64>() + theta[r * stride + width]
                })
                .collect();
            // d loss / d logit for each row
            let slopes: Vec<f64> = if rows == 1 {
                let z = logits[0];
                let y = (label == 1) as u8 as f64;
                // log(1 + e^z) − y·z, computed without overflow
                loss += z.max(0.0) + (-z.abs()).exp().ln_1p() - y * z;
                vec![1.0 / (1.0 + (-z).exp()) - y]
            } else {
                let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = logits.iter().map(|z| (z - max).exp()).sum();
                loss += max + sum.ln() - logits[label];
                logits.iter().enumerate().map(|(r, z)| (z - max).exp() / sum - (r == label) as u8 as f64).collect()
            };
            for (r, slope) in slopes.into_iter().enumerate() {
                let g = &mut gradient[r * stride..(r + 1) * stride];
                for (g, &v) in g[..width].iter_mut().zip(x) {
                    *g += slope * f64::from(v);
                }
                g[width] += slope;
            }
        }
        (loss, gradient)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimises the (strictly convex) objective by L-BFGS with ten correction pairs and a
/// backtracking line search, until the gradient's largest component is below 1e-10 of the
/// loss's scale or the objective stops decreasing.
fn lbfgs(problem: &Problem, mut theta: Vec<f64>) -> Vec<f64> {
    const HISTORY: usize = 10;
    const MAX_ITERATIONS: usize = 20_000;
    let (mut value, mut gradient) = problem.evaluate(&theta);
    let tolerance = 1e-10 * problem.labels.len() as f64;
    let mut pairs: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = std::collections::VecDeque::new();
    for _ in 0..MAX_ITERATIONS {
        if gradient.iter().fold(0f64, |m, g| m.max(g.abs())) <= tolerance {
            break;
        }
        // The two-loop recursion: direction = −H·gradient.
        let mut q = gradient.clone();
        let mut alphas = Vec::with_capacity(pairs.len());
        for (s, y, rho) in pairs.iter().rev() {
            let alpha = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(q, y)| *q -= alpha * y);
            alphas.push(alpha);
        }
        let scale = match pairs.back() {
            Some((s, y, _)) => dot(s, y) / dot(y, y),
            None => 1.0 / gradient.iter().map(|g| g * g).sum::<f64>().sqrt().max(1.0),
        };
        q.iter_mut().for_each(|q| *q *= scale);
        for ((s, y, rho), alpha) in pairs.iter().zip(alphas.into_iter().rev()) {
            let beta = rho * dot(y, &q);
            q.iter_mut().zip(s).for_each(|(q, s)| *q += (alpha - beta) * s);
        }
        let direction: Vec<f64> = q.iter().map(|q| -q).collect();
        let slope = dot(&direction, &gradient);
        if slope >= 0.0 {
            pairs.clear();
            continue;
        }
        let mut step = 1.0;
        let (next, next_value, next_gradient) = loop {
            let candidate: Vec<f64> = theta.iter().zip(&direction).map(|(t, d)| t + step * d).collect();
            let (v, g) = problem.evaluate(&candidate);
            if v <= value + 1e-4 * step * slope {
                break (candidate, v, g);
            }
            step *= 0.5;
            if step < 1e-20 {
                return theta;
            }
        };
        let s: Vec<f64> = next.iter().zip(&theta).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = next_gradient.iter().zip(&gradient).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-300 {
            if pairs.len() == HISTORY {
                pairs.pop_front();
            }
            pairs.push_back((s, y, 1.0 / sy));
        }
        let stalled = value - next_value <= f64::EPSILON * value.abs();
        (theta, value, gradient) = (next, next_value, next_gradient);
        if stalled && gradient.iter().fold(0f64, |m, g| m.max(g.abs())) <= tolerance * 1e3 {
            break;
        }
    }
    theta
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One feature, two classes, C large: the fitted logistic curve's gradient condition holds
    /// (Σ (p_i − y_i) = 0 and Σ (p_i − y_i) x_i + w / C = 0), worked from the formula.
    #[test]
    fn the_fit_satisfies_the_optimality_conditions() {
        let x = [0.0f32, 1.0, 2.0, 3.0, 1.5, 2.5];
        let labels = [0, 0, 1, 1, 1, 0];
        let probe = Logistic::fit(&x, &labels, 2, 2.0).unwrap();
        let residuals: Vec<f64> =
            x.iter().zip(&labels).map(|(&v, &l)| probe.probabilities(&[v])[1] - l as f64).collect();
        let bias_condition: f64 = residuals.iter().sum();
        let weight_condition: f64 =
            residuals.iter().zip(&x).map(|(r, &v)| r * f64::from(v)).sum::<f64>() + probe.weights[0] / 2.0;
        assert!(bias_condition.abs() < 1e-8 && weight_condition.abs() < 1e-8, "{bias_condition} {weight_condition}");
    }

    /// Folds dealt by hand: class 0's rows (0, 2, 3, 5) go to folds 0, 1, 0, 1, class 1's (1, 4)
    /// to 0, 1; three classes' well-separated points are all classified right when held out.
    #[test]
    fn stratified_folds_deal_each_class_in_turn_and_held_out_rows_are_scored() {
        assert_eq!(stratified_folds(&[0, 1, 0, 0, 1, 0], 2, 2).unwrap(), vec![0, 0, 1, 0, 1, 1]);
        assert!(stratified_folds(&[0, 1, 0], 2, 2).is_err(), "class 1 has one row for two folds");
        let x = [0.0f32, 0.1, 0.2, 5.0, 5.1, 5.2, 10.0, 10.1, 10.2];
        let labels = [0, 0, 0, 1, 1, 1, 2, 2, 2];
        let groups = [0, 1, 2, 0, 1, 2, 0, 1, 2];
        assert_eq!(cross_validated_accuracy(&x, &labels, 3, &groups, 100.0).unwrap(), 1.0);
    }
}
