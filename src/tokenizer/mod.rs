//! Tokenizers built from a GGUF file's own vocabulary, matching llama.cpp's tokenisation.
//!
//! Two vocabulary kinds are supported, as `tokenizer.ggml.model` names them:
//! - `gpt2`: byte-level BPE from `tokenizer.ggml.tokens` and `tokenizer.ggml.merges`, split first
//!   by the regexes of the llama.cpp pre-tokenizer that `tokenizer.ggml.pre` names;
//! - `llama`: SentencePiece-style BPE whose merge order comes from `tokenizer.ggml.scores`, with
//!   byte fallback to the `<0xXX>` tokens.
//!
//! A `tokenizer.json` supplied by the user replaces the vocabulary while the GGUF's special-token
//! ids and chat template still apply.

mod chat;
mod pretokenize;
mod vocab;

use std::ops::Range;
use std::sync::{Mutex, MutexGuard, PoisonError};

use thiserror::Error;

use crate::gguf::{Gguf, GgufError, Value};

pub use chat::{render as render_chat_template, ChatMessage};
pub use pretokenize::SUPPORTED_PRE_TOKENIZERS;

#[derive(Debug, Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("the GGUF has no tokenizer: key {0:?} is missing")]
    MissingKey(&'static str),
    #[error("tokenizer model {found:?} is not supported; glassbox reads {supported:?}")]
    UnsupportedModel { found: String, supported: &'static [&'static str] },
    #[error("pre-tokenizer {found:?} is not supported; glassbox reads {supported:?}")]
    UnsupportedPreTokenizer { found: String, supported: &'static [&'static str] },
    #[error("{key} has {found} entries but the vocabulary has {expected}")]
    LengthMismatch { key: &'static str, found: usize, expected: usize },
    #[error("merge {index} ({merge:?}) is not two tokens separated by one space")]
    BadMerge { index: usize, merge: String },
    #[error("special token id {id} ({what}) is outside the {vocab_size}-token vocabulary")]
    BadSpecialToken { what: &'static str, id: u64, vocab_size: usize },
    #[error("building the tokenizer failed: {0}")]
    Build(String),
    #[error("tokenising failed: {0}")]
    Encode(String),
    #[error("token id {id} is outside the {vocab_size}-token vocabulary")]
    UnknownId { id: u32, vocab_size: usize },
    #[error("{text:?} is {count} tokens; name a single token")]
    NotOneToken { text: String, count: usize },
    #[error("this model has no chat template (tokenizer.chat_template)")]
    NoChatTemplate,
    #[error("the text is {bytes} bytes; glassbox tokenises at most {max}")]
    TextTooLong { bytes: usize, max: usize },
    #[error("the chat template failed: {0}")]
    Template(String),
}

pub type Result<T, E = TokenizerError> = std::result::Result<T, E>;

/// The longest text glassbox tokenises: about 250k tokens, past the context of every model it
/// runs, and a bound on the tokenizer's working memory (a few hundred bytes per input byte).
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// A `tokenizer.json` read by the `tokenizers` crate, after the checks that keep its parser from
/// panicking on hostile input: it `expect`s the decoder to be well-formed JSON and a
/// `Precompiled` normalizer to be complete (found by fuzz/fuzz_targets/tokenizer_json.rs).
pub fn parse_tokenizer_json(json: &[u8]) -> Result<tokenizers::Tokenizer> {
    let build_error = |e: &dyn std::fmt::Display| TokenizerError::Build(e.to_string());
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| build_error(&format!("tokenizer.json is not JSON: {e}")))?;
    if let Some(normalizer) = value.get("normalizer") {
        check_precompiled_normalizers(normalizer).map_err(|e| build_error(&e))?;
    }
    tokenizers::Tokenizer::from_bytes(json).map_err(|e| build_error(&e))
}

/// Each `Precompiled` normalizer in `normalizer` (itself or inside a `Sequence`), read on its own.
fn check_precompiled_normalizers(normalizer: &serde_json::Value) -> std::result::Result<(), String> {
    if normalizer.get("type").and_then(serde_json::Value::as_str) == Some("Precompiled") {
        serde_json::from_value::<tokenizers::normalizers::Precompiled>(normalizer.clone())
            .map_err(|e| format!("the Precompiled normalizer is incomplete: {e}"))?;
    }
    for inner in normalizer.get("normalizers").and_then(serde_json::Value::as_array).into_iter().flatten() {
        check_precompiled_normalizers(inner)?;
    }
    Ok(())
}

/// Refuses text past [`MAX_TEXT_BYTES`] before the tokenizer sees it.
pub fn check_text_length(text: &str) -> Result<()> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(TokenizerError::TextTooLong { bytes: text.len(), max: MAX_TEXT_BYTES });
    }
    Ok(())
}

/// A model's tokenizer with the special tokens and chat template from its GGUF.
pub struct Tokenizer {
    /// Locked rather than cloned per call: whether the text's special tokens are parsed is a flag
    /// inside it, and a copy of a 262k-token vocabulary (Gemma 3) is about 150 MB.
    inner: Mutex<tokenizers::Tokenizer>,
    vocab_size: usize,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    chat_template: Option<String>,
}

