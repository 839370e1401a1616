//! Data-parallel gradient averaging: after each rank's backward pass, every rank ends with the
//! gradient of the whole global batch, so identical optimiser steps keep the replicas equal.
//!
//! Gradients are flattened into buckets of about 25 MB (PyTorch DDP's default), one
//! all-reduce per bucket: few enough calls that latency does not dominate, small enough that
//! a GPU backend can reduce one bucket while the next is being packed.
//!
//! Ranks may hold different numbers of samples (the last batch of an epoch, a resumed run):
//! each rank passes its local sample count as `weight`, and the result is
//! `sum_r weight_r * grad_r / sum_r weight_r`, the gradient of the mean loss over all samples,
//! exactly what one process would compute on the global batch. A parameter that received no
//! gradient on a rank contributes zeros there; it stays `None` only if no rank produced one.
//!
//! Overlap with the backward pass (reducing early buckets while later layers still
//! differentiate) needs per-parameter "gradient ready" hooks; candle computes the whole
//! backward pass in one call, so reduction starts after it. For LoRA the reduced gradients are
//! small (adapters and heads only), which keeps that serial part short.

use std::ops::Range;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Shape, Tensor, Var};

use crate::comm::Communicator;
use crate::error::{DistError, Result};

/// PyTorch DDP's default bucket size.
pub const DEFAULT_BUCKET_BYTES: usize = 25 * 1024 * 1024;

#[derive(Debug, Clone)]
struct Entry {
    shape: Shape,
    dtype: DType,
    elements: usize,
}

/// The fixed bucket layout of a list of trainable parameters. Every rank builds it from the
/// same parameters in the same order, which is what makes the flattened buffers line up.
#[derive(Debug, Clone)]
pub struct GradientBuckets {
    entries: Vec<Entry>,
    buckets: Vec<Range<usize>>,
    device: Device,
}

/// What one averaging call saw over all ranks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Averaged {
    /// Sum of the ranks' weights (the global number of samples when weights are counts).
    pub total_weight: f64,
    pub buckets: usize,
}

impl GradientBuckets {
    /// Layout for `vars` with buckets of about `bucket_bytes` (counted as `f32`, the dtype
    /// of the reduction). A parameter larger than a bucket gets a bucket of its own.
    pub fn new(vars: &[Var], bucket_bytes: usize) -> Self {
        let device = vars
            .first()
            .map(|v| v.device().clone())
            .unwrap_or(Device::Cpu);
        let shapes = vars
            .iter()
            .map(|v| (v.shape().clone(), v.dtype()))
            .collect();
        Self::from_shapes(shapes, device, bucket_bytes)
    }

    pub fn from_shapes(shapes: Vec<(Shape, DType)>, device: Device, bucket_bytes: usize) -> Self {
        let entries: Vec<Entry> = shapes
            .into_iter()
            .map(|(shape, dtype)| Entry {
                elements: shape.elem_count(),
                shape,
                dtype,
            })
            .collect();
        let mut buckets = Vec::new();
        let (mut start, mut bytes) = (0, 0);
        for (index, entry) in entries.iter().enumerate() {
            bytes += entry.elements * 4;
            if bytes >= bucket_bytes.max(1) {
                buckets.push(start..index + 1);
                start = index + 1;
                bytes = 0;
            }
        }
        if start < entries.len() {
            buckets.push(start..entries.len());
        }
        Self {
            entries,
            buckets,
            device,
        }
    }

    /// Parameter index ranges, one per bucket.
    pub fn buckets(&self) -> &[Range<usize>] {
        &self.buckets
    }

