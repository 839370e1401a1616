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
            1 => self.resolve_with::<1>(samples, rows, columns, pixels),
            2 => self.resolve_with::<2>(samples, rows, columns, pixels),
            3 => self.resolve_with::<3>(samples, rows, columns, pixels),
            _ => self.resolve_with::<4>(samples, rows, columns, pixels),
        }
    }

    fn resolve_with<const S: usize>(
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
            self.classify::<S>(samples, first, columns.len(), &mut classes);
            let line = &mut pixels[out_y * self.size * 3..(out_y + 1) * self.size * 3];
            let line = &mut line[columns.start * 3..columns.end * 3];
            let y = (out_y * S) as f32 + centre_offset;
            let count = classes.len();
            let mut k = 0;
            while k < count {
                let class = classes[k];
                let mut end = k + 1;
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
    /// `first`: the id they all show, or [`MIXED`]. Compares whole sample rows at once
    /// (`same_down[p]`: column p shows one id from the row above the pixels' samples to
    /// the row below them; `same_right[p]`: each sample row shows one id at columns p and
    /// p + 1), as all-ones or zero masks, which vectorises, then combines S + 1 flags per
    /// pixel without branches.
    fn classify<const S: usize>(
        &mut self,
        samples: &Samples,
        first: usize,
        count: usize,
        classes: &mut Vec<u32>,
    ) {
        let ids = samples.ids;
        let stride = samples.stride;
        // Columns first - 1 ..= first + count * S: the pixels' samples and one on each side.
        let columns = count * S + 2;
        let row = |k: usize| &ids[first - 1 + k * stride - stride..][..columns];
        let mask = |same: bool| u32::from(same).wrapping_neg();
        // Sample rows to compare vertically: with outlines, the rows above and below too.
        let (top, bottom) = if self.outlines { (0, S + 1) } else { (1, S) };
        // The first comparison sets the flags, the others narrow them (every flag is
        // written, so the buffers are only resized, never cleared).
        let same_down = &mut self.same_down;
        same_down.resize(columns, 0);
        if top == bottom {
            // One sample row and no outlines: nothing to compare vertically.
            same_down.fill(u32::MAX);
        }
        for k in top..bottom {
            let (upper, lower) = (row(k), row(k + 1));
            for ((flag, a), b) in same_down.iter_mut().zip(upper).zip(lower) {
                *flag = mask(a == b) & if k == top { u32::MAX } else { *flag };
            }
        }
        let same_right = &mut self.same_right;
        same_right.resize(columns, 0);
        for k in 1..=S {
            let line = row(k);
            for ((flag, a), b) in same_right.iter_mut().zip(line).zip(&line[1..]) {
                *flag = mask(a == b) & if k == 1 { u32::MAX } else { *flag };
            }
        }
        // The last column has no right neighbour in the buffer (and no pixel uses it).
        same_right[columns - 1] = 0;
        // Pixel i covers columns 1 + i*S ..= i*S + S. Uniform: every one of its columns is
        // the same down, and neighbouring columns agree from i*S (its left neighbour) to
        // i*S + S (its right neighbour). Without outlines, neighbours do not matter: the
        // pairs that cross a pixel boundary count as agreeing.
        if !self.outlines {
            for flag in same_right.iter_mut().step_by(S) {
                *flag = u32::MAX;
            }
        }
        for (down, right) in same_down.iter_mut().zip(same_right.iter()) {
            *down &= right;
        }
        // Pixel i: flags right[i*S] (its left neighbour) and both[i*S + 1 ..= i*S + S];
        // MIXED is all ones, so `id | !uniform` is the id or MIXED.
        let both = &same_down[1..];
        let first_row = &row(1)[1..];
        classes.resize(count, 0);
        for (((class, block), right), ids) in classes
            .iter_mut()
            .zip(both.chunks_exact(S))
            .zip(same_right.chunks_exact(S))
            .zip(first_row.chunks_exact(S))
        {
            let uniform = block.iter().fold(right[0], |all, &flag| all & flag);
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
        let ids = samples.ids;
        let stride = samples.stride;
        let id = ids[top_left];
        let mut outline = [[false; S]; S];
        let mut uniform = true;
        for (sy, flags) in outline.iter_mut().enumerate() {
            for (sx, flag) in flags.iter_mut().enumerate() {
                let i = top_left + sy * stride + sx;
                *flag = self.outlines && self.on_outline(samples, i);
                uniform &= ids[i] == id && !*flag;
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
                let id = ids[top_left + sy * stride + sx];
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

    fn on_outline(&self, samples: &Samples, i: usize) -> bool {
        let ids = samples.ids;
        [i - 1, i + 1, i - samples.stride, i + samples.stride]
            .into_iter()
            .any(|j| ids[j] != ids[i] && self.differs(samples, i, j))
    }

    /// Whether two samples showing different triangles are separated by a visible edge.
    fn differs(&self, samples: &Samples, i: usize, j: usize) -> bool {
        let (a, b) = (samples.ids[i], samples.ids[j]);
        if a == 0 || b == 0 {
            return true;
        }
        let distance = |k: usize| self.camera.distance_of(samples.depth[k]);
        (distance(i) - distance(j)).abs() > self.depth_jump
            || self.shader.facing[a as usize - 1].dot(self.shader.facing[b as usize - 1])
                < self.cos_crease
    }
}
