//! The CPU rasteriser behind the [`Renderer`] trait.
//!
//! Two passes over a supersampled buffer (`size * supersample` squared):
//!
//! 1. Visibility: every triangle is scan-converted with integer edge functions (8 bits of
//!    sub-pixel precision, top-left fill rule), so neighbouring triangles share edges without
//!    gaps or double hits and results do not depend on float rounding order. Each sample
//!    keeps the nearest triangle's id and depth. No shading happens here, so overdraw is cheap.
//! 2. Resolve: outline samples are marked by comparing each sample with its neighbours
//!    (background vs object, a jump in depth, or a crease between faces); then each output
//!    pixel is shaded once when all its samples show one triangle and no outline (most
//!    pixels), else per sample, averaged with integer rounding. Shading is Gouraud: light
//!    is evaluated at corners (smooth) or per face (flat) and interpolated as a plane.
//!
//! Surfaces are two-sided (STL winding is often wrong): each face is lit from the side the
//! camera sees. Light is a fixed key (upper left) and fill (right) in camera space plus
//! ambient, so every view is lit alike. Everything is sequential per view and uses the same
//! operations in the same order, so output is byte-identical run to run and across thread
//! counts; parallelism lives above, across views and files.

use crate::camera::{Camera, ViewSpec};
use crate::math::Vec3;
use crate::prepare::PreparedMesh;
use crate::settings::RenderSettings;

/// An 8-bit RGB image, rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl Image {
    pub fn new(width: u32, height: u32, fill: [u8; 3]) -> Image {
        let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
        for _ in 0..width as usize * height as usize {
            pixels.extend_from_slice(&fill);
        }
        Image {
            width,
            height,
            pixels,
        }
    }

    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// PNG bytes (fast deflate: these images are mostly flat colour and compress well anyway).
    pub fn encode_png(&self) -> Result<Vec<u8>, String> {
        use image::codecs::png::{CompressionType, FilterType, PngEncoder};
        use image::ImageEncoder;
        let mut out = Vec::new();
        PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
            .write_image(
                &self.pixels,
                self.width,
                self.height,
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| e.to_string())?;
        Ok(out)
    }
}

/// Draws one view of a prepared mesh. Implementations must be deterministic.
pub trait Renderer: Send + Sync {
    /// Short name for logs and benchmark tables.
    fn name(&self) -> &'static str;
    fn render(&self, mesh: &PreparedMesh, view: &ViewSpec, settings: &RenderSettings) -> Image;
}

/// The default renderer: a scanline/edge-function rasteriser on the CPU, one thread per view.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuRasterizer;

const SUBPIXEL_BITS: u32 = 8;
const SUBPIXEL: f32 = (1 << SUBPIXEL_BITS) as f32;
const HALF_PIXEL: i64 = 1 << (SUBPIXEL_BITS - 1);

impl Renderer for CpuRasterizer {
    fn name(&self) -> &'static str {
        "verdict-cpu"
    }

    fn render(&self, mesh: &PreparedMesh, view: &ViewSpec, settings: &RenderSettings) -> Image {
        let samples = settings.supersample.max(1);
        let width = settings.size * samples;
        let camera = Camera::new(view, settings.projection, width, settings.fill);
        let mut buffer = SampleBuffer::take(width as usize);
        let mut screen = Vec::with_capacity(mesh.triangles.len());
        for (index, triangle) in mesh.triangles.iter().enumerate() {
            let corners = triangle.map(|v| camera.project(v));
            screen.push(corners);
            buffer.draw(index as u32 + 1, &corners);
        }
        let shader = Shader::new(mesh, &camera, &screen, settings);
        let image = resolve(&buffer, &shader, &camera, settings);
        buffer.give_back();
        image
    }
}

/// Nearest triangle id (0 = background) and its depth per sample.
struct SampleBuffer {
    width: usize,
    depth: Vec<f32>,
    ids: Vec<u32>,
}

