//! Tensor encodings and which one each tensor gets.
//!
//! Block quantisation is candle's port of ggml's reference quantisers (`Q8_0`, `Q5_0`,
//! `Q4_K`, `Q6_K`), so the bytes follow ggml's block layouts. The choice per tensor follows
//! llama.cpp's `llama_tensor_get_type` for the three presets offered here:
//! - `f16`: 2-D weights in F16, 1-D tensors (norms) in F32, as `convert_hf_to_gguf.py --outtype f16`.
//! - `q8_0`: 2-D weights in Q8_0, 1-D in F32.
//! - `q4_k_m`: Q4_K by default; Q6_K for the output projection (the token embedding when the
//!   output is tied to it), and for `attn_v` and `ffn_down` in the layers `use_more_bits`
//!   selects (the first and last eighth of the layers and every third one between).
//!
//! A row length that does not fill whole blocks falls back as llama.cpp does: Q4_K -> Q5_0,
//! Q6_K -> Q8_0 (32-element blocks), and anything -> F16 when even 32 does not divide it.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use crate::{Error, Result};

/// The presets of `verdict export --format gguf --quant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    F16,
    Q8_0,
    Q4KM,
}

impl Preset {
    /// `general.file_type` (llama.cpp's `LlamaFileType`).
    pub fn file_type(self) -> u32 {
        match self {
            Preset::F16 => 1,
            Preset::Q8_0 => 7,
            Preset::Q4KM => 15,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Preset::F16 => "f16",
            Preset::Q8_0 => "q8_0",
            Preset::Q4KM => "q4_k_m",
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().as_str() {
            "f16" => Ok(Preset::F16),
            "q8_0" => Ok(Preset::Q8_0),
            "q4_k_m" => Ok(Preset::Q4KM),
            other => Err(Error::Unsupported(format!(
                "GGUF quantisation {other:?}; expected f16, q8_0 or q4_k_m"
            ))),
        }
    }
}

/// One stored tensor type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    F32,
    F16,
    Q8_0,
    Q5_0,
    Q4K,
    Q6K,
}

impl TensorType {
    /// GGML's type id as written in the tensor descriptor.
    pub fn ggml_id(self) -> u32 {
        match self {
            TensorType::F32 => 0,
            TensorType::F16 => 1,
            TensorType::Q5_0 => 6,
            TensorType::Q8_0 => 8,
            TensorType::Q4K => 12,
            TensorType::Q6K => 14,
        }
    }

    /// Elements per block.
    pub fn block_size(self) -> usize {
        match self {
            TensorType::F32 | TensorType::F16 => 1,
            TensorType::Q8_0 | TensorType::Q5_0 => 32,
            TensorType::Q4K | TensorType::Q6K => 256,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TensorType::F32 => "F32",
            TensorType::F16 => "F16",
            TensorType::Q8_0 => "Q8_0",
            TensorType::Q5_0 => "Q5_0",
            TensorType::Q4K => "Q4_K",
            TensorType::Q6K => "Q6_K",
        }
    }

    /// The type used instead when rows of `row_len` elements do not fill whole blocks.
    pub fn fitting(self, row_len: usize) -> TensorType {
        if row_len % self.block_size() == 0 {
            return self;
        }
        let fallback = match self {
            TensorType::Q4K => TensorType::Q5_0,
            TensorType::Q6K => TensorType::Q8_0,
            _ => TensorType::F16,
        };
        if fallback == self {
            TensorType::F16
        } else {
            fallback.fitting(row_len)
        }
    }

    /// Encodes `tensor` (any float dtype, PyTorch layout, rows along the last dimension).
    pub fn encode(self, tensor: &Tensor) -> Result<Vec<u8>> {
        let flat = tensor
            .to_device(&Device::Cpu)?
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?;
        let ggml = match self {
            TensorType::F32 => {
                let values = flat.to_vec1::<f32>()?;
                return Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect());
            }
            TensorType::F16 => {
                let values = flat.to_vec1::<f32>()?;
                return Ok(values
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect());
            }
            TensorType::Q8_0 => GgmlDType::Q8_0,
            TensorType::Q5_0 => GgmlDType::Q5_0,
            TensorType::Q4K => GgmlDType::Q4K,
            TensorType::Q6K => GgmlDType::Q6K,
        };
        let row_len = tensor.dims().last().copied().unwrap_or(1);
        let rows = flat.elem_count() / row_len.max(1);
        let matrix = flat.reshape((rows, row_len))?;
        let quantised = QTensor::quantize(&matrix, ggml)?;
        Ok(quantised.data()?.into_owned())
    }
}

