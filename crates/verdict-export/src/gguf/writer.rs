//! A GGUF version 3 file writer: header, typed key/value metadata, tensor descriptors and
//! 32-byte aligned tensor data, all little-endian as llama.cpp and the `gguf` Python package
//! read it.
//!
//! The file is written to a temporary sibling and renamed, so a failed export never leaves a
//! truncated `.gguf` under the final name.

use std::io::Write;
use std::path::Path;

use crate::error::io_error;
use crate::{Error, Result};

/// `GGUF` read as a little-endian u32.
const MAGIC: u32 = 0x4655_4747;
const VERSION: u32 = 3;
/// The alignment llama.cpp assumes when `general.alignment` is absent.
pub const ALIGNMENT: usize = 32;

/// One metadata value; the variants are the GGUF value types this exporter needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    /// An array of u32 (kept separate from `Array` so the element type is explicit).
    ArrayU32(Vec<u32>),
    ArrayI32(Vec<i32>),
    ArrayF32(Vec<f32>),
    ArrayString(Vec<String>),
}

impl Value {
    fn type_id(&self) -> u32 {
        match self {
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::String(_) => 8,
            Value::ArrayU32(_)
            | Value::ArrayI32(_)
            | Value::ArrayF32(_)
            | Value::ArrayString(_) => 9,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Bool(v) => out.push(u8::from(*v)),
            Value::String(v) => write_string(out, v),
            Value::ArrayU32(values) => {
                write_array_header(out, 4, values.len());
                values
                    .iter()
                    .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            }
            Value::ArrayI32(values) => {
                write_array_header(out, 5, values.len());
                values
                    .iter()
                    .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            }
            Value::ArrayF32(values) => {
                write_array_header(out, 6, values.len());
                values
                    .iter()
                    .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            }
            Value::ArrayString(values) => {
                write_array_header(out, 8, values.len());
                values.iter().for_each(|v| write_string(out, v));
            }
        }
    }
}

fn write_string(out: &mut Vec<u8>, value: &str) {
    out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    out.extend_from_slice(value.as_bytes());
}

fn write_array_header(out: &mut Vec<u8>, element_type: u32, len: usize) {
    out.extend_from_slice(&element_type.to_le_bytes());
    out.extend_from_slice(&(len as u64).to_le_bytes());
}

/// One tensor as stored: GGML type id, dimensions in GGML order (fastest-varying first, i.e.
/// the reverse of the PyTorch shape) and the encoded bytes.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    pub data: Vec<u8>,
}

/// Collects metadata and tensors, then writes them in one pass.
#[derive(Debug, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorEntry>,
}

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a metadata key; keys keep their first insertion order.
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.metadata.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.metadata.push((key, value)),
        }
    }

    pub fn add_tensor(&mut self, tensor: TensorEntry) -> Result<()> {
        if self.tensors.iter().any(|t| t.name == tensor.name) {
            return Err(Error::Unsupported(format!(
                "two tensors map to the GGUF name {}",
                tensor.name
            )));
        }
        self.tensors.push(tensor);
        Ok(())
    }

    pub fn tensors(&self) -> &[TensorEntry] {
        &self.tensors
    }

    /// The complete file contents.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            write_string(&mut out, key);
            out.extend_from_slice(&value.type_id().to_le_bytes());
            value.write(&mut out);
        }
        let mut offset = 0u64;
        for tensor in &self.tensors {
            write_string(&mut out, &tensor.name);
            out.extend_from_slice(&(tensor.dims.len() as u32).to_le_bytes());
            for dim in &tensor.dims {
                out.extend_from_slice(&dim.to_le_bytes());
            }
            out.extend_from_slice(&tensor.ggml_type.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offset += padded(tensor.data.len()) as u64;
        }
        out.resize(padded(out.len()), 0);
        for tensor in &self.tensors {
            out.extend_from_slice(&tensor.data);
            out.resize(padded(out.len()), 0);
        }
        out
    }

    /// Writes the file through a temporary sibling and a rename.
    pub fn write(&self, path: &Path) -> Result<u64> {
        let bytes = self.to_bytes();
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::Unsupported(format!("{} is not a file name", path.display())))?;
        let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
        let mut file = std::fs::File::create(&tmp).map_err(io_error(&tmp))?;
        file.write_all(&bytes).map_err(io_error(&tmp))?;
        file.sync_all().map_err(io_error(&tmp))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io_error(path))?;
        Ok(bytes.len() as u64)
    }
}

fn padded(len: usize) -> usize {
    len.div_ceil(ALIGNMENT) * ALIGNMENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_and_alignment() {
        let mut writer = GgufWriter::new();
        writer.set("general.architecture", Value::String("qwen3vl".into()));
        writer.set("a.n", Value::U32(7));
        writer
            .add_tensor(TensorEntry {
                name: "t".into(),
                dims: vec![3],
                ggml_type: 0,
                data: vec![1; 12],
            })
            .unwrap();
        writer
            .add_tensor(TensorEntry {
                name: "u".into(),
                dims: vec![1],
                ggml_type: 0,
                data: vec![2; 4],
            })
            .unwrap();
        let bytes = writer.to_bytes();
        assert_eq!(&bytes[0..4], b"GGUF");
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 3);
        assert_eq!(u64::from_le_bytes(bytes[8..16].try_into().unwrap()), 2);
        assert_eq!(u64::from_le_bytes(bytes[16..24].try_into().unwrap()), 2);
        // Data section: first tensor at an aligned start, second 32 bytes later.
        assert_eq!(bytes.len() % ALIGNMENT, 0);
        let second = bytes.len() - ALIGNMENT;
        assert_eq!(&bytes[second..second + 4], &[2, 2, 2, 2]);
        assert_eq!(
            &bytes[second - ALIGNMENT..second - ALIGNMENT + 12],
            &[1; 12]
        );
    }

    #[test]
    fn duplicate_names_are_refused() {
        let mut writer = GgufWriter::new();
        let entry = TensorEntry {
            name: "t".into(),
            dims: vec![1],
            ggml_type: 0,
            data: vec![0; 4],
        };
        writer.add_tensor(entry.clone()).unwrap();
        assert!(writer.add_tensor(entry).is_err());
    }
}
