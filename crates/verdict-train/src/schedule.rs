//! Learning-rate schedule: linear warmup, then cosine or linear decay to zero.
//!
//! The rate is a pure function of the optimiser step, so a resumed run needs no scheduler
//! state beyond the step count.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    #[default]
    Cosine,
    Linear,
    Constant,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub peak_lr: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
    pub decay: Decay,
}

impl Schedule {
    /// Rate for optimiser step `step` (0-based), as transformers' `get_cosine_schedule_with_warmup`
    /// and `get_linear_schedule_with_warmup`.
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.peak_lr * step as f64 / self.warmup_steps.max(1) as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        match self.decay {
            Decay::Cosine => self.peak_lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            Decay::Linear => self.peak_lr * (1.0 - progress),
            Decay::Constant => self.peak_lr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay() {
        let s = Schedule {
            peak_lr: 1.0,
            warmup_steps: 4,
            total_steps: 14,
            decay: Decay::Cosine,
        };
        assert_eq!(s.lr(0), 0.0);
        assert_eq!(s.lr(2), 0.5);
        assert_eq!(s.lr(4), 1.0);
        assert!((s.lr(9) - 0.5).abs() < 1e-12);
        assert!(s.lr(14).abs() < 1e-12);
        let linear = Schedule {
            decay: Decay::Linear,
            ..s
        };
        assert!((linear.lr(9) - 0.5).abs() < 1e-12);
        assert_eq!(linear.lr(100), 0.0);
    }
}
