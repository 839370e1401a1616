//! What Verdict records must satisfy DVC itself (DVC 3, installed in the test environment),
//! and what DVC records must work in Verdict.

mod common;

use std::path::Path;
use std::process::Command;

use verdict_media::dvc::{pull, push, DvcRepo, OutStatus};
use verdict_media::store::{block_on, Location};

fn dvc(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(common::python())
        .args(["-m", "dvc"])
        .args(args)
        .current_dir(dir)
        .env("DVC_NO_ANALYTICS", "1")
        .env("DVC_SITE_CACHE_DIR", dir.join(".dvc-site"))
        .output()
        .expect("start dvc");
    assert!(
        output.status.success(),
        "dvc {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn make_data(root: &Path) {
    std::fs::create_dir_all(root.join("renders/s1")).unwrap();
    std::fs::create_dir_all(root.join("renders/s2 (copy)")).unwrap();
    std::fs::write(
        root.join("renders/s1/front.png"),
        common::image_bytes(16, 16, 1, image::ImageFormat::Png),
    )
    .unwrap();
    std::fs::write(
        root.join("renders/s1/side.png"),
        common::image_bytes(16, 16, 2, image::ImageFormat::Png),
    )
    .unwrap();
    std::fs::write(
        root.join("renders/s2 (copy)/étiquette.txt"),
        "non-ascii name\r\nwith CRLF\r\n",
    )
    .unwrap();
    std::fs::write(
        root.join("manifest.jsonl"),
        "{\"sample_id\": \"s1\"}\n{\"sample_id\": \"s2\"}\n",
    )
    .unwrap();
}

/// Every file below `.dvc/cache`, with its bytes.
fn cache_files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let cache = root.join(".dvc/cache");
    let mut files: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(&cache)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let relative = e
                .path()
                .strip_prefix(&cache)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (relative, std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn pointers_and_cache_are_byte_identical_to_dvc_add() {
    let base = tempfile::tempdir().unwrap();
    let (ours, theirs) = (base.path().join("ours"), base.path().join("theirs"));
    for root in [&ours, &theirs] {
        std::fs::create_dir_all(root).unwrap();
        make_data(root);
        dvc(root, &["init", "--no-scm", "-q"]);
    }
    dvc(&theirs, &["add", "-q", "renders", "manifest.jsonl"]);
    let repo = DvcRepo::find(&ours).unwrap();
    repo.add(&ours.join("renders")).unwrap();
    repo.add(&ours.join("manifest.jsonl")).unwrap();
    for pointer in ["renders.dvc", "manifest.jsonl.dvc"] {
        assert_eq!(
            std::fs::read_to_string(ours.join(pointer)).unwrap(),
            std::fs::read_to_string(theirs.join(pointer)).unwrap(),
            "{pointer}"
        );
    }
    assert_eq!(cache_files(&ours), cache_files(&theirs));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let object = repo.object_path(
            &verdict_media::dvc::md5_file(&ours.join("manifest.jsonl"))
                .unwrap()
                .0,
        );
        assert_eq!(
            std::fs::metadata(object).unwrap().permissions().mode() & 0o777,
            0o444
        );
    }
}

#[test]
fn dvc_status_checkout_and_pull_accept_what_verdict_wrote() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("project");
    std::fs::create_dir_all(&root).unwrap();
    make_data(&root);
    dvc(&root, &["init", "--no-scm", "-q"]);
    let repo = DvcRepo::find(&root).unwrap();
    let renders = repo.add(&root.join("renders")).unwrap();
    let manifest = repo.add(&root.join("manifest.jsonl")).unwrap();

    let status = dvc(&root, &["status", "--json"]);
    assert_eq!(status.trim(), "{}", "dvc sees everything up to date");

    // DVC restores what Verdict cached.
    std::fs::remove_dir_all(root.join("renders")).unwrap();
    std::fs::remove_file(root.join("manifest.jsonl")).unwrap();
    let status = dvc(&root, &["status", "--json"]);
    assert!(status.contains("deleted"), "{status}");
    dvc(&root, &["checkout", "-q"]);
    let fresh = base.path().join("fresh");
    make_data(&fresh);
    assert_eq!(
        std::fs::read(root.join("renders/s1/front.png")).unwrap(),
        std::fs::read(fresh.join("renders/s1/front.png")).unwrap()
    );
    assert_eq!(
        std::fs::read(root.join("renders/s2 (copy)/étiquette.txt")).unwrap(),
        std::fs::read(fresh.join("renders/s2 (copy)/étiquette.txt")).unwrap()
    );
    assert_eq!(dvc(&root, &["status", "--json"]).trim(), "{}");

    // Verdict pushes to a folder remote; a clone with an empty cache pulls with DVC.
    let remote_dir = base.path().join("remote");
    let remote = Location::local(&remote_dir).unwrap();
    let pushed = block_on(push(
        &repo,
        &[renders.as_path(), manifest.as_path()],
        &remote,
    ))
    .unwrap()
    .unwrap();
    assert_eq!(pushed.transferred, 5, "4 files + 1 folder listing");
    let clone = base.path().join("clone");
    std::fs::create_dir_all(&clone).unwrap();
    dvc(&clone, &["init", "--no-scm", "-q"]);
    dvc(
        &clone,
        &["remote", "add", "-d", "store", remote_dir.to_str().unwrap()],
    );
    std::fs::copy(&renders, clone.join("renders.dvc")).unwrap();
    std::fs::copy(&manifest, clone.join("manifest.jsonl.dvc")).unwrap();
    dvc(&clone, &["pull", "-q"]);
    assert_eq!(
        std::fs::read(clone.join("manifest.jsonl")).unwrap(),
        std::fs::read(fresh.join("manifest.jsonl")).unwrap()
    );

    // And the other way: DVC pushes, Verdict pulls and checks out into a third copy.
    let dvc_remote = base.path().join("dvc-remote");
    dvc(
        &root,
        &[
            "remote",
            "add",
            "-d",
            "theirs",
            dvc_remote.to_str().unwrap(),
        ],
    );
    dvc(&root, &["push", "-q"]);
    let third = base.path().join("third");
    let third_repo = DvcRepo::init(&third).unwrap();
    std::fs::copy(&renders, third.join("renders.dvc")).unwrap();
    let pointer = third.join("renders.dvc");
    assert!(matches!(
        third_repo.status(&pointer).unwrap()[0].1,
        OutStatus::NotInCache(_)
    ));
    let pulled = block_on(pull(
        &third_repo,
        &[pointer.as_path()],
        &Location::local(&dvc_remote).unwrap(),
    ))
    .unwrap()
    .unwrap();
    assert_eq!(pulled.transferred, 4);
    assert_eq!(third_repo.checkout(&pointer).unwrap(), 3);
    assert_eq!(
        third_repo.status(&pointer).unwrap()[0].1,
        OutStatus::UpToDate
    );
    assert_eq!(
        std::fs::read(third.join("renders/s1/side.png")).unwrap(),
        std::fs::read(fresh.join("renders/s1/side.png")).unwrap()
    );
    // Verdict's own init is a project DVC accepts.
    assert_eq!(dvc(&third, &["status", "--json"]).trim(), "{}");
}

