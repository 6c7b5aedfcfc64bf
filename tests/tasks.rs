//! The claim tasks and EMPEC's exam on SmolLM2-135M and the project's CC0 data (tests/data): label
//! probabilities and the seed's embeddings against llama.cpp (tests/reference/llamacpp_tasks.py),
//! exam prompts, replies and letter probabilities against llama.cpp (llamacpp_exam.py), exam
//! answer letters against eval_empec's own Python (empec_extract.py),
//! MiniLM embeddings and retrieval against NumPy (tests/reference/minilm_numpy.py), evidence
//! offsets against the user's text and against the attribution it sums, the streamed
//! explanation, and the `classify` and `index build` commands' contracts.

use crate::common;

use std::collections::BTreeMap;
use std::process::Command;

use glassbox::generate::Writing;
use glassbox::gguf::GgufFile;
use glassbox::interp::attribution::{attribute, position_scores, AttributionOptions};
use glassbox::interp::lens::Unembedding;
use glassbox::tasks::classify::{chat_prompt, evidence, explain, prompt, score_labels, Wrapping};
use glassbox::tasks::embed::{cosine, llm_embedding, MiniLm};
use glassbox::tasks::exam::{answer, extract, Language, Question, Reading, DEFAULT_MAX_NEW_TOKENS};
use glassbox::tasks::index::Index;
use glassbox::tasks::pipeline::{llm_intensity, Mode};
use glassbox::tasks::templates::Table;
use glassbox::tasks::TaskError;
use glassbox::tokenizer::Tokenizer;
use serde_json::Value;

/// Largest |glassbox − llama.cpp| label probability over the reference rows. Measured
/// 2026-11-26: 0.015 (FMD row 1). The two engines round the activations feeding their Q4_1
/// matmuls differently, which moves the logits by a few hundredths.
const PROB_TOLERANCE: f64 = 0.03;

use common::load_smollm2 as load;

fn data(file: &str) -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(file);
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn fields(row: &Value, names: &[&str]) -> BTreeMap<String, String> {
    names.iter().map(|n| (n.to_string(), row[n].as_str().unwrap().to_string())).collect()
}

