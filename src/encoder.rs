//! The f32 layers of the two small encoders glassbox runs on the CPU beside the language model:
//! CLIP's vision tower (`vision::clip`) and MiniLM's BERT (`tasks::embed`). Both are
//! Hugging Face's layers on candle tensors: affine maps with a bias, LayerNorm, and multi-head
//! self-attention without a mask over every position.

use candle_core::{Result, Tensor, D};

/// An encoder's named tensors, each checked against the shape its config needs, from wherever
/// its file keeps them (a GGUF for CLIP, safetensors for BERT).
pub trait EncoderWeights {
    type Error;

    /// The tensor `name`, which must have `shape`.
    fn tensor(&mut self, name: &str, shape: &[usize]) -> std::result::Result<Tensor, Self::Error>;

    /// `{name}.weight` `[out, input]` and `{name}.bias` `[out]`.
    fn linear(&mut self, name: &str, out: usize, input: usize) -> std::result::Result<Linear, Self::Error> {
        Ok(Linear {
            weight: self.tensor(&format!("{name}.weight"), &[out, input])?,
            bias: self.tensor(&format!("{name}.bias"), &[out])?,
        })
    }

    /// `{name}.weight` and `{name}.bias`, both `[width]`.
    fn norm(&mut self, name: &str, width: usize, eps: f32) -> std::result::Result<LayerNorm, Self::Error> {
        Ok(LayerNorm {
            weight: self.tensor(&format!("{name}.weight"), &[width])?,
            bias: self.tensor(&format!("{name}.bias"), &[width])?,
            eps,
        })
    }
}

/// `y = x Wᵀ + b`, `W` stored `[out, in]` as PyTorch's `nn.Linear` stores it.
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)
    }
}

/// LayerNorm over the last dimension, with its `eps`.
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f32,
}

impl LayerNorm {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// The query, key and value maps of one attention layer, split into `heads` heads.
pub struct SelfAttention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub heads: usize,
}

impl SelfAttention {
    /// `softmax(q kᵀ / √d_head) v` for each head over `x` (`[T, d]`, every position seeing every
    /// other), the heads concatenated back to `[T, d]` (before the output map).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (positions, width) = x.dims2()?;
        let head_dim = width / self.heads;
        let split = |t: Tensor| t.reshape((positions, self.heads, head_dim))?.transpose(0, 1)?.contiguous();
        let (q, k, v) = (split(self.q.forward(x)?)?, split(self.k.forward(x)?)?, split(self.v.forward(x)?)?);
        let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?;
        let weights = candle_nn::ops::softmax(&scores, D::Minus1)?;
        weights.matmul(&v)?.transpose(0, 1)?.contiguous()?.reshape((positions, width))
    }
}
