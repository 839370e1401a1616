//! Importers, validation, splits and sealing on small data written by each test.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use verdict_core::import::{
    import_folder_tree, import_listings, import_manifest, import_meta_json, FolderTreeOptions,
};
use verdict_core::manifest::{LabelValue, Sample, Split};
use verdict_core::provenance::Provenance;
use verdict_core::seal::{self, Finding};
use verdict_core::task::{AmbiguousPolicy, TaskSpec};
use verdict_core::validate::validate;
use verdict_core::workspace::Workspace;

fn spam_task() -> TaskSpec {
    TaskSpec::parse(
        r#"
name = "spam"
kind = "binary_policy"
labels = [{ name = "ok" }, { name = "spam" }]
[policy]
positive = "spam"
review = 0.5
demote = 0.9
"#,
        Path::new("task.toml"),
    )
    .unwrap()
}

#[test]
fn listings_compute_confidence_and_handle_ambiguity() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("listings.csv");
    fs::write(
        &csv,
        "product_id,description,image_url,label,yes_count,no_count\n\
         p1,cheap watches,http://x/1.jpg,1,4,0\n\
         p2,oak table,,0,0,0\n\
         p3,maybe spam,,1,2,1\n\
         p4,bad label,,2,1,1\n\
         p5,bad count,,0,x,1\n",
    )
    .unwrap();
    let task = spam_task();
    let keep = import_listings(&csv, &task, AmbiguousPolicy::Keep, 0.5).unwrap();
    let by_id: BTreeMap<&str, &Sample> = keep
        .samples
        .iter()
        .map(|s| (s.sample.sample_id.as_str(), &s.sample))
        .collect();
    assert_eq!(by_id.len(), 3);
    assert_eq!(by_id["p1"].label_confidence, Some(1.0));
    assert_eq!(by_id["p1"].label, Some(LabelValue::Single("spam".into())));
    assert_eq!(by_id["p1"].images, ["http://x/1.jpg"]);
    assert_eq!(by_id["p2"].label, Some(LabelValue::Single("ok".into())));
    assert_eq!(
        by_id["p2"].label_confidence, None,
        "no votes: no confidence, no division by zero"
    );
    assert!(by_id["p2"].images.is_empty());
    assert!((by_id["p3"].label_confidence.unwrap() - 1.0 / 3.0).abs() < 1e-12);
    let rejected: Vec<(Option<usize>, Option<&str>)> = keep
        .rejects
        .iter()
        .map(|r| (r.origin.line, r.problems[0].field.as_deref()))
        .collect();
    assert_eq!(
        rejected,
        [(Some(5), Some("label")), (Some(6), Some("yes_count"))]
    );

    let weighted = import_listings(&csv, &task, AmbiguousPolicy::Weight, 0.5).unwrap();
    let p3 = weighted
        .samples
        .iter()
        .find(|s| s.sample.sample_id == "p3")
        .unwrap();
    assert!((p3.sample.weight.unwrap() - 1.0 / 3.0).abs() < 1e-12);

    let excluded = import_listings(&csv, &task, AmbiguousPolicy::Exclude, 0.5).unwrap();
    assert_eq!(excluded.samples.len(), 2);
    assert!(excluded
        .rejects
        .iter()
        .any(|r| r.problems[0].message.contains("ambiguous")));
    // The input is never modified.
    assert!(fs::read_to_string(&csv).unwrap().contains("p5,bad count"));
}

#[test]
fn listings_missing_column_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("l.tsv");
    fs::write(&csv, "product_id\tdescription\tlabel\n1\tx\t0\n").unwrap();
    let err = import_listings(&csv, &spam_task(), AmbiguousPolicy::Keep, 0.5)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing column `image_url`") && err.contains("l.tsv"),
        "{err}"
    );
}

#[test]
fn folder_tree_keeps_multi_file_samples_whole() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (path, body) in [
        ("nsfw/req1/a.stl", "solid a"),
        ("nsfw/req1/b.stl", "solid b"),
        ("nsfw/req1/preview.png", "png"),
        ("sfw/req2/part.stl", "solid c"),
        ("sfw/single.stl", "solid d"),
        ("sfw/notes.md", "ignored by extension filter"),
    ] {
        fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
        fs::write(root.join(path), body).unwrap();
    }
    let label_map = BTreeMap::from([("sfw".to_string(), "safe".to_string())]);
    let extensions = vec!["stl".to_string(), "png".to_string()];
    let outcome = import_folder_tree(
        root,
        &FolderTreeOptions {
            label_map: &label_map,
            extensions: &extensions,
            text_extensions: &[],
            max_text_bytes: 100,
        },
    )
    .unwrap();
    let summary: Vec<(String, String, usize, usize)> = outcome
        .samples
        .iter()
        .map(|i| {
            let s = &i.sample;
            (
                s.sample_id.clone(),
                s.label.as_ref().unwrap().stratum(),
                s.files.len(),
                s.images.len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("req1".into(), "nsfw".into(), 2, 1),
            ("req2".into(), "safe".into(), 1, 0),
            ("sfw/single".into(), "safe".into(), 1, 0),
        ]
    );
}

