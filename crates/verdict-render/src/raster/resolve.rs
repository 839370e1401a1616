//! Outlines and resolve in one pass: turns the samples of some output rows into pixels.
//!
//! A sample is on an outline when one of its four neighbours shows a different triangle
//! and the two differ visibly: one is background, the depths jump, or the faces meet at a
//! crease. A pixel whose samples and their neighbours all show the same triangle cannot
//! hold an outline, so it is shaded once at its centre (most pixels); the cheap id
//! comparison decides that without looking at depths or normals. Other pixels are shaded
//! per sample and averaged with integer rounding.

use std::ops::Range;

use crate::camera::Camera;
use crate::settings::RenderSettings;

use super::shade::{Planes, Shader};

/// Read-only view of a sample rectangle, with a one-sample border all around the pixels
/// being resolved (so every neighbour can be read without bounds logic).
pub(super) struct Samples<'a> {
    pub ids: &'a [u32],
    pub depth: &'a [f32],
    pub stride: usize,
    pub origin_x: i32,
    pub origin_y: i32,
}

/// Resolves output pixels; holds what stays fixed for a view.
pub(super) struct Resolver<'s, 'a> {
    planes: Planes<'s, 'a>,
    shader: &'s Shader<'a>,
    camera: &'s Camera,
    samples: usize,
    size: usize,
    outlines: bool,
    cos_crease: f32,
    depth_jump: f32,
    background: [u32; 3],
    outline: [u32; 3],
    /// Per pixel of the row being resolved: the triangle id when the pixel is uniform
    /// (0: background), else [`MIXED`].
    classes: Vec<u32>,
    /// Scratch of [`Self::classify`].
    same_down: Vec<u32>,
    same_right: Vec<u32>,
    /// The last pair of triangles (smaller id first) whose crease was tested, and the result.
    last_pair: (u32, u32),
    last_crease: bool,
}

/// Class of a pixel that needs per-sample work.
const MIXED: u32 = u32::MAX;

impl<'s, 'a> Resolver<'s, 'a> {
    pub fn new(
        planes: Planes<'s, 'a>,
        shader: &'s Shader<'a>,
        camera: &'s Camera,
        settings: &RenderSettings,
    ) -> Self {
        let pixel_size = 1.0 / camera.pixels_per_unit;
        Self {
            planes,
            shader,
            camera,
            samples: settings.supersample.max(1) as usize,
            size: settings.size as usize,
            outlines: settings.outlines,
            cos_crease: settings.crease_degrees.to_radians().cos(),
            depth_jump: 0.02 + 12.0 * pixel_size,
            background: settings.background.map(u32::from),
            outline: settings.outline_color.map(u32::from),
            classes: Vec::new(),
            same_down: Vec::new(),
            same_right: Vec::new(),
            last_pair: (0, 0),
            last_crease: false,
        }
    }

    /// Writes output pixels `rows` x `columns` into `pixels` (the whole RGB image).
    pub fn resolve(
        &mut self,
        samples: &Samples,
        rows: Range<usize>,
        columns: Range<usize>,
        pixels: &mut [u8],
    ) {
        // A constant sample count lets the compiler unroll the per-pixel loops.
        match self.samples {
            1 => self.resolve_outlines::<1>(samples, rows, columns, pixels),
            2 => self.resolve_outlines::<2>(samples, rows, columns, pixels),
            3 => self.resolve_outlines::<3>(samples, rows, columns, pixels),
            _ => self.resolve_outlines::<4>(samples, rows, columns, pixels),
        }
    }

    fn resolve_outlines<const S: usize>(
        &mut self,
        samples: &Samples,
        rows: Range<usize>,
        columns: Range<usize>,
        pixels: &mut [u8],
    ) {
        if self.outlines {
            self.resolve_with::<S, true>(samples, rows, columns, pixels)
        } else {
            self.resolve_with::<S, false>(samples, rows, columns, pixels)
        }
    }

