//! In-memory meshes as the loaders produce them: a list of named parts, each a triangle soup.
//!
//! Triangle soups (no shared vertex indices) because STL, the most common input, is one, and
//! the rasteriser only needs corners; smooth shading re-welds vertices where it needs them
//! (see `prepare`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{RenderError, Result};
use crate::math::Vec3;

/// One triangle: three corners in model units.
pub type Triangle = [Vec3; 3];

/// One object of a file (an STL file is one part; OBJ groups and 3MF build items may be many).
#[derive(Debug, Clone, Default)]
pub struct Part {
    pub name: String,
    pub triangles: Vec<Triangle>,
}

/// Everything loaded from one or more files.
#[derive(Debug, Clone, Default)]
pub struct Scene {
    pub parts: Vec<Part>,
}

impl Scene {
    pub fn triangle_count(&self) -> usize {
        self.parts.iter().map(|p| p.triangles.len()).sum()
    }

    /// All parts as one (for "merge parts into one view").
    pub fn merged(&self, name: &str) -> Part {
        let mut triangles = Vec::with_capacity(self.triangle_count());
        for part in &self.parts {
            triangles.extend_from_slice(&part.triangles);
        }
        Part {
            name: name.to_string(),
            triangles,
        }
    }
}

/// Caps that keep hostile or accidental inputs from exhausting memory or time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadLimits {
    /// Most triangles one file may expand to (after 3MF components/instances).
    pub max_triangles: u64,
    /// Largest input file read from disk.
    pub max_file_bytes: u64,
    /// Largest total decompressed size read out of one 3MF archive.
    pub max_decompressed_bytes: u64,
}

impl Default for LoadLimits {
    fn default() -> Self {
        Self {
            max_triangles: 5_000_000,
            max_file_bytes: 512 << 20,
            max_decompressed_bytes: 512 << 20,
        }
    }
}

/// Counts a loader reports besides the mesh: what it repaired or skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Zero-area triangles dropped (they cover no pixels; keeping them only costs time).
    pub degenerate_dropped: u64,
    /// Binary STL whose header count disagreed with the file size (the size was trusted).
    pub count_mismatch: bool,
}

/// Collects triangles for one file, enforcing the caps and the finite-coordinate rule.
pub(crate) struct TriangleSink<'a> {
    path: &'a Path,
    limit: u64,
    accepted: u64,
    seen: usize,
    pub report: LoadReport,
}

impl<'a> TriangleSink<'a> {
    pub fn new(path: &'a Path, limits: &LoadLimits) -> Self {
        Self {
            path,
            limit: limits.max_triangles,
            accepted: 0,
            seen: 0,
            report: LoadReport::default(),
        }
    }

    /// Refuses a count that is already over the cap before anything is allocated for it.
    pub fn check_count(&self, count: u64) -> Result<()> {
        if self.accepted + count > self.limit {
            return Err(RenderError::TooManyTriangles {
                path: self.path.to_path_buf(),
                limit: self.limit,
            });
        }
        Ok(())
    }

    /// Validates one triangle and appends it to `out` unless it is degenerate.
    pub fn push(&mut self, out: &mut Vec<Triangle>, triangle: Triangle) -> Result<()> {
        self.seen += 1;
        if !triangle.iter().all(|v| v.is_finite()) {
            return Err(RenderError::NonFinite {
                path: self.path.to_path_buf(),
                triangle: self.seen,
            });
        }
        let [a, b, c] = triangle;
        let doubled_area = (b - a).cross(c - a).length();
        if doubled_area.is_nan() || doubled_area <= 0.0 {
            self.report.degenerate_dropped += 1;
            return Ok(());
        }
        self.check_count(1)?;
        self.accepted += 1;
        out.push(triangle);
        Ok(())
    }

    /// Errors when nothing drawable was found, saying why.
    pub fn finish(self, parts: Vec<Part>) -> Result<(Scene, LoadReport)> {
        if self.accepted == 0 {
            let detail = if self.seen == 0 {
                String::new()
            } else {
                format!(
                    " (all {} triangles have zero area)",
                    self.report.degenerate_dropped
                )
            };
            return Err(RenderError::NoTriangles {
                path: self.path.to_path_buf(),
                detail,
            });
        }
        let parts = parts
            .into_iter()
            .filter(|p| !p.triangles.is_empty())
            .collect();
        Ok((Scene { parts }, self.report))
    }
}

/// Reads a whole file, refusing files over the size cap before reading them.
pub(crate) fn read_capped(path: &Path, limits: &LoadLimits) -> Result<Vec<u8>> {
    let metadata = std::fs::metadata(path).map_err(|e| RenderError::io(path, e))?;
    if metadata.len() > limits.max_file_bytes {
        return Err(RenderError::TooLarge {
            path: PathBuf::from(path),
            what: "file".into(),
            size: metadata.len(),
            limit: limits.max_file_bytes,
        });
    }
    let bytes = std::fs::read(path).map_err(|e| RenderError::io(path, e))?;
    if bytes.is_empty() {
        return Err(RenderError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}