#[test]
fn meta_json_reads_labels_per_dimension() {
    let dir = tempfile::tempdir().unwrap();
    let sheet = dir.path().join("sheets/w1");
    fs::create_dir_all(&sheet).unwrap();
    fs::write(sheet.join("page.png"), "png").unwrap();
    fs::write(
        sheet.join("meta.json"),
        r#"{"image": "page.png", "labels": {"Area": "Counting", "Ability": ["Recall", "Procedure"]}, "meta": {"grade": 1}}"#,
    )
    .unwrap();
    let broken = dir.path().join("sheets/w2");
    fs::create_dir_all(&broken).unwrap();
    fs::write(
        broken.join("meta.json"),
        r#"{"image": "x.png", "labels": 3}"#,
    )
    .unwrap();
    let outcome = import_meta_json(&dir.path().join("sheets")).unwrap();
    assert_eq!(outcome.samples.len(), 1);
    let sample = &outcome.samples[0].sample;
    assert_eq!(sample.sample_id, "w1");
    assert!(sample.images[0].ends_with("w1/page.png"));
    assert_eq!(
        sample.label.as_ref().unwrap().stratum(),
        "Ability=Recall+Procedure;Area=Counting"
    );
    assert_eq!(outcome.rejects.len(), 1);
    assert!(outcome.rejects[0].origin.file.ends_with("w2/meta.json"));
}