    fn resolve_with<const S: usize, const OUTLINES: bool>(
        &mut self,
        samples: &Samples,
        rows: Range<usize>,
        columns: Range<usize>,
        pixels: &mut [u8],
    ) {
        let stride = samples.stride;
        let centre_offset = S as f32 / 2.0;
        let mut classes = std::mem::take(&mut self.classes);
        for out_y in rows {
            let sample_row = (out_y * S) as i32 - samples.origin_y;
            let row_start = sample_row as usize * stride;
            let first = row_start + ((columns.start * S) as i32 - samples.origin_x) as usize;
            self.classify::<S, OUTLINES>(samples, first, columns.len(), &mut classes);
            let line = &mut pixels[out_y * self.size * 3..(out_y + 1) * self.size * 3];
            let line = &mut line[columns.start * 3..columns.end * 3];
            let y = (out_y * S) as f32 + centre_offset;
            let count = classes.len();
            let mut k = 0;
            while k < count {
                let class = classes[k];
                // Whole blocks first (compared without branches, on SIMD lanes): runs of
                // one triangle are long.
                let mut end = k + 1;
                while end + 8 <= count
                    && classes[end..end + 8]
                        .iter()
                        .fold(true, |all, &other| all & (other == class))
                {
                    end += 8;
                }
                while end < count && classes[end] == class {
                    end += 1;
                }
                let run = end - k;
                let out = &mut line[k * 3..end * 3];
                match class {
                    MIXED => {
                        for (j, pixel) in out.chunks_exact_mut(3).enumerate() {
                            let out_x = columns.start + k + j;
                            let top_left = first + (k + j) * S;
                            let color =
                                self.mixed::<S>(samples, top_left, out_x, out_y, centre_offset);
                            pixel.copy_from_slice(&color.map(|c| c as u8));
                        }
                    }
                    0 => {
                        let background = self.background.map(|c| c as u8);
                        if background[0] == background[1] && background[1] == background[2] {
                            out.fill(background[0]);
                        } else {
                            for pixel in out.chunks_exact_mut(3) {
                                pixel.copy_from_slice(&background);
                            }
                        }
                    }
                    id => {
                        let x0 = ((columns.start + k) * S) as f32 + centre_offset;
                        self.planes.shade_run(id, x0, S as f32, y, out);
                    }
                }
                k += run;
            }
        }
        self.classes = classes;
    }

    /// Sets `classes[i]` for the `count` pixels of one output row whose first sample is
    /// `first`: the id they all show, or [`MIXED`]. One pass over the sample columns sets
    /// two flags per column as all-ones or zero masks, which vectorises (`same_down[p]`:
    /// column p shows one id from the row above the pixels' samples to the row below
    /// them, or over the pixels' rows only without outlines; `same_right[p]`: each sample
    /// row shows one id at columns p and p + 1), then S + 1 flags are combined per pixel
    /// without branches.
    fn classify<const S: usize, const OUTLINES: bool>(
        &mut self,
        samples: &Samples,
        first: usize,
        count: usize,
        classes: &mut Vec<u32>,
    ) {
        let stride = samples.stride;
        // Columns first - 1 ..= first + count * S: the pixels' samples and one on each side,
        // in the sample rows from the one above the pixels' to the one below.
        let columns = count * S + 2;
        let base = first - 1 - stride;
        let ids = &samples.ids[base..base + (S + 1) * stride + columns];
        let row = |k: usize| &ids[k * stride..k * stride + columns];
        // Rows compared vertically: with outlines, the rows above and below too.
        let (top, bottom) = if OUTLINES { (0, S + 1) } else { (1, S) };
        let mut rows: [&[u32]; 6] = [row(0); 6];
        for (k, slot) in rows.iter_mut().enumerate().take(S + 2) {
            *slot = row(k);
        }
        let mask = |same: bool| u32::from(same).wrapping_neg();
        self.same_down.resize(columns, 0);
        self.same_right.resize(columns, 0);
        let same_down = &mut self.same_down[..columns];
        let same_right = &mut self.same_right[..columns];
        // The last column has no right neighbour in the buffer (and no pixel uses it).
        for c in 0..columns - 1 {
            let mut down = u32::MAX;
            for k in top..bottom {
                down &= mask(rows[k][c] == rows[k + 1][c]);
            }
            let mut right = u32::MAX;
            for line in &rows[1..=S] {
                right &= mask(line[c] == line[c + 1]);
            }
            same_down[c] = down;
            same_right[c] = right;
        }
        same_down[columns - 1] = u32::MAX;
        same_right[columns - 1] = 0;
        // Pixel i covers columns 1 + i*S ..= i*S + S. Uniform: every one of its columns is
        // the same down, and neighbouring columns agree from i*S (its left neighbour) to
        // i*S + S (its right neighbour). Without outlines, neighbours do not matter: the
        // pairs that cross a pixel boundary count as agreeing.
        if !OUTLINES {
            for flag in same_right.iter_mut().step_by(S) {
                *flag = u32::MAX;
            }
        }
        // Pixel i: flags right[i*S] (its left neighbour) and down and right of
        // i*S + 1 ..= i*S + S; MIXED is all ones, so `id | !uniform` is the id or MIXED.
        let first_row = &rows[1][1..];
        classes.resize(count, 0);
        for ((((class, down), right), left), ids) in classes
            .iter_mut()
            .zip(same_down[1..].chunks_exact(S))
            .zip(same_right[1..].chunks_exact(S))
            .zip(same_right.iter().step_by(S))
            .zip(first_row.chunks_exact(S))
        {
            let uniform = down
                .iter()
                .zip(right)
                .fold(*left, |all, (&d, &r)| all & d & r);
            *class = ids[0] | !uniform;
        }
    }

