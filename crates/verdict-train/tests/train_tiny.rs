//! Fine-tuning the tiny Qwen3-VL checkpoint of the model crate on a synthetic visual task:
//! it must beat its own pre-fine-tuning score by a wide margin, and a run stopped after a
//! checkpoint and resumed must end exactly where an uninterrupted run ends.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use verdict_core::{LabelValue, Sample, TaskSpec};
use verdict_lora::{LoraConfig, TargetModules};
use verdict_models::Device;
use verdict_train::schedule::Decay;
use verdict_train::session::Session;
use verdict_train::sft::{build_records, AnswerFormat};
use verdict_train::trainer::{self, Data, Finish, Observer};
use verdict_train::validate::Validation;
use verdict_train::TrainConfig;

fn tiny_a() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../verdict-models/tests/fixtures/qwen3_vl/tiny_a")
}

const LABELS: [&str; 2] = ["red", "blue"];

fn task() -> TaskSpec {
    TaskSpec::parse(
        "name = \"colour\"\nkind = \"single_label\"\n[[labels]]\nname = \"red\"\n[[labels]]\nname = \"blue\"\n",
        Path::new("task.toml"),
    )
    .unwrap()
}

/// A grey noisy 64x64 image with a red or blue square somewhere.
fn draw(class: usize, rng: &mut impl Rng) -> RgbImage {
    let colour = if class == 0 {
        [220, 30, 20]
    } else {
        [20, 40, 220]
    };
    let size = rng.random_range(24..40u32);
    let (x0, y0) = (
        rng.random_range(0..64 - size),
        rng.random_range(0..64 - size),
    );
    RgbImage::from_fn(64, 64, |x, y| {
        if (x0..x0 + size).contains(&x) && (y0..y0 + size).contains(&y) {
            Rgb(colour)
        } else {
            let g = rng.random_range(90..150u8);
            Rgb([g, g, g])
        }
    })
}

/// `count` samples alternating between the classes, images written under `dir`.
fn samples(dir: &Path, prefix: &str, count: usize, seed: u64) -> Vec<Sample> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let class = i % 2;
            let file = format!("{prefix}-{i}.png");
            draw(class, &mut rng).save(dir.join(&file)).unwrap();
            let mut sample = Sample::new(format!("{prefix}-{i}"));
            sample.label = Some(LabelValue::Single(LABELS[class].into()));
            sample.images = vec![file];
            sample
        })
        .collect()
}

fn data(dir: &Path, train: usize, val: usize) -> Data {
    let task = task();
    let train = samples(dir, "train", train, 1);
    let val = samples(dir, "val", val, 2);
    Data {
        train: build_records(&task, &train, dir, AnswerFormat::Label).unwrap(),
        val: build_records(&task, &val, dir, AnswerFormat::Label).unwrap(),
        labels: LABELS.iter().map(|l| l.to_string()).collect(),
    }
}

fn config() -> TrainConfig {
    TrainConfig {
        lora: LoraConfig {
            r: 8,
            alpha: 16.0,
            dropout: 0.05,
            target_modules: TargetModules::default(),
            ..LoraConfig::default()
        },
        learning_rate: 5e-3,
        warmup_ratio: 0.1,
        decay: Decay::Cosine,
        micro_batch_size: 4,
        grad_accumulation: 2,
        patience: 0,
        ..TrainConfig::default()
    }
}

fn session(config: &TrainConfig) -> Session {
    Session::load(
        &tiny_a(),
        &config.lora,
        &Device::Cpu,
        config.precision.dtype(&Device::Cpu),
        config.seed,
    )
    .unwrap()
}

#[test]
fn fine_tuning_beats_the_untrained_model_by_a_wide_margin() {
    let work = tempfile::tempdir().unwrap();
    let data = data(work.path(), 48, 16);
    let config = TrainConfig {
        epochs: 4,
        ..config()
    };
    let out = work.path().join("run");
    let outcome = trainer::run(
        &session(&config),
        &data,
        &config,
        &out,
        false,
        &mut trainer::Silent,
    )
    .unwrap();
    let initial = outcome.initial.expect("validated before training");
    let (_, best) = outcome.best.expect("validated during training");
    println!("before: {initial:?}\nbest:   {best:?}");
    assert_eq!(outcome.finish, Finish::Completed);
    assert!(
        best.accuracy >= 0.9,
        "accuracy {} after fine-tuning",
        best.accuracy
    );
    assert!(
        best.macro_f1 >= initial.macro_f1 + 0.3,
        "macro-F1 {} -> {}",
        initial.macro_f1,
        best.macro_f1
    );
    for file in [
        "adapter/adapter_model.safetensors",
        "best/adapter_config.json",
        "summary.json",
        "train_config.json",
        "metrics.jsonl",
    ] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    // The saved adapter is the best one: loading it reproduces the best validation.
    let loaded = verdict_lora::LoraFactory::load_peft(
        &out.join("adapter"),
        &Device::Cpu,
        verdict_models::DType::F32,
    )
    .unwrap();
    let model = verdict_models::qwen3_vl::Qwen3VL::load(
        &tiny_a(),
        verdict_models::DType::F32,
        &Device::Cpu,
        Some(loaded),
    )
    .unwrap();
    let preprocessor = verdict_models::qwen3_vl::inputs::Preprocessor::from_dir(&tiny_a()).unwrap();
    let again =
        verdict_train::validate::validate(&model, &preprocessor, &data.val, &data.labels).unwrap();
    assert_eq!(again.macro_f1, best.macro_f1);
}

