//! The `glassbox` binary, end to end.

use crate::common;

use std::process::Command;

fn glassbox(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_glassbox")).args(args).output().unwrap()
}

#[test]
fn info_json_prints_the_card_the_gguf_package_reads() {
    let model = common::model_path(common::SMOLLM2);
    let out = glassbox(&["info", model.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let card: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(card, common::reference("smollm2-135m-instruct-q4_1.json")["card"]);
}

#[test]
fn info_on_a_non_gguf_file_fails_with_a_clear_message() {
    let not_a_model = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = glassbox(&["info", not_a_model]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("glassbox: not a GGUF file"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn info_on_a_missing_file_names_it() {
    let out = glassbox(&["info", "/nonexistent/model.gguf"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/model.gguf"));
}

#[test]
fn a_tokenizer_json_replaces_the_gguf_vocabulary() {
    let model = common::model_path(common::SMOLLM2);
    let bert = common::model_path("all-MiniLM-L6-v2/tokenizer.json");
    let out = glassbox(&[
        "tokenize",
        model.to_str().unwrap(),
        "Hello world",
        "--tokenizer",
        bert.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // bert-base-uncased's WordPiece ids, which all-MiniLM-L6-v2 shares: "hello" 7592, "world" 2088.
    assert_eq!(parsed["ids"], serde_json::json!([7592, 2088]));
}

#[test]
fn tokenize_json_lists_ids_and_their_text() {
    let model = common::model_path(common::SMOLLM2);
    let out = glassbox(&["tokenize", model.to_str().unwrap(), "<|im_start|>Hello world", "--json"]);
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed["tokens"], serde_json::json!(["<|im_start|>", "Hello", " world"]));
    assert_eq!(parsed["ids"][0], 1, "<|im_start|> is control token 1 in SmolLM2's vocabulary");
}

#[test]
fn attribute_json_keeps_its_contract() {
    let model = common::model_path(common::SMOLLM2);
    let out = glassbox(&[
        "attribute",
        model.to_str().unwrap(),
        "--prompt",
        "3+5=",
        "--exact-neurons",
        "50",
        "--top",
        "20",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let target = &result["target"];
    assert!(target["id"].is_u64() && target["token"].is_string() && target["logprob"].as_f64().unwrap() <= 0.0);
    let scores = |list: &str, index: &str| -> Vec<f64> {
        result[list]
            .as_array()
            .unwrap()
            .iter()
            .inspect(|e| assert!(e["layer"].is_u64() && e[index].is_u64(), "{e}"))
            .map(|e| e["score"].as_f64().unwrap())
            .collect()
    };
    let heads = scores("heads", "head");
    assert_eq!(heads.len(), 30 * 9);
    assert!(heads.windows(2).all(|w| w[0] >= w[1]), "heads are sorted by score");
    let neurons = scores("neurons", "neuron");
    assert_eq!(neurons.len(), 20);
    assert!(neurons.windows(2).all(|w| w[0] >= w[1]), "neurons are sorted by score");

    let out = glassbox(&["attribute", model.to_str().unwrap(), "--prompt", "3+5=", "--target", "3+5", "--json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("name a single token"));
}

/// The metrics module's hand-worked example (src/tasks/metrics.rs) through the CLI's JSONL
/// contract: ids matched across files in any order, numeric ids, a malformed row reported by line
/// and skipped, a gold row without a prediction listed.
#[test]
fn evaluate_scores_predictions_by_id() {
    let dir = std::env::temp_dir().join(format!("glassbox-evaluate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gold = dir.join("gold.jsonl");
    let pred = dir.join("pred.jsonl");
    std::fs::write(
        &gold,
        [
            r#"{"id": "a", "label": "True", "explanation": "The cat is on the mat!"}"#,
            r#"{"id": "b", "label": "True"}"#,
            r#"{"id": "c", "label": "True"}"#,
            r#"{"id": 4, "label": "False"}"#,
            r#"{"id": "e", "label": "False"}"#,
            r#"{"id": "f", "label": "NEI"}"#,
            r#"{"id": "g", "label": "NEI"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    std::fs::write(
        &pred,
        [
            r#"{"id": "f", "label": "True"}"#,
            r#"{"id": "e", "label": "True"}"#,
            r#"{"id": "4", "label": "False"}"#,
            "not json",
            r#"{"id": "c", "label": "False"}"#,
            r#"{"id": "b", "label": "True"}"#,
            r#"{"id": "a", "label": "True", "explanation": "the cat sat on the mat"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let out =
        glassbox(&["evaluate", "--task", "fmd", "--gold", gold.to_str().unwrap(), "--pred", pred.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pred.jsonl:4: not a JSON object"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let close = |key: &str, expected: f64| {
        let got = report[key].as_f64().unwrap();
        assert!((got - expected).abs() < 1e-12, "{key}: {got} vs {expected}");
    };
    assert_eq!(report["count"], 6);
    assert_eq!(report["missing"], serde_json::json!(["g"]));
    close("accuracy", 0.5);
    close("micro_f1", 0.5);
    close("macro_f1", 15.0 / 42.0);
    close("weighted_f1", 19.0 / 42.0);
    assert_eq!(report["labels"], serde_json::json!(["False", "NEI", "True"]));
    assert_eq!(report["confusion"], serde_json::json!([[1, 0, 1], [0, 0, 1], [1, 0, 2]]));
    // One explained pair: ROUGE-1 5/6, ROUGE-2 3/5, ROUGE-L 5/6; FMD = (0.5 + 5/6) / 2.
    assert_eq!(report["explained"], 1);
    assert!((report["rouge"]["rouge1"].as_f64().unwrap() - 5.0 / 6.0).abs() < 1e-12);
    assert!((report["rouge"]["rouge2"].as_f64().unwrap() - 0.6).abs() < 1e-12);
    close("fmd_score", (0.5 + 5.0 / 6.0) / 2.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn evaluate_counts_an_unnamed_label_as_wrong() {
    let dir = std::env::temp_dir().join(format!("glassbox-evaluate-null-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (gold, pred) = (dir.join("gold.jsonl"), dir.join("pred.jsonl"));
    std::fs::write(&gold, "{\"id\": \"a\", \"label\": \"True\"}\n{\"id\": \"b\", \"label\": \"False\"}\n").unwrap();
    std::fs::write(&pred, "{\"id\": \"a\", \"label\": null}\n{\"id\": \"b\", \"label\": \"False\"}\n").unwrap();
    let out =
        glassbox(&["evaluate", "--task", "fmd", "--gold", gold.to_str().unwrap(), "--pred", pred.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Classes (none), False, True: F1 0, 1, 0, so macro-F1 1/3, as scikit-learn averages.
    assert_eq!(report["accuracy"], 0.5);
    assert_eq!(report["labels"], serde_json::json!(["(none)", "False", "True"]));
    assert!((report["macro_f1"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-12);
    // A gold row may not leave its label out.
    std::fs::write(&gold, "{\"id\": \"a\", \"label\": null}\n{\"id\": \"b\", \"label\": \"False\"}\n").unwrap();
    let out =
        glassbox(&["evaluate", "--task", "fmd", "--gold", gold.to_str().unwrap(), "--pred", pred.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("gold.jsonl:1: not a JSON object"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A line with an invalid UTF-8 byte is one reported row; an explanation too long for ROUGE's
/// quadratic LCS is left out of ROUGE with a report; the rest of each file is scored.
#[test]
fn evaluate_reads_past_a_bad_byte_and_an_overlong_explanation() {
    let dir = std::env::temp_dir().join(format!("glassbox-evaluate-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (gold, pred) = (dir.join("gold.jsonl"), dir.join("pred.jsonl"));
    let long = "word ".repeat(80_000);
    std::fs::write(
        &gold,
        format!(
            "{{\"id\": \"a\", \"label\": \"True\", \"explanation\": \"the cat\"}}\n\
             {{\"id\": \"b\", \"label\": \"False\", \"explanation\": \"{long}\"}}\n\
             {{\"id\": \"c\", \"label\": \"False\"}}\n"
        ),
    )
    .unwrap();
    let mut predictions = b"{\"id\": \"a\", \"label\": \"True\", \"explanation\": \"the cat\"}\n".to_vec();
    predictions.extend_from_slice(b"{\"id\": \"c\", \"label\": \"\xff\"}\r\n");
    predictions.extend_from_slice(
        format!("{{\"id\": \"b\", \"label\": \"False\", \"explanation\": \"{long}\"}}\n").as_bytes(),
    );
    std::fs::write(&pred, predictions).unwrap();
    let out =
        glassbox(&["evaluate", "--task", "fmd", "--gold", gold.to_str().unwrap(), "--pred", pred.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("pred.jsonl:2: not UTF-8"), "{stderr}");
    assert!(stderr.contains("gold.jsonl:2: the explanation is 80000 words"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // a and b are scored (both right); c has no readable prediction. Only a's explanation is
    // compared, and it matches: ROUGE-1 = 1.
    assert_eq!((report["count"].as_u64(), report["accuracy"].as_f64()), (Some(2), Some(1.0)));
    assert_eq!(report["missing"], serde_json::json!(["c"]));
    assert_eq!((report["explained"].as_u64(), report["rouge"]["rouge1"].as_f64()), (Some(1), Some(1.0)));
    assert_eq!(report["problems"], 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `record` writes the hooks a glob names as safetensors, read here by the `safetensors` crate
/// (Hugging Face's reader, not glassbox's): one F32 tensor per hook with the values the library's
/// recording holds (those are checked against NumPy in tests/hooks_numpy.rs), and the positions
/// in the metadata. Unknown names and recordings past --max-bytes are refused before running.
#[test]
fn record_writes_named_hooks_as_safetensors() {
    use glassbox::backend::candle::CandleBackend;
    use glassbox::hooks::{HookPoint, HookRequest, Positions};
    use glassbox::model::Model;
    let model_path = common::model_path(common::SMOLLM2);
    let output = std::env::temp_dir().join(format!("glassbox-record-{}.safetensors", std::process::id()));
    let prompt = "The capital of France is";
    let out = glassbox(&[
        "--json",
        "record",
        model_path.to_str().unwrap(),
        "--prompt",
        prompt,
        "--hooks",
        "blocks.*.hook_resid_post,blocks.3.attn.hook_pattern,blocks.3.attn.hook_z",
        "--positions",
        "0,4",
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["hooks"].as_object().unwrap().len(), 32);
    let bytes = std::fs::read(&output).unwrap();
    std::fs::remove_file(&output).unwrap();
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();

    let loaded = Model::open(&model_path, CandleBackend::cpu()).unwrap();
    let ids = loaded.tokenizer.encode(prompt, true, true).unwrap();
    let (resid, pattern) = (HookPoint::ResidPost(29), HookPoint::AttnPattern(3));
    let at = Positions::Only(vec![0, 4]);
    let hooks = HookRequest::new().with(resid, at.clone()).with(pattern, at);
    let forward = loaded.model.forward(&ids, &mut loaded.model.new_cache(), &hooks, &[], &Positions::Last).unwrap();
    for point in [resid, pattern] {
        let ours = forward.recording.get(point).unwrap();
        let tensor = file.tensor(&point.to_string()).unwrap();
        assert_eq!(tensor.dtype(), safetensors::Dtype::F32);
        assert_eq!(tensor.shape(), ours.shape.as_slice(), "{point}");
        let values: Vec<f32> =
            tensor.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(values, ours.data, "{point}");
        assert_eq!(metadata.metadata().as_ref().unwrap()[&format!("positions.{point}")], "0,4");
    }
    // The pattern of 9 heads over 2 query rows and every key position; z by position, head and
    // head dimension.
    assert_eq!(file.tensor("blocks.3.attn.hook_pattern").unwrap().shape(), [9, 2, ids.len()]);
    assert_eq!(file.tensor("blocks.3.attn.hook_z").unwrap().shape(), [2, 9, 64]);

    let refused = |hooks: &str, max_bytes: &str| {
        let out = glassbox(&[
            "record",
            model_path.to_str().unwrap(),
            "--prompt",
            prompt,
            "--hooks",
            hooks,
            "--max-bytes",
            max_bytes,
            "--output",
            output.to_str().unwrap(),
        ]);
        assert!(!out.status.success());
        assert!(!output.exists());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(refused("blocks.*.hook_nothing", "1000000").contains("no hook is named"));
    // 30 layers × 5 positions × 576 floats × 4 bytes = 345,600 bytes.
    assert!(refused("blocks.*.hook_resid_post", "345599").contains("345600 bytes, past the limit of 345599"));
}

#[test]
fn a_scene_side_out_of_range_is_refused() {
    let png = std::env::temp_dir().join(format!("glassbox-scene-{}.png", std::process::id()));
    for size in ["1", "100000"] {
        let out = glassbox(&["scene", "--size", size, "--png", png.to_str().unwrap()]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("a scene of {size} pixels a side")), "{stderr}");
        assert!(!png.exists());
    }
}

/// Control characters in a model file's strings reach the terminal escaped; the JSON output
/// still reads back as the file's exact text.
#[test]
fn control_characters_from_a_model_file_are_escaped() {
    use glassbox::gguf::write::write_gguf;
    use glassbox::gguf::Value;
    let name = "evil\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}31m";
    let metadata = vec![
        ("general.architecture".to_string(), Value::String("llama".into())),
        ("general.name".to_string(), Value::String(name.into())),
    ];
    let mut bytes = Vec::new();
    write_gguf(&mut bytes, &metadata, &[]).unwrap();
    let path = std::env::temp_dir().join(format!("glassbox-escape-{}.gguf", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let human = glassbox(&["info", path.to_str().unwrap()]);
    let json = glassbox(&["--json", "info", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    assert!(human.status.success(), "{}", String::from_utf8_lossy(&human.stderr));
    let printed = String::from_utf8(human.stdout).unwrap();
    assert!(!printed.chars().any(|c| c.is_control() && c != '\n' && c != '\t'), "{printed:?}");
    assert!(printed.contains("evil\\u001b[2J\\u001b]0;owned\\u0007\\u009b31m"), "{printed}");
    let card: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(card["name"], name);
}

/// `patch` on the tiny model with SmolLM2's vocabulary: the grid is layers × the clean prompt's
/// tokens, the first position (the same token in both prompts, and nothing before it) restores
/// nothing at any layer, exactly or to first order, and prompts of different lengths are refused.
#[test]
fn patch_prints_a_layers_by_positions_grid() {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smollm2-vocab-tiny-q8_0.gguf");
    let run = |corrupt: &str, site: &[&str]| {
        let args = [
            &[
                "--json",
                "patch",
                model.to_str().unwrap(),
                "--clean",
                "When Mary and John went",
                "--corrupt",
                corrupt,
                "--answer",
                " Mary",
                "--wrong",
                " John",
            ],
            site,
        ]
        .concat();
        glassbox(&args)
    };
    let out = run("When John and Mary went", &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tokens"], serde_json::json!(["When", " Mary", " and", " John", " went"]));
    assert_eq!(report["corrupt_tokens"], serde_json::json!(["When", " John", " and", " Mary", " went"]));
    let grid = report["grid"].as_array().unwrap();
    assert!(!grid.is_empty());
    for row in grid {
        assert_eq!(row.as_array().unwrap().len(), 5);
        assert_eq!(row[0], 0.0);
    }
    assert_eq!(report["site"], "resid_pre");
    // By default the first-order estimate comes too, with its correlation to the exact grid.
    let estimate = report["attribution_grid"].as_array().unwrap();
    assert_eq!(estimate.len(), grid.len());
    assert!(estimate.iter().all(|row| row.as_array().unwrap().len() == 5 && row[0] == 0.0));
    assert!(report["correlation"].is_f64());
    let first_order = run("When John and Mary went", &["--method", "attribution"]);
    let first_order: serde_json::Value = serde_json::from_slice(&first_order.stdout).unwrap();
    assert_eq!(first_order["attribution_grid"], report["attribution_grid"]);
    assert!(first_order.get("grid").is_none() && first_order.get("correlation").is_none());
    let refused = run("When John went", &[]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("patching needs equal lengths"));
    let mlp = run("When John and Mary went", &["--site", "mlp-out"]);
    assert!(mlp.status.success(), "{}", String::from_utf8_lossy(&mlp.stderr));
    let report: serde_json::Value = serde_json::from_slice(&mlp.stdout).unwrap();
    assert_eq!(report["site"], "mlp_out");
    assert_eq!(report["grid"].as_array().unwrap().len(), grid.len());
}

/// `steer-vector` then `--steer`: on the tiny model with SmolLM2's vocabulary, a coefficient of
/// 0 leaves the logits exactly as they are, a large one changes them, and a bad spec is refused.
#[test]
fn a_steering_vector_is_written_and_applied() {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smollm2-vocab-tiny-q8_0.gguf");
    let model = model.to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("glassbox-steer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (positive, negative, vector) = (dir.join("love.txt"), dir.join("hate.txt"), dir.join("v.safetensors"));
    std::fs::write(&positive, "I love this\nWhat a wonderful day\n").unwrap();
    std::fs::write(&negative, "I hate this\nWhat a terrible day\n").unwrap();
    let made = glassbox(&[
        "--json",
        "steer-vector",
        model,
        "--positive",
        positive.to_str().unwrap(),
        "--negative",
        negative.to_str().unwrap(),
        "--layer",
        "1",
        "--output",
        vector.to_str().unwrap(),
    ]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    assert_eq!((summary["positive"].as_u64(), summary["negative"].as_u64()), (Some(2), Some(2)));
    assert!(summary["norm"].as_f64().unwrap() > 0.0);
    let logits = |steer: Option<String>| {
        let mut args = vec!["--json", "logits", model, "--prompt", "The weather today is", "--top-k", "5"];
        let spec;
        if let Some(s) = steer {
            spec = s;
            args.extend(["--steer", spec.as_str()]);
        }
        let out = glassbox(&args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let plain = logits(None);
    assert!(plain.0, "{}", plain.2);
    assert_eq!(logits(Some(format!("{}@1:0", vector.display()))).1, plain.1);
    assert_ne!(logits(Some(format!("{}@1:50", vector.display()))).1, plain.1);
    let refused = logits(Some(format!("{}@one:2", vector.display())));
    assert!(!refused.0 && refused.2.contains("expected FILE@LAYER:COEFFICIENT"), "{}", refused.2);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `exam` (score mode on a shard), `exam extract` against eval_empec's own Python, and
/// `evaluate --task exam` on replies whose report is worked by hand.
#[test]
fn exam_answers_extracts_and_evaluates() {
    let dir = std::env::temp_dir().join(format!("glassbox-exam-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = |file: &str| format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let path = |file: &str| dir.join(file).to_str().unwrap().to_string();
    let model = common::model_path(common::SMOLLM2);

    let out = glassbox(&[
        "exam",
        model.to_str().unwrap(),
        "--input",
        &data("exam_questions.jsonl"),
        "--output",
        &path("replies.jsonl"),
        "--mode",
        "score",
        "--shard",
        "0/17",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let replies: Vec<serde_json::Value> = std::fs::read_to_string(path("replies.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = replies.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["exam-001", "exam-018", "exam-035", "exam-052"]);
    for reply in &replies {
        let probs = reply["probs"].as_object().unwrap();
        assert_eq!(probs.keys().map(String::as_str).collect::<Vec<_>>(), ["A", "B", "C", "D"]);
        assert!((probs.values().map(|p| p.as_f64().unwrap()).sum::<f64>() - 1.0).abs() < 1e-6);
        assert_eq!(reply["correct"], reply["answer"] == reply["gold"]);
    }
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["report"]["overall"]["count"], 4);
    assert_eq!(summary["report"]["chance"], 0.25);

    let out =
        glassbox(&["exam", "extract", "--input", &data("exam_replies.jsonl"), "--output", &path("answers.jsonl")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let upstream = common::reference("exam-extraction-python.json");
    let answers = std::fs::read_to_string(path("answers.jsonl")).unwrap();
    assert_eq!(answers.lines().count(), upstream["answers"].as_object().unwrap().len());
    for line in answers.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(row["answer"], upstream["answers"][row["id"].as_str().unwrap()], "{line}");
        assert!(row.get("answer_normalised").is_some());
    }

    // Gold: exam-001 B, exam-002 C (護理師), exam-013 B (藥師), exam-040 D (物理治療師).
    std::fs::write(
        path("pred.jsonl"),
        [
            r#"{"id": "exam-001", "answer": "B", "answer_normalised": "B"}"#,
            r#"{"id": "exam-002", "answer": null, "answer_normalised": "C"}"#,
            r#"{"id": "exam-013", "answer": "A", "answer_normalised": "A"}"#,
            r#"{"id": "exam-040", "answer": "E"}"#,
            r#"{"id": "exam-040", "answer": "D", "answer_normalised": null}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let out = glassbox(&[
        "evaluate",
        "--task",
        "exam",
        "--gold",
        &data("exam_questions.jsonl"),
        "--pred",
        &path("pred.jsonl"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pred.jsonl:4: \"answer\": \"E\" is not A, B, C, D or null"));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &report["report"];
    assert_eq!((r["overall"]["count"].as_u64(), r["overall"]["correct"].as_u64()), (Some(4), Some(2)));
    assert_eq!(r["no_answer"], 1);
    assert_eq!(r["by_profession"]["護理師"], serde_json::json!({"count": 2, "correct": 1, "accuracy": 0.5}));
    assert_eq!(r["by_profession"]["藥師"]["correct"], 0);
    assert_eq!(r["by_subject"]["基礎醫學"]["count"], 2);
    // Normalised: exam-001 and exam-002 right, exam-013 and exam-040 wrong.
    assert_eq!(r["normalised"]["correct"], 2);
    assert_eq!(report["missing"].as_array().unwrap().len(), 64);
    assert_eq!(report["problems"], 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `harmonic generate` writes rows of the table's schema and accounts for every prompt;
/// `harmonic baseline` and `harmonic evaluate` report what the library computes.
#[test]
fn harmonic_generates_baselines_and_evaluates() {
    let dir = std::env::temp_dir().join(format!("glassbox-harmonic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |file: &str| dir.join(file).to_str().unwrap().to_string();
    let tables = format!("{}/models/tables", env!("CARGO_MANIFEST_DIR"));
    let (train, test) = (format!("{tables}/iris-train.csv"), format!("{tables}/iris-test.csv"));
    let model = common::model_path(common::SMOLLM2);

    let out = glassbox(&[
        "harmonic",
        "generate",
        model.to_str().unwrap(),
        "--input",
        &train,
        "--label",
        "target",
        "--n",
        "2",
        "--max-attempts",
        "6",
        "--output",
        &path("model.csv"),
        "--log",
        &path("attempts.jsonl"),
        "--description",
        "iris flowers",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let attempts: Vec<serde_json::Value> = std::fs::read_to_string(path("attempts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(summary["attempts"].as_u64().unwrap() as usize, attempts.len());
    let rejected = attempts.iter().filter(|a| a.get("rejected").is_some()).count();
    assert_eq!(summary["rejected"].as_u64().unwrap() as usize, rejected);
    let written = std::fs::read_to_string(path("model.csv")).unwrap();
    let mut lines = written.lines();
    assert_eq!(lines.next(), Some("sepal length (cm),sepal width (cm),petal length (cm),petal width (cm),target"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len() + rejected, attempts.len());
    for row in rows {
        let cells: Vec<&str> = row.split(',').collect();
        assert!(cells[..4].iter().all(|c| c.parse::<f64>().is_ok_and(f64::is_finite)), "{row}");
        assert!(["0", "1", "2"].contains(&cells[4]), "{row}");
    }

    let out = glassbox(&[
        "harmonic",
        "baseline",
        "--method",
        "smote",
        "--input",
        &train,
        "--label",
        "target",
        "--n",
        "25",
        "--output",
        &path("smote.csv"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = glassbox(&[
        "harmonic",
        "evaluate",
        "--real",
        &train,
        "--synthetic",
        &path("smote.csv"),
        "--label",
        "target",
        "--test",
        &test,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let read = |p: &str| glassbox::tabular::table::Table::parse_csv(&std::fs::read_to_string(p).unwrap()).unwrap();
    let expected =
        glassbox::tabular::evaluate::report(&read(&train), &read(&path("smote.csv")), "target", Some(&read(&test)), 0)
            .unwrap();
    // serde_json reads floats back to within an ulp.
    let close = |got: Option<f64>, want: Option<f64>| {
        assert!((got.unwrap() - want.unwrap()).abs() < 1e-12, "{got:?} vs {want:?}")
    };
    close(shown["dcr_p5"].as_f64(), Some(expected.dcr_p5));
    assert_eq!(shown["copied_rows"].as_u64(), Some(expected.copied_rows as u64));
    close(
        shown["mle"]["synthetic"]["logistic_regression"]["accuracy"].as_f64(),
        expected.mle.as_ref().and_then(|m| m.synthetic.logistic_regression.accuracy),
    );
    assert!(shown["fidelity"]["mean_ks"].as_f64().is_some());

    let ragged = path("ragged.csv");
    std::fs::write(&ragged, "a,b\n1,2\n3\n").unwrap();
    let out = glassbox(&["harmonic", "evaluate", "--real", &ragged, "--synthetic", &ragged, "--label", "b"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 3 has 1 cells; the header has 2"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// compare-weights' f32 side against the NumPy float64 forward pass and attribution
/// (tests/reference: weights dequantised by the `gguf` package), its quantised side against the
/// library's forward pass: the residual differences, top heads and top neurons it reports are
/// the ones those give, apart from near-ties at the edge of a top set.
#[test]
fn compare_weights_reports_what_numpy_finds_in_the_float_model() {
    use glassbox::hooks::{HookPoint, HookRequest, Positions};
    use glassbox::interp::attribution::rank_heads;
    use glassbox::interp::lens::Unembedding;

    let hooks_case = &common::reference("smollm2-hooks-numpy.json")["prompts"][0];
    let attribution_meta = common::reference("smollm2-attribution-numpy.json");
    let attribution_case = &attribution_meta["prompts"][0];
    let model = common::model_path(common::SMOLLM2);
    let (resid_prompt, circuit_prompt) =
        (hooks_case["prompt"].as_str().unwrap(), attribution_case["prompt"].as_str().unwrap());
    let out = glassbox(&[
        "--backend",
        "cpu",
        "compare-weights",
        model.to_str().unwrap(),
        "--prompt",
        resid_prompt,
        "--prompt",
        circuit_prompt,
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let loaded = common::load_smollm2();
    let c = loaded.model.config().clone();
    let ids = |case: &serde_json::Value| -> Vec<u32> {
        case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect()
    };
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
    };

    // The residual stream: ‖quantised − f32‖ / ‖f32‖ at the last position, NumPy's as the f32.
    let bin = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/smollm2-hooks-numpy.bin")).unwrap();
    let numpy: Vec<f32> = bin.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let resid_ids = ids(hooks_case);
    let t = resid_ids.len();
    let hooks = (0..c.layers).fold(HookRequest::new(), |h, l| h.with(HookPoint::ResidPost(l), Positions::Last));
    let mut cache = loaded.model.new_cache();
    let run = loaded.model.forward(&resid_ids, &mut cache, &hooks, &[], &Positions::Last).unwrap();
    let reported = report["prompts"][0]["resid_post_relative_difference"].as_array().unwrap();
    assert_eq!(reported.len(), c.layers);
    for (l, reported) in reported.iter().enumerate() {
        let quantised = &run.recording.get(HookPoint::ResidPost(l)).unwrap().data;
        let float = &numpy[(l * t + t - 1) * c.width..(l * t + t) * c.width];
        let norm = |v: &mut dyn Iterator<Item = f32>| v.map(|x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        let expected = norm(&mut quantised.iter().zip(float).map(|(q, f)| q - f)) / norm(&mut float.iter().copied());
        let reported = reported.as_f64().unwrap();
        println!("layer {l}: reported {reported:.6e}, against NumPy {expected:.6e}");
        // f32 against float64: measured 2026-12-05 to agree within 3e-5 of the difference itself.
        assert!((reported - expected).abs() <= 1e-3 * expected, "layer {l}: {reported} against {expected}");
    }

    // The circuit: the f32 run's target and top sets are NumPy's, up to near-ties at their edge.
    let circuit = &report["prompts"][1];
    let target = attribution_case["target"]["id"].as_u64().unwrap();
    assert_eq!(circuit["target"].as_u64().unwrap(), target);
    let head_lpi: Vec<f64> = attribution_case["head_lpi"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
        .collect();
    let neuron_bin =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/smollm2-attribution-numpy.bin")).unwrap();
    let neuron_lpi: Vec<f64> = neuron_bin
        .chunks_exact(4)
        .take(c.layers * c.ffn_width)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
        .collect();
    const NEAR_TIE: f64 = 1e-3;
    for (reported, scores, per_layer) in [
        (strings(&circuit["top_heads_float"]), &head_lpi, c.heads),
        (strings(&circuit["top_neurons_float"]), &neuron_lpi, c.ffn_width),
    ] {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let edge = scores[order[reported.len() - 1]];
        let numpy_top: Vec<String> =
            order.iter().take(reported.len()).map(|&i| format!("{}.{}", i / per_layer, i % per_layer)).collect();
        let score_of = |name: &String| {
            let (layer, unit) = name.split_once('.').unwrap();
            scores[layer.parse::<usize>().unwrap() * per_layer + unit.parse::<usize>().unwrap()]
        };
        for name in
            reported.iter().filter(|n| !numpy_top.contains(n)).chain(numpy_top.iter().filter(|n| !reported.contains(n)))
        {
            assert!(
                (score_of(name) - edge).abs() <= NEAR_TIE,
                "{name}: NumPy LPI {} against the edge {edge}",
                score_of(name)
            );
        }
    }

    // The quantised side is the library's own ranking.
    let unembedding = Unembedding::new(&loaded.model).unwrap();
    let heads = rank_heads(&unembedding, &ids(attribution_case), Some(target as u32)).unwrap();
    let names: Vec<String> = heads.iter().take(10).map(|h| format!("{}.{}", h.layer, h.head)).collect();
    assert_eq!(strings(&circuit["top_heads_quantised"]), names);
    let float_heads = strings(&circuit["top_heads_float"]);
    assert_eq!(
        circuit["heads_shared"].as_u64().unwrap() as usize,
        names.iter().filter(|n| float_heads.contains(n)).count()
    );
}

/// `probe train` records the features scikit-learn's reference was fitted on (bit for bit),
/// reports each hook's cross-validated accuracy and keeps the best, skipping a bad row by its
/// line; `probe apply` gives the written probe's probabilities for each row.
#[test]
fn probe_train_and_apply_on_the_conspiracy_rows() {
    use glassbox::interp::probe::Probe;

    let dir = std::env::temp_dir().join(format!("glassbox-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rows =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/conspiracy_posts.jsonl")).unwrap();
    let input = dir.join("rows.jsonl");
    std::fs::write(&input, format!("{rows}{{\"id\": \"no-text\", \"label\": \"0\"}}\n")).unwrap();
    let (probe_path, features_path) = (dir.join("probe.safetensors"), dir.join("features.safetensors"));
    let model = common::model_path(common::SMOLLM2);
    let out = glassbox(&[
        "--backend",
        "cpu",
        "probe",
        "train",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--hook",
        "blocks.3.hook_resid_post,blocks.15.hook_resid_post",
        "--output",
        probe_path.to_str().unwrap(),
        "--features",
        features_path.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rows"], 60);
    assert_eq!(report["skipped"][0]["line"], 61);
    let hooks = report["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 2);
    let accuracy = |i: usize| hooks[i]["cv_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy(0)) && (0.0..=1.0).contains(&accuracy(1)));
    let best = if accuracy(1) > accuracy(0) { 1 } else { 0 };
    assert_eq!(report["best"], hooks[best]["hook"]);

    let written = glassbox::safetensors::read(&std::fs::read(&features_path).unwrap()).unwrap().0;
    let fixture =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/probe-conspiracy-l15-last.safetensors"));
    let fixture = glassbox::safetensors::read(&fixture.unwrap()).unwrap().0;
    let layer15 = |tensors: &[glassbox::safetensors::NamedTensor]| {
        tensors.iter().find(|t| t.name == "blocks.15.hook_resid_post").unwrap().data.clone()
    };
    assert_eq!(layer15(&written), layer15(&fixture), "the features scikit-learn was given");

    let probe = Probe::from_safetensors(&std::fs::read(&probe_path).unwrap()).unwrap();
    let features = &written.iter().find(|t| t.name == probe.hook.to_string()).unwrap().data;
    let out = glassbox(&[
        "--backend",
        "cpu",
        "probe",
        "apply",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--probe",
        probe_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 61);
    assert_eq!(lines[60]["line"], 61);
    assert!(lines[60]["error"].as_str().unwrap().contains("text"));
    for (i, line) in lines[..60].iter().enumerate() {
        let expected =
            probe.logistic.probabilities(&features[i * probe.logistic.width..(i + 1) * probe.logistic.width]);
        for (class, p) in probe.classes.iter().zip(expected) {
            assert!((line["probabilities"][class].as_f64().unwrap() - p).abs() < 1e-9, "row {i} class {class}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
