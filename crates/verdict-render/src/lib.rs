//! Mesh loading (STL, OBJ, 3MF) and fast, deterministic multi-view rendering to PNG.
//!
//! Pipeline: [`load`] parses files into a [`Scene`] (typed errors naming the file, caps on
//! triangles and decompressed size), [`prepare`] normalises it (Z up, centred, scaled to a
//! unit bounding sphere) and computes normals once, a [`Renderer`] draws one view per
//! [`Camera`], and [`stage`] ties it together for batches: parallel, skipping up-to-date
//! outputs, atomic writes, one error per file that never stops the other samples.
//!
//! Crates: `zip` (3MF container), `quick-xml` (3MF XML), `fdeflate` (PNG compression),
//! `rayon` (views and samples in parallel), `sha2` (up-to-date checks), `pulp` (AVX2
//! chosen at run time for the depth test). STL and OBJ parsers are our own because the
//! format quirks are the point (see [`load`]).
//!
//! # Bad input
//!
//! Every failure is a [`RenderError`] naming the file (and line, for text formats); nothing
//! panics on user input and every loop is bounded by the input size or a cap.
//! - Empty file: `EmptyFile`. Parsable file without triangles: `NoTriangles`.
//! - Binary STL whose header starts with `solid`: detected by size and read as binary.
//!   Header triangle count that disagrees with the size: the size is trusted when it is a
//!   whole number of records (logged, `LoadReport::count_mismatch`), else `Truncated`.
//! - NaN or infinite coordinates: `NonFinite` with the triangle number (a silently dropped
//!   triangle could hide a broken export).
//! - Zero-area triangles: dropped and counted in `LoadReport::degenerate_dropped` (they
//!   cover no pixels); a mesh of nothing else is `NoTriangles`.
//! - More than `LoadLimits::max_triangles` (default 5 million, counted after 3MF instancing):
//!   `TooManyTriangles`, checked before allocating. Files over `max_file_bytes` and 3MF
//!   archives decompressing past `max_decompressed_bytes` (zip bombs): `TooLarge`.
//! - 3MF component cycles, dangling ids, vertex indices out of range: `Archive` errors.

pub mod camera;
pub mod error;
pub mod load;
pub mod math;
pub mod mesh;
pub mod prepare;
pub mod raster;
pub mod settings;
pub mod sheet;
pub mod stage;

pub use camera::{Camera, Projection, ViewSpec};
pub use error::{RenderError, Result};
pub use load::{load_file, Format, UpAxis};
pub use mesh::{LoadLimits, LoadReport, Part, Scene};
pub use prepare::PreparedMesh;
pub use raster::{CpuRasterizer, Image, Renderer};
pub use settings::{RenderSettings, Shading};
pub use stage::{render_many, render_sample, RenderedView, SampleJob, SampleOutcome};
