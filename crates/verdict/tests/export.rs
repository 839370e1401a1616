//! `verdict export` end to end on the tiny Qwen3-VL checkpoint with an adapter PEFT made:
//! merged directory (logits equal PEFT's own merge), the adapter alone, GGUF, model card.

use std::path::{Path, PathBuf};
use std::process::Command;

use verdict_models::qwen3_vl::{Batch, Logits, Qwen3VL};
use verdict_models::{DType, Device};

fn tiny_a() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../verdict-models/tests/fixtures/qwen3_vl/tiny_a")
}

fn peft_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../verdict-lora/tests/fixtures/peft")
}

fn verdict(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(args)
        .output()
        .unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn merged_export_matches_peft_merge_and_unload() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("tiny-merged");
    let adapter = peft_fixtures().join("names");
    let output = verdict(&[
        "export",
        "--format",
        "merged",
        "--base",
        path(&tiny_a()),
        "--adapter",
        path(&adapter),
        "--out",
        path(&out),
        "--max-shard-mb",
        "1",
        "--model-card",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Every shard the index names is there (the tiny model fits one 1 MB shard; the
    // library's own tests split larger ones).
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    let shards: std::collections::BTreeSet<&str> = index["weight_map"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(!shards.is_empty());
    for shard in &shards {
        assert!(out.join(shard).exists(), "{shard} missing");
    }
    for file in [
        "config.json",
        "tokenizer.json",
        "chat_template.json",
        "generation_config.json",
        "README.md",
    ] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(
        card.contains("## Intended use") && card.contains("No metrics files were found"),
        "{card}"
    );

    // PEFT's own merge_and_unload logits on tiny_a's one_image sample.
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
    let batch = Batch::single(ids, Some(reference["one_image.pixel_values"].clone()), grid);
    let model = Qwen3VL::load(&out, DType::F32, &Device::Cpu, None).unwrap();
    let ours = model
        .forward(&batch, None, Logits::All, false)
        .unwrap()
        .logits
        .squeeze(0)
        .unwrap();
    let peft =
        candle_core::safetensors::load(peft_fixtures().join("reference.safetensors"), &Device::Cpu)
            .unwrap();
    let expected = &peft["names.merged_logits"];
    let diff = (ours - expected)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        diff < 1e-4,
        "merged export differs from PEFT's merge by {diff}"
    );
}

#[test]
fn peft_and_gguf_exports() {
    let work = tempfile::tempdir().unwrap();
    let adapter = peft_fixtures().join("names");
    let peft_out = work.path().join("adapter");
    let output = verdict(&[
        "export",
        "--format",
        "peft",
        "--adapter",
        path(&adapter),
        "--out",
        path(&peft_out),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(peft_out.join("adapter_model.safetensors").exists());
    assert!(peft_out.join("adapter_config.json").exists());

    let gguf_out = work.path().join("tiny");
    let output = verdict(&[
        "export",
        "--format",
        "gguf",
        "--quant",
        "q8_0",
        "--base",
        path(&tiny_a()),
        "--adapter",
        path(&adapter),
        "--out",
        path(&gguf_out),
        "--model-card",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("mmproj"),
        "the vision tower's absence is reported: {stderr}"
    );
    let bytes = std::fs::read(gguf_out.join("tiny-q8_0.gguf")).unwrap();
    assert_eq!(&bytes[..4], b"GGUF");
    assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 3);
    assert!(gguf_out.join("README.md").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&gguf_out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "scratch merge removed: {leftovers:?}");
}

#[test]
fn missing_inputs_are_explained() {
    let work = tempfile::tempdir().unwrap();
    let output = verdict(&[
        "export",
        "--format",
        "peft",
        "--out",
        path(&work.path().join("x")),
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--adapter"));
    let output = verdict(&[
        "export",
        "--format",
        "merged",
        "--out",
        path(&work.path().join("y")),
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--base"));
}
