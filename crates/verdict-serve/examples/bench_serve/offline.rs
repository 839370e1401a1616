//! The model without the server: the throughput the service is compared with, and what one
//! model call costs at each batch size (the floor under any batcher's latency).
//!
//! Every figure covers the device's work: a batch's results are on the host when the model
//! call returns.

use std::sync::mpsc;
use std::time::Instant;

use anyhow::anyhow;
use verdict_serve::{ClassifyInput, PreparedInput, ServedModel};

/// Items per second over `inputs` in batches of `batch`, each batch's host work (prompt,
/// tokens, image patches copied to the device) done on other threads while the previous
/// batch runs: what the service does with requests that wait in its queue.
pub fn pipelined(
    model: &ServedModel,
    inputs: &[ClassifyInput],
    batch: usize,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    std::thread::scope(|scope| {
        // One batch prepared ahead: host memory (and device memory for the pixels) stays
        // bounded at two batches.
        let (sender, receiver) = mpsc::sync_channel::<Vec<PreparedInput>>(1);
        let producer = scope.spawn(move || -> anyhow::Result<()> {
            for chunk in inputs.chunks(batch.max(1)) {
                let prepared = collect(model.prepare_all(chunk.to_vec()))?;
                if sender.send(prepared).is_err() {
                    break;
                }
            }
            Ok(())
        });
        for prepared in receiver {
            check(model.classify_prepared(prepared))?;
        }
        producer
            .join()
            .map_err(|_| anyhow!("the preparing thread panicked"))?
    })?;
    Ok(inputs.len() as f64 / started.elapsed().as_secs_f64())
}

/// Items per second when each batch is prepared and then run, one after the other.
pub fn one_at_a_time(
    model: &ServedModel,
    inputs: &[ClassifyInput],
    batch: usize,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    for chunk in inputs.chunks(batch.max(1)) {
        check(model.classify_batch(chunk))?;
    }
    Ok(inputs.len() as f64 / started.elapsed().as_secs_f64())
}

/// Mean host time of preparing one batch of `batch` items on all cores, in seconds.
pub fn preparation_seconds(
    model: &ServedModel,
    inputs: &[ClassifyInput],
    batch: usize,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut batches = 0usize;
    for chunk in inputs.chunks(batch.max(1)) {
        collect(model.prepare_all(chunk.to_vec()))?;
        batches += 1;
    }
    Ok(started.elapsed().as_secs_f64() / batches.max(1) as f64)
}

/// Cost of one model call on prepared items.
#[derive(Debug, Clone, Copy)]
pub struct CallCost {
    pub batch: usize,
    /// Mean wall time of one call, in milliseconds.
    pub ms: f64,
    pub items_per_second: f64,
}

/// The model thread's share alone: calls of each size in `sizes` on items prepared outside
/// the clock, after one untimed call of that size. A served request at batch size b waits at
/// least one such call.
pub fn model_calls(
    model: &ServedModel,
    inputs: &[ClassifyInput],
    sizes: &[usize],
) -> anyhow::Result<Vec<CallCost>> {
    let mut costs = Vec::with_capacity(sizes.len());
    for &batch in sizes {
        // One call of this size outside the clock: a shape's first call picks its kernels.
        if let Some(first) = inputs.chunks(batch.max(1)).next() {
            check(model.classify_prepared(collect(model.prepare_all(first.to_vec()))?))?;
        }
        let mut seconds = 0.0;
        let mut calls = 0usize;
        let mut items = 0usize;
        for chunk in inputs.chunks(batch.max(1)) {
            let prepared = collect(model.prepare_all(chunk.to_vec()))?;
            let started = Instant::now();
            check(model.classify_prepared(prepared))?;
            seconds += started.elapsed().as_secs_f64();
            calls += 1;
            items += chunk.len();
        }
        costs.push(CallCost {
            batch,
            ms: 1000.0 * seconds / calls.max(1) as f64,
            items_per_second: items as f64 / seconds,
        });
    }
    Ok(costs)
}

/// Batch sizes 1, 2, 4, ... up to `max` (and `max` itself).
pub fn sizes_up_to(max: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> = std::iter::successors(Some(1usize), |&s| Some(s * 2))
        .take_while(|&s| s < max)
        .collect();
    sizes.push(max.max(1));
    sizes
}

fn collect<T, E: std::fmt::Debug>(results: Vec<Result<T, E>>) -> anyhow::Result<Vec<T>> {
    results
        .into_iter()
        .map(|r| r.map_err(|e| anyhow!("preparing an item: {e:?}")))
        .collect()
}

fn check<T, E: std::fmt::Debug>(results: Vec<Result<T, E>>) -> anyhow::Result<()> {
    for result in results {
        result.map_err(|e| anyhow!("model call: {e:?}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes_double_up_to_the_largest() {
        assert_eq!(sizes_up_to(32), [1, 2, 4, 8, 16, 32]);
        assert_eq!(sizes_up_to(24), [1, 2, 4, 8, 16, 24]);
        assert_eq!(sizes_up_to(1), [1]);
    }
}
