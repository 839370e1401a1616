//! AdamW with decoupled weight decay and a state that can be saved and restored exactly
//! (candle-nn's optimiser keeps its moments private, so a resumed run could not continue it).

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use verdict_quant::optim8::QuantisedMoments;

use crate::{Error, Result};

/// AdamW hyper-parameters (PyTorch's defaults apart from the learning rate).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Keep the moments as block-wise 8-bit codes (bitsandbytes' `AdamW8bit`, about 2 bytes per
    /// parameter instead of 8) for variables of at least `min_8bit_size` values.
    pub eight_bit: bool,
    /// Smaller variables keep f32 moments, as in bitsandbytes (4096).
    pub min_8bit_size: usize,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            eight_bit: false,
            min_8bit_size: verdict_quant::optim8::MIN_8BIT_SIZE,
        }
    }
}

/// The optimiser over a fixed list of variables; moments are kept in f32, or as 8-bit codes
/// for large variables when `eight_bit` is set (then `first`/`second` hold empty tensors).
#[derive(Debug)]
pub struct AdamW {
    vars: Vec<Var>,
    first: Vec<Tensor>,
    second: Vec<Tensor>,
    quantised: Vec<Option<QuantisedMoments>>,
    steps: u64,
    config: AdamWConfig,
}

impl AdamW {
    pub fn new(vars: Vec<Var>, config: AdamWConfig) -> Result<Self> {
        let eight_bit = |v: &Var| config.eight_bit && v.elem_count() >= config.min_8bit_size;
        let zeros = |v: &Var| {
            let shape = if eight_bit(v) {
                vec![0]
            } else {
                v.dims().to_vec()
            };
            Tensor::zeros(shape, DType::F32, v.device())
        };
        let first = vars.iter().map(zeros).collect::<candle_core::Result<_>>()?;
        let second = vars.iter().map(zeros).collect::<candle_core::Result<_>>()?;
        let quantised = vars
            .iter()
            .map(|v| {
                eight_bit(v)
                    .then(|| QuantisedMoments::zeros(v.elem_count(), v.device()))
                    .transpose()
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(Self {
            vars,
            first,
            second,
            quantised,
            steps: 0,
            config,
        })
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Bytes the moments take (both of them, every variable).
    pub fn state_bytes(&self) -> usize {
        let full: usize = self
            .first
            .iter()
            .chain(&self.second)
            .map(|t| 4 * t.elem_count())
            .sum();
        full + self
            .quantised
            .iter()
            .flatten()
            .map(QuantisedMoments::bytes)
            .sum::<usize>()
    }

    /// One update with learning rate `lr`; `grads[i]` belongs to `vars[i]` (`None`: no
    /// gradient reached it, the variable still decays like PyTorch's AdamW skips it — here it
    /// is skipped too).
    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        if grads.len() != self.vars.len() {
            return Err(Error::Invalid(format!(
                "{} gradients for {} variables",
                grads.len(),
                self.vars.len()
            )));
        }
        self.steps += 1;
        let c = self.config;
        let t = self.steps as i32;
        let bias1 = 1.0 - c.beta1.powi(t);
        let bias2 = 1.0 - c.beta2.powi(t);
        let fused = verdict_models::nn::gpu::AdamWStep {
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            lr,
            weight_decay: c.weight_decay,
            step: self.steps,
        };
        for (i, grad) in grads.iter().enumerate() {
            let Some(grad) = grad else { continue };
            let var = &self.vars[i];
            let grad = grad.to_dtype(DType::F32)?;
            if self.quantised[i].is_none()
                && verdict_models::nn::gpu::adamw_update(
                    var.as_tensor(),
                    &grad,
                    &self.first[i],
                    &self.second[i],
                    &fused,
                )?
                .is_some()
            {
                // f32 CUDA variables: the same update in three launches, in place.
                continue;
            }
            let (first, second) = match &self.quantised[i] {
                Some(q) => {
                    let (m, v) = q.dequantize().map_err(|e| Error::Invalid(e.to_string()))?;
                    (m.reshape(var.shape())?, v.reshape(var.shape())?)
                }
                None => (self.first[i].clone(), self.second[i].clone()),
            };
            let m = ((&first * c.beta1)? + (&grad * (1.0 - c.beta1))?)?;
            let v = ((&second * c.beta2)? + (grad.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&m / bias1)? / ((&v / bias2)?.sqrt()? + c.eps)?)?;
            let theta = var.as_tensor().to_dtype(DType::F32)?;
            let decayed = (theta * (1.0 - lr * c.weight_decay))?;
            let next = (decayed - (update * lr)?)?;
            var.set(&next.to_dtype(var.dtype())?)?;
            match &mut self.quantised[i] {
                Some(q) => q.store(&m, &v).map_err(|e| Error::Invalid(e.to_string()))?,
                None => {
                    self.first[i] = m;
                    self.second[i] = v;
                }
            }
        }
        Ok(())
    }

    /// Writes the moments (`first.N`, `second.N`) and the step count to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = BTreeMap::new();
        for (i, (m, v)) in self.first.iter().zip(&self.second).enumerate() {
            match &self.quantised[i] {
                Some(q) => {
                    tensors.insert(format!("first_codes.{i}"), q.first_codes.clone());
                    tensors.insert(format!("first_absmax.{i}"), q.first_absmax.clone());
                    tensors.insert(format!("second_codes.{i}"), q.second_codes.clone());
                    tensors.insert(format!("second_absmax.{i}"), q.second_absmax.clone());
                }
                None => {
                    tensors.insert(format!("first.{i}"), m.clone());
                    tensors.insert(format!("second.{i}"), v.clone());
                }
            }
        }
        tensors.insert(
            "steps".into(),
            Tensor::new(&[self.steps as i64], &Device::Cpu)?,
        );
        Ok(verdict_lora::st::write(path, &tensors)?)
    }

    /// Restores what [`AdamW::save`] wrote, checking it fits the variables.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let device = self
            .vars
            .first()
            .map(|v| v.device().clone())
            .unwrap_or(Device::Cpu);
        let tensors = verdict_lora::st::read(path, &device)?;
        let bad = |message: String| Error::Checkpoint {
            path: path.to_path_buf(),
            message,
        };
        for i in 0..self.vars.len() {
            if self.quantised[i].is_some() {
                let part = |name: &str| {
                    let key = format!("{name}.{i}");
                    tensors
                        .get(&key)
                        .cloned()
                        .ok_or_else(|| bad(format!("missing {key}")))
                };
                let moments = QuantisedMoments::from_parts(
                    part("first_codes")?,
                    part("first_absmax")?,
                    part("second_codes")?,
                    part("second_absmax")?,
                )
                .map_err(|e| bad(e.to_string()))?;
                if moments.first_codes.elem_count() != self.vars[i].elem_count() {
                    return Err(bad(format!(
                        "8-bit moments {i} do not fit variable {:?}",
                        self.vars[i].dims()
                    )));
                }
                self.quantised[i] = Some(moments);
                continue;
            }
            for (name, slot) in [("first", &mut self.first), ("second", &mut self.second)] {
                let key = format!("{name}.{i}");
                let t = tensors
                    .get(&key)
                    .ok_or_else(|| bad(format!("missing {key}")))?;
                if t.dims() != self.vars[i].dims() {
                    return Err(bad(format!(
                        "{key} is {:?}, variable is {:?}",
                        t.dims(),
                        self.vars[i].dims()
                    )));
                }
                slot[i] = t.to_dtype(DType::F32)?;
            }
        }
        let steps = tensors
            .get("steps")
            .ok_or_else(|| bad("missing steps".into()))?
            .to_vec1::<i64>()?;
        self.steps = steps.first().copied().unwrap_or(0).max(0) as u64;
        Ok(())
    }
}

