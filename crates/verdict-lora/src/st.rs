//! Reading and atomically writing safetensors files with the `{"format": "pt"}` metadata that
//! PyTorch-side loaders expect.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype, View};

use crate::{Error, Result};

/// All tensors of one file, in the file's dtypes.
pub fn read(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    if !path.exists() {
        return Err(Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
        });
    }
    candle_core::safetensors::load(path, device).map_err(|e| Error::Safetensors {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn raw(tensor: &Tensor) -> Result<Raw> {
    let flat = tensor.flatten_all()?.to_device(&Device::Cpu)?;
    let (dtype, data): (Dtype, Vec<u8>) = match tensor.dtype() {
        DType::F32 => (Dtype::F32, bytes(flat.to_vec1::<f32>()?, f32::to_le_bytes)),
        DType::F64 => (Dtype::F64, bytes(flat.to_vec1::<f64>()?, f64::to_le_bytes)),
        DType::BF16 => (
            Dtype::BF16,
            bytes(flat.to_vec1::<half::bf16>()?, half::bf16::to_le_bytes),
        ),
        DType::F16 => (
            Dtype::F16,
            bytes(flat.to_vec1::<half::f16>()?, half::f16::to_le_bytes),
        ),
        DType::U8 => (Dtype::U8, flat.to_vec1::<u8>()?),
        DType::U32 => (Dtype::U32, bytes(flat.to_vec1::<u32>()?, u32::to_le_bytes)),
        DType::I64 => (Dtype::I64, bytes(flat.to_vec1::<i64>()?, i64::to_le_bytes)),
        other => {
            return Err(Error::Config(format!(
                "cannot write tensors of dtype {other:?}"
            )))
        }
    };
    Ok(Raw {
        dtype,
        shape: tensor.dims().to_vec(),
        data,
    })
}

fn bytes<T: Copy, const N: usize>(values: Vec<T>, to_bytes: fn(T) -> [u8; N]) -> Vec<u8> {
    values.into_iter().flat_map(to_bytes).collect()
}

/// Writes `tensors` to `path` through a temporary file in the same directory and a rename,
/// so a crash never leaves a half-written file under the final name.
pub fn write(path: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
    let raws: Vec<(String, Raw)> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), raw(t)?)))
        .collect::<Result<_>>()?;
    let views: Vec<(&str, &Raw)> = raws.iter().map(|(k, r)| (k.as_str(), r)).collect();
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let buffer = safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Safetensors {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomic(path, &buffer)
}

/// Writes bytes through a temporary sibling file and a rename.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, contents).map_err(crate::error::io_error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(crate::error::io_error(path))
}
