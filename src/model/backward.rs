//! The backward pass: the gradient of one number read from the last position's logits (a logit,
//! a logit difference, a log-probability) with respect to the residual stream at every layer and
//! position and to each head's output (`attn.hook_z`), for attribution patching and the input
//! attributions (gradient × input, integrated gradients).
//!
//! It is written over [`Backend`] like the forward pass: every product with a weight's transpose
//! runs on the backend (`linear_transposed`, the backward of `linear`), and what a layer needs of
//! its forward pass (queries, keys, values, the attention pattern, the MLP's gate and up
//! projections) is recomputed there from the recorded residual stream; the element-wise steps
//! (RMSNorm, rope, softmax, the gate's nonlinearity) run on the host in f32. Quantised products
//! round their input to 8 bits; the gradient takes that rounding as the identity, so it is the
//! gradient of the same network reading its input unrounded.
//!
//! Interventions are differentiated as they act: a patched row or head is a constant (no
//! gradient flows past it into what it replaced), a scaled head or neuron scales its gradient,
//! steering adds a constant.

use super::{GateActivation, Layer, LayerPlan, Model, ModelError, Projections, Result};
use crate::backend::{Backend, Heads};
use crate::hooks::{Activation, HookPoint, HookRequest, Intervention, Positions, Recording};

/// The number a backward pass differentiates, read from the logits at the last position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    /// The logit of a token.
    Logit(u32),
    /// `logit(answer) − logit(wrong)`, the metric of activation patching.
    LogitDifference { answer: u32, wrong: u32 },
    /// The log-probability of a token.
    LogProb(u32),
}

impl Objective {
    fn tokens(self) -> Vec<u32> {
        match self {
            Objective::Logit(token) | Objective::LogProb(token) => vec![token],
            Objective::LogitDifference { answer, wrong } => vec![answer, wrong],
        }
    }

    /// The objective's value on a row of logits.
    pub fn value(self, logits: &[f32]) -> f32 {
        match self {
            Objective::Logit(token) => logits[token as usize],
            Objective::LogitDifference { answer, wrong } => logits[answer as usize] - logits[wrong as usize],
            Objective::LogProb(token) => logits[token as usize] - crate::numeric::log_sum_exp(logits),
        }
    }

    /// The objective's gradient with respect to the logits.
    fn gradient(self, logits: &[f32]) -> Vec<f32> {
        let mut gradient = vec![0f32; logits.len()];
        match self {
            Objective::Logit(token) => gradient[token as usize] = 1.0,
            Objective::LogitDifference { answer, wrong } => {
                gradient[answer as usize] += 1.0;
                gradient[wrong as usize] -= 1.0;
            }
            Objective::LogProb(token) => {
                let log_total = crate::numeric::log_sum_exp(logits);
                for (g, l) in gradient.iter_mut().zip(logits) {
                    *g = -(l - log_total).exp();
                }
                gradient[token as usize] += 1.0;
            }
        }
        gradient
    }
}

/// A forward pass and its backward pass.
pub struct Gradients {
    /// The objective's value in the forward pass.
    pub value: f32,
    /// ∂value/∂activation at every position: `hook_embed` and, per layer, `hook_resid_pre`,
    /// `hook_resid_mid`, `hook_resid_post` (`[t, d]`) and `attn.hook_z` (`[t, heads, head_dim]`).
    /// [`Gradients::of`] also answers for `hook_attn_out` and `hook_mlp_out`.
    pub gradients: Recording,
    /// What the forward pass recorded: the hooks asked for, and the residual stream entering and
    /// inside every layer at every position.
    pub activations: Recording,
}

impl Gradients {
    /// The gradient with respect to `point`'s activation, where the backward pass has it.
    pub fn of(&self, point: HookPoint) -> Option<&Activation> {
        // What a sublayer adds joins the residual as it is: the two have one gradient.
        let same = match point {
            HookPoint::AttnOut(l) => HookPoint::ResidMid(l),
            HookPoint::MlpOut(l) => HookPoint::ResidPost(l),
            other => other,
        };
        self.gradients.get(same)
    }
}

