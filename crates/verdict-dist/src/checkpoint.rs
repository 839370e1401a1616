//! Checkpoints in a data-parallel run: parameters and optimiser state are identical on every
//! rank after each step, so rank 0 alone writes them; the others wait until it has finished
//! (a rank that read or resumed from a half-written checkpoint would diverge) and learn
//! whether it succeeded.

use crate::comm::Communicator;
use crate::error::{DistError, Result};

/// Runs `write` on rank 0 only; every rank returns once rank 0 has finished. On rank 0 a
/// failure comes back as the writer's error; on other ranks as an error saying rank 0 failed,
/// so that all ranks stop together instead of waiting at the next collective.
pub fn write_on_rank_zero<E: std::fmt::Display>(
    comm: &dyn Communicator,
    write: impl FnOnce() -> std::result::Result<(), E>,
) -> Result<()> {
    let mut status = [0.0f32];
    let mut outcome = Ok(());
    if comm.rank() == 0 {
        match write() {
            Ok(()) => status[0] = 1.0,
            Err(error) => outcome = Err(DistError::Checkpoint(error.to_string())),
        }
    }
    comm.broadcast(&mut status, 0)?;
    if comm.rank() != 0 && status[0] != 1.0 {
        return Err(DistError::Checkpoint(
            "rank 0 failed to write the checkpoint (see its log)".into(),
        ));
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comm::LocalWorld;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn only_rank_zero_writes_and_failures_reach_everyone() {
        let writes = AtomicUsize::new(0);
        let ranks = LocalWorld::ranks(3);
        std::thread::scope(|scope| {
            for comm in ranks {
                let writes = &writes;
                scope.spawn(move || {
                    write_on_rank_zero(&comm, || {
                        writes.fetch_add(1, Ordering::SeqCst);
                        Ok::<(), String>(())
                    })
                    .unwrap();
                    let failed = write_on_rank_zero(&comm, || Err("disk full"));
                    let message = failed.unwrap_err().to_string();
                    if comm.rank() == 0 {
                        assert!(message.contains("disk full"), "{message}");
                    } else {
                        assert!(message.contains("rank 0 failed"), "{message}");
                    }
                });
            }
        });
        assert_eq!(writes.load(Ordering::SeqCst), 1);
    }
}
