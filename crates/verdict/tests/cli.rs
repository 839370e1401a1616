//! The binary on fixture data: init, data import/split/verify/stats, errors.

#[path = "common/stages.rs"]
mod stages;

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use stages::{stage_statuses, status_of};

fn verdict() -> Command {
    let mut command = Command::cargo_bin("verdict").unwrap();
    command.env_remove("RUST_LOG").env("NO_COLOR", "1");
    command
}

/// Copies the listings fixture into a temporary folder (tests never write into the repo).
fn listings_task() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/listings");
    for name in ["task.toml", "listings.csv"] {
        fs::copy(source.join(name), dir.path().join(name)).unwrap();
    }
    let task = dir.path().join("task.toml");
    (dir, task)
}

#[test]
fn init_writes_every_template_as_a_valid_task() {
    let dir = tempfile::tempdir().unwrap();
    for template in ["print-triage", "listing-spam", "retrieval", "ontology"] {
        let target = dir.path().join(template);
        verdict()
            .args(["init"])
            .arg(&target)
            .args(["--template", template])
            .assert()
            .success();
        let text = fs::read_to_string(target.join("task.toml")).unwrap();
        assert!(
            text.starts_with("# Verdict task"),
            "{template} is commented"
        );
        verdict_core::TaskSpec::parse(&text, &target).unwrap();
    }
    verdict()
        .args(["init"])
        .arg(dir.path().join("ontology"))
        .args(["--template", "ontology"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("pass --force"));
}

#[test]
fn import_split_stats_verify_on_listings() {
    let (dir, task) = listings_task();
    verdict()
        .args(["data", "import"])
        .arg(&task)
        .assert()
        .success()
        .stderr(
            predicate::str::contains("imported 24 samples")
                .and(predicate::str::contains("2 rejected")),
        );
    let rejects = fs::read_to_string(dir.path().join("work/data/rejects.jsonl")).unwrap();
    assert!(rejects.contains("L900") && rejects.contains("L901"));

    verdict()
        .args(["data", "import", "--strict"])
        .arg(&task)
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("listings.csv:26")
                .and(predicate::str::contains("field `label`")),
        );

    verdict()
        .args(["data", "split"])
        .arg(&task)
        .assert()
        .success()
        .stderr(predicate::str::contains("sealed new benchmark"));
    verdict()
        .args(["data", "split"])
        .arg(&task)
        .assert()
        .success()
        .stderr(predicate::str::contains("reused sealed benchmark"));

    let stats = verdict()
        .args(["data", "stats"])
        .arg(&task)
        .assert()
        .success();
    let stdout = String::from_utf8(stats.get_output().stdout.clone()).unwrap();
    insta::assert_snapshot!("listings_stats", stdout);

    verdict()
        .args(["data", "verify"])
        .arg(&task)
        .assert()
        .success()
        .stdout(predicate::str::contains("ok"));

    // Tamper with one label of the sealed benchmark: verify names the sample and fails.
    let manifest = dir.path().join("work/benchmarks/v1/benchmark.jsonl");
    let mut permissions = fs::metadata(&manifest).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    fs::set_permissions(&manifest, permissions).unwrap();
    let text = fs::read_to_string(&manifest).unwrap();
    let first = text.lines().next().unwrap().to_string();
    let flipped = if first.contains("\"label\":\"ok\"") {
        first.replace("\"label\":\"ok\"", "\"label\":\"spam\"")
    } else {
        first.replace("\"label\":\"spam\"", "\"label\":\"ok\"")
    };
    fs::write(&manifest, text.replacen(&first, &flipped, 1)).unwrap();
    let id: serde_json::Value = serde_json::from_str(&first).unwrap();
    verdict()
        .args(["data", "verify"])
        .arg(&task)
        .assert()
        .failure()
        .stdout(predicate::str::contains(format!(
            "sample `{}` was relabelled",
            id["sample_id"].as_str().unwrap()
        )));
}

#[test]
fn bad_task_file_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let task = dir.path().join("task.toml");
    fs::write(
        &task,
        "name = \"x\"\nkind = \"single_label\"\nlabelz = []\n",
    )
    .unwrap();
    verdict()
        .args(["data", "import"])
        .arg(&task)
        .assert()
        .failure()
        .stderr(predicate::str::contains("task.toml").and(predicate::str::contains("labelz")));
}

fn run_task(task: &Path, extra: &[&str]) -> Vec<(String, String)> {
    let output = verdict().arg("run").arg(task).args(extra).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "verdict run failed:\n{stderr}");
    stage_statuses(&stderr)
}

#[test]
fn run_caches_stages_and_reruns_only_what_changed() {
    let (dir, task) = listings_task();
    let first = run_task(&task, &[]);
    for stage in ["import", "split", "baseline", "evaluate"] {
        assert!(status_of(&first, stage).starts_with("ran"), "{first:?}");
    }
    assert!(dir.path().join("work/report/summary.json").is_file());

    // Same task again: nothing to do.
    let second = run_task(&task, &[]);
    for stage in ["fetch", "import", "split", "baseline", "evaluate"] {
        assert!(
            status_of(&second, stage).starts_with("up to date"),
            "{second:?}"
        );
    }

    // A baseline setting changes: only the baseline and what reads its predictions rerun.
    let text = fs::read_to_string(&task).unwrap();
    fs::write(&task, format!("{text}\n[baseline]\nc = 0.25\n")).unwrap();
    let third = run_task(&task, &[]);
    for stage in ["import", "split"] {
        assert!(
            status_of(&third, stage).starts_with("up to date"),
            "{third:?}"
        );
    }
    assert!(
        status_of(&third, "baseline").contains("changed"),
        "{third:?}"
    );
    assert!(
        status_of(&third, "evaluate").starts_with("ran"),
        "{third:?}"
    );

    // --force and --until select stages; unknown names are refused with the list.
    let forced = run_task(&task, &["--force", "split", "--until", "split"]);
    assert!(status_of(&forced, "split").contains("forced"), "{forced:?}");
    assert!(
        status_of(&forced, "baseline").starts_with("not selected"),
        "{forced:?}"
    );
    verdict()
        .arg("run")
        .arg(&task)
        .args(["--from", "trian"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("unknown stage `trian`"));

    // A deleted output makes its stage rerun.
    fs::remove_dir_all(dir.path().join("work/report")).unwrap();
    let fourth = run_task(&task, &[]);
    assert!(
        status_of(&fourth, "evaluate").contains("missing"),
        "{fourth:?}"
    );
}
