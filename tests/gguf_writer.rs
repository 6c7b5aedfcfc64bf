//! The GGUF writer: SmolLM2's own metadata and tensors, written and read back, come back
//! unchanged; a synthetic model it writes loads and runs.

use crate::common;

use glassbox::backend::candle::CandleBackend;
use glassbox::gguf::write::{write_gguf, NewTensor};
use glassbox::gguf::{GgmlType, Gguf, GgufFile};
use glassbox::hooks::{HookRequest, Positions};
use glassbox::model::synthetic::{LlamaShape, SyntheticLlama};
use glassbox::model::{Config, Model};

#[test]
fn a_written_copy_of_smollm2_reads_back_unchanged() {
    let file = GgufFile::open(common::model_path(common::SMOLLM2)).unwrap();
    let metadata: Vec<_> = file.header.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    // A few tensors of each type keep the copy small.
    let tensors: Vec<NewTensor> = file
        .header
        .tensors
        .iter()
        .filter(|t| t.name.starts_with("blk.0.") || t.name == "output_norm.weight")
        .map(|t| NewTensor {
            name: t.name.clone(),
            ggml_type: t.ggml_type,
            shape: t.shape.clone(),
            data: file.read_tensor(t).unwrap(),
        })
        .collect();
    let mut bytes = Vec::new();
    write_gguf(&mut bytes, &metadata, &tensors).unwrap();

    let copy = Gguf::parse(&bytes, bytes.len() as u64).unwrap();
    assert_eq!(copy.metadata, file.header.metadata);
    assert_eq!(copy.tensors.len(), tensors.len());
    for (read, written) in copy.tensors.iter().zip(&tensors) {
        assert_eq!((&read.name, read.ggml_type, &read.shape), (&written.name, written.ggml_type, &written.shape));
        let start = read.file_offset as usize;
        assert_eq!(&bytes[start..start + written.data.len()], written.data.as_slice(), "{}", read.name);
        assert_eq!(read.file_offset % copy.alignment, 0);
    }
}

#[test]
fn data_that_does_not_match_its_shape_is_refused() {
    let tensor = NewTensor { name: "t".into(), ggml_type: GgmlType::Q4_0, shape: vec![32, 2], data: vec![0; 35] };
    let mut bytes = Vec::new();
    let error = write_gguf(&mut bytes, &[], &[tensor]).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(bytes.is_empty());
}

#[test]
fn a_synthetic_model_loads_and_gives_finite_logits() {
    let source = GgufFile::open(common::model_path(common::SMOLLM2)).unwrap();
    for weight_type in [GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::F32] {
        let shape = SyntheticLlama {
            shape: LlamaShape { layers: 2, width: 128, ffn_width: 320, heads: 4, kv_heads: 2, context_length: 256 },
            weight_type,
            seed: 7,
        };
        let (metadata, tensors) = shape.build(&source.header).unwrap();
        let mut bytes = Vec::new();
        write_gguf(&mut bytes, &metadata, &tensors).unwrap();
        let path = std::env::temp_dir().join(format!("glassbox-synthetic-{weight_type}.gguf"));
        std::fs::write(&path, &bytes).unwrap();

        let file = GgufFile::open(&path).unwrap();
        let config = Config::from_gguf(&file.header).unwrap();
        assert_eq!((config.layers, config.width, config.ffn_width, config.heads, config.kv_heads), (2, 128, 320, 4, 2));
        assert_eq!(config.vocab_size, 49152);
        let model = Model::load(CandleBackend::cpu(), config, &file).unwrap();
        let forward =
            model.forward(&[1, 2, 3], &mut model.new_cache(), &HookRequest::new(), &[], &Positions::Last).unwrap();
        assert_eq!(forward.logits.data.len(), 49152);
        assert!(forward.logits.data.iter().all(|v| v.is_finite()));
        // Random weights of scale 1/sqrt(in) keep the logits spread, not collapsed or exploded.
        let spread = forward.logits.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(spread > 0.1 && spread < 1e3, "{weight_type}: max |logit| {spread}");
        std::fs::remove_file(&path).unwrap();
    }
}

