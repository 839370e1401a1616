//! Lighting: a fixed key (upper left) and fill (right) light in camera space plus ambient,
//! so every view is lit alike. Surfaces are two-sided (STL winding is often wrong): each
//! face is lit from the side the camera sees.

use crate::camera::{Camera, Projection};
use crate::math::Vec3;
use crate::prepare::PreparedMesh;
use crate::settings::{RenderSettings, Shading};

/// Per-view lighting. Intensity is computed at corners (smooth) or per face (flat) and
/// interpolated across the triangle in screen space as a plane `a + b x + c y` (Gouraud
/// shading), so a sample costs two multiply-adds instead of a normal normalisation.
pub(super) struct Shader<'a> {
    mesh: &'a PreparedMesh,
    screen: &'a [[(f32, f32, f32); 3]],
    /// Face normal turned towards the camera.
    pub facing: Vec<Vec3>,
    key: Vec3,
    fill: Vec3,
    base: [f32; 3],
    smooth: bool,
}

impl<'a> Shader<'a> {
    pub fn new(
        mesh: &'a PreparedMesh,
        camera: &Camera,
        screen: &'a [[(f32, f32, f32); 3]],
        settings: &RenderSettings,
    ) -> Self {
        let eye = camera.toward_camera * camera.eye_distance();
        let perspective = matches!(settings.projection, Projection::Perspective { .. });
        let facing = mesh
            .triangles
            .iter()
            .zip(&mesh.face_normals)
            .map(|(t, n)| {
                let toward = if perspective {
                    eye - (t[0] + t[1] + t[2]) * (1.0 / 3.0)
                } else {
                    camera.toward_camera
                };
                if n.dot(toward) < 0.0 {
                    -*n
                } else {
                    *n
                }
            })
            .collect();
        let in_camera = |r: f32, u: f32, t: f32| {
            (camera.right * r + camera.up * u + camera.toward_camera * t).normalized()
        };
        Self {
            mesh,
            screen,
            facing,
            key: in_camera(-0.45, 0.65, 0.6),
            fill: in_camera(0.7, -0.25, 0.45),
            base: settings.color.map(|c| c as f32),
            smooth: settings.shading == Shading::Smooth && mesh.corner_normals.is_some(),
        }
    }

    fn intensity(&self, n: Vec3) -> f32 {
        0.28 + 0.62 * n.dot(self.key).max(0.0) + 0.22 * n.dot(self.fill).max(0.0)
    }

    #[inline(always)]
    fn color(&self, intensity: f32) -> [u32; 3] {
        self.base.map(|c| channel_byte(c * intensity + 0.5))
    }

    /// Intensity plane of triangle `index`: `[a, b, c, low, high]` with the corner range
    /// used to clamp (samples on edges must not extrapolate).
    fn plane(&self, index: usize) -> [f32; 5] {
        let facing = self.facing[index];
        let flat = self.intensity(facing);
        let corners = match (&self.mesh.corner_normals, self.smooth) {
            (Some(normals), true) => normals[index],
            _ => return [flat, 0.0, 0.0, flat, flat],
        };
        let level = corners.map(|n| self.intensity(if n.dot(facing) < 0.0 { -n } else { n }));
        let [p0, p1, p2] = self.screen[index];
        let area = (p1.0 - p0.0) * (p2.1 - p0.1) - (p1.1 - p0.1) * (p2.0 - p0.0);
        if area.abs() < 1e-6 {
            return [flat, 0.0, 0.0, flat, flat];
        }
        let (d1, d2) = (level[1] - level[0], level[2] - level[0]);
        let b = (d1 * (p2.1 - p0.1) - d2 * (p1.1 - p0.1)) / area;
        let c = (d2 * (p1.0 - p0.0) - d1 * (p2.0 - p0.0)) / area;
        let a = level[0] - b * p0.0 - c * p0.1;
        let low = level[0].min(level[1]).min(level[2]);
        let high = level[0].max(level[1]).max(level[2]);
        [a, b, c, low, high]
    }
}

/// `value.clamp(0.0, 255.0) as u32` (NaN gives 0), in operations that run on SIMD lanes
/// (the saturating float-to-integer cast does not): rounding by adding 2^23, whose unit in
/// the last place is 1, then stepping down where that rounded up. Checked against the cast
/// for every float from -2 to 300 and for NaN and the infinities.
#[inline(always)]
// `max` then `min` rather than `clamp`: `max` turns NaN into 0, as the cast does, where
// `clamp` would keep the NaN.
#[allow(clippy::manual_clamp)]
pub(super) fn channel_byte(value: f32) -> u32 {
    const MAGIC: f32 = 8_388_608.0;
    let clamped = value.max(0.0).min(255.0);
    let shifted = clamped + MAGIC;
    let rounded = shifted - MAGIC;
    (shifted.to_bits() - MAGIC.to_bits()) - u32::from(rounded > clamped)
}

