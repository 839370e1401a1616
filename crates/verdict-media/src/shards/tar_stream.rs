//! A streaming tar reader that refuses what a dataset shard must never contain.
//!
//! Shards can be large (hundreds of MB) and come from anywhere, so members are read one at a
//! time and every name is checked: absolute paths, `..` components, links and device files are
//! errors naming the member, never something to follow.

use std::io::Read;

/// One regular file of the archive.
#[derive(Debug, Clone)]
pub struct TarEntry {
    pub name: String,
    pub data: Vec<u8>,
}

/// Reads regular-file members from a tar stream (ustar, GNU long names, PAX `path`).
pub struct TarStream<R> {
    reader: R,
    /// Where errors say they happened (a shard path).
    origin: String,
    done: bool,
}

const BLOCK: usize = 512;

impl<R: Read> TarStream<R> {
    pub fn new(reader: R, origin: impl Into<String>) -> Self {
        TarStream {
            reader,
            origin: origin.into(),
            done: false,
        }
    }

    fn error(&self, message: impl std::fmt::Display) -> String {
        format!("{}: {message}", self.origin)
    }

    /// Fills `buffer`; `Ok(false)` on a clean end of stream before the first byte.
    fn read_block(&mut self, buffer: &mut [u8]) -> Result<bool, String> {
        let mut filled = 0;
        while filled < buffer.len() {
            match self.reader.read(&mut buffer[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => return Err(self.error("archive ends in the middle of a block")),
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.error(e)),
            }
        }
        Ok(true)
    }

    fn read_data(&mut self, size: u64, name: &str) -> Result<Vec<u8>, String> {
        let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        let mut data = vec![0u8; padded as usize];
        if padded > 0 && !self.read_block(&mut data)? {
            return Err(self.error(format!("member `{name}` is cut short")));
        }
        data.truncate(size as usize);
        Ok(data)
    }

    fn next_entry(&mut self) -> Result<Option<TarEntry>, String> {
        let mut long_name: Option<String> = None;
        loop {
            let mut header = [0u8; BLOCK];
            if !self.read_block(&mut header)? || header.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            verify_checksum(&header).map_err(|e| self.error(e))?;
            let size = parse_octal(&header[124..136]).map_err(|e| self.error(e))?;
            let kind = header[156];
            let header_name = header_name(&header);
            match kind {
                b'L' => {
                    let data = self.read_data(size, &header_name)?;
                    long_name = Some(c_string(&data));
                }
                b'x' => {
                    let data = self.read_data(size, &header_name)?;
                    if let Some(path) = pax_path(&data) {
                        long_name = Some(path);
                    }
                }
                b'g' => {
                    self.read_data(size, &header_name)?;
                }
                b'0' | 0 | b'7' => {
                    let name = long_name.take().unwrap_or(header_name);
                    check_member_name(&name).map_err(|e| self.error(e))?;
                    let data = self.read_data(size, &name)?;
                    return Ok(Some(TarEntry { name, data }));
                }
                b'5' => {
                    let name = long_name.take().unwrap_or(header_name);
                    check_member_name(&name).map_err(|e| self.error(e))?;
                    self.read_data(size, &name)?;
                }
                b'1' | b'2' => {
                    let name = long_name.take().unwrap_or(header_name);
                    return Err(self.error(format!(
                        "member `{name}` is a link; shards may hold only regular files"
                    )));
                }
                other => {
                    let name = long_name.take().unwrap_or(header_name);
                    return Err(self.error(format!(
                        "member `{name}` has unsupported type `{}`",
                        other as char
                    )));
                }
            }
        }
    }
}

impl<R: Read> Iterator for TarStream<R> {
    type Item = Result<TarEntry, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_entry();
        if !matches!(next, Ok(Some(_))) {
            self.done = true;
        }
        next.transpose()
    }
}

/// Refuses names that would escape a folder if the shard were unpacked.
fn check_member_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("member with an empty name".into());
    }
    if name.starts_with('/') || name.contains('\\') || name.contains('\0') {
        return Err(format!(
            "member `{name}` has an absolute or non-portable path"
        ));
    }
    if name.split('/').any(|part| part == "..") {
        return Err(format!(
            "member `{name}` escapes the archive (`..` path traversal)"
        ));
    }
    Ok(())
}