#[test]
fn validation_reports_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.jsonl");
    fs::write(dir.path().join("exists.txt"), "x").unwrap();
    fs::write(
        &manifest,
        [
            r#"{"sample_id":"a","label":"ok","files":["exists.txt"],"annotated_at":"2024-05-01T10:00:00Z"}"#,
            r#"{"sample_id":"a","label":"ok"}"#,
            r#"{"sample_id":"b","label":"eggs","files":["missing.txt"],"annotated_at":"last tuesday"}"#,
            r#"{"sample_id":"c","label":"spam","votes":{"yes":-1,"no":2}}"#,
            r#"{"sample_id":"","label":"spam"}"#,
            r#"{"sample_id":"d"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let outcome = import_manifest(&manifest).unwrap();
    assert!(outcome.rejects.is_empty());
    assert!(outcome.samples[0].sample.files[0].starts_with(dir.path().to_str().unwrap()));
    let validated = validate(outcome.samples, &spam_task());
    assert_eq!(validated.samples.len(), 1);
    let problems: Vec<(usize, String)> = validated
        .problems()
        .iter()
        .map(|p| (p.line.unwrap(), p.field.clone().unwrap()))
        .collect();
    let expected: Vec<(usize, String)> = [
        (2, "sample_id"),
        (3, "label"),
        (3, "files"),
        (3, "annotated_at"),
        (4, "yes_count"),
        (5, "sample_id"),
        (6, "label"),
    ]
    .into_iter()
    .map(|(l, f)| (l, f.to_string()))
    .collect();
    assert_eq!(problems, expected);
    let text = validated.problems()[0].to_string();
    assert!(
        text.contains("m.jsonl:2") && text.contains("first seen at"),
        "{text}"
    );
}

fn write_print_task(dir: &Path) -> std::path::PathBuf {
    for label in ["nsfw", "sfw", "grey_area"] {
        let count = match label {
            "nsfw" => 12,
            "sfw" => 9,
            _ => 9,
        };
        for i in 0..count {
            let sample = dir.join(format!("requests/{label}/{label}{i}"));
            fs::create_dir_all(&sample).unwrap();
            fs::write(sample.join("body.stl"), format!("solid {label}{i}")).unwrap();
            if i % 3 == 0 {
                fs::write(sample.join("base.stl"), format!("solid base{i}")).unwrap();
            }
        }
    }
    let task = dir.join("task.toml");
    fs::write(
        &task,
        r#"
name = "print-triage"
kind = "single_label"
seed = 5
labels = [{ name = "nsfw" }, { name = "sfw" }, { name = "grey_area" }]
[[sources]]
kind = "folder_tree"
path = "requests"
[split]
benchmark_size = 10
train = 0.8
val = 0.2
"#,
    )
    .unwrap();
    task
}

#[test]
fn split_seals_benchmark_and_detects_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let task = write_print_task(dir.path());
    let workspace = Workspace::open(&task, dir.path()).unwrap();
    assert_eq!(workspace.import(true).unwrap().imported, 30);
    let report = workspace.split(false).unwrap();
    let (bench_dir, sealed_now) = report.benchmark.clone().unwrap();
    assert!(sealed_now);
    assert_eq!(report.counts[0], (Split::Benchmark, 10));
    let samples = workspace.current_samples().unwrap();
    let count = |split: Split, label: &str| {
        samples
            .iter()
            .filter(|s| s.split == Some(split) && s.label.as_ref().unwrap().stratum() == label)
            .count()
    };
    assert_eq!(
        (
            count(Split::Benchmark, "nsfw"),
            count(Split::Benchmark, "sfw"),
            count(Split::Benchmark, "grey_area")
        ),
        (4, 3, 3)
    );
    // Rest: nsfw 8 -> 6/2 (6.4, 1.6), sfw 6 -> 5/1 (4.8, 1.2), grey_area 6 -> 5/1.
    assert_eq!(
        (count(Split::Train, "nsfw"), count(Split::Val, "nsfw")),
        (6, 2)
    );
    assert_eq!(
        (count(Split::Train, "sfw"), count(Split::Val, "sfw")),
        (5, 1)
    );

    // Same seed, same result; the sealed benchmark is reused, not redrawn.
    let again = workspace.split(false).unwrap();
    assert!(!again.benchmark.as_ref().unwrap().1);
    assert_eq!(workspace.current_samples().unwrap(), samples);
    assert!(seal::verify(&bench_dir).unwrap().is_empty());

    // One byte changed in one referenced file.
    let benchmark =
        verdict_core::manifest::read_manifest_strict(&bench_dir.join(seal::MANIFEST_NAME)).unwrap();
    let victim = &benchmark[0];
    let file = Path::new(&victim.files[0]);
    let mut bytes = fs::read(file).unwrap();
    bytes[0] ^= 1;
    fs::write(file, &bytes).unwrap();
    let findings = seal::verify(&bench_dir).unwrap();
    assert_eq!(
        findings,
        [Finding::FileModified {
            sample_id: victim.sample_id.clone(),
            path: victim.files[0].clone()
        }]
    );
    bytes[0] ^= 1;
    fs::write(file, &bytes).unwrap();
    assert!(seal::verify(&bench_dir).unwrap().is_empty());

    // One label edited in the sealed manifest: named, and splitting refuses to go on.
    let manifest = bench_dir.join(seal::MANIFEST_NAME);
    let mut permissions = fs::metadata(&manifest).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    fs::set_permissions(&manifest, permissions).unwrap();
    let original = fs::read_to_string(&manifest).unwrap();
    let first = original.lines().next().unwrap();
    let old_label = victim.label.as_ref().unwrap().stratum();
    let new_label = if old_label == "sfw" { "nsfw" } else { "sfw" };
    let edited = original.replacen(
        first,
        &first.replace(&format!("\"{old_label}\""), &format!("\"{new_label}\"")),
        1,
    );
    fs::write(&manifest, edited).unwrap();
    let findings = seal::verify(&bench_dir).unwrap();
    assert!(matches!(findings[0], Finding::ManifestChanged { .. }));
    assert!(
        matches!(&findings[1], Finding::SampleRelabelled { sample_id, .. } if *sample_id == victim.sample_id)
    );
    let err = workspace.split(false).unwrap_err().to_string();
    assert!(err.contains("relabelled"), "{err}");

    // A new benchmark is a new version; the old one is left as it is.
    let report = workspace.split(true).unwrap();
    assert!(report.benchmark.unwrap().0.ends_with("v2"));
    assert_eq!(fs::read_to_string(&manifest).unwrap().lines().count(), 10);
}

#[test]
fn groups_and_multi_file_samples_stay_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    for i in 0..40 {
        let label = if i % 2 == 0 { "ok" } else { "spam" };
        fs::write(dir.path().join(format!("{i}a.txt")), "a").unwrap();
        fs::write(dir.path().join(format!("{i}b.txt")), "b").unwrap();
        lines.push(format!(
            r#"{{"sample_id":"s{i}","label":"{label}","group":"seller{}","files":["{i}a.txt","{i}b.txt"]}}"#,
            i % 7
        ));
    }
    fs::write(dir.path().join("m.jsonl"), lines.join("\n")).unwrap();
    let task = dir.path().join("task.toml");
    fs::write(
        &task,
        r#"
name = "spam"
kind = "binary_policy"
labels = [{ name = "ok" }, { name = "spam" }]
policy = { positive = "spam", review = 0.5, demote = 0.9 }
sources = [{ kind = "manifest", path = "m.jsonl" }]
split = { train = 0.7, val = 0.3, group_key = "group" }
"#,
    )
    .unwrap();
    let workspace = Workspace::open(&task, dir.path()).unwrap();
    workspace.import(true).unwrap();
    workspace.split(false).unwrap();
    let samples = workspace.current_samples().unwrap();
    let mut sides: BTreeMap<String, Split> = BTreeMap::new();
    for sample in &samples {
        assert_eq!(sample.files.len(), 2);
        let split = sample.split.unwrap();
        assert_eq!(
            *sides.entry(sample.group.clone().unwrap()).or_insert(split),
            split
        );
    }
    assert!(sides.values().any(|s| *s == Split::Val) && sides.values().any(|s| *s == Split::Train));
}

