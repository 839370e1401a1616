//! The fine-tuning loop: shuffled micro-batches, gradient accumulation and clipping, AdamW on
//! the adapters only, scheduled learning rate, validation with early stopping, metrics and
//! checkpoints that make `resume` continue exactly.
//!
//! ```text
//! <out>/train_config.json   the settings, base model and data sizes of the run
//! <out>/metrics.jsonl       one line per optimiser step ("train") and validation ("validation")
//! <out>/checkpoints/        see [`crate::checkpoint`]
//! <out>/best/               PEFT adapter with the best validation macro-F1
//! <out>/adapter/            the adapter the run ends with (best if validated, else last)
//! <out>/summary.json        how the run finished, pre-training and best validation
//! ```

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use candle_core::Tensor;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batch::{encode, micro_batch_loss, Objective};
use crate::checkpoint::{self, TrainState};
use crate::config::TrainConfig;
use crate::optim::{clip_grad_norm, AdamW};
use crate::schedule::Schedule;
use crate::session::Session;
use crate::sft::SftRecord;
use crate::validate::{validate, Validation};
use crate::{Error, Result};

/// Training and validation conversations plus the task's label names (in task order).
#[derive(Debug, Clone)]
pub struct Data {
    pub train: Vec<SftRecord>,
    pub val: Vec<SftRecord>,
    pub labels: Vec<String>,
}

/// One optimiser step, as written to `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: u64,
    pub total_steps: u64,
    pub epoch: usize,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub samples: usize,
    pub samples_per_second: f64,
}

/// Callbacks for progress display and tests; every method has a no-op default.
pub trait Observer {
    fn on_start(&mut self, _first_step: u64, _total_steps: u64) {}
    fn on_step(&mut self, _record: &StepRecord) {}
    fn on_validation(&mut self, _step: u64, _validation: &Validation) {}
    /// Asked after every optimiser step (and its checkpoint); `true` ends the run at once,
    /// as a crash would, without final outputs.
    fn should_stop(&mut self, _step: u64) -> bool {
        false
    }
}

/// An observer that does nothing.
pub struct Silent;
impl Observer for Silent {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    Completed,
    EarlyStopped,
    Interrupted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub finish: Finish,
    pub steps: u64,
    pub total_steps: u64,
    pub initial: Option<Validation>,
    pub best: Option<(u64, Validation)>,
}

pub const METRICS_FILE: &str = "metrics.jsonl";