impl<B: Backend> Model<B> {
    /// Runs `ids` (from an empty cache) with `interventions`, recording `hooks`, and
    /// differentiates `objective` at the last position back through every layer.
    pub fn gradient(
        &self,
        ids: &[u32],
        interventions: &[Intervention],
        objective: Objective,
        hooks: &HookRequest,
    ) -> Result<Gradients> {
        let c = &self.config;
        if let Some(id) = objective.tokens().into_iter().find(|&id| id as usize >= c.vocab_size) {
            return Err(ModelError::BadTokenId { id, vocab_size: c.vocab_size });
        }
        let t = ids.len();
        if t > c.context_length {
            return Err(ModelError::PromptTooLong { len: t, max: c.context_length });
        }
        self.check_backward_memory(t)?;
        let mut request = hooks.clone();
        for l in 0..c.layers {
            request = request.with(HookPoint::ResidPre(l), Positions::All).with(HookPoint::ResidMid(l), Positions::All);
            if c.post_norms {
                request = request
                    .with(HookPoint::AttnOutPreNorm(l), Positions::All)
                    .with(HookPoint::MlpOutPreNorm(l), Positions::All);
            }
        }
        let last_layer = c.layers - 1;
        request = request.with(HookPoint::ResidPost(last_layer), Positions::All);
        let forward = self.forward(ids, &mut self.new_cache(), &request, interventions, &Positions::Last)?;
        let recorded = |point: HookPoint| -> &[f32] {
            &forward.recording.get(point).expect("the backward pass asked the forward pass for it").data
        };
        let logits = &forward.logits.data;
        let (value, seed) = (objective.value(logits), objective.gradient(logits));
        let plans = self.plan(interventions, 0, t)?;
        let (d, eps) = (c.width, c.norm_eps);

        let last = t - 1;
        let [pulled] = self.read_together([&self.pulled_back(&seed, 1, self.unembedding())?])?;
        let final_x = &recorded(HookPoint::ResidPost(last_layer))[last * d..];
        let mut g = vec![0f32; t * d];
        g[last * d..].copy_from_slice(&rms_norm_backward(final_x, &self.final_norm.values, d, eps, &pulled));

        let mut gradients = Recording::default();
        let mut keep = |point: HookPoint, shape: Vec<usize>, data: Vec<f32>| {
            gradients.activations.insert(point, Activation { positions: (0..t).collect(), shape, data });
        };
        for (l, (layer, plan)) in self.layers.iter().zip(&plans).enumerate().rev() {
            keep(HookPoint::ResidPost(l), vec![t, d], g.clone());
            let post_norm_input = |point: HookPoint| c.post_norms.then(|| recorded(point));
            let g_mid = self.mlp_backward(
                layer,
                plan,
                recorded(HookPoint::ResidMid(l)),
                post_norm_input(HookPoint::MlpOutPreNorm(l)),
                &g,
            )?;
            keep(HookPoint::ResidMid(l), vec![t, d], g_mid.clone());
            let (g_pre, dz) = self.attention_backward(
                l,
                layer,
                plan,
                recorded(HookPoint::ResidPre(l)),
                post_norm_input(HookPoint::AttnOutPreNorm(l)),
                &g_mid,
            )?;
            keep(HookPoint::AttnZ(l), vec![t, c.heads, c.head_dim], dz);
            keep(HookPoint::ResidPre(l), vec![t, d], g_pre.clone());
            g = g_pre;
            // A patched row is a constant: nothing before the layer moves it.
            for &(row, _) in &plan.patches {
                g[row * d..(row + 1) * d].fill(0.0);
            }
        }
        keep(HookPoint::Embed, vec![t, d], g);
        Ok(Gradients { value, gradients, activations: forward.recording })
    }

    /// The values of `N` tensors, in one read-back.
    fn read_together<const N: usize>(&self, tensors: [&B::Tensor; N]) -> Result<[Vec<f32>; N]> {
        let values: Vec<Vec<f32>> =
            self.backend.download_all(&tensors)?.into_iter().map(|(_, values)| values).collect();
        values.try_into().map_err(|got: Vec<Vec<f32>>| {
            ModelError::Backend(crate::backend::BackendError(format!("{} tensors read back of {N}", got.len())))
        })
    }

    /// `g · W` on the backend, for `g: [rows, out]` on the host.
    fn pulled_back(&self, g: &[f32], rows: usize, w: &B::Matrix) -> Result<B::Tensor> {
        let be = &self.backend;
        Ok(be.linear_transposed(&be.upload(rows, g.len() / rows, g)?, w)?)
    }