/// Splits a member name the way `webdataset` does: the key is everything up to the first dot
/// of the last path component (folders included), the extension is the rest.
pub fn split_member_name(name: &str) -> Option<(&str, &str)> {
    let start = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    let dot = name[start..].find('.')? + start;
    (dot > start).then(|| (&name[..dot], &name[dot + 1..]))
}

fn header_name(header: &[u8; BLOCK]) -> String {
    let name = c_string(&header[0..100]);
    let is_ustar = &header[257..262] == b"ustar";
    let prefix = if is_ustar {
        c_string(&header[345..500])
    } else {
        String::new()
    };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn parse_octal(field: &[u8]) -> Result<u64, String> {
    // GNU base-256 for sizes of 8 GiB and more.
    if field[0] & 0x80 != 0 {
        let mut value: u64 = 0;
        for &b in &field[1..] {
            value = value
                .checked_mul(256)
                .and_then(|v| v.checked_add(b as u64))
                .ok_or("size field overflows")?;
        }
        return Ok(value);
    }
    let text = c_string(field);
    let text = text.trim_matches(|c: char| c == ' ' || c == '\0');
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| {
        format!(
            "corrupt header (numeric field `{}`); not a tar file?",
            text.escape_debug()
        )
    })
}

fn verify_checksum(header: &[u8; BLOCK]) -> Result<(), String> {
    let stored = parse_octal(&header[148..156])?;
    let sum: u64 = header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                b' ' as u64
            } else {
                b as u64
            }
        })
        .sum();
    if stored != sum {
        return Err(format!(
            "corrupt header (checksum {stored} != {sum}); not a tar file?"
        ));
    }
    Ok(())
}

/// The `path` record of a PAX extended header (`"<len> path=<value>\n"` records).
fn pax_path(data: &[u8]) -> Option<String> {
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ')?;
        let length: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if length <= space || length > rest.len() {
            return None;
        }
        let record = &rest[space + 1..length];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(value) = record.strip_prefix(b"path=") {
            return Some(String::from_utf8_lossy(value).into_owned());
        }
        rest = &rest[length..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(names: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in names {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o444);
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn reads_members_including_long_names() {
        let long = format!("{}/key.txt", "d".repeat(150));
        let bytes = tar_with(&[("a.txt", b"hello"), (&long, b"x")]);
        let entries: Vec<_> = TarStream::new(&bytes[..], "t.tar")
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, "a.txt");
        assert_eq!(entries[0].data, b"hello");
        assert_eq!(entries[1].name, long);
    }

    #[test]
    fn traversal_and_garbage_are_errors() {
        // tar::Builder refuses `..` itself, so patch the name into the header by hand.
        let mut bytes = tar_with(&[("aa/evil.txt", b"x")]);
        bytes[0..2].copy_from_slice(b"..");
        let mut header = [0u8; BLOCK];
        header.copy_from_slice(&bytes[..BLOCK]);
        let sum: u64 = header
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    b as u64
                }
            })
            .sum();
        bytes[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let error = TarStream::new(&bytes[..], "bad.tar")
            .next()
            .unwrap()
            .unwrap_err();
        assert!(
            error.contains("path traversal") && error.contains("../evil.txt"),
            "{error}"
        );
        let error = TarStream::new(&[7u8; 1024][..], "junk.tar")
            .next()
            .unwrap()
            .unwrap_err();
        assert!(error.contains("not a tar file"), "{error}");
    }

    #[test]
    fn member_names_split_like_webdataset() {
        assert_eq!(split_member_name("abc.jpg"), Some(("abc", "jpg")));
        assert_eq!(
            split_member_name("dir.x/abc.seg.png"),
            Some(("dir.x/abc", "seg.png"))
        );
        assert_eq!(split_member_name("noext"), None);
        assert_eq!(split_member_name(".hidden"), None);
    }
}