struct StopAt(u64, Vec<Validation>);

impl Observer for StopAt {
    fn on_validation(&mut self, _step: u64, validation: &Validation) {
        self.1.push(*validation);
    }
    fn should_stop(&mut self, step: u64) -> bool {
        step == self.0
    }
}

fn metric_lines(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("samples_per_second");
            v
        })
        .collect()
}

/// The saved adapter of a run's output folder, by tensor name.
fn read_adapter(out: &Path) -> std::collections::HashMap<String, candle_core::Tensor> {
    candle_core::safetensors::load(
        out.join("adapter/adapter_model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap()
}

fn max_abs(t: &candle_core::Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn recomputed_layers_train_the_same_adapters() {
    let work = tempfile::tempdir().unwrap();
    let data = data(work.path(), 8, 2);
    let config = TrainConfig {
        epochs: 1,
        micro_batch_size: 2,
        grad_accumulation: 2,
        validate_before_training: false,
        lora: LoraConfig {
            dropout: 0.2,
            ..config().lora
        },
        ..config()
    };
    let run = |recompute: bool, out: &Path| {
        let config = TrainConfig {
            recompute,
            ..config.clone()
        };
        trainer::run(
            &session(&config),
            &data,
            &config,
            out,
            false,
            &mut trainer::Silent,
        )
        .unwrap();
        read_adapter(out)
    };
    let kept = run(false, &work.path().join("kept"));
    let recomputed = run(true, &work.path().join("recomputed"));
    assert_eq!(kept.len(), recomputed.len());
    for (name, tensor) in &kept {
        let scale = max_abs(tensor);
        let diff = max_abs(&(tensor - &recomputed[name]).unwrap());
        // Same arithmetic; only the order of a few gradient sums differs.
        assert!(
            diff <= 1e-5 * scale + 1e-6,
            "{name} differs by {diff} (scale {scale})"
        );
    }
    let losses = |dir: &str| -> Vec<f64> {
        metric_lines(&work.path().join(dir))
            .iter()
            .filter_map(|l| l["loss"].as_f64())
            .collect()
    };
    let (a, b) = (losses("kept"), losses("recomputed"));
    assert_eq!(a.len(), 2, "{a:?}");
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "loss {x} vs {y}");
    }
}

#[test]
fn resumed_run_ends_exactly_like_an_uninterrupted_one() {
    let work = tempfile::tempdir().unwrap();
    let data = data(work.path(), 12, 4);
    let config = TrainConfig {
        epochs: 2,
        micro_batch_size: 2,
        grad_accumulation: 2,
        checkpoint_every_steps: Some(2),
        validate_every_steps: Some(3),
        lora: LoraConfig {
            dropout: 0.2,
            ..config().lora
        },
        ..config()
    };
    let straight = work.path().join("straight");
    let full = trainer::run(
        &session(&config),
        &data,
        &config,
        &straight,
        false,
        &mut trainer::Silent,
    )
    .unwrap();
    assert_eq!(full.steps, 6);

    // Stop right after step 5 (the last checkpoint is step 4): step 5 is lost, as in a kill -9.
    let resumed = work.path().join("resumed");
    let mut stop = StopAt(5, Vec::new());
    let partial = trainer::run(
        &session(&config),
        &data,
        &config,
        &resumed,
        false,
        &mut stop,
    )
    .unwrap();
    assert_eq!(partial.finish, Finish::Interrupted);
    let err = trainer::run(
        &session(&config),
        &data,
        &config,
        &resumed,
        false,
        &mut trainer::Silent,
    )
    .expect_err("refuses to overwrite a run without resume");
    assert!(err.to_string().contains("resume"), "{err}");
    // A fresh process: new model, new adapters, state only from the checkpoint.
    let finished = trainer::run(
        &session(&config),
        &data,
        &config,
        &resumed,
        true,
        &mut trainer::Silent,
    )
    .unwrap();
    assert_eq!(finished, full);

    let (a, b) = (read_adapter(&straight), read_adapter(&resumed));
    assert_eq!(a.len(), b.len());
    for (name, tensor) in &a {
        let diff = max_abs(&(tensor - &b[name]).unwrap());
        assert_eq!(diff, 0.0, "{name} differs by {diff}");
    }
    assert_eq!(metric_lines(&straight), metric_lines(&resumed));
}

#[test]
fn answer_position_logits_match_full_forward() {
    // The loss projects only the answer positions (forward_hidden + project); that must equal
    // slicing the model's full logits, with left padding in the batch.
    use verdict_models::qwen3_vl::{Batch, Logits, Qwen3VL};
    let model = Qwen3VL::load(&tiny_a(), verdict_models::DType::F32, &Device::Cpu, None).unwrap();
    let batch = Batch::left_padded(
        vec![vec![5, 9, 17, 3, 8], vec![7, 2, 11]],
        320,
        None,
        Vec::new(),
    );
    let full = model
        .forward(&batch, None, Logits::All, false)
        .unwrap()
        .logits;
    let projected = model
        .project(&model.forward_hidden(&batch).unwrap())
        .unwrap();
    let diff = (full - projected)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-5, "logits differ by {diff}");
}
