//! The launch environment of a data-parallel run, as `torchrun` (and `torch.distributed`
//! launchers generally, Slurm wrappers, Kubernetes operators) sets it: one process per GPU,
//! each told its place by environment variables.
//!
//! | variable | meaning |
//! |---|---|
//! | `RANK` | this process among all processes, `0..WORLD_SIZE` |
//! | `WORLD_SIZE` | number of processes over all hosts |
//! | `LOCAL_RANK` | this process on its host, `0..LOCAL_WORLD_SIZE`; picks the GPU |
//! | `LOCAL_WORLD_SIZE` | processes on this host |
//! | `MASTER_ADDR`, `MASTER_PORT` | where rank 0 listens for the rendezvous |
//!
//! torchrun's agent keeps its own key-value store on `MASTER_PORT` and says so with
//! `TORCHELASTIC_USE_AGENT_STORE=True`; rank 0 then listens on `MASTER_PORT + 1` for Verdict's
//! rendezvous ([`LaunchEnv::rendezvous_endpoint`]). Other launchers leave the port free.
//!
//! No variable set means a plain single-process run. Some set and others missing is an error
//! that names the missing ones, because a half-configured rank would otherwise train alone
//! and silently diverge from its peers.

use crate::error::{DistError, Result};

/// Where this process sits in a data-parallel run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LaunchEnv {
    pub rank: usize,
    pub world_size: usize,
    pub local_rank: usize,
    pub local_world_size: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// torchrun's agent holds `MASTER_PORT` (`TORCHELASTIC_USE_AGENT_STORE=True`).
    #[serde(default)]
    pub agent_store: bool,
}

const VARIABLES: [&str; 6] = [
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
];

impl LaunchEnv {
    /// A single process (rank 0 of 1) on the loopback address.
    pub fn single() -> Self {
        Self {
            rank: 0,
            world_size: 1,
            local_rank: 0,
            local_world_size: 1,
            master_addr: "127.0.0.1".into(),
            master_port: 29500,
            agent_store: false,
        }
    }

