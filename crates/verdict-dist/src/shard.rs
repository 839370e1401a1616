//! `--shard i/N`: which part of an embarrassingly parallel stage one process does, and how
//! its output is named so that a merge can prove every part arrived exactly once.
//!
//! Two selection rules, both deterministic and independent of the machine:
//! - by position (round-robin: items `i, i+N, i+2N, ...`) for inputs with a fixed order,
//!   such as the rows of a manifest;
//! - by key hash (`sha256(key)` as a big-endian `u64`, modulo `N`) for listings whose order
//!   is not guaranteed, such as object-store prefixes: every item lands in exactly one shard
//!   whatever order the listing returned. The rule is easy to reproduce elsewhere, e.g. in
//!   Python: `int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % N`.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::error::{DistError, Result};

/// Shard `index` of `count` (0-based, `index < count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShardSpec {
    index: usize,
    count: usize,
}

impl ShardSpec {
    /// The whole work as one shard (`0/1`), what a run without `--shard` does.
    pub const WHOLE: ShardSpec = ShardSpec { index: 0, count: 1 };

    pub fn new(index: usize, count: usize) -> Result<Self> {
        if count == 0 {
            return Err(DistError::Shard(format!(
                "shard `{index}/{count}`: the shard count must be at least 1"
            )));
        }
        if index >= count {
            return Err(DistError::Shard(format!(
                "shard `{index}/{count}`: the index is 0-based and must be below the count \
                 (valid: 0/{count} .. {}/{count})",
                count - 1
            )));
        }
        Ok(Self { index, count })
    }

    pub fn index(&self) -> usize {
        self.index
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Positions `index, index + count, ...` below `len`.
    pub fn positions(&self, len: usize) -> impl Iterator<Item = usize> {
        (self.index..len).step_by(self.count)
    }

    /// The items at this shard's positions (round-robin).
    pub fn select_by_position<'a, T>(&self, items: &'a [T]) -> Vec<&'a T> {
        self.positions(items.len()).map(|i| &items[i]).collect()
    }

    /// Whether the item with stable `key` (an object path, a sample id) belongs here.
    pub fn owns_key(&self, key: &str) -> bool {
        key_bucket(key, self.count) == self.index
    }

    /// The items whose key hashes to this shard, in their given order.
    pub fn select_by_key<'a, T>(&self, items: &'a [T], key: impl Fn(&T) -> &str) -> Vec<&'a T> {
        items
            .iter()
            .filter(|item| self.owns_key(key(item)))
            .collect()
    }

    /// `part-00003-of-00008`: the stem of this shard's output (add `.jsonl`, `.parquet`,
    /// or use it as a folder). Zero-padded so that names sort in shard order.
    pub fn part_name(&self) -> String {
        format!("part-{:05}-of-{:05}", self.index, self.count)
    }

    /// Reads a part name back: `part-<i>-of-<N>` optionally followed by `.<extension>`.
    /// Returns the shard and the extension (empty for a folder or bare name); `None` if the
    /// name is not a part name at all.
    pub fn parse_part_name(name: &str) -> Option<Result<(ShardSpec, String)>> {
        let rest = name.strip_prefix("part-")?;
        let (index, rest) = rest.split_once("-of-")?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (count, extension) = rest.split_at(digits);
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) || count.is_empty() {
            return None;
        }
        if !(extension.is_empty() || extension.starts_with('.')) {
            return None;
        }
        let parse = |text: &str| {
            text.parse::<usize>()
                .map_err(|e| DistError::Shard(format!("part name `{name}`: {e}")))
        };
        Some((|| {
            let spec = ShardSpec::new(parse(index)?, parse(count)?)
                .map_err(|e| DistError::Shard(format!("part name `{name}`: {e}")))?;
            Ok((spec, extension.trim_start_matches('.').to_string()))
        })())
    }
}

/// The shard (of `count`) that the item with `key` belongs to.
pub fn key_bucket(key: &str, count: usize) -> usize {
    let digest = Sha256::digest(key.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(head) % count.max(1) as u64) as usize
}

impl Default for ShardSpec {
    fn default() -> Self {
        Self::WHOLE
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for ShardSpec {
    type Err = DistError;

    /// Parses `i/N`, e.g. `--shard 3/8`.
    fn from_str(text: &str) -> Result<Self> {
        let Some((index, count)) = text.split_once('/') else {
            return Err(DistError::Shard(format!(
                "shard `{text}`: expected `i/N` (0-based index, shard count), e.g. `0/4`"
            )));
        };
        let number = |part: &str, what: &str| {
            part.trim().parse::<usize>().map_err(|_| {
                DistError::Shard(format!(
                    "shard `{text}`: the {what} `{}` is not a non-negative whole number",
                    part.trim()
                ))
            })
        };
        ShardSpec::new(number(index, "index")?, number(count, "count")?)
    }
}

impl serde::Serialize for ShardSpec {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ShardSpec {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_with_reasons() {
        let spec: ShardSpec = "3/8".parse().unwrap();
        assert_eq!((spec.index(), spec.count()), (3, 8));
        assert_eq!(spec.to_string(), "3/8");
        assert_eq!(" 0 / 1 ".parse::<ShardSpec>().unwrap(), ShardSpec::WHOLE);
        for (text, needle) in [
            ("8/8", "below the count"),
            ("1/0", "at least 1"),
            ("3", "expected `i/N`"),
            ("-1/4", "index `-1`"),
            ("a/4", "index `a`"),
            ("1/x", "count `x`"),
        ] {
            let message = text.parse::<ShardSpec>().unwrap_err().to_string();
            assert!(message.contains(needle), "{text}: {message}");
        }
    }

    #[test]
    fn part_names_round_trip() {
        let spec = ShardSpec::new(3, 12).unwrap();
        assert_eq!(spec.part_name(), "part-00003-of-00012");
        let (back, ext) = ShardSpec::parse_part_name("part-00003-of-00012.jsonl")
            .unwrap()
            .unwrap();
        assert_eq!((back, ext.as_str()), (spec, "jsonl"));
        let (back, ext) = ShardSpec::parse_part_name("part-3-of-12").unwrap().unwrap();
        assert_eq!((back, ext.as_str()), (spec, ""));
        assert!(ShardSpec::parse_part_name("manifest.jsonl").is_none());
        assert!(ShardSpec::parse_part_name("part-1-of-2x").is_none());
        assert!(ShardSpec::parse_part_name("part-5-of-2.jsonl")
            .unwrap()
            .is_err());
    }

    #[test]
    fn key_bucket_matches_the_documented_formula() {
        // Values from Python: int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % n
        for (key, n, expected) in [
            ("s3://bucket/a.png", 7, 3),
            ("s3://bucket/a.png", 1000, 781),
            ("sample-000042", 7, 3),
            ("sample-000042", 1000, 809),
            ("x", 7, 1),
            ("x", 1000, 876),
        ] {
            assert_eq!(key_bucket(key, n), expected, "{key} % {n}");
        }
        assert_eq!(key_bucket("anything", 1), 0);
    }

    #[test]
    fn serde_uses_the_command_line_form() {
        let spec = ShardSpec::new(1, 4).unwrap();
        assert_eq!(serde_json::to_string(&spec).unwrap(), "\"1/4\"");
        assert_eq!(serde_json::from_str::<ShardSpec>("\"1/4\"").unwrap(), spec);
        assert!(serde_json::from_str::<ShardSpec>("\"4/4\"").is_err());
    }
}
