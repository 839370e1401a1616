//! `verdict render`: mesh files (STL, OBJ, 3MF) to multi-view PNGs, one folder per input.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use verdict_render::{
    render_many, LoadLimits, Projection, RenderSettings, SampleJob, Shading, UpAxis, ViewSpec,
};

/// Render 3D meshes to PNG views: `OUT/<input stem>/<view>.png` plus a `render.json`
/// sidecar per input. Inputs whose outputs are up to date are skipped; a bad file is
/// reported and the others still render.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Mesh files (.stl, .obj, .3mf) or folders to search for them.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,

    /// Output folder.
    #[arg(long, short)]
    out: PathBuf,

    /// Comma-separated views: front, back, left, right, top, bottom, iso, turntable:N,
    /// az:A:el:E (degrees).
    #[arg(long, default_value = "front,left,iso")]
    views: String,

    /// Image width and height in pixels.
    #[arg(long, default_value_t = 512)]
    size: u32,

    /// Samples per pixel along each axis (anti-aliasing); 1 is fastest.
    #[arg(long, default_value_t = 2)]
    supersample: u32,

    /// Surface shading.
    #[arg(long, value_enum, default_value_t = ShadingArg::Smooth)]
    shading: ShadingArg,

    /// Do not draw silhouette and crease outlines.
    #[arg(long)]
    no_outlines: bool,

    /// Background colour as hex RGB.
    #[arg(long, default_value = "ffffff")]
    background: String,

    /// Surface colour as hex RGB.
    #[arg(long, default_value = "b0bed6")]
    color: String,

    /// Use a perspective camera with this vertical field of view (degrees) instead of the
    /// default orthographic one.
    #[arg(long)]
    perspective: Option<f32>,

    /// Up axis of the inputs (default: Z for STL/3MF, Y for OBJ).
    #[arg(long, value_enum)]
    up: Option<UpArg>,

    /// Also write contact_sheet.png with all views in one grid.
    #[arg(long)]
    contact_sheet: bool,

    /// Render each part (OBJ group, 3MF build item) separately instead of merged.
    #[arg(long)]
    separate_parts: bool,

    /// Refuse meshes with more triangles than this.
    #[arg(long, default_value_t = LoadLimits::default().max_triangles)]
    max_triangles: u64,

    /// Refuse input files, and 3MF archive contents once decompressed, larger than this (MiB).
    #[arg(long, default_value_t = 512)]
    max_mib: u64,

    /// Render again even when outputs are up to date.
    #[arg(long)]
    force: bool,

    /// Worker threads (default: one per core).
    #[arg(long, short)]
    jobs: Option<usize>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ShadingArg {
    Flat,
    Smooth,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum UpArg {
    Y,
    Z,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let views = ViewSpec::parse_list(&args.views)?;
    let settings = RenderSettings {
        size: args.size,
        supersample: args.supersample,
        background: parse_color(&args.background).context("--background")?,
        color: parse_color(&args.color).context("--color")?,
        shading: match args.shading {
            ShadingArg::Flat => Shading::Flat,
            ShadingArg::Smooth => Shading::Smooth,
        },
        outlines: !args.no_outlines,
        projection: match args.perspective {
            Some(fov_degrees) => Projection::Perspective { fov_degrees },
            None => Projection::Orthographic,
        },
        up: args.up.map(|up| match up {
            UpArg::Y => UpAxis::Y,
            UpArg::Z => UpAxis::Z,
        }),
        merge_parts: !args.separate_parts,
        contact_sheet: args.contact_sheet,
        limits: LoadLimits {
            max_triangles: args.max_triangles,
            max_file_bytes: args.max_mib << 20,
            max_decompressed_bytes: args.max_mib << 20,
        },
        ..RenderSettings::default()
    };
    settings.validate()?;

    let files = collect_inputs(&args.inputs)?;
    if files.is_empty() {
        bail!("no .stl, .obj or .3mf files found in the given inputs");
    }
    let jobs = plan_jobs(&files, &args.out);
    if args.force {
        for job in &jobs {
            let _ = std::fs::remove_file(job.out_dir.join(verdict_render::stage::SIDECAR));
        }
    }

    let bar = ProgressBar::new(jobs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("render [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let outcomes = render_many(&jobs, &views, &settings, args.jobs, &|outcome| {
        if let Err(error) = &outcome.result {
            bar.suspend(|| eprintln!("error: {error}"));
        }
        bar.inc(1);
    });
    bar.finish_and_clear();

    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    let skipped = outcomes
        .iter()
        .filter(|o| o.result.as_ref().is_ok_and(|out| out.up_to_date))
        .count();
    let images: usize = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok())
        .map(|out| out.views.len())
        .sum();
    println!(
        "{} inputs: {} rendered, {skipped} up to date, {failed} failed; {images} images in {}",
        jobs.len(),
        jobs.len() - failed - skipped,
        args.out.display()
    );
    if failed > 0 {
        bail!(
            "{failed} of {} inputs could not be rendered (see errors above)",
            jobs.len()
        );
    }
    Ok(())
}

/// Files as given, folders searched recursively (sorted, links not followed).
fn collect_inputs(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        let metadata = std::fs::metadata(input).with_context(|| format!("{}", input.display()))?;
        if metadata.is_dir() {
            let mut found = Vec::new();
            let mut stack = vec![input.clone()];
            while let Some(folder) = stack.pop() {
                let entries = std::fs::read_dir(&folder)
                    .with_context(|| format!("reading folder {}", folder.display()))?;
                for entry in entries.flatten() {
                    let Ok(kind) = entry.file_type() else {
                        continue;
                    };
                    let path = entry.path();
                    if kind.is_dir() {
                        stack.push(path);
                    } else if kind.is_file() && verdict_render::Format::from_path(&path).is_some() {
                        found.push(path);
                    }
                }
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

/// One sample per file, named by its stem; repeated stems get a numeric suffix.
fn plan_jobs(files: &[PathBuf], out: &Path) -> Vec<SampleJob> {
    let mut used = std::collections::HashSet::new();
    files
        .iter()
        .map(|file| {
            let stem = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "mesh".into());
            let mut id = stem.clone();
            let mut n = 2;
            while !used.insert(id.clone()) {
                id = format!("{stem}_{n}");
                n += 1;
            }
            SampleJob {
                out_dir: out.join(&id),
                id,
                files: vec![file.clone()],
            }
        })
        .collect()
}

fn parse_color(text: &str) -> anyhow::Result<[u8; 3]> {
    let hex = text.trim_start_matches('#');
    if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("expected a colour as 6 hex digits (e.g. ffffff), got {text:?}");
    }
    let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16);
    Ok([channel(0)?, channel(2)?, channel(4)?])
}