/// Runs (or, with `resume`, continues) fine-tuning into `out`.
pub fn run(
    session: &Session,
    data: &Data,
    config: &TrainConfig,
    out: &Path,
    resume: bool,
    observer: &mut dyn Observer,
) -> Result<Outcome> {
    config.validate()?;
    let mut data = data.clone();
    if let Some(rows) = config.max_rows {
        data.train.truncate(rows);
        data.val.truncate(rows);
    }
    if data.train.is_empty() {
        return Err(Error::Invalid("no training samples".into()));
    }
    let label_first_tokens = label_first_tokens(session, &data.labels, config.objective)?;
    std::fs::create_dir_all(out).map_err(crate::error::io_error(out))?;

    let vars = session.factory.trainable_vars();
    let mut optimizer = AdamW::new(vars.clone(), config.optimizer)?;
    let run_key = run_key(session, &data, config);
    let n = data.train.len();
    let per_step = config.micro_batch_size * config.grad_accumulation;
    let steps_per_epoch = n.div_ceil(per_step) as u64;
    let total_steps = steps_per_epoch * config.epochs as u64;
    let schedule = Schedule {
        peak_lr: config.learning_rate,
        warmup_steps: (total_steps as f64 * config.warmup_ratio).ceil() as u64,
        total_steps,
        decay: config.decay,
    };

    let existing = checkpoint::latest(out)?;
    let mut state = match (resume, existing) {
        (true, Some(dir)) => {
            let state = checkpoint::restore(&dir, &session.factory, &mut optimizer)?;
            if state.run_key != run_key {
                return Err(Error::Checkpoint {
                    path: dir,
                    message: "made with other settings or data; start a new output directory"
                        .into(),
                });
            }
            truncate_metrics(&out.join(METRICS_FILE), state.step)?;
            state
        }
        (false, Some(dir)) => {
            return Err(Error::Invalid(format!(
            "{} already holds a run (checkpoint {}); resume it or choose another output directory",
            out.display(),
            dir.display()
        )))
        }
        (_, None) => {
            truncate_metrics(&out.join(METRICS_FILE), 0)?;
            fresh_state(session, run_key)
        }
    };
    write_json(
        &out.join("train_config.json"),
        &serde_json::json!({
            "base": session.base_name(),
            "train_samples": data.train.len(),
            "val_samples": data.val.len(),
            "labels": data.labels,
            "adapted_layers": session.factory.adapted_paths().len(),
            "trainable_parameters": session.factory.num_trainable_parameters(),
            "config": config,
        }),
    )?;
    let mut metrics = MetricsWriter::open(&out.join(METRICS_FILE))?;
    observer.on_start(state.step, total_steps);

    if state.step == 0 && state.initial.is_none() && config.validate_before_training {
        if let Some(v) = run_validation(session, &data, &state, &mut metrics, observer)? {
            state.initial = Some(v);
        }
    }

    while state.epoch < config.epochs && !state.stopped {
        let order = epoch_order(n, config.seed, state.epoch);
        while state.position < n {
            let started = Instant::now();
            session.factory.set_training(true);
            let mut sums: Vec<Option<Tensor>> = vec![None; vars.len()];
            let sink = verdict_models::nn::GradSink::new();
            let (mut micro_batches, mut samples, mut loss_sum) = (0usize, 0usize, 0.0f64);
            for _ in 0..config.grad_accumulation {
                if state.position >= n {
                    break;
                }
                let end = (state.position + config.micro_batch_size).min(n);
                let examples = order[state.position..end]
                    .iter()
                    .map(|&i| encode(&session.preprocessor, &data.train[i], &data.labels))
                    .collect::<Result<Vec<_>>>()?;
                state.position = end;
                let loss = micro_batch_loss(
                    &session.model,
                    &examples,
                    session.preprocessor.pad_token(),
                    config.objective,
                    &label_first_tokens,
                    config.recompute.then_some(&sink),
                )?;
                loss_sum += loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
                let mut grads = loss.backward()?;
                sink.merge_into(&mut grads)?;
                for (slot, var) in sums.iter_mut().zip(&vars) {
                    if let Some(g) = grads.get(var.as_tensor()) {
                        *slot = Some(match slot.take() {
                            Some(sum) => (sum + g)?,
                            None => g.clone(),
                        });
                    }
                }
                micro_batches += 1;
                samples += examples.len();
            }
            session.factory.set_training(false);
            for grad in sums.iter_mut().flatten() {
                *grad = (&*grad / micro_batches as f64)?;
            }
            let grad_norm = clip_grad_norm(&mut sums, config.max_grad_norm)?;
            let lr = schedule.lr(state.step);
            optimizer.step(&sums, lr)?;
            state.step += 1;
            let record = StepRecord {
                step: state.step,
                total_steps,
                epoch: state.epoch,
                loss: loss_sum / micro_batches as f64,
                lr,
                grad_norm,
                samples,
                samples_per_second: samples as f64 / started.elapsed().as_secs_f64().max(1e-9),
            };
            metrics.write("train", &record)?;
            observer.on_step(&record);

            let epoch_done = state.position >= n;
            if epoch_done {
                state.epoch += 1;
                state.position = 0;
            }
            let last = epoch_done && state.epoch == config.epochs;
            let due = |every: Option<u64>, step: u64| match every {
                Some(every) => step % every == 0 || last,
                None => epoch_done,
            };
            let validate_now = due(config.validate_every_steps, state.step);
            let checkpoint_now = due(config.checkpoint_every_steps, state.step);
            if validate_now && !data.val.is_empty() {
                if let Some(v) = run_validation(session, &data, &state, &mut metrics, observer)? {
                    update_best(session, out, &mut state, v, config.patience)?;
                }
            }
            if checkpoint_now || state.stopped {
                state.rng = session.factory.rng_state();
                checkpoint::save(
                    out,
                    &state,
                    &session.factory,
                    &optimizer,
                    &session.base_name(),
                )?;
            }
            if observer.should_stop(state.step) {
                return Ok(outcome(Finish::Interrupted, &state, total_steps));
            }
            if state.stopped || epoch_done {
                break;
            }
        }
    }

    let best_dir = out.join("best");
    if state.best.is_some() && best_dir.exists() {
        session.factory.restore_peft_weights(&best_dir)?;
    }
    let final_dir = out.join("adapter");
    let tmp = out.join(".adapter.tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(crate::error::io_error(&tmp))?;
    }
    session.factory.save_peft(&tmp, &session.base_name())?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(crate::error::io_error(&final_dir))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(crate::error::io_error(&final_dir))?;
    let finish = if state.stopped {
        Finish::EarlyStopped
    } else {
        Finish::Completed
    };
    let result = outcome(finish, &state, total_steps);
    write_json(&out.join("summary.json"), &result)?;
    Ok(result)
}

