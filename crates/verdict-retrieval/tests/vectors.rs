//! The vector file round-trips, and pyarrow reads it with exactly the documented schema.

use std::path::Path;
use std::process::Command;

use verdict_retrieval::vectors::BATCH_ROWS;
use verdict_retrieval::{EmbeddingRecord, VectorFile, VectorFileWriter};

fn records(n: usize, dim: usize, finetuned: bool) -> Vec<EmbeddingRecord> {
    (0..n)
        .map(|i| {
            let angle = i as f32 * 0.1;
            let mut v = vec![0f32; dim];
            v[0] = angle.cos();
            v[1] = angle.sin();
            EmbeddingRecord {
                image_id: format!("img-{i:04}"),
                path: format!("images/{i}.png"),
                text: (i % 3 != 0).then(|| format!("caption {i}")),
                label: (i % 2 == 0).then(|| "sfw".to_string()),
                split: Some(if i % 5 == 0 { "test" } else { "train" }.to_string()),
                base_embedding: v.clone(),
                finetuned_embedding: finetuned.then(|| v.iter().rev().copied().collect()),
            }
        })
        .collect()
}

fn write(path: &Path, rows: &[EmbeddingRecord], dim: usize, finetuned: bool) {
    let mut writer = VectorFileWriter::create(path, dim, finetuned).unwrap();
    writer.write(rows.iter().cloned()).unwrap();
    writer.finish().unwrap();
}

#[test]
fn round_trips_across_several_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.parquet");
    let rows = records(BATCH_ROWS * 2 + 5, 4, true);
    write(&path, &rows, 4, true);
    let file = VectorFile::read(&path).unwrap();
    assert_eq!(file.dim, 4);
    assert!(file.has_finetuned);
    assert_eq!(file.records, rows);
    assert!(!dir.path().join(".vectors.parquet.partial").exists());
}

#[test]
fn a_dimension_mismatch_is_refused_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.parquet");
    let mut writer = VectorFileWriter::create(&path, 3, false).unwrap();
    let mut bad = records(1, 4, false);
    bad[0].base_embedding.pop();
    bad[0].base_embedding.pop();
    let err = writer.write(bad).unwrap_err().to_string();
    assert!(err.contains("img-0000"), "{err}");
    drop(writer);
    assert!(!path.exists());
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

fn python() -> String {
    if let Ok(python) = std::env::var("VERDICT_PYTHON") {
        return python;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new(root.join("scripts/python-env"))
        .current_dir(&root)
        .output()
        .expect("run scripts/python-env (or set VERDICT_PYTHON)");
    assert!(
        output.status.success(),
        "scripts/python-env failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn pyarrow_reads_the_documented_schema() {
    let dir = tempfile::tempdir().unwrap();
    for finetuned in [true, false] {
        let path = dir.path().join(format!("v{finetuned}.parquet"));
        let rows = records(BATCH_ROWS + 3, 8, finetuned);
        write(&path, &rows, 8, finetuned);
        let script = r#"
import json, sys
import pyarrow as pa, pyarrow.parquet as pq
table = pq.read_table(sys.argv[1])
print(json.dumps({
    "schema": [[f.name, str(f.type), f.nullable] for f in table.schema],
    "rows": table.num_rows,
    "first": table.column("base_embedding")[1].as_py(),
    "text0": table.column("text")[0].as_py(),
    "label1": table.column("label")[1].as_py(),
}))
"#;
        let output = Command::new(python())
            .args(["-c", script, path.to_str().unwrap()])
            .output()
            .expect("python with pyarrow");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let mut expected = serde_json::json!([
            ["image_id", "string", false],
            ["path", "string", false],
            ["text", "string", true],
            ["label", "string", true],
            ["split", "string", true],
            ["base_embedding", "fixed_size_list<item: float>[8]", false],
        ]);
        if finetuned {
            expected.as_array_mut().unwrap().push(serde_json::json!([
                "finetuned_embedding",
                "fixed_size_list<item: float>[8]",
                true
            ]));
        }
        assert_eq!(value["schema"], expected);
        assert_eq!(value["rows"], rows.len());
        let first: Vec<f32> = serde_json::from_value(value["first"].clone()).unwrap();
        assert_eq!(first, rows[1].base_embedding);
        assert!(value["text0"].is_null());
        assert!(value["label1"].is_null());
    }
}
