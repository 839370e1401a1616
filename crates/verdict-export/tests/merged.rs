//! Merged and PEFT exports of the tiny Qwen3-VL checkpoint, and the model card.

mod common;

use candle_core::{DType, Device};
use common::{logits, make_adapter, max_abs_diff, text_batch, tiny_a};
use verdict_export::{card, merged, peft};
use verdict_models::qwen3_vl::Qwen3VL;

#[test]
fn merged_directory_is_sharded_complete_and_gives_the_adapted_logits() {
    let work = tempfile::tempdir().unwrap();
    let batch = text_batch();
    let adapter = work.path().join("adapter");
    let adapted = make_adapter(&adapter, &batch);
    let base_logits = logits(
        &Qwen3VL::load(&tiny_a(), DType::F32, &Device::Cpu, None).unwrap(),
        &batch,
    );
    assert!(
        max_abs_diff(&adapted, &base_logits) > 1e-2,
        "the adapter must change the model"
    );

    let out = work.path().join("merged");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("stale.txt"), "old export").unwrap();
    let report = merged::export(&tiny_a(), Some(&adapter), &out, 200_000).unwrap();
    assert_eq!(report.merged_layers, 22);
    assert!(report.shards.len() >= 3, "{:?}", report.shards);
    assert!(
        !out.join("stale.txt").exists(),
        "the old export is replaced as a whole"
    );
    for file in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.json",
        "generation_config.json",
        "preprocessor_config.json",
        merged::INDEX_FILE,
    ] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(merged::INDEX_FILE)).unwrap())
            .unwrap();
    let weight_map = index["weight_map"].as_object().unwrap();
    assert_eq!(weight_map.len(), report.tensors);
    assert_eq!(
        index["metadata"]["total_size"].as_u64().unwrap(),
        report.total_bytes
    );
    for shard in &report.shards {
        let size = std::fs::metadata(out.join(shard)).unwrap().len();
        assert!(size < 200_000 + 100_000, "{shard} is {size} bytes");
    }

    let reloaded = Qwen3VL::load(&out, DType::F32, &Device::Cpu, None).unwrap();
    let diff = max_abs_diff(&logits(&reloaded, &batch), &adapted);
    assert!(diff < 1e-4, "merged logits differ by {diff}");
}

#[test]
fn merged_without_adapter_reproduces_the_base_and_derives_a_generation_config() {
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("base");
    std::fs::create_dir_all(&base).unwrap();
    for entry in std::fs::read_dir(tiny_a()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_file() && name != "generation_config.json" && !name.starts_with("reference") {
            std::fs::copy(&path, base.join(&name)).unwrap();
        }
    }
    let out = work.path().join("out");
    let report = merged::export(&base, None, &out, merged::DEFAULT_MAX_SHARD_BYTES).unwrap();
    assert_eq!(report.shards, vec!["model-00001-of-00001.safetensors"]);
    assert!(report.generation_config_derived);
    let generation: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("generation_config.json")).unwrap())
            .unwrap();
    assert_eq!(generation["eos_token_id"], 322);
    let batch = text_batch();
    let a = logits(
        &Qwen3VL::load(&tiny_a(), DType::F32, &Device::Cpu, None).unwrap(),
        &batch,
    );
    let b = logits(
        &Qwen3VL::load(&out, DType::F32, &Device::Cpu, None).unwrap(),
        &batch,
    );
    assert_eq!(max_abs_diff(&a, &b), 0.0);
}

#[test]
fn a_failed_merge_leaves_the_previous_export_alone() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("merged");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "previous").unwrap();
    let missing = work.path().join("no-adapter");
    assert!(merged::export(&tiny_a(), Some(&missing), &out, 1 << 30).is_err());
    assert!(out.join("keep.txt").exists());
    let leftovers: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "temporary directories left behind: {leftovers:?}"
    );
}

#[test]
fn peft_export_copies_a_loadable_adapter() {
    let work = tempfile::tempdir().unwrap();
    let batch = text_batch();
    let adapter = work.path().join("adapter");
    let adapted = make_adapter(&adapter, &batch);
    let out = work.path().join("published");
    let report = peft::export(&adapter, &out).unwrap();
    assert_eq!(report.layers, 22);
    assert_eq!(report.rank, 4);
    let loaded = verdict_lora::LoraFactory::load_peft(&out, &Device::Cpu, DType::F32).unwrap();
    let model = Qwen3VL::load(
        &tiny_a(),
        DType::F32,
        &Device::Cpu,
        Some(loaded.clone() as std::sync::Arc<dyn verdict_models::nn::LinearFactory>),
    )
    .unwrap();
    loaded.ensure_all_loaded().unwrap();
    assert_eq!(max_abs_diff(&logits(&model, &batch), &adapted), 0.0);
}

#[test]
fn model_card_states_the_run_metrics_and_data() {
    let work = tempfile::tempdir().unwrap();
    let run = work.path().join("run");
    std::fs::create_dir_all(run.join("data")).unwrap();
    std::fs::write(run.join("data/train.jsonl"), "{}\n{}\n{}\n").unwrap();
    std::fs::write(run.join("data/val.jsonl"), "{}\n").unwrap();
    std::fs::write(
        run.join("summary.json"),
        r#"{"finish":"Completed","steps":40,"total_steps":40,
            "initial":{"macro_f1":0.31,"accuracy":0.5,"label_loss":0.9,"samples":12},
            "best":[30,{"macro_f1":0.8765,"accuracy":0.9,"label_loss":0.2,"samples":12}]}"#,
    )
    .unwrap();
    std::fs::write(
        run.join("metrics.jsonl"),
        "{\"step\":1,\"loss\":2.0}\n{\"step\":40,\"loss\":0.125}\n",
    )
    .unwrap();
    std::fs::write(
        run.join("train_config.json"),
        r#"{"epochs":3,"learning_rate":0.0002,"lora":{"r":16},"seed":7}"#,
    )
    .unwrap();
    let inputs = card::CardInputs {
        title: "nsfw-triage".into(),
        base_model: "Qwen/Qwen3-VL-2B-Instruct".into(),
        format: "merged".into(),
        task: Some(card::TaskInfo {
            name: "nsfw".into(),
            description: "Is the image safe for work?".into(),
            labels: vec!["safe".into(), "unsafe".into()],
        }),
        run_dir: Some(run),
    };
    let text = card::render(&inputs).unwrap();
    for needle in [
        "base_model: \"Qwen/Qwen3-VL-2B-Instruct\"",
        "`safe`, `unsafe`",
        "- train: 3 examples",
        "- val: 1 examples",
        "| best checkpoint (validation) | 30 | 0.8765 | 0.9000 | 12 |",
        "0.3100",
        "Final training loss: 0.1250",
        "- LoRA rank: 16",
        "## Intended use",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from\n{text}");
    }
    let bare = card::render(&card::CardInputs {
        title: "x".into(),
        format: "peft".into(),
        ..Default::default()
    })
    .unwrap();
    assert!(bare.contains("No metrics files were found"));
    assert!(bare.contains("library_name: peft"));
}
