//! Checks the NCCL communicator on real GPUs: every rank all-reduces, broadcasts, meets at a
//! barrier and averages candle gradients through `GradientBuckets`, then compares with the
//! values it can compute alone. Launch one process per GPU:
//!
//! ```text
//! cargo build -p verdict-dist --features nccl --example nccl_check
//! torchrun --standalone --nproc-per-node <GPUs> --no-python target/debug/examples/nccl_check
//! ```
//! Prints one JSON line per rank; exits non-zero on a mismatch.

use std::time::Duration;

use candle_core::{Device, Tensor, Var};
use verdict_dist::comm::nccl::NcclComm;
use verdict_dist::{Communicator, GradientBuckets, LaunchEnv, TcpWorld};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = LaunchEnv::from_env()?.unwrap_or_else(LaunchEnv::single);
    let rendezvous = TcpWorld::connect(&env, Duration::from_secs(120))?;
    let comm = NcclComm::init(&env, &rendezvous)?;
    let (rank, world) = (comm.rank(), comm.world_size());

    let n = 1 << 20;
    let mut buffer = vec![(rank + 1) as f32; n];
    comm.all_reduce_sum(&mut buffer)?;
    let expected_sum = (world * (world + 1) / 2) as f32;
    let sum_ok = buffer.iter().all(|x| *x == expected_sum);

    let mut value = vec![rank as f32 * 10.0; 3];
    comm.broadcast(&mut value, world - 1)?;
    let broadcast_ok = value.iter().all(|x| *x == (world - 1) as f32 * 10.0);
    comm.barrier()?;

    // Gradients weighted by per-rank sample counts rank + 1: the average of rank * (rank + 1)
    // over the total weight.
    let vars = vec![Var::zeros((4, 3), candle_core::DType::F32, &Device::Cpu)?];
    let buckets = GradientBuckets::new(&vars, verdict_dist::DEFAULT_BUCKET_BYTES);
    let mut grads = vec![Some(Tensor::full(rank as f32, (4, 3), &Device::Cpu)?)];
    buckets.average(&comm, &mut grads, (rank + 1) as f64)?;
    let weights: f64 = (1..=world).map(|w| w as f64).sum();
    let expected: f64 = (0..world).map(|r| (r * (r + 1)) as f64).sum::<f64>() / weights;
    let got = grads[0]
        .as_ref()
        .ok_or("gradient lost")?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let average_ok = got.iter().all(|x| (*x as f64 - expected).abs() < 1e-5);

    println!(
        "{}",
        serde_json::json!({
            "rank": rank, "world_size": world, "all_reduce": sum_ok,
            "broadcast": broadcast_ok, "gradient_average": average_ok,
        })
    );
    if !(sum_ok && broadcast_ok && average_ok) {
        return Err("NCCL collectives returned wrong values".into());
    }
    Ok(())
}
