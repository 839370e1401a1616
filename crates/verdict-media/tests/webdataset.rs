//! Shards in both directions with the Python `webdataset` library, plus hostile tars.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use sha1::{Digest, Sha1};
use verdict_media::shards::{
    build_split_shards, list_shards, mini_train, ResizeSpec, ShardOptions, ShardReader,
    ShardSample, ShardWriter,
};

/// key -> ext -> sha1 of the member.
type Digests = BTreeMap<String, BTreeMap<String, String>>;

fn digest(sample: &ShardSample) -> BTreeMap<String, String> {
    sample
        .members
        .iter()
        .map(|(ext, data)| (ext.clone(), hex::encode(Sha1::digest(data))))
        .collect()
}

const READ_WITH_WEBDATASET: &str = r#"
import hashlib, json, sys
import webdataset as wds
out = {}
for sample in wds.WebDataset(sys.argv[1:], shardshuffle=False):
    key = sample["__key__"]
    out[key] = {k: hashlib.sha1(v).hexdigest() for k, v in sample.items()
                if not k.startswith("__")}
print(json.dumps(out))
"#;

const WRITE_WITH_WEBDATASET: &str = r#"
import hashlib, json, sys
import webdataset as wds
pattern = sys.argv[1]
out = {}
with wds.ShardWriter(pattern, maxcount=3, verbose=0) as sink:
    for i in range(8):
        jpg = bytes([0xFF, 0xD8, 0xFF]) + bytes((i * 7 + j) % 256 for j in range(1000 + i)) + bytes([0xFF, 0xD9])
        sample = {"__key__": "s%03d" % i, "jpg": jpg, "txt": "caption %d" % i,
                  "json": {"sample_id": "s%03d" % i, "label": "ok" if i % 2 else "bad"}}
        sink.write(sample)
        # webdataset encodes txt as utf-8 and json with json.dumps.
        out["s%03d" % i] = {"jpg": hashlib.sha1(jpg).hexdigest(),
                            "txt": hashlib.sha1(sample["txt"].encode()).hexdigest(),
                            "json": hashlib.sha1(json.dumps(sample["json"]).encode()).hexdigest()}
print(json.dumps(out))
"#;

#[test]
fn verdict_shards_read_by_webdataset() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = ShardWriter::new(dir.path().join("train"), 4, 1 << 30).unwrap();
    let mut expected = Digests::new();
    for i in 0..10u32 {
        let format = if i % 3 == 0 {
            image::ImageFormat::Png
        } else {
            image::ImageFormat::Jpeg
        };
        let ext = if i % 3 == 0 { "png" } else { "jpg" };
        let sample = ShardSample {
            key: format!("sample-{i:03}"),
            members: vec![
                (ext.into(), common::image_bytes(20 + i, 10, i, format)),
                ("txt".into(), format!("listing text {i} ✓").into_bytes()),
                (
                    "json".into(),
                    format!("{{\"sample_id\": \"sample-{i:03}\"}}").into_bytes(),
                ),
            ],
        };
        expected.insert(sample.key.clone(), digest(&sample));
        writer.write(&sample).unwrap();
    }
    let shards = writer.finish().unwrap();
    assert_eq!(shards.len(), 3);
    let args: Vec<&str> = shards.iter().map(|p| p.to_str().unwrap()).collect();
    let seen: Digests =
        serde_json::from_str(&common::run_python(READ_WITH_WEBDATASET, &args)).unwrap();
    assert_eq!(seen, expected);
}

#[test]
fn webdataset_shards_read_by_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("shard-%06d.tar");
    let expected: Digests = serde_json::from_str(&common::run_python(
        WRITE_WITH_WEBDATASET,
        &[pattern.to_str().unwrap()],
    ))
    .unwrap();
    let shards = list_shards(dir.path()).unwrap();
    assert_eq!(shards.len(), 3, "8 samples at 3 per shard");
    let mut seen = Digests::new();
    for sample in ShardReader::new(shards.clone()).iter() {
        let sample = sample.unwrap();
        seen.insert(sample.key.clone(), digest(&sample));
    }
    assert_eq!(seen, expected);
    // Two workers split the three shards (3, 3, 2 samples): shards 0 and 2, then shard 1.
    let reader = ShardReader::new(shards);
    let first: Vec<_> = reader
        .clone()
        .with_worker("0/2".parse().unwrap())
        .iter()
        .collect();
    let second: Vec<_> = reader.with_worker("1/2".parse().unwrap()).iter().collect();
    assert_eq!((first.len(), second.len()), (5, 3));
}

