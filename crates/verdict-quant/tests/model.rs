//! The tiny Qwen3-VL checkpoint on quantised base weights: logits close to full precision,
//! memory as computed, adapters on top still training.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use verdict_lora::{LoraConfig, LoraFactory, ModuleSwitches, QWEN3_VL_LINEAR_NAMES};
use verdict_models::nn::LinearFactory;
use verdict_models::qwen3_vl::{Batch, Logits, Qwen3VL};
use verdict_quant::{QuantFactory, Scheme};

fn tiny_a() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../verdict-models/tests/fixtures/qwen3_vl/tiny_a")
}

/// The `one_image` prompt of the model crate's reference fixture (image + text).
fn image_batch() -> Batch {
    let reference =
        candle_core::safetensors::load(tiny_a().join("reference.safetensors"), &Device::Cpu)
            .unwrap();
    let ids = reference["one_image.input_ids"].to_vec2::<i64>().unwrap()[0]
        .iter()
        .map(|&v| v as u32)
        .collect();
    let grid: Vec<[usize; 3]> = reference["one_image.image_grid_thw"]
        .to_vec2::<i64>()
        .unwrap()
        .iter()
        .map(|g| [g[0] as usize, g[1] as usize, g[2] as usize])
        .collect();
    Batch::single(ids, Some(reference["one_image.pixel_values"].clone()), grid)
}

fn logits(factory: Option<Arc<dyn LinearFactory>>, dtype: DType) -> Tensor {
    let model = Qwen3VL::load(&tiny_a(), dtype, &Device::Cpu, factory).unwrap();
    model
        .forward(&image_batch(), None, Logits::All, false)
        .unwrap()
        .logits
        .to_dtype(DType::F32)
        .unwrap()
}

/// ||a - b|| / ||b|| over all positions and vocabulary entries.
fn relative_rms(a: &Tensor, b: &Tensor) -> f32 {
    let diff = (a - b)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let norm = b
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    (diff / norm).sqrt()
}

#[test]
fn quantised_logits_stay_close_to_full_precision() {
    let full = logits(None, DType::F32);
    let bf16 = relative_rms(&logits(None, DType::BF16), &full);
    let nf4 = QuantFactory::new(Scheme::Nf4);
    let nf4_error = relative_rms(&logits(Some(nf4.clone()), DType::F32), &full);
    let int8 = QuantFactory::new(Scheme::Int8);
    let int8_error = relative_rms(&logits(Some(int8.clone()), DType::F32), &full);
    println!("relative RMS logit error: bf16 {bf16:.5}, int8 {int8_error:.5}, nf4 {nf4_error:.5}");
    println!("nf4:  {}", nf4.report());
    println!("int8: {}", int8.report());
    // NF4 weights carry 9-11% relative RMS error (bitsandbytes.rs measures it on normal and
    // heavy-tailed weights), int8 row-wise about 1%. Errors of independent layers add roughly
    // in quadrature along the residual stream, so the logits may carry a small multiple of the
    // weight error but no more: at most three times it for either scheme.
    const NF4_WEIGHT_ERROR: f32 = 0.11;
    const INT8_WEIGHT_ERROR: f32 = 0.01;
    assert!(
        nf4_error < 3.0 * NF4_WEIGHT_ERROR,
        "NF4 logits off by {nf4_error}"
    );
    assert!(
        int8_error < 3.0 * INT8_WEIGHT_ERROR,
        "int8 logits off by {int8_error}"
    );
    assert!(int8_error < nf4_error);
    assert!(
        nf4_error > 0.0,
        "the quantised layers must actually be used"
    );
}

#[test]
fn memory_report_counts_codes_and_scales() {
    let nf4 = QuantFactory::new(Scheme::Nf4);
    Qwen3VL::load(
        &tiny_a(),
        DType::F32,
        &Device::Cpu,
        Some(nf4.clone() as Arc<dyn LinearFactory>),
    )
    .unwrap();
    let report = nf4.report();
    // 2 text layers x 7 projections, 2 vision blocks x 4, and the mergers' 2 x 2 fc layers.
    assert_eq!(report.layers, 26);
    assert_eq!(report.dense_bytes, report.parameters * 4);
    // Per layer: n/2 code bytes, n/64 scale codes, one f32 per 256 scales, one f32 offset.
    let bits = report.bits_per_parameter();
    assert!(bits > 4.125 && bits < 4.6, "{bits} bits per parameter");
    println!("{report}");
}

#[test]
fn adapters_train_on_a_quantised_base() {
    let config = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: ModuleSwitches::default()
            .target_modules(&QWEN3_VL_LINEAR_NAMES)
            .unwrap(),
        ..LoraConfig::default()
    };
    let quant = QuantFactory::new(Scheme::Nf4);
    let lora =
        LoraFactory::with_base_factory(config, &Device::Cpu, DType::F32, 0, quant.clone()).unwrap();
    let model = Qwen3VL::load(
        &tiny_a(),
        DType::F32,
        &Device::Cpu,
        Some(lora.clone() as Arc<dyn LinearFactory>),
    )
    .unwrap();
    assert_eq!(
        quant.report().layers,
        26,
        "every base layer is quantised under the adapters"
    );
    let batch = image_batch();
    let out = model
        .forward(&batch, None, Logits::All, false)
        .unwrap()
        .logits;
    let loss = candle_nn::loss::cross_entropy(
        &out.squeeze(0)
            .unwrap()
            .narrow(0, 0, out.dim(1).unwrap() - 1)
            .unwrap(),
        &Tensor::new(&batch.input_ids[0][1..], &Device::Cpu).unwrap(),
    )
    .unwrap();
    let grads = loss.backward().unwrap();
    let vars = lora.trainable_vars();
    assert!(!vars.is_empty());
    let with_gradient = vars
        .iter()
        .filter(|v| {
            grads.get(v.as_tensor()).is_some_and(|g| {
                g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0
            })
        })
        .count();
    // B starts at zero, so only the B matrices (half the variables) receive gradient at step 0.
    assert!(
        with_gradient * 2 >= vars.len(),
        "{with_gradient} of {} adapter tensors got a gradient",
        vars.len()
    );
}
