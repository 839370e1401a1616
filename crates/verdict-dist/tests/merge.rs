//! Merging parts: complete sets merge, incomplete or inconsistent ones are refused clearly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use verdict_dist::{merge, MergeKind, MergeOptions, ShardSpec};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn part(dir: &Path, index: usize, count: usize, extension: &str) -> PathBuf {
    let name = ShardSpec::new(index, count).unwrap().part_name();
    dir.join(if extension.is_empty() {
        name
    } else {
        format!("{name}.{extension}")
    })
}

fn keyed(id: &str) -> MergeOptions {
    MergeOptions {
        key: Some(id.into()),
        overwrite: false,
    }
}

/// Predictions of 10 items split by position over 3 shards, merged back by id.
#[test]
fn jsonl_parts_merge_by_key_in_stable_order() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..10).map(|i| format!("item-{i:02}")).collect();
    for index in 0..3 {
        let shard = ShardSpec::new(index, 3).unwrap();
        let lines: String = shard
            .select_by_position(&ids)
            .iter()
            .rev() // shards may write in any order
            .map(|id| format!("{{\"id\":\"{id}\",\"score\":0.5}}\n"))
            .collect();
        write(&part(dir.path(), index, 3, "jsonl"), &lines);
    }
    write(&dir.path().join("notes.txt"), "not a part, ignored");
    let out = dir.path().join("merged.jsonl");
    let summary = merge(&[dir.path().to_path_buf()], &out, &keyed("id")).unwrap();
    assert_eq!(
        (summary.kind, summary.parts, summary.items),
        (MergeKind::Jsonl, 3, 10)
    );
    let merged = std::fs::read_to_string(&out).unwrap();
    let got: Vec<String> = merged
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(got, ids);
    // Refuses to overwrite unless asked.
    let message = merge(&[dir.path().to_path_buf()], &out, &keyed("id"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("already exists"), "{message}");
    let again = MergeOptions {
        overwrite: true,
        ..keyed("id")
    };
    merge(&[dir.path().to_path_buf()], &out, &again).unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), merged);
}

#[test]
fn incomplete_or_inconsistent_parts_are_refused() {
    // (what the case breaks, the part files and their contents, the expected error)
    type Case<'a> = (&'a str, Vec<(String, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "missing",
            vec![
                ("part-0-of-3.jsonl".into(), "{\"id\":1}\n"),
                ("part-2-of-3.jsonl".into(), "{\"id\":3}\n"),
            ],
            "1 of 3 parts missing (shards 1/3)",
        ),
        (
            "duplicate",
            vec![
                ("part-0-of-2.jsonl".into(), "{\"id\":1}\n"),
                ("part-00000-of-00002.jsonl".into(), "{\"id\":1}\n"),
                ("part-1-of-2.jsonl".into(), "{\"id\":2}\n"),
            ],
            "shard 0/2 appears twice",
        ),
        (
            "mixed counts",
            vec![
                ("part-0-of-2.jsonl".into(), "{\"id\":1}\n"),
                ("part-1-of-3.jsonl".into(), "{\"id\":2}\n"),
            ],
            "different shard counts",
        ),
        (
            "mixed kinds",
            vec![
                ("part-0-of-2.jsonl".into(), "{\"id\":1}\n"),
                ("part-1-of-2.csv".into(), "id\n2\n"),
            ],
            "different kinds",
        ),
        (
            "same key twice",
            vec![
                ("part-0-of-2.jsonl".into(), "{\"id\":1}\n{\"id\":2}\n"),
                ("part-1-of-2.jsonl".into(), "{\"id\":2}\n"),
            ],
            "key 2 appears twice",
        ),
        (
            "no key",
            vec![("part-0-of-1.jsonl".into(), "{\"id\":1}\n{\"name\":2}\n")],
            "part-0-of-1.jsonl:2: record has no key field `id`",
        ),
        (
            "bad json",
            vec![("part-0-of-1.jsonl".into(), "{\"id\":1}\n{oops\n")],
            "part-0-of-1.jsonl:2: not a JSON record",
        ),
        (
            "bad name",
            vec![("part-3-of-3.jsonl".into(), "")],
            "must be below the count",
        ),
        (
            "unknown kind",
            vec![("part-0-of-1.csv".into(), "")],
            "cannot merge `.csv` parts",
        ),
        (
            "nothing",
            vec![("other.jsonl".into(), "")],
            "no parts found",
        ),
    ];
    for (name, files, needle) in cases {
        let dir = tempfile::tempdir().unwrap();
        let parts = dir.path().join("parts");
        std::fs::create_dir(&parts).unwrap();
        for (file, text) in &files {
            write(&parts.join(file), text);
        }
        let out = dir.path().join("out.jsonl");
        let message = merge(&[parts], &out, &keyed("id")).unwrap_err().to_string();
        assert!(message.contains(needle), "{name}: {message}");
        assert!(!out.exists(), "{name}: no output after a failed merge");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers.len(),
            1,
            "{name}: temporary files left: {leftovers:?}"
        );
    }
}