    /// Reads the process environment; `Ok(None)` when none of the variables is set.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let values: Vec<Option<String>> = VARIABLES
            .iter()
            .map(|name| lookup(name).filter(|v| !v.trim().is_empty()))
            .collect();
        if values.iter().all(Option::is_none) {
            return Ok(None);
        }
        let missing: Vec<&str> = VARIABLES
            .iter()
            .zip(&values)
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| *name)
            .collect();
        if !missing.is_empty() {
            return Err(DistError::Launch(format!(
                "{} set but {} missing; launch with torchrun (or set all of {})",
                VARIABLES
                    .iter()
                    .zip(&values)
                    .filter(|(_, v)| v.is_some())
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
                missing.join(", "),
                VARIABLES.join(", ")
            )));
        }
        let text = |i: usize| values[i].as_deref().unwrap_or_default().trim().to_string();
        let number = |i: usize| -> Result<usize> {
            text(i).parse().map_err(|_| {
                DistError::Launch(format!(
                    "{}=`{}` is not a non-negative whole number",
                    VARIABLES[i],
                    text(i)
                ))
            })
        };
        let port: u16 = text(5).parse().ok().filter(|p| *p > 0).ok_or_else(|| {
            DistError::Launch(format!("MASTER_PORT=`{}` is not a port (1-65535)", text(5)))
        })?;
        let env = Self {
            rank: number(0)?,
            world_size: number(1)?,
            local_rank: number(2)?,
            local_world_size: number(3)?,
            master_addr: text(4),
            master_port: port,
            agent_store: lookup("TORCHELASTIC_USE_AGENT_STORE")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
        };
        env.validate()?;
        Ok(Some(env))
    }

    /// Checks that the numbers describe a possible layout.
    pub fn validate(&self) -> Result<()> {
        let fail = |message: String| Err(DistError::Launch(message));
        if self.world_size == 0 || self.local_world_size == 0 {
            return fail("WORLD_SIZE and LOCAL_WORLD_SIZE must be at least 1".into());
        }
        if self.rank >= self.world_size {
            return fail(format!(
                "RANK={} must be below WORLD_SIZE={} (ranks are 0-based)",
                self.rank, self.world_size
            ));
        }
        if self.local_rank >= self.local_world_size {
            return fail(format!(
                "LOCAL_RANK={} must be below LOCAL_WORLD_SIZE={}",
                self.local_rank, self.local_world_size
            ));
        }
        if self.local_world_size > self.world_size {
            return fail(format!(
                "LOCAL_WORLD_SIZE={} exceeds WORLD_SIZE={}",
                self.local_world_size, self.world_size
            ));
        }
        Ok(())
    }

    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    /// `MASTER_ADDR:MASTER_PORT`.
    pub fn master_endpoint(&self) -> String {
        self.endpoint(self.master_port)
    }

    /// The `host:port` rank 0 listens on for Verdict's rendezvous: `MASTER_PORT`, or the port
    /// after it when torchrun's agent store holds `MASTER_PORT`.
    pub fn rendezvous_endpoint(&self) -> Result<String> {
        if !self.agent_store {
            return Ok(self.master_endpoint());
        }
        let port = self.master_port.checked_add(1).ok_or_else(|| {
            DistError::Launch("MASTER_PORT=65535 leaves no port for the rendezvous".into())
        })?;
        Ok(self.endpoint(port))
    }

    fn endpoint(&self, port: u16) -> String {
        if self.master_addr.contains(':') && !self.master_addr.starts_with('[') {
            format!("[{}]:{port}", self.master_addr)
        } else {
            format!("{}:{port}", self.master_addr)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const FULL: [(&str, &str); 6] = [
        ("RANK", "5"),
        ("WORLD_SIZE", "8"),
        ("LOCAL_RANK", "1"),
        ("LOCAL_WORLD_SIZE", "4"),
        ("MASTER_ADDR", "node-0"),
        ("MASTER_PORT", "29500"),
    ];

    #[test]
    fn reads_a_torchrun_environment() {
        let env = LaunchEnv::from_lookup(lookup(&FULL)).unwrap().unwrap();
        assert_eq!(
            (
                env.rank,
                env.world_size,
                env.local_rank,
                env.local_world_size
            ),
            (5, 8, 1, 4)
        );
        assert_eq!(env.master_endpoint(), "node-0:29500");
        assert_eq!(env.rendezvous_endpoint().unwrap(), "node-0:29500");
        let mut under_torchrun = FULL.to_vec();
        under_torchrun.push(("TORCHELASTIC_USE_AGENT_STORE", "True"));
        let env = LaunchEnv::from_lookup(lookup(&under_torchrun))
            .unwrap()
            .unwrap();
        assert_eq!(env.rendezvous_endpoint().unwrap(), "node-0:29501");
        assert!(LaunchEnv::from_lookup(lookup(&[])).unwrap().is_none());
    }

    #[test]
    fn names_what_is_wrong() {
        let message = LaunchEnv::from_lookup(lookup(&FULL[..2]))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT missing"),
            "{message}"
        );
        for (name, value, needle) in [
            ("RANK", "8", "RANK=8 must be below WORLD_SIZE=8"),
            ("RANK", "-1", "RANK=`-1`"),
            ("LOCAL_RANK", "4", "LOCAL_RANK=4 must be below"),
            ("LOCAL_WORLD_SIZE", "16", "exceeds WORLD_SIZE"),
            ("MASTER_PORT", "0", "MASTER_PORT=`0`"),
            ("MASTER_PORT", "70000", "MASTER_PORT=`70000`"),
            ("WORLD_SIZE", "0", "at least 1"),
        ] {
            let mut pairs = FULL.to_vec();
            pairs.iter_mut().find(|(k, _)| *k == name).unwrap().1 = value;
            let message = LaunchEnv::from_lookup(lookup(&pairs))
                .unwrap_err()
                .to_string();
            assert!(message.contains(needle), "{name}={value}: {message}");
        }
    }
}
