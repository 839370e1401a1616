//! QLoRA on the tiny Qwen3-VL checkpoint: the same synthetic visual task as train_tiny.rs,
//! fine-tuned once on the full-precision base and once on an NF4 base (8-bit AdamW on top),
//! must reach about the same validation macro-F1.

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
use verdict_train::trainer::{self, Data};
use verdict_train::TrainConfig;

fn tiny_a() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../verdict-models/tests/fixtures/qwen3_vl/tiny_a")
}

const LABELS: [&str; 2] = ["red", "blue"];

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

fn data(dir: &Path, train: usize, val: usize) -> Data {
    let task = TaskSpec::parse(
        "name = \"colour\"\nkind = \"single_label\"\n[[labels]]\nname = \"red\"\n[[labels]]\nname = \"blue\"\n",
        Path::new("task.toml"),
    )
    .unwrap();
    let samples = |prefix: &str, count: usize, seed: u64| -> Vec<Sample> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..count)
            .map(|i| {
                let file = format!("{prefix}-{i}.png");
                draw(i % 2, &mut rng).save(dir.join(&file)).unwrap();
                let mut sample = Sample::new(format!("{prefix}-{i}"));
                sample.label = Some(LabelValue::Single(LABELS[i % 2].into()));
                sample.images = vec![file];
                sample
            })
            .collect()
    };
    Data {
        train: build_records(&task, &samples("train", train, 1), dir, AnswerFormat::Label).unwrap(),
        val: build_records(&task, &samples("val", val, 2), dir, AnswerFormat::Label).unwrap(),
        labels: LABELS.iter().map(|l| l.to_string()).collect(),
    }
}

fn run(data: &Data, config: &TrainConfig, out: &Path) -> (f64, f64) {
    let session = Session::load_quantised(
        &tiny_a(),
        &config.lora,
        &Device::Cpu,
        config.precision.dtype(&Device::Cpu),
        config.seed,
        config.quant,
    )
    .unwrap();
    let outcome = trainer::run(&session, data, config, out, false, &mut trainer::Silent).unwrap();
    let initial = outcome.initial.expect("validated before training").macro_f1;
    let (_, best) = outcome.best.expect("validated during training");
    (initial, best.macro_f1)
}

#[test]
fn nf4_base_reaches_the_full_precision_macro_f1() {
    let work = tempfile::tempdir().unwrap();
    let data = data(work.path(), 48, 16);
    let full = TrainConfig {
        lora: LoraConfig {
            r: 8,
            alpha: 16.0,
            dropout: 0.05,
            target_modules: TargetModules::default(),
            ..LoraConfig::default()
        },
        epochs: 4,
        learning_rate: 5e-3,
        warmup_ratio: 0.1,
        decay: Decay::Cosine,
        micro_batch_size: 4,
        grad_accumulation: 2,
        patience: 0,
        ..TrainConfig::default()
    };
    let mut qlora = full.clone();
    qlora.quant = Some(verdict_quant::Scheme::Nf4);
    qlora.optimizer.eight_bit = true;
    qlora.optimizer.min_8bit_size = 0;

    let (initial_full, best_full) = run(&data, &full, &work.path().join("full"));
    let (initial_nf4, best_nf4) = run(&data, &qlora, &work.path().join("nf4"));
    println!("macro-F1 full precision: {initial_full:.3} -> {best_full:.3}");
    println!("macro-F1 NF4 + 8-bit AdamW: {initial_nf4:.3} -> {best_nf4:.3}");
    assert!(
        best_nf4 >= initial_nf4 + 0.3,
        "NF4 fine-tuning did not learn: {initial_nf4} -> {best_nf4}"
    );
    // 16 validation images: one image is 0.0625 of accuracy; allow two.
    assert!(
        best_nf4 >= best_full - 0.13,
        "NF4 {best_nf4} vs full precision {best_full}"
    );
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(work.path().join("nf4/train_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        saved["config"]["quant"], "nf4",
        "the run records that its base was quantised"
    );
}
