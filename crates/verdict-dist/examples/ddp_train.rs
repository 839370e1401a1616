//! A torchrun-style data-parallel training program: every process reads its place from
//! `RANK`/`WORLD_SIZE`/`LOCAL_RANK`/`LOCAL_WORLD_SIZE`/`MASTER_ADDR`/`MASTER_PORT`, joins the
//! world over TCP (the CPU communicator), trains a small MLP with averaged gradients, and
//! rank 0 alone writes checkpoints. Resuming works with a different number of processes.
//!
//! ```text
//! cargo build -p verdict-dist --example ddp_train
//! torchrun --standalone --nproc-per-node 2 --no-python target/debug/examples/ddp_train --steps 6 --out /tmp/ddp
//! torchrun --standalone --nproc-per-node 4 --no-python target/debug/examples/ddp_train --steps 12 --out /tmp/ddp --resume
//! ```
//! (`deploy/torchrun/launch.sh` does the same without torchrun.) Rank 0 prints one JSON line
//! per step with the global-batch loss; the curve is the same for any number of processes.

use std::path::PathBuf;
use std::time::Duration;

use candle_core::{Device, Tensor, Var};
use candle_nn::{Optimizer, SGD};
use verdict_dist::checkpoint::write_on_rank_zero;
use verdict_dist::{BatchLayout, Communicator, GradientBuckets, LaunchEnv, Progress, TcpWorld};

const SAMPLES: usize = 64;
const GLOBAL_BATCH: usize = 16;
const MICRO_BATCH: usize = 2;

struct Options {
    steps: u64,
    out: PathBuf,
    resume: bool,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        steps: 8,
        out: PathBuf::from("ddp-run"),
        resume: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--steps" => {
                let value = args.next().ok_or("--steps needs a value")?;
                options.steps = value
                    .parse()
                    .map_err(|_| format!("--steps `{value}` is not a number"))?;
            }
            "--out" => options.out = PathBuf::from(args.next().ok_or("--out needs a folder")?),
            "--resume" => options.resume = true,
            other => {
                return Err(format!(
                    "unknown argument `{other}` (known: --steps N, --out DIR, --resume)"
                ))
            }
        }
    }
    Ok(options)
}

fn sample(i: usize) -> ([f32; 3], f32) {
    let t = i as f32;
    let x = [(t * 0.7).sin(), (t * 0.3).cos(), t / SAMPLES as f32 - 0.5];
    (x, (2.0 * x[0] - x[1]).tanh() + 0.3 * x[2])
}

/// Sum (not mean) of squared errors over `samples`, so ranks can add their parts.
///
/// # Shapes
/// inputs `(n, 3)`, hidden `(n, 16)`, output `(n, 1)`; scalar loss.
fn loss_sum(vars: &[Var], samples: &[usize]) -> candle_core::Result<Tensor> {
    let (xs, ys): (Vec<[f32; 3]>, Vec<f32>) = samples.iter().map(|&i| sample(i)).unzip();
    let n = samples.len();
    let inputs = Tensor::from_vec(xs.concat(), (n, 3), &Device::Cpu)?;
    let targets = Tensor::from_vec(ys, (n, 1), &Device::Cpu)?;
    let hidden = inputs
        .matmul(&vars[0].t()?)?
        .broadcast_add(vars[1].as_tensor())?
        .tanh()?;
    let output = hidden
        .matmul(&vars[2].t()?)?
        .broadcast_add(vars[3].as_tensor())?;
    (output - targets)?.sqr()?.sum_all()
}

fn init() -> candle_core::Result<Vec<Var>> {
    let values = |n: usize, salt: f32| -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 + salt) * 1.37).sin() * 0.5)
            .collect()
    };
    Ok(vec![
        Var::from_vec(values(48, 0.1), (16, 3), &Device::Cpu)?,
        Var::from_vec(values(16, 0.2), 16, &Device::Cpu)?,
        Var::from_vec(values(16, 0.3), (1, 16), &Device::Cpu)?,
        Var::from_vec(values(1, 0.4), 1, &Device::Cpu)?,
    ])
}