    /// A pixel whose samples, or their neighbours, show different triangles: shaded once
    /// at its centre when all its samples show one triangle and none is on an outline,
    /// else every sample is shaded on its own and the colours averaged.
    fn mixed<const S: usize>(
        &mut self,
        samples: &Samples,
        top_left: usize,
        out_x: usize,
        out_y: usize,
        centre_offset: f32,
    ) -> [u32; 3] {
        let stride = samples.stride;
        // The pixel's samples and their four-neighbours, sliced once so that the reads
        // below need no bounds checks of their own.
        let origin = top_left - stride - 1;
        let span = (S + 1) * stride + S + 2;
        let ids = &samples.ids[origin..origin + span];
        let depth = &samples.depth[origin..origin + span];
        let at = |sy: usize, sx: usize| (sy + 1) * stride + sx + 1;
        let id = ids[at(0, 0)];
        let mut outline = [[false; S]; S];
        let mut uniform = true;
        for (sy, flags) in outline.iter_mut().enumerate() {
            for (sx, flag) in flags.iter_mut().enumerate() {
                let i = at(sy, sx);
                let own = ids[i];
                if self.outlines {
                    for j in [i - 1, i + 1, i - stride, i + stride] {
                        let other = ids[j];
                        if other != own && self.differs(own, other, depth[i], depth[j]) {
                            *flag = true;
                            break;
                        }
                    }
                }
                uniform &= own == id && !*flag;
            }
        }
        if uniform {
            if id == 0 {
                return self.background;
            }
            let x = (out_x * S) as f32 + centre_offset;
            let y = (out_y * S) as f32 + centre_offset;
            return self.planes.shade(id, x, y);
        }
        let count = (S * S) as u32;
        let mut sum = [0u32; 3];
        for (sy, flags) in outline.iter().enumerate() {
            let y = out_y * S + sy;
            for (sx, &on_outline) in flags.iter().enumerate() {
                let x = out_x * S + sx;
                let id = ids[at(sy, sx)];
                let color = if on_outline {
                    self.outline
                } else if id == 0 {
                    self.background
                } else {
                    self.planes.shade(id, x as f32 + 0.5, y as f32 + 0.5)
                };
                sum[0] += color[0];
                sum[1] += color[1];
                sum[2] += color[2];
            }
        }
        sum.map(|channel| (channel + count / 2) / count)
    }

    /// Whether two samples showing different triangles `a` and `b`, at depths
    /// `depth_a` and `depth_b`, are separated by a visible edge.
    #[inline]
    fn differs(&mut self, a: u32, b: u32, depth_a: f32, depth_b: f32) -> bool {
        if a == 0 || b == 0 {
            return true;
        }
        let distance = |depth: f32| self.camera.distance_of(depth);
        if (distance(depth_a) - distance(depth_b)).abs() > self.depth_jump {
            return true;
        }
        // Pixels along an edge meet the same pair of faces again and again (the dot
        // product is symmetric, so the pair is kept in either order).
        let pair = (a.min(b), a.max(b));
        if pair != self.last_pair {
            let facing = &self.shader.facing;
            self.last_pair = pair;
            self.last_crease = facing[a as usize - 1].dot(facing[b as usize - 1]) < self.cos_crease;
        }
        self.last_crease
    }
}
