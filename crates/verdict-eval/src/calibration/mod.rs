//! Calibration: how far probabilities are from observed frequencies, and two fixes for it.
//!
//! - [`reliability`]: equal-width bins, expected calibration error and diagram data.
//! - [`temperature`]: one scalar `T` dividing log-probabilities, fitted by minimising NLL.
//! - [`isotonic`]: a monotone step-free map fitted with pool-adjacent-violators.
//!
//! [`compare`] fits both on validation rows and reports before/after numbers on test rows.

pub mod compare;
pub mod isotonic;
pub mod reliability;
pub mod temperature;

pub use compare::{compare, CalibrationMethod, CalibrationReport, MethodResult, ProbabilityTable};
pub use isotonic::IsotonicRegression;
pub use reliability::{reliability, ReliabilityBin, ReliabilityDiagram};
pub use temperature::{fit_temperature, negative_log_likelihood, scale};
