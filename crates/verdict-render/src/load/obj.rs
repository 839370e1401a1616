//! Wavefront OBJ: `v` and `f` records, polygons fan-triangulated, `o`/`g` start new parts.
//!
//! Small enough that a dependency would not pay for itself, and owning it gives line numbers
//! in every error. Texture coordinates, normals, materials, lines and points are ignored
//! (they do not change the silhouette or the recomputed shading). Face indices may be
//! 1-based or negative (relative to the end), with `v/vt/vn` forms. Fan triangulation is
//! exact for convex polygons, which is what exporters write.

use std::path::Path;

use crate::error::{RenderError, Result};
use crate::math::Vec3;
use crate::mesh::{LoadLimits, LoadReport, Part, Scene, TriangleSink};

/// Parses OBJ text read from `path` (used only in error messages).
pub fn parse_obj(path: &Path, bytes: &[u8], limits: &LoadLimits) -> Result<(Scene, LoadReport)> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        RenderError::parse(
            path,
            line,
            "OBJ file contains bytes that are not UTF-8 text",
        )
    })?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut sink = TriangleSink::new(path, limits);
    let mut vertices: Vec<Vec3> = Vec::new();
    let mut parts = vec![Part {
        name: stem.clone(),
        triangles: Vec::new(),
    }];
    let mut polygon: Vec<Vec3> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.split('#').next().unwrap_or("");
        let mut tokens = line.split_ascii_whitespace();
        let Some(keyword) = tokens.next() else {
            continue;
        };
        let error = |message: String| RenderError::parse(path, number, message);
        match keyword {
            "v" => {
                let mut xyz = [0.0f32; 3];
                for value in &mut xyz {
                    let token = tokens
                        .next()
                        .ok_or_else(|| error("`v` needs x y z".into()))?;
                    *value = token
                        .parse()
                        .map_err(|_| error(format!("invalid coordinate {token:?}")))?;
                }
                // A 4th value (w) or vertex colours may follow; neither affects the shape.
                vertices.push(Vec3::from_array(xyz));
            }
            "f" => {
                polygon.clear();
                for token in tokens {
                    let index_text = token.split('/').next().unwrap_or("");
                    let index: i64 = index_text
                        .parse()
                        .map_err(|_| error(format!("invalid face index {token:?}")))?;
                    let resolved = if index > 0 {
                        index - 1
                    } else if index < 0 {
                        vertices.len() as i64 + index
                    } else {
                        -1
                    };
                    if resolved < 0 || resolved >= vertices.len() as i64 {
                        return Err(error(format!(
                            "face index {index} out of range ({} vertices so far)",
                            vertices.len()
                        )));
                    }
                    polygon.push(vertices[resolved as usize]);
                }
                if polygon.len() < 3 {
                    return Err(error(format!(
                        "face has {} vertices, at least 3 are needed",
                        polygon.len()
                    )));
                }
                let part = parts.last_mut().expect("parts starts non-empty");
                for k in 1..polygon.len() - 1 {
                    sink.push(
                        &mut part.triangles,
                        [polygon[0], polygon[k], polygon[k + 1]],
                    )?;
                }
            }
            "o" | "g" => {
                let name = tokens.collect::<Vec<_>>().join(" ");
                let name = if name.is_empty() { stem.clone() } else { name };
                let current = parts.last_mut().expect("parts starts non-empty");
                if current.triangles.is_empty() {
                    current.name = name;
                } else {
                    parts.push(Part {
                        name,
                        triangles: Vec::new(),
                    });
                }
            }
            _ => {}
        }
    }
    sink.finish(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<(Scene, LoadReport)> {
        parse_obj(Path::new("t.obj"), text.as_bytes(), &LoadLimits::default())
    }

    #[test]
    fn quads_and_pentagons_are_fanned_and_groups_become_parts() {
        let text = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv -1 0.5 0\no a\nf 1 2 3 4\no b\nf 1/1/1 2//1 3 4 -1\n";
        let (scene, _) = load(text).unwrap();
        assert_eq!(scene.parts.len(), 2);
        assert_eq!(scene.parts[0].triangles.len(), 2);
        assert_eq!(scene.parts[1].triangles.len(), 3);
        assert_eq!(scene.parts[1].name, "b");
    }

    #[test]
    fn bad_index_names_the_line() {
        let error = load("v 0 0 0\nv 1 0 0\nf 1 2 3\n").unwrap_err().to_string();
        assert!(
            error.contains("line 3") && error.contains("out of range"),
            "{error}"
        );
    }

    #[test]
    fn degenerate_only_mesh_is_an_error() {
        let error = load("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n").unwrap_err();
        assert!(matches!(error, RenderError::NoTriangles { .. }), "{error}");
    }
}
