//! Adapters on the tiny Qwen3-VL checkpoint: selection, frozen base, PEFT round trip, merge.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use common::{image_batch, load, logits, max_abs_diff, perturb, tiny_a};
use verdict_lora::{
    merge_into_checkpoint, LoraConfig, LoraFactory, ModuleSwitches, TargetModules,
    QWEN3_VL_LINEAR_NAMES,
};
use verdict_models::nn::ops::log_softmax_last_dim;
use verdict_models::nn::GradSink;
use verdict_models::qwen3_vl::{Batch, Qwen3VL};

fn unsloth_config() -> LoraConfig {
    LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: ModuleSwitches::default()
            .target_modules(&QWEN3_VL_LINEAR_NAMES)
            .unwrap(),
        ..LoraConfig::default()
    }
}

/// Mean next-token cross-entropy over the whole sequence.
fn lm_loss(model: &Qwen3VL, batch: &Batch) -> Tensor {
    let logits = logits(model, batch);
    let s = logits.dim(1).unwrap();
    next_token_loss(&logits.narrow(1, 0, s - 1).unwrap(), batch)
}

/// Mean cross-entropy of `logits` for positions `0..s-1` against the next tokens.
fn next_token_loss(logits: &Tensor, batch: &Batch) -> Tensor {
    let positions = logits.dim(1).unwrap();
    let log_probs = log_softmax_last_dim(logits).unwrap();
    let targets = Tensor::new(batch.input_ids[0][1..].to_vec(), &Device::Cpu)
        .unwrap()
        .reshape((1, positions, 1))
        .unwrap();
    log_probs
        .gather(&targets, D::Minus1)
        .unwrap()
        .mean_all()
        .unwrap()
        .neg()
        .unwrap()
}

/// `base + 0` is exact, but the sum is a fresh contiguous tensor where the plain layer's
/// output keeps a transposed layout, and later matrix products sum in a different order for
/// the two layouts; that rounding stays around 1e-6 on these logits.
fn assert_zero_update(diff: f32) {
    assert!(diff < 1e-5, "a zero update changed the logits by {diff}");
}

#[test]
fn switches_select_both_towers_and_fresh_adapters_change_nothing() {
    let factory = LoraFactory::new(unsloth_config(), &Device::Cpu, DType::F32).unwrap();
    let model = load(Some(factory.clone()));
    let paths = factory.adapted_paths();
    // 2 text layers x 7 projections + 2 vision blocks x (qkv, proj, fc1, fc2); no mergers.
    assert_eq!(paths.len(), 22, "{paths:?}");
    assert!(paths.contains(&"model.visual.blocks.1.attn.qkv".to_string()));
    assert!(!paths.iter().any(|p| p.contains("merger")));
    assert_eq!(factory.trainable_vars().len(), 44);
    let batch = image_batch();
    let base = logits(&load(None), &batch);
    assert_zero_update(max_abs_diff(&logits(&model, &batch), &base));
}

#[test]
fn training_moves_adapters_and_leaves_base_weights_alone() {
    let factory = LoraFactory::with_seed(unsloth_config(), &Device::Cpu, DType::F32, 3).unwrap();
    let model = load(Some(factory.clone()));
    let before: HashMap<String, Tensor> =
        candle_core::safetensors::load(tiny_a().join("model.safetensors"), &Device::Cpu).unwrap();
    let batch = image_batch();
    let base_logits = logits(&load(None), &batch);
    let params = ParamsAdamW {
        lr: 1e-2,
        weight_decay: 0.0,
        ..ParamsAdamW::default()
    };
    let mut optimiser = AdamW::new(factory.trainable_vars(), params).unwrap();
    let first = lm_loss(&model, &batch).to_scalar::<f32>().unwrap();
    for _ in 0..8 {
        let loss = lm_loss(&model, &batch);
        let grads = loss.backward().unwrap();
        // Base tensors are constants of the graph: no gradient is ever computed for them.
        assert!(before.values().all(|t| grads.get(t).is_none()));
        optimiser.step(&grads).unwrap();
    }
    let last = lm_loss(&model, &batch).to_scalar::<f32>().unwrap();
    assert!(last < first * 0.9, "loss {first} -> {last}");
    assert!(max_abs_diff(&logits(&model, &batch), &base_logits) > 1e-2);

    // With every B zeroed the trained model must be the base model again.
    for (_, adapter) in factory.adapters() {
        adapter.b.set(&adapter.b.zeros_like().unwrap()).unwrap();
    }
    assert_zero_update(max_abs_diff(&logits(&model, &batch), &base_logits));
    let after: HashMap<String, Tensor> =
        candle_core::safetensors::load(tiny_a().join("model.safetensors"), &Device::Cpu).unwrap();
    for (name, tensor) in &before {
        assert_eq!(
            max_abs_diff(tensor, &after[name]),
            0.0,
            "{name} changed on disk"
        );
    }
}

