//! Interoperability with PEFT: adapters PEFT made load here and give PEFT's logits (default
//! suite, committed fixtures from `tests/fixtures/peft/make_peft_fixtures.py`); and PEFT loads
//! ours (opt-in, needs Python with torch + transformers + peft:
//! `cargo test -p verdict-lora --test peft_interop -- --ignored --nocapture`).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::{image_batch, load, logits, max_abs_diff, perturb, tiny_a};
use verdict_lora::{
    merge_into_checkpoint, LoraConfig, LoraFactory, ModuleSwitches, QWEN3_VL_LINEAR_NAMES,
};
use verdict_models::qwen3_vl::Qwen3VL;

const TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/peft")
}

fn reference() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixtures().join("reference.safetensors"), &Device::Cpu)
        .expect("PEFT reference logits")
}

fn peft_adapted_layers(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(fixtures().join("reference.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::from_value(json["adapted_layers"][name].clone()).unwrap()
}

#[test]
fn base_model_matches_the_reference() {
    let base = logits(&load(None), &image_batch()).squeeze(0).unwrap();
    let diff = max_abs_diff(&base, &reference()["base.logits"]);
    assert!(diff < TOLERANCE, "base logits differ by {diff}");
}

#[test]
fn adapters_made_by_peft_reproduce_its_logits() {
    let reference = reference();
    let batch = image_batch();
    for name in ["names", "pattern_rslora"] {
        let dir = fixtures().join(name);
        let factory = LoraFactory::load_peft(&dir, &Device::Cpu, DType::F32).unwrap();
        let model = load(Some(factory.clone()));
        factory.ensure_all_loaded().unwrap();
        assert_eq!(factory.adapted_paths(), peft_adapted_layers(name), "{name}");
        let ours = logits(&model, &batch).squeeze(0).unwrap();
        let diff = max_abs_diff(&ours, &reference[&format!("{name}.logits")]);
        println!("{name}: max |logit difference| vs PEFT = {diff:e}");
        assert!(diff < TOLERANCE, "{name}: logits differ by {diff}");

        let out = tempfile::tempdir().unwrap();
        merge_into_checkpoint(&tiny_a(), &dir, &out.path().join("merged")).unwrap();
        let merged =
            Qwen3VL::load(&out.path().join("merged"), DType::F32, &Device::Cpu, None).unwrap();
        let merged = logits(&merged, &batch).squeeze(0).unwrap();
        let diff = max_abs_diff(&merged, &reference[&format!("{name}.merged_logits")]);
        println!("{name}: merged, max |logit difference| vs PEFT merge_and_unload = {diff:e}");
        assert!(diff < TOLERANCE, "{name}: merged logits differ by {diff}");
    }
}

#[test]
fn target_selection_agrees_with_peft() {
    // The saved target_modules (a list, and Unsloth's regular expression) must select the very
    // layers PEFT selected when it made the adapter.
    for name in ["names", "pattern_rslora"] {
        let config = verdict_lora::peft::read_config(&fixtures().join(name)).unwrap();
        let fresh = LoraFactory::new(config, &Device::Cpu, DType::F32).unwrap();
        let _model = load(Some(fresh.clone()));
        assert_eq!(fresh.adapted_paths(), peft_adapted_layers(name), "{name}");
    }
}

#[test]
#[ignore = "needs python3 with torch, transformers and peft"]
fn peft_loads_our_adapter_and_merged_checkpoint() {
    let config = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        use_rslora: true,
        target_modules: ModuleSwitches::default()
            .target_modules(&QWEN3_VL_LINEAR_NAMES)
            .unwrap(),
        ..LoraConfig::default()
    };
    let factory = LoraFactory::new(config, &Device::Cpu, DType::F32).unwrap();
    let model = load(Some(factory.clone()));
    perturb(&factory, 0.3);
    let work = tempfile::tempdir().unwrap();
    let adapter = work.path().join("adapter");
    factory.save_peft(&adapter, "tiny_a").unwrap();
    merge_into_checkpoint(&tiny_a(), &adapter, &work.path().join("merged")).unwrap();
    let ours = logits(&model, &image_batch()).squeeze(0).unwrap();
    candle_core::safetensors::save(
        &HashMap::from([("logits".to_string(), ours)]),
        work.path().join("verdict_logits.safetensors"),
    )
    .unwrap();
    let python = std::env::var("PEFT_PYTHON").unwrap_or_else(|_| "python3".into());
    let output = std::process::Command::new(python)
        .arg(fixtures().join("check_our_adapter.py"))
        .arg(work.path())
        .arg(tiny_a())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "PEFT check failed:\n{stdout}");
}