/// What the exporter knows about a tensor when choosing its type.
#[derive(Debug, Clone, Copy)]
pub struct TensorRole {
    /// Block index for `blk.N.*` tensors.
    pub layer: Option<usize>,
    pub kind: Kind,
}

/// The tensor families the type rules distinguish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 1-D: norms, biases.
    Vector,
    TokenEmbedding,
    Output,
    AttnV,
    FfnDown,
    OtherMatrix,
}

/// llama.cpp's `use_more_bits`: the first and last eighth of the layers and every third
/// layer in between get the larger type.
pub fn use_more_bits(layer: usize, layers: usize) -> bool {
    let eighth = layers / 8;
    // Past the first disjunct `layer >= eighth`, so the subtraction cannot underflow.
    layer < eighth || layer >= 7 * layers / 8 || (layer - eighth) % 3 == 2
}

/// The stored type of one tensor under `preset`, before the row-length fallback.
///
/// `tied_output`: the model has no separate output matrix, so the token embedding doubles
/// as the output projection (and is treated as one).
pub fn choose(preset: Preset, role: TensorRole, layers: usize, tied_output: bool) -> TensorType {
    if role.kind == Kind::Vector {
        return TensorType::F32;
    }
    match preset {
        Preset::F16 => TensorType::F16,
        Preset::Q8_0 => TensorType::Q8_0,
        Preset::Q4KM => {
            let more_bits = role.layer.is_some_and(|l| use_more_bits(l, layers));
            match role.kind {
                Kind::Output => TensorType::Q6K,
                Kind::TokenEmbedding if tied_output => TensorType::Q6K,
                Kind::AttnV | Kind::FfnDown if more_bits => TensorType::Q6K,
                _ => TensorType::Q4K,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_bits_matches_llama_cpp_for_28_layers() {
        // n/8 = 3: layers 0..3, 24..28, and 3 + 2, 3 + 5, ...
        let chosen: Vec<usize> = (0..28).filter(|&l| use_more_bits(l, 28)).collect();
        assert_eq!(
            chosen,
            vec![0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27]
        );
    }

    #[test]
    fn q4_k_m_rules() {
        let role = |layer, kind| TensorRole { layer, kind };
        let q = |r| choose(Preset::Q4KM, r, 28, true);
        assert_eq!(q(role(None, Kind::TokenEmbedding)), TensorType::Q6K);
        assert_eq!(q(role(Some(0), Kind::AttnV)), TensorType::Q6K);
        assert_eq!(q(role(Some(4), Kind::AttnV)), TensorType::Q4K);
        assert_eq!(q(role(Some(5), Kind::FfnDown)), TensorType::Q6K);
        assert_eq!(q(role(Some(5), Kind::OtherMatrix)), TensorType::Q4K);
        assert_eq!(q(role(Some(5), Kind::Vector)), TensorType::F32);
        let untied = choose(Preset::Q4KM, role(None, Kind::TokenEmbedding), 28, false);
        assert_eq!(untied, TensorType::Q4K);
    }

    #[test]
    fn short_rows_fall_back_like_llama_cpp() {
        assert_eq!(TensorType::Q4K.fitting(2048), TensorType::Q4K);
        assert_eq!(TensorType::Q4K.fitting(64), TensorType::Q5_0);
        assert_eq!(TensorType::Q6K.fitting(64), TensorType::Q8_0);
        assert_eq!(TensorType::Q8_0.fitting(48), TensorType::F16);
        assert_eq!(TensorType::Q4K.fitting(16), TensorType::F16);
    }

    #[test]
    fn encoded_sizes_follow_block_layouts() {
        let t = Tensor::zeros((2, 256), candle_core::DType::F32, &Device::Cpu).unwrap();
        // bytes per block: Q8_0 34/32, Q5_0 22/32, Q4_K 144/256, Q6_K 210/256
        assert_eq!(TensorType::Q8_0.encode(&t).unwrap().len(), 2 * 8 * 34);
        assert_eq!(TensorType::Q5_0.encode(&t).unwrap().len(), 2 * 8 * 22);
        assert_eq!(TensorType::Q4K.encode(&t).unwrap().len(), 2 * 144);
        assert_eq!(TensorType::Q6K.encode(&t).unwrap().len(), 2 * 210);
        assert_eq!(TensorType::F16.encode(&t).unwrap().len(), 2 * 256 * 2);
    }
}
