//! Object storage against a real S3-compatible server (moto in server mode, from the test
//! environment) started on a free loopback port for this test and stopped after it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use verdict_media::dvc::{pull, push, DvcRepo};
use verdict_media::store::{block_on, copy, BucketLayout, CopyOptions, Location, TransferProgress};

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn raw_request(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

fn start_moto() -> Server {
    let port = common::free_port();
    let child = Command::new(common::python())
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto server (pip package moto[server], see scripts/test-requirements.txt)");
    let server = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

struct Counter(std::sync::atomic::AtomicU64);

impl TransferProgress for Counter {
    fn advance(&self, bytes: u64) {
        self.0.fetch_add(bytes, std::sync::atomic::Ordering::SeqCst);
    }
}

fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn s3_layout_copies_multipart_and_dvc_remote() {
    let server = start_moto();
    let response = raw_request(
        server.port,
        &format!("PUT /verdict-data HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", server.port),
    );
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "bucket creation: {response}"
    );
    // Only this test in this binary touches the environment.
    for (key, value) in [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        (
            "AWS_ENDPOINT_URL",
            &format!("http://127.0.0.1:{}", server.port),
        ),
    ] {
        std::env::set_var(key, value);
    }

    // A local tree in the bucket layout goes up and comes back unchanged.
    let dir = tempfile::tempdir().unwrap();
    let local = BucketLayout::new(Location::local(&dir.path().join("local")).unwrap());
    let files = [
        (
            local.raw_stl("s-1", "part_a.stl").unwrap(),
            b"solid a\nendsolid a\n".to_vec(),
        ),
        (
            local.rendered("s-1", "front").unwrap(),
            common::image_bytes(24, 24, 3, image::ImageFormat::Png),
        ),
        (local.dataset_full(), b"{\"sample_id\": \"s-1\"}\n".to_vec()),
        (
            local.dataset_benchmark(),
            b"{\"sample_id\": \"s-1\", \"split\": \"benchmark\"}\n".to_vec(),
        ),
    ];
    for (location, bytes) in &files {
        block_on(location.put(bytes.clone().into()))
            .unwrap()
            .unwrap();
    }
    let bucket = Location::parse("s3://verdict-data/team/v1").unwrap();
    let progress = Counter(Default::default());
    let up = block_on(copy(
        local.root(),
        &bucket,
        false,
        &CopyOptions::default(),
        &progress,
    ))
    .unwrap()
    .unwrap();
    assert_eq!(up.files, 4);
    assert_eq!(
        progress.0.load(std::sync::atomic::Ordering::SeqCst),
        up.bytes
    );
    let remote = BucketLayout::new(bucket.clone());
    let listed = block_on(bucket.list()).unwrap().unwrap();
    let names: Vec<&str> = listed.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "datasets/dataset_benchmark.jsonl",
            "datasets/dataset_full.jsonl",
            "raw/stl/s-1/part_a.stl",
            "rendered/s-1/front.png"
        ]
    );
    let render = block_on(remote.rendered("s-1", "front").unwrap().get())
        .unwrap()
        .unwrap();
    assert_eq!(render.as_ref(), files[1].1.as_slice());
    let back = dir.path().join("back");
    block_on(copy(
        &bucket,
        &Location::local(&back).unwrap(),
        false,
        &CopyOptions::default(),
        &(),
    ))
    .unwrap()
    .unwrap();
    assert_eq!(tree(&back), tree(&dir.path().join("local")));

    // A large file goes up in parts (moto enforces S3's 5 MiB minimum part size) and its
    // multipart ETag (`<md5>-<parts>`) shows the server assembled three parts.
    let big = dir.path().join("big.bin");
    let bytes: Vec<u8> = (0..12 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(&big, &bytes).unwrap();
    let options = CopyOptions {
        multipart_threshold: 6 * 1024 * 1024,
        part_size: 5 * 1024 * 1024,
        parts_in_flight: 2,
    };
    let target = bucket.child("blobs/big.bin");
    let report = block_on(copy(
        &Location::local(&big).unwrap(),
        &target,
        false,
        &options,
        &(),
    ))
    .unwrap()
    .unwrap();
    assert_eq!((report.multipart, report.bytes), (1, bytes.len() as u64));
    let etag = common::run_python(
        r#"
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
print(s3.head_object(Bucket="verdict-data", Key="team/v1/blobs/big.bin")["ETag"])
"#,
        &[&format!("http://127.0.0.1:{}", server.port)],
    );
    assert!(etag.trim().trim_matches('"').ends_with("-3"), "{etag}");
    let downloaded = dir.path().join("down/big.bin");
    block_on(copy(
        &target,
        &Location::local(&downloaded).unwrap(),
        false,
        &options,
        &(),
    ))
    .unwrap()
    .unwrap();
    assert!(std::fs::read(&downloaded).unwrap() == bytes);

    // A DVC remote on S3: push from one project, pull into another, check out.
    let project = dir.path().join("project");
    let repo = DvcRepo::init(&project).unwrap();
    std::fs::create_dir_all(project.join("data/views")).unwrap();
    std::fs::write(project.join("data/views/a.png"), &files[1].1).unwrap();
    std::fs::write(project.join("data/manifest.jsonl"), &files[2].1).unwrap();
    let pointer = repo.add(&project.join("data")).unwrap();
    let dvc_remote = bucket.child("dvc");
    let pushed = block_on(push(&repo, &[pointer.as_path()], &dvc_remote))
        .unwrap()
        .unwrap();
    assert_eq!(pushed.transferred, 3);
    let again = block_on(push(&repo, &[pointer.as_path()], &dvc_remote))
        .unwrap()
        .unwrap();
    assert_eq!((again.transferred, again.present), (0, 3));
    let other = dir.path().join("other");
    let other_repo = DvcRepo::init(&other).unwrap();
    std::fs::copy(&pointer, other.join("data.dvc")).unwrap();
    let pulled = block_on(pull(
        &other_repo,
        &[other.join("data.dvc").as_path()],
        &dvc_remote,
    ))
    .unwrap()
    .unwrap();
    assert_eq!(pulled.transferred, 3);
    other_repo.checkout(&other.join("data.dvc")).unwrap();
    assert_eq!(tree(&other.join("data")), tree(&project.join("data")));

    // Unknown buckets and schemes fail with the location in the message.
    let error = block_on(Location::parse("s3://no-such-bucket/x").unwrap().list())
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(error.contains("s3://no-such-bucket/x"), "{error}");
    let error = Location::parse("ftp://host/x").unwrap_err().to_string();
    assert!(error.contains("not supported"), "{error}");
}
