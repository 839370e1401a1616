//! The batch stage the CLI and the pipeline call: load a sample's files, render its views,
//! write PNGs atomically, skip samples whose outputs are up to date, and report one result
//! per sample so a bad file never stops the others.
//!
//! Layout: `out_dir/<view>.png` when parts are merged (the default), or
//! `out_dir/<NN_part>/<view>.png` per part; optional `out_dir/contact_sheet.png` (or per
//! part); and `out_dir/render.json`, a sidecar recording the settings fingerprint, the
//! input fingerprint and the outputs. A sample is up to date when the sidecar matches and
//! every output it lists exists, so an interrupted run resumes where it stopped.

use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::camera::ViewSpec;
use crate::error::{RenderError, Result};
use crate::load::{load_file, Format, UpAxis};
use crate::math::Vec3;
use crate::mesh::{LoadReport, Part};
use crate::prepare::PreparedMesh;
use crate::raster::{CpuRasterizer, Image, Renderer};
use crate::settings::{RenderSettings, Shading};
use crate::sheet::contact_sheet;

/// Name of the sidecar written next to a sample's images.
pub const SIDECAR: &str = "render.json";
/// Name of the contact sheet image.
pub const CONTACT_SHEET: &str = "contact_sheet.png";

/// One image written (or found up to date) for a sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedView {
    /// View name (`front`, `turntable_03`, ...) or `contact_sheet`.
    pub view: String,
    /// Part name when parts are rendered separately.
    pub part: Option<String>,
    /// Path of the PNG.
    pub path: PathBuf,
}

/// What [`render_sample`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleOutput {
    pub views: Vec<RenderedView>,
    /// True when nothing was rendered because the outputs were up to date.
    pub up_to_date: bool,
    pub triangles: u64,
    pub report: LoadReport,
}

/// A sample for [`render_many`]: its id (for reports), files and output folder.
#[derive(Debug, Clone)]
pub struct SampleJob {
    pub id: String,
    pub files: Vec<PathBuf>,
    pub out_dir: PathBuf,
}

/// The result of one sample of a batch.
#[derive(Debug)]
pub struct SampleOutcome {
    pub id: String,
    pub result: Result<SampleOutput>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    settings_fingerprint: String,
    input_fingerprint: String,
    renderer: String,
    settings: RenderSettings,
    views: Vec<ViewSpec>,
    inputs: Vec<PathBuf>,
    triangles: u64,
    report: LoadReport,
    outputs: Vec<RenderedView>,
}

/// Renders `views` of the files of one sample into `out_dir` with the CPU rasteriser.
pub fn render_sample(
    files: &[PathBuf],
    views: &[ViewSpec],
    settings: &RenderSettings,
    out_dir: &Path,
) -> Result<SampleOutput> {
    render_sample_with(&CpuRasterizer, files, views, settings, out_dir)
}

/// [`render_sample`] with any [`Renderer`].
pub fn render_sample_with(
    renderer: &dyn Renderer,
    files: &[PathBuf],
    views: &[ViewSpec],
    settings: &RenderSettings,
    out_dir: &Path,
) -> Result<SampleOutput> {
    settings.validate()?;
    if files.is_empty() {
        return Err(RenderError::InvalidSettings(
            "a sample needs at least one file".into(),
        ));
    }
    let settings_fingerprint = {
        let mut hasher = Sha256::new();
        hasher.update(settings.fingerprint().as_bytes());
        hasher.update(renderer.name().as_bytes());
        hasher.update(serde_json::to_vec(views).unwrap_or_default());
        hex::encode(hasher.finalize())
    };
    let input_fingerprint = fingerprint_inputs(files, settings)?;
    if let Some(previous) = up_to_date(out_dir, &settings_fingerprint, &input_fingerprint) {
        return Ok(previous);
    }

    let mut parts = Vec::new();
    let mut report = LoadReport::default();
    for file in files {
        let (scene, file_report) = load_file(file, &settings.limits)?;
        report.degenerate_dropped += file_report.degenerate_dropped;
        report.count_mismatch |= file_report.count_mismatch;
        let up = settings
            .up
            .unwrap_or_else(|| Format::from_path(file).map_or(UpAxis::Z, Format::native_up));
        for mut part in scene.parts {
            if up == UpAxis::Y {
                for triangle in &mut part.triangles {
                    *triangle = triangle.map(|v| Vec3::new(v.x, -v.z, v.y));
                }
            }
            parts.push(part);
        }
    }
    let triangles = parts.iter().map(|p| p.triangles.len() as u64).sum();
    let groups: Vec<(Option<String>, Part)> = if settings.merge_parts || parts.len() == 1 {
        let name = files[0]
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut merged = Part {
            name,
            triangles: Vec::new(),
        };
        for part in parts {
            merged.triangles.extend(part.triangles);
        }
        vec![(None, merged)]
    } else {
        parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| (Some(format!("{:02}_{}", i + 1, slug(&p.name))), p))
            .collect()
    };

    let crease = (settings.shading == Shading::Smooth).then_some(settings.crease_degrees);
    let mut outputs = Vec::new();
    for (part_name, part) in &groups {
        let mesh = PreparedMesh::new(part, UpAxis::Z, crease).map_err(|e| match e {
            RenderError::InvalidSettings(message) => RenderError::malformed(&files[0], message),
            other => other,
        })?;
        let folder = match part_name {
            Some(name) => out_dir.join(name),
            None => out_dir.to_path_buf(),
        };
        std::fs::create_dir_all(&folder).map_err(|e| RenderError::io(&folder, e))?;
        let rendered: Vec<(RenderedView, Option<Image>)> = views
            .par_iter()
            .map(|view| {
                let image = renderer.render(&mesh, view, settings);
                let path = folder.join(format!("{}.png", view.name));
                write_png(&path, &image)?;
                // Kept for the contact sheet, else its buffer serves the thread's next view.
                let image = if settings.contact_sheet {
                    Some(image)
                } else {
                    crate::raster::recycle(image);
                    None
                };
                Ok((
                    RenderedView {
                        view: view.name.clone(),
                        part: part_name.clone(),
                        path,
                    },
                    image,
                ))
            })
            .collect::<Result<_>>()?;
        if settings.contact_sheet {
            let tiles: Vec<&Image> = rendered
                .iter()
                .filter_map(|(_, image)| image.as_ref())
                .collect();
            if let Some(sheet) = contact_sheet(&tiles, settings.background) {
                let path = folder.join(CONTACT_SHEET);
                write_png(&path, &sheet)?;
                outputs.push(RenderedView {
                    view: "contact_sheet".into(),
                    part: part_name.clone(),
                    path,
                });
            }
        }
        outputs.extend(rendered.into_iter().map(|(view, _)| view));
    }
    outputs.sort_by(|a, b| (&a.part, &a.view).cmp(&(&b.part, &b.view)));

    let sidecar = Sidecar {
        settings_fingerprint,
        input_fingerprint,
        renderer: renderer.name().to_string(),
        settings: settings.clone(),
        views: views.to_vec(),
        inputs: files.to_vec(),
        triangles,
        report,
        outputs: outputs.clone(),
    };
    let json = serde_json::to_vec_pretty(&sidecar).map_err(|e| {
        RenderError::malformed(
            out_dir.join(SIDECAR),
            format!("cannot serialise sidecar: {e}"),
        )
    })?;
    write_atomic(&out_dir.join(SIDECAR), &json)?;
    Ok(SampleOutput {
        views: outputs,
        up_to_date: false,
        triangles,
        report,
    })
}