#[test]
fn adapter_round_trips_through_peft_files() {
    let config = LoraConfig {
        r: 3,
        alpha: 5.0,
        dropout: 0.1,
        target_modules: TargetModules::names(&["q_proj", "v_proj", "down_proj", "linear_fc1"]),
        exclude_modules: Some(TargetModules::Pattern(r".*merger.*".into())),
        use_rslora: true,
    };
    let factory = LoraFactory::new(config.clone(), &Device::Cpu, DType::F32).unwrap();
    let model = load(Some(factory.clone()));
    perturb(&factory, 0.5);
    let batch = image_batch();
    let expected = logits(&model, &batch);

    let dir = tempfile::tempdir().unwrap();
    factory.save_peft(dir.path(), "tiny_a").unwrap();
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["peft_type"], "LORA");
    assert_eq!(json["r"], 3);
    assert_eq!(json["use_rslora"], true);
    assert_eq!(json["lora_alpha"], 5, "PEFT reads lora_alpha as an int");
    assert_eq!(json["target_modules"][1], "v_proj");
    let saved =
        candle_core::safetensors::load(dir.path().join("adapter_model.safetensors"), &Device::Cpu)
            .unwrap();
    let key = "base_model.model.model.language_model.layers.1.self_attn.q_proj.lora_A.weight";
    assert_eq!(saved[key].dims(), &[3, 64]);
    assert_eq!(saved.len(), 2 * factory.adapted_paths().len());

    let loaded = LoraFactory::load_peft(dir.path(), &Device::Cpu, DType::F32).unwrap();
    assert_eq!(loaded.config(), &config);
    let reloaded = load(Some(loaded.clone()));
    loaded.ensure_all_loaded().unwrap();
    assert_eq!(loaded.adapted_paths(), factory.adapted_paths());
    assert_eq!(max_abs_diff(&logits(&reloaded, &batch), &expected), 0.0);

    // Restoring into freshly initialised adapters (resume, keep-best) gives the same model.
    let fresh = LoraFactory::new(config, &Device::Cpu, DType::F32).unwrap();
    let fresh_model = load(Some(fresh.clone()));
    fresh.restore_peft_weights(dir.path()).unwrap();
    assert_eq!(max_abs_diff(&logits(&fresh_model, &batch), &expected), 0.0);
}

#[test]
fn merged_checkpoint_gives_the_adapted_logits() {
    let factory = LoraFactory::new(unsloth_config(), &Device::Cpu, DType::F32).unwrap();
    let model = load(Some(factory.clone()));
    perturb(&factory, 0.3);
    let batch = image_batch();
    let adapted = logits(&model, &batch);
    assert!(max_abs_diff(&adapted, &logits(&load(None), &batch)) > 1e-2);

    let work = tempfile::tempdir().unwrap();
    let adapter_dir = work.path().join("adapter");
    factory.save_peft(&adapter_dir, "tiny_a").unwrap();
    let merged_dir = work.path().join("merged");
    let count = merge_into_checkpoint(&tiny_a(), &adapter_dir, &merged_dir).unwrap();
    assert_eq!(count, 22);
    for file in [
        "config.json",
        "tokenizer.json",
        "preprocessor_config.json",
        "model.safetensors",
    ] {
        assert!(merged_dir.join(file).exists(), "{file} missing");
    }
    let merged = Qwen3VL::load(&merged_dir, DType::F32, &Device::Cpu, None).unwrap();
    let diff = max_abs_diff(&logits(&merged, &batch), &adapted);
    assert!(diff < 1e-4, "merged logits differ by {diff}");
}

