//! The image cache against a loopback server that misbehaves on purpose.

mod common;

use std::time::Duration;

use common::server::{Behaviour, Route, TestServer};
use verdict_media::cache::{
    export_zip, import_zip, read_status_csv, write_status_csv, FetchOptions, ImageCache,
};

fn fast_options() -> FetchOptions {
    FetchOptions {
        concurrency: 8,
        retries: 3,
        backoff_base_ms: 10,
        backoff_max_ms: 50,
        connect_timeout_ms: 2_000,
        timeout_ms: 1_500,
        max_bytes: 1024 * 1024,
        ..FetchOptions::default()
    }
}

#[test]
fn every_failure_mode_gives_a_clear_row_and_no_cache_file() {
    let server = TestServer::start();
    let jpeg = common::image_bytes(64, 48, 1, image::ImageFormat::Jpeg);
    let png = common::image_bytes(32, 32, 2, image::ImageFormat::Png);
    let ok_jpeg = server.add("/a/photo.jpeg", Route::ok(jpeg.clone(), "image/jpeg"));
    let flaky = server.add(
        "/flaky.png?v=1",
        Route {
            fail_first: 2,
            ..Route::ok(png.clone(), "image/png")
        },
    );
    let html = server.add(
        "/html.jpg",
        Route::ok(b"<!DOCTYPE html><html>oops</html>".to_vec(), "text/html"),
    );
    let html_lying = server.add(
        "/lying.jpg",
        Route::ok(b"<html><body>login</body></html>".to_vec(), "image/jpeg"),
    );
    let truncated = server.add(
        "/cut.jpg",
        Route {
            behaviour: Behaviour::Truncate,
            ..Route::ok(jpeg.clone(), "image/jpeg")
        },
    );
    let huge = server.add(
        "/huge.jpg",
        Route {
            behaviour: Behaviour::HugeDeclared(50 * 1024 * 1024),
            ..Route::ok(Vec::new(), "image/jpeg")
        },
    );
    let huge_streamed = server.add(
        "/huge-stream.jpg",
        Route {
            behaviour: Behaviour::HugeUndeclared(8 * 1024 * 1024),
            ..Route::ok(Vec::new(), "image/jpeg")
        },
    );
    let stalled = server.add(
        "/slow.jpg",
        Route {
            behaviour: Behaviour::Stall(Duration::from_secs(4)),
            ..Route::ok(jpeg.clone(), "image/jpeg")
        },
    );
    let gone = server.add(
        "/gone.jpg",
        Route {
            behaviour: Behaviour::Status(404),
            ..Route::ok(Vec::new(), "image/jpeg")
        },
    );
    let down = server.add(
        "/down.jpg",
        Route {
            fail_first: 100,
            ..Route::ok(jpeg.clone(), "image/jpeg")
        },
    );
    let refused = format!("http://127.0.0.1:{}/nothing.jpg", common::free_port());

    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::new(dir.path().join("cache"));
    let mut options = fast_options();
    options.retries = 2;
    let urls: Vec<String> = vec![
        ok_jpeg.clone(),
        flaky.clone(),
        html.clone(),
        html_lying.clone(),
        truncated.clone(),
        huge.clone(),
        huge_streamed.clone(),
        stalled.clone(),
        gone.clone(),
        down.clone(),
        refused.clone(),
        ok_jpeg.clone(),
    ];
    let outcomes = cache.fetch_all(&urls, &options, &|_| {}).unwrap();
    assert_eq!(
        outcomes.len(),
        urls.len() - 1,
        "duplicates are fetched once"
    );
    let by_url = |url: &str| outcomes.iter().find(|o| o.url == url).unwrap();

    let first = by_url(&ok_jpeg);
    assert!(first.ok, "{first:?}");
    let path = first.path.clone().unwrap();
    assert!(path
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .ends_with(".jpeg"));
    assert_eq!(std::fs::read(&path).unwrap(), jpeg);
    assert_eq!(first.bytes, jpeg.len() as u64);

    let recovered = by_url(&flaky);
    assert!(recovered.ok, "{recovered:?}");
    assert_eq!(recovered.attempts, 3, "two 503s, then success");
    assert_eq!(server.hits("/flaky.png?v=1"), 3);
    assert!(recovered
        .path
        .as_ref()
        .unwrap()
        .to_str()
        .unwrap()
        .ends_with(".png"));

    let expect_error = |url: &str, needle: &str, status: Option<u16>| {
        let outcome = by_url(url);
        assert!(!outcome.ok, "{url} should fail");
        assert!(outcome.path.is_none());
        let error = outcome.error.clone().unwrap();
        assert!(error.contains(needle), "{url}: `{error}` lacks `{needle}`");
        assert_eq!(outcome.http_status, status, "{url}");
        assert!(!cache.path_for(url).exists(), "{url} left a cache file");
    };
    expect_error(&html, "served as `text/html`", Some(200));
    expect_error(&html_lying, "an HTML page", Some(200));
    expect_error(&truncated, "truncated", Some(200));
    expect_error(&huge, "too large: 52428800 bytes declared", Some(200));
    expect_error(&huge_streamed, "too large: body exceeds", Some(200));
    expect_error(&stalled, "timed out", None);
    expect_error(&gone, "HTTP 404", Some(404));
    expect_error(&down, "HTTP 503", Some(503));
    expect_error(&refused, "request failed", None);

    // Not retried: HTML and 404 are answers, not hiccups. Retried: cut bodies and 503s.
    assert_eq!(server.hits("/html.jpg"), 1);
    assert_eq!(server.hits("/gone.jpg"), 1);
    assert_eq!(server.hits("/cut.jpg"), 3);
    assert_eq!(server.hits("/down.jpg"), 3);

    // Nothing but good images (no temp files) in the cache folder.
    let files: Vec<_> = std::fs::read_dir(cache.dir()).unwrap().collect();
    assert_eq!(files.len(), 2);

    // Status CSV round trip.
    let csv_path = dir.path().join("image_download_status.csv");
    write_status_csv(&csv_path, &outcomes).unwrap();
    let text = std::fs::read_to_string(&csv_path).unwrap();
    assert!(
        text.starts_with("url,path,ok,http_status,bytes,error\n"),
        "{text}"
    );
    let back = read_status_csv(&csv_path).unwrap();
    assert_eq!(back.len(), outcomes.len());
    assert_eq!(back[2].error, outcomes[2].error);

    // A second run serves from the cache without requests.
    let again = cache
        .fetch_all(std::slice::from_ref(&ok_jpeg), &options, &|_| {})
        .unwrap();
    assert!(again[0].ok && again[0].attempts == 0);
    assert_eq!(server.hits("/a/photo.jpeg"), 1);
}