/// Renders many samples in parallel on `threads` threads (`None`: one per core); `on_done`
/// is called as each finishes (progress bars). Every sample gets an outcome, in job order:
/// an error in one (even a bug that panics) never stops the others.
pub fn render_many(
    jobs: &[SampleJob],
    views: &[ViewSpec],
    settings: &RenderSettings,
    threads: Option<usize>,
    on_done: &(dyn Fn(&SampleOutcome) + Sync),
) -> Vec<SampleOutcome> {
    let work = || {
        jobs.par_iter()
            .map(|job| {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    render_sample(&job.files, views, settings, &job.out_dir)
                }))
                .unwrap_or_else(|_| {
                    Err(RenderError::malformed(
                        job.files.first().cloned().unwrap_or_default(),
                        "internal error while rendering (please report this file)",
                    ))
                });
                let outcome = SampleOutcome {
                    id: job.id.clone(),
                    result,
                };
                on_done(&outcome);
                outcome
            })
            .collect()
    };
    match threads.map(|n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build()
    }) {
        Some(Ok(pool)) => pool.install(work),
        _ => work(),
    }
}

/// SHA-256 over each file's name and bytes, in order (size-capped like loading).
fn fingerprint_inputs(files: &[PathBuf], settings: &RenderSettings) -> Result<String> {
    let mut hasher = Sha256::new();
    for file in files {
        let metadata = std::fs::metadata(file).map_err(|e| RenderError::io(file, e))?;
        if metadata.len() > settings.limits.max_file_bytes {
            return Err(RenderError::TooLarge {
                path: file.clone(),
                what: "file".into(),
                size: metadata.len(),
                limit: settings.limits.max_file_bytes,
            });
        }
        let bytes = std::fs::read(file).map_err(|e| RenderError::io(file, e))?;
        hasher.update(
            file.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn up_to_date(
    out_dir: &Path,
    settings_fingerprint: &str,
    input_fingerprint: &str,
) -> Option<SampleOutput> {
    let bytes = std::fs::read(out_dir.join(SIDECAR)).ok()?;
    let sidecar: Sidecar = serde_json::from_slice(&bytes).ok()?;
    let current = sidecar.settings_fingerprint == settings_fingerprint
        && sidecar.input_fingerprint == input_fingerprint
        && sidecar.outputs.iter().all(|o| o.path.is_file());
    current.then_some(SampleOutput {
        views: sidecar.outputs,
        up_to_date: true,
        triangles: sidecar.triangles,
        report: sidecar.report,
    })
}

/// Encodes and writes a PNG atomically.
pub fn write_png(path: &Path, image: &Image) -> Result<()> {
    let bytes = image.encode_png().map_err(|message| RenderError::Encode {
        path: path.to_path_buf(),
        message,
    })?;
    write_atomic(path, &bytes)
}

/// Writes to a temporary file in the same folder, then renames over `path`, so readers
/// never see a half-written file and an interrupted run leaves the old file intact.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        std::fs::rename(&temporary, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        RenderError::io(path, e)
    })
}

/// A file-system-safe folder name for a part.
fn slug(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    if cleaned.is_empty() {
        "part".into()
    } else {
        cleaned
    }
}
