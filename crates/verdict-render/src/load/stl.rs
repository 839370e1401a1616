//! STL, binary and ASCII, with a small parser of our own.
//!
//! Why not `stl_io`: it picks ASCII whenever the file starts with `solid `, and many binary
//! exporters write exactly that into the 80-byte header (Debian's OpenSCAD test data ships
//! such a file), and it trusts the header's triangle count. Deciding well needs the file
//! size, so this parser reads the whole file (size-capped) and decides as follows:
//!
//! 1. At least 84 bytes and `84 + 50 * count == size`: binary, whatever the header says.
//! 2. Starts with `solid` (after whitespace) and the start is text: ASCII.
//! 3. Otherwise binary. If the count disagrees with the size and `size - 84` is a whole
//!    number of 50-byte records, the size is trusted (some exporters leave the count at 0)
//!    and `LoadReport::count_mismatch` is set. If the records run past the end of the file
//!    it is a `Truncated` error; extra bytes after the announced records are ignored.
//!
//! ASCII parsing is strict about structure (`facet` / `outer loop` / three `vertex` lines /
//! `endloop` / `endfacet`) and reports the line of the first problem; facet normals are
//! ignored (they are often wrong; normals are recomputed from the corners).

use std::path::Path;

use crate::error::{RenderError, Result};
use crate::math::Vec3;
use crate::mesh::{LoadLimits, LoadReport, Part, Scene, Triangle, TriangleSink};

const HEADER: usize = 80;
const RECORD: usize = 50;

/// Parses STL bytes read from `path` (used only in error messages).
pub fn parse_stl(path: &Path, bytes: &[u8], limits: &LoadLimits) -> Result<(Scene, LoadReport)> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if bytes.is_empty() {
        return Err(RenderError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let size = bytes.len() as u64;
    let announced = announced_count(bytes);
    if let Some(count) = announced {
        if (HEADER as u64 + 4) + RECORD as u64 * count as u64 == size {
            return parse_binary(path, bytes, count as usize, false, name, limits);
        }
    }
    if looks_like_ascii(bytes) {
        return parse_ascii(path, bytes, name, limits);
    }
    let Some(count) = announced else {
        return Err(RenderError::malformed(
            path,
            format!("{size} bytes: too short for a binary STL and not ASCII STL"),
        ));
    };
    let payload = size - (HEADER as u64 + 4);
    let expected = HEADER as u64 + 4 + RECORD as u64 * count as u64;
    if payload % RECORD as u64 == 0 {
        let records = payload / RECORD as u64;
        tracing::warn!(
            "{}: header announces {count} triangles but the file holds {records}; using the file size",
            path.display()
        );
        return parse_binary(path, bytes, records as usize, true, name, limits);
    }
    if expected > size {
        return Err(RenderError::Truncated {
            path: path.to_path_buf(),
            announced: count as u64,
            expected,
            actual: size,
        });
    }
    parse_binary(path, bytes, count as usize, false, name, limits)
}

fn announced_count(bytes: &[u8]) -> Option<u32> {
    let raw = bytes.get(HEADER..HEADER + 4)?;
    Some(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
}

/// `solid` keyword and no control bytes in the first kilobyte (binary payloads have plenty).
fn looks_like_ascii(bytes: &[u8]) -> bool {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else { return false };
    if !bytes[start..].starts_with(b"solid") {
        return false;
    }
    let probe = &bytes[..bytes.len().min(1024)];
    !probe.contains(&0)
}

fn parse_binary(
    path: &Path,
    bytes: &[u8],
    count: usize,
    count_mismatch: bool,
    name: String,
    limits: &LoadLimits,
) -> Result<(Scene, LoadReport)> {
    let mut sink = TriangleSink::new(path, limits);
    sink.check_count(count as u64)?;
    sink.report.count_mismatch = count_mismatch;
    let mut triangles = Vec::with_capacity(count);
    let records = &bytes[HEADER + 4..];
    for record in records.chunks_exact(RECORD).take(count) {
        let float = |i: usize| {
            let o = 12 + 4 * i;
            f32::from_le_bytes([record[o], record[o + 1], record[o + 2], record[o + 3]])
        };
        let corner = |k: usize| Vec3::new(float(3 * k), float(3 * k + 1), float(3 * k + 2));
        sink.push(&mut triangles, [corner(0), corner(1), corner(2)])?;
    }
    sink.finish(vec![Part { name, triangles }])
}

fn parse_ascii(
    path: &Path,
    bytes: &[u8],
    name: String,
    limits: &LoadLimits,
) -> Result<(Scene, LoadReport)> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        RenderError::parse(
            path,
            line,
            "ASCII STL contains bytes that are not UTF-8 text",
        )
    })?;
    let mut sink = TriangleSink::new(path, limits);
    let mut triangles: Vec<Triangle> = Vec::new();
    let mut state = State::Solid;
    let mut corners: Vec<Vec3> = Vec::with_capacity(3);
    let mut saw_solid = false;
    let mut saw_end = false;
    let mut last_line = 0;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        last_line = number;
        let mut tokens = line.split_ascii_whitespace();
        let Some(keyword) = tokens.next() else {
            continue;
        };
        let error = |message: String| RenderError::parse(path, number, message);
        match (state, keyword) {
            (State::Solid, "solid") if !saw_solid => saw_solid = true,
            (State::Solid, "facet") if saw_solid => {
                if tokens.next() != Some("normal") {
                    return Err(error("expected `facet normal nx ny nz`".into()));
                }
                state = State::Facet;
            }
            (State::Solid, "endsolid") if saw_solid => {
                saw_end = true;
                break;
            }
            (State::Facet, "outer") => {
                if tokens.next() != Some("loop") || tokens.next().is_some() {
                    return Err(error("expected `outer loop`".into()));
                }
                state = State::Loop;
            }
            (State::Loop, "vertex") => {
                if corners.len() == 3 {
                    return Err(error(
                        "facet has more than 3 vertices (only triangles are valid STL)".into(),
                    ));
                }
                let mut xyz = [0.0f32; 3];
                for value in &mut xyz {
                    let token = tokens
                        .next()
                        .ok_or_else(|| error("vertex needs 3 coordinates".into()))?;
                    *value = token
                        .parse()
                        .map_err(|_| error(format!("invalid vertex coordinate {:?}", token)))?;
                }
                if let Some(extra) = tokens.next() {
                    return Err(error(format!(
                        "unexpected {:?} after vertex coordinates",
                        extra
                    )));
                }
                corners.push(Vec3::from_array(xyz));
            }
            (State::Loop, "endloop") => {
                if corners.len() != 3 {
                    return Err(error(format!(
                        "facet has {} vertices, STL facets have exactly 3",
                        corners.len()
                    )));
                }
                if let Some(extra) = tokens.next() {
                    return Err(error(format!("unexpected {:?} after `endloop`", extra)));
                }
                state = State::EndLoop;
            }
            (State::EndLoop, "endfacet") => {
                if let Some(extra) = tokens.next() {
                    return Err(error(format!("unexpected {:?} after `endfacet`", extra)));
                }
                sink.push(&mut triangles, [corners[0], corners[1], corners[2]])?;
                corners.clear();
                state = State::Solid;
            }
            _ => {
                return Err(error(format!(
                    "unexpected {:?} (expected {})",
                    truncate(keyword),
                    state.expected()
                )))
            }
        }
    }
    if !saw_end {
        return Err(RenderError::parse(
            path,
            last_line,
            format!(
                "ASCII STL ends without `endsolid` (truncated?), expected {}",
                state.expected()
            ),
        ));
    }
    sink.finish(vec![Part { name, triangles }])
}

