//! The `glassbox` binary, end to end.

mod common;

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
