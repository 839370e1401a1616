//! Helpers shared by the integration tests: generated solids, STL writing, PNG decoding,
//! and the location of the fetched real meshes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Triangles of an axis-aligned cube with side `side`, centred at the origin.
pub fn cube(side: f32) -> Vec<[[f32; 3]; 3]> {
    let h = side / 2.0;
    let corner = |i: usize| {
        [
            if i & 1 == 0 { -h } else { h },
            if i & 2 == 0 { -h } else { h },
            if i & 4 == 0 { -h } else { h },
        ]
    };
    // Each face as a quad of corner indices, split in two.
    let faces = [
        [0, 2, 3, 1],
        [4, 5, 7, 6],
        [0, 1, 5, 4],
        [2, 6, 7, 3],
        [0, 4, 6, 2],
        [1, 3, 7, 5],
    ];
    let mut triangles = Vec::new();
    for [a, b, c, d] in faces {
        triangles.push([corner(a), corner(b), corner(c)]);
        triangles.push([corner(a), corner(c), corner(d)]);
    }
    triangles
}

/// A UV sphere of radius 1 with `slices` around and `stacks` from pole to pole.
pub fn sphere(slices: usize, stacks: usize) -> Vec<[[f32; 3]; 3]> {
    let point = |i: usize, j: usize| {
        let theta = std::f64::consts::TAU * i as f64 / slices as f64;
        let phi = std::f64::consts::PI * j as f64 / stacks as f64;
        [
            (phi.sin() * theta.cos()) as f32,
            (phi.sin() * theta.sin()) as f32,
            phi.cos() as f32,
        ]
    };
    let mut triangles = Vec::new();
    for j in 0..stacks {
        for i in 0..slices {
            let (a, b) = (point(i, j), point(i + 1, j));
            let (c, d) = (point(i, j + 1), point(i + 1, j + 1));
            if j > 0 {
                triangles.push([a, c, b]);
            }
            if j + 1 < stacks {
                triangles.push([b, c, d]);
            }
        }
    }
    triangles
}

/// Binary STL bytes for `triangles` (normals left zero, as many exporters do).
pub fn binary_stl(triangles: &[[[f32; 3]; 3]]) -> Vec<u8> {
    let mut bytes = vec![0u8; 80];
    bytes.extend_from_slice(&(triangles.len() as u32).to_le_bytes());
    for triangle in triangles {
        bytes.extend_from_slice(&[0u8; 12]);
        for corner in triangle {
            for value in corner {
                bytes.extend_from_slice(&value.to_le_bytes());
            }
        }
        bytes.extend_from_slice(&[0, 0]);
    }
    bytes
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write test file");
    path
}

/// Decoded RGB pixels of a PNG file.
pub fn read_png(path: &Path) -> image::RgbImage {
    image::open(path).expect("decode PNG").to_rgb8()
}

/// Pixels that differ from the background colour.
pub fn foreground(image: &image::RgbImage, background: [u8; 3]) -> Vec<bool> {
    image.pixels().map(|p| p.0 != background).collect()
}

/// `$VERDICT_DATA_DIR/meshes` (default `<repo>/.cache/data/meshes`); panics with the fix if
/// the data was never fetched.
pub fn meshes_dir() -> PathBuf {
    let root = std::env::var_os("VERDICT_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/data"));
    let dir = root.join("meshes");
    assert!(
        dir.join("openscad-testing-data/.complete").is_file() && dir.join("openscad/.complete").is_file(),
        "real meshes not found under {}: run `scripts/fetch-data` (or scripts/fetch/meshes.sh) first",
        dir.display()
    );
    dir
}

/// Every file with one of `extensions` under `dir`, sorted, not following links (the
/// packages link folders into each other).
pub fn files_with(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).expect("read dir").flatten() {
            let kind = entry.file_type().expect("file type");
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file()
                && path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| extensions.iter().any(|x| e.eq_ignore_ascii_case(x)))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
