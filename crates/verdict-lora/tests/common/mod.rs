//! Shared helpers: the tiny Qwen3-VL checkpoint of the model crate and one image prompt.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use verdict_lora::LoraFactory;
use verdict_models::qwen3_vl::{Batch, Logits, Qwen3VL};

pub fn tiny_a() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../verdict-models/tests/fixtures/qwen3_vl/tiny_a")
}

/// The `one_image` prompt of the model crate's reference fixture (image + text).
pub fn image_batch() -> Batch {
    let reference =
        candle_core::safetensors::load(tiny_a().join("reference.safetensors"), &Device::Cpu)
            .expect("tiny_a reference fixture");
    let ids = reference["one_image.input_ids"]
        .to_vec2::<i64>()
        .expect("ids")[0]
        .iter()
        .map(|&v| v as u32)
        .collect();
    let grid: Vec<[usize; 3]> = reference["one_image.image_grid_thw"]
        .to_vec2::<i64>()
        .expect("grid")
        .iter()
        .map(|g| [g[0] as usize, g[1] as usize, g[2] as usize])
        .collect();
    Batch::single(ids, Some(reference["one_image.pixel_values"].clone()), grid)
}

pub fn logits(model: &Qwen3VL, batch: &Batch) -> Tensor {
    model
        .forward(batch, None, Logits::All, false)
        .expect("forward")
        .logits
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .expect("same shape")
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Gives every adapter deterministic non-zero `B` (fresh adapters start with `B = 0`, which
/// would make every comparison trivially pass).
pub fn perturb(factory: &LoraFactory, scale: f64) {
    for (i, (_, adapter)) in factory.adapters().iter().enumerate() {
        let (out, r) = adapter.b.dims2().unwrap();
        let n = out * r;
        let values: Vec<f32> = (0..n)
            .map(|k| (((k * 7 + i * 13) % 17) as f32 - 8.0) / 8.0 * scale as f32)
            .collect();
        let b = Tensor::from_vec(values, (out, r), &Device::Cpu)
            .unwrap()
            .to_dtype(adapter.b.dtype())
            .unwrap();
        adapter.b.set(&b).unwrap();
    }
}

pub fn load(factory: Option<std::sync::Arc<LoraFactory>>) -> Qwen3VL {
    let factory = factory.map(|f| f as std::sync::Arc<dyn verdict_models::nn::LinearFactory>);
    Qwen3VL::load(&tiny_a(), DType::F32, &Device::Cpu, factory).expect("load tiny_a")
}
