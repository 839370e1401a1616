//! Triangle setup and scan conversion into the sample buffer.
//!
//! Corners are snapped to 8 bits of sub-sample precision and covered samples found with
//! integer edge functions (top-left fill rule), so neighbouring triangles share edges
//! without gaps or double hits and coverage does not depend on float rounding. Each row's
//! covered span is solved exactly from the edge functions, so no sample outside is visited,
//! and within a span the depth test has no loop-carried dependency (depth is the plane
//! evaluated at each sample), which lets it run on SIMD lanes.

use std::ops::Range;

const SUBPIXEL_BITS: u32 = 8;
const SUBPIXEL: f32 = (1 << SUBPIXEL_BITS) as f32;
const HALF_PIXEL: i64 = 1 << (SUBPIXEL_BITS - 1);

/// A rectangle of the sample buffer: `ids` and `depth` of samples at absolute sample
/// coordinates `x >= origin_x`, `y >= origin_y`, rows `stride` apart.
pub(super) struct Target<'a> {
    pub ids: &'a mut [u32],
    pub depth: &'a mut [f32],
    pub stride: usize,
    pub origin_x: i32,
    pub origin_y: i32,
}

/// A triangle ready to scan-convert: its covered sample rectangle (inclusive, clipped to
/// the buffer), edge functions at the rectangle's first sample, and its depth plane.
#[derive(Debug, Clone, Copy)]
pub(super) struct Setup {
    /// 1-based triangle id (0 is background).
    pub id: u32,
    pub x0: i32,
    pub x1: i32,
    pub y0: i32,
    pub y1: i32,
    /// Edge function `k` (from corner k to k+1) at sample (x0, y0), fill-rule bias included;
    /// it grows by `-edge_dy[k] << 8` per sample right and `edge_dx[k] << 8` per row down.
    row: [i64; 3],
    /// Edge vectors in sub-sample units (they fit in 32 bits: corners are clamped to a few
    /// image widths), which keeps the setup small for meshes of millions of triangles.
    edge_dx: [i32; 3],
    edge_dy: [i32; 3],
    /// Depth at the centre of sample (x0, y) is `z_x0 + dz_dy * (y + 0.5 - y_ref)`.
    z_x0: f32,
    y_ref: f32,
    dz_dx: f32,
    dz_dy: f32,
}

impl Setup {
    /// `corners`: projected (x, y, depth) in sample units; `width`: samples on a side.
    /// `None` for triangles of zero snapped area or covering no sample centre box.
    pub fn new(id: u32, corners: &[(f32, f32, f32); 3], width: usize) -> Option<Setup> {
        let limit = (width as f32 + 2.0) * 4.0 * SUBPIXEL;
        let fixed = |c: &(f32, f32, f32)| {
            (
                (c.0 * SUBPIXEL).round().clamp(-limit, limit) as i64,
                (c.1 * SUBPIXEL).round().clamp(-limit, limit) as i64,
                c.2,
            )
        };
        let mut v = [fixed(&corners[0]), fixed(&corners[1]), fixed(&corners[2])];
        let mut area =
            (v[1].0 - v[0].0) * (v[2].1 - v[0].1) - (v[1].1 - v[0].1) * (v[2].0 - v[0].0);
        if area == 0 {
            return None;
        }
        if area < 0 {
            v.swap(1, 2);
            area = -area;
        }
        let last = width as i64 - 1;
        let min_x = v[0].0.min(v[1].0).min(v[2].0);
        let max_x = v[0].0.max(v[1].0).max(v[2].0);
        let min_y = v[0].1.min(v[1].1).min(v[2].1);
        let max_y = v[0].1.max(v[1].1).max(v[2].1);
        // Samples whose centres (x * SUBPIXEL + HALF_PIXEL) fall inside the box.
        let first_sample = |low: i64| {
            ((low - HALF_PIXEL) + (1 << SUBPIXEL_BITS) - 1).div_euclid(1 << SUBPIXEL_BITS)
        };
        let last_sample = |high: i64| (high - HALF_PIXEL).div_euclid(1 << SUBPIXEL_BITS);
        let x0 = first_sample(min_x).max(0);
        let x1 = last_sample(max_x).min(last);
        let y0 = first_sample(min_y).max(0);
        let y1 = last_sample(max_y).min(last);
        if x0 > x1 || y0 > y1 {
            return None;
        }
        let mut row = [0i64; 3];
        let mut edge_dx = [0i32; 3];
        let mut edge_dy = [0i32; 3];
        let start_x = x0 * (1 << SUBPIXEL_BITS) + HALF_PIXEL;
        let start_y = y0 * (1 << SUBPIXEL_BITS) + HALF_PIXEL;
        for k in 0..3 {
            let a = v[k];
            let b = v[(k + 1) % 3];
            let (dx, dy) = (b.0 - a.0, b.1 - a.1);
            let top_left = dy < 0 || (dy == 0 && dx > 0);
            let bias = if top_left { 0 } else { -1 };
            row[k] = dx * (start_y - a.1) - dy * (start_x - a.0) + bias;
            edge_dx[k] = dx as i32;
            edge_dy[k] = dy as i32;
        }
        // Depth is affine in screen space: a plane through the three (snapped) corners.
        let f = |k: usize| (v[k].0 as f32 / SUBPIXEL, v[k].1 as f32 / SUBPIXEL, v[k].2);
        let (p0, p1, p2) = (f(0), f(1), f(2));
        let area_f = area as f32 / (SUBPIXEL * SUBPIXEL);
        let dz_dx = ((p1.2 - p0.2) * (p2.1 - p0.1) - (p2.2 - p0.2) * (p1.1 - p0.1)) / area_f;
        let dz_dy = ((p2.2 - p0.2) * (p1.0 - p0.0) - (p1.2 - p0.2) * (p2.0 - p0.0)) / area_f;
        Some(Setup {
            id,
            x0: x0 as i32,
            x1: x1 as i32,
            y0: y0 as i32,
            y1: y1 as i32,
            row,
            edge_dx,
            edge_dy,
            z_x0: p0.2 + dz_dx * (x0 as f32 + 0.5 - p0.0),
            y_ref: p0.1,
            dz_dx,
            dz_dy,
        })
    }