    /// Replaces `grads` (one slot per parameter, in layout order) with their weighted average
    /// over all ranks. Every rank must call this at the same point with the same layout.
    ///
    /// # Shapes
    /// `grads[i]`: the shape of parameter `i`, or `None`; same shapes out.
    pub fn average(
        &self,
        comm: &dyn Communicator,
        grads: &mut [Option<Tensor>],
        weight: f64,
    ) -> Result<Averaged> {
        if grads.len() != self.entries.len() {
            return Err(DistError::Collective(format!(
                "{} gradients for a layout of {} parameters",
                grads.len(),
                self.entries.len()
            )));
        }
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(DistError::Collective(format!(
                "rank {} passed weight {weight}; weights are sample counts (>= 0)",
                comm.rank()
            )));
        }
        for (index, (grad, entry)) in grads.iter().zip(&self.entries).enumerate() {
            if let Some(grad) = grad {
                if grad.shape() != &entry.shape {
                    return Err(DistError::Collective(format!(
                        "gradient {index} has shape {:?}, its parameter {:?}",
                        grad.shape(),
                        entry.shape
                    )));
                }
            }
        }
        // One small reduction first: the total weight and which parameters have gradients.
        let mut header = Vec::with_capacity(grads.len() + 1);
        header.push(weight as f32);
        header.extend(grads.iter().map(|g| if g.is_some() { 1.0 } else { 0.0 }));
        comm.all_reduce_sum(&mut header)?;
        let total_weight = header[0] as f64;
        if total_weight <= 0.0 {
            grads.iter_mut().for_each(|g| *g = None);
            return Ok(Averaged {
                total_weight,
                buckets: 0,
            });
        }
        let mut reduced = 0;
        for bucket in &self.buckets {
            if bucket.clone().all(|i| header[i + 1] == 0.0) {
                continue;
            }
            let mut parts = Vec::with_capacity(bucket.len());
            for index in bucket.clone() {
                let entry = &self.entries[index];
                parts.push(match &grads[index] {
                    Some(grad) => grad
                        .flatten_all()?
                        .to_dtype(DType::F32)?
                        .affine(weight, 0.0)?,
                    None => Tensor::zeros(entry.elements, DType::F32, &self.device)?,
                });
            }
            let flat = Tensor::cat(&parts, 0)?;
            let summed = comm.all_reduce_sum_tensor(&flat)?;
            let mean = summed.affine(1.0 / total_weight, 0.0)?;
            let mut offset = 0;
            for index in bucket.clone() {
                let entry = &self.entries[index];
                grads[index] = if header[index + 1] > 0.0 {
                    Some(
                        mean.narrow(0, offset, entry.elements)?
                            .reshape(entry.shape.clone())?
                            .to_dtype(entry.dtype)?,
                    )
                } else {
                    None
                };
                offset += entry.elements;
            }
            reduced += 1;
        }
        Ok(Averaged {
            total_weight,
            buckets: reduced,
        })
    }

    /// [`GradientBuckets::average`] for a candle-nn `GradStore` (optimisers of candle-nn take
    /// one): the gradients of `vars` are averaged in place.
    pub fn average_grad_store(
        &self,
        comm: &dyn Communicator,
        vars: &[Var],
        store: &mut GradStore,
        weight: f64,
    ) -> Result<Averaged> {
        let mut grads: Vec<Option<Tensor>> =
            vars.iter().map(|v| store.remove(v.as_tensor())).collect();
        let averaged = self.average(comm, &mut grads, weight)?;
        for (var, grad) in vars.iter().zip(grads) {
            if let Some(grad) = grad {
                store.insert(var.as_tensor(), grad);
            }
        }
        Ok(averaged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_group_consecutive_parameters_by_size() {
        let shapes = [10usize, 10, 30, 5, 1]
            .iter()
            .map(|n| (Shape::from(*n), DType::F32))
            .collect();
        // 80 bytes per bucket: 10+10 = 80 bytes closes one, 30 alone exceeds, 5+1 rest.
        let layout = GradientBuckets::from_shapes(shapes, Device::Cpu, 80);
        assert_eq!(layout.buckets(), &[0..2, 2..3, 3..5]);
        let all = GradientBuckets::from_shapes(
            vec![(Shape::from(3), DType::F32)],
            Device::Cpu,
            DEFAULT_BUCKET_BYTES,
        );
        assert_eq!(all.buckets().len(), 1);
        assert_eq!(all.buckets()[0], 0..1);
    }
}
