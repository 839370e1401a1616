//! Ranks as threads of one process: every collective meets in a shared slot guarded by a
//! mutex; the last rank to arrive completes it and wakes the others.
//!
//! Deterministic: contributions are summed in rank order whatever order the threads arrive
//! in, so results equal a sequential sum over ranks and tests can compare exactly.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::{check_root, Communicator};
use crate::error::{DistError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Sum,
    Broadcast(usize),
    Barrier,
}

#[derive(Default)]
struct Slot {
    operation: Option<Operation>,
    contributions: Vec<Option<Vec<f32>>>,
    arrived: usize,
    generation: u64,
    result: Arc<Vec<f32>>,
    failure: Option<String>,
}

struct Shared {
    size: usize,
    slot: Mutex<Slot>,
    done: Condvar,
    timeout: Duration,
}

/// Builds the ranks of an in-process world.
pub struct LocalWorld;

impl LocalWorld {
    /// `size` communicators, one per rank, to be moved into one thread each. A collective
    /// that waits longer than a minute for the other ranks fails instead of hanging.
    pub fn ranks(size: usize) -> Vec<LocalComm> {
        Self::with_timeout(size, Duration::from_secs(60))
    }

    pub fn with_timeout(size: usize, timeout: Duration) -> Vec<LocalComm> {
        let shared = Arc::new(Shared {
            size,
            slot: Mutex::new(Slot {
                contributions: vec![None; size],
                ..Slot::default()
            }),
            done: Condvar::new(),
            timeout,
        });
        (0..size)
            .map(|rank| LocalComm {
                rank,
                shared: shared.clone(),
            })
            .collect()
    }
}

/// One rank of a [`LocalWorld`].
pub struct LocalComm {
    rank: usize,
    shared: Arc<Shared>,
}

impl LocalComm {
    fn collective(&self, operation: Operation, buffer: &mut [f32]) -> Result<()> {
        let shared = &self.shared;
        let mut slot = shared.slot.lock().map_err(poisoned)?;
        if let Some(failure) = &slot.failure {
            return Err(DistError::Collective(failure.clone()));
        }
        match slot.operation {
            None => slot.operation = Some(operation),
            Some(current) if current != operation => {
                let message = format!(
                    "rank {} called {operation:?} while other ranks called {current:?}; \
                     every rank must call the same collectives in the same order",
                    self.rank
                );
                slot.failure = Some(message.clone());
                shared.done.notify_all();
                return Err(DistError::Collective(message));
            }
            Some(_) => {}
        }
        if let Some(other) = slot.contributions.iter().flatten().next() {
            if other.len() != buffer.len() {
                let message = format!(
                    "rank {} passed {} values where another rank passed {}",
                    self.rank,
                    buffer.len(),
                    other.len()
                );
                slot.failure = Some(message.clone());
                shared.done.notify_all();
                return Err(DistError::Collective(message));
            }
        }
        slot.contributions[self.rank] = Some(buffer.to_vec());
        slot.arrived += 1;
        let generation = slot.generation;
        if slot.arrived == shared.size {
            let contributions: Vec<Vec<f32>> = slot
                .contributions
                .iter_mut()
                .map(|c| c.take().unwrap_or_default())
                .collect();
            let result = match operation {
                Operation::Sum => {
                    let mut sum = vec![0.0f32; buffer.len()];
                    for contribution in &contributions {
                        sum.iter_mut().zip(contribution).for_each(|(s, x)| *s += x);
                    }
                    sum
                }
                Operation::Broadcast(root) => contributions[root].clone(),
                Operation::Barrier => Vec::new(),
            };
            slot.result = Arc::new(result);
            slot.arrived = 0;
            slot.operation = None;
            slot.generation += 1;
            shared.done.notify_all();
        } else {
            let (next, timeout) = shared
                .done
                .wait_timeout_while(slot, shared.timeout, |s| {
                    s.generation == generation && s.failure.is_none()
                })
                .map_err(poisoned)?;
            slot = next;
            if let Some(failure) = &slot.failure {
                return Err(DistError::Collective(failure.clone()));
            }
            if timeout.timed_out() {
                let message = format!(
                    "rank {} waited {:?} for the other ranks of {operation:?}",
                    self.rank, shared.timeout
                );
                slot.failure = Some(message.clone());
                shared.done.notify_all();
                return Err(DistError::Collective(message));
            }
        }
        // The result of generation g can only be replaced once every rank has arrived at the
        // next collective, which this rank has not yet done.
        buffer.copy_from_slice(&slot.result[..buffer.len()]);
        Ok(())
    }
}

fn poisoned<T>(_: T) -> DistError {
    DistError::Collective("a rank panicked during a collective".into())
}

impl Communicator for LocalComm {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.shared.size
    }

    fn all_reduce_sum(&self, buffer: &mut [f32]) -> Result<()> {
        self.collective(Operation::Sum, buffer)
    }

    fn broadcast(&self, buffer: &mut [f32], root: usize) -> Result<()> {
        check_root(self, root)?;
        self.collective(Operation::Broadcast(root), buffer)
    }

    fn barrier(&self) -> Result<()> {
        self.collective(Operation::Barrier, &mut [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_ranks<T: Send>(size: usize, f: impl Fn(LocalComm) -> T + Sync) -> Vec<T> {
        let ranks = LocalWorld::ranks(size);
        std::thread::scope(|scope| {
            let handles: Vec<_> = ranks.into_iter().map(|c| scope.spawn(|| f(c))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn sums_means_and_broadcasts() {
        let results = on_ranks(3, |comm| {
            let rank = comm.rank() as f32;
            let mut out = Vec::new();
            for round in 0..50 {
                let mut buffer = vec![rank, rank * 10.0 + round as f32];
                comm.all_reduce_sum(&mut buffer).unwrap();
                out.push(buffer);
                let mut mean = vec![rank];
                comm.all_reduce_mean(&mut mean).unwrap();
                out.push(mean);
                let mut value = vec![rank + 100.0];
                comm.broadcast(&mut value, 2).unwrap();
                out.push(value);
                comm.barrier().unwrap();
            }
            out
        });
        for per_rank in &results {
            assert_eq!(per_rank, &results[0]);
        }
        assert_eq!(results[0][3 * 7], vec![3.0, 30.0 + 3.0 * 7.0]);
        assert_eq!(results[0][1], vec![1.0]);
        assert_eq!(results[0][2], vec![102.0]);
    }

    #[test]
    fn mismatched_calls_fail_on_every_rank() {
        let results = on_ranks(2, |comm| {
            let mut buffer = vec![0.0; 2 + comm.rank()];
            comm.all_reduce_sum(&mut buffer)
        });
        assert!(results.iter().all(Result::is_err), "{results:?}");
        let results = on_ranks(2, |comm| {
            if comm.rank() == 0 {
                comm.barrier()
            } else {
                comm.all_reduce_sum(&mut [1.0])
            }
        });
        let message = results
            .iter()
            .find_map(|r| r.as_ref().err())
            .unwrap()
            .to_string();
        assert!(message.contains("same collectives"), "{message}");
        assert!(results.iter().all(Result::is_err));
    }

    #[test]
    fn a_missing_rank_times_out() {
        let mut ranks = LocalWorld::with_timeout(2, Duration::from_millis(50));
        let _absent = ranks.pop();
        let message = ranks[0].barrier().unwrap_err().to_string();
        assert!(message.contains("waited"), "{message}");
    }
}