#[derive(Debug, Clone, Copy)]
enum State {
    Solid,
    Facet,
    Loop,
    EndLoop,
}

impl State {
    fn expected(self) -> &'static str {
        match self {
            State::Solid => "`facet normal` or `endsolid`",
            State::Facet => "`outer loop`",
            State::Loop => "`vertex` or `endloop`",
            State::EndLoop => "`endfacet`",
        }
    }
}

fn truncate(token: &str) -> String {
    token.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(header: &[u8], count: u32, records: usize) -> Vec<u8> {
        let mut bytes = vec![b' '; HEADER];
        bytes[..header.len()].copy_from_slice(header);
        bytes.extend_from_slice(&count.to_le_bytes());
        for i in 0..records {
            let mut record = [0f32; 12];
            record[3..12].copy_from_slice(&[0., 0., i as f32, 1., 0., 0., 0., 1., 0.]);
            for value in record {
                bytes.extend_from_slice(&value.to_le_bytes());
            }
            bytes.extend_from_slice(&[0, 0]);
        }
        bytes
    }

    fn load(bytes: &[u8]) -> Result<(Scene, LoadReport)> {
        parse_stl(Path::new("t.stl"), bytes, &LoadLimits::default())
    }

    #[test]
    fn binary_with_solid_header_is_binary() {
        let (scene, report) = load(&binary(b"solid lies", 2, 2)).unwrap();
        assert_eq!(scene.triangle_count(), 2);
        assert!(!report.count_mismatch);
    }

    #[test]
    fn zero_count_trusts_file_size() {
        let (scene, report) = load(&binary(b"x", 0, 3)).unwrap();
        assert_eq!(scene.triangle_count(), 3);
        assert!(report.count_mismatch);
    }

    #[test]
    fn truncated_binary_is_an_error() {
        let mut bytes = binary(b"x", 5, 3);
        bytes.truncate(bytes.len() - 7);
        let error = load(&bytes).unwrap_err();
        assert!(
            matches!(error, RenderError::Truncated { announced: 5, .. }),
            "{error}"
        );
    }

    #[test]
    fn ascii_facets_are_parsed_and_four_vertices_rejected() {
        let good = "solid a\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\nendloop\nendfacet\nendsolid a\n";
        assert_eq!(load(good.as_bytes()).unwrap().0.triangle_count(), 1);
        let bad = good.replace("vertex 0 1 0\n", "vertex 0 1 0\nvertex 1 1 0\n");
        let error = load(bad.as_bytes()).unwrap_err().to_string();
        assert!(
            error.contains("line 7") && error.contains("more than 3"),
            "{error}"
        );
    }

    #[test]
    fn nan_coordinates_are_rejected() {
        let text = "solid a\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex nan 0 0\nvertex 0 1 0\nendloop\nendfacet\nendsolid\n";
        assert!(matches!(
            load(text.as_bytes()).unwrap_err(),
            RenderError::NonFinite { triangle: 1, .. }
        ));
    }

    #[test]
    fn header_only_solid_has_no_triangles() {
        let error = load(b"solid x\nendsolid x\n").unwrap_err();
        assert!(matches!(error, RenderError::NoTriangles { .. }));
    }

    #[test]
    fn triangle_cap_is_checked_before_allocating() {
        let limits = LoadLimits {
            max_triangles: 2,
            ..LoadLimits::default()
        };
        let error = parse_stl(Path::new("t.stl"), &binary(b"x", 3, 3), &limits).unwrap_err();
        assert!(matches!(
            error,
            RenderError::TooManyTriangles { limit: 2, .. }
        ));
    }
}