#[test]
fn zip_export_import_round_trip_refuses_foreign_entries() {
    let server = TestServer::start();
    let mut urls = Vec::new();
    for i in 0..5 {
        let body = common::image_bytes(16, 16, i, image::ImageFormat::Png);
        urls.push(server.add(&format!("/i{i}.png"), Route::ok(body, "image/png")));
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::new(dir.path().join("a"));
    let outcomes = cache.fetch_all(&urls, &fast_options(), &|_| {}).unwrap();
    assert!(outcomes.iter().all(|o| o.ok));
    let archive = dir.path().join("cache.zip");
    assert_eq!(export_zip(cache.dir(), &archive).unwrap(), 5);

    let other = ImageCache::new(dir.path().join("b"));
    let report = import_zip(&archive, other.dir()).unwrap();
    assert_eq!(
        (report.imported, report.existing, report.rejected.len()),
        (5, 0, 0)
    );
    for url in &urls {
        assert!(other.lookup(url).is_some());
    }

    // A hostile archive: traversal, a non-image under a cache name, a good image.
    let hostile = dir.path().join("hostile.zip");
    let good_name = verdict_media::cache::cache_file_name("http://x/new.png");
    {
        let file = std::fs::File::create(&hostile).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default();
        use std::io::Write;
        zip.start_file("../escape.png", options).unwrap();
        zip.write_all(b"x").unwrap();
        zip.start_file(format!("{}.jpg", "0".repeat(40)), options)
            .unwrap();
        zip.write_all(b"<html>not an image</html>").unwrap();
        zip.start_file(good_name.as_str(), options).unwrap();
        zip.write_all(&common::image_bytes(8, 8, 9, image::ImageFormat::Png))
            .unwrap();
        zip.finish().unwrap();
    }
    let report = import_zip(&hostile, other.dir()).unwrap();
    assert_eq!(report.imported, 1);
    assert_eq!(report.rejected.len(), 2, "{:?}", report.rejected);
    assert!(report.rejected[0].1.contains("not a cache file name"));
    assert!(report.rejected[1].1.contains("not an image"));
    assert!(!dir.path().join("escape.png").exists());
    assert!(other.dir().join(&good_name).exists());
}
