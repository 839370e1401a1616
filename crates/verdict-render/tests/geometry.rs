//! Image properties a wrong renderer would fail: silhouette areas of generated solids
//! against their analytic values (orthographic), mirror symmetry, determinism.

mod common;

use verdict_render::{render_sample, RenderSettings, ViewSpec};

fn settings(size: u32) -> RenderSettings {
    // One sample per pixel and no outlines: a pixel is foreground exactly when its centre is
    // covered, an unbiased estimate of the projected area.
    RenderSettings {
        size,
        supersample: 1,
        outlines: false,
        ..RenderSettings::default()
    }
}

fn area(path: &std::path::Path, background: [u8; 3]) -> f64 {
    let image = common::read_png(path);
    common::foreground(&image, background)
        .iter()
        .filter(|&&f| f)
        .count() as f64
}

#[test]
fn cube_silhouettes_match_analytic_areas() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::write(
        dir.path(),
        "cube.stl",
        &common::binary_stl(&common::cube(7.0)),
    );
    let views = ViewSpec::parse_list("front,top,iso,az:20:el:50").unwrap();
    let settings = settings(256);
    let out = render_sample(&[file], &views, &settings, &dir.path().join("out")).unwrap();
    // The cube's bounding sphere (radius: half the diagonal) fills `fill` of the half image.
    let pixels_per_unit = 256.0 / 2.0 * settings.fill as f64;
    let side = 2.0 / 3f64.sqrt() * pixels_per_unit;
    for view in &views {
        let rendered = out.views.iter().find(|v| v.view == view.name).unwrap();
        // Projected area of a cube along unit direction d is side^2 * (|dx| + |dy| + |dz|).
        let (az, el) = (
            (view.azimuth_degrees as f64).to_radians(),
            (view.elevation_degrees as f64).to_radians(),
        );
        let d = [az.sin() * el.cos(), az.cos() * el.cos(), el.sin()];
        let expected = side * side * d.iter().map(|c| c.abs()).sum::<f64>();
        let measured = area(&rendered.path, settings.background);
        let error = (measured - expected).abs() / expected;
        assert!(
            error < 0.01,
            "{}: area {measured} vs analytic {expected:.1} ({:.2}%)",
            view.name,
            error * 100.0
        );
    }
}

#[test]
fn sphere_silhouette_is_a_disc_in_every_view() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::write(
        dir.path(),
        "sphere.stl",
        &common::binary_stl(&common::sphere(128, 64)),
    );
    let views = ViewSpec::parse_list("front,left,top,iso,turntable:3").unwrap();
    let settings = settings(256);
    let out = render_sample(&[file], &views, &settings, &dir.path().join("out")).unwrap();
    let radius = 256.0 / 2.0 * settings.fill as f64;
    let expected = std::f64::consts::PI * radius * radius;
    for rendered in &out.views {
        let measured = area(&rendered.path, settings.background);
        let error = (measured - expected).abs() / expected;
        // A 128-gon inscribed in the circle loses 0.04% of the area; pixel sampling ~0.3%.
        assert!(
            error < 0.01,
            "{}: area {measured} vs pi r^2 {expected:.1}",
            rendered.view
        );
    }
}

#[test]
fn perspective_sphere_fits_the_frame_and_is_round() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::write(
        dir.path(),
        "sphere.stl",
        &common::binary_stl(&common::sphere(96, 48)),
    );
    let settings = RenderSettings {
        projection: verdict_render::Projection::Perspective { fov_degrees: 35.0 },
        ..settings(200)
    };
    let views = ViewSpec::parse_list("front,iso").unwrap();
    let out = render_sample(&[file], &views, &settings, &dir.path().join("out")).unwrap();
    let radius = 100.0 * settings.fill as f64;
    for rendered in &out.views {
        let measured = area(&rendered.path, settings.background);
        let expected = std::f64::consts::PI * radius * radius;
        assert!(
            (measured - expected).abs() / expected < 0.015,
            "{}: {measured} vs {expected}",
            rendered.view
        );
    }
}

#[test]
fn front_and_back_silhouettes_mirror_each_other() {
    let dir = tempfile::tempdir().unwrap();
    // An L-shaped, asymmetric solid: a mirror bug (or a wrong back camera) would show.
    let mut triangles = common::cube(2.0);
    for t in common::cube(1.0) {
        triangles.push(t.map(|[x, y, z]| [x + 1.4, y, z + 0.8]));
    }
    let file = common::write(dir.path(), "l.stl", &common::binary_stl(&triangles));
    let views = ViewSpec::parse_list("front,back").unwrap();
    let settings = settings(200);
    let out = render_sample(&[file], &views, &settings, &dir.path().join("out")).unwrap();
    let masks: Vec<(image::RgbImage, Vec<bool>)> = ["back", "front"]
        .iter()
        .map(|name| {
            let image = common::read_png(&out.views.iter().find(|v| v.view == *name).unwrap().path);
            let mask = common::foreground(&image, settings.background);
            (image, mask)
        })
        .collect();
    let (width, height) = (200usize, 200usize);
    let (back, front) = (&masks[0].1, &masks[1].1);
    let mut mismatched = 0;
    let mut asymmetric = 0;
    for y in 0..height {
        for x in 0..width {
            let mirrored = y * width + (width - 1 - x);
            mismatched += usize::from(front[y * width + x] != back[mirrored]);
            asymmetric += usize::from(front[y * width + x] != front[mirrored]);
        }
    }
    let total = front.iter().filter(|&&f| f).count();
    assert!(
        mismatched * 1000 < total,
        "front vs mirrored back differ in {mismatched} of {total} pixels"
    );
    assert!(
        asymmetric * 10 > total,
        "test shape should be asymmetric ({asymmetric} of {total})"
    );
}

#[test]
fn output_is_byte_identical_across_runs_and_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::write(
        dir.path(),
        "sphere.stl",
        &common::binary_stl(&common::sphere(40, 20)),
    );
    let views = ViewSpec::parse_list("front,iso,turntable:4").unwrap();
    let settings = RenderSettings {
        size: 160,
        contact_sheet: true,
        ..RenderSettings::default()
    };
    let run = |threads: usize, name: &str| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let out_dir = dir.path().join(name);
        let out = pool
            .install(|| render_sample(std::slice::from_ref(&file), &views, &settings, &out_dir))
            .unwrap();
        out.views
            .iter()
            .map(|v| (v.view.clone(), std::fs::read(&v.path).unwrap()))
            .collect::<Vec<_>>()
    };
    let first = run(1, "a");
    assert_eq!(first.len(), views.len() + 1);
    assert_eq!(first, run(2, "b"));
    assert_eq!(first, run(4, "c"));
}
