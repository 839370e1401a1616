//! Device names as users type them (`cpu`, `cuda`, `cuda:N`).

use candle_core::Device;

use crate::{Error, Result};

/// Opens the device named `name`: `cpu`, `cuda` (the first GPU) or `cuda:N`.
///
/// A build without the `cuda` feature says so instead of candle's generic error.
pub fn parse_device(name: &str) -> Result<Device> {
    let name = name.trim();
    if name.eq_ignore_ascii_case("cpu") {
        return Ok(Device::Cpu);
    }
    let ordinal = match name.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| {
                Error::Config(format!(
                    "device `{name}`: expected `cuda:N` with N a number"
                ))
            })?,
        None => {
            return Err(Error::Config(format!(
                "unknown device `{name}`: use `cpu`, `cuda` or `cuda:N`"
            )))
        }
    };
    if !cfg!(feature = "cuda") {
        return Err(Error::Config(format!(
            "device `{name}`: this build has no CUDA support (build with `--features cuda`)"
        )));
    }
    Device::new_cuda(ordinal)
        .map_err(|e| Error::Config(format!("cannot open device `{name}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_parsed_and_bad_ones_explained() {
        assert!(matches!(parse_device("cpu"), Ok(Device::Cpu)));
        assert!(matches!(parse_device(" CPU "), Ok(Device::Cpu)));
        let message = |name: &str| parse_device(name).err().map(|e| e.to_string());
        assert!(message("tpu").is_some_and(|m| m.contains("unknown device `tpu`")));
        assert!(message("cuda:x").is_some_and(|m| m.contains("cuda:N")));
        if !cfg!(feature = "cuda") {
            assert!(message("cuda:0").is_some_and(|m| m.contains("--features cuda")));
            assert!(message("cuda").is_some_and(|m| m.contains("no CUDA support")));
        }
    }
}
