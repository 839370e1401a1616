//! A parsed path: an object store plus the object path inside it.
//!
//! Local paths go through `object_store`'s local file system too, so every copy direction
//! (local to S3, S3 to local, S3 to S3, local to local) is the same code.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};

use crate::error::{MediaError, Result};

#[derive(Clone)]
pub struct Location {
    /// What the user wrote, normalised (used in messages).
    display: String,
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    local: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl Location {
    /// `s3://bucket/prefix`, `file:///abs/path`, or a plain local path.
    pub fn parse(text: &str) -> Result<Self> {
        if let Some((scheme, _)) = text.split_once("://") {
            if scheme == "file" {
                let url = url::Url::parse(text).map_err(|e| MediaError::store(text, e))?;
                let path = url
                    .to_file_path()
                    .map_err(|_| MediaError::store(text, "not a local file URL"))?;
                return Self::local(&path);
            }
            return Self::remote(text, scheme);
        }
        Self::local(std::path::Path::new(text))
    }

    pub fn local(path: &std::path::Path) -> Result<Self> {
        let absolute = std::path::absolute(path).map_err(|e| MediaError::io(path, e))?;
        let object_path = ObjectPath::from_absolute_path(&absolute)
            .map_err(|e| MediaError::store(absolute.display().to_string(), e))?;
        Ok(Location {
            display: absolute.display().to_string(),
            store: Arc::new(object_store::local::LocalFileSystem::new()),
            path: object_path,
            local: Some(absolute),
        })
    }

    fn remote(text: &str, scheme: &str) -> Result<Self> {
        let url = url::Url::parse(text).map_err(|e| MediaError::store(text, e))?;
        let store: Arc<dyn ObjectStore> = match scheme {
            "s3" | "s3a" => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env().with_url(text);
                let endpoint = std::env::var("AWS_ENDPOINT_URL")
                    .or_else(|_| std::env::var("AWS_ENDPOINT"))
                    .ok();
                if let Some(endpoint) = endpoint {
                    // S3-compatible servers (MinIO, moto, Ceph) are addressed by path.
                    builder = builder
                        .with_endpoint(&endpoint)
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_virtual_hosted_style_request(false);
                }
                Arc::new(builder.build().map_err(|e| MediaError::store(text, e))?)
            }
            other => {
                return Err(MediaError::store(
                    text,
                    format!(
                        "`{other}://` is not supported by this build (s3:// and local paths are)"
                    ),
                ))
            }
        };
        let path = ObjectPath::from_url_path(url.path()).map_err(|e| MediaError::store(text, e))?;
        Ok(Location {
            display: text.trim_end_matches('/').to_string(),
            store,
            path,
            local: None,
        })
    }

    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    /// The local file path, for local locations.
    pub fn local_path(&self) -> Option<&std::path::Path> {
        self.local.as_deref()
    }

    /// `relative` (slash-separated) below this location.
    pub fn child(&self, relative: &str) -> Location {
        let mut path = self.path.clone();
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            path = path.child(part);
        }
        Location {
            display: format!(
                "{}/{}",
                self.display.trim_end_matches('/'),
                relative.trim_matches('/')
            ),
            store: self.store.clone(),
            path,
            local: self.local.as_ref().map(|l| l.join(relative)),
        }
    }

    /// The last path component.
    pub fn file_name(&self) -> Option<String> {
        self.path.filename().map(str::to_string)
    }

    pub(crate) fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    pub(crate) fn object_path(&self) -> &ObjectPath {
        &self.path
    }

    fn error(&self, error: impl std::fmt::Display) -> MediaError {
        MediaError::store(self.display.clone(), error)
    }

    /// The size of the object here, or `None` if there is none (a prefix is not an object).
    pub async fn size(&self) -> Result<Option<u64>> {
        if let Some(local) = &self.local {
            return Ok(std::fs::metadata(local)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len()));
        }
        match self.store.head(&self.path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Every object below this prefix: `(relative path, size)`, sorted.
    pub async fn list(&self) -> Result<Vec<(String, u64)>> {
        if let Some(local) = &self.local {
            if !local.is_dir() {
                return Ok(Vec::new());
            }
        }
        let prefix = self.path.clone();
        let mut objects: Vec<(String, u64)> = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| {
                let relative: Vec<String> = meta
                    .location
                    .prefix_match(&prefix)
                    .map(|parts| parts.map(|p| p.as_ref().to_string()).collect())
                    .unwrap_or_default();
                (relative.join("/"), meta.size)
            })
            .try_collect()
            .await
            .map_err(|e| self.error(e))?;
        objects.retain(|(relative, _)| !relative.is_empty());
        objects.sort();
        Ok(objects)
    }

    pub async fn get(&self) -> Result<Bytes> {
        let result = self
            .store
            .get(&self.path)
            .await
            .map_err(|e| self.error(e))?;
        result.bytes().await.map_err(|e| self.error(e))
    }

    /// Writes the whole object (atomically for local paths and S3 alike).
    pub async fn put(&self, bytes: Bytes) -> Result<()> {
        self.store
            .put(&self.path, PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }
}