/// Lazily computed intensity planes of the triangles that turn out visible, with the last
/// two looked up kept at hand (neighbouring pixels mostly show the same triangle, pixels
/// on an edge two).
pub(super) struct Planes<'s, 'a> {
    shader: &'s Shader<'a>,
    cache: &'s mut Vec<[f32; 5]>,
    last_id: u32,
    last: [f32; 5],
    /// The one looked up before `last`: pixels on an edge alternate between two triangles.
    previous_id: u32,
    previous: [f32; 5],
}

impl<'s, 'a> Planes<'s, 'a> {
    /// `cache` is scratch space (reused across views to save the allocation).
    pub fn new(shader: &'s Shader<'a>, cache: &'s mut Vec<[f32; 5]>) -> Self {
        cache.clear();
        cache.resize(shader.facing.len(), [f32::NAN; 5]);
        Self {
            shader,
            cache,
            last_id: 0,
            last: [0.0; 5],
            previous_id: 0,
            previous: [0.0; 5],
        }
    }

    /// Colour of triangle `id` (1-based) at sample position (x, y).
    #[inline(always)]
    pub fn shade(&mut self, id: u32, x: f32, y: f32) -> [u32; 3] {
        if id != self.last_id {
            self.look_up(id);
        }
        let plane = &self.last;
        let intensity = (plane[0] + plane[1] * x + plane[2] * y).clamp(plane[3], plane[4]);
        self.shader.color(intensity)
    }

    /// Colours of a run of pixels of triangle `id` along a row: pixel `j` at
    /// (`x0 + j * step`, `y`), written as RGB into `out`. Same arithmetic as [`Self::shade`]
    /// with the plane looked up once per run, done a chunk of pixels at a time one channel
    /// at a time so that it runs on SIMD lanes.
    ///
    /// A chunk whose first and last pixels get the same colour is filled with it: every
    /// step from `x` to a channel byte (a product, sums, the clamp, `channel_byte`) is
    /// monotone in `x` under IEEE rounding, so the pixels between cannot differ (the plane
    /// values must be finite at both ends, which bounds every value between). Flat faces,
    /// and Gouraud gradients over short distances, mostly are such chunks.
    pub fn shade_run(&mut self, id: u32, x0: f32, step: f32, y: f32, out: &mut [u8]) {
        const CHUNK: usize = 16;
        if id != self.last_id {
            self.look_up(id);
        }
        let [a, b, c, low, high] = self.last;
        let base = self.shader.base;
        let cy = c * y;
        let color_at = |j: usize| {
            // Whole and half numbers: exact, so equal to the centre `shade` is given.
            let x = x0 + j as f32 * step;
            let level = a + b * x + cy;
            let clamped = level.clamp(low, high);
            (
                level.is_finite(),
                base.map(|c| channel_byte(c * clamped + 0.5)),
            )
        };
        let count = out.len() / 3;
        if count == 0 {
            return;
        }
        let (first_finite, first) = color_at(0);
        let (last_finite, last) = color_at(count - 1);
        if first_finite && last_finite && first == last {
            fill_rgb(out, first.map(|c| c as u8));
            return;
        }
        for (chunk, pixels) in out.chunks_mut(CHUNK * 3).enumerate() {
            let start = chunk * CHUNK;
            let end = start + pixels.len() / 3 - 1;
            let (first_finite, first) = color_at(start);
            let (last_finite, last) = color_at(end);
            if first_finite && last_finite && first == last {
                fill_rgb(pixels, first.map(|c| c as u8));
                continue;
            }
            let mut level = [0f32; CHUNK];
            for (j, level) in level.iter_mut().enumerate() {
                let x = x0 + (start + j) as f32 * step;
                *level = (a + b * x + cy).clamp(low, high);
            }
            let mut channels = [[0u32; CHUNK]; 3];
            for (channel, c) in channels.iter_mut().zip(base) {
                for (value, level) in channel.iter_mut().zip(level) {
                    *value = channel_byte(c * level + 0.5);
                }
            }
            for (j, pixel) in pixels.chunks_exact_mut(3).enumerate() {
                pixel.copy_from_slice(&[
                    channels[0][j] as u8,
                    channels[1][j] as u8,
                    channels[2][j] as u8,
                ]);
            }
        }
    }