    /// `g₁ · W₁ + g₂ · W₂ + …`: the gradient of an input that several products read, the
    /// products read back together and added on the host in order.
    fn pull_back_sum(&self, parts: &[(&[f32], &B::Matrix)], rows: usize) -> Result<Vec<f32>> {
        let products = parts.iter().map(|&(g, w)| self.pulled_back(g, rows, w)).collect::<Result<Vec<_>>>()?;
        let mut pulled = self.backend.download_all(&products.iter().collect::<Vec<_>>())?.into_iter();
        let mut total = pulled.next().map(|(_, values)| values).unwrap_or_default();
        for (_, values) in pulled {
            total.iter_mut().zip(&values).for_each(|(s, p)| *s += p);
        }
        Ok(total)
    }

    /// The gradient at a sublayer's output, before its output matrix, from `g` at the residual
    /// the sublayer adds to: rows the sublayer's `patches` replace get none, and a post-norm
    /// (whose input `pre_norm_output` is) passes it back first.
    fn output_gradient(
        &self,
        g: &[f32],
        patches: &[(usize, &[f32])],
        post_norm: &Option<super::Norm<B>>,
        pre_norm_output: Option<&[f32]>,
    ) -> Vec<f32> {
        let (d, eps) = (self.config.width, self.config.norm_eps);
        let mut dy = g.to_vec();
        for &(row, _) in patches {
            dy[row * d..(row + 1) * d].fill(0.0);
        }
        if let (Some(norm), Some(y)) = (post_norm, pre_norm_output) {
            dy = rms_norm_backward(y, &norm.values, d, eps, &dy);
        }
        dy
    }

    /// The gradient at the residual `r` entering the MLP, from `g` at the residual leaving it.
    fn mlp_backward(
        &self,
        layer: &Layer<B>,
        plan: &LayerPlan,
        r: &[f32],
        pre_norm_output: Option<&[f32]>,
        g: &[f32],
    ) -> Result<Vec<f32>> {
        let (c, be) = (&self.config, &self.backend);
        let (d, t) = (c.width, r.len() / c.width);
        let dy = self.output_gradient(g, &plan.mlp_out_patches, &layer.post_ffn_norm, pre_norm_output);
        let normed = be.rms_norm(&be.upload(t, d, r)?, &layer.ffn_norm.weight, c.norm_eps)?;
        let gate = be.linear(&normed, &layer.gate)?;
        let (activated, up) = (self.activate(&gate)?, be.linear(&normed, &layer.up)?);
        let dm = self.pulled_back(&dy, t, &layer.down)?;
        let [mut dm, activated, gate, up] = self.read_together([&dm, &activated, &gate, &up])?;
        if let Some(factors) = &plan.neuron_factors {
            for row in dm.chunks_mut(c.ffn_width) {
                row.iter_mut().zip(factors).for_each(|(v, f)| *v *= f);
            }
        }
        let activation = c.gate_activation;
        let d_gate: Vec<f32> =
            dm.iter().zip(&gate).zip(&up).map(|((dm, &x), u)| dm * u * activation.derivative(x)).collect();
        let d_up: Vec<f32> = dm.iter().zip(&activated).map(|(dm, a)| dm * a).collect();
        let d_normed = self.pull_back_sum(&[(&d_gate, &layer.gate), (&d_up, &layer.up)], t)?;
        let mut g_mid = rms_norm_backward(r, &layer.ffn_norm.values, d, c.norm_eps, &d_normed);
        g_mid.iter_mut().zip(g).for_each(|(a, b)| *a += b);
        Ok(g_mid)
    }

