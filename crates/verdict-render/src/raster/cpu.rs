//! The default renderer: draws one view on the calling thread, touching as little memory
//! as it can.
//!
//! Only the rectangle of samples that triangles reach can differ from the background, so
//! only that rectangle (grown by one sample, for outlines on the background side) is
//! buffered, cleared and resolved; the rest of the image is filled with the background
//! colour. The rectangle is processed in bands of rows of about [`BAND_SAMPLES`] samples:
//! triangles are first sorted into the bands they touch (keeping their order, which
//! decides depth ties), then each band is cleared, drawn and, once the band below it is
//! drawn too (outlines look one sample down), resolved into pixels while its samples are
//! still in the CPU cache. Two band buffers are used in turn, each with a border row above
//! and below copied from its neighbours, so the sample memory of a whole view is two bands
//! and stays in the cache from view to view. Scratch buffers, the output pixels included
//! (see [`recycle`]), are kept per thread, so a view allocates almost nothing.

use std::cell::RefCell;

use crate::camera::{Camera, ViewSpec};
use crate::prepare::PreparedMesh;
use crate::settings::RenderSettings;

use super::image::Image;
use super::resolve::{Resolver, Samples};
use super::shade::{Planes, Shader};
use super::triangle::{Setup, Target};

/// Draws one view of a prepared mesh. Implementations must be deterministic.
pub trait Renderer: Send + Sync {
    /// Short name for logs and benchmark tables.
    fn name(&self) -> &'static str;
    fn render(&self, mesh: &PreparedMesh, view: &ViewSpec, settings: &RenderSettings) -> Image;
}

/// The default renderer: an edge-function rasteriser on the CPU, one thread per view.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuRasterizer;

/// Samples per band: ids and depths of a band (8 bytes a sample) stay well inside a
/// core's L2 cache together with the pixels being written.
const BAND_SAMPLES: usize = 32 * 1024;

/// Scratch kept per thread up to this many samples: reusing buffers saves the page faults
/// of fresh allocations on every view, which cost as much as rasterising a simple mesh.
const REUSE_SAMPLES: usize = 4096 * 4096;
/// Per-triangle scratch (about 150 bytes a triangle) kept per thread up to this many
/// triangles: fresh allocations of that size cost page faults on every view.
const REUSE_TRIANGLES: usize = 1 << 20;

/// Per-thread buffers reused from view to view.
#[derive(Default)]
struct Scratch {
    /// Pixels of a finished image handed back with [`recycle`], for the next view.
    pixels: Vec<u8>,
    screen: Vec<[(f32, f32, f32); 3]>,
    setups: Vec<Setup>,
    /// Indices into `setups`, grouped by band; band `k` is `bins[bin_start[k]..bin_start[k + 1]]`.
    bins: Vec<u32>,
    bin_start: Vec<usize>,
    ids: Vec<u32>,
    depth: Vec<f32>,
    planes: Vec<[f32; 5]>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Renderer for CpuRasterizer {
    fn name(&self) -> &'static str {
        "verdict-cpu"
    }

    fn render(&self, mesh: &PreparedMesh, view: &ViewSpec, settings: &RenderSettings) -> Image {
        let mut scratch = SCRATCH.with(|spare| std::mem::take(&mut *spare.borrow_mut()));
        let image = draw_view(&mut scratch, mesh, view, settings, BAND_SAMPLES);
        if scratch.ids.len() > REUSE_SAMPLES {
            scratch.ids = Vec::new();
            scratch.depth = Vec::new();
        }
        if scratch.screen.capacity() > REUSE_TRIANGLES {
            scratch.screen = Vec::new();
            scratch.setups = Vec::new();
            scratch.bins = Vec::new();
            scratch.planes = Vec::new();
        }
        SCRATCH.with(|spare| *spare.borrow_mut() = scratch);
        image
    }
}

