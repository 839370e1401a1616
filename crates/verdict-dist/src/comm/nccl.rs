//! NCCL collectives through cudarc (cargo feature `nccl`): one process per GPU, as launched by
//! torchrun; `LOCAL_RANK` picks the GPU.
//!
//! NCCL needs every rank to hold the same connection id, which rank 0 creates; it is handed
//! out over the TCP rendezvous at `MASTER_ADDR:MASTER_PORT` ([`TcpComm::broadcast_bytes`]),
//! the job torch's TCPStore does for `torch.distributed`.
//!
//! cudarc loads `libcuda` and `libnccl` when first used, so this builds without a GPU or a
//! CUDA toolkit. The [`Communicator`] methods take host buffers: they are copied to the GPU,
//! reduced there by NCCL and copied back. That costs two PCIe copies per bucket, small for
//! LoRA adapters (megabytes per step); reducing candle's CUDA tensors in place needs candle's
//! `cuda` feature and is the natural next step (a `CustomOp1` whose `cuda_fwd` calls
//! `Comm::all_reduce` on the tensor's `CudaSlice`, overriding `all_reduce_sum_tensor`).

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaStream};
use cudarc::nccl::{Comm, Id, ReduceOp};

use super::tcp::TcpComm;
use super::{check_root, Communicator};
use crate::error::{DistError, Result};
use crate::launch::LaunchEnv;

/// One rank of an NCCL world.
pub struct NcclComm {
    comm: Comm,
    stream: Arc<CudaStream>,
}

fn nccl_error(what: &str) -> impl Fn(cudarc::nccl::result::NcclError) -> DistError + '_ {
    move |e| DistError::Collective(format!("NCCL {what}: {e:?}"))
}

fn cuda_error(what: &str) -> impl Fn(cudarc::driver::DriverError) -> DistError + '_ {
    move |e| DistError::Collective(format!("CUDA {what}: {e:?}"))
}

impl NcclComm {
    /// Joins the NCCL world of `env` on GPU `env.local_rank`, exchanging NCCL's id through
    /// `rendezvous` (a [`crate::TcpWorld`] of the same launch).
    pub fn init(env: &LaunchEnv, rendezvous: &TcpComm) -> Result<Self> {
        let context = CudaContext::new(env.local_rank).map_err(cuda_error("opening the GPU"))?;
        let stream = context.default_stream();
        let mut bytes = Vec::new();
        if env.rank == 0 {
            let id = Id::new().map_err(nccl_error("creating the id"))?;
            bytes = id.internal().iter().map(|c| *c as u8).collect();
        }
        rendezvous.broadcast_bytes(&mut bytes, 0)?;
        let mut internal = [0 as std::ffi::c_char; 128];
        if bytes.len() != internal.len() {
            return Err(DistError::Collective(format!(
                "NCCL id of {} bytes received, expected 128",
                bytes.len()
            )));
        }
        for (slot, byte) in internal.iter_mut().zip(&bytes) {
            *slot = *byte as std::ffi::c_char;
        }
        let comm = Comm::from_rank(
            stream.clone(),
            env.rank,
            env.world_size,
            Id::uninit(internal),
        )
        .map_err(nccl_error("joining the world"))?;
        Ok(Self { comm, stream })
    }
}

impl Communicator for NcclComm {
    fn rank(&self) -> usize {
        self.comm.rank()
    }

    fn world_size(&self) -> usize {
        self.comm.world_size()
    }

    fn all_reduce_sum(&self, buffer: &mut [f32]) -> Result<()> {
        if buffer.is_empty() {
            return Ok(());
        }
        let mut device = self
            .stream
            .clone_htod(buffer)
            .map_err(cuda_error("copy to GPU"))?;
        self.comm
            .all_reduce_in_place(&mut device, &ReduceOp::Sum)
            .map_err(nccl_error("all-reduce"))?;
        self.stream
            .memcpy_dtoh(&device, buffer)
            .map_err(cuda_error("copy from GPU"))?;
        self.stream.synchronize().map_err(cuda_error("synchronize"))
    }

    fn broadcast(&self, buffer: &mut [f32], root: usize) -> Result<()> {
        check_root(self, root)?;
        if buffer.is_empty() {
            return Ok(());
        }
        let mut device = self
            .stream
            .clone_htod(buffer)
            .map_err(cuda_error("copy to GPU"))?;
        self.comm
            .broadcast_in_place(&mut device, root as i32)
            .map_err(nccl_error("broadcast"))?;
        self.stream
            .memcpy_dtoh(&device, buffer)
            .map_err(cuda_error("copy from GPU"))?;
        self.stream.synchronize().map_err(cuda_error("synchronize"))
    }

    fn barrier(&self) -> Result<()> {
        // NCCL has no barrier; a one-element all-reduce completes only when every rank joined.
        self.all_reduce_sum(&mut [0.0])
    }
}
