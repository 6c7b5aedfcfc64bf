//! The vision tower against an independent reference: a tiny llava-1.5-style mmproj written by
//! the PyPI `gguf` package and its embeddings from a float64 NumPy forward pass
//! (tests/reference/numpy_clip.py).

mod common;

use glassbox::gguf::GgufFile;
use glassbox::vision::clip::{ClipConfig, ClipTower, VisionError};

fn fixture() -> GgufFile {
    GgufFile::open(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mmproj-tiny.gguf")).unwrap()
}

#[test]
fn the_tower_matches_numpy_on_a_gguf_package_mmproj() {
    let file = fixture();
    let config = ClipConfig::from_gguf(&file.header).unwrap();
    assert_eq!((config.image_size, config.patch_size, config.width, config.ffn_width, config.heads, config.layers), (28, 14, 32, 64, 4, 3));
    assert_eq!(config.mean, [0.48145466, 0.4578275, 0.40821073]);
    let tower = ClipTower::load(config, &file, 48).unwrap();
    let pixels: Vec<f32> = (0..3 * 28 * 28).map(|i| ((i as f64 * 0.37).sin() * 1.5) as f32).collect();
    let ours = tower.embed(&pixels).unwrap();
    let reference = common::reference("clip-numpy.json");
    let theirs: Vec<f32> = reference["embeddings"].as_array().unwrap().iter().flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32)).collect();
    assert_eq!(ours.len(), 4 * 48);
    let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let scale = theirs.iter().map(|v| v.abs()).fold(0f32, f32::max);
    assert!(worst < 1e-4 * scale.max(1.0), "largest difference {worst} (values up to {scale})");
    assert!(matches!(tower.embed(&pixels[1..]), Err(VisionError::BadPixels { .. })));
}

#[test]
fn a_wrong_projection_width_or_projector_is_refused() {
    let file = fixture();
    let config = ClipConfig::from_gguf(&file.header).unwrap();
    assert!(matches!(ClipTower::load(config, &file, 64), Err(VisionError::BadShape { ref name, .. }) if name == "mm.2.weight"));
    let mut header = file.header.clone();
    header.metadata.insert("clip.projector_type".into(), glassbox::gguf::Value::String("resampler".into()));
    assert!(matches!(ClipConfig::from_gguf(&header), Err(VisionError::UnsupportedProjector(_))));
    header.metadata.remove("clip.vision.patch_size");
    header.metadata.insert("clip.projector_type".into(), glassbox::gguf::Value::String("mlp".into()));
    assert!(matches!(ClipConfig::from_gguf(&header), Err(VisionError::MissingKey("clip.vision.patch_size"))));
}
