//! Loaders: one function per format, chosen by file extension, all returning a [`Scene`]
//! plus a [`LoadReport`] of what was repaired, or a [`RenderError`] naming the file.
//!
//! Crates used: `zip` for the 3MF container and `quick-xml` for its XML; STL and OBJ use
//! small parsers here (see `stl` for why `stl_io` does not fit).

mod obj;
mod stl;
mod threemf;

use std::path::Path;

pub use obj::parse_obj;
pub use stl::parse_stl;
pub use threemf::parse_3mf;

use crate::error::{RenderError, Result};
use crate::mesh::{read_capped, LoadLimits, LoadReport, Scene};

/// Mesh file formats this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Stl,
    Obj,
    ThreeMf,
}

impl Format {
    /// From the file extension (case-insensitive).
    pub fn from_path(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "stl" => Some(Format::Stl),
            "obj" => Some(Format::Obj),
            "3mf" => Some(Format::ThreeMf),
            _ => None,
        }
    }

    /// The up axis the format's files use by convention: STL and 3MF are Z-up (as in
    /// OpenSCAD and slicers), OBJ files mostly come from Y-up modelling tools.
    pub fn native_up(self) -> UpAxis {
        match self {
            Format::Stl | Format::ThreeMf => UpAxis::Z,
            Format::Obj => UpAxis::Y,
        }
    }
}

/// Which model axis points up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpAxis {
    Y,
    Z,
}

/// Loads one mesh file; its parts keep the file's own up axis (see [`Format::native_up`]).
pub fn load_file(path: &Path, limits: &LoadLimits) -> Result<(Scene, LoadReport)> {
    let format = Format::from_path(path).ok_or_else(|| RenderError::UnsupportedFormat {
        path: path.to_path_buf(),
    })?;
    let bytes = read_capped(path, limits)?;
    match format {
        Format::Stl => parse_stl(path, &bytes, limits),
        Format::Obj => parse_obj(path, &bytes, limits),
        Format::ThreeMf => parse_3mf(path, &bytes, limits),
    }
}
