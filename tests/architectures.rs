//! Each supported architecture on a tiny random-weight model written by the `gguf` package,
//! against a NumPy forward pass of the same file (scripts/make_fixtures.py): Qwen2's qkv biases
//! and NeoX rope with an untied output, llama3's rope frequency factors with tied embeddings and
//! Q8_0 weights, Mistral with 4:1 GQA and F16 weights, Qwen3's per-head query/key norms, and
//! Gemma 3 (embedding scale, query/key norms, heads wider than d/H, post-norms, GeGLU, sliding-
//! window layers with their own rope base), and Phi-3's fused qkv and gate-up matrices and its
//! long-context rope factors.

use glassbox::backend::candle::CandleBackend;
use glassbox::gguf::GgufFile;
use glassbox::hooks::{HookRequest, Positions};
use glassbox::model::{Config, Model};

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Max |Δlogit| over every position. Float weights multiply in f32 against float64, so they
/// agree closely; Q8_0 matmuls also round their activations to 8 bits (measured: see output).
fn max_logit_error(name: &str) -> f32 {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("tiny-logits.json")).unwrap()).unwrap();
    let ids: Vec<u32> = reference["ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect();
    let expected: Vec<f32> = reference["logits"][name]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
        .collect();
    let file = GgufFile::open(fixture(&format!("{name}.gguf"))).unwrap();
    let model = Model::load(CandleBackend::cpu(), Config::from_gguf(&file.header).unwrap(), &file).unwrap();
    let mut cache = model.new_cache();
    let logits = model.forward(&ids, &mut cache, &HookRequest::new(), &[], &Positions::All).unwrap().logits;
    assert_eq!(logits.shape, vec![ids.len(), 128]);
    let error = logits.data.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    println!("{name}: max |Δlogit| = {error:.2e}");
    error
}

#[test]
fn qwen2_with_biases_and_neox_rope() {
    assert!(max_logit_error("qwen2-tiny-f32") < 1e-3);
}

/// Q8_0 matmuls quantise their activations to 8 bits; on these logits (max |l| 57, std 8.7) that
/// measured 0.35 on 2026-11-26. The same model written in F32 agrees to 1e-5, so the rope
/// frequency factors themselves are exact.
#[test]
fn llama3_with_rope_frequency_factors_and_q8_0() {
    assert!(max_logit_error("llama3-tiny-q8_0") < 0.5);
}

#[test]
fn mistral_with_grouped_query_attention_in_f16() {
    assert!(max_logit_error("mistral-tiny-f16") < 1e-3);
}

#[test]
fn qwen3_with_query_and_key_norms() {
    assert!(max_logit_error("qwen3-tiny-f32") < 1e-3);
}

/// Nine positions over a window of three: the local layers' masks and rope base decide most of
/// the logits, so a window or base off by one shows at once.
#[test]
fn gemma3_with_post_norms_geglu_and_sliding_windows() {
    assert!(max_logit_error("gemma3-tiny-f32") < 1e-3);
}

#[test]
fn an_unknown_architecture_is_named_with_the_known_ones() {
    let mut header = GgufFile::open(fixture("qwen3-tiny-f32.gguf")).unwrap().header;
    header.metadata.insert("general.architecture".into(), glassbox::gguf::Value::String("phi2".into()));
    let error = Config::from_gguf(&header).unwrap_err().to_string();
    for name in ["phi2", "llama", "qwen3", "gemma3", "phi3"] {
        assert!(error.contains(name), "{error}");
    }
}

#[test]
fn phi3_with_fused_qkv_and_gate_up() {
    assert!(max_logit_error("phi3-tiny-f16") < 1e-3);
}

/// Phi-3's 128k-context files (LongRoPE): within the original context the short factors rotate,
/// with cos and sin scaled by the file's attention factor, as the NumPy reference does; a
/// sequence past it, where the long factors would apply, is refused before any work.
#[test]
fn phi3_long_context_files_rotate_with_the_short_factors_within_the_original_context() {
    assert!(max_logit_error("phi3-longrope-tiny-f16") < 1e-3);
    let file = GgufFile::open(fixture("phi3-longrope-tiny-f16.gguf")).unwrap();
    let config = Config::from_gguf(&file.header).unwrap();
    assert_eq!(config.original_context_length, Some(16));
    let model = Model::load(CandleBackend::cpu(), config, &file).unwrap();
    let error = model
        .forward(&[1; 17], &mut model.new_cache(), &HookRequest::new(), &[], &Positions::Last)
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("17 positions") && error.contains("LongRoPE"), "{error}");
}
