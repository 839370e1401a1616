//! Logistic regression on sparse features, matching scikit-learn's lbfgs optimum.

pub mod lbfgs;
mod model;
mod objective;

pub use model::{ClassWeight, LogisticConfig, LogisticRegression, SolverReport};
