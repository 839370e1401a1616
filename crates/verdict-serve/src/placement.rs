//! Where a served model runs: the device (`cpu`, `cuda`, `cuda:N`) and the precision of its
//! weights.
//!
//! Only Qwen3-VL checkpoints run on a GPU. A text baseline (TF-IDF + linear model) is sparse
//! CPU arithmetic with nothing for a GPU to do, so loading one with a CUDA placement is
//! refused rather than silently run on the CPU: whoever asked for a GPU learns at start-up
//! that it will not be used. The precision only applies to Qwen3-VL weights.

use verdict_models::{DType, Device};

use crate::error::{Result, ServeError};

/// Numeric precision of a Qwen3-VL model's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// bf16 on CUDA (half the memory and the tensor cores' native type), f32 on the CPU
    /// (where bf16 matrix products are slower than f32 ones).
    #[default]
    Auto,
    F32,
    Bf16,
    F16,
}

impl Precision {
    /// The weights' dtype on `device`.
    pub fn dtype(self, device: &Device) -> DType {
        match self {
            Self::Auto if device.is_cuda() => DType::BF16,
            Self::Auto | Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
            Self::F16 => DType::F16,
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = ServeError;

    fn from_str(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            "f16" => Ok(Self::F16),
            other => Err(ServeError::Config(format!(
                "unknown precision `{other}`: use auto, f32, bf16 or f16"
            ))),
        }
    }
}

/// Device and precision of the served model.
#[derive(Debug, Clone)]
pub struct Placement {
    pub device: Device,
    pub precision: Precision,
}

impl Default for Placement {
    fn default() -> Self {
        Self::cpu()
    }
}

impl Placement {
    /// The CPU in f32: what a model gets unless asked otherwise.
    pub fn cpu() -> Self {
        Self {
            device: Device::Cpu,
            precision: Precision::Auto,
        }
    }

    /// Opens the device named `device` (`cpu`, `cuda`, `cuda:N`). A build without the `cuda`
    /// feature refuses CUDA names, saying how to build one that accepts them.
    pub fn parse(device: &str, precision: Precision) -> Result<Self> {
        let device = verdict_models::parse_device(device)
            .map_err(|e| ServeError::Config(format!("--device: {e}")))?;
        Ok(Self { device, precision })
    }

    /// The weights' dtype.
    pub fn dtype(&self) -> DType {
        self.precision.dtype(&self.device)
    }

    pub fn is_cpu(&self) -> bool {
        self.device.is_cpu()
    }

    /// `cpu`, `cuda:0`: the device as users name it.
    pub fn device_name(&self) -> String {
        match self.device.location() {
            candle_core::DeviceLocation::Cpu => "cpu".to_string(),
            candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
            candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
        }
    }

    /// `cpu f32`, `cuda:0 bf16`: for logs and benchmark tables.
    pub fn describe(&self) -> String {
        format!("{} {}", self.device_name(), dtype_name(self.dtype()))
    }

    /// Refuses a GPU placement for a model that only runs on the CPU.
    pub(crate) fn require_cpu(&self, what: &str) -> std::result::Result<(), String> {
        if self.is_cpu() {
            return Ok(());
        }
        Err(format!(
            "{what} runs on the CPU only; `--device {}` does not apply to it (use `--device cpu`)",
            self.device_name()
        ))
    }
}

fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        DType::F64 => "f64",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_precision_is_f32_on_the_cpu_and_explicit_choices_hold() {
        assert_eq!(Precision::Auto.dtype(&Device::Cpu), DType::F32);
        assert_eq!(Precision::Bf16.dtype(&Device::Cpu), DType::BF16);
        assert_eq!(Precision::F16.dtype(&Device::Cpu), DType::F16);
        assert_eq!("BF16".parse::<Precision>().ok(), Some(Precision::Bf16));
        let error = "f8".parse::<Precision>().err().map(|e| e.to_string());
        assert!(error.is_some_and(|m| m.contains("unknown precision `f8`")));
    }

    #[test]
    fn cpu_parses_and_cuda_needs_a_cuda_build() {
        let placement = Placement::parse("cpu", Precision::Auto).expect("cpu");
        assert!(placement.is_cpu());
        assert_eq!(placement.describe(), "cpu f32");
        assert!(placement.require_cpu("a text baseline").is_ok());
        if !cfg!(feature = "cuda") {
            let error = Placement::parse("cuda:0", Precision::Auto)
                .err()
                .map(|e| e.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|m| m.starts_with("--device: ") && m.contains("--features cuda")),
                "{error:?}"
            );
        }
        let error = Placement::parse("gpu", Precision::Auto)
            .err()
            .map(|e| e.to_string());
        assert!(error.is_some_and(|m| m.contains("unknown device `gpu`")));
    }
}
