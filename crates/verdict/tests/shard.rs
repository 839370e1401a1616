//! `verdict shard select` and `verdict shard merge` through the binary: a listing split over
//! shards covers every line once, and parts merge back (or are refused) as documented.

use std::fs;

use assert_cmd::Command;
use predicates::prelude::*;

fn verdict() -> Command {
    let mut command = Command::cargo_bin("verdict").unwrap();
    command.env_remove("RUST_LOG").env("NO_COLOR", "1");
    command
}

#[test]
fn select_splits_a_listing_and_merge_joins_the_parts() {
    let dir = tempfile::tempdir().unwrap();
    let listing: Vec<String> = (0..40)
        .map(|i| format!("s3://bucket/meshes/m{i:03}.stl"))
        .collect();
    fs::write(dir.path().join("listing.txt"), listing.join("\n") + "\n").unwrap();
    let parts = dir.path().join("parts");
    fs::create_dir(&parts).unwrap();
    let mut seen = Vec::new();
    for index in 0..3 {
        for by in ["key", "position"] {
            let output = verdict()
                .args([
                    "shard",
                    "select",
                    "--shard",
                    &format!("{index}/3"),
                    "--by",
                    by,
                ])
                .arg(dir.path().join("listing.txt"))
                .output()
                .unwrap();
            assert!(output.status.success());
            let mine = String::from_utf8(output.stdout).unwrap();
            if by == "key" {
                seen.extend(mine.lines().map(str::to_string));
                // What a sharded stage would write: one record per owned item.
                let records: String = mine
                    .lines()
                    .map(|key| format!("{{\"id\":\"{key}\",\"label\":\"ok\"}}\n"))
                    .collect();
                fs::write(
                    parts.join(format!("part-{index:05}-of-00003.jsonl")),
                    records,
                )
                .unwrap();
            }
        }
    }
    seen.sort();
    assert_eq!(seen, listing, "every line in exactly one shard");

    let out = dir.path().join("predictions.jsonl");
    verdict()
        .args(["shard", "merge", "--key", "id", "--out"])
        .arg(&out)
        .arg(&parts)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("\"parts\":3").and(predicate::str::contains("\"items\":40")),
        );
    let merged = fs::read_to_string(&out).unwrap();
    assert_eq!(merged.lines().count(), 40);
    assert!(merged.lines().next().unwrap().contains("m000.stl"));

    fs::remove_file(parts.join("part-00001-of-00003.jsonl")).unwrap();
    verdict()
        .args(["shard", "merge", "--force", "--out"])
        .arg(&out)
        .arg(&parts)
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "1 of 3 parts missing (shards 1/3)",
        ));
}

#[test]
fn a_bad_shard_is_explained() {
    verdict()
        .args(["shard", "select", "--shard", "3/3", "-"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("must be below the count"));
}