/// Buffers kept per thread up to this many samples: reusing them saves the page faults of
/// fresh allocations on every view, which cost as much as rasterising a simple mesh.
const REUSE_SAMPLES: usize = 4096 * 4096;

thread_local! {
    static SPARE: std::cell::RefCell<(Vec<f32>, Vec<u32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

impl SampleBuffer {
    /// A cleared buffer, reusing this thread's previous one when there is one.
    fn take(width: usize) -> Self {
        let (mut depth, mut ids) = SPARE.with(|spare| std::mem::take(&mut *spare.borrow_mut()));
        depth.clear();
        depth.resize(width * width, 0.0);
        ids.clear();
        ids.resize(width * width, 0);
        Self { width, depth, ids }
    }

    fn give_back(self) {
        if self.ids.len() <= REUSE_SAMPLES {
            SPARE.with(|spare| *spare.borrow_mut() = (self.depth, self.ids));
        }
    }

    fn draw(&mut self, id: u32, corners: &[(f32, f32, f32); 3]) {
        let fixed = |c: &(f32, f32, f32)| {
            let limit = (self.width as f32 + 2.0) * 4.0 * SUBPIXEL;
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
            return;
        }
        if area < 0 {
            v.swap(1, 2);
            area = -area;
        }
        let last = self.width as i64 - 1;
        let min_x = v[0].0.min(v[1].0).min(v[2].0);
        let max_x = v[0].0.max(v[1].0).max(v[2].0);
        let min_y = v[0].1.min(v[1].1).min(v[2].1);
        let max_y = v[0].1.max(v[1].1).max(v[2].1);
        // Pixels whose centres (x * SUBPIXEL + HALF_PIXEL) fall inside the box.
        let first_pixel = |low: i64| {
            ((low - HALF_PIXEL) + (1 << SUBPIXEL_BITS) - 1).div_euclid(1 << SUBPIXEL_BITS)
        };
        let last_pixel = |high: i64| (high - HALF_PIXEL).div_euclid(1 << SUBPIXEL_BITS);
        let x0 = first_pixel(min_x).max(0);
        let x1 = last_pixel(max_x).min(last);
        let y0 = first_pixel(min_y).max(0);
        let y1 = last_pixel(max_y).min(last);
        if x0 > x1 || y0 > y1 {
            return;
        }
        // Edge k runs from v[k] to v[k+1]; inside means all three are >= 0 after the bias.
        let mut row = [0i64; 3];
        let mut step_x = [0i64; 3];
        let mut step_y = [0i64; 3];
        let start_x = x0 * (1 << SUBPIXEL_BITS) + HALF_PIXEL;
        let start_y = y0 * (1 << SUBPIXEL_BITS) + HALF_PIXEL;
        for k in 0..3 {
            let a = v[k];
            let b = v[(k + 1) % 3];
            let (dx, dy) = (b.0 - a.0, b.1 - a.1);
            let top_left = dy < 0 || (dy == 0 && dx > 0);
            let bias = if top_left { 0 } else { -1 };
            row[k] = dx * (start_y - a.1) - dy * (start_x - a.0) + bias;
            step_x[k] = -dy << SUBPIXEL_BITS;
            step_y[k] = dx << SUBPIXEL_BITS;
        }
        // Depth is affine in screen space: a plane through the three (snapped) corners.
        let f = |k: usize| (v[k].0 as f32 / SUBPIXEL, v[k].1 as f32 / SUBPIXEL, v[k].2);
        let (p0, p1, p2) = (f(0), f(1), f(2));
        let area_f = area as f32 / (SUBPIXEL * SUBPIXEL);
        let dz_dx = ((p1.2 - p0.2) * (p2.1 - p0.1) - (p2.2 - p0.2) * (p1.1 - p0.1)) / area_f;
        let dz_dy = ((p2.2 - p0.2) * (p1.0 - p0.0) - (p1.2 - p0.2) * (p2.0 - p0.0)) / area_f;
        let z_at = |x: i64, y: i64| {
            p0.2 + dz_dx * (x as f32 + 0.5 - p0.0) + dz_dy * (y as f32 + 0.5 - p0.1)
        };
        let width = self.width;
        for y in y0..=y1 {
            // The covered span of this row, solved exactly from the integer edge functions
            // (w_k(x) = row_k + step_k * (x - x0) >= 0), so no pixel outside is visited.
            let mut first = x0;
            let mut last_x = x1;
            for k in 0..3 {
                let (start, step) = (row[k], step_x[k]);
                if step > 0 {
                    // x - x0 >= ceil(-start / step)
                    let need =
                        (-start).div_euclid(step) + i64::from((-start).rem_euclid(step) != 0);
                    first = first.max(x0 + need);
                } else if step < 0 {
                    // x - x0 <= floor(start / -step)
                    last_x = last_x.min(x0 + start.div_euclid(-step));
                } else if start < 0 {
                    first = last_x + 1;
                }
            }
            if first <= last_x {
                let offset = y as usize * width;
                let range = offset + first as usize..=offset + last_x as usize;
                let mut z = z_at(first, y);
                for (depth, slot) in self.depth[range.clone()]
                    .iter_mut()
                    .zip(&mut self.ids[range])
                {
                    if z > *depth {
                        *depth = z;
                        *slot = id;
                    }
                    z += dz_dx;
                }
            }
            for k in 0..3 {
                row[k] += step_y[k];
            }
        }
    }
}

/// Per-view lighting. Intensity is computed at corners (smooth) or per face (flat) and
/// interpolated across the triangle in screen space as a plane `a + b x + c y` (Gouraud
/// shading), so a sample costs two multiply-adds instead of a normal normalisation.
struct Shader<'a> {
    mesh: &'a PreparedMesh,
    screen: &'a [[(f32, f32, f32); 3]],
    /// Face normal turned towards the camera.
    facing: Vec<Vec3>,
    key: Vec3,
    fill: Vec3,
    base: [f32; 3],
    smooth: bool,
}

impl<'a> Shader<'a> {
    fn new(
        mesh: &'a PreparedMesh,
        camera: &Camera,
        screen: &'a [[(f32, f32, f32); 3]],
        settings: &RenderSettings,
    ) -> Self {
        let eye = camera.toward_camera * camera.eye_distance();
        let perspective = matches!(
            settings.projection,
            crate::camera::Projection::Perspective { .. }
        );
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
            smooth: settings.shading == crate::settings::Shading::Smooth
                && mesh.corner_normals.is_some(),
        }
    }

    fn intensity(&self, n: Vec3) -> f32 {
        0.28 + 0.62 * n.dot(self.key).max(0.0) + 0.22 * n.dot(self.fill).max(0.0)
    }

    fn color(&self, intensity: f32) -> [u32; 3] {
        self.base
            .map(|c| (c * intensity + 0.5).clamp(0.0, 255.0) as u32)
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

/// Lazily computed intensity planes of the triangles that turn out visible.
struct Planes<'s, 'a> {
    shader: &'s Shader<'a>,
    cache: Vec<[f32; 5]>,
}

impl<'s, 'a> Planes<'s, 'a> {
    fn new(shader: &'s Shader<'a>) -> Self {
        Self {
            shader,
            cache: vec![[f32::NAN; 5]; shader.facing.len()],
        }
    }

    /// Colour of triangle `id` (1-based) at sample position (x, y).
    #[inline]
    fn shade(&mut self, id: u32, x: f32, y: f32) -> [u32; 3] {
        let index = id as usize - 1;
        let mut plane = self.cache[index];
        if plane[0].is_nan() {
            plane = self.shader.plane(index);
            self.cache[index] = plane;
        }
        let intensity = (plane[0] + plane[1] * x + plane[2] * y).clamp(plane[3], plane[4]);
        self.shader.color(intensity)
    }
}

/// Marks samples on outlines: both sides of a boundary between background and object, a
/// jump in depth, or a crease between faces. Neighbouring samples almost always share a
/// triangle, so the cheap id comparison filters nearly everything.
fn outline_mask(
    buffer: &SampleBuffer,
    shader: &Shader,
    camera: &Camera,
    settings: &RenderSettings,
) -> Vec<bool> {
    let width = buffer.width;
    let ids = &buffer.ids;
    let cos_crease = settings.crease_degrees.to_radians().cos();
    let pixel_size = 1.0 / camera.pixels_per_unit;
    let depth_jump = 0.02 + 12.0 * pixel_size;
    let differs = |i: usize, j: usize| -> bool {
        let (a, b) = (ids[i], ids[j]);
        if a == 0 || b == 0 {
            return true;
        }
        let gap = (camera.distance_of(buffer.depth[i]) - camera.distance_of(buffer.depth[j])).abs();
        gap > depth_jump
            || shader.facing[a as usize - 1].dot(shader.facing[b as usize - 1]) < cos_crease
    };
    let mut mask = vec![false; width * width];
    // Compare whole rows through slices: no bounds checks in the hot loop, and the rare
    // differing pair takes the slow path.
    for y in 0..width {
        let row = &ids[y * width..(y + 1) * width];
        for (x, pair) in row.windows(2).enumerate() {
            if pair[0] != pair[1] {
                let i = y * width + x;
                if differs(i, i + 1) {
                    mask[i] = true;
                    mask[i + 1] = true;
                }
            }
        }
        if y + 1 < width {
            let next = &ids[(y + 1) * width..(y + 2) * width];
            for (x, (a, b)) in row.iter().zip(next).enumerate() {
                if a != b {
                    let i = y * width + x;
                    if differs(i, i + width) {
                        mask[i] = true;
                        mask[i + width] = true;
                    }
                }
            }
        }
    }
    mask
}

/// Shades, outlines and averages the samples into the output image. Output pixels whose
/// samples all show the same triangle and no outline are shaded once, at the pixel centre.
fn resolve(
    buffer: &SampleBuffer,
    shader: &Shader,
    camera: &Camera,
    settings: &RenderSettings,
) -> Image {
    let samples = settings.supersample.max(1) as usize;
    let size = settings.size as usize;
    let width = buffer.width;
    let count = (samples * samples) as u32;
    let background = settings.background.map(u32::from);
    let outline = settings.outline_color.map(u32::from);
    let mask = if settings.outlines {
        outline_mask(buffer, shader, camera, settings)
    } else {
        Vec::new()
    };
    let is_outline = |i: usize| settings.outlines && mask[i];
    let mut planes = Planes::new(shader);
    let mut pixels = Vec::with_capacity(size * size * 3);
    let centre_offset = samples as f32 / 2.0;
    for out_y in 0..size {
        for out_x in 0..size {
            let top_left = out_y * samples * width + out_x * samples;
            let id = buffer.ids[top_left];
            let mut uniform = true;
            for sy in 0..samples {
                let row = top_left + sy * width;
                for i in row..row + samples {
                    uniform &= buffer.ids[i] == id && !is_outline(i);
                }
            }
            let color = if uniform {
                if id == 0 {
                    background
                } else {
                    let x = (out_x * samples) as f32 + centre_offset;
                    let y = (out_y * samples) as f32 + centre_offset;
                    planes.shade(id, x, y)
                }
            } else {
                let mut sum = [0u32; 3];
                for sy in 0..samples {
                    let y = out_y * samples + sy;
                    for sx in 0..samples {
                        let x = out_x * samples + sx;
                        let i = y * width + x;
                        let id = buffer.ids[i];
                        let color = if is_outline(i) {
                            outline
                        } else if id == 0 {
                            background
                        } else {
                            planes.shade(id, x as f32 + 0.5, y as f32 + 0.5)
                        };
                        sum[0] += color[0];
                        sum[1] += color[1];
                        sum[2] += color[2];
                    }
                }
                sum.map(|channel| (channel + count / 2) / count)
            };
            pixels.extend_from_slice(&[color[0] as u8, color[1] as u8, color[2] as u8]);
        }
    }
    Image {
        width: settings.size,
        height: settings.size,
        pixels,
    }
}
