//! The five fine-tuning scenarios on a synthetic image-text task (coloured shapes, labelled by
//! colour) with the tiny CLIP and SigLIP checkpoints of the parity fixtures, on CPU.
//!
//! The tiny checkpoints are random, so their zero-shot accuracy is near chance (1/4); every
//! scenario that learns from the training pairs must beat it clearly on held-out pairs.

use std::path::{Path, PathBuf};

use candle_core::Device;
use verdict_encoders::train::data::{synthetic_shapes, SYNTHETIC_COLOURS};
use verdict_encoders::train::{run, Scenario, ScenarioReport, TrainConfig};

fn checkpoint(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .join("tiny")
}

fn labels() -> Vec<String> {
    SYNTHETIC_COLOURS
        .iter()
        .map(|(c, _)| c.to_string())
        .collect()
}

fn config(scenario: Scenario, epochs: usize) -> TrainConfig {
    TrainConfig {
        scenario,
        epochs,
        batch_size: 16,
        gradient_accumulation: 1,
        projection_learning_rate: 1e-2,
        lora_learning_rate: 1e-2,
        warmup_ratio: 0.1,
        lora_r: 4,
        lora_alpha: 8.0,
        templates: vec![
            "a {} square".into(),
            "a {} circle".into(),
            "a {} triangle".into(),
        ],
        ..TrainConfig::default()
    }
}

fn train_scenario(model: &str, config: &TrainConfig, out: &Path) -> ScenarioReport {
    let train = synthetic_shapes(96, 32, 1);
    let eval = synthetic_shapes(48, 32, 2);
    let labels = labels();
    run(
        &checkpoint(model),
        config,
        &train,
        &eval,
        &labels,
        &labels,
        out,
        &Device::Cpu,
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("{} on {model}: {e}", config.scenario.name()))
}

#[test]
fn every_scenario_trains_and_fine_tuning_beats_zero_shot() {
    let dir = tempfile::tempdir().unwrap();
    let mut table = Vec::new();
    for scenario in Scenario::ALL {
        let report = train_scenario(
            "clip",
            &config(scenario, 6),
            &dir.path().join(scenario.name()),
        );
        table.push((scenario, report));
    }
    for (scenario, report) in &table {
        eprintln!(
            "{:<13} accuracy {:.3} (base zero-shot {:.3}) i2t R@1 {:.3} -> {:?} losses {:?}",
            scenario.name(),
            report.accuracy,
            report.base_zero_shot_accuracy,
            report.retrieval_base.image_to_text.recall_at[0].1,
            report
                .retrieval_finetuned
                .as_ref()
                .map(|m| m.image_to_text.recall_at[0].1),
            report.epoch_losses
        );
    }
    let zero_shot = table[0].1.accuracy;
    assert!(
        zero_shot < 0.5,
        "a random model should be near chance, got {zero_shot}"
    );
    for (scenario, report) in &table[1..] {
        assert!(
            report.accuracy >= zero_shot + 0.2,
            "{} reached {:.3}, zero-shot {:.3}",
            scenario.name(),
            report.accuracy,
            zero_shot
        );
        if scenario.is_contrastive() {
            let losses = &report.epoch_losses;
            assert!(
                losses.last() < losses.first(),
                "{}: loss {losses:?}",
                scenario.name()
            );
            assert!(dir
                .path()
                .join(scenario.name())
                .join("epoch-6/adapter/adapter_model.safetensors")
                .exists());
        }
    }
    assert!(dir
        .path()
        .join("linear_probe/head/head.safetensors")
        .exists());
}

#[test]
fn siglip_dual_lora_learns_with_the_sigmoid_loss() {
    let dir = tempfile::tempdir().unwrap();
    let zero = train_scenario(
        "siglip",
        &config(Scenario::ZeroShot, 1),
        &dir.path().join("zero"),
    );
    let tuned = train_scenario(
        "siglip",
        &config(Scenario::DualLora, 6),
        &dir.path().join("dual"),
    );
    eprintln!(
        "siglip zero-shot {:.3}, dual_lora {:.3}, losses {:?}",
        zero.accuracy, tuned.accuracy, tuned.epoch_losses
    );
    assert!(tuned.accuracy >= zero.accuracy + 0.2);
    assert!(tuned.epoch_losses.last() < tuned.epoch_losses.first());
}

#[test]
fn resuming_from_an_epoch_checkpoint_continues_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(Scenario::DualLora, 3);
    cfg.gradient_accumulation = 2;
    let straight = train_scenario("clip", &cfg, &dir.path().join("straight"));

    let resumed_dir = dir.path().join("resumed");
    let mut first = cfg.clone();
    first.epochs = 3;
    // Simulate an interruption after epoch 2: train 3 epochs, drop the last checkpoint, resume.
    train_scenario("clip", &first, &resumed_dir);
    std::fs::remove_dir_all(resumed_dir.join("epoch-3")).unwrap();
    let mut again = cfg.clone();
    again.resume = true;
    let resumed = train_scenario("clip", &again, &resumed_dir);
    assert_eq!(resumed.resumed_from_epoch, Some(2));
    assert_eq!(resumed.epoch_losses.len(), 3);
    for (a, b) in straight.epoch_losses.iter().zip(&resumed.epoch_losses) {
        assert!(
            (a - b).abs() < 1e-5,
            "{:?} vs {:?}",
            straight.epoch_losses,
            resumed.epoch_losses
        );
    }
    assert!((straight.accuracy - resumed.accuracy).abs() < 1e-9);
}
