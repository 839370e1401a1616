//! The real STL (and 3MF) files Debian ships with OpenSCAD, fetched by
//! `scripts/fetch/meshes.sh` into `$VERDICT_DATA_DIR/meshes`: every well-formed one renders
//! with visible content from every side, every malformed one gives the error listed here.

mod common;

use std::path::Path;

use verdict_render::{load_file, render_sample, LoadLimits, RenderError, RenderSettings, ViewSpec};

/// The corpus's malformed files, the error each must give, and a phrase of its message.
const MALFORMED: &[(&str, &str, &str)] = &[
    ("testdata/stl/empty.stl", "EmptyFile", "file is empty"),
    ("testdata/stl/empty2.stl", "NoTriangles", "no triangles"),
    (
        "testdata/stl/invalidvertex.stl",
        "Parse",
        "line 89: invalid vertex coordinate \"blah\"",
    ),
    (
        "testdata/stl/toomanyvertices.stl",
        "Parse",
        "line 91: facet has more than 3 vertices",
    ),
    (
        "testdata/stl/unparseable.stl",
        "Parse",
        "line 4: invalid vertex coordinate",
    ),
    (
        "regression/3mfexport/3mf-export-expected.3mf",
        "Archive",
        "not a ZIP archive (it is plain XML",
    ),
];

fn kind(error: &RenderError) -> &'static str {
    match error {
        RenderError::EmptyFile { .. } => "EmptyFile",
        RenderError::NoTriangles { .. } => "NoTriangles",
        RenderError::Parse { .. } => "Parse",
        RenderError::Archive { .. } => "Archive",
        RenderError::Truncated { .. } => "Truncated",
        RenderError::Malformed { .. } => "Malformed",
        _ => "other",
    }
}

fn malformed_entry(path: &Path) -> Option<&'static (&'static str, &'static str, &'static str)> {
    MALFORMED
        .iter()
        .find(|(suffix, _, _)| path.ends_with(suffix))
}

#[test]
fn malformed_files_give_the_listed_errors_and_all_others_load() {
    let dir = common::meshes_dir();
    let files = common::files_with(&dir, &["stl", "3mf"]);
    assert!(
        files.len() >= 20,
        "expected the full corpus, found {} files",
        files.len()
    );
    let mut seen_malformed = 0;
    for file in &files {
        let result = load_file(file, &LoadLimits::default());
        match (malformed_entry(file), result) {
            (Some((_, expected_kind, phrase)), Err(error)) => {
                let message = error.to_string();
                assert_eq!(kind(&error), *expected_kind, "{message}");
                assert!(
                    message.contains(phrase),
                    "{message:?} should contain {phrase:?}"
                );
                assert!(
                    message.contains(&*file.to_string_lossy()),
                    "error must name the file: {message}"
                );
                seen_malformed += 1;
            }
            (Some(_), Ok(_)) => panic!("{} is malformed but loaded", file.display()),
            (None, Err(error)) => panic!("{} should load: {error}", file.display()),
            (None, Ok((scene, _))) => assert!(scene.triangle_count() > 0),
        }
    }
    assert_eq!(
        seen_malformed,
        MALFORMED.len(),
        "some listed malformed files are missing"
    );
}

#[test]
fn binary_file_with_solid_header_loads_like_its_twin() {
    let dir = common::meshes_dir()
        .join("openscad-testing-data/usr/share/openscad/testdata/scad/3D/features");
    let (plain, _) = load_file(&dir.join("import_bin.stl"), &LoadLimits::default()).unwrap();
    let (lying, _) = load_file(&dir.join("import_bin_solid.stl"), &LoadLimits::default()).unwrap();
    assert_eq!(plain.triangle_count(), 46);
    assert_eq!(plain.parts[0].triangles, lying.parts[0].triangles);
}

#[test]
fn every_real_mesh_renders_visible_content_in_every_view() {
    let dir = common::meshes_dir();
    let out = tempfile::tempdir().unwrap();
    let views = ViewSpec::parse_list("front,back,left,right,top,iso").unwrap();
    let settings = RenderSettings {
        size: 128,
        ..RenderSettings::default()
    };
    let mut rendered = 0;
    for (index, file) in common::files_with(&dir, &["stl", "3mf"]).iter().enumerate() {
        if malformed_entry(file).is_some() {
            continue;
        }
        let sample_dir = out.path().join(index.to_string());
        let output = render_sample(std::slice::from_ref(file), &views, &settings, &sample_dir)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(output.views.len(), views.len());
        for view in &output.views {
            let image = common::read_png(&view.path);
            assert_eq!(image.dimensions(), (128, 128));
            let foreground = common::foreground(&image, settings.background)
                .iter()
                .filter(|&&f| f)
                .count();
            assert!(
                foreground > 0,
                "{} {}: empty image",
                file.display(),
                view.view
            );
        }
        // Front and back silhouettes of any mesh mirror each other in orthographic views.
        let mask = |name: &str| {
            let path = &output.views.iter().find(|v| v.view == name).unwrap().path;
            common::foreground(&common::read_png(path), settings.background)
        };
        let (front, back) = (mask("front"), mask("back"));
        let mut mismatched = 0;
        for y in 0..128 {
            for x in 0..128 {
                mismatched += usize::from(front[y * 128 + x] != back[y * 128 + 127 - x]);
            }
        }
        let total = front.iter().filter(|&&f| f).count().max(1);
        // Outlines and anti-aliasing are drawn on both sides of edges; allow a rim of pixels.
        assert!(
            mismatched * 20 <= total + 40,
            "{}: front/back mismatch {mismatched} of {total}",
            file.display()
        );
        rendered += 1;
    }
    assert!(rendered >= 18, "only {rendered} real meshes rendered");
}
