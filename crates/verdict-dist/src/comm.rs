//! Collective communication between the ranks of a data-parallel run.
//!
//! A [`Communicator`] is what a training loop needs and nothing more: its rank and world
//! size, all-reduce (sum, mean) of `f32` buffers, broadcast and barrier. Every rank must call
//! the same collectives in the same order with buffers of the same length, as with NCCL or
//! MPI. Implementations:
//! - [`LocalWorld`]: ranks as threads of one process sharing buckets, for tests on CPU;
//! - [`TcpWorld`]: ranks as processes (torchrun-style launch) exchanging buffers through
//!   rank 0 over TCP, for CPU runs and rendezvous;
//! - `NcclComm` (cargo feature `nccl`): NCCL through cudarc, one process per GPU.

use candle_core::{Device, Tensor};

use crate::error::{DistError, Result};

mod local;
#[cfg(feature = "nccl")]
pub mod nccl;
mod tcp;

pub use local::{LocalComm, LocalWorld};
pub use tcp::{TcpComm, TcpWorld};

/// The collectives a data-parallel rank uses.
pub trait Communicator {
    /// This rank, `0..world_size()`.
    fn rank(&self) -> usize;

    /// Number of ranks.
    fn world_size(&self) -> usize;

    /// Replaces `buffer` on every rank with the element-wise sum over all ranks.
    fn all_reduce_sum(&self, buffer: &mut [f32]) -> Result<()>;

    /// Replaces `buffer` on every rank with the element-wise mean over all ranks.
    fn all_reduce_mean(&self, buffer: &mut [f32]) -> Result<()> {
        self.all_reduce_sum(buffer)?;
        let scale = 1.0 / self.world_size() as f32;
        buffer.iter_mut().for_each(|x| *x *= scale);
        Ok(())
    }

    /// Replaces `buffer` on every rank with `root`'s `buffer`.
    fn broadcast(&self, buffer: &mut [f32], root: usize) -> Result<()>;

    /// Returns once every rank has called it.
    fn barrier(&self) -> Result<()>;

    /// Element-wise sum over all ranks of a tensor, as a new tensor of the same shape,
    /// dtype and device.
    ///
    /// The default goes through host memory as `f32`; a GPU implementation overrides it to
    /// reduce in device memory.
    ///
    /// # Shapes
    /// any shape in, the same shape out.
    fn all_reduce_sum_tensor(&self, tensor: &Tensor) -> Result<Tensor> {
        let dtype = tensor.dtype();
        let mut values = tensor
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        self.all_reduce_sum(&mut values)?;
        let device: &Device = tensor.device();
        Ok(Tensor::from_vec(values, tensor.shape(), device)?.to_dtype(dtype)?)
    }
}

/// Checks that `root` is a rank of `comm`'s world.
pub(crate) fn check_root(comm: &dyn Communicator, root: usize) -> Result<()> {
    if root >= comm.world_size() {
        return Err(DistError::Collective(format!(
            "broadcast root {root} is not a rank of a world of {}",
            comm.world_size()
        )));
    }
    Ok(())
}
