//! How much memory quantisation saves on the layers it covers.

/// Totals over the quantised linear layers of a model.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct MemoryReport {
    pub layers: usize,
    pub parameters: usize,
    /// Bytes the same weights take in the model's dtype.
    pub dense_bytes: usize,
    /// Bytes actually held: codes plus all scales.
    pub quantised_bytes: usize,
}

impl MemoryReport {
    pub(crate) fn add(&mut self, parameters: usize, dtype_bytes: usize, quantised: usize) {
        self.layers += 1;
        self.parameters += parameters;
        self.dense_bytes += parameters * dtype_bytes;
        self.quantised_bytes += quantised;
    }

    /// Average stored bits per weight, scales included.
    pub fn bits_per_parameter(&self) -> f64 {
        8.0 * self.quantised_bytes as f64 / self.parameters.max(1) as f64
    }
}

impl std::fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
        write!(
            f,
            "{} linear layers, {} parameters: {:.2} MiB dense -> {:.2} MiB quantised ({:.3} bits/parameter, {:.1}x smaller)",
            self.layers,
            self.parameters,
            mib(self.dense_bytes),
            mib(self.quantised_bytes),
            self.bits_per_parameter(),
            self.dense_bytes as f64 / self.quantised_bytes.max(1) as f64
        )
    }
}
