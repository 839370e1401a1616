//! Error type of the quantisation crate.

/// Everything that can go wrong while quantising weights or running quantised layers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// Quantised data whose sizes do not fit together (a corrupted or foreign state).
    #[error("invalid quantised state: {0}")]
    Invalid(String),
}

/// Result alias of the quantisation crate.
pub type Result<T> = std::result::Result<T, Error>;

impl From<Error> for verdict_models::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::Candle(e) => verdict_models::Error::from(e),
            Error::Invalid(message) => verdict_models::Error::Config(message),
        }
    }
}