fn outcome(finish: Finish, state: &TrainState, total_steps: u64) -> Outcome {
    Outcome {
        finish,
        steps: state.step,
        total_steps,
        initial: state.initial,
        best: state.best,
    }
}

fn fresh_state(session: &Session, run_key: String) -> TrainState {
    TrainState {
        epoch: 0,
        position: 0,
        step: 0,
        rng: session.factory.rng_state(),
        initial: None,
        best: None,
        bad_validations: 0,
        stopped: false,
        run_key,
    }
}

fn run_validation(
    session: &Session,
    data: &Data,
    state: &TrainState,
    metrics: &mut MetricsWriter,
    observer: &mut dyn Observer,
) -> Result<Option<Validation>> {
    if data.val.is_empty() {
        return Ok(None);
    }
    session.factory.set_training(false);
    let v = validate(
        &session.model,
        &session.preprocessor,
        &data.val,
        &data.labels,
    )?;
    metrics.write(
        "validation",
        &serde_json::json!({"step": state.step, "epoch": state.epoch, "validation": v}),
    )?;
    observer.on_validation(state.step, &v);
    Ok(Some(v))
}

/// Keeps the best adapter (strictly higher macro-F1) and counts validations without progress.
fn update_best(
    session: &Session,
    out: &Path,
    state: &mut TrainState,
    v: Validation,
    patience: usize,
) -> Result<()> {
    let improved = state
        .best
        .is_none_or(|(_, best)| v.macro_f1 > best.macro_f1);
    if improved {
        let tmp = out.join(".best.tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(crate::error::io_error(&tmp))?;
        }
        session.factory.save_peft(&tmp, &session.base_name())?;
        let best = out.join("best");
        if best.exists() {
            std::fs::remove_dir_all(&best).map_err(crate::error::io_error(&best))?;
        }
        std::fs::rename(&tmp, &best).map_err(crate::error::io_error(&best))?;
        state.best = Some((state.step, v));
        state.bad_validations = 0;
    } else {
        state.bad_validations += 1;
        if patience > 0 && state.bad_validations >= patience {
            state.stopped = true;
        }
    }
    Ok(())
}

/// The same shuffled order for an epoch in every run with the same seed.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(
        seed.wrapping_add(0x9e37_79b9_7f4a_7c15u64.wrapping_mul(epoch as u64 + 1)),
    );
    order.shuffle(&mut rng);
    order
}

fn label_first_tokens(
    session: &Session,
    labels: &[String],
    objective: Objective,
) -> Result<Vec<u32>> {
    if objective != Objective::LabelTokens {
        return Ok(Vec::new());
    }
    let ids = session.preprocessor.label_token_ids(labels)?;
    let firsts: Vec<u32> = ids.iter().map(|l| l[0]).collect();
    let mut unique = firsts.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != firsts.len() {
        return Err(Error::Invalid(format!(
            "objective label_tokens needs labels whose first tokens differ; {labels:?} share one"
        )));
    }
    Ok(firsts)
}

/// Digest of what must not change between a run and its resumption.
fn run_key(session: &Session, data: &Data, config: &TrainConfig) -> String {
    let ids: Vec<(&str, &str)> = data
        .train
        .iter()
        .chain(&data.val)
        .map(|r| (r.sample_id.as_str(), r.label.as_str()))
        .collect();
    let text =
        serde_json::json!({"config": config, "data": ids, "base": session.base_name()}).to_string();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(verdict_lora::st::write_atomic(path, &bytes)?)
}

/// Keeps the metric lines of steps up to `step` (the checkpoint a run resumes from), so a
/// resumed run's file reads as if it had never stopped.
fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(crate::error::io_error(path))?;
    let kept: String = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s <= step && step > 0)
        })
        .map(|line| format!("{line}\n"))
        .collect();
    Ok(verdict_lora::st::write_atomic(path, kept.as_bytes())?)
}

struct MetricsWriter {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl MetricsWriter {
    fn open(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(crate::error::io_error(path))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    fn write<T: Serialize>(&mut self, kind: &str, value: &T) -> Result<()> {
        let mut json = serde_json::to_value(value).map_err(|e| Error::Invalid(e.to_string()))?;
        if let Some(object) = json.as_object_mut() {
            object.insert("kind".into(), kind.into());
        }
        writeln!(self.file, "{json}")
            .and_then(|_| self.file.flush())
            .map_err(crate::error::io_error(&self.path))
    }
}
