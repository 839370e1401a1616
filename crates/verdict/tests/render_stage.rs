//! The task-level render stage through the binary: meshes of each sample become PNG views that
//! the manifest records; a broken file is reported on its sample and stops nothing.

use std::fs;

use assert_cmd::Command;
use predicates::prelude::*;

const TETRAHEDRON: &str = "solid t
facet normal 0 0 -1
 outer loop
  vertex 0 0 0
  vertex 0 1 0
  vertex 1 0 0
 endloop
endfacet
facet normal 0 -1 0
 outer loop
  vertex 0 0 0
  vertex 1 0 0
  vertex 0 0 1
 endloop
endfacet
facet normal -1 0 0
 outer loop
  vertex 0 0 0
  vertex 0 0 1
  vertex 0 1 0
 endloop
endfacet
facet normal 1 1 1
 outer loop
  vertex 1 0 0
  vertex 0 1 0
  vertex 0 0 1
 endloop
endfacet
endsolid t
";

#[test]
fn meshes_are_rendered_into_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (path, body) in [
        ("requests/sfw/r1/body.stl", TETRAHEDRON),
        ("requests/sfw/r1/lid.stl", TETRAHEDRON),
        ("requests/grey_area/r2/part.stl", TETRAHEDRON),
        (
            "requests/nsfw/r3/broken.stl",
            "solid x\nfacet normal 0 0 1\n outer loop\n  vertex nan 0 0\n",
        ),
    ] {
        fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
        fs::write(root.join(path), body).unwrap();
    }
    let task = root.join("task.toml");
    fs::write(
        &task,
        r#"
name = "print"
kind = "single_label"
inputs = ["mesh"]
labels = [{ name = "nsfw" }, { name = "sfw" }, { name = "grey_area" }]
sources = [{ kind = "folder_tree", path = "requests" }]
[render]
views = ["front", "iso"]
size = 64
"#,
    )
    .unwrap();
    let verdict = || {
        let mut command = Command::cargo_bin("verdict").unwrap();
        command.env_remove("RUST_LOG");
        command
    };
    verdict()
        .args(["data", "import"])
        .arg(&task)
        .assert()
        .success();
    verdict()
        .args(["data", "render"])
        .arg(&task)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "rendered 2 samples (0 up to date, 1 failed",
        ));
    let manifest = fs::read_to_string(root.join("work/data/manifest.jsonl")).unwrap();
    let samples: Vec<serde_json::Value> = manifest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for sample in &samples {
        let id = sample["sample_id"].as_str().unwrap();
        if id == "r3" {
            assert!(sample["meta"]["render_error"]
                .as_str()
                .unwrap()
                .contains("broken.stl"));
            assert!(sample.get("images").is_none());
            continue;
        }
        let images: Vec<&str> = sample["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(images.len(), 2, "{id}: {images:?}");
        for image in images {
            assert!(image.contains(&format!("rendered/{id}/")), "{image}");
            let png = image::open(image).unwrap();
            assert_eq!((png.width(), png.height()), (64, 64));
        }
    }
    // A second run finds everything up to date and records the same images.
    verdict()
        .args(["data", "render"])
        .arg(&task)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "rendered 0 samples (2 up to date, 1 failed",
        ));
    assert_eq!(
        fs::read_to_string(root.join("work/data/manifest.jsonl")).unwrap(),
        manifest
    );
}
