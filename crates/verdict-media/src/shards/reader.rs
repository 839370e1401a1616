//! The streaming reader the trainers use: samples regrouped from tar members, an optional
//! shuffle buffer, and `i/N` worker sharding over shard files.
//!
//! Memory stays at one sample per buffer slot however large the shards are. A broken shard
//! yields one error naming it and the reader moves on to the next shard.

use std::collections::VecDeque;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};

use super::tar_stream::{split_member_name, TarStream};
use super::writer::ShardSample;
use crate::error::{MediaError, Result};

/// Worker `index` of `count` reads shards `index`, `index + count`, ... (the split
/// `webdataset.split_by_worker` makes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerShard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for WorkerShard {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let parse = || -> Option<WorkerShard> {
            let (index, count) = text.split_once('/')?;
            let shard = WorkerShard {
                index: index.trim().parse().ok()?,
                count: count.trim().parse().ok()?,
            };
            (shard.count > 0 && shard.index < shard.count).then_some(shard)
        };
        parse().ok_or_else(|| format!("`{text}` is not a worker shard `i/N` with 0 <= i < N"))
    }
}

/// The shards of a folder (`*.tar`, sorted by name), or a single shard file.
pub fn list_shards(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| MediaError::io(path, e))?;
    let mut shards: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "tar"))
        .collect();
    shards.sort();
    if shards.is_empty() {
        return Err(MediaError::format(path, "no .tar shards in this folder"));
    }
    Ok(shards)
}

#[derive(Debug, Clone)]
pub struct ShardReader {
    shards: Vec<PathBuf>,
    shuffle_buffer: usize,
    seed: u64,
    worker: Option<WorkerShard>,
}

impl ShardReader {
    pub fn new(shards: Vec<PathBuf>) -> Self {
        ShardReader {
            shards,
            shuffle_buffer: 0,
            seed: 0,
            worker: None,
        }
    }

    /// Shuffles shard order and samples through a buffer of `buffer` samples (0 or 1: off).
    pub fn with_shuffle(mut self, buffer: usize, seed: u64) -> Self {
        self.shuffle_buffer = buffer;
        self.seed = seed;
        self
    }

    pub fn with_worker(mut self, worker: WorkerShard) -> Self {
        self.worker = Some(worker);
        self
    }

    /// The shards this worker reads, in reading order.
    pub fn worker_shards(&self) -> Vec<PathBuf> {
        let mut shards: Vec<PathBuf> = match self.worker {
            Some(worker) => self
                .shards
                .iter()
                .skip(worker.index)
                .step_by(worker.count)
                .cloned()
                .collect(),
            None => self.shards.clone(),
        };
        if self.shuffle_buffer > 1 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
            for i in (1..shards.len()).rev() {
                shards.swap(i, rng.random_range(0..=i));
            }
        }
        shards
    }

    pub fn iter(&self) -> Samples {
        Samples {
            pending_shards: self.worker_shards().into(),
            current: None,
            carry: None,
            pending_error: None,
            buffer: Vec::new(),
            buffer_size: self.shuffle_buffer.max(1),
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(self.seed ^ 0x5eed),
        }
    }
}

type Stream = TarStream<BufReader<std::fs::File>>;

/// Iterator over samples (see [`ShardReader::iter`]).
pub struct Samples {
    pending_shards: VecDeque<PathBuf>,
    current: Option<(PathBuf, Stream)>,
    /// First member of the next sample, read while closing the previous one.
    carry: Option<(String, String, Vec<u8>)>,
    /// An error met while a sample was still open: reported right after that sample.
    pending_error: Option<MediaError>,
    buffer: Vec<ShardSample>,
    buffer_size: usize,
    rng: rand_chacha::ChaCha8Rng,
}