/// Corners of every triangle in sample coordinates (x, y) plus depth.
fn project(screen: &mut Vec<[(f32, f32, f32); 3]>, mesh: &PreparedMesh, camera: &Camera) {
    screen.clear();
    screen.extend(
        mesh.triangles
            .iter()
            .map(|triangle| triangle.map(|v| camera.project(v))),
    );
}

fn draw_view(
    scratch: &mut Scratch,
    mesh: &PreparedMesh,
    view: &ViewSpec,
    settings: &RenderSettings,
    band_samples: usize,
) -> Image {
    let Scratch {
        pixels,
        screen,
        setups,
        bins,
        bin_start,
        ids,
        depth,
        planes,
    } = scratch;
    let samples = settings.supersample.max(1) as usize;
    let size = settings.size as usize;
    let width = size * samples;
    let camera = Camera::new(view, settings.projection, width as u32, settings.fill);
    // A recycled buffer of the right size keeps its stale pixels: every pixel is written
    // below, the background around the object's rectangle and the rectangle by the resolve.
    let mut image = Image {
        width: settings.size,
        height: settings.size,
        pixels: std::mem::take(pixels),
    };
    if image.pixels.len() != size * size * 3 {
        image.pixels.clear();
        image.pixels.resize(size * size * 3, 0);
    }

    project(screen, mesh, &camera);
    setups.clear();
    setups.reserve(screen.len());
    let (mut low_x, mut high_x, mut low_y, mut high_y) = (i32::MAX, i32::MIN, i32::MAX, i32::MIN);
    for (index, corners) in screen.iter().enumerate() {
        if let Some(setup) = Setup::new(index as u32 + 1, corners, width) {
            low_x = low_x.min(setup.x0);
            high_x = high_x.max(setup.x1);
            low_y = low_y.min(setup.y0);
            high_y = high_y.max(setup.y1);
            setups.push(setup);
        }
    }
    if setups.is_empty() {
        fill_outside(&mut image, settings.background, 0..0, 0..0);
        return image;
    }

    // Output pixels that can differ from the background: the covered sample box grown by
    // one sample (outlines on the background side), in whole pixels.
    let s = samples as i32;
    let last_pixel = size as i32 - 1;
    let pixel_x0 = (low_x - 1).div_euclid(s).max(0);
    let pixel_x1 = (high_x + 1).div_euclid(s).min(last_pixel);
    let pixel_y0 = (low_y - 1).div_euclid(s).max(0);
    let pixel_y1 = (high_y + 1).div_euclid(s).min(last_pixel);
    fill_outside(
        &mut image,
        settings.background,
        pixel_x0 as usize..pixel_x1 as usize + 1,
        pixel_y0 as usize..pixel_y1 as usize + 1,
    );
    // Their samples plus a one-sample border. Inside the image the border is background
    // (no triangle reaches it); outside, it repeats the edge sample, so an object cut by
    // the image edge gets no outline along it.
    let origin_x = pixel_x0 * s - 1;
    let stride = ((pixel_x1 - pixel_x0 + 1) * s + 2) as usize;
    let (first_row, end_row) = (pixel_y0 * s, (pixel_y1 + 1) * s);
    let band_rows = ((band_samples / stride) as i32 / s).clamp(1, pixel_y1 - pixel_y0 + 1) * s;
    let band_count = ((end_row - first_row + band_rows - 1) / band_rows) as usize;
    let band_of = |y: i32| ((y - first_row) / band_rows) as usize;
    // Two band buffers used in turn, each with a border row above and below the band's
    // rows: small enough to stay in the CPU cache from one band (and view) to the next.
    let slot = (band_rows as usize + 2) * stride;
    if ids.len() < 2 * slot {
        ids.resize(2 * slot, 0);
        depth.resize(2 * slot, 0.0);
    }

    // Sort triangles into the bands they touch, in id order (a counting sort).
    bin_start.clear();
    bin_start.resize(band_count + 1, 0);
    for setup in setups.iter() {
        for band in band_of(setup.y0)..=band_of(setup.y1) {
            bin_start[band + 1] += 1;
        }
    }
    for band in 0..band_count {
        bin_start[band + 1] += bin_start[band];
    }
    bins.clear();
    bins.resize(bin_start[band_count], 0);
    let mut fill = bin_start[..band_count].to_vec();
    for (index, setup) in setups.iter().enumerate() {
        for band in band_of(setup.y0)..=band_of(setup.y1) {
            bins[fill[band]] = index as u32;
            fill[band] += 1;
        }
    }

    #[cfg(target_arch = "x86_64")]
    let avx2 = pulp::x86::V3::try_new();
    #[cfg(not(target_arch = "x86_64"))]
    let avx2 = None;
    let shader = Shader::new(mesh, &camera, screen, settings);
    let mut resolver = Resolver::new(Planes::new(&shader, planes), &shader, &camera, settings);
    let columns = pixel_x0 as usize..pixel_x1 as usize + 1;
    let band_range = |band: usize| {
        let start = first_row + band as i32 * band_rows;
        start..(start + band_rows).min(end_row)
    };
    // Band `b` lives in buffer `b % 2`: its row `k` holds sample row `start - 1 + k`.
    let (ids, depth) = (&mut ids[..2 * slot], &mut depth[..2 * slot]);
    let (ids_a, ids_b) = ids.split_at_mut(slot);
    let (depth_a, depth_b) = depth.split_at_mut(slot);
    let mut buffers = [(ids_a, depth_a), (ids_b, depth_b)];
    let copy_row =
        |from: (&[u32], &[f32]), from_row: usize, to: (&mut [u32], &mut [f32]), to_row: usize| {
            let (a, b) = (from_row * stride, to_row * stride);
            to.0[b..b + stride].copy_from_slice(&from.0[a..a + stride]);
            to.1[b..b + stride].copy_from_slice(&from.1[a..a + stride]);
        };
    let clear_row = |to: (&mut [u32], &mut [f32]), row: usize| {
        to.0[row * stride..(row + 1) * stride].fill(0);
        to.1[row * stride..(row + 1) * stride].fill(0.0);
    };
    let resolve =
        |resolver: &mut Resolver, buffer: (&[u32], &[f32]), band: usize, pixels: &mut [u8]| {
            let rows = band_range(band);
            resolve_band(
                resolver,
                buffer.0,
                buffer.1,
                stride,
                (origin_x, rows.start - 1),
                rows,
                samples,
                columns.clone(),
                pixels,
            );
        };
    for band in 0..band_count {
        let rows = band_range(band);
        let height = rows.len();
        let [first, second] = &mut buffers;
        let ((ids, depth), (previous_ids, previous_depth)) = if band % 2 == 0 {
            (first, second)
        } else {
            (second, first)
        };
        ids[stride..(height + 1) * stride].fill(0);
        depth[stride..(height + 1) * stride].fill(0.0);
        let mut target = Target {
            ids,
            depth,
            stride,
            origin_x,
            origin_y: rows.start - 1,
        };
        draw_band(
            avx2,
            setups,
            &bins[bin_start[band]..bin_start[band + 1]],
            rows.clone(),
            &mut target,
        );
        for k in 1..=height {
            let row = k * stride;
            if pixel_x0 == 0 {
                ids[row] = ids[row + 1];
                depth[row] = depth[row + 1];
            }
            if pixel_x1 == last_pixel {
                ids[row + stride - 1] = ids[row + stride - 2];
                depth[row + stride - 1] = depth[row + stride - 2];
            }
        }
        if band == 0 {
            if pixel_y0 == 0 {
                ids.copy_within(stride..2 * stride, 0);
                depth.copy_within(stride..2 * stride, 0);
            } else {
                clear_row((ids, depth), 0);
            }
        } else {
            // The previous band's border below is this band's first row, this band's
            // border above is the previous band's last row; then the previous band is
            // complete and resolved.
            let previous_height = band_range(band - 1).len();
            copy_row(
                (ids, depth),
                1,
                (previous_ids, previous_depth),
                previous_height + 1,
            );
            copy_row(
                (previous_ids, previous_depth),
                previous_height,
                (ids, depth),
                0,
            );
            resolve(
                &mut resolver,
                (previous_ids, previous_depth),
                band - 1,
                &mut image.pixels,
            );
        }
    }
    let last = band_count - 1;
    let height = band_range(last).len();
    let (ids, depth) = &mut buffers[last % 2];
    if pixel_y1 == last_pixel {
        ids.copy_within(
            height * stride..(height + 1) * stride,
            (height + 1) * stride,
        );
        depth.copy_within(
            height * stride..(height + 1) * stride,
            (height + 1) * stride,
        );
    } else {
        clear_row((ids, depth), height + 1);
    }
    resolve(&mut resolver, (ids, depth), last, &mut image.pixels);
    image
}