    #[inline(never)]
    fn look_up(&mut self, id: u32) {
        if id == self.previous_id {
            std::mem::swap(&mut self.last_id, &mut self.previous_id);
            std::mem::swap(&mut self.last, &mut self.previous);
            return;
        }
        self.previous_id = self.last_id;
        self.previous = self.last;
        let index = id as usize - 1;
        let mut plane = self.cache[index];
        if plane[0].is_nan() {
            plane = self.shader.plane(index);
            self.cache[index] = plane;
        }
        self.last_id = id;
        self.last = plane;
    }
}

/// Fills RGB `out` with one colour, 16 pixels (three 16-byte words) per step.
#[inline]
pub(super) fn fill_rgb(out: &mut [u8], rgb: [u8; 3]) {
    if rgb[0] == rgb[1] && rgb[1] == rgb[2] {
        out.fill(rgb[0]);
        return;
    }
    let mut pattern = [0u8; 48];
    for pixel in pattern.chunks_exact_mut(3) {
        pixel.copy_from_slice(&rgb);
    }
    let mut blocks = out.chunks_exact_mut(48);
    for block in &mut blocks {
        block.copy_from_slice(&pattern);
    }
    let rest = blocks.into_remainder();
    let len = rest.len();
    rest.copy_from_slice(&pattern[..len]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::ViewSpec;
    use crate::load::UpAxis;
    use crate::mesh::Part;

    /// A coarse sphere (Gouraud gradients) and a flat square (one colour per face).
    fn mesh() -> PreparedMesh {
        let point = |i: usize, j: usize| {
            let theta = std::f32::consts::TAU * i as f32 / 12.0;
            let phi = std::f32::consts::PI * j as f32 / 6.0;
            Vec3::new(phi.sin() * theta.cos(), phi.sin() * theta.sin(), phi.cos())
        };
        let mut triangles = Vec::new();
        for j in 0..6 {
            for i in 0..12 {
                let (a, b, c, d) = (
                    point(i, j),
                    point(i + 1, j),
                    point(i, j + 1),
                    point(i + 1, j + 1),
                );
                triangles.push([a, c, b]);
                triangles.push([b, c, d]);
            }
        }
        let flat = |x: f32, z: f32| Vec3::new(x, -1.5, z);
        triangles.push([flat(-1.0, -1.0), flat(1.0, -1.0), flat(1.0, 1.0)]);
        triangles.push([flat(-1.0, -1.0), flat(1.0, 1.0), flat(-1.0, 1.0)]);
        let part = Part {
            name: "sphere and square".into(),
            triangles,
        };
        PreparedMesh::new(&part, UpAxis::Z, Some(40.0)).expect("valid mesh")
    }

    #[test]
    fn runs_shade_every_pixel_as_a_single_pixel_would() {
        // `shade_run` fills chunks whose ends agree; every pixel must still be exactly what
        // `shade` gives at its centre, for gradients, flat faces and any run length.
        let mesh = mesh();
        for view in ViewSpec::parse_list("front,iso,az:30:el:-20").expect("views") {
            for samples in 1..=4u32 {
                let settings = RenderSettings {
                    size: 64,
                    supersample: samples,
                    ..RenderSettings::default()
                };
                let width = settings.size * samples;
                let camera = Camera::new(&view, settings.projection, width, settings.fill);
                let screen: Vec<_> = mesh
                    .triangles
                    .iter()
                    .map(|t| t.map(|v| camera.project(v)))
                    .collect();
                let shader = Shader::new(&mesh, &camera, &screen, &settings);
                let mut cache = Vec::new();
                let mut planes = Planes::new(&shader, &mut cache);
                let step = samples as f32;
                let offset = step / 2.0;
                for id in 1..=mesh.triangles.len() as u32 {
                    for (row, length) in [(3usize, 1usize), (20, 15), (31, 16), (40, 17), (50, 63)]
                    {
                        let y = (row * samples as usize) as f32 + offset;
                        let first = (id as usize * 7) % 20;
                        let x0 = (first * samples as usize) as f32 + offset;
                        let mut run = vec![0u8; length * 3];
                        planes.shade_run(id, x0, step, y, &mut run);
                        for (j, pixel) in run.chunks_exact(3).enumerate() {
                            let single = planes.shade(id, x0 + j as f32 * step, y).map(|c| c as u8);
                            assert_eq!(pixel, single, "triangle {id}, pixel {j} of {length}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn fill_rgb_repeats_the_colour() {
        for length in [0, 1, 15, 16, 17, 40] {
            for rgb in [[7, 7, 7], [1, 2, 3]] {
                let mut out = vec![0u8; length * 3];
                fill_rgb(&mut out, rgb);
                assert!(out.chunks_exact(3).all(|pixel| pixel == rgb));
            }
        }
    }
}
