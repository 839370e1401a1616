//! [`LoraFactory`]: the linear-layer constructor that attaches adapters while a model builds.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use verdict_models::nn::{DefaultLinearFactory, LinearFactory, LinearLayer, LinearSpec};

use crate::config::{LoraConfig, Selector};
use crate::layer::{Adapter, LoraLinear, RngState, Shared};
use crate::peft::AdapterTensors;
use crate::{Error, Result};

/// Builds every linear layer of a model through a base factory and wraps the selected ones
/// with a LoRA adapter.
///
/// Pass it (as `Arc<dyn LinearFactory>`) to a model constructor such as
/// `Qwen3VL::load(dir, dtype, device, Some(factory.clone()))`; afterwards
/// [`LoraFactory::trainable_vars`] are the only variables to optimise. Building a second model
/// with the same factory reuses the same adapter variables, so the two share them.
pub struct LoraFactory {
    config: LoraConfig,
    selector: Selector,
    device: Device,
    dtype: DType,
    seed: u64,
    base: Arc<dyn LinearFactory>,
    adapters: Mutex<BTreeMap<String, Adapter>>,
    /// Adapter tensors read from a file: when present, exactly these layers are adapted.
    loaded: Option<Mutex<AdapterTensors>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LoraFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoraFactory")
            .field("config", &self.config)
            .field("dtype", &self.dtype)
            .field("adapters", &self.adapted_paths())
            .finish()
    }
}

impl LoraFactory {
    /// Fresh adapters (`A` random, `B` zero, so the model starts as the base model) with
    /// variables of `dtype` on `device`; seed 0 for `A` and for dropout.
    pub fn new(config: LoraConfig, device: &Device, dtype: DType) -> Result<Arc<Self>> {
        Self::with_seed(config, device, dtype, 0)
    }

    /// As [`LoraFactory::new`] with an explicit seed for `A`'s initialisation and dropout.
    pub fn with_seed(
        config: LoraConfig,
        device: &Device,
        dtype: DType,
        seed: u64,
    ) -> Result<Arc<Self>> {
        Ok(Arc::new(Self::build_factory(
            config, device, dtype, seed, None,
        )?))
    }

    /// Wraps layers built by `base` (another factory, e.g. a quantised one) instead of plain
    /// dense layers.
    pub fn with_base_factory(
        config: LoraConfig,
        device: &Device,
        dtype: DType,
        seed: u64,
        base: Arc<dyn LinearFactory>,
    ) -> Result<Arc<Self>> {
        let mut factory = Self::build_factory(config, device, dtype, seed, None)?;
        factory.base = base;
        Ok(Arc::new(factory))
    }

    /// Adapters read from a PEFT adapter directory (`adapter_config.json` +
    /// `adapter_model.safetensors`); the layers named in the file are adapted, nothing else.
    /// After building the model, call [`LoraFactory::ensure_all_loaded`].
    pub fn load_peft(dir: &Path, device: &Device, dtype: DType) -> Result<Arc<Self>> {
        let (config, tensors) = crate::peft::read_adapter(dir, device)?;
        Ok(Arc::new(Self::build_factory(
            config,
            device,
            dtype,
            0,
            Some(tensors),
        )?))
    }