    /// The gradient at the residual `x` entering layer `l`, from `g` at the residual after its
    /// attention, and the gradient at `attn.hook_z` on the way.
    fn attention_backward(
        &self,
        l: usize,
        layer: &Layer<B>,
        plan: &LayerPlan,
        x: &[f32],
        pre_norm_output: Option<&[f32]>,
        g: &[f32],
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let (c, be) = (&self.config, &self.backend);
        let (d, t, hd) = (c.width, x.len() / c.width, c.head_dim);
        let dy = self.output_gradient(g, &plan.attn_out_patches, &layer.post_attn_norm, pre_norm_output);
        let dz = self.pulled_back(&dy, t, &layer.wo)?;
        let x_device = be.upload(t, d, x)?;
        let Projections { q_linear, k_linear, q, k, v } = self.projections(l, layer, &x_device, 0)?;
        let heads = Heads { heads: c.heads, kv_heads: c.kv_heads, window: c.attention_window(l) };
        let (_, pattern) = be.attention(&q, &k, &v, heads, true)?;
        let pattern = pattern.ok_or_else(|| {
            ModelError::Backend(crate::backend::BackendError("the backend gave no attention pattern when asked".into()))
        })?;
        // The queries and keys before their per-head norms only where those norms are.
        let [dz, q, k, v, pattern, q_linear, k_linear] = if layer.q_norm.is_some() || layer.k_norm.is_some() {
            self.read_together([&dz, &q, &k, &v, &pattern, &q_linear, &k_linear])?
        } else {
            let [dz, q, k, v, pattern] = self.read_together([&dz, &q, &k, &v, &pattern])?;
            [dz, q, k, v, pattern, Vec::new(), Vec::new()]
        };
        let mut dz_attention = dz.clone();
        if let Some(factors) = &plan.head_factors {
            for row in dz_attention.chunks_mut(c.heads * hd) {
                for (head, f) in row.chunks_mut(hd).zip(factors) {
                    head.iter_mut().for_each(|v| *v *= f);
                }
            }
        }
        for &(row, head, _) in &plan.head_patches {
            let at = row * c.heads * hd + head * hd;
            dz_attention[at..at + hd].fill(0.0);
        }

        let (mut dq, mut dk, dv) = softmax_attention_backward(&q, &k, &v, &pattern, &dz_attention, heads, hd);
        let query_factor = self.query_factor();
        dq.iter_mut().for_each(|v| *v *= query_factor);
        let rope = self.rope(l, 0);
        let (cos, sin) = rope.table(t, hd);
        let minus_sin: Vec<f32> = sin.iter().map(|s| -s).collect();
        // A rotation's transpose rotates back.
        dq = crate::backend::kernels::rope::rotate(&dq, &cos, &minus_sin, c.heads, hd, rope.interleaved);
        dk = crate::backend::kernels::rope::rotate(&dk, &cos, &minus_sin, c.kv_heads, hd, rope.interleaved);
        if let Some(norm) = &layer.q_norm {
            dq = rms_norm_backward(&q_linear, &norm.values, hd, c.norm_eps, &dq);
        }
        if let Some(norm) = &layer.k_norm {
            dk = rms_norm_backward(&k_linear, &norm.values, hd, c.norm_eps, &dk);
        }
        let d_normed = self.pull_back_sum(&[(&dq, &layer.wq), (&dk, &layer.wk), (&dv, &layer.wv)], t)?;
        let mut g_pre = rms_norm_backward(x, &layer.attn_norm.values, d, c.norm_eps, &d_normed);
        g_pre.iter_mut().zip(g).for_each(|(a, b)| *a += b);
        Ok((g_pre, dz))
    }

    /// Refuses a backward pass over `t` positions whose gradients and recordings would pass
    /// [`WORKING_MEMORY_BUDGET`](super::WORKING_MEMORY_BUDGET).
    fn check_backward_memory(&self, t: usize) -> Result<()> {
        let c = &self.config;
        let (layers, width, t64) = (c.layers as u64, c.width as u64, t as u64);
        // Per layer and position: the recorded residuals entering and inside the layer (and the
        // post-norms' inputs) and the gradients at three residuals and at z; per position, one
        // layer's gate and up projections and their gradients; one layer's attention pattern.
        let residuals = if c.post_norms { 7 } else { 5 };
        let per_position = layers * (residuals * width + (c.heads * c.head_dim) as u64) + 4 * c.ffn_width as u64;
        let pattern = (c.heads as u64).saturating_mul(t64).saturating_mul(t64);
        let values = t64.saturating_mul(per_position).saturating_add(pattern);
        super::within_budget(t, t, values.saturating_mul(4))
    }
}