impl Samples {
    /// The next sample in file order, or `None` when every shard is read.
    fn next_in_order(&mut self) -> Option<Result<ShardSample>> {
        loop {
            if let Some(error) = self.pending_error.take() {
                return Some(Err(error));
            }
            if self.current.is_none() {
                let path = self.pending_shards.pop_front()?;
                match std::fs::File::open(&path) {
                    Ok(file) => {
                        let origin = path.display().to_string();
                        let stream =
                            TarStream::new(BufReader::with_capacity(1 << 20, file), origin);
                        self.current = Some((path, stream));
                    }
                    Err(e) => return Some(Err(MediaError::io(&path, e))),
                }
            }
            let Some((path, stream)) = self.current.as_mut() else {
                continue;
            };
            let mut sample: Option<ShardSample> =
                self.carry.take().map(|(key, ext, data)| ShardSample {
                    key,
                    members: vec![(ext, data)],
                });
            loop {
                match stream.next() {
                    None => {
                        self.current = None;
                        match sample {
                            Some(sample) => return Some(Ok(sample)),
                            None => break,
                        }
                    }
                    Some(Err(message)) => {
                        let path = path.clone();
                        self.current = None;
                        let error = MediaError::format(
                            &path,
                            message
                                .trim_start_matches(&format!("{}: ", path.display()))
                                .to_string(),
                        );
                        if sample.is_some() {
                            self.pending_error = Some(error);
                            return sample.map(Ok);
                        }
                        return Some(Err(error));
                    }
                    Some(Ok(entry)) => {
                        let Some((key, ext)) = split_member_name(&entry.name) else {
                            // Members without an extension are not part of any sample.
                            continue;
                        };
                        let (key, ext) = (key.to_string(), ext.to_string());
                        match sample.as_mut() {
                            Some(current) if current.key == key => {
                                current.members.push((ext, entry.data));
                            }
                            Some(_) => {
                                self.carry = Some((key, ext, entry.data));
                                return sample.map(Ok);
                            }
                            None => {
                                sample = Some(ShardSample {
                                    key,
                                    members: vec![(ext, entry.data)],
                                });
                            }
                        }
                    }
                }
            }
        }
    }
}

impl Iterator for Samples {
    type Item = Result<ShardSample>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer_size <= 1 {
            return self.next_in_order();
        }
        while self.buffer.len() < self.buffer_size {
            match self.next_in_order() {
                Some(Ok(sample)) => self.buffer.push(sample),
                Some(Err(error)) => return Some(Err(error)),
                None => break,
            }
        }
        if self.buffer.is_empty() {
            return None;
        }
        let pick = self.rng.random_range(0..self.buffer.len());
        Some(Ok(self.buffer.swap_remove(pick)))
    }
}

impl ShardSample {
    /// The member with extension `ext` (`"jpg"`, `"json"`, ...).
    pub fn member(&self, ext: &str) -> Option<&[u8]> {
        self.members
            .iter()
            .find(|(e, _)| e == ext)
            .map(|(_, data)| data.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shards::ShardWriter;

    fn write_shards(dir: &Path, samples: usize, per_shard: usize) -> Vec<PathBuf> {
        let mut writer = ShardWriter::new(dir, per_shard, 1 << 30).unwrap();
        for i in 0..samples {
            writer
                .write(&ShardSample {
                    key: format!("k{i:04}"),
                    members: vec![
                        ("txt".into(), format!("text {i}").into_bytes()),
                        ("json".into(), format!("{{\"i\": {i}}}").into_bytes()),
                    ],
                })
                .unwrap();
        }
        writer.finish().unwrap()
    }

    #[test]
    fn reads_back_in_order_and_groups_members() {
        let dir = tempfile::tempdir().unwrap();
        let shards = write_shards(dir.path(), 25, 10);
        let samples: Vec<ShardSample> = ShardReader::new(shards)
            .iter()
            .map(|s| s.unwrap())
            .collect();
        assert_eq!(samples.len(), 25);
        assert_eq!(samples[13].key, "k0013");
        assert_eq!(samples[13].member("txt"), Some(&b"text 13"[..]));
        assert_eq!(samples[13].members.len(), 2);
    }

    #[test]
    fn workers_partition_and_shuffle_permutes() {
        let dir = tempfile::tempdir().unwrap();
        let shards = write_shards(dir.path(), 50, 5);
        let reader = ShardReader::new(shards.clone());
        let mut keys: Vec<String> = Vec::new();
        for index in 0..3 {
            let worker = format!("{index}/3").parse().unwrap();
            keys.extend(
                reader
                    .clone()
                    .with_worker(worker)
                    .iter()
                    .map(|s| s.unwrap().key),
            );
        }
        keys.sort();
        let all: Vec<String> = reader.iter().map(|s| s.unwrap().key).collect();
        assert_eq!(keys, all, "workers together read every sample exactly once");

        let shuffled: Vec<String> = reader
            .clone()
            .with_shuffle(16, 7)
            .iter()
            .map(|s| s.unwrap().key)
            .collect();
        assert_ne!(shuffled, all);
        let mut sorted = shuffled.clone();
        sorted.sort();
        assert_eq!(sorted, all);
        let again: Vec<String> = reader
            .with_shuffle(16, 7)
            .iter()
            .map(|s| s.unwrap().key)
            .collect();
        assert_eq!(shuffled, again, "same seed, same order");
        assert!("3/3".parse::<WorkerShard>().is_err());
    }
}
