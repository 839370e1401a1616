//! AdamW with parameter groups (own learning rate and weight decay each), gradient
//! accumulation, and state that can be saved and restored so training resumes exactly.
//!
//! candle-nn's `AdamW` keeps its moments private, which would make a resumed run restart
//! them from zero; this one exposes them as named tensors.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, TensorId, Var};

use crate::{Error, Result};

/// Parameters optimised with one learning rate.
#[derive(Debug)]
pub struct ParamGroup {
    pub name: String,
    pub params: Vec<(String, Var)>,
    /// Peak learning rate; the schedule multiplies it.
    pub learning_rate: f64,
    pub weight_decay: f64,
}

impl ParamGroup {
    pub fn new(
        name: &str,
        params: Vec<(String, Var)>,
        learning_rate: f64,
        weight_decay: f64,
    ) -> Self {
        Self {
            name: name.to_string(),
            params,
            learning_rate,
            weight_decay,
        }
    }
}

/// Gradients summed over micro-batches.
#[derive(Debug, Default)]
pub struct Gradients {
    sums: HashMap<TensorId, Tensor>,
    micro_batches: usize,
}

impl Gradients {
    /// Adds the gradients of `vars` found in `store` (one micro-batch's backward pass).
    pub fn accumulate<'a>(
        &mut self,
        store: &GradStore,
        vars: impl IntoIterator<Item = &'a Var>,
    ) -> Result<()> {
        for var in vars {
            if let Some(grad) = store.get(var.as_tensor()) {
                let grad = grad.detach();
                let sum = match self.sums.remove(&var.id()) {
                    Some(previous) => (previous + grad)?,
                    None => grad,
                };
                self.sums.insert(var.id(), sum);
            }
        }
        self.micro_batches += 1;
        Ok(())
    }

    pub fn micro_batches(&self) -> usize {
        self.micro_batches
    }

    pub fn get(&self, var: &Var) -> Option<&Tensor> {
        self.sums.get(&var.id())
    }
}

/// Decoupled-weight-decay Adam (Loshchilov & Hutter), PyTorch's defaults.
#[derive(Debug)]
pub struct AdamW {
    groups: Vec<ParamGroup>,
    first: Vec<Vec<Tensor>>,
    second: Vec<Vec<Tensor>>,
    step: usize,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

impl AdamW {
    pub fn new(groups: Vec<ParamGroup>) -> Result<Self> {
        let zeros = |g: &ParamGroup| -> Result<Vec<Tensor>> {
            g.params
                .iter()
                .map(|(_, v)| Ok(v.as_tensor().zeros_like()?))
                .collect()
        };
        let first = groups.iter().map(zeros).collect::<Result<Vec<_>>>()?;
        let second = groups.iter().map(zeros).collect::<Result<Vec<_>>>()?;
        Ok(Self {
            groups,
            first,
            second,
            step: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        })
    }

    pub fn groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    pub fn steps_taken(&self) -> usize {
        self.step
    }

    /// One update from a single backward pass.
    pub fn step(&mut self, store: &GradStore, lr_multiplier: f64) -> Result<()> {
        let mut gradients = Gradients::default();
        let vars: Vec<Var> = self.vars();
        gradients.accumulate(store, vars.iter())?;
        self.step_accumulated(&gradients, lr_multiplier)
    }

    /// One update from accumulated micro-batch gradients (averaged over the micro-batches).
    pub fn step_accumulated(&mut self, gradients: &Gradients, lr_multiplier: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let correction1 = 1.0 - self.beta1.powi(t);
        let correction2 = 1.0 - self.beta2.powi(t);
        let scale = 1.0 / gradients.micro_batches().max(1) as f64;
        for (g, group) in self.groups.iter().enumerate() {
            let lr = group.learning_rate * lr_multiplier;
            for (p, (_, var)) in group.params.iter().enumerate() {
                let Some(grad) = gradients.get(var) else {
                    continue;
                };
                let grad = (grad * scale)?;
                let m = ((&self.first[g][p] * self.beta1)? + (&grad * (1.0 - self.beta1))?)?;
                let v = ((&self.second[g][p] * self.beta2)? + (grad.sqr()? * (1.0 - self.beta2))?)?;
                let m_hat = (&m / correction1)?;
                let v_hat = (&v / correction2)?;
                let update = (m_hat / (v_hat.sqrt()? + self.eps)?)?;
                let decayed = (var.as_tensor() * (1.0 - lr * group.weight_decay))?;
                var.set(&(decayed - (update * lr)?)?)?;
                self.first[g][p] = m;
                self.second[g][p] = v;
            }
        }
        Ok(())
    }

