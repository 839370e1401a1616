//! Copies between locations: one object or a whole prefix, streamed chunk by chunk, multipart
//! for large objects, with progress and a size check on every object written.

use futures::StreamExt;
use object_store::{PutPayload, WriteMultipart};

use super::location::Location;
use crate::error::{MediaError, Result};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct CopyOptions {
    /// Objects at least this large go up in parts.
    pub multipart_threshold: u64,
    /// Part size (S3 wants at least 5 MiB for every part but the last).
    pub part_size: usize,
    /// Parts in flight per object.
    pub parts_in_flight: usize,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            multipart_threshold: 64 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            parts_in_flight: 4,
        }
    }
}

/// Receives progress: the totals once known, then bytes as they move.
pub trait TransferProgress: Sync {
    fn start(&self, _files: u64, _bytes: u64) {}
    fn advance(&self, _bytes: u64) {}
}

/// No progress display.
impl TransferProgress for () {}

#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct CopyReport {
    pub files: u64,
    pub bytes: u64,
    /// Objects uploaded in parts.
    pub multipart: u64,
}

/// Copies `source` to `destination`. A single object goes to `destination` itself (or below
/// it when `destination` ends with `/` or is an existing local folder); a prefix or folder is
/// copied recursively, keeping relative paths.
pub async fn copy(
    source: &Location,
    destination: &Location,
    destination_is_folder: bool,
    options: &CopyOptions,
    progress: &dyn TransferProgress,
) -> Result<CopyReport> {
    let mut plan: Vec<(Location, Location, u64)> = Vec::new();
    if let Some(size) = source.size().await? {
        let into_folder =
            destination_is_folder || destination.local_path().is_some_and(|p| p.is_dir());
        let target = match (into_folder, source.file_name()) {
            (true, Some(name)) => destination.child(&name),
            _ => destination.clone(),
        };
        plan.push((source.clone(), target, size));
    } else {
        for (relative, size) in source.list().await? {
            plan.push((source.child(&relative), destination.child(&relative), size));
        }
        if plan.is_empty() {
            return Err(MediaError::store(
                source.to_string(),
                "no such object or prefix",
            ));
        }
    }
    progress.start(
        plan.len() as u64,
        plan.iter().map(|(_, _, size)| size).sum(),
    );
    let mut report = CopyReport::default();
    for (from, to, size) in plan {
        let multipart = copy_object(&from, &to, size, options, progress).await?;
        report.files += 1;
        report.bytes += size;
        report.multipart += multipart as u64;
    }
    Ok(report)
}

/// One object; returns whether it went in parts.
async fn copy_object(
    from: &Location,
    to: &Location,
    size: u64,
    options: &CopyOptions,
    progress: &dyn TransferProgress,
) -> Result<bool> {
    let source_error = |e: object_store::Error| MediaError::store(from.to_string(), e);
    let target_error = |e: object_store::Error| MediaError::store(to.to_string(), e);
    let mut stream = from
        .store()
        .get(from.object_path())
        .await
        .map_err(source_error)?
        .into_stream();
    let multipart = size >= options.multipart_threshold;
    let mut moved = 0u64;
    if multipart {
        let upload = to
            .store()
            .put_multipart(to.object_path())
            .await
            .map_err(target_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, options.part_size.max(1));
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(source_error(e));
                }
            };
            if let Err(e) = writer
                .wait_for_capacity(options.parts_in_flight.max(1))
                .await
            {
                return Err(target_error(e));
            }
            let length = chunk.len() as u64;
            moved += length;
            writer.put(chunk);
            progress.advance(length);
        }
        writer.finish().await.map_err(target_error)?;
    } else {
        let mut chunks = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(source_error)?;
            moved += chunk.len() as u64;
            progress.advance(chunk.len() as u64);
            chunks.push(chunk);
        }
        let payload: PutPayload = chunks.into_iter().collect();
        to.store()
            .put(to.object_path(), payload)
            .await
            .map_err(target_error)?;
    }
    if moved != size {
        return Err(MediaError::store(
            from.to_string(),
            format!("read {moved} bytes, expected {size}; source changed during the copy?"),
        ));
    }
    match to.size().await? {
        Some(written) if written == size => Ok(multipart),
        other => Err(MediaError::store(
            to.to_string(),
            format!("after copy the object has {other:?} bytes, expected {size}"),
        )),
    }
}
