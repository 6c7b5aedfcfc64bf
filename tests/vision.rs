//! The vision tower against an independent reference: a tiny llava-1.5-style mmproj written by
//! the PyPI `gguf` package and its embeddings from a float64 NumPy forward pass
//! (tests/reference/numpy_clip.py).

use crate::common;

use glassbox::gguf::GgufFile;
use glassbox::vision::clip::{ClipConfig, ClipTower, VisionError};

fn fixture() -> GgufFile {
    GgufFile::open(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mmproj-tiny.gguf")).unwrap()
}

#[test]
fn the_tower_matches_numpy_on_a_gguf_package_mmproj() {
    let file = fixture();
    let config = ClipConfig::from_gguf(&file.header).unwrap();
    assert_eq!(
        (config.image_size, config.patch_size, config.width, config.ffn_width, config.heads, config.layers),
        (28, 14, 32, 64, 4, 3)
    );
    assert_eq!(config.mean, [0.48145466, 0.4578275, 0.40821073]);
    let tower = ClipTower::load(config, &file, 48).unwrap();
    let pixels: Vec<f32> = (0..3 * 28 * 28).map(|i| ((i as f64 * 0.37).sin() * 1.5) as f32).collect();
    let ours = tower.embed(&pixels).unwrap();
    let reference = common::reference("clip-numpy.json");
    let theirs: Vec<f32> = reference["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
        .collect();
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
    assert!(
        matches!(ClipTower::load(config, &file, 64), Err(VisionError::BadShape { ref name, .. }) if name == "mm.2.weight")
    );
    let mut header = file.header.clone();
    header.metadata.insert("clip.projector_type".into(), glassbox::gguf::Value::String("resampler".into()));
    assert!(matches!(ClipConfig::from_gguf(&header), Err(VisionError::UnsupportedProjector(_))));
    header.metadata.remove("clip.vision.patch_size");
    header.metadata.insert("clip.projector_type".into(), glassbox::gguf::Value::String("mlp".into()));
    assert!(matches!(ClipConfig::from_gguf(&header), Err(VisionError::MissingKey("clip.vision.patch_size"))));
}

#[test]
fn a_projector_bias_without_dimensions_is_refused() {
    let mut file = fixture();
    let config = ClipConfig::from_gguf(&file.header).unwrap();
    file.header.tensors.iter_mut().find(|t| t.name == "mm.0.bias").unwrap().shape.clear();
    assert!(matches!(ClipTower::load(config, &file, 48), Err(VisionError::BadValue { key: "mm.0.bias", .. })));
}

#[test]
fn an_image_size_past_the_cap_is_refused_before_any_pixel_is_made() {
    let mut header = fixture().header;
    header.metadata.insert("clip.vision.image_size".into(), glassbox::gguf::Value::U32(65536));
    assert!(matches!(ClipConfig::from_gguf(&header), Err(VisionError::BadValue { key: "clip.vision.image_size", .. })));
}

mod llava {
    use super::*;
    use glassbox::backend::candle::CandleBackend;
    use glassbox::hooks::{HookPoint, HookRequest, Positions};
    use glassbox::interp::lens::Unembedding;
    use glassbox::model::Model;
    use glassbox::tokenizer::Tokenizer;
    use glassbox::vision::llava::{
        attention_heatmap, lpi_heatmap, next_token_logprobs, occlusion_heatmap, ImagePrompt, LlavaError,
    };

    const PROMPT: &str = "USER: <image>\nWhat is the color of the circle?\nASSISTANT: The color of the circle is";

    struct Setup {
        model: Model<CandleBackend>,
        tokenizer: Tokenizer,
        tower: ClipTower,
    }

    fn setup() -> Setup {
        let glassbox::model::Loaded { model, tokenizer } = common::load_smollm2();
        let mmproj =
            GgufFile::open(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mmproj-tiny-576.gguf")).unwrap();
        let tower = ClipTower::load(ClipConfig::from_gguf(&mmproj.header).unwrap(), &mmproj, 576).unwrap();
        Setup { model, tokenizer, tower }
    }

    fn pixels() -> Vec<f32> {
        (0..3 * 28 * 28).map(|i| ((i as f32) * 0.11).cos()).collect()
    }

    #[test]
    fn the_image_replaces_its_placeholders_before_layer_zero() {
        let s = setup();
        let prompt = ImagePrompt::new(&s.tower, &s.model, &s.tokenizer, PROMPT, &pixels()).unwrap();
        let before = s.tokenizer.encode("USER: ", true, false).unwrap();
        let after = s
            .tokenizer
            .encode("\nWhat is the color of the circle?\nASSISTANT: The color of the circle is", false, false)
            .unwrap();
        assert_eq!(prompt.image, before.len()..before.len() + 4);
        assert_eq!(prompt.ids.len(), before.len() + 4 + after.len());
        assert_eq!(&prompt.ids[..before.len()], &before[..]);
        let hooks = HookRequest::new().with(HookPoint::ResidPre(0), Positions::All);
        let run = s
            .model
            .forward(&prompt.ids, &mut s.model.new_cache(), &hooks, &prompt.interventions(), &Positions::Last)
            .unwrap();
        let resid = run.recording.get(HookPoint::ResidPre(0)).unwrap();
        for (i, t) in prompt.image.clone().enumerate() {
            assert_eq!(resid.row(t), &prompt.embeddings[i * 576..(i + 1) * 576]);
        }
        assert!(matches!(
            ImagePrompt::new(&s.tower, &s.model, &s.tokenizer, "no image", &pixels()),
            Err(LlavaError::Placeholders(0))
        ));
        assert!(matches!(
            ImagePrompt::new(&s.tower, &s.model, &s.tokenizer, "<image><image>", &pixels()),
            Err(LlavaError::Placeholders(2))
        ));
        let narrow = fixture();
        let narrow_tower = ClipTower::load(ClipConfig::from_gguf(&narrow.header).unwrap(), &narrow, 48).unwrap();
        assert!(matches!(
            ImagePrompt::new(&narrow_tower, &s.model, &s.tokenizer, PROMPT, &pixels()),
            Err(LlavaError::Width { found: 48, expected: 576 })
        ));
    }

    #[test]
    fn heatmaps_are_normalised_and_occlusion_is_its_definition() {
        let s = setup();
        let prompt = ImagePrompt::new(&s.tower, &s.model, &s.tokenizer, PROMPT, &pixels()).unwrap();
        let logprobs = next_token_logprobs(&s.model, &prompt).unwrap();
        let answer = (0..logprobs.len()).max_by(|&a, &b| logprobs[a].total_cmp(&logprobs[b])).unwrap() as u32;
        let unembedding = Unembedding::new(&s.model).unwrap();
        let maps = [
            lpi_heatmap(&unembedding, &prompt, answer, 1).unwrap(),
            lpi_heatmap(&unembedding, &prompt, answer, 3).unwrap(),
            attention_heatmap(&s.model, &prompt).unwrap(),
            occlusion_heatmap(&s.model, &prompt, answer).unwrap(),
        ];
        for map in &maps {
            assert_eq!((map.grid, map.cells.len()), (2, 4));
            assert!((map.cells.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{map:?}");
            assert!(map.cells.iter().all(|&c| c >= 0.0));
        }
        assert_eq!(maps[0].heads.len(), 1);
        assert_eq!(maps[1].heads[0].layer, maps[0].heads[0].layer);
        // Attention to the image is part of a distribution that sums to 1 over the prompt.
        assert!(maps[2].raw.iter().sum::<f32>() <= 1.0 + 1e-5);
        // Occlusion of patch 2 is the drop in p(answer) when its embedding is the patches' mean.
        let mut occluded = prompt.clone();
        let mean: Vec<f32> =
            (0..576).map(|j| (0..4).map(|i| prompt.embeddings[i * 576 + j]).sum::<f32>() / 4.0).collect();
        occluded.embeddings[2 * 576..3 * 576].copy_from_slice(&mean);
        let drop =
            logprobs[answer as usize].exp() - next_token_logprobs(&s.model, &occluded).unwrap()[answer as usize].exp();
        assert!((maps[3].raw[2] - drop).abs() < 1e-6, "{} vs {drop}", maps[3].raw[2]);
    }
}

mod cli {
    use super::common;
    use std::process::Command;

    const PROMPT: &str = "USER: <image>\nWhat is the color of the circle?\nASSISTANT: The color of the circle is";

    fn glassbox(args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_glassbox")).args(args).output().unwrap()
    }

    #[test]
    fn heatmap_writes_its_grid_and_overlay_and_a_corrupt_image_is_refused() {
        let mmproj = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mmproj-tiny-576.gguf");
        let image = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/preprocess-input.png");
        let model = common::model_path(common::SMOLLM2);
        let png = std::env::temp_dir().join(format!("glassbox-heatmap-{}.png", std::process::id()));
        let out = glassbox(&[
            "--backend",
            "cpu",
            "heatmap",
            mmproj,
            model.to_str().unwrap(),
            "--image",
            image,
            "--prompt",
            PROMPT,
            "--method",
            "attention",
            "--png",
            png.to_str().unwrap(),
            "--json",
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["heatmap"]["method"], "attention");
        assert_eq!(report["heatmap"]["grid"], 2);
        let cells: Vec<f64> =
            report["heatmap"]["cells"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert!((cells.iter().sum::<f64>() - 1.0).abs() < 1e-5);
        assert!(report["target"]["prob"].as_f64().unwrap() > 0.0);
        let overlay = image::open(&png).unwrap();
        assert_eq!((overlay.width(), overlay.height()), (28, 28));
        std::fs::remove_file(&png).unwrap();

        let corrupt = std::env::temp_dir().join(format!("glassbox-corrupt-{}.png", std::process::id()));
        std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\n truncated").unwrap();
        let out = glassbox(&[
            "--backend",
            "cpu",
            "vqa",
            mmproj,
            model.to_str().unwrap(),
            "--image",
            corrupt.to_str().unwrap(),
            "--prompt",
            PROMPT,
        ]);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("is not a PNG or JPEG glassbox can decode"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_file(&corrupt).unwrap();
    }
}

/// The project's own LLaVA-architecture model, trained on the shapes task by
/// `glassbox train-vqa-fixture` (`make fixtures`); its trainer and experiment are `lab` code.
#[cfg(feature = "lab")]
mod trained_fixture {
    use super::common;
    use glassbox::backend::candle::CandleBackend;
    use glassbox::gguf::{GgufFile, Value};
    use glassbox::interp::lens::Unembedding;
    use glassbox::lab::train_fixture::{train, FixtureShape, Schedule};
    use glassbox::lab::vqa_heatmap::vqa_heatmap_experiment;
    use glassbox::model::{Config, Model};
    use glassbox::tokenizer::Tokenizer;
    use glassbox::vision::clip::{ClipConfig, ClipTower};

    pub const MMPROJ: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/shapes-llava-mmproj.gguf");
    pub const LM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/shapes-llava-lm.gguf");

    /// What the `gguf` package read (tests/reference/gguf_llava_fixture.py) is what glassbox
    /// reads: the same keys with the same types and values, the same tensors with the same types,
    /// shapes and bytes, and every tensor name one of the package's own constants.
    #[test]
    fn both_files_read_back_through_the_gguf_package_as_glassbox_wrote_them() {
        let reference = common::reference("shapes-llava-gguf.json");
        for (path, key) in [(MMPROJ, "mmproj"), (LM, "lm")] {
            let file = GgufFile::open(path).unwrap();
            let expected = &reference[key];
            let tensors = expected["tensors"].as_array().unwrap();
            assert_eq!(file.header.tensors.len(), tensors.len(), "{key}");
            for (ours, theirs) in file.header.tensors.iter().zip(tensors) {
                assert_eq!(ours.name, theirs["name"].as_str().unwrap());
                assert_eq!(
                    ours.ggml_type.to_string().to_uppercase(),
                    theirs["type"].as_str().unwrap(),
                    "{}",
                    ours.name
                );
                let shape: Vec<u64> = theirs["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
                assert_eq!(ours.shape, shape, "{}", ours.name);
                let bytes = file.read_tensor(ours).unwrap();
                assert_eq!(
                    bytes.iter().map(|&b| b as u64).sum::<u64>(),
                    theirs["byte_sum"].as_u64().unwrap(),
                    "{}",
                    ours.name
                );
                assert!(theirs["known_name"].as_bool().unwrap(), "{} is not a gguf-package tensor name", ours.name);
            }
            let metadata = expected["metadata"].as_object().unwrap();
            assert_eq!(file.header.metadata.len(), metadata.len(), "{key}");
            for (name, theirs) in metadata {
                let ours = file.header.get(name).unwrap_or_else(|| panic!("{key}: {name} is missing"));
                let value = &theirs["value"];
                match ours {
                    Value::String(s) => assert_eq!(s, value.as_str().unwrap(), "{name}"),
                    Value::Bool(b) => assert_eq!(*b, value.as_bool().unwrap(), "{name}"),
                    Value::F32(f) => assert_eq!(*f as f64, value.as_f64().unwrap(), "{name}"),
                    Value::Array(array) => match value.get("len") {
                        Some(len) => assert_eq!(array.len() as u64, len.as_u64().unwrap(), "{name}"),
                        None => assert_eq!(array.len(), value.as_array().unwrap().len(), "{name}"),
                    },
                    other => assert_eq!(other.as_u64(), value.as_u64(), "{name}"),
                }
            }
        }
        // The stored tower has one block more than was trained, an identity for clip.cpp (which
        // runs one fewer), and glassbox's reader takes the shape from the keys.
        let mmproj = GgufFile::open(MMPROJ).unwrap();
        let config = ClipConfig::from_gguf(&mmproj.header).unwrap();
        let trained = FixtureShape::default();
        assert_eq!(
            (config.image_size, config.patch_size, config.layers),
            (trained.image_size, trained.patch_size, trained.vit_layers + 1)
        );
    }

    /// What the fixture must do on fresh scenes (stream 2; it trained on stream 1): answers
    /// right at least 95% of the time, the seed's LPI heatmap's top cell on the asked-about
    /// shape for at least 90% of images, and a lower deletion AUC than attention-mean's.
    #[test]
    fn the_fixture_answers_and_its_lpi_heatmap_points_at_the_shape() {
        let mmproj = GgufFile::open(MMPROJ).unwrap();
        let lm = GgufFile::open(LM).unwrap();
        let model = Model::load(CandleBackend::cpu(), Config::from_gguf(&lm.header).unwrap(), &lm).unwrap();
        let tokenizer = Tokenizer::from_gguf(&lm.header).unwrap();
        let config = ClipConfig::from_gguf(&mmproj.header).unwrap();
        let preprocess = config.preprocess(false);
        let tower = ClipTower::load(config, &mmproj, model.config().width).unwrap();
        let unembedding = Unembedding::new(&model).unwrap();
        let report = vqa_heatmap_experiment(&tower, &unembedding, &tokenizer, &preprocess, 2, 60, |_| {}).unwrap();
        println!("{}", serde_json::to_string(&report).unwrap());
        assert!(report.accuracy >= 0.95, "{report:?}");
        assert!(report.pointing.lpi >= 0.9, "{report:?}");
        // Removing patches in the LPI map's order loses the answer sooner than in the
        // attention-mean order.
        assert!(report.deletion_auc.lpi < report.deletion_auc.attention, "{report:?}");
        for auc in [report.deletion_auc.lpi, report.deletion_auc.attention, report.deletion_auc.occlusion] {
            assert!((0.0..=1.0).contains(&auc));
        }
    }

    /// Training is a function of its seed: two short runs write the same bytes.
    #[test]
    fn training_is_seeded() {
        let source = GgufFile::open(common::model_path(common::SMOLLM2)).unwrap();
        let schedule = Schedule { steps: 2, batch: 4, ..Schedule::default() };
        let run = || {
            let trained = train(&FixtureShape::default(), &schedule, &source.header, |_| {}).unwrap();
            let mut bytes = Vec::new();
            for (metadata, tensors) in [&trained.mmproj, &trained.lm] {
                glassbox::gguf::write::write_gguf(&mut bytes, metadata, tensors).unwrap();
            }
            (bytes, trained.log.last().unwrap().loss)
        };
        let (first, loss) = run();
        let (second, again) = run();
        assert!(first == second, "two runs with one seed differ");
        assert_eq!(loss, again);
    }
}
