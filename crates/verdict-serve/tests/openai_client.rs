//! The official `openai` Python client against a real server on loopback: JSON-schema chat
//! completions (whole and streamed), log-probabilities, bearer auth and a refused format.
//!
//! Needs the test Python environment: `scripts/test` exports `VERDICT_PYTHON`; otherwise the
//! test runs `scripts/python-env` (which installs `scripts/test-requirements.txt`).

use std::path::{Path, PathBuf};
use std::process::Command;

use verdict_serve::{AppState, LabelSet, ModelInfo, ServeConfig, ServedModel, TaskSettings};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> String {
    if let Ok(python) = std::env::var("VERDICT_PYTHON") {
        return python;
    }
    let output = Command::new(repo().join("scripts/python-env"))
        .current_dir(repo())
        .output()
        .expect("run scripts/python-env (or set VERDICT_PYTHON)");
    assert!(
        output.status.success(),
        "scripts/python-env failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("interpreter path")
        .trim()
        .to_string()
}

#[test]
fn openai_client_gets_schema_valid_json() {
    let python = python();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../verdict-models/tests/fixtures/qwen3_vl/tiny_a");
    let labels = LabelSet {
        names: vec!["sfw".into(), "nsfw".into()],
        descriptions: Vec::new(),
    };
    let model = ServedModel::load(&dir, Some(labels.clone())).expect("tiny model");
    let state = AppState::with_model(
        ServeConfig {
            bearer_token: Some("test-key".into()),
            ..ServeConfig::default()
        },
        ModelInfo::from_path(&dir),
        &TaskSettings::without_task(Some(labels)),
        model,
    )
    .expect("state");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(verdict_serve::serve(listener, state, async {
        let _ = stopped.await;
    }));

    let output = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/openai_chat.py"))
        .arg(format!("http://{address}/v1"))
        .arg("test-key")
        .output()
        .expect("run the openai client script");
    let _ = stop.send(());
    runtime
        .block_on(server)
        .expect("server task")
        .expect("graceful shutdown");
    assert!(
        output.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("client report JSON");
    let content = report["content"].as_str().expect("content");
    let answer: serde_json::Value = serde_json::from_str(content).expect("content is JSON");
    assert!(["sfw", "nsfw"].contains(&answer["label"].as_str().expect("label")));
    let confidence = answer["confidence"].as_f64().expect("confidence");
    assert!((0.0..=1.0).contains(&confidence));
    assert!(answer["reason"].as_str().expect("reason").chars().count() <= 40);
    assert_eq!(report["finish_reason"], "stop");
    assert_eq!(
        report["logprob_text"], content,
        "token bytes do not join into the text"
    );
    assert!(report["top_counts"]
        .as_array()
        .expect("top counts")
        .iter()
        .all(|n| n == 2));
    assert_eq!(
        report["streamed"], content,
        "stream and whole answer differ"
    );
    assert_eq!(report["refused"]["status"], 400);
    assert_eq!(report["refused"]["code"], "unsupported_response_format");
}