    /// Scan-converts the rows of `rows` (absolute sample rows, clipped to the triangle's)
    /// into `target`, keeping the nearest surface per sample (ties keep the earlier one).
    pub fn draw(&self, rows: Range<i32>, target: &mut Target) {
        self.draw_spans(rows, target, |depth, ids, len, id, z_row, dz_dx, skip| {
            depth_span(&mut depth[..len], &mut ids[..len], id, z_row, dz_dx, skip)
        });
    }

    /// [`Self::draw`] with the depth test on 8 lanes; called inside `V3::vectorize`, so
    /// that the code inlined here is compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub fn draw_avx2(&self, simd: pulp::x86::V3, rows: Range<i32>, target: &mut Target) {
        self.draw_spans(rows, target, depth_span_avx2(simd));
    }

    /// The scan conversion; `span(depth, ids, len, id, z_row, dz_dx, skip)` runs the depth
    /// test of the first `len` samples of `depth` and `ids`, which run on to the end of
    /// the target.
    #[inline(always)]
    fn draw_spans(
        &self,
        rows: Range<i32>,
        target: &mut Target,
        mut span: impl FnMut(&mut [f32], &mut [u32], usize, u32, f32, f32, i32),
    ) {
        let (x0, x1) = (i64::from(self.x0), i64::from(self.x1));
        let first_row = rows.start.max(self.y0);
        let end_row = rows.end.min(self.y1 + 1);
        if first_row >= end_row {
            return;
        }
        // Each edge bounds the span of a row from one side: with `start` the edge function
        // at the row's sample x0 and `a = |step|` its change per sample, the bound is
        // `x0 + floor(start / a)` (right end) or `x0 - floor(start / a)` (left end). The
        // quotient and remainder are carried from row to row exactly (the row step is
        // split once into whole steps of `a` and a remainder), so no row divides.
        let mut edges = [EdgeWalk::default(); 3];
        for (k, edge) in edges.iter_mut().enumerate() {
            *edge = EdgeWalk::new(
                self.row[k],
                self.edge_dx[k],
                self.edge_dy[k],
                i64::from(first_row - self.y0),
            );
        }
        for y in first_row..end_row {
            // Selects rather than branches: the pattern of edge kinds changes from one
            // triangle to the next, which a branch predictor cannot learn.
            let mut first = x0;
            let mut last = x1;
            let mut empty = false;
            for edge in &mut edges {
                let left = x0 - edge.quotient;
                let right = x0 + edge.quotient;
                first = if edge.kind == EdgeKind::Left {
                    first.max(left)
                } else {
                    first
                };
                last = if edge.kind == EdgeKind::Right {
                    last.min(right)
                } else {
                    last
                };
                empty |= (edge.kind == EdgeKind::Flat) & (edge.quotient < 0);
                edge.next_row();
            }
            if empty {
                continue;
            }
            if first > last {
                continue;
            }
            let offset = (y - target.origin_y) as usize * target.stride;
            let begin = offset + (first as i32 - target.origin_x) as usize;
            let end = offset + (last as i32 - target.origin_x) as usize + 1;
            let z_row = self.z_x0 + self.dz_dy * (y as f32 + 0.5 - self.y_ref);
            span(
                &mut target.depth[begin..],
                &mut target.ids[begin..],
                end - begin,
                self.id,
                z_row,
                self.dz_dx,
                (first - x0) as i32,
            );
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum EdgeKind {
    /// The edge function grows to the right: it bounds the span's first sample.
    #[default]
    Left,
    /// It shrinks to the right: it bounds the last sample.
    Right,
    /// Horizontal edge: the whole row is inside or outside (`quotient` holds the edge
    /// function itself).
    Flat,
}

/// One edge function walked down the rows of a triangle: `quotient = floor(w / a)` and
/// `remainder = w - quotient * a` for the edge function `w` at the row's sample x0 and
/// `a` its change per sample.
#[derive(Debug, Clone, Copy, Default)]
struct EdgeWalk {
    kind: EdgeKind,
    quotient: i64,
    remainder: i64,
    divisor: i64,
    step_quotient: i64,
    step_remainder: i64,
}

impl EdgeWalk {
    /// `row`: the edge function at (x0, y0); `dx`, `dy`: the edge vector; `rows`: rows
    /// below y0 to start at.
    #[inline]
    fn new(row: i64, dx: i32, dy: i32, rows: i64) -> Self {
        // Per sample right the function changes by -dy << 8, per row down by dx << 8.
        let step_y = i64::from(dx) << SUBPIXEL_BITS;
        let start = row + step_y * rows;
        if dy == 0 {
            // A divisor of 1: the quotient is the edge function itself, never carried.
            return Self {
                kind: EdgeKind::Flat,
                quotient: start,
                divisor: 1,
                step_quotient: step_y,
                ..Self::default()
            };
        }
        let divisor = i64::from(dy.unsigned_abs()) << SUBPIXEL_BITS;
        // The row step over the divisor is dx / |dy| (the shifts cancel): 32-bit division
        // (|dy| < 2^31: corners are clamped to a few image widths).
        let magnitude = dy.unsigned_abs() as i32;
        Self {
            kind: if dy < 0 {
                EdgeKind::Left
            } else {
                EdgeKind::Right
            },
            quotient: start.div_euclid(divisor),
            remainder: start.rem_euclid(divisor),
            divisor,
            step_quotient: i64::from(dx.div_euclid(magnitude)),
            step_remainder: i64::from(dx.rem_euclid(magnitude)) << SUBPIXEL_BITS,
        }
    }

    #[inline(always)]
    fn next_row(&mut self) {
        self.remainder += self.step_remainder;
        let carry = self.remainder >= self.divisor;
        self.remainder -= if carry { self.divisor } else { 0 };
        self.quotient += self.step_quotient + i64::from(carry);
    }
}

/// Depth test along one span: sample `j` has depth `z_row + dz_dx * (skip + j)`. Written
/// as selects with no branches or carried state, so the compiler turns it into SIMD
/// (the sample index is a small integer, exact as a float on every lane).
#[inline]
fn depth_span(depth: &mut [f32], ids: &mut [u32], id: u32, z_row: f32, dz_dx: f32, skip: i32) {
    let ids = &mut ids[..depth.len()];
    for (j, (d, slot)) in depth.iter_mut().zip(ids.iter_mut()).enumerate() {
        let z = z_row + dz_dx * (skip + j as i32) as f32;
        // Bit selects with unconditional stores (a conditional store does not vectorise).
        let mask = u32::from(z > *d).wrapping_neg();
        *d = f32::from_bits((z.to_bits() & mask) | (d.to_bits() & !mask));
        *slot = (id & mask) | (*slot & !mask);
    }
}

/// [`depth_span`] on 8 lanes of AVX2, with the same IEEE operations per sample (integer to
/// float conversion, product, sum, ordered greater-than), so results are identical.
///
/// The samples after the span, up to the end of the last block, are read and written back
/// unchanged (their lanes get depth minus infinity, which never wins), so spans of any
/// length run in whole blocks; only a span within a block of the end of the target falls
/// back to [`depth_span`]. Depths are taken with `maxps` (its first operand where greater,
/// else the second: the select on the test, without a blend); the new ids go through
/// `black_box` before the store, since LLVM otherwise turns the blend of loaded and new
/// ids into a masked store (`vpmaskmovd`), several times slower on AMD Zen.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn depth_span_avx2(
    simd: pulp::x86::V3,
) -> impl FnMut(&mut [f32], &mut [u32], usize, u32, f32, f32, i32) {
    use pulp::{cast, f32x8, i32x8, u32x8};
    const LANES: usize = 8;
    move |depth: &mut [f32], ids: &mut [u32], len, id, z_row, dz_dx, skip| {
        let blocks = len.div_ceil(LANES);
        if depth.len().min(ids.len()) < blocks * LANES {
            return depth_span(&mut depth[..len], &mut ids[..len], id, z_row, dz_dx, skip);
        }
        let lanes = i32x8(0, 1, 2, 3, 4, 5, 6, 7);
        let z_row = simd.splat_f32x8(z_row);
        let dz_dx = simd.splat_f32x8(dz_dx);
        let id = simd.splat_u32x8(id);
        let never = simd.splat_f32x8(f32::NEG_INFINITY);
        let step = simd.splat_i32x8(LANES as i32);
        // Lane k of block b is sample b * 8 + k of the span: inside while below `len`.
        let mut index = lanes;
        let end = simd.splat_i32x8(len as i32);
        let skip = simd.splat_i32x8(skip);
        for (depth, ids) in depth[..blocks * LANES]
            .chunks_exact_mut(LANES)
            .zip(ids[..blocks * LANES].chunks_exact_mut(LANES))
        {
            let x = simd.wrapping_add_i32x8(skip, index);
            let z = simd.add_f32x8(z_row, simd.mul_f32x8(dz_dx, simd.convert_i32x8_to_f32x8(x)));
            let inside = simd.cmp_lt_i32x8(index, end);
            let z = simd.select_f32x8(inside, z, never);
            let old_depth: f32x8 =
                cast::<[f32; LANES], f32x8>(depth.try_into().unwrap_or([0.0; LANES]));
            let old_ids: u32x8 = cast::<[u32; LANES], u32x8>(ids.try_into().unwrap_or([0; LANES]));
            let nearer = simd.cmp_gt_f32x8(z, old_depth);
            // Where the triangle loses on every lane (mostly behind a surface drawn
            // before), the stores would write back what is there.
            if simd.avx._mm256_movemask_ps(cast(nearer)) == 0 {
                index = simd.wrapping_add_i32x8(index, step);
                continue;
            }
            let new_depth: [f32; LANES] = cast(simd.avx._mm256_max_ps(cast(z), cast(old_depth)));
            let new_ids: [u32; LANES] =
                cast(std::hint::black_box(simd.select_u32x8(nearer, id, old_ids)));
            depth.copy_from_slice(&new_depth);
            ids.copy_from_slice(&new_ids);
            index = simd.wrapping_add_i32x8(index, step);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw_one(corners: [(f32, f32, f32); 3], width: usize) -> Vec<u32> {
        let mut ids = vec![0u32; width * width];
        let mut depth = vec![0f32; width * width];
        if let Some(setup) = Setup::new(1, &corners, width) {
            let mut target = Target {
                ids: &mut ids,
                depth: &mut depth,
                stride: width,
                origin_x: 0,
                origin_y: 0,
            };
            setup.draw(0..width as i32, &mut target);
        }
        ids
    }

    #[test]
    fn two_triangles_of_a_square_cover_each_sample_once() {
        // Corners off the sample grid so the shared diagonal crosses sample centres.
        let (a, b, c, d) = (
            (1.3, 1.1, 1.0),
            (9.7, 1.1, 1.0),
            (9.7, 8.9, 1.0),
            (1.3, 8.9, 1.0),
        );
        let first = draw_one([a, b, c], 12);
        let second = draw_one([a, c, d], 12);
        let mut covered = 0;
        for (p, q) in first.iter().zip(&second) {
            assert!(p + q <= 1, "a sample was covered twice");
            covered += p + q;
        }
        // Sample centres x + 0.5 in (1.3, 9.7) and y + 0.5 in (1.1, 8.9): 9 by 8.
        assert_eq!(covered, 72);
    }

    #[test]
    fn spans_match_the_edge_functions_at_every_sample() {
        // Pseudo-random triangles, some reaching far outside the buffer: the solved spans
        // must cover exactly the samples where all three edge functions say inside.
        let width = 40usize;
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |range: f32| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 * range - range + 20.0
        };
        for round in 0..300 {
            let range = if round % 3 == 0 { 400.0 } else { 25.0 };
            let corners = [
                (next(range), next(range), 1.0),
                (next(range), next(range), 1.0),
                (next(range), next(range), 1.0),
            ];
            let drawn = draw_one(corners, width);
            // Corners far outside are clamped, as the rasteriser does.
            let limit = (width as f32 + 2.0) * 4.0 * SUBPIXEL;
            let fixed = |c: (f32, f32, f32)| {
                (
                    (c.0 * SUBPIXEL).round().clamp(-limit, limit) as i64,
                    (c.1 * SUBPIXEL).round().clamp(-limit, limit) as i64,
                )
            };
            let mut v = corners.map(fixed);
            let area =
                (v[1].0 - v[0].0) * (v[2].1 - v[0].1) - (v[1].1 - v[0].1) * (v[2].0 - v[0].0);
            if area < 0 {
                v.swap(1, 2);
            }
            for y in 0..width as i64 {
                for x in 0..width as i64 {
                    let (px, py) = (x * 256 + HALF_PIXEL, y * 256 + HALF_PIXEL);
                    let inside = area != 0
                        && (0..3).all(|k| {
                            let (a, b) = (v[k], v[(k + 1) % 3]);
                            let (dx, dy) = (b.0 - a.0, b.1 - a.1);
                            let bias = if dy < 0 || (dy == 0 && dx > 0) { 0 } else { -1 };
                            dx * (py - a.1) - dy * (px - a.0) + bias >= 0
                        });
                    let index = y as usize * width + x as usize;
                    assert_eq!(
                        drawn[index] == 1,
                        inside,
                        "round {round}, sample ({x}, {y})"
                    );
                }
            }
        }
    }

    #[test]
    fn nearer_surface_wins_and_ties_keep_the_first() {
        let width = 8;
        let mut ids = vec![0u32; width * width];
        let mut depth = vec![0f32; width * width];
        let mut target = Target {
            ids: &mut ids,
            depth: &mut depth,
            stride: width,
            origin_x: 0,
            origin_y: 0,
        };
        let quad = |z: f32| [(0.0, 0.0, z), (8.0, 0.0, z), (0.0, 8.0, z)];
        for (id, z) in [(1, 2.0), (2, 3.0), (3, 3.0), (4, 1.0)] {
            Setup::new(id, &quad(z), width)
                .unwrap()
                .draw(0..8, &mut target);
        }
        assert_eq!(ids[0], 2);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_spans_give_the_samples_of_the_plain_ones() {
        let Some(simd) = pulp::x86::V3::try_new() else {
            eprintln!("no AVX2 on this CPU: only the plain depth test runs here");
            return;
        };
        // Overlapping triangles with depth slopes, spans of every length (many shorter
        // than a block), some ending at the buffer's last samples, ties included.
        let width = 37usize;
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |range: f32| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * range
        };
        for round in 0..40 {
            let mut plain = (vec![0u32; width * width], vec![0f32; width * width]);
            let mut wide = plain.clone();
            for id in 1..=30u32 {
                let scale = if round % 2 == 0 { 45.0 } else { 8.0 };
                let flat = id % 5 == 0;
                let z = next(4.0);
                let corner =
                    |x: f32, y: f32, dz: f32| (x - 4.0, y - 4.0, if flat { z } else { z + dz });
                let corners = [
                    corner(next(scale), next(scale), next(2.0)),
                    corner(next(scale), next(scale), next(2.0)),
                    corner(next(scale), next(scale), next(2.0)),
                ];
                let Some(setup) = Setup::new(id, &corners, width) else {
                    continue;
                };
                let mut target = Target {
                    ids: &mut plain.0,
                    depth: &mut plain.1,
                    stride: width,
                    origin_x: 0,
                    origin_y: 0,
                };
                setup.draw(0..width as i32, &mut target);
                let mut target = Target {
                    ids: &mut wide.0,
                    depth: &mut wide.1,
                    stride: width,
                    origin_x: 0,
                    origin_y: 0,
                };
                simd.vectorize(|| setup.draw_avx2(simd, 0..width as i32, &mut target));
            }
            assert_eq!(plain.0, wide.0, "ids, round {round}");
            let bits = |depth: &[f32]| depth.iter().map(|d| d.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&plain.1), bits(&wide.1), "depths, round {round}");
            assert!(
                plain.0.iter().any(|&id| id != 0),
                "round {round} drew nothing"
            );
        }
    }
}