/// The x86-64 instruction set with AVX2 (`pulp`'s token, present when the CPU has it).
#[cfg(target_arch = "x86_64")]
type Avx2 = pulp::x86::V3;
#[cfg(not(target_arch = "x86_64"))]
type Avx2 = ();

/// Draws the triangles `bin` (indices into `setups`, in id order) into the band `rows` of
/// `target`: with the depth test on AVX2 lanes where the CPU has them (selected at run
/// time; the crate itself is built for baseline x86-64), else on SSE2's. Both give the
/// same samples.
fn draw_band(
    avx2: Option<Avx2>,
    setups: &[Setup],
    bin: &[u32],
    rows: std::ops::Range<i32>,
    target: &mut Target,
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = avx2 {
        simd.vectorize(
            #[inline(always)]
            || {
                for &index in bin {
                    setups[index as usize].draw_avx2(simd, rows.clone(), target);
                }
            },
        );
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = avx2;
    for &index in bin {
        setups[index as usize].draw(rows.clone(), target);
    }
}

/// Fills every pixel outside `columns` x `rows` with the background.
fn fill_outside(
    image: &mut Image,
    background: [u8; 3],
    columns: std::ops::Range<usize>,
    rows: std::ops::Range<usize>,
) {
    let row_bytes = image.width as usize * 3;
    let fill = |bytes: &mut [u8]| {
        if background[0] == background[1] && background[1] == background[2] {
            bytes.fill(background[0]);
        } else {
            for pixel in bytes.chunks_exact_mut(3) {
                pixel.copy_from_slice(&background);
            }
        }
    };
    if rows.is_empty() || columns.is_empty() {
        fill(&mut image.pixels);
        return;
    }
    fill(&mut image.pixels[..rows.start * row_bytes]);
    fill(&mut image.pixels[rows.end * row_bytes..]);
    for line in
        image.pixels[rows.start * row_bytes..rows.end * row_bytes].chunks_exact_mut(row_bytes)
    {
        fill(&mut line[..columns.start * 3]);
        fill(&mut line[columns.end * 3..]);
    }
}

/// Hands a finished image's pixel buffer back to this thread's renderer for its next view:
/// saves allocating (and page-faulting) a fresh buffer per view.
pub fn recycle(image: Image) {
    SCRATCH.with(|spare| {
        let mut spare = spare.borrow_mut();
        if image.pixels.capacity() > spare.pixels.capacity()
            && image.pixels.len() <= REUSE_SAMPLES * 3
        {
            spare.pixels = image.pixels;
        }
    });
}

/// Resolves the output rows whose samples are the sample rows `rows`.
#[allow(clippy::too_many_arguments)]
fn resolve_band(
    resolver: &mut Resolver,
    ids: &[u32],
    depth: &[f32],
    stride: usize,
    (origin_x, origin_y): (i32, i32),
    rows: std::ops::Range<i32>,
    samples: usize,
    columns: std::ops::Range<usize>,
    pixels: &mut [u8],
) {
    let view = Samples {
        ids,
        depth,
        stride,
        origin_x,
        origin_y,
    };
    let out_rows = rows.start as usize / samples..rows.end as usize / samples;
    resolver.resolve(&view, out_rows, columns, pixels);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::UpAxis;
    use crate::math::Vec3;
    use crate::mesh::Part;

    /// Two boxes, one in front of the other, with a notch: outlines, creases, depth jumps.
    fn boxes() -> PreparedMesh {
        let mut triangles = Vec::new();
        let mut cuboid = |low: [f32; 3], high: [f32; 3]| {
            let corner = |i: usize| {
                Vec3::new(
                    if i & 1 == 0 { low[0] } else { high[0] },
                    if i & 2 == 0 { low[1] } else { high[1] },
                    if i & 4 == 0 { low[2] } else { high[2] },
                )
            };
            for [a, b, c, d] in [
                [0, 2, 3, 1],
                [4, 5, 7, 6],
                [0, 1, 5, 4],
                [2, 6, 7, 3],
                [0, 4, 6, 2],
                [1, 3, 7, 5],
            ] {
                triangles.push([corner(a), corner(b), corner(c)]);
                triangles.push([corner(a), corner(c), corner(d)]);
            }
        };
        cuboid([-1.0, -1.0, -1.0], [1.0, 1.0, 0.4]);
        cuboid([-0.3, -1.6, -0.5], [0.7, -0.2, 1.2]);
        let part = Part {
            name: "boxes".into(),
            triangles,
        };
        PreparedMesh::new(&part, UpAxis::Z, Some(40.0)).expect("valid mesh")
    }

    #[test]
    fn recycled_buffers_leave_no_trace() {
        // A recycled buffer keeps the previous view's pixels; every one must be rewritten,
        // whatever the object's rectangle, the background or an empty view.
        let mesh = boxes();
        let render = |settings: &RenderSettings, view: &ViewSpec| {
            draw_view(&mut Scratch::default(), &mesh, view, settings, BAND_SAMPLES)
        };
        let views = ViewSpec::parse_list("front,top,az:30:el:-20").expect("views");
        let mut previous = None;
        for (round, view) in views.iter().cycle().take(6).enumerate() {
            let settings = RenderSettings {
                size: 48,
                background: if round % 2 == 0 {
                    [255; 3]
                } else {
                    [10, 200, 30]
                },
                fill: if round == 4 { 3.0 } else { 0.5 },
                ..RenderSettings::default()
            };
            let mut scratch = Scratch::default();
            if let Some(image) = previous.take() {
                let image: Image = image;
                scratch.pixels = image.pixels;
            }
            let reused = draw_view(&mut scratch, &mesh, view, &settings, BAND_SAMPLES);
            assert_eq!(reused, render(&settings, view), "round {round}");
            previous = Some(reused);
        }
        // An object filling the whole image: no background border is written at all.
        let far = RenderSettings {
            size: 48,
            fill: 1000.0,
            ..RenderSettings::default()
        };
        let mut scratch = Scratch {
            pixels: vec![7; 48 * 48 * 3],
            ..Scratch::default()
        };
        let image = draw_view(&mut scratch, &mesh, &views[0], &far, BAND_SAMPLES);
        assert_eq!(image, render(&far, &views[0]));
    }

    #[test]
    fn bands_of_any_height_give_the_same_image() {
        let mesh = boxes();
        for supersample in 1..=3 {
            for outlines in [true, false] {
                let settings = RenderSettings {
                    size: 64,
                    supersample,
                    outlines,
                    ..RenderSettings::default()
                };
                for view in ViewSpec::parse_list("front,iso,az:30:el:-20").expect("views") {
                    let whole =
                        draw_view(&mut Scratch::default(), &mesh, &view, &settings, 1 << 30);
                    // One row of pixels per band: every triangle spans many bands and every
                    // outline test crosses a band boundary.
                    let thin = draw_view(&mut Scratch::default(), &mesh, &view, &settings, 1);
                    assert_eq!(whole, thin, "{} at supersample {supersample}", view.name);
                    let background = whole.pixels.chunks(3).filter(|p| *p == [255, 255, 255]);
                    assert!(background.count() < 64 * 64, "the boxes should be visible");
                }
            }
        }
    }
}
