//! `verdict media`: image cache, shards, copies and versioning through the binary, with
//! listing images served by a loopback server.

#[path = "../../verdict-media/tests/common/server.rs"]
#[allow(dead_code)] // the shared server has behaviours only the media crate's tests use
mod server;

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use server::{Behaviour, Route, TestServer};

fn verdict() -> Command {
    let mut command = Command::cargo_bin("verdict").unwrap();
    command.env_remove("RUST_LOG").env("NO_COLOR", "1");
    command
}

fn jpeg(seed: u8) -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(30, 20, |x, y| image::Rgb([seed, x as u8 * 8, y as u8 * 12]));
    let mut out = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut out),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    out
}

fn write_task(dir: &Path, server: &TestServer) {
    let mut csv = String::from("product_id,description,image_url,label,yes_count,no_count\n");
    for i in 0..16u8 {
        let url = match i {
            0 => server.add(
                "/html.jpg",
                Route::ok(b"<html>login</html>".to_vec(), "text/html"),
            ),
            1 => server.add(
                "/gone.jpg",
                Route {
                    behaviour: Behaviour::Status(404),
                    ..Route::ok(Vec::new(), "image/jpeg")
                },
            ),
            2 => String::new(),
            _ => server.add(&format!("/img/{i}.jpg"), Route::ok(jpeg(i), "image/jpeg")),
        };
        let (text, label) = if i % 2 == 0 {
            ("solid oak table", 0)
        } else {
            ("BUY NOW cheap watches", 1)
        };
        csv.push_str(&format!("L{i:03},{text} {i},{url},{label},4,0\n"));
    }
    fs::write(dir.join("listings.csv"), csv).unwrap();
    fs::write(
        dir.join("task.toml"),
        r#"name = "listings"
kind = "binary_policy"
seed = 3
inputs = ["text", "image_url"]
labels = [{ name = "ok", description = "a real listing" }, { name = "spam", description = "spam" }]

[policy]
positive = "spam"
review = 0.5
demote = 0.9

[[sources]]
kind = "listings"
path = "listings.csv"

[split]
train = 0.75
val = 0.25
"#,
    )
    .unwrap();
}

#[test]
fn fetch_shards_read_version_and_copy() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    write_task(dir.path(), &server);
    let task = dir.path().join("task.toml");
    verdict()
        .args(["data", "import"])
        .arg(&task)
        .assert()
        .success();
    verdict()
        .args(["media", "fetch", "--retries", "1"])
        .arg(&task)
        .assert()
        .success()
        .stderr(
            predicate::str::contains("13 of 15 images")
                .and(predicate::str::contains("served as `text/html`")),
        );
    let work = dir.path().join("work");
    let status = fs::read_to_string(work.join("data/image_download_status.csv")).unwrap();
    assert_eq!(status.lines().count(), 16, "{status}");
    assert!(status.contains(",false,404,0,HTTP 404"), "{status}");
    assert_eq!(fs::read_dir(work.join("cache/images")).unwrap().count(), 13);

    verdict()
        .args(["data", "split"])
        .arg(&task)
        .assert()
        .success();
    verdict()
        .args([
            "media",
            "shards",
            "--max-count",
            "4",
            "--resize",
            "32",
            "--mini-train",
            "1",
        ])
        .arg(&task)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "16 samples (13 with image, 3 text-only)",
        ));
    assert!(work.join("shards/train/shard-000000.tar").is_file());
    assert!(work.join("shards/mini_train/shard-000000.tar").is_file());
    let output = verdict()
        .args(["media", "read", "--shard", "0/2"])
        .arg(work.join("shards/train"))
        .output()
        .unwrap();
    assert!(output.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        !lines.is_empty()
            && lines
                .iter()
                .all(|l| l["members"]["json"].as_u64().unwrap() > 0)
    );

    // Version the shards folder, break it, see status fail, restore it.
    verdict()
        .args(["media", "version", "init"])
        .arg(dir.path())
        .assert()
        .success();
    verdict()
        .args(["media", "version", "add"])
        .arg(work.join("shards"))
        .assert()
        .success();
    let pointer = work.join("shards.dvc");
    assert!(fs::read_to_string(&pointer)
        .unwrap()
        .contains("hash: md5\n  path: shards\n"));
    verdict()
        .args(["media", "version", "status"])
        .arg(&pointer)
        .assert()
        .success();
    fs::remove_file(work.join("shards/val/shard-000000.tar")).unwrap();
    verdict()
        .args(["media", "version", "status"])
        .arg(&pointer)
        .assert()
        .failure()
        .stdout(predicate::str::contains("modified"));
    verdict()
        .args(["media", "version", "checkout"])
        .arg(&pointer)
        .assert()
        .success();
    verdict()
        .args(["media", "version", "status"])
        .arg(&pointer)
        .assert()
        .success();

    // Copy the shards elsewhere, into a folder (trailing slash) and list them.
    let target = dir.path().join("copy");
    verdict()
        .args(["media", "cp"])
        .arg(work.join("shards/train/shard-000000.tar"))
        .arg(format!("{}/", target.display()))
        .assert()
        .success();
    assert!(target.join("shard-000000.tar").is_file());
    verdict()
        .args(["media", "ls"])
        .arg(&target)
        .assert()
        .success()
        .stdout(predicate::str::contains("shard-000000.tar"));
}