    fn vars(&self) -> Vec<Var> {
        self.groups
            .iter()
            .flat_map(|g| g.params.iter().map(|(_, v)| v.clone()))
            .collect()
    }

    /// Moments as named tensors (`{group}/{param}/m`, `.../v`) plus the step count.
    pub fn state(&self) -> (HashMap<String, Tensor>, usize) {
        let mut tensors = HashMap::new();
        for (g, group) in self.groups.iter().enumerate() {
            for (p, (name, _)) in group.params.iter().enumerate() {
                tensors.insert(format!("{}/{name}/m", group.name), self.first[g][p].clone());
                tensors.insert(
                    format!("{}/{name}/v", group.name),
                    self.second[g][p].clone(),
                );
            }
        }
        (tensors, self.step)
    }

    /// Restores what [`AdamW::state`] returned; every moment must be present and fit.
    pub fn restore(&mut self, tensors: &HashMap<String, Tensor>, step: usize) -> Result<()> {
        for (g, group) in self.groups.iter().enumerate() {
            for (p, (name, var)) in group.params.iter().enumerate() {
                for (suffix, slot) in [("m", &mut self.first[g][p]), ("v", &mut self.second[g][p])]
                {
                    let key = format!("{}/{name}/{suffix}", group.name);
                    let tensor = tensors
                        .get(&key)
                        .ok_or_else(|| Error::Config(format!("optimizer state lacks {key:?}")))?;
                    if tensor.dims() != var.dims() {
                        return Err(Error::Config(format!(
                            "optimizer state {key:?} has shape {:?}, parameter has {:?}",
                            tensor.dims(),
                            var.dims()
                        )));
                    }
                    *slot = tensor.clone();
                }
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// One AdamW step from PyTorch's `torch.optim.AdamW(lr=0.1, weight_decay=0.01)` on
    /// `p = [1, -2]`, `loss = sum(p^2)`: p' = p * (1 - lr * wd) - lr * sign(grad) (first step).
    #[test]
    fn first_step_matches_the_closed_form() -> Result<()> {
        let var = Var::new(&[1.0f32, -2.0], &Device::Cpu)?;
        let mut optimizer = AdamW::new(vec![ParamGroup::new(
            "g",
            vec![("p".into(), var.clone())],
            0.1,
            0.01,
        )])?;
        let loss = var.as_tensor().sqr()?.sum_all()?;
        optimizer.step(&loss.backward()?, 1.0)?;
        let got = var.as_tensor().to_dtype(DType::F64)?.to_vec1::<f64>()?;
        // m_hat = g, v_hat = g^2 -> update = g / (|g| + eps) ~ sign(g)
        let expected = [1.0 * (1.0 - 0.001) - 0.1, -2.0 * (1.0 - 0.001) + 0.1];
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-6, "{got:?} vs {expected:?}");
        }
        Ok(())
    }

    #[test]
    fn accumulated_micro_batches_equal_one_big_batch() -> Result<()> {
        let device = Device::Cpu;
        let xs = Tensor::new(
            &[[1.0f32, 2.0], [3.0, -1.0], [0.5, 0.5], [-2.0, 1.0]],
            &device,
        )?;
        let run = |micro: usize| -> Result<Vec<f32>> {
            let w = Var::new(&[0.3f32, -0.7], &device)?;
            let mut optimizer = AdamW::new(vec![ParamGroup::new(
                "g",
                vec![("w".into(), w.clone())],
                0.05,
                0.0,
            )])?;
            let mut gradients = Gradients::default();
            let per = 4 / micro;
            for i in 0..micro {
                let part = xs.narrow(0, i * per, per)?;
                let loss = part
                    .matmul(&w.as_tensor().unsqueeze(1)?)?
                    .sqr()?
                    .mean_all()?;
                gradients.accumulate(&loss.backward()?, [&w])?;
            }
            optimizer.step_accumulated(&gradients, 1.0)?;
            Ok(w.as_tensor().to_vec1::<f32>()?)
        };
        let whole = run(1)?;
        let split = run(2)?;
        for (a, b) in whole.iter().zip(&split) {
            assert!((a - b).abs() < 1e-6, "{whole:?} vs {split:?}");
        }
        Ok(())
    }
}
