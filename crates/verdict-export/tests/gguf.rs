//! GGUF export round trips: read back with candle's GGUF reader (in Rust) and with llama.cpp's
//! `gguf` Python package, tensors compared with the source weights after dequantisation.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};
use common::{python, tiny_a, wide_checkpoint};
use verdict_export::gguf::{self, quant::Preset};

fn read(path: &Path) -> (Content, std::fs::File) {
    let mut file = std::fs::File::open(path).unwrap();
    let content = Content::read(&mut file).unwrap();
    (content, file)
}

fn u32_of(content: &Content, key: &str) -> u32 {
    content
        .metadata
        .get(key)
        .unwrap_or_else(|| panic!("{key} missing"))
        .to_u32()
        .unwrap()
}

/// Largest |restored - source| over the per-block bound of the tensor's type (see
/// tests/python/check_gguf.py for the derivation), and the relative RMS error.
fn error_ratio(type_name: &str, source: &[f32], restored: &[f32]) -> (f32, f32) {
    let block = match type_name {
        "F32" | "F16" => 1,
        "Q8_0" | "Q5_0" => 32,
        _ => 256,
    };
    let mut worst = 0f32;
    let (mut sq, mut ref_sq) = (0f64, 0f64);
    for (s, r) in source.chunks(block).zip(restored.chunks(block)) {
        let amax = s.iter().fold(0f32, |m, v| m.max(v.abs()));
        let lo = s.iter().fold(0f32, |m, v| m.min(*v));
        let hi = s.iter().fold(0f32, |m, v| m.max(*v));
        for (a, b) in s.iter().zip(r) {
            let bound = match type_name {
                "F32" => 1e-30,
                "F16" => (a.abs() * 2f32.powi(-11)).max(2f32.powi(-25)),
                "Q8_0" => amax * (0.5 / 127.0 + 2f32.powi(-11)),
                "Q5_0" => amax * (1.0 / 16.0 + 2f32.powi(-10)),
                "Q6_K" => amax / 63.0 * 1.5,
                "Q4_K" => (hi - lo) / 15.0,
                other => panic!("no bound for {other}"),
            };
            let err = (a - b).abs();
            worst = worst.max(err / bound * (1.0 - 1e-6));
            sq += f64::from(err).powi(2);
            ref_sq += f64::from(*a).powi(2);
        }
    }
    (worst, (sq / ref_sq.max(1e-30)).sqrt() as f32)
}

fn check_round_trip(dir: &Path, file: &Path, source: &BTreeMap<String, Tensor>, preset: Preset) {
    let report = gguf::export(dir, file, preset, "wide").unwrap();
    assert_eq!(report.vision_tensors_skipped, 1);
    let (content, mut reader) = read(file);
    assert_eq!(
        content.metadata["general.architecture"]
            .to_string()
            .unwrap(),
        "qwen3vl"
    );
    assert_eq!(u32_of(&content, "qwen3vl.block_count"), 8);
    assert_eq!(u32_of(&content, "qwen3vl.embedding_length"), 256);
    assert_eq!(u32_of(&content, "qwen3vl.attention.head_count_kv"), 2);
    assert_eq!(u32_of(&content, "general.file_type"), preset.file_type());
    let Value::Array(sections) = &content.metadata["qwen3vl.rope.dimension_sections"] else {
        panic!("sections")
    };
    let sections: Vec<i32> = sections.iter().map(|v| v.to_i32().unwrap()).collect();
    assert_eq!(sections, vec![16, 8, 8, 0]);
    assert_eq!(
        content.tensor_infos.len(),
        source.len() - 1,
        "all but the vision tensor"
    );

    let mut by_type: BTreeMap<String, (usize, f32, f32)> = BTreeMap::new();
    for written in &report.tensors {
        let info = &content.tensor_infos[&written.name];
        assert_eq!(
            info.shape.dims(),
            written.shape.as_slice(),
            "{}",
            written.name
        );
        let restored = content
            .tensor(&mut reader, &written.name, &Device::Cpu)
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let original = source[&written.source]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let (ratio, rms) = error_ratio(written.tensor_type, &original, &restored);
        assert!(
            ratio <= 1.0,
            "{} ({}): error {ratio} x bound",
            written.name,
            written.tensor_type
        );
        let entry = by_type.entry(written.tensor_type.to_string()).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(ratio);
        entry.2 = entry.2.max(rms);
    }
    for (tensor_type, (count, ratio, rms)) in &by_type {
        println!(
            "{:7} {tensor_type:5} tensors {count:3}  worst error / bound {ratio:.3}  worst relative RMS {rms:.5}",
            preset.name()
        );
    }
    let types = |name: &str| {
        report
            .tensors
            .iter()
            .find(|t| t.name == name)
            .unwrap()
            .tensor_type
    };
    match preset {
        Preset::F16 => assert_eq!(types("blk.0.attn_q.weight"), "F16"),
        Preset::Q8_0 => assert_eq!(types("token_embd.weight"), "Q8_0"),
        Preset::Q4KM => {
            // 8 layers: use_more_bits picks 0, 3, 6, 7 for attn_v / ffn_down.
            assert_eq!(types("token_embd.weight"), "Q6_K", "tied output");
            assert_eq!(types("blk.0.attn_v.weight"), "Q6_K");
            assert_eq!(types("blk.1.attn_v.weight"), "Q4_K");
            assert_eq!(types("blk.3.ffn_down.weight"), "Q6_K");
            assert_eq!(types("blk.4.ffn_down.weight"), "Q4_K");
            assert_eq!(types("blk.4.ffn_up.weight"), "Q4_K");
        }
    }
    assert_eq!(types("blk.0.attn_norm.weight"), "F32");
}