fn epoch_order(epoch: usize) -> Vec<usize> {
    (0..SAMPLES)
        .map(|i| (i * 13 + epoch * 7) % SAMPLES)
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = options()?;
    let env = LaunchEnv::from_env()?.unwrap_or_else(LaunchEnv::single);
    let comm = TcpWorld::connect(&env, Duration::from_secs(60))?;
    let vars = init()?;
    let checkpoint = options.out.join("checkpoint.json");

    // Rank 0 reads the checkpoint and broadcasts it: parameters and progress.
    let mut progress = Progress {
        step: 0,
        epoch: 0,
        position: 0,
        global_batch: GLOBAL_BATCH,
        world_size: env.world_size,
    };
    if options.resume {
        let count: usize = vars.iter().map(|v| v.elem_count()).sum();
        let mut state = vec![0f32; count + 3];
        if comm.rank() == 0 {
            let text = std::fs::read_to_string(&checkpoint)
                .map_err(|e| format!("{}: {e}", checkpoint.display()))?;
            let saved: serde_json::Value = serde_json::from_str(&text)?;
            let saved_progress: Progress = serde_json::from_value(saved["progress"].clone())?;
            let params: Vec<f32> = serde_json::from_value(saved["params"].clone())?;
            state[..count].copy_from_slice(&params);
            state[count] = saved_progress.step as f32;
            state[count + 1] = saved_progress.epoch as f32;
            state[count + 2] = saved_progress.position as f32;
            progress = Progress {
                world_size: saved_progress.world_size,
                ..saved_progress
            };
        }
        comm.broadcast(&mut state, 0)?;
        let mut offset = 0;
        for var in &vars {
            let n = var.elem_count();
            var.set(&Tensor::from_slice(
                &state[offset..offset + n],
                var.shape(),
                &Device::Cpu,
            )?)?;
            offset += n;
        }
        progress.step = state[count] as u64;
        progress.epoch = state[count + 1] as usize;
        progress.position = state[count + 2] as usize;
    }
    let layout = BatchLayout::resume(&progress, env.world_size, MICRO_BATCH)?;
    let buckets = GradientBuckets::new(&vars, verdict_dist::DEFAULT_BUCKET_BYTES);
    let mut optimizer = SGD::new(vars.clone(), 0.05)?;

    while progress.step < options.steps {
        let order = epoch_order(progress.epoch);
        let mine = layout.rank_samples(&order, progress.position, comm.rank());
        let mut grads: Vec<Option<Tensor>> = vec![None; vars.len()];
        let mut local_loss = 0f32;
        for micro in mine.chunks(MICRO_BATCH) {
            let loss = loss_sum(&vars, micro)?;
            local_loss += loss.to_scalar::<f32>()?;
            let store = (loss / mine.len() as f64)?.backward()?;
            for (slot, var) in grads.iter_mut().zip(&vars) {
                if let Some(g) = store.get(var.as_tensor()) {
                    *slot = Some(match slot.take() {
                        Some(sum) => (sum + g)?,
                        None => g.clone(),
                    });
                }
            }
        }
        let averaged = buckets.average(&comm, &mut grads, mine.len() as f64)?;
        let mut total_loss = [local_loss];
        comm.all_reduce_sum(&mut total_loss)?;
        let mut store = Tensor::zeros((), candle_core::DType::F32, &Device::Cpu)?.backward()?;
        for (var, grad) in vars.iter().zip(grads) {
            if let Some(grad) = grad {
                store.insert(var.as_tensor(), grad);
            }
        }
        optimizer.step(&store)?;
        progress.step += 1;
        progress.position += layout.global_batch;
        if progress.position >= SAMPLES {
            progress.epoch += 1;
            progress.position = 0;
        }
        if comm.rank() == 0 {
            println!(
                "{}",
                serde_json::json!({
                    "step": progress.step,
                    "loss": total_loss[0] as f64 / averaged.total_weight,
                    "world_size": env.world_size,
                })
            );
        }
    }

    let params: Vec<f32> = vars
        .iter()
        .map(|v| v.flatten_all()?.to_vec1::<f32>())
        .collect::<candle_core::Result<Vec<_>>>()?
        .concat();
    let progress = Progress {
        world_size: env.world_size,
        ..progress
    };
    write_on_rank_zero(&comm, || -> std::io::Result<()> {
        std::fs::create_dir_all(&options.out)?;
        let temporary = options.out.join(".checkpoint.json.tmp");
        std::fs::write(
            &temporary,
            serde_json::json!({ "progress": progress, "params": params }).to_string(),
        )?;
        std::fs::rename(&temporary, &checkpoint)
    })?;
    Ok(())
}
