//! Push and pull between the local cache and a remote in DVC's layout (`files/md5/xx/...`),
//! on any [`Location`]: a folder, or `s3://bucket/prefix`.

use std::path::Path;

use super::object_relative_path;
use super::pointer::DvcFile;
use super::repo::DvcRepo;
use crate::error::{MediaError, Result};
use crate::store::Location;

#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct TransferSummary {
    pub transferred: usize,
    /// Already on the other side.
    pub present: usize,
    pub bytes: u64,
}

/// Uploads every object the pointers need that the remote lacks.
pub async fn push(
    repo: &DvcRepo,
    pointers: &[&Path],
    remote: &Location,
) -> Result<TransferSummary> {
    let mut summary = TransferSummary::default();
    for pointer in pointers {
        let file = DvcFile::read(pointer)?;
        for out in &file.outs {
            for id in repo.objects_of(out)? {
                let relative = object_relative_path(&id);
                let target = remote.child(&relative);
                if target.size().await?.is_some() {
                    summary.present += 1;
                    continue;
                }
                let local = repo.object_path(&id);
                let bytes = std::fs::read(&local).map_err(|e| {
                    MediaError::format(
                        &local,
                        format!("object of `{}` not in the local cache: {e}", out.path),
                    )
                })?;
                summary.bytes += bytes.len() as u64;
                target.put(bytes.into()).await?;
                summary.transferred += 1;
            }
        }
    }
    Ok(summary)
}

/// Downloads what the pointers need into the local cache, checking each object's md5 before
/// it is stored (a corrupt remote object is an error, never a cache entry).
pub async fn pull(
    repo: &DvcRepo,
    pointers: &[&Path],
    remote: &Location,
) -> Result<TransferSummary> {
    let mut summary = TransferSummary::default();
    for pointer in pointers {
        let file = DvcFile::read(pointer)?;
        for out in &file.outs {
            // The listing first: it names the folder's files.
            fetch(repo, &out.md5, remote, &mut summary).await?;
            for id in repo.objects_of(out)?.into_iter().skip(1) {
                fetch(repo, &id, remote, &mut summary).await?;
            }
        }
    }
    Ok(summary)
}

async fn fetch(
    repo: &DvcRepo,
    id: &str,
    remote: &Location,
    summary: &mut TransferSummary,
) -> Result<()> {
    if repo.object_path(id).is_file() {
        summary.present += 1;
        return Ok(());
    }
    let source = remote.child(&object_relative_path(id));
    if source.size().await?.is_none() {
        return Err(MediaError::store(
            source.to_string(),
            format!("object {id} is missing on the remote"),
        ));
    }
    let bytes = source.get().await?;
    repo.insert_verified(&mut &bytes[..], id, &source.to_string())?;
    summary.bytes += bytes.len() as u64;
    summary.transferred += 1;
    Ok(())
}