#[test]
fn traversal_tar_is_an_error_naming_the_member() {
    let dir = tempfile::tempdir().unwrap();
    let evil = dir.path().join("evil.tar");
    common::run_python(
        r#"
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as tar:
    for name, data in [("ok.txt", b"fine"), ("../../etc/evil.txt", b"x")]:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
"#,
        &[evil.to_str().unwrap()],
    );
    let results: Vec<_> = ShardReader::new(vec![evil.clone()]).iter().collect();
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(results[0].as_ref().unwrap().key, "ok");
    let error = results[1].as_ref().unwrap_err().to_string();
    assert!(
        error.contains("evil.tar")
            && error.contains("../../etc/evil.txt")
            && error.contains("traversal"),
        "{error}"
    );
    assert!(!dir.path().parent().unwrap().join("etc/evil.txt").exists());
}

#[test]
fn manifest_to_split_shards_with_resize_and_mini_train() {
    let dir = tempfile::tempdir().unwrap();
    let mut samples = Vec::new();
    let mut images: BTreeMap<String, PathBuf> = BTreeMap::new();
    for i in 0..9u32 {
        let mut sample = verdict_core::Sample::new(format!("id.{i}"));
        sample.text = Some(format!("text {i}"));
        sample.split = Some(if i < 6 {
            verdict_core::Split::Train
        } else {
            verdict_core::Split::Val
        });
        if i != 4 {
            let path = dir.path().join(format!("img{i}.png"));
            std::fs::write(
                &path,
                common::image_bytes(40, 20 + i, i, image::ImageFormat::Png),
            )
            .unwrap();
            images.insert(sample.sample_id.clone(), path);
        }
        samples.push(sample);
    }
    // One broken image: the sample is written text-only and reported.
    std::fs::write(images.get("id.7").unwrap(), b"<html>").unwrap();
    let options = ShardOptions {
        max_count: 2,
        resize: Some(ResizeSpec {
            size: 32,
            fill: [255, 255, 255],
            quality: 90,
        }),
        ..ShardOptions::default()
    };
    let out = dir.path().join("shards");
    let report = build_split_shards(
        &samples,
        &|s| images.get(&s.sample_id).cloned(),
        &out,
        &options,
    )
    .unwrap();
    assert_eq!(report.samples, 9);
    assert_eq!((report.with_image, report.without_image), (7, 2));
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].contains("id.7"));
    assert_eq!(report.splits.len(), 2);
    assert_eq!(report.splits[0].0, "train");
    assert_eq!(report.splits[0].1.len(), 3);

    let read: Vec<ShardSample> = ShardReader::new(list_shards(&out.join("train")).unwrap())
        .iter()
        .map(|s| s.unwrap())
        .collect();
    assert_eq!(read[0].key, "id_0");
    let jpg = image::load_from_memory(read[0].member("jpg").unwrap()).unwrap();
    assert_eq!((jpg.width(), jpg.height()), (32, 32));
    let json: serde_json::Value = serde_json::from_slice(read[4].member("json").unwrap()).unwrap();
    assert_eq!(json["sample_id"], "id.4");
    assert_eq!(json["image_present"], false);
    assert!(read[4].member("jpg").is_none());

    let mini = mini_train(&out.join("train"), 2, &out.join("mini_train")).unwrap();
    assert_eq!(mini.len(), 2);
    let args: Vec<&str> = mini.iter().map(|p| p.to_str().unwrap()).collect();
    let seen: Digests =
        serde_json::from_str(&common::run_python(READ_WITH_WEBDATASET, &args)).unwrap();
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        ["id_0", "id_1", "id_2", "id_3"]
    );
}