#[test]
fn each_preset_round_trips_within_its_error_bound() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("wide");
    let source = wide_checkpoint(&dir, 8, 7);
    for preset in [Preset::F16, Preset::Q8_0, Preset::Q4KM] {
        let file = work.path().join(format!("wide-{}.gguf", preset.name()));
        check_round_trip(&dir, &file, &source, preset);
    }
}

#[test]
fn gguf_python_package_reads_each_preset_back() {
    let python = python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_gguf.py");
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("wide");
    wide_checkpoint(&dir, 8, 11);
    for (model, tag) in [(dir.as_path(), "wide"), (tiny_a().as_path(), "tiny_a")] {
        for preset in [Preset::F16, Preset::Q8_0, Preset::Q4KM] {
            let file = work.path().join(format!("{tag}-{}.gguf", preset.name()));
            gguf::export(model, &file, preset, tag).unwrap();
            let output = std::process::Command::new(&python)
                .arg(&script)
                .arg(&file)
                .arg(model)
                .arg(preset.name())
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            println!("{tag}: {stdout}");
            assert!(
                output.status.success(),
                "{tag} {}: {}{stdout}",
                preset.name(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

#[test]
fn tiny_rows_fall_back_and_the_tokenizer_is_complete() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("tiny.gguf");
    let report = gguf::export(&tiny_a(), &file, Preset::Q4KM, "tiny_a").unwrap();
    assert!(report.vision_tensors_skipped > 0);
    let types = |name: &str| {
        report
            .tensors
            .iter()
            .find(|t| t.name == name)
            .unwrap()
            .tensor_type
    };
    // Rows of 64 cannot hold 256-element k-quant blocks: llama.cpp's fallbacks.
    assert_eq!(types("blk.1.attn_q.weight"), "Q5_0");
    assert_eq!(types("token_embd.weight"), "Q8_0");
    let (content, _) = read(&file);
    let Value::Array(tokens) = &content.metadata["tokenizer.ggml.tokens"] else {
        panic!("tokens")
    };
    assert_eq!(tokens.len(), 352);
    assert_eq!(tokens[322].to_string().unwrap(), "<|im_end|>");
    assert_eq!(u32_of(&content, "tokenizer.ggml.eos_token_id"), 322);
    assert_eq!(u32_of(&content, "qwen3vl.n_deepstack_layers"), 1);
    assert!(content.metadata["tokenizer.chat_template"]
        .to_string()
        .unwrap()
        .contains("<|im_start|>"));
}

#[test]
fn unknown_language_tensors_are_refused_and_nothing_is_written() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("odd");
    let mut tensors = wide_checkpoint(&dir, 1, 3);
    tensors.insert(
        "model.language_model.layers.0.mlp.mystery.weight".into(),
        Tensor::zeros((4, 4), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    verdict_lora::st::write(&dir.join("model.safetensors"), &tensors).unwrap();
    let file = work.path().join("odd.gguf");
    let err = gguf::export(&dir, &file, Preset::F16, "odd").unwrap_err();
    assert!(err.to_string().contains("mystery"), "{err}");
    assert!(!file.exists());
}
