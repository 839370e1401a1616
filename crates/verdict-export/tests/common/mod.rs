//! Shared helpers: the tiny Qwen3-VL checkpoint of the model crate, a LoRA adapter for it, and
//! a synthetic checkpoint wide enough (rows of 256) for GGUF's k-quant blocks.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use verdict_lora::{LoraConfig, LoraFactory, ModuleSwitches, QWEN3_VL_LINEAR_NAMES};
use verdict_models::qwen3_vl::{Batch, Logits, Qwen3VL};

pub fn tiny_a() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../verdict-models/tests/fixtures/qwen3_vl/tiny_a")
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A text-only prompt of tiny_a's vocabulary.
pub fn text_batch() -> Batch {
    Batch::single(
        vec![321, 12, 40, 7, 99, 150, 200, 322, 321, 5],
        None,
        vec![],
    )
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

/// Saves a LoRA adapter on every tiny_a linear layer with deterministic non-zero `B`
/// (fresh adapters have `B = 0`, which would make every comparison pass trivially) and
/// returns the logits of tiny_a with that adapter attached.
pub fn make_adapter(dir: &Path, batch: &Batch) -> Tensor {
    let config = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: ModuleSwitches::default()
            .target_modules(&QWEN3_VL_LINEAR_NAMES)
            .unwrap(),
        ..LoraConfig::default()
    };
    let factory = LoraFactory::new(config, &Device::Cpu, DType::F32).unwrap();
    let model = Qwen3VL::load(
        &tiny_a(),
        DType::F32,
        &Device::Cpu,
        Some(factory.clone() as Arc<dyn verdict_models::nn::LinearFactory>),
    )
    .unwrap();
    for (i, (_, adapter)) in factory.adapters().iter().enumerate() {
        let (out, r) = adapter.b.dims2().unwrap();
        let values: Vec<f32> = (0..out * r)
            .map(|k| (((k * 7 + i * 13) % 17) as f32 - 8.0) / 8.0 * 0.3)
            .collect();
        adapter
            .b
            .set(&Tensor::from_vec(values, (out, r), &Device::Cpu).unwrap())
            .unwrap();
    }
    factory.save_peft(dir, "tiny_a").unwrap();
    logits(&model, batch)
}

/// Writes a Qwen3-VL checkpoint whose language model has rows of 256 (k-quant block size)
/// with normally distributed weights; tokenizer files come from tiny_a.
pub fn wide_checkpoint(dir: &Path, layers: usize, seed: u64) -> BTreeMap<String, Tensor> {
    std::fs::create_dir_all(dir).unwrap();
    for file in [
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.json",
        "generation_config.json",
    ] {
        std::fs::copy(tiny_a().join(file), dir.join(file)).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tiny_a().join("config.json")).unwrap())
            .unwrap();
    let (hidden, inter, heads, kv, head_dim, vocab) = (256, 512, 4, 2, 64, 352);
    let text = config.get_mut("text_config").unwrap();
    text["hidden_size"] = hidden.into();
    text["intermediate_size"] = inter.into();
    text["num_attention_heads"] = heads.into();
    text["num_key_value_heads"] = kv.into();
    text["head_dim"] = head_dim.into();
    text["num_hidden_layers"] = layers.into();
    text["rope_scaling"]["mrope_section"] = serde_json::json!([16, 8, 8]);
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut tensor = |shape: &[usize], scale: f32, offset: f32| {
        let n: usize = shape.iter().product();
        // Box-Muller normals; a few outliers per tensor like real weights have.
        let values: Vec<f32> = (0..n)
            .map(|i| {
                let u1: f32 = rng.random::<f32>().max(1e-7);
                let u2: f32 = rng.random::<f32>();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
                let outlier = if i % 997 == 0 { 6.0 } else { 1.0 };
                offset + scale * z * outlier
            })
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    };
    let p = "model.language_model";
    let mut tensors = BTreeMap::new();
    tensors.insert(
        format!("{p}.embed_tokens.weight"),
        tensor(&[vocab, hidden], 0.02, 0.0),
    );
    tensors.insert(format!("{p}.norm.weight"), tensor(&[hidden], 0.05, 1.0));
    for l in 0..layers {
        let q = format!("{p}.layers.{l}");
        for (name, shape) in [
            ("self_attn.q_proj.weight", vec![heads * head_dim, hidden]),
            ("self_attn.k_proj.weight", vec![kv * head_dim, hidden]),
            ("self_attn.v_proj.weight", vec![kv * head_dim, hidden]),
            ("self_attn.o_proj.weight", vec![hidden, heads * head_dim]),
            ("mlp.gate_proj.weight", vec![inter, hidden]),
            ("mlp.up_proj.weight", vec![inter, hidden]),
            ("mlp.down_proj.weight", vec![hidden, inter]),
        ] {
            tensors.insert(format!("{q}.{name}"), tensor(&shape, 0.02, 0.0));
        }
        for (name, size) in [
            ("input_layernorm.weight", hidden),
            ("post_attention_layernorm.weight", hidden),
            ("self_attn.q_norm.weight", head_dim),
            ("self_attn.k_norm.weight", head_dim),
        ] {
            tensors.insert(format!("{q}.{name}"), tensor(&[size], 0.05, 1.0));
        }
    }
    // One vision tensor: it must be left out of the language-model file.
    tensors.insert(
        "model.visual.pos_embed.weight".into(),
        tensor(&[16, 32], 0.02, 0.0),
    );
    verdict_lora::st::write(&dir.join("model.safetensors"), &tensors).unwrap();
    tensors
}

/// The Python interpreter with the test requirements (`VERDICT_PYTHON`, else `scripts/python-env`).
pub fn python() -> PathBuf {
    if let Ok(path) = std::env::var("VERDICT_PYTHON") {
        return PathBuf::from(path);
    }
    let output = std::process::Command::new(repo_root().join("scripts/python-env"))
        .current_dir(repo_root())
        .output()
        .expect("run scripts/python-env");
    assert!(
        output.status.success(),
        "scripts/python-env failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}
