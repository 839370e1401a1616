//! The batch stage: skipping up-to-date samples, per-sample errors that do not stop others,
//! merged vs separate parts, caps.

mod common;

use verdict_render::{
    render_many, render_sample, LoadLimits, RenderError, RenderSettings, SampleJob, ViewSpec,
};

#[test]
fn second_run_is_skipped_until_input_or_settings_change() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::write(
        dir.path(),
        "cube.stl",
        &common::binary_stl(&common::cube(1.0)),
    );
    let views = ViewSpec::parse_list("front,iso").unwrap();
    let settings = RenderSettings {
        size: 64,
        ..RenderSettings::default()
    };
    let out = dir.path().join("out");
    let first = render_sample(std::slice::from_ref(&file), &views, &settings, &out).unwrap();
    assert!(!first.up_to_date);
    assert!(out.join("render.json").is_file());
    let second = render_sample(std::slice::from_ref(&file), &views, &settings, &out).unwrap();
    assert!(second.up_to_date);
    assert_eq!(first.views, second.views);

    let bigger = RenderSettings {
        size: 80,
        ..settings.clone()
    };
    assert!(
        !render_sample(std::slice::from_ref(&file), &views, &bigger, &out)
            .unwrap()
            .up_to_date
    );
    common::write(
        dir.path(),
        "cube.stl",
        &common::binary_stl(&common::cube(2.0)),
    );
    assert!(
        !render_sample(std::slice::from_ref(&file), &views, &bigger, &out)
            .unwrap()
            .up_to_date
    );
    std::fs::remove_file(out.join("iso.png")).unwrap();
    assert!(
        !render_sample(&[file], &views, &bigger, &out)
            .unwrap()
            .up_to_date
    );
    assert!(out.join("iso.png").is_file());
}

#[test]
fn a_bad_sample_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let good = common::write(
        dir.path(),
        "good.stl",
        &common::binary_stl(&common::cube(1.0)),
    );
    let empty = common::write(dir.path(), "empty.stl", b"");
    let nan = common::write(
        dir.path(),
        "nan.stl",
        &common::binary_stl(&[[[0.0, 0.0, 0.0], [f32::NAN, 1.0, 0.0], [0.0, 1.0, 1.0]]]),
    );
    let jobs: Vec<SampleJob> = [("a", &good), ("b", &empty), ("c", &nan), ("d", &good)]
        .iter()
        .map(|(id, file)| SampleJob {
            id: id.to_string(),
            files: vec![(*file).clone()],
            out_dir: dir.path().join(id),
        })
        .collect();
    let views = ViewSpec::parse_list("front").unwrap();
    let settings = RenderSettings {
        size: 32,
        ..RenderSettings::default()
    };
    let done = std::sync::atomic::AtomicUsize::new(0);
    let outcomes = render_many(&jobs, &views, &settings, Some(2), &|_| {
        done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    assert_eq!(done.into_inner(), 4);
    assert!(outcomes[0].result.is_ok() && outcomes[3].result.is_ok());
    assert!(matches!(
        outcomes[1].result,
        Err(RenderError::EmptyFile { .. })
    ));
    assert!(matches!(
        outcomes[2].result,
        Err(RenderError::NonFinite { triangle: 1, .. })
    ));
    assert!(dir.path().join("d/front.png").is_file());
}

#[test]
fn parts_render_merged_or_separately() {
    let dir = tempfile::tempdir().unwrap();
    let a = common::write(dir.path(), "a.stl", &common::binary_stl(&common::cube(1.0)));
    let b = common::write(dir.path(), "b.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n");
    let views = ViewSpec::parse_list("front,top").unwrap();
    let merged = RenderSettings {
        size: 32,
        contact_sheet: true,
        ..RenderSettings::default()
    };
    let out = render_sample(
        &[a.clone(), b.clone()],
        &views,
        &merged,
        &dir.path().join("m"),
    )
    .unwrap();
    assert_eq!(out.views.len(), 3);
    assert!(out.views.iter().all(|v| v.part.is_none()));
    let separate = RenderSettings {
        merge_parts: false,
        ..merged
    };
    let out = render_sample(&[a, b], &views, &separate, &dir.path().join("s")).unwrap();
    assert_eq!(out.views.len(), 6);
    assert!(dir.path().join("s/01_a/front.png").is_file());
    assert!(dir.path().join("s/02_b/contact_sheet.png").is_file());
}

#[test]
fn triangle_cap_and_file_size_cap_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::write(
        dir.path(),
        "sphere.stl",
        &common::binary_stl(&common::sphere(32, 16)),
    );
    let views = ViewSpec::parse_list("front").unwrap();
    let few = RenderSettings {
        limits: LoadLimits {
            max_triangles: 100,
            ..LoadLimits::default()
        },
        ..RenderSettings::default()
    };
    let error = render_sample(
        std::slice::from_ref(&file),
        &views,
        &few,
        &dir.path().join("o"),
    )
    .unwrap_err();
    assert!(
        matches!(error, RenderError::TooManyTriangles { limit: 100, .. }),
        "{error}"
    );
    let small = RenderSettings {
        limits: LoadLimits {
            max_file_bytes: 1000,
            ..LoadLimits::default()
        },
        ..RenderSettings::default()
    };
    let error = render_sample(&[file], &views, &small, &dir.path().join("o")).unwrap_err();
    assert!(matches!(error, RenderError::TooLarge { .. }), "{error}");
}
