//! Checkpoint loading: sharded safetensors with an index, and linear layers built through a
//! custom factory (how adapters attach without forking the model).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use verdict_models::nn::{Linear, LinearFactory, LinearLayer, LinearSpec};
use verdict_models::qwen3_vl::{Batch, Logits, Qwen3VL};

fn tiny_a() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3_vl/tiny_a")
}

fn text_only_batch() -> Batch {
    let reference =
        candle_core::safetensors::load(tiny_a().join("reference.safetensors"), &Device::Cpu)
            .unwrap();
    let ids = reference["text_only.input_ids"].to_vec2::<i64>().unwrap()[0]
        .iter()
        .map(|&v| v as u32)
        .collect();
    Batch::single(ids, None, Vec::new())
}

fn logits(model: &Qwen3VL) -> Tensor {
    model
        .forward(&text_only_batch(), None, Logits::All, false)
        .unwrap()
        .logits
}

#[test]
fn sharded_checkpoint_loads_like_a_single_file() {
    let dir = tempfile::tempdir().unwrap();
    let tensors =
        candle_core::safetensors::load(tiny_a().join("model.safetensors"), &Device::Cpu).unwrap();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let shard: HashMap<String, Tensor> = part
            .iter()
            .map(|n| ((*n).clone(), tensors[*n].clone()))
            .collect();
        candle_core::safetensors::save(&shard, dir.path().join(file)).unwrap();
        for name in part {
            weight_map.insert((*name).clone(), file.into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    std::fs::copy(tiny_a().join("config.json"), dir.path().join("config.json")).unwrap();

    let single = Qwen3VL::load(&tiny_a(), DType::F32, &Device::Cpu, None).unwrap();
    let sharded = Qwen3VL::load(dir.path(), DType::F32, &Device::Cpu, None).unwrap();
    let diff = (logits(&single) - logits(&sharded))
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
}

/// Wraps every `v_proj` with a layer that scales its output (not `q_proj`: the QK-norm after
/// it would undo a scale), and records every path built.
struct ScalingFactory {
    seen: Mutex<Vec<LinearSpec>>,
}

#[derive(Debug)]
struct Scaled(Linear);

impl LinearLayer for Scaled {
    fn forward(&self, xs: &Tensor) -> verdict_models::Result<Tensor> {
        Ok((self.0.forward(xs)? * 0.5)?)
    }
}

impl LinearFactory for ScalingFactory {
    fn build(
        &self,
        spec: &LinearSpec,
        vb: VarBuilder,
    ) -> verdict_models::Result<Arc<dyn LinearLayer>> {
        self.seen.lock().unwrap().push(spec.clone());
        let base = Linear::load(spec, &vb)?;
        if spec.path.ends_with(".v_proj") {
            Ok(Arc::new(Scaled(base)))
        } else {
            Ok(Arc::new(base))
        }
    }
}

#[test]
fn custom_linear_factory_sees_checkpoint_paths_and_changes_the_model() {
    let factory = Arc::new(ScalingFactory {
        seen: Mutex::new(Vec::new()),
    });
    let wrapped =
        Qwen3VL::load(&tiny_a(), DType::F32, &Device::Cpu, Some(factory.clone())).unwrap();
    let plain = Qwen3VL::load(&tiny_a(), DType::F32, &Device::Cpu, None).unwrap();
    let seen = factory.seen.lock().unwrap();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert!(
        paths.contains(&"model.language_model.layers.0.self_attn.q_proj"),
        "{paths:?}"
    );
    assert!(paths.contains(&"model.language_model.layers.1.mlp.down_proj"));
    assert!(paths.contains(&"model.visual.blocks.0.attn.qkv"));
    assert!(paths.contains(&"model.visual.merger.linear_fc2"));
    let q = seen
        .iter()
        .find(|s| s.path.ends_with("layers.0.self_attn.q_proj"))
        .unwrap();
    assert_eq!((q.in_dim, q.out_dim, q.bias), (64, 64, false));
    let diff = (logits(&wrapped) - logits(&plain))
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert!(
        diff.to_scalar::<f32>().unwrap() > 1e-4,
        "wrapping v_proj must change the output"
    );
}
