//! Evaluation: metrics, keep/review/demote policy, calibration, reports.
