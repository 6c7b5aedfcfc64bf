//! Building a `tokenizers::Tokenizer` from GGUF vocabulary keys.

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior};

use super::{pretokenize, Result, TokenizerError};
use crate::gguf::{Array, Gguf, Value};

/// llama.cpp's `llama_token_type`.
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

pub const SUPPORTED_MODELS: &[&str] = &["gpt2", "llama"];

fn strings<'a>(gguf: &'a Gguf, key: &'static str) -> Result<&'a [String]> {
    gguf.get(key).and_then(Value::as_array).and_then(Array::as_strings).ok_or(TokenizerError::MissingKey(key))
}

fn build_error(e: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::Build(e.to_string())
}

pub fn build(gguf: &Gguf) -> Result<tokenizers::Tokenizer> {
    let model = gguf
        .get("tokenizer.ggml.model")
        .and_then(Value::as_str)
        .ok_or(TokenizerError::MissingKey("tokenizer.ggml.model"))?;
    let tokens = strings(gguf, "tokenizer.ggml.tokens")?;
    let token_types = match gguf.get("tokenizer.ggml.token_type").and_then(Value::as_array) {
        Some(Array::I32(types)) if types.len() == tokens.len() => types.clone(),
        Some(other) => {
            return Err(TokenizerError::LengthMismatch {
                key: "tokenizer.ggml.token_type",
                found: other.len(),
                expected: tokens.len(),
            })
        }
        None => vec![1; tokens.len()],
    };
    let mut tokenizer = match model {
        "gpt2" => byte_level_bpe(gguf, tokens)?,
        "llama" => sentencepiece_bpe(gguf, tokens)?,
        other => {
            return Err(TokenizerError::UnsupportedModel { found: other.to_string(), supported: SUPPORTED_MODELS })
        }
    };
    let added = |wanted: i32, special: bool| -> Vec<AddedToken> {
        tokens
            .iter()
            .zip(&token_types)
            .filter(|(_, &t)| t == wanted)
            .map(|(text, _)| AddedToken::from(text.clone(), special).normalized(false))
            .collect()
    };
    tokenizer.add_special_tokens(added(TOKEN_TYPE_CONTROL, true)).map_err(build_error)?;
    tokenizer.add_tokens(added(TOKEN_TYPE_USER_DEFINED, false)).map_err(build_error)?;
    Ok(tokenizer)
}

fn vocabulary(tokens: &[String]) -> Vocab {
    tokens.iter().enumerate().map(|(id, t)| (t.clone(), id as u32)).collect()
}

fn byte_level_bpe(gguf: &Gguf, tokens: &[String]) -> Result<tokenizers::Tokenizer> {
    let merges = strings(gguf, "tokenizer.ggml.merges")?
        .iter()
        .enumerate()
        .map(|(index, merge)| {
            // llama.cpp splits at the first space after the first character.
            let split = merge.char_indices().skip(1).find(|&(_, c)| c == ' ').map(|(i, _)| i);
            match split {
                Some(i) => Ok((merge[..i].to_string(), merge[i + 1..].to_string())),
                None => Err(TokenizerError::BadMerge { index, merge: merge.clone() }),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let pre_name = gguf.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
    let pre = pretokenize::for_name(pre_name)?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocabulary(tokens), merges)
        .ignore_merges(pre.ignore_merges)
        .build()
        .map_err(build_error)?;
    let mut splits: Vec<PreTokenizerWrapper> = pre
        .regexes
        .iter()
        .map(|regex| {
            Split::new(SplitPattern::Regex(regex.to_string()), SplitDelimiterBehavior::Isolated, false)
                .map(PreTokenizerWrapper::from)
                .map_err(build_error)
        })
        .collect::<Result<_>>()?;
    splits.push(ByteLevel::new(false, false, false).into());

    let mut tokenizer = tokenizers::Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(PreTokenizerSequence::new(splits)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    Ok(tokenizer)
}

/// SentencePiece vocabularies store scores instead of merges. Merging the adjacent pair whose
/// concatenation scores highest, as llama.cpp's SPM tokenizer does, is BPE with every
/// `left + right = token` split ranked by that token's score.
fn sentencepiece_bpe(gguf: &Gguf, tokens: &[String]) -> Result<tokenizers::Tokenizer> {
    let scores = match gguf.get("tokenizer.ggml.scores").and_then(Value::as_array) {
        Some(Array::F32(scores)) if scores.len() == tokens.len() => scores,
        Some(other) => {
            return Err(TokenizerError::LengthMismatch {
                key: "tokenizer.ggml.scores",
                found: other.len(),
                expected: tokens.len(),
            })
        }
        None => return Err(TokenizerError::MissingKey("tokenizer.ggml.scores")),
    };
    let ids: std::collections::HashMap<&str, usize> =
        tokens.iter().enumerate().map(|(id, t)| (t.as_str(), id)).collect();
    let mut ranked = Vec::new();
    for (id, token) in tokens.iter().enumerate() {
        for (split, _) in token.char_indices().skip(1) {
            let (left, right) = token.split_at(split);
            if ids.contains_key(left) && ids.contains_key(right) {
                ranked.push((scores[id], id, left.to_string(), right.to_string()));
            }
        }
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let merges = ranked.into_iter().map(|(_, _, l, r)| (l, r)).collect();
    let unk = gguf
        .get("tokenizer.ggml.unknown_token_id")
        .and_then(Value::as_u64)
        .and_then(|id| tokens.get(id as usize))
        .cloned()
        .unwrap_or_else(|| "<unk>".to_string());
    let bpe = BPE::builder()
        .vocab_and_merges(vocabulary(tokens), merges)
        .unk_token(unk)
        .fuse_unk(true)
        .byte_fallback(true)
        .build()
        .map_err(build_error)?;
    let add_space_prefix = !matches!(gguf.get("tokenizer.ggml.add_space_prefix"), Some(Value::Bool(false)));
    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if add_space_prefix {
        normalizers.push(Prepend::new("▁".into()).into());
    }
    normalizers.push(Replace::new(" ", "▁").map_err(build_error)?.into());

    let mut tokenizer = tokenizers::Tokenizer::new(bpe);
    tokenizer.with_normalizer(Some(NormalizerSequence::new(normalizers))).map_err(build_error)?;
    let mut decoders: Vec<DecoderWrapper> =
        vec![Replace::new("▁", " ").map_err(build_error)?.into(), ByteFallback::new().into(), Fuse::new().into()];
    if add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tokenizer)
}