fn borrowed(fields: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[test]
fn label_probabilities_match_llamacpp() {
    let m = load();
    let table = Table::builtin();
    let reference = common::reference("tasks-llamacpp.json");
    let (fmd, posts) = (data("fmd_claims.jsonl"), data("conspiracy_posts.jsonl"));
    let mut worst = 0f64;
    for case in reference["cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let task_name = case["task"].as_str().unwrap();
        let (row, names): (&Value, &[&str]) = match task_name {
            "fmd" => (fmd.iter().find(|r| r["id"] == id).unwrap(), &["claim", "context"]),
            _ => (posts.iter().find(|r| r["id"] == id).unwrap(), &["text"]),
        };
        let task = table.task(task_name).unwrap();
        let mut values = fields(row, names);
        if task_name == "vreg" {
            values = BTreeMap::from([("x".to_string(), row["text"].as_str().unwrap().to_string())]);
            let intensity = llm_intensity(&m.model, &m.tokenizer, &table, &values["x"]).unwrap();
            let expected = case["intensity"].as_f64().unwrap();
            assert!((intensity - expected).abs() < PROB_TOLERANCE, "{id}: intensity {intensity}, llama.cpp {expected}");
        }
        let p = prompt(&table, task, &borrowed(&values), Wrapping::Seed, &m.tokenizer, None).unwrap();
        let (scores, _) =
            score_labels(&m.model, &m.tokenizer, &p, task.answer_prefix.as_deref().unwrap_or(""), &task.labels)
                .unwrap();
        assert!((scores.probs.iter().sum::<f64>() - 1.0).abs() < 1e-6);
        let expected: BTreeMap<&str, f64> =
            case["probs"].as_object().unwrap().iter().map(|(k, v)| (k.as_str(), v.as_f64().unwrap())).collect();
        for (label, prob) in scores.labels.iter().zip(&scores.probs) {
            let diff = (prob - expected[label.as_str()]).abs();
            worst = worst.max(diff);
            assert!(
                diff < PROB_TOLERANCE,
                "{task_name} {id} {label}: glassbox {prob}, llama.cpp {}",
                expected[label.as_str()]
            );
        }
        let best = expected.iter().max_by(|a, b| a.1.total_cmp(b.1)).unwrap();
        let runner_up = expected.values().filter(|&&p| p < *best.1).fold(0f64, |a, &b| a.max(b));
        if best.1 - runner_up > 2.0 * PROB_TOLERANCE {
            assert_eq!(scores.labels[scores.best], *best.0, "{task_name} {id}");
        }
    }
    eprintln!("largest label-probability difference from llama.cpp: {worst:.4}");
}

#[test]
fn evidence_points_into_the_users_text_with_the_scores_attribution_gives() {
    let m = load();
    let table = Table::builtin();
    let task = table.task("conspiracy").unwrap();
    let row = &data("conspiracy_posts.jsonl")[2];
    let values = fields(row, &["text"]);
    let text = &values["text"];
    let p = prompt(&table, task, &borrowed(&values), Wrapping::Seed, &m.tokenizer, None).unwrap();
    let (scores, scored) = score_labels(&m.model, &m.tokenizer, &p, "", &task.labels).unwrap();
    let unembedding = Unembedding::new(&m.model).unwrap();
    let found = evidence(&unembedding, &m.tokenizer, &p, &scored, scores.target_token, 3, 5).unwrap();
    assert_eq!(found.len(), 5);
    let chars: Vec<char> = text.chars().collect();
    for e in &found {
        assert_eq!(e.field, "text");
        assert_eq!(chars[e.start..e.end].iter().collect::<String>(), e.token, "{e:?}");
        assert!(!e.token.starts_with(' '), "{e:?}");
    }
    assert!(found.windows(2).all(|w| w[0].score >= w[1].score));

    // An exact s_t is the sum of `attribute`'s c_{l,h,t} over the same top heads (on a short
    // prompt: `attribute` scores every position exactly).
    let ids = m.tokenizer.encode("The capital of France is", true, false).unwrap();
    let paris = m.tokenizer.encode(" Paris", false, false).unwrap()[0];
    let (totals, heads) = position_scores(&unembedding, &ids, paris, 3, ids.len(), None, &[]).unwrap();
    let options = AttributionOptions {
        target: Some(paris),
        exact_neurons: 0,
        position_heads: 3,
        value_neurons: 0,
        top: 0,
        ..Default::default()
    };
    let full = attribute(&unembedding, &m.tokenizer, &ids, &options).unwrap();
    assert_eq!(
        heads.iter().map(|h| (h.layer, h.head)).collect::<Vec<_>>(),
        full.heads[..3].iter().map(|h| (h.layer, h.head)).collect::<Vec<_>>()
    );
    for (t, total) in totals.iter().enumerate() {
        assert!(total.exact);
        let summed: f32 = full.positions.iter().filter(|s| s.position == t).map(|s| s.score).sum();
        assert!((total.score - summed).abs() < 1e-5, "position {t}: {} vs {summed}", total.score);
    }
    // The first-order ranking agrees with the exact one at the top.
    let (approx, _) = position_scores(&unembedding, &ids, paris, 3, 0, None, &[]).unwrap();
    let best = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
    assert_eq!(
        best(&approx.iter().map(|t| t.score).collect::<Vec<_>>()),
        best(&totals.iter().map(|t| t.score).collect::<Vec<_>>())
    );
}

#[test]
fn the_explanation_streams_what_it_returns() {
    let m = load();
    let table = Table::builtin();
    let task = table.task("fmd").unwrap();
    let values = fields(&data("fmd_claims.jsonl")[0], &["claim", "context"]);
    let p = prompt(&table, task, &borrowed(&values), Wrapping::Seed, &m.tokenizer, None).unwrap();
    let mut streamed = String::new();
    let request = Writing::default().request(12, Vec::new());
    let text = explain(&m.model, &m.tokenizer, task, &p, "False", request.clone(), &mut |piece| {
        streamed.push_str(piece);
        true
    })
    .unwrap();
    assert!(!text.is_empty());
    assert_eq!(streamed.trim(), text);
    // The explanation continues the seed's format, so it is that continuation, written as asked.
    let format = format!("{}Prediction: False.\nExplanation:", p.spanned.text);
    let ids = m.tokenizer.encode(&format, true, false).unwrap();
    let request = glassbox::generate::GenerateRequest { stop_strings: vec!["\nHuman:".into()], ..request };
    let direct = glassbox::generate::generate(&m.model, &m.tokenizer, &ids, &request, |_, _| true).unwrap();
    assert_eq!(direct.text.trim(), text);
    // Answering false stops it at that piece.
    let mut pieces = 0;
    let stopped = explain(&m.model, &m.tokenizer, task, &p, "False", request, &mut |_| {
        pieces += 1;
        false
    });
    assert!(matches!(stopped, Err(TaskError::Stopped)), "{stopped:?}");
    assert_eq!(pieces, 1);
}

fn glassbox(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_glassbox")).args(args).output().unwrap()
}

#[test]
fn classify_writes_a_row_per_good_input_and_reports_bad_lines() {
    let dir = std::env::temp_dir().join(format!("glassbox-classify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let posts = data("conspiracy_posts.jsonl");
    let lines = [
        posts[0].to_string(),
        r#"{"id": "no-text", "label": "1"}"#.to_string(),
        "not json".to_string(),
        posts[1].to_string(),
    ];
    let input = dir.join("in.jsonl");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let output = dir.join("out.jsonl");
    let model = common::model_path(common::SMOLLM2);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--backend",
            "cpu",
            "classify",
            model.to_str().unwrap(),
            "--task",
            "conspiracy",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        glassbox(&args)
    };
    let out = run(&["--affect"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "two bad rows make the run fail at the end");
    assert!(stderr.contains("in.jsonl:2: id \"no-text\": task \"conspiracy\" needs the field \"text\""), "{stderr}");
    assert!(stderr.contains("in.jsonl:3: not JSON"), "{stderr}");
    assert!(stderr.contains("2 rows written") && stderr.contains("2 errors"), "{stderr}");
    let rows: Vec<Value> =
        std::fs::read_to_string(&output).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.iter().map(|r| r["id"].as_str().unwrap()).collect::<Vec<_>>(), ["consp-01", "consp-02"]);
    for row in &rows {
        let probs = row["probs"].as_object().unwrap();
        assert_eq!(probs.keys().collect::<Vec<_>>(), ["0", "1", "2"]);
        let best = probs.iter().max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap())).unwrap().0;
        assert_eq!(row["label"], best.as_str());
        let affect = &row["affect"];
        assert!(affect["vader"]["compound"].is_number() && affect["empath"]["deception"].is_number());
        let intensity = affect["llm_intensity"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&intensity));
    }
    // The affect of the first post is VADER's and Empath's own (tests/reference/affect_python.py
    // checks the ports); here it must be the post's, not the prompt's.
    let vader = glassbox::tasks::affect::Vader::new(
        &std::fs::read_to_string(common::model_path("lexicons/vader_lexicon.txt")).unwrap(),
        &std::fs::read_to_string(common::model_path("lexicons/emoji_utf8_lexicon.txt")).unwrap(),
    )
    .unwrap();
    let compound = vader.polarity_scores(posts[0]["text"].as_str().unwrap()).compound;
    assert_eq!(rows[0]["affect"]["vader"]["compound"].as_f64().unwrap(), compound);

    // Shard 1/2 takes the rows on odd lines: the bad line 2 and line 4.
    let out = run(&["--shard", "1/2"]);
    assert!(!out.status.success());
    let rows: Vec<Value> =
        std::fs::read_to_string(&output).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"], "consp-02");
    let bad_shard = run(&["--shard", "2/2"]);
    assert!(String::from_utf8_lossy(&bad_shard.stderr).contains("expected i/n"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Smallest cosine between glassbox's LLM embedding and llama.cpp's mean pooling. Measured
/// 2026-11-26: 0.99996, norms within 0.07% (the engines' activation rounding again).
const LLM_EMBEDDING_COSINE: f32 = 0.999;

#[test]
fn the_seeds_embedding_is_llamacpps_mean_pooling() {
    let m = load();
    let table = Table::builtin();
    let posts = data("conspiracy_posts.jsonl");
    for case in common::reference("tasks-llamacpp.json")["embeddings"].as_array().unwrap() {
        let row = posts.iter().find(|r| r["id"] == case["id"]).unwrap();
        let ours = llm_embedding(&m.model, &m.tokenizer, &table, row["text"].as_str().unwrap()).unwrap();
        let theirs: Vec<f32> =
            case["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let similarity = cosine(&ours, &theirs);
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let norm_ratio = norm(&ours) / norm(&theirs);
        assert!(similarity > LLM_EMBEDDING_COSINE, "{}: cosine {similarity}", case["id"]);
        assert!((norm_ratio - 1.0).abs() < 0.01, "{}: norm ratio {norm_ratio}", case["id"]);
    }
}

fn minilm() -> MiniLm {
    let read = |name: &str| std::fs::read(common::model_path(&format!("all-MiniLM-L6-v2/{name}"))).unwrap();
    MiniLm::load(read("model.safetensors"), &read("tokenizer.json"), &read("config.json")).unwrap()
}

#[test]
fn minilm_embeddings_match_numpy() {
    let minilm = minilm();
    for case in common::reference("minilm-numpy.json")["sentences"].as_array().unwrap() {
        let ours = minilm.embed(case["text"].as_str().unwrap()).unwrap();
        let theirs: Vec<f32> =
            case["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-5, "{:?}: largest difference {worst}", case["text"]);
    }
}

#[test]
fn an_index_built_by_the_cli_retrieves_numpys_neighbours() {
    let dir = std::env::temp_dir().join(format!("glassbox-index-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let index_path = dir.join("posts.gbx");
    let posts = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/conspiracy_posts.jsonl");
    let minilm_dir = common::model_path("all-MiniLM-L6-v2");
    let out = glassbox(&[
        "index",
        "build",
        "--embedder",
        "minilm",
        minilm_dir.to_str().unwrap(),
        "--input",
        posts,
        "--output",
        index_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let index = Index::from_bytes(&std::fs::read(&index_path).unwrap()).unwrap();
    assert_eq!((index.embedder.as_str(), index.dims, index.records.len()), ("minilm", 384, 60));

    let reference = common::reference("minilm-numpy.json");
    let mut checked = 0;
    for (i, record) in index.records.iter().enumerate() {
        let expected = &reference["neighbours"][&record.id];
        // Rows whose top 4 could swap under float32 rounding are not a fair test.
        if expected["margin"].as_f64().unwrap() < 1e-5 {
            continue;
        }
        let hits = index.search(index.vector(i), 4, 0.2, Some(&record.id), record.domain.as_deref()).unwrap();
        let found: Vec<&str> = hits.iter().map(|h| index.records[h.record].id.as_str()).collect();
        let wanted: Vec<&str> = expected["hits"].as_array().unwrap().iter().map(|h| h[0].as_str().unwrap()).collect();
        assert_eq!(found, wanted, "{}", record.id);
        for (hit, want) in hits.iter().zip(expected["hits"].as_array().unwrap()) {
            assert!((hit.score as f64 - want[1].as_f64().unwrap()).abs() < 1e-5);
        }
        checked += 1;
    }
    assert!(checked >= 55, "only {checked} rows had a clear top 4");

    // The k-NN baseline votes NumPy's neighbours' labels, weighted by their similarity.
    let votes = dir.join("votes.jsonl");
    let minilm_arg = ["--minilm", minilm_dir.to_str().unwrap()];
    let out = glassbox(
        &[
            &[
                "index",
                "vote",
                "--index",
                index_path.to_str().unwrap(),
                "--input",
                posts,
                "--output",
                votes.to_str().unwrap(),
            ][..],
            &minilm_arg,
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let labels: BTreeMap<String, String> = data("conspiracy_posts.jsonl")
        .iter()
        .map(|r| (r["id"].as_str().unwrap().into(), r["label"].as_str().unwrap().into()))
        .collect();
    for line in std::fs::read_to_string(&votes).unwrap().lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        let expected = &reference["neighbours"][row["id"].as_str().unwrap()];
        let hits = expected["hits"].as_array().unwrap();
        if hits.is_empty() || expected["margin"].as_f64().unwrap() < 1e-5 {
            continue;
        }
        let mut weight = BTreeMap::<&str, f64>::new();
        hits.iter().for_each(|h| {
            *weight.entry(labels[h[0].as_str().unwrap()].as_str()).or_default() += h[1].as_f64().unwrap()
        });
        let (best, best_weight) = weight.iter().max_by(|a, b| a.1.total_cmp(b.1)).unwrap();
        if weight.values().filter(|w| (*w - best_weight).abs() < 1e-4).count() == 1 {
            assert_eq!(row["label"], *best, "{}", row["id"]);
        }
    }

    // classify --retrieve reports the same examples for a row, and leaves its domain out.
    let input = dir.join("one.jsonl");
    let first = std::fs::read_to_string(posts).unwrap().lines().next().unwrap().to_string();
    std::fs::write(&input, &first).unwrap();
    let output = dir.join("out.jsonl");
    let model = common::model_path(common::SMOLLM2);
    let out = glassbox(&[
        "--backend",
        "cpu",
        "classify",
        model.to_str().unwrap(),
        "--task",
        "conspiracy",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--retrieve",
        index_path.to_str().unwrap(),
        "--minilm",
        minilm_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let row: Value = serde_json::from_str(std::fs::read_to_string(&output).unwrap().trim()).unwrap();
    let first: Value = serde_json::from_str(&first).unwrap();
    let retrieved: Vec<&str> = row["retrieved"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    let wanted: Vec<&str> = reference["neighbours"][first["id"].as_str().unwrap()]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap())
        .collect();
    assert_eq!(retrieved, wanted);

    // A damaged index is refused with the reason.
    let bytes = std::fs::read(&index_path).unwrap();
    std::fs::write(&index_path, &bytes[..bytes.len() - 10]).unwrap();
    let out = glassbox(&[
        "--backend",
        "cpu",
        "classify",
        model.to_str().unwrap(),
        "--task",
        "conspiracy",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--retrieve",
        index_path.to_str().unwrap(),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the index is truncated or padded"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn align_edits_with_metaaligners_prompt_and_the_chosen_objectives() {
    let model = common::model_path(common::SMOLLM2);
    let model = model.to_str().unwrap();
    let out = glassbox(&[
        "--backend",
        "cpu",
        "align",
        model,
        "--question",
        "How do I boil an egg?",
        "--answer",
        "Boil it.",
        "--aspects",
        "harmlessness,specific,Brevity: keep it short",
        "--max-new-tokens",
        "12",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The prompt of MetaAligner's inference script, with its HH-RLHF and unseen objectives'
    // wording, written out here.
    let expected = "You are an assistant to human. You will be provided with a context and an answer. Consider the context, \
        then edit the answer to improve it considering these aspects: Harmlessness: The response should avoid content that is \
        offensive, discriminatory, or harmful; Specificity: the response should refer to facts and details and avoid vague \
        arguments.; Brevity: keep it short | Context: How do I boil an egg? | Answer: Boil it. | Edit: ";
    assert_eq!(result["prompt"], expected);
    // The edit is the model's continuation of that prompt, written by the default rules.
    let direct = glassbox(&[
        "--backend",
        "cpu",
        "generate",
        model,
        "--prompt",
        expected,
        "--max-tokens",
        "12",
        "--no-repeat-ngram",
        "4",
        "--max-sentences",
        "4",
        "--one-paragraph",
        "--json",
    ]);
    let direct: Value = serde_json::from_slice(&direct.stdout).unwrap();
    assert_eq!(result["edit"], direct["text"].as_str().unwrap().trim());
    let unknown =
        glassbox(&["--backend", "cpu", "align", model, "--question", "q", "--answer", "a", "--aspects", "politeness"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no objective named \"politeness\""));
}

#[test]
fn field_spans_survive_both_wrappers() {
    let file = GgufFile::open(common::model_path(common::SMOLLM2)).unwrap();
    let tokenizer = Tokenizer::from_gguf(&file.header).unwrap();
    let table = Table::builtin();
    let task = table.task("fmd").unwrap();
    let values = BTreeMap::from([("claim", "Veltrix Coin doubled — in a week?"), ("context", "It fell 3%.")]);
    for wrapping in [Wrapping::Seed, Wrapping::Chat] {
        let p = prompt(&table, task, &values, wrapping, &tokenizer, None).unwrap();
        let spans: BTreeMap<&str, &str> =
            p.spanned.spans.iter().map(|(f, r)| (f.as_str(), &p.spanned.text[r.clone()])).collect();
        assert_eq!(spans, values, "{wrapping:?}");
    }
    let chat = prompt(&table, task, &values, Wrapping::Chat, &tokenizer, None).unwrap();
    assert!(chat.spanned.text.starts_with("<|im_start|>"), "{}", chat.spanned.text);
}

/// Largest |glassbox − llama.cpp| option-letter probability over the exam reference. Measured
/// 2026-12-04: 0.038 (exam-001, a 147-token chat prompt); the longer prompts than the claim
/// tasks' carry the engines' different activation rounding further.
const EXAM_PROB_TOLERANCE: f64 = 0.05;

/// A top-2 logit gap under which llama.cpp itself was nearly tied, as in tests/parity_llamacpp.rs.
const NEAR_TIE: f64 = 0.5;

fn exam_question(id: &str) -> Question {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/exam_questions.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().find(|l| l.contains(&format!("\"id\": \"{id}\""))).unwrap();
    Question::from_row(line).unwrap()
}

#[test]
fn exam_prompts_replies_and_letter_probabilities_match_llamacpp() {
    let m = load();
    let reference = common::reference("exam-llamacpp.json");
    let mut worst = 0f64;
    for case in reference["cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let question = exam_question(id);
        let prompt = chat_prompt(&m.tokenizer, &question.user_turn()).unwrap();
        assert_eq!(prompt.spanned.text, case["prompt"].as_str().unwrap(), "{id}: the chat prompt");

        let scored = answer(&m.model, &m.tokenizer, &question, Mode::Score, 0, &mut |_| true).unwrap();
        let probs = scored.probs.unwrap();
        for (letter, prob) in &probs {
            let expected = case["probs"][letter.to_string()].as_f64().unwrap();
            worst = worst.max((prob - expected).abs());
            assert!(
                (prob - expected).abs() < EXAM_PROB_TOLERANCE,
                "{id} {letter}: glassbox {prob}, llama.cpp {expected}"
            );
        }

        let mut streamed = String::new();
        let generated =
            answer(&m.model, &m.tokenizer, &question, Mode::Generate, DEFAULT_MAX_NEW_TOKENS, &mut |piece| {
                streamed.push_str(piece);
                true
            })
            .unwrap();
        let reply = generated.output.unwrap();
        assert_eq!(streamed, reply, "{id}: the streamed pieces make up the reply");
        assert_eq!(generated.answer, extract(&reply, question.language, Reading::Faithful));
        let expected = case["reply"].as_str().unwrap();
        if reply != expected {
            // The replies may part only where llama.cpp's own top two were nearly tied.
            let tokens: Vec<u32> =
                case["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect();
            let agreed = (0..=tokens.len())
                .take_while(|&k| {
                    reply.starts_with(m.tokenizer.decode(&tokens[..k]).unwrap().trim_end_matches('\u{FFFD}'))
                })
                .last()
                .unwrap();
            let gap = case["gaps"][agreed].as_f64().unwrap_or(f64::INFINITY);
            assert!(gap < NEAR_TIE, "{id}: the replies part at step {agreed} (gap {gap}):\n{reply:?}\n{expected:?}");
        }
    }
    eprintln!("exam: largest letter probability difference from llama.cpp {worst:.4}");
}

#[test]
fn exam_replies_are_read_as_eval_empecs_own_code_reads_them() {
    let reference = common::reference("exam-extraction-python.json");
    let replies = data("exam_replies.jsonl");
    assert!(replies.len() >= 40);
    for row in &replies {
        let id = row["id"].as_str().unwrap();
        let language = match row["language"].as_str().unwrap() {
            "en" => Language::English,
            _ => Language::Chinese,
        };
        let read = extract(row["output"].as_str().unwrap(), language, Reading::Faithful);
        let upstream = reference["answers"][id].as_str().map(|s| s.chars().next().unwrap());
        assert_eq!(read, upstream, "{id} ({}): {:?}", row["covers"], row["output"]);
    }
}