/// A one-layer synthetic llama with SmolLM2's vocabulary and a context of `context_length`,
/// its metadata changed by `edit`, written to a temporary file called `name`.
fn tiny_model_file(
    name: &str,
    context_length: usize,
    edit: impl FnOnce(&mut glassbox::gguf::write::Metadata),
) -> std::path::PathBuf {
    let source = GgufFile::open(common::model_path(common::SMOLLM2)).unwrap();
    let shape = SyntheticLlama {
        shape: LlamaShape { layers: 1, width: 64, ffn_width: 128, heads: 2, kv_heads: 1, context_length },
        weight_type: GgmlType::Q8_0,
        seed: 3,
    };
    let (mut metadata, tensors) = shape.build(&source.header).unwrap();
    edit(&mut metadata);
    let mut bytes = Vec::new();
    write_gguf(&mut bytes, &metadata, &tensors).unwrap();
    let path = std::env::temp_dir().join(format!("glassbox-{name}-{}.gguf", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    path
}

/// A tokenizer with more tokens than the output layer has rows would index past the logits
/// wherever a token's logit is read (rewards, label scoring): the load refuses the pair.
#[test]
fn a_tokenizer_larger_than_the_output_layer_is_refused_at_load() {
    use glassbox::gguf::{Array, Value};
    use glassbox::model::ModelError;
    let vocab = 49152;
    // Four more tokens in every per-token array of the tokenizer.
    let path = tiny_model_file("tokenizer-larger-than-model", 64, |metadata| {
        for (key, value) in metadata.iter_mut().filter(|(key, _)| key.starts_with("tokenizer.ggml.")) {
            match value {
                Value::Array(Array::String(tokens)) if tokens.len() == vocab && key.ends_with(".tokens") => {
                    tokens.extend((0..4).map(|i| format!("<extra_{i}>")))
                }
                Value::Array(Array::I32(types)) if types.len() == vocab => types.extend([1; 4]),
                Value::Array(Array::F32(scores)) if scores.len() == vocab => scores.extend([0.0; 4]),
                _ => {}
            }
        }
    });
    let loaded = Model::open(&path, CandleBackend::cpu());
    std::fs::remove_file(&path).unwrap();
    assert!(
        matches!(loaded, Err(ModelError::TokenizerLargerThanModel { tokens: 49156, vocab_size: 49152 })),
        "{:?}",
        loaded.err()
    );
}

/// A file may claim any context; a prompt that fits it but whose attention would not fit in
/// memory is a typed error before anything is allocated.
#[test]
fn a_prompt_whose_attention_would_exhaust_memory_is_refused() {
    use glassbox::hooks::HookPoint;
    use glassbox::model::ModelError;
    let path = tiny_model_file("long-context", 65536, |_| {});
    let file = GgufFile::open(&path).unwrap();
    let model = Model::load(CandleBackend::cpu(), Config::from_gguf(&file.header).unwrap(), &file).unwrap();
    std::fs::remove_file(&path).unwrap();
    let hooks = HookRequest::new().with(HookPoint::AttnPattern(0), Positions::All);
    let ids = vec![1u32; 60_000];
    // The recorded pattern alone is 2 heads × 60000² × 4 bytes = 28.8 GB.
    match model.forward(&ids, &mut model.new_cache(), &hooks, &[], &Positions::Last) {
        Err(ModelError::OverMemoryBudget { positions: 60_000, context: 60_000, bytes, budget }) => {
            assert!(bytes > 28_800_000_000 && budget < bytes, "{bytes} over {budget}")
        }
        other => panic!("expected the working-memory budget to refuse the call, got {:?}", other.err()),
    }
}