#[test]
fn bad_inputs_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    verdict()
        .args(["media", "read", "--shard", "2/2"])
        .arg(dir.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("not a worker shard"));
    verdict()
        .args(["media", "cp", "ftp://host/x", "y"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("not supported"));
    verdict()
        .args(["media", "version", "add"])
        .arg(dir.path().join("x"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("not inside a DVC project"));
}

/// `verdict run` downloads listing images in its `images` stage and the candidates see the
/// cached copies; listings whose image failed keep their row and fall back to text only.
#[test]
fn run_fetches_listing_images_for_the_candidates() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    write_task(dir.path(), &server);
    let task = dir.path().join("task.toml");
    let clip = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../verdict-encoders/tests/fixtures/clip/tiny")
        .canonicalize()
        .unwrap();
    let mut text = fs::read_to_string(&task).unwrap();
    text.push_str(&format!(
        "\n[[candidates]]\nname = \"tiny-clip\"\nkind = \"clip\"\npath = \"{}\"\n",
        clip.display()
    ));
    fs::write(&task, text).unwrap();
    let output = verdict()
        .arg("run")
        .arg(&task)
        .args(["--data-dir"])
        .arg(dir.path().join("store"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("13 of 15 images"), "{stderr}");

    // Every listing has a row; the slice says whether its image reached the model.
    let mut present = 0;
    let mut missing = 0;
    for split in ["val", "test"] {
        let path = dir
            .path()
            .join(format!("work/runs/tiny-clip/predictions_{split}.parquet"));
        if !path.exists() {
            continue;
        }
        let set = verdict_eval::prediction::read(&path).unwrap();
        for row in &set.rows {
            match row.slices["image"].as_str() {
                "present" => {
                    present += 1;
                    assert!(row.image_path.as_deref().unwrap().contains("cache/images"));
                }
                _ => missing += 1,
            }
        }
    }
    assert!(present > 0, "no listing image reached the candidate");
    assert_eq!(
        present + missing,
        4,
        "val holds a quarter of the 16 listings"
    );

    // A second run neither downloads nor scores again.
    let hits = server.hits("/img/5.jpg");
    let again = verdict()
        .arg("run")
        .arg(&task)
        .args(["--data-dir"])
        .arg(dir.path().join("store"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("images     up to date"), "{stderr}");
    assert!(stderr.contains("candidates up to date"), "{stderr}");
    assert_eq!(server.hits("/img/5.jpg"), hits);
}