    fn build_factory(
        config: LoraConfig,
        device: &Device,
        dtype: DType,
        seed: u64,
        loaded: Option<AdapterTensors>,
    ) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            selector: config.selector()?,
            config,
            device: device.clone(),
            dtype,
            seed,
            base: Arc::new(DefaultLinearFactory),
            adapters: Mutex::new(BTreeMap::new()),
            loaded: loaded.map(Mutex::new),
            shared: Arc::new(Shared::new(seed)),
        })
    }

    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// Checkpoint paths of the adapted layers, sorted.
    pub fn adapted_paths(&self) -> Vec<String> {
        self.lock_adapters().keys().cloned().collect()
    }

    /// Every adapter by layer path, sorted by path.
    pub fn adapters(&self) -> Vec<(String, Adapter)> {
        self.lock_adapters()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The variables to optimise: `A` then `B` of every adapter, in path order.
    pub fn trainable_vars(&self) -> Vec<Var> {
        self.lock_adapters()
            .values()
            .flat_map(|a| [a.a.clone(), a.b.clone()])
            .collect()
    }

    /// Number of trainable scalars.
    pub fn num_trainable_parameters(&self) -> usize {
        self.trainable_vars().iter().map(|v| v.elem_count()).sum()
    }

    /// Dropout is applied only while training is on (off after construction).
    pub fn set_training(&self, training: bool) {
        self.shared.set_training(training);
    }

    /// Position of the dropout random stream, for checkpoints.
    pub fn rng_state(&self) -> RngState {
        self.shared.rng_state()
    }

    pub fn set_rng_state(&self, state: RngState) {
        self.shared.set_rng_state(state);
    }

    /// Fails if adapter tensors read by [`LoraFactory::load_peft`] found no layer of the model
    /// (an adapter for another model, or a model built with fewer layers).
    pub fn ensure_all_loaded(&self) -> Result<()> {
        let Some(loaded) = &self.loaded else {
            return Ok(());
        };
        let adapters = self.lock_adapters();
        let loaded = loaded.lock().unwrap_or_else(|e| e.into_inner());
        let missing: Vec<&String> = loaded
            .keys()
            .filter(|k| !adapters.contains_key(*k))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::Mismatch(format!(
                "{} adapter layer(s) not found in the model, e.g. {}",
                missing.len(),
                missing[0]
            )))
        }
    }

    /// Writes the adapters in PEFT's format into `dir` (see [`crate::peft`]).
    pub fn save_peft(&self, dir: &Path, base_model_name: &str) -> Result<()> {
        crate::peft::save(self, dir, base_model_name)
    }

    /// Overwrites the adapter values with those saved in a PEFT adapter directory (resuming,
    /// restoring the best checkpoint). Every adapter of the model must be in the file.
    pub fn restore_peft_weights(&self, dir: &Path) -> Result<()> {
        let (_, tensors) = crate::peft::read_adapter(dir, &self.device)?;
        let adapters = self.lock_adapters();
        for (path, adapter) in adapters.iter() {
            let (a, b) = tensors.get(path).ok_or_else(|| {
                Error::Mismatch(format!("{} has no adapter for {path}", dir.display()))
            })?;
            adapter.a.set(&a.to_dtype(self.dtype)?)?;
            adapter.b.set(&b.to_dtype(self.dtype)?)?;
        }
        Ok(())
    }

    fn lock_adapters(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Adapter>> {
        self.adapters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The adapter for `spec`, creating it on first use; `None` if the layer is not adapted.
    fn adapter_for(&self, spec: &LinearSpec) -> Result<Option<Adapter>> {
        let mut adapters = self.lock_adapters();
        if let Some(existing) = adapters.get(&spec.path) {
            let (r, in_dim) = existing.a.dims2()?;
            let (out_dim, _) = existing.b.dims2()?;
            if (in_dim, out_dim) != (spec.in_dim, spec.out_dim) {
                return Err(Error::Mismatch(format!(
                    "{}: adapter is {in_dim} -> {out_dim} (rank {r}), layer is {} -> {}",
                    spec.path, spec.in_dim, spec.out_dim
                )));
            }
            return Ok(Some(existing.clone()));
        }
        let (a, b) = match &self.loaded {
            Some(loaded) => {
                let loaded = loaded.lock().unwrap_or_else(|e| e.into_inner());
                let Some((a, b)) = loaded.get(&spec.path) else {
                    return Ok(None);
                };
                check_loaded_shape(spec, a, b)?;
                (a.to_dtype(self.dtype)?, b.to_dtype(self.dtype)?)
            }
            None if self.selector.selects(&spec.path) => self.init(spec)?,
            None => return Ok(None),
        };
        let adapter = Adapter {
            a: Var::from_tensor(&a)?,
            b: Var::from_tensor(&b)?,
            scaling: self.config.scaling(),
        };
        adapters.insert(spec.path.clone(), adapter.clone());
        Ok(Some(adapter))
    }

    /// PEFT's default initialisation: `A ~ U(-1/sqrt(in), 1/sqrt(in))` (Kaiming-uniform with
    /// `a = sqrt(5)`), `B = 0`. Each layer's stream is seeded from its path, so the values do
    /// not depend on build order.
    fn init(&self, spec: &LinearSpec) -> Result<(Tensor, Tensor)> {
        let bound = 1.0 / (spec.in_dim as f32).sqrt();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ fnv1a(&spec.path));
        let values: Vec<f32> = (0..self.config.r * spec.in_dim)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let a = Tensor::from_vec(values, (self.config.r, spec.in_dim), &self.device)?
            .to_dtype(self.dtype)?;
        let b = Tensor::zeros((spec.out_dim, self.config.r), self.dtype, &self.device)?;
        Ok((a, b))
    }
}

fn check_loaded_shape(spec: &LinearSpec, a: &Tensor, b: &Tensor) -> Result<()> {
    let (r, in_dim) = a.dims2()?;
    let (out_dim, r_b) = b.dims2()?;
    if r != r_b || in_dim != spec.in_dim || out_dim != spec.out_dim {
        return Err(Error::Mismatch(format!(
            "{}: lora_A is {:?} and lora_B is {:?}, but the layer maps {} -> {}",
            spec.path,
            a.dims(),
            b.dims(),
            spec.in_dim,
            spec.out_dim
        )));
    }
    Ok(())
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl LinearFactory for LoraFactory {
    fn build(
        &self,
        spec: &LinearSpec,
        vb: candle_nn::VarBuilder,
    ) -> verdict_models::Result<Arc<dyn LinearLayer>> {
        let base = self.base.build(spec, vb)?;
        let adapter = self
            .adapter_for(spec)
            .map_err(|e| verdict_models::Error::Config(e.to_string()))?;
        Ok(match adapter {
            Some(adapter) => Arc::new(LoraLinear::new(
                base,
                adapter,
                self.config.dropout,
                self.shared.clone(),
            )),
            None => base,
        })
    }
}
