//! 8-bit block-wise AdamW against the reference trajectory of tests/fixtures/bnb/make_adam8bit.py
//! (bitsandbytes' update with nearest-code quantisation) and bitsandbytes' own CPU run.

use std::path::Path;

use safetensors::SafeTensors;
use verdict_quant::optim8::{adamw_step, AdamStep, Moments8, QuantisedMoments};

fn fixture() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bnb/adam8bit.safetensors"),
    )
    .unwrap()
}

fn f32s(st: &SafeTensors, name: &str) -> Vec<f32> {
    st.tensor(name)
        .unwrap()
        .data()
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn trajectory_matches_bitsandbytes() {
    let bytes = fixture();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut param = f32s(&st, "param.initial");
    let mut state = Moments8::zeros(param.len());
    for step in 1..=12u64 {
        let grad = f32s(&st, &format!("grad.{step}"));
        let hp = AdamStep {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            step,
        };
        adamw_step(&mut param, &grad, &mut state, hp).unwrap();
        let expected = f32s(&st, &format!("param.{step}"));
        let worst = param
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        // Rounding order differs from torch's in the last bit; a code at an exact tie may land
        // on its neighbour, moving one parameter by a fraction of one step (lr = 1e-2).
        assert!(worst < 1e-5, "step {step}: parameters differ by {worst}");
        // bitsandbytes' CPU library picks codes for tiny values by an approximate search (see
        // make_adam8bit.py); on average its trajectory stays within a small fraction of a step.
        let cpu = f32s(&st, &format!("bnb_cpu.param.{step}"));
        let mean = param
            .iter()
            .zip(&cpu)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / cpu.len() as f32;
        assert!(
            mean < 1e-4,
            "step {step}: mean distance to bitsandbytes' CPU run {mean}"
        );
    }
    let theirs = st.tensor("state1").unwrap().data().to_vec();
    let same = state
        .first
        .codes
        .iter()
        .zip(&theirs)
        .filter(|(a, b)| a == b)
        .count();
    assert!(
        same * 1000 >= theirs.len() * 999,
        "{same} of {} first-moment codes agree",
        theirs.len()
    );
    let absmax2 = f32s(&st, "absmax2");
    for (a, b) in state.second.absmax.iter().zip(&absmax2) {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs(),
            "second-moment block maxima {a} vs {b}"
        );
    }
}

#[test]
fn device_state_round_trips_through_codes() {
    let device = candle_core::Device::Cpu;
    let first: Vec<f32> = (0..1000)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) * 1e-3)
        .collect();
    let second: Vec<f32> = first.iter().map(|v| v * v).collect();
    let mut moments = QuantisedMoments::zeros(1000, &device).unwrap();
    let (m0, v0) = moments.dequantize().unwrap();
    assert_eq!(
        m0.abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0
    );
    assert_eq!(v0.dims(), &[1000]);
    let t = |v: &[f32]| candle_core::Tensor::new(v, &device).unwrap();
    moments.store(&t(&first), &t(&second)).unwrap();
    let (m, v) = moments.dequantize().unwrap();
    let m = m.to_vec1::<f32>().unwrap();
    let v = v.to_vec1::<f32>().unwrap();
    for i in 0..1000 {
        // dynamic map: relative error of a few percent at worst for values near the block max
        assert!(
            (m[i] - first[i]).abs() <= 0.05 * 0.05 + 1e-6,
            "first {i}: {} vs {}",
            m[i],
            first[i]
        );
        assert!(
            (v[i] - second[i]).abs() <= 0.02 * 0.0025 + 1e-9,
            "second {i}: {} vs {}",
            v[i],
            second[i]
        );
    }
    assert_eq!(moments.bytes(), 2 * 1000 + 8 * 4);
}