fn optional_id(gguf: &Gguf, key: &'static str, vocab_size: usize) -> Result<Option<u32>> {
    match gguf.get(key).and_then(Value::as_u64) {
        None => Ok(None),
        Some(id) if (id as usize) < vocab_size => Ok(Some(id as u32)),
        Some(id) => Err(TokenizerError::BadSpecialToken { what: key, id, vocab_size }),
    }
}

impl Tokenizer {
    /// Builds the tokenizer described by the GGUF's `tokenizer.*` keys.
    pub fn from_gguf(gguf: &Gguf) -> Result<Self> {
        let inner = vocab::build(gguf)?;
        Self::with_inner(inner, gguf)
    }

    /// Uses a `tokenizer.json` for the vocabulary; special ids and the template still come from
    /// the GGUF.
    pub fn from_tokenizer_json(json: &[u8], gguf: &Gguf) -> Result<Self> {
        let mut inner = parse_tokenizer_json(json)?;
        // Padding and truncation in a tokenizer.json are training settings: here they would add
        // ids the text does not have, or silently drop ones it does.
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| TokenizerError::Build(e.to_string()))?;
        Self::with_inner(inner, gguf)
    }

    fn with_inner(inner: tokenizers::Tokenizer, gguf: &Gguf) -> Result<Self> {
        let vocab_size = inner.get_vocab_size(true);
        let model = gguf.get("tokenizer.ggml.model").and_then(Value::as_str);
        // llama.cpp's defaults when the key is absent: SentencePiece vocabularies add BOS.
        let add_bos = match gguf.get("tokenizer.ggml.add_bos_token") {
            Some(Value::Bool(b)) => *b,
            _ => model == Some("llama"),
        };
        Ok(Tokenizer {
            bos: optional_id(gguf, "tokenizer.ggml.bos_token_id", vocab_size)?,
            eos: optional_id(gguf, "tokenizer.ggml.eos_token_id", vocab_size)?,
            add_bos,
            chat_template: gguf.get("tokenizer.chat_template").and_then(Value::as_str).map(str::to_string),
            vocab_size,
            inner: Mutex::new(inner),
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// Token ids for `text`, as llama.cpp's `llama_tokenize` gives them.
    ///
    /// `add_special` prepends BOS where the model asks for it; `parse_special` lets control
    /// tokens written in the text (`<|im_start|>`) become their ids instead of plain text.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        check_text_length(text)?;
        let encoding =
            self.encoder(parse_special).encode_fast(text, false).map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(self.bos_for(add_special).into_iter().chain(encoding.get_ids().iter().copied()).collect())
    }

    /// The id of `text` when it is exactly one token (special tokens recognised).
    pub fn single_token(&self, text: &str) -> Result<u32> {
        match self.encode(text, false, true)?[..] {
            [id] => Ok(id),
            ref ids => Err(TokenizerError::NotOneToken { text: text.to_string(), count: ids.len() }),
        }
    }

    /// [`Tokenizer::encode`], with each token's byte range in `text` (BOS gets `0..0`).
    pub fn encode_with_offsets(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<(Vec<u32>, Vec<Range<usize>>)> {
        check_text_length(text)?;
        // `encode` (unlike `encode_fast`) tracks offsets, in bytes.
        let encoding =
            self.encoder(parse_special).encode(text, false).map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let bos = self.bos_for(add_special);
        let ids = bos.into_iter().chain(encoding.get_ids().iter().copied()).collect();
        let offsets = bos
            .map(|_| 0..0)
            .into_iter()
            .chain(encoding.get_offsets().iter().map(|&(start, end)| start..end))
            .collect();
        Ok((ids, offsets))
    }

    /// The tokenizer, set to parse the text's special tokens or not.
    fn encoder(&self, parse_special: bool) -> MutexGuard<'_, tokenizers::Tokenizer> {
        let mut tokenizer = self.tokenizer();
        tokenizer.set_encode_special_tokens(!parse_special);
        tokenizer
    }

    fn tokenizer(&self) -> MutexGuard<'_, tokenizers::Tokenizer> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bos_for(&self, add_special: bool) -> Option<u32> {
        if add_special && self.add_bos {
            self.bos
        } else {
            None
        }
    }

    /// The text of `ids`, special tokens included.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.check_ids(ids)?;
        self.tokenizer().decode(ids, false).map_err(|e| TokenizerError::Encode(e.to_string()))
    }

    /// Each token's own piece of text, as the vocabulary spells it after decoding bytes.
    pub fn token_texts(&self, ids: &[u32]) -> Result<Vec<String>> {
        self.check_ids(ids)?;
        ids.iter()
            .map(|&id| self.tokenizer().decode(&[id], false).map_err(|e| TokenizerError::Encode(e.to_string())))
            .collect()
    }

    fn check_ids(&self, ids: &[u32]) -> Result<()> {
        match ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            Some(&id) => Err(TokenizerError::UnknownId { id, vocab_size: self.vocab_size }),
            None => Ok(()),
        }
    }

    /// Renders the model's chat template over `messages`.
    pub fn apply_chat_template(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let template = self.chat_template.as_deref().ok_or(TokenizerError::NoChatTemplate)?;
        let token = |id: Option<u32>| id.and_then(|id| self.tokenizer().id_to_token(id)).unwrap_or_default();
        chat::render(template, messages, add_generation_prompt, &token(self.bos), &token(self.eos))
    }
}
