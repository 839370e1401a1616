//! Manifest samples to shards: one folder of shards per split, each sample as
//! `<key>.{jpg|png,txt,json}`, and the mini-train subset.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use verdict_core::Sample;

use super::image::{resize_and_pad, ResizeSpec};
use super::writer::{key_from_id, ShardSample, ShardWriter};
use crate::cache::{sniff, ImageFormat};
use crate::error::{MediaError, Result};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ShardOptions {
    pub max_count: usize,
    pub max_bytes: u64,
    /// Re-encode every image to a padded square JPEG.
    pub resize: Option<ResizeSpec>,
}

impl Default for ShardOptions {
    fn default() -> Self {
        ShardOptions {
            max_count: 1000,
            max_bytes: 500 * 1024 * 1024,
            resize: None,
        }
    }
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct BuildReport {
    /// Split name and its shards.
    pub splits: Vec<(String, Vec<PathBuf>)>,
    pub samples: usize,
    pub with_image: usize,
    pub without_image: usize,
    /// Per-sample problems (unreadable image, duplicate key); such samples are text-only or
    /// left out, never half-written.
    pub problems: Vec<String>,
}

/// Writes `out_dir/<split>/shard-NNNNNN.tar` for every split present (`all` for samples
/// without one). `image_for` finds a sample's image file (cache or local path).
pub fn build_split_shards(
    samples: &[Sample],
    image_for: &dyn Fn(&Sample) -> Option<PathBuf>,
    out_dir: &Path,
    options: &ShardOptions,
) -> Result<BuildReport> {
    let mut by_split: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for sample in samples {
        let split = sample.split.map(|s| s.name()).unwrap_or("all");
        by_split.entry(split).or_default().push(sample);
    }
    let mut report = BuildReport::default();
    for (split, members) in by_split {
        let mut writer =
            ShardWriter::new(out_dir.join(split), options.max_count, options.max_bytes)?;
        let mut keys = HashSet::new();
        for sample in members {
            let key = key_from_id(&sample.sample_id);
            if !keys.insert(key.clone()) {
                report.problems.push(format!(
                    "sample `{}`: key `{key}` repeats another sample's id after replacing `.` and `/`; left out",
                    sample.sample_id
                ));
                continue;
            }
            let mut shard_sample = ShardSample {
                key,
                members: Vec::new(),
            };
            let image = image_for(sample).and_then(|path| {
                match image_member(&path, options.resize.as_ref()) {
                    Ok(member) => Some(member),
                    Err(message) => {
                        report.problems.push(format!(
                            "sample `{}`: {}: {message}; written without image",
                            sample.sample_id,
                            path.display()
                        ));
                        None
                    }
                }
            });
            let image_present = image.is_some();
            if let Some(member) = image {
                shard_sample.members.push(member);
            }
            if let Some(text) = &sample.text {
                shard_sample
                    .members
                    .push(("txt".into(), text.clone().into_bytes()));
            }
            let mut json = serde_json::to_value(sample)
                .map_err(|e| MediaError::Invalid(format!("sample `{}`: {e}", sample.sample_id)))?;
            if let Some(object) = json.as_object_mut() {
                object.insert("image_present".into(), image_present.into());
            }
            let json = serde_json::to_vec(&json)
                .map_err(|e| MediaError::Invalid(format!("sample `{}`: {e}", sample.sample_id)))?;
            shard_sample.members.push(("json".into(), json));
            writer.write(&shard_sample)?;
            report.samples += 1;
            if image_present {
                report.with_image += 1;
            } else {
                report.without_image += 1;
            }
        }
        report.splits.push((split.to_string(), writer.finish()?));
    }
    Ok(report)
}

/// The image member: re-encoded when resizing, else the original bytes under their format's
/// extension.
fn image_member(
    path: &Path,
    resize: Option<&ResizeSpec>,
) -> std::result::Result<(String, Vec<u8>), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if let Some(spec) = resize {
        return Ok(("jpg".into(), resize_and_pad(&bytes, spec)?));
    }
    let extension = match sniff(&bytes) {
        Some(ImageFormat::Jpeg) => "jpg",
        Some(ImageFormat::Png) => "png",
        Some(ImageFormat::Gif) => "gif",
        Some(ImageFormat::Webp) => "webp",
        Some(ImageFormat::Bmp) => "bmp",
        None => return Err("not an image".into()),
    };
    Ok((extension.into(), bytes))
}

/// The mini-train subset: the first `count` shards of `split_dir`, hard-linked (or copied)
/// into `out_dir` under their own names.
pub fn mini_train(split_dir: &Path, count: usize, out_dir: &Path) -> Result<Vec<PathBuf>> {
    let shards = super::list_shards(split_dir)?;
    std::fs::create_dir_all(out_dir).map_err(|e| MediaError::io(out_dir, e))?;
    let mut linked = Vec::new();
    for shard in shards.into_iter().take(count) {
        let Some(name) = shard.file_name() else {
            continue;
        };
        let target = out_dir.join(name);
        let _ = std::fs::remove_file(&target);
        if std::fs::hard_link(&shard, &target).is_err() {
            std::fs::copy(&shard, &target).map_err(|e| MediaError::io(&target, e))?;
        }
        linked.push(target);
    }
    Ok(linked)
}
