//! A model with its tokenizer, on whichever backend it was loaded onto: the one switch the CLI
//! and the browser share. Code generic over [`Backend`] runs on it through [`crate::with_model!`].

use super::{Model, ModelError};
use crate::backend::candle::CandleBackend;
#[cfg(feature = "webgpu")]
use crate::backend::webgpu::WebGpuBackend;
use crate::backend::Backend;
use crate::tokenizer::Tokenizer;

/// A model and the tokenizer its GGUF file defines.
pub struct Loaded<B: Backend> {
    pub model: Model<B>,
    pub tokenizer: Tokenizer,
}

/// One of the most likely next tokens: its id, its text and its log-probability.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TopToken {
    pub id: u32,
    pub token: String,
    pub logprob: f32,
}

impl<B: Backend> Loaded<B> {
    /// The `k` most likely next tokens after `ids` with `interventions`, each token's text
    /// decoded on its own.
    pub fn top_tokens(
        &self,
        ids: &[u32],
        interventions: &[crate::hooks::Intervention],
        k: usize,
    ) -> Result<Vec<TopToken>, ModelError> {
        let model = &self.model;
        let top = model.next_token_top_k(ids, &mut model.new_cache(), interventions, k)?;
        top.ids
            .iter()
            .zip(&top.values)
            .map(|(&id, value)| {
                Ok(TopToken { id, token: self.tokenizer.decode(&[id])?, logprob: value - top.log_sum_exp })
            })
            .collect()
    }

    /// The pair, if every token the tokenizer can produce has a row of logits: a larger
    /// vocabulary would index past the output layer wherever a token's logit is read.
    pub fn new(model: Model<B>, tokenizer: Tokenizer) -> Result<Self, ModelError> {
        let vocab_size = model.config().vocab_size;
        if tokenizer.vocab_size() > vocab_size {
            return Err(ModelError::TokenizerLargerThanModel { tokens: tokenizer.vocab_size(), vocab_size });
        }
        Ok(Loaded { model, tokenizer })
    }
}

/// A [`Loaded`] model on candle (CPU, or CUDA with the `cuda` feature) or on the wgpu device.
pub enum AnyLoaded {
    Candle(Box<Loaded<CandleBackend>>),
    #[cfg(feature = "webgpu")]
    WebGpu(Box<Loaded<WebGpuBackend>>),
}

impl AnyLoaded {
    pub fn tokenizer(&self) -> &Tokenizer {
        crate::with_model!(self, loaded => &loaded.tokenizer)
    }

    pub fn config(&self) -> &super::Config {
        crate::with_model!(self, loaded => loaded.model.config())
    }
}

impl From<Loaded<CandleBackend>> for AnyLoaded {
    fn from(loaded: Loaded<CandleBackend>) -> Self {
        AnyLoaded::Candle(Box::new(loaded))
    }
}

#[cfg(feature = "webgpu")]
impl From<Loaded<WebGpuBackend>> for AnyLoaded {
    fn from(loaded: Loaded<WebGpuBackend>) -> Self {
        AnyLoaded::WebGpu(Box::new(loaded))
    }
}

/// Runs `$body` with `$loaded` bound to the [`Loaded`] inside an [`AnyLoaded`] (or a reference
/// to one), once per backend type, so generic code needs no dynamic dispatch. The `webgpu` arm
/// is compiled where this crate's `webgpu` feature is on (the CLI and the wasm build share it).
#[macro_export]
macro_rules! with_model {
    ($any:expr, $loaded:ident => $body:expr) => {
        match $any {
            $crate::model::AnyLoaded::Candle($loaded) => $body,
            #[cfg(feature = "webgpu")]
            $crate::model::AnyLoaded::WebGpu($loaded) => $body,
        }
    };
}
