//! The task-level render stage: every sample's mesh files become `rendered/<sample_id>/<view>.png`
//! under the task's workdir, and the rendered images are recorded in the manifest.
//!
//! Rendering is parallel across cores and skips samples whose images are up to date (the render
//! crate keeps a sidecar per sample), so an interrupted run resumes where it stopped. A sample
//! whose files cannot be rendered keeps its place in the manifest with `meta.render_error`
//! and no rendered images; it never stops the other samples.

use std::path::{Path, PathBuf};

use anyhow::Context;
use verdict_core::manifest::{is_url, read_manifest_strict, write_manifest};
use verdict_core::workspace::Workspace;
use verdict_render::{render_many, RenderSettings, SampleJob, ViewSpec};

use super::progress;

const MESH_EXTENSIONS: [&str; 3] = ["stl", "obj", "3mf"];

pub struct RenderSummary {
    pub rendered: usize,
    pub up_to_date: usize,
    pub failed: usize,
}

fn is_mesh(reference: &str) -> bool {
    Path::new(reference)
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| MESH_EXTENSIONS.contains(&e.as_str()))
}

/// Renders the meshes of every sample of the imported manifest and rewrites it with the images.
pub fn render_task(workspace: &Workspace) -> anyhow::Result<RenderSummary> {
    let manifest = workspace.manifest_path();
    let mut samples = read_manifest_strict(&manifest).with_context(|| {
        format!(
            "reading {} (run `verdict data import` first)",
            manifest.display()
        )
    })?;
    let spec = &workspace.task.render;
    let views = ViewSpec::parse_list(&spec.views.join(","))
        .with_context(|| format!("task {}: [render] views", workspace.task_path.display()))?;
    let settings = RenderSettings {
        size: spec.size,
        contact_sheet: spec.contact_sheet,
        ..RenderSettings::default()
    };
    let root = workspace.root.join("rendered");
    let jobs: Vec<(usize, SampleJob)> = samples
        .iter()
        .enumerate()
        .filter_map(|(index, sample)| {
            let files: Vec<PathBuf> = sample
                .files
                .iter()
                .filter(|f| !is_url(f) && is_mesh(f))
                .map(PathBuf::from)
                .collect();
            (!files.is_empty()).then(|| {
                (
                    index,
                    SampleJob {
                        id: sample.sample_id.clone(),
                        files,
                        out_dir: root.join(&sample.sample_id),
                    },
                )
            })
        })
        .collect();
    let bar = progress::bar(jobs.len() as u64, "rendering");
    let batch: Vec<SampleJob> = jobs.iter().map(|(_, job)| job.clone()).collect();
    let outcomes = render_many(&batch, &views, &settings, None, &|_| bar.inc(1));
    bar.finish_and_clear();
    let mut summary = RenderSummary {
        rendered: 0,
        up_to_date: 0,
        failed: 0,
    };
    for ((index, job), outcome) in jobs.iter().zip(outcomes) {
        let sample = &mut samples[*index];
        let rendered_root = job.out_dir.to_string_lossy().into_owned();
        sample
            .images
            .retain(|image| !image.starts_with(&rendered_root));
        sample.meta.remove("render_error");
        match outcome.result {
            Ok(output) => {
                if output.up_to_date {
                    summary.up_to_date += 1;
                } else {
                    summary.rendered += 1;
                }
                sample.images.extend(
                    output
                        .views
                        .iter()
                        .map(|view| view.path.to_string_lossy().into_owned()),
                );
            }
            Err(error) => {
                summary.failed += 1;
                tracing::warn!("sample `{}`: {error}", job.id);
                sample
                    .meta
                    .insert("render_error".into(), error.to_string().into());
            }
        }
    }
    write_manifest(&manifest, &samples)?;
    Ok(summary)
}