#[test]
fn missing_and_corrupt_objects_never_touch_workspace_or_cache() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("p");
    make_data(&root);
    let repo = DvcRepo::init(&root).unwrap();
    let pointer = repo.add(&root.join("manifest.jsonl")).unwrap();
    let (md5, _) = verdict_media::dvc::md5_file(&root.join("manifest.jsonl")).unwrap();

    // A pointer whose object is gone: a clear error, the workspace file left alone.
    let object = repo.object_path(&md5);
    std::fs::remove_file(&object).unwrap();
    std::fs::write(root.join("manifest.jsonl"), "edited\n").unwrap();
    let error = repo.checkout(&pointer).unwrap_err().to_string();
    assert!(
        error.contains("missing") && error.contains(&md5[2..]) && error.contains("pull"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("manifest.jsonl")).unwrap(),
        "edited\n"
    );

    // A remote whose object is corrupt: pull refuses it and the cache stays without it.
    let remote_dir = base.path().join("remote");
    let object_path = remote_dir.join(verdict_media::dvc::object_relative_path(&md5));
    std::fs::create_dir_all(object_path.parent().unwrap()).unwrap();
    std::fs::write(&object_path, "tampered").unwrap();
    let error = block_on(pull(
        &repo,
        &[pointer.as_path()],
        &Location::local(&remote_dir).unwrap(),
    ))
    .unwrap()
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("hashes to") && error.contains(&md5),
        "{error}"
    );
    assert!(!object.exists());
    let leftovers: Vec<_> = std::fs::read_dir(object.parent().unwrap())
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "no temp files left in the cache");

    // A remote without the object names it.
    std::fs::remove_file(&object_path).unwrap();
    let error = block_on(pull(
        &repo,
        &[pointer.as_path()],
        &Location::local(&remote_dir).unwrap(),
    ))
    .unwrap()
    .unwrap_err()
    .to_string();
    assert!(error.contains("missing on the remote"), "{error}");
}
