//! Writes samples into numbered shards, starting a new one at a sample count or byte limit.
//!
//! Each shard is written under a temporary name and renamed when complete, so a reader (or a
//! crash) never sees a half-written `shard-NNNNNN.tar`.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::error::{MediaError, Result};

/// One sample: a key and its members (`("jpg", bytes)`, `("json", bytes)`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct ShardSample {
    pub key: String,
    pub members: Vec<(String, Vec<u8>)>,
}

impl ShardSample {
    /// Bytes this sample takes in a tar: a header block per member plus padded data.
    pub fn tar_size(&self) -> u64 {
        self.members
            .iter()
            .map(|(_, data)| 512 + (data.len() as u64).div_ceil(512) * 512)
            .sum()
    }
}

/// Rolls shards `shard-000000.tar`, `shard-000001.tar`, ... in one folder.
pub struct ShardWriter {
    dir: PathBuf,
    max_count: usize,
    max_bytes: u64,
    current: Option<OpenShard>,
    written: Vec<PathBuf>,
    next_index: usize,
}

struct OpenShard {
    path: PathBuf,
    builder: tar::Builder<BufWriter<tempfile::NamedTempFile>>,
    count: usize,
    bytes: u64,
}

impl ShardWriter {
    /// `max_count` samples and about `max_bytes` per shard (a single larger sample still gets a
    /// shard of its own).
    pub fn new(dir: impl Into<PathBuf>, max_count: usize, max_bytes: u64) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| MediaError::io(&dir, e))?;
        Ok(ShardWriter {
            dir,
            max_count: max_count.max(1),
            max_bytes: max_bytes.max(1),
            current: None,
            written: Vec::new(),
            next_index: 0,
        })
    }

    pub fn shard_name(index: usize) -> String {
        format!("shard-{index:06}.tar")
    }

    pub fn write(&mut self, sample: &ShardSample) -> Result<()> {
        validate_key(&sample.key)?;
        for (extension, _) in &sample.members {
            if extension.is_empty() || extension.contains('/') {
                return Err(MediaError::Invalid(format!(
                    "sample `{}`: member extension `{extension}` must be non-empty without `/`",
                    sample.key
                )));
            }
        }
        let size = sample.tar_size();
        let full = self.current.as_ref().is_some_and(|shard| {
            shard.count >= self.max_count || shard.bytes + size > self.max_bytes
        });
        if full {
            self.close_current()?;
        }
        if self.current.is_none() {
            self.open_next()?;
        }
        let Some(shard) = self.current.as_mut() else {
            return Err(MediaError::Invalid("no open shard".into()));
        };
        for (extension, data) in &sample.members {
            let name = format!("{}.{extension}", sample.key);
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            // The owner and mode the Python writer uses; a fixed mtime keeps shards
            // byte-for-byte reproducible (and so content-addressable).
            header.set_mode(0o444);
            header.set_mtime(0);
            header.set_username("bigdata").ok();
            header.set_groupname("bigdata").ok();
            header.set_entry_type(tar::EntryType::Regular);
            shard
                .builder
                .append_data(&mut header, &name, data.as_slice())
                .map_err(|e| MediaError::io(&shard.path, e))?;
        }
        shard.count += 1;
        shard.bytes += size;
        Ok(())
    }

    fn open_next(&mut self) -> Result<()> {
        let path = self.dir.join(Self::shard_name(self.next_index));
        self.next_index += 1;
        let temp =
            tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| MediaError::io(&self.dir, e))?;
        let mut builder = tar::Builder::new(BufWriter::with_capacity(1 << 20, temp));
        builder.mode(tar::HeaderMode::Deterministic);
        self.current = Some(OpenShard {
            path,
            builder,
            count: 0,
            bytes: 0,
        });
        Ok(())
    }

    fn close_current(&mut self) -> Result<()> {
        if let Some(shard) = self.current.take() {
            let path = shard.path;
            let buffered = shard
                .builder
                .into_inner()
                .map_err(|e| MediaError::io(&path, e))?;
            let temp = buffered
                .into_inner()
                .map_err(|e| MediaError::io(&path, e.into_error()))?;
            temp.persist(&path)
                .map_err(|e| MediaError::io(&path, e.error))?;
            self.written.push(path);
        }
        Ok(())
    }

    /// Closes the last shard and returns every shard written, in order.
    pub fn finish(mut self) -> Result<Vec<PathBuf>> {
        self.close_current()?;
        Ok(std::mem::take(&mut self.written))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Keys become member names `<key>.<ext>`; a dot would move the key/extension split and a
/// slash would create folders, so both are refused (callers sanitise ids first).
fn validate_key(key: &str) -> Result<()> {
    let bad = key.is_empty()
        || key.contains('.')
        || key.contains('/')
        || key.contains('\\')
        || key.chars().any(char::is_control);
    if bad {
        return Err(MediaError::Invalid(format!(
            "shard key `{key}` must be non-empty, without `.`, `/`, `\\` or control characters"
        )));
    }
    Ok(())
}

/// A shard key from a sample id: characters a key may not hold become `_`.
pub(crate) fn key_from_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c == '.' || c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shards::TarStream;

    fn sample(key: &str, size: usize) -> ShardSample {
        ShardSample {
            key: key.into(),
            members: vec![
                ("bin".into(), vec![7u8; size]),
                ("txt".into(), b"t".to_vec()),
            ],
        }
    }

    #[test]
    fn rolls_on_count_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = ShardWriter::new(dir.path(), 3, 1 << 30).unwrap();
        for i in 0..7 {
            writer.write(&sample(&format!("s{i}"), 10)).unwrap();
        }
        let shards = writer.finish().unwrap();
        assert_eq!(shards.len(), 3);
        assert!(shards[2].ends_with("shard-000002.tar"));

        let mut writer = ShardWriter::new(dir.path().join("b"), 100, 4096).unwrap();
        for i in 0..4 {
            // 512 + 1536 + 512 + 512 = 3072 bytes per sample: one per shard.
            writer.write(&sample(&format!("s{i}"), 1500)).unwrap();
        }
        let shards = writer.finish().unwrap();
        assert_eq!(shards.len(), 4);
        let file = std::fs::File::open(&shards[0]).unwrap();
        let names: Vec<String> = TarStream::new(file, "x").map(|e| e.unwrap().name).collect();
        assert_eq!(names, ["s0.bin", "s0.txt"]);
    }

    #[test]
    fn bad_keys_are_refused_and_sanitised() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = ShardWriter::new(dir.path(), 3, 1 << 30).unwrap();
        assert!(writer.write(&sample("a.b", 1)).is_err());
        assert!(writer.write(&sample("../x", 1)).is_err());
        assert_eq!(key_from_id("run/1.2"), "run_1_2");
        // Nothing was opened for refused samples.
        assert!(writer.finish().unwrap().is_empty());
    }
}
