//! 8-bit AdamW (block-wise quantised moments) converges like 32-bit AdamW and resumes exactly.

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use verdict_train::optim::{AdamW, AdamWConfig};

/// Least squares `|X W - Y|^2 / n` with a 64x96 weight (6144 values: above the 8-bit size).
struct Problem {
    x: Tensor,
    y: Tensor,
}

impl Problem {
    fn new() -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut normal = |n: usize, scale: f32| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    let (u1, u2): (f32, f32) = (rng.random::<f32>().max(1e-7), rng.random());
                    scale * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
                })
                .collect()
        };
        let device = Device::Cpu;
        let x = Tensor::from_vec(normal(256 * 64, 1.0), (256, 64), &device).unwrap();
        let truth = Tensor::from_vec(normal(64 * 96, 0.5), (64, 96), &device).unwrap();
        let noise = Tensor::from_vec(normal(256 * 96, 0.01), (256, 96), &device).unwrap();
        let y = (x.matmul(&truth).unwrap() + noise).unwrap();
        Self { x, y }
    }

    fn loss(&self, w: &Var) -> Tensor {
        (self.x.matmul(w.as_tensor()).unwrap() - &self.y)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap()
    }

    /// Losses over `steps` steps from a zero weight.
    fn run(&self, config: AdamWConfig, steps: usize) -> (Vec<f32>, usize) {
        let w =
            Var::from_tensor(&Tensor::zeros((64, 96), DType::F32, &Device::Cpu).unwrap()).unwrap();
        let mut optimizer = AdamW::new(vec![w.clone()], config).unwrap();
        let mut losses = Vec::new();
        for _ in 0..steps {
            let loss = self.loss(&w);
            losses.push(loss.to_scalar::<f32>().unwrap());
            let grads = loss.backward().unwrap();
            optimizer
                .step(&[grads.get(w.as_tensor()).cloned()], 2e-2)
                .unwrap();
        }
        losses.push(self.loss(&w).to_scalar::<f32>().unwrap());
        (losses, optimizer.state_bytes())
    }
}

#[test]
fn eight_bit_moments_converge_like_32_bit_ones() {
    let problem = Problem::new();
    let full = AdamWConfig {
        weight_decay: 0.0,
        ..AdamWConfig::default()
    };
    let eight = AdamWConfig {
        eight_bit: true,
        ..full
    };
    let (losses32, bytes32) = problem.run(full, 400);
    let (losses8, bytes8) = problem.run(eight, 400);
    for step in [0, 50, 100, 200, 400] {
        println!(
            "step {step:3}: loss 32-bit {:.5}  8-bit {:.5}",
            losses32[step], losses8[step]
        );
    }
    println!("moment bytes: 32-bit {bytes32}, 8-bit {bytes8}");
    let (first, last32, last8) = (losses32[0], losses32[400], losses8[400]);
    assert!(
        last32 < 1e-3 * first,
        "32-bit AdamW did not converge: {first} -> {last32}"
    );
    assert!(
        last8 < 1e-3 * first,
        "8-bit AdamW did not converge: {first} -> {last8}"
    );
    // Along the way the curves stay together: within 25% of each other (or both below 1e-3 of
    // the start), and they end at the same loss.
    for (step, (a, b)) in losses32.iter().zip(&losses8).enumerate() {
        assert!(
            (a - b).abs() <= 0.25 * a.max(*b) || a.max(*b) < 1e-3 * first,
            "step {step}: {a} vs {b}"
        );
    }
    assert_eq!(bytes32, 2 * 4 * 64 * 96);
    assert_eq!(bytes8, 2 * 64 * 96 + 8 * (64 * 96 / 256));
}

#[test]
fn eight_bit_state_saves_and_restores_exactly() {
    let problem = Problem::new();
    let config = AdamWConfig {
        eight_bit: true,
        ..AdamWConfig::default()
    };
    let w = Var::from_tensor(&Tensor::zeros((64, 96), DType::F32, &Device::Cpu).unwrap()).unwrap();
    let twin =
        Var::from_tensor(&Tensor::zeros((64, 96), DType::F32, &Device::Cpu).unwrap()).unwrap();
    let mut a = AdamW::new(vec![w.clone()], config).unwrap();
    let mut b = AdamW::new(vec![twin.clone()], config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let step = |opt: &mut AdamW, v: &Var| {
        let grads = problem.loss(v).backward().unwrap();
        opt.step(&[grads.get(v.as_tensor()).cloned()], 1e-2)
            .unwrap();
    };
    for i in 0..20 {
        if i == 10 {
            b.save(&dir.path().join("opt.safetensors")).unwrap();
            b = AdamW::new(vec![twin.clone()], config).unwrap();
            b.load(&dir.path().join("opt.safetensors")).unwrap();
        }
        step(&mut a, &w);
        step(&mut b, &twin);
    }
    let diff = (w.as_tensor() - twin.as_tensor())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
}