/// Scales gradients so that their global L2 norm is at most `max_norm`; returns the norm
/// before clipping (PyTorch's `clip_grad_norm_`).
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> Result<f64> {
    let mut total = 0.0f64;
    for grad in grads.iter().flatten() {
        total += grad
            .to_dtype(DType::F32)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f32>()? as f64;
    }
    let norm = total.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for grad in grads.iter_mut().flatten() {
            *grad = (&*grad * scale)?;
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::Optimizer;

    /// Same trajectory as candle-nn's AdamW (PyTorch's algorithm) on a small quadratic.
    #[test]
    fn matches_candle_adamw_and_restores_exactly() {
        let device = Device::Cpu;
        let start = Tensor::new(&[[1.0f32, -2.0], [0.5, 3.0]], &device).unwrap();
        let target = Tensor::new(&[[0.0f32, 1.0], [2.0, -1.0]], &device).unwrap();
        let loss = |v: &Var| {
            (v.as_tensor() - &target)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let ours_var = Var::from_tensor(&start).unwrap();
        let theirs_var = Var::from_tensor(&start).unwrap();
        let config = AdamWConfig::default();
        let mut ours = AdamW::new(vec![ours_var.clone()], config).unwrap();
        let params = candle_nn::ParamsAdamW {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        };
        let mut theirs = candle_nn::AdamW::new(vec![theirs_var.clone()], params).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for step in 0..20 {
            if step == 10 {
                // Save, scramble, restore: the run continues as if nothing happened.
                ours.save(&dir.path().join("opt.safetensors")).unwrap();
                ours = AdamW::new(vec![ours_var.clone()], config).unwrap();
                ours.load(&dir.path().join("opt.safetensors")).unwrap();
            }
            let grads = loss(&ours_var).backward().unwrap();
            ours.step(&[grads.get(ours_var.as_tensor()).cloned()], 0.1)
                .unwrap();
            theirs.backward_step(&loss(&theirs_var)).unwrap();
        }
        let diff = (ours_var.as_tensor() - theirs_var.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-6, "trajectories differ by {diff}");
        assert_eq!(ours.steps(), 20);
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let device = Device::Cpu;
        let mut grads = vec![
            Some(Tensor::new(&[3.0f32], &device).unwrap()),
            None,
            Some(Tensor::new(&[4.0f32], &device).unwrap()),
        ];
        let norm = clip_grad_norm(&mut grads, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-6);
        let clipped = clip_grad_norm(&mut grads, 0.0).unwrap();
        assert!((clipped - 1.0).abs() < 1e-5, "{clipped}");
    }
}
