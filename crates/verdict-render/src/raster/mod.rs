//! The CPU rasteriser behind the [`Renderer`] trait.
//!
//! The image is drawn into a supersampled buffer (`size * supersample` samples on a side)
//! that keeps, per sample, the nearest triangle's id and depth; then each output pixel is
//! shaded once, or per sample where it holds an edge, and averaged.
//!
//! - Visibility ([`triangle`]): every triangle is scan-converted with integer edge
//!   functions (8 bits of sub-pixel precision, top-left fill rule), so neighbouring
//!   triangles share edges without gaps or double hits and coverage does not depend on
//!   float rounding. Depth is the triangle's plane evaluated at each sample. No shading
//!   happens here, so overdraw is cheap.
//! - Outlines and resolve ([`resolve`]): a sample is on an outline when a neighbour shows
//!   background while it shows the object (or the reverse), a surface further away, or a
//!   face across a crease. Pixels whose samples, and the samples around them, all show one
//!   triangle cannot hold an outline and are shaded once at their centre (most pixels);
//!   the others are shaded per sample and averaged with integer rounding.
//! - Lighting ([`shade`]): Gouraud, a fixed key and fill light in camera space plus
//!   ambient, two-sided (STL winding is often wrong).
//!
//! Speed comes from touching little memory ([`cpu`]): only the rectangle the object can
//! reach is buffered (the rest of the image is background), and it is processed in bands
//! of rows small enough to stay in the CPU cache, each band cleared, drawn and resolved
//! while it is still there. The inner loops (depth test along a span, pixel
//! classification, colour conversion, PNG filtering) are written without branches or
//! saturating casts so that they run on SIMD lanes; the depth test runs on AVX2 where the
//! CPU has it (chosen at run time, same arithmetic, see [`triangle`]). Runs of pixels that
//! come out one colour are filled rather than shaded pixel by pixel ([`shade`]). Each view runs on one thread with the
//! same operations in the same order, so output is byte-identical run to run and across
//! thread counts; parallelism lives above, across views and files.

mod cpu;
mod image;
mod png;
mod resolve;
mod shade;
mod triangle;

pub use cpu::{recycle, CpuRasterizer, Renderer};
pub use image::Image;
