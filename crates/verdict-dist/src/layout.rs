//! How the samples of a global batch are spread over ranks, and the rule for resuming a run
//! with a different number of ranks.
//!
//! A step consumes the next `global_batch` positions of the epoch's sample order (which
//! depends only on the seed and the epoch). Rank `r` of `W` takes the positions
//! `r, r + W, ...` of that step's slice and splits them into micro-batches. Because each rank
//! weights its gradient by its sample count ([`crate::grads`]), the averaged gradient is the
//! one of the whole step's samples however they were split.
//!
//! # Resuming with another world size
//! A checkpoint records the optimiser step, the epoch, the position in the epoch's order (in
//! samples, global) and the global batch. Resuming on `W'` ranks keeps the global batch and
//! the position: the next step takes the same samples it would have taken before, so the
//! loss curve continues as if nothing changed (up to floating-point summation order). What
//! changes is the per-rank split: `global_batch = W' * micro_batch * accumulation` must hold,
//! so a world size that does not divide the global batch at the given micro-batch size is
//! refused with the sizes that would work. Optimiser moments are replicated on every rank,
//! so rank 0's checkpoint restores all ranks. Sources of per-rank randomness (dropout) are
//! seeded from `(seed, step, rank)` and do change with the world size.

use crate::error::{DistError, Result};

/// How one step's global batch is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchLayout {
    pub global_batch: usize,
    pub world_size: usize,
    pub micro_batch: usize,
    /// Micro-batches per rank per step.
    pub accumulation: usize,
}

/// Where a run stands; saved in checkpoints (by rank 0) and read back on resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    pub step: u64,
    pub epoch: usize,
    /// Samples of this epoch's order already consumed, over all ranks.
    pub position: usize,
    pub global_batch: usize,
    pub world_size: usize,
}

impl BatchLayout {
    pub fn new(global_batch: usize, world_size: usize, micro_batch: usize) -> Result<Self> {
        if global_batch == 0 || world_size == 0 || micro_batch == 0 {
            return Err(DistError::Resume(
                "global batch, world size and micro-batch must all be at least 1".into(),
            ));
        }
        let per_step = world_size * micro_batch;
        if global_batch % per_step != 0 {
            let valid: Vec<String> = (1..=global_batch / micro_batch)
                .filter(|w| global_batch % (w * micro_batch) == 0)
                .map(|w| w.to_string())
                .collect();
            return Err(DistError::Resume(format!(
                "a global batch of {global_batch} cannot be split over {world_size} ranks with \
                 micro-batches of {micro_batch}; world sizes that work at this micro-batch: {} \
                 (or change the micro-batch size)",
                valid.join(", ")
            )));
        }
        Ok(Self {
            global_batch,
            world_size,
            micro_batch,
            accumulation: global_batch / per_step,
        })
    }

    /// The layout for continuing `saved` on `world_size` ranks: same global batch, same
    /// position (see the module docs).
    pub fn resume(saved: &Progress, world_size: usize, micro_batch: usize) -> Result<Self> {
        Self::new(saved.global_batch, world_size, micro_batch).map_err(|e| match e {
            DistError::Resume(message) => DistError::Resume(format!(
                "checkpoint at step {} was made on {} ranks: {message}",
                saved.step, saved.world_size
            )),
            other => other,
        })
    }

    /// The sample indices rank `rank` processes in the step starting at `position` of
    /// `order` (shorter, possibly empty, at the end of an epoch).
    pub fn rank_samples(&self, order: &[usize], position: usize, rank: usize) -> Vec<usize> {
        let end = (position + self.global_batch).min(order.len());
        let step = order.get(position..end).unwrap_or(&[]);
        step.iter()
            .skip(rank)
            .step_by(self.world_size)
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_refuses_with_alternatives() {
        let layout = BatchLayout::new(32, 4, 2).unwrap();
        assert_eq!(layout.accumulation, 4);
        let message = BatchLayout::new(32, 3, 2).unwrap_err().to_string();
        assert!(
            message.contains("world sizes that work at this micro-batch: 1, 2, 4, 8, 16"),
            "{message}"
        );
    }

    #[test]
    fn a_step_takes_the_same_samples_on_any_world_size() {
        let order: Vec<usize> = (0..50).rev().collect();
        for world in [1, 2, 4, 8] {
            let layout = BatchLayout::new(16, world, 2).unwrap();
            for position in [0, 16, 48] {
                let mut taken: Vec<usize> = (0..world)
                    .flat_map(|rank| layout.rank_samples(&order, position, rank))
                    .collect();
                taken.sort();
                let mut expected = order[position..(position + 16).min(50)].to_vec();
                expected.sort();
                assert_eq!(taken, expected, "world {world} position {position}");
            }
        }
    }

    #[test]
    fn resume_keeps_the_global_batch() {
        let saved = Progress {
            step: 10,
            epoch: 1,
            position: 64,
            global_batch: 32,
            world_size: 8,
        };
        let layout = BatchLayout::resume(&saved, 2, 4).unwrap();
        assert_eq!((layout.global_batch, layout.accumulation), (32, 4));
        let message = BatchLayout::resume(&saved, 3, 4).unwrap_err().to_string();
        assert!(message.contains("made on 8 ranks"), "{message}");
    }
}
