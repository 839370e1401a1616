//! A base checkpoint loaded for fine-tuning: the model with adapters attached, its
//! preprocessor, and the adapter factory whose variables the optimiser trains.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use verdict_lora::{LoraConfig, LoraFactory};
use verdict_models::qwen3_vl::inputs::Preprocessor;
use verdict_models::qwen3_vl::Qwen3VL;
use verdict_models::{DType, Device};

use crate::Result;

pub struct Session {
    pub model: Qwen3VL,
    pub factory: Arc<LoraFactory>,
    pub preprocessor: Preprocessor,
    pub base_dir: PathBuf,
}

impl Session {
    /// Loads `base_dir` in `dtype` with fresh adapters (f32 variables, seeded by `seed`).
    pub fn load(
        base_dir: &Path,
        lora: &LoraConfig,
        device: &Device,
        dtype: DType,
        seed: u64,
    ) -> Result<Self> {
        Self::load_quantised(base_dir, lora, device, dtype, seed, None)
    }

    /// As [`Session::load`], with the base linear layers stored as `quant` (NF4 or int8) under
    /// the adapters; the memory they take is logged.
    pub fn load_quantised(
        base_dir: &Path,
        lora: &LoraConfig,
        device: &Device,
        dtype: DType,
        seed: u64,
        quant: Option<verdict_quant::Scheme>,
    ) -> Result<Self> {
        let quantiser = quant.map(verdict_quant::QuantFactory::new);
        let factory = match &quantiser {
            Some(q) => {
                LoraFactory::with_base_factory(lora.clone(), device, DType::F32, seed, q.clone())?
            }
            None => LoraFactory::with_seed(lora.clone(), device, DType::F32, seed)?,
        };
        let model = Qwen3VL::load(base_dir, dtype, device, Some(factory.clone()))?;
        if let Some(q) = &quantiser {
            tracing::info!(scheme = ?q.scheme(), "quantised base: {}", q.report());
        }
        if factory.adapted_paths().is_empty() {
            return Err(crate::Error::Invalid(format!(
                "target_modules {:?} selects no layer of {}",
                lora.target_modules,
                base_dir.display()
            )));
        }
        Ok(Self {
            model,
            factory,
            preprocessor: Preprocessor::from_dir(base_dir)?,
            base_dir: base_dir.to_path_buf(),
        })
    }

    /// Name recorded as `base_model_name_or_path` in saved adapters.
    pub fn base_name(&self) -> String {
        self.base_dir.display().to_string()
    }
}
