//! llama.cpp's pre-tokenizers: the regexes that split text before BPE, per `tokenizer.ggml.pre`.
//!
//! llama.cpp applies its list of regexes in turn, each splitting the pieces the previous one left
//! and keeping unmatched stretches as pieces of their own; a sequence of `Split` pre-tokenizers
//! with `Isolated` behaviour does the same. The patterns are llama.cpp's (`llama-vocab.cpp`).

use super::{Result, TokenizerError};

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The `tokenizer.ggml.pre` values glassbox reads.
pub const SUPPORTED_PRE_TOKENIZERS: &[&str] = &[
    "default",
    "gpt2",
    "gpt-2",
    "phi-2",
    "mpt",
    "olmo",
    "jais",
    "smollm",
    "starcoder",
    "refact",
    "command-r",
    "codeshell",
    "exaone",
    "minerva-7b",
    "llama-bpe",
    "llama3",
    "llama-v3",
    "falcon3",
    "qwen2",
    "stablelm2",
    "deepseek-r1-qwen",
];

/// How one pre-tokenizer family splits text.
pub struct PreTokenizer {
    pub regexes: &'static [&'static str],
    /// llama.cpp's `ignore_merges`: a piece that is itself a token is not merged up from bytes.
    pub ignore_merges: bool,
}

pub fn for_name(name: &str) -> Result<PreTokenizer> {
    let (regexes, ignore_merges): (&'static [&'static str], bool) = match name {
        "default" => (&[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"], false),
        "gpt2" | "gpt-2" | "phi-2" | "mpt" | "olmo" | "jais" => (&[GPT2], false),
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            (&[r"\p{N}", GPT2], false)
        }
        "llama-bpe" | "llama3" | "llama-v3" | "falcon3" => (&[LLAMA3], true),
        "qwen2" | "stablelm2" | "deepseek-r1-qwen" => (&[QWEN2], false),
        other => {
            return Err(TokenizerError::UnsupportedPreTokenizer {
                found: other.to_string(),
                supported: SUPPORTED_PRE_TOKENIZERS,
            })
        }
    };
    Ok(PreTokenizer { regexes, ignore_merges })
}