#[test]
fn adapter_for_another_model_is_refused() {
    let factory = LoraFactory::new(unsloth_config(), &Device::Cpu, DType::F32).unwrap();
    let _model = load(Some(factory.clone()));
    let dir = tempfile::tempdir().unwrap();
    factory.save_peft(dir.path(), "tiny_a").unwrap();
    let tiny_b = tiny_a().with_file_name("tiny_b");
    let loaded = LoraFactory::load_peft(dir.path(), &Device::Cpu, DType::F32).unwrap();
    let err =
        Qwen3VL::load(&tiny_b, DType::F32, &Device::Cpu, Some(loaded)).expect_err("shapes differ");
    assert!(err.to_string().contains("lora_A"), "{err}");
    let merged = tempfile::tempdir().unwrap();
    let err = merge_into_checkpoint(&tiny_b, dir.path(), &merged.path().join("out"))
        .expect_err("shapes differ");
    assert!(!merged.path().join("out").exists(), "{err}");
}

#[test]
fn dropout_is_seeded_and_resumable() {
    let config = LoraConfig {
        dropout: 0.5,
        ..unsloth_config()
    };
    let factory = LoraFactory::with_seed(config, &Device::Cpu, DType::F32, 11).unwrap();
    let model = load(Some(factory.clone()));
    perturb(&factory, 0.5);
    let batch = image_batch();
    let eval = logits(&model, &batch);
    factory.set_training(true);
    let state = factory.rng_state();
    let first = logits(&model, &batch);
    let second = logits(&model, &batch);
    assert!(
        max_abs_diff(&first, &second) > 1e-3,
        "masks must differ per step"
    );
    factory.set_rng_state(state);
    assert_eq!(max_abs_diff(&logits(&model, &batch), &first), 0.0);
    factory.set_training(false);
    assert_eq!(max_abs_diff(&logits(&model, &batch), &eval), 0.0);
}

/// Loss over every position from the decoder's final hidden states, optionally recomputing
/// each layer in the backward pass.
fn hidden_lm_loss(model: &Qwen3VL, batch: &Batch, recompute: Option<&GradSink>) -> Tensor {
    let hidden = model.forward_hidden_with(batch, recompute).unwrap();
    let s = hidden.dim(1).unwrap();
    let logits = model.project(&hidden.narrow(1, 0, s - 1).unwrap()).unwrap();
    next_token_loss(&logits, batch)
}

#[test]
fn recomputed_layers_give_the_same_loss_and_gradients() {
    // Adapters on both towers (the decoder's input and DeepStack features then carry
    // gradients of their own) and dropout (the recomputation must reuse the first masks).
    let config = LoraConfig {
        dropout: 0.3,
        ..unsloth_config()
    };
    let factory = LoraFactory::with_seed(config, &Device::Cpu, DType::F32, 5).unwrap();
    let model = load(Some(factory.clone()));
    perturb(&factory, 0.5);
    factory.set_training(true);
    let batch = image_batch();
    let state = factory.rng_state();

    let plain = hidden_lm_loss(&model, &batch, None);
    let plain_grads = plain.backward().unwrap();

    factory.set_rng_state(state);
    let sink = GradSink::new();
    let recomputed = hidden_lm_loss(&model, &batch, Some(&sink));
    let mut grads = recomputed.backward().unwrap();
    let vars = factory.trainable_vars();
    // Only the vision adapters are in the outer graph; the decoder's arrive through the sink.
    let outside = vars
        .iter()
        .filter(|v| grads.get(v.as_tensor()).is_some())
        .count();
    assert_eq!(outside, 16, "2 vision blocks x 4 linears x (A, B)");
    sink.merge_into(&mut grads).unwrap();

    let (a, b) = (
        plain.to_scalar::<f32>().unwrap(),
        recomputed.to_scalar::<f32>().unwrap(),
    );
    assert!((a - b).abs() < 1e-5, "loss {a} vs {b}");
    let mut language = 0;
    for (i, var) in vars.iter().enumerate() {
        let expected = plain_grads.get(var.as_tensor()).expect("plain gradient");
        let got = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for adapter variable {i}"));
        let scale = expected
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let diff = max_abs_diff(expected, got);
        assert!(
            diff <= 1e-4 * scale.max(1e-3),
            "variable {i}: {diff} (scale {scale})"
        );
        language += usize::from(scale > 0.0);
    }
    assert!(language > vars.len() / 2, "most adapters get a gradient");
}