/// Render outputs: each shard a folder of images plus a manifest; a config all shards wrote.
#[test]
fn folder_parts_merge_into_one_tree() {
    let dir = tempfile::tempdir().unwrap();
    for index in 0..2 {
        let root = part(dir.path(), index, 2, "");
        write(
            &root.join(format!("views/model-{index}/front.png")),
            &format!("png {index}"),
        );
        write(
            &root.join("manifest.jsonl"),
            &format!("{{\"id\":\"model-{}\"}}\n", 1 - index),
        );
        write(&root.join("render_config.json"), "{\"size\":256}");
    }
    let out = dir.path().join("renders");
    let summary = merge(&[dir.path().to_path_buf()], &out, &keyed("id")).unwrap();
    assert_eq!((summary.kind, summary.items), (MergeKind::Tree, 4));
    assert_eq!(
        std::fs::read_to_string(out.join("views/model-1/front.png")).unwrap(),
        "png 1"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("manifest.jsonl")).unwrap(),
        "{\"id\":\"model-0\"}\n{\"id\":\"model-1\"}\n"
    );
    // Same path, different content: refused, and the earlier output stays intact.
    write(
        &part(dir.path(), 1, 2, "").join("render_config.json"),
        "{\"size\":512}",
    );
    let again = MergeOptions {
        overwrite: true,
        ..keyed("id")
    };
    let message = merge(&[dir.path().to_path_buf()], &out, &again)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("render_config.json exists in several parts with different content"),
        "{message}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("render_config.json")).unwrap(),
        "{\"size\":256}"
    );
}

fn embeddings(ids: &[&str], dims: usize, wide_ids: bool) -> RecordBatch {
    let id_type = if wide_ids {
        DataType::LargeUtf8
    } else {
        DataType::Utf8
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", id_type, false),
        Field::new("x", DataType::Float32, false),
    ]));
    let x: Vec<f32> = (0..ids.len()).map(|i| (i * dims) as f32).collect();
    let id_column: ArrayRef = if wide_ids {
        Arc::new(arrow_array::LargeStringArray::from(ids.to_vec()))
    } else {
        Arc::new(StringArray::from(ids.to_vec()))
    };
    RecordBatch::try_new(schema, vec![id_column, Arc::new(Float32Array::from(x))]).unwrap()
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_parts_concatenate_rows_in_shard_order() {
    let dir = tempfile::tempdir().unwrap();
    write_parquet(
        &part(dir.path(), 1, 2, "parquet"),
        &embeddings(&["c"], 1, false),
    );
    write_parquet(
        &part(dir.path(), 0, 2, "parquet"),
        &embeddings(&["a", "b"], 1, false),
    );
    let out = dir.path().join("embeddings.parquet");
    let summary = merge(&[dir.path().to_path_buf()], &out, &MergeOptions::default()).unwrap();
    assert_eq!((summary.kind, summary.items), (MergeKind::Parquet, 3));
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&out).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let column = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        ids.extend(column.iter().map(|v| v.unwrap().to_string()));
    }
    assert_eq!(ids, ["a", "b", "c"]);

    write_parquet(
        &part(dir.path(), 1, 2, "parquet"),
        &embeddings(&["c"], 1, true),
    );
    let message = merge(
        &[dir.path().to_path_buf()],
        &dir.path().join("x.parquet"),
        &MergeOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(message.contains("must share a schema"), "{message}");
    assert!(!dir.path().join("x.parquet").exists());
}