impl GateActivation {
    fn derivative(self, x: f32) -> f32 {
        match self {
            GateActivation::Silu => {
                let sigmoid = 1.0 / (1.0 + (-x).exp());
                sigmoid * (1.0 + x * (1.0 - sigmoid))
            }
            GateActivation::GeluTanh => {
                let tanh = gelu_inner(x).tanh();
                let inner_derivative = GELU_C * (1.0 + 3.0 * GELU_CUBIC * x * x);
                0.5 * (1.0 + tanh) + 0.5 * x * (1.0 - tanh * tanh) * inner_derivative
            }
        }
    }
}

/// √(2/π), and the cubic term's coefficient, of GELU's tanh approximation.
const GELU_C: f32 = 0.797_884_6;
const GELU_CUBIC: f32 = 0.044_715;

fn gelu_inner(x: f32) -> f32 {
    GELU_C * (x + GELU_CUBIC * x * x * x)
}

/// The gradient at `x` of RMSNorm `w ⊙ x / s` over each run of `n` values (`s = √(mean(x²) + ε)`),
/// from the gradient `dy` at its output: `w ⊙ dy / s − x · Σ(w ⊙ dy ⊙ x) / (n s³)`.
fn rms_norm_backward(x: &[f32], w: &[f32], n: usize, eps: f64, dy: &[f32]) -> Vec<f32> {
    let mut dx = Vec::with_capacity(x.len());
    for (x, dy) in x.chunks(n).zip(dy.chunks(n)) {
        let mean_square = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / n as f64;
        let s = (mean_square + eps).sqrt();
        let along: f64 = x.iter().zip(dy).zip(w).map(|((&x, &dy), &w)| f64::from(w * dy) * f64::from(x)).sum();
        let correction = along / (n as f64 * s * s * s);
        dx.extend(
            x.iter().zip(dy).zip(w).map(|((&x, &dy), &w)| (f64::from(w * dy) / s - f64::from(x) * correction) as f32),
        );
    }
    dx
}

/// The gradients at `q: [t, H·hd]`, `k, v: [t, KV·hd]` of causal attention `z = P·v`,
/// `P = softmax(q·kᵀ/√hd)` (the recorded `pattern: [H, t, t]`, zero where a query does not look),
/// from the gradient `dz` at `z: [t, H·hd]`.
fn softmax_attention_backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    pattern: &[f32],
    dz: &[f32],
    heads: Heads,
    hd: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (q_width, kv_width) = (heads.heads * hd, heads.kv_heads * hd);
    let t = q.len() / q_width;
    let group = heads.heads / heads.kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let (mut dq, mut dk, mut dv) = (vec![0f32; q.len()], vec![0f32; k.len()], vec![0f32; v.len()]);
    let mut d_probability = vec![0f32; t];
    for h in 0..heads.heads {
        let (qo, kvo) = (h * hd, (h / group) * hd);
        for i in 0..t {
            let p = &pattern[(h * t + i) * t..(h * t + i + 1) * t];
            let dz_i = &dz[i * q_width + qo..i * q_width + qo + hd];
            let mut expected = 0f32;
            for j in 0..=i {
                let v_j = &v[j * kv_width + kvo..j * kv_width + kvo + hd];
                d_probability[j] = dz_i.iter().zip(v_j).map(|(a, b)| a * b).sum();
                expected += p[j] * d_probability[j];
                let dv_j = &mut dv[j * kv_width + kvo..j * kv_width + kvo + hd];
                dv_j.iter_mut().zip(dz_i).for_each(|(dv, dz)| *dv += p[j] * dz);
            }
            for j in 0..=i {
                let d_score = p[j] * (d_probability[j] - expected) * scale;
                if d_score == 0.0 {
                    continue;
                }
                let k_j = &k[j * kv_width + kvo..j * kv_width + kvo + hd];
                let q_i = &q[i * q_width + qo..i * q_width + qo + hd];
                let dq_i = &mut dq[i * q_width + qo..i * q_width + qo + hd];
                dq_i.iter_mut().zip(k_j).for_each(|(dq, k)| *dq += d_score * k);
                let dk_j = &mut dk[j * kv_width + kvo..j * kv_width + kvo + hd];
                dk_j.iter_mut().zip(q_i).for_each(|(dk, q)| *dk += d_score * q);
            }
        }
    }
    (dq, dk, dv)
}
