//! The GGUF writer: SmolLM2's own metadata and tensors, written and read back, come back
//! unchanged; a synthetic model it writes loads and runs.

mod common;

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