#[test]
fn strict_import_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("m.jsonl"),
        "{\"sample_id\":\"a\",\"label\":\"nope\"}\n",
    )
    .unwrap();
    let task = dir.path().join("task.toml");
    fs::write(
        &task,
        "name = \"t\"\nkind = \"single_label\"\nlabels = [{ name = \"x\" }, { name = \"y\" }]\n\
         sources = [{ kind = \"manifest\", path = \"m.jsonl\" }]\n",
    )
    .unwrap();
    let workspace = Workspace::open(&task, dir.path()).unwrap();
    let err = workspace.import(true).unwrap_err().to_string();
    assert!(
        err.contains("`nope` is not one of the task's labels"),
        "{err}"
    );
    assert!(!workspace.manifest_path().exists());
    let report = workspace.import(false).unwrap();
    assert_eq!((report.imported, report.rejected), (0, 1));
    let rejects = fs::read_to_string(report.rejects).unwrap();
    assert!(rejects.contains("nope"));
    let provenance: Provenance =
        verdict_core::fsio::read_json(&dir.path().join("work/data/manifest.jsonl.provenance.json"))
            .unwrap();
    assert_eq!(provenance.task.as_deref(), Some("t"));
    assert_eq!(provenance.inputs.len(), 1);
}

fn write_manifest_task(dir: &Path, split: &str) -> std::path::PathBuf {
    let mut lines = Vec::new();
    for i in 0..200 {
        let label = ["a", "b", "c", "c"][i % 4];
        lines.push(format!(r#"{{"sample_id":"s{i}","label":"{label}"}}"#));
    }
    fs::write(dir.join("m.jsonl"), lines.join("\n")).unwrap();
    let task = dir.join("task.toml");
    fs::write(
        &task,
        format!(
            "name = \"t\"\nkind = \"single_label\"\nseed = 9\n\
             labels = [{{ name = \"a\" }}, {{ name = \"b\" }}, {{ name = \"c\" }}]\n\
             sources = [{{ kind = \"manifest\", path = \"m.jsonl\" }}]\n[split]\n{split}\n"
        ),
    )
    .unwrap();
    task
}

#[test]
fn seed_002_flow_train_val_test_and_mini_train() {
    let dir = tempfile::tempdir().unwrap();
    let task = write_manifest_task(
        dir.path(),
        "train = 0.8\nval = 0.1\ntest = 0.1\nmini_train = 20",
    );
    let workspace = Workspace::open(&task, dir.path()).unwrap();
    workspace.import(true).unwrap();
    let report = workspace.split(false).unwrap();
    assert_eq!(
        report.counts,
        [(Split::Train, 160), (Split::Val, 20), (Split::Test, 20)]
    );
    assert_eq!(report.mini_train, Some(20));
    let mini =
        verdict_core::manifest::read_manifest_strict(&workspace.split_path("mini_train")).unwrap();
    let count = |label: &str| {
        mini.iter()
            .filter(|s| s.label == Some(LabelValue::Single(label.into())))
            .count()
    };
    assert_eq!((count("a"), count("b"), count("c")), (5, 5, 10));
    assert!(mini.iter().all(|s| s.split == Some(Split::Train)));
}

#[test]
fn seed_000_flow_benchmark_and_train_pool() {
    let dir = tempfile::tempdir().unwrap();
    let task = write_manifest_task(dir.path(), "benchmark_size = 100\ntrain = 1.0\nval = 0.0");
    let workspace = Workspace::open(&task, dir.path()).unwrap();
    workspace.import(true).unwrap();
    let report = workspace.split(false).unwrap();
    assert_eq!(
        report.counts,
        [(Split::Benchmark, 100), (Split::TrainPool, 100)]
    );
    let sealed = seal::load_verified(&report.benchmark.unwrap().0).unwrap();
    assert_eq!(sealed.len(), 100);
    assert!(sealed.iter().all(|s| s.split == Some(Split::Benchmark)));
}
