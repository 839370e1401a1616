//! One module per subcommand: each has `Args` (clap) and `run(args) -> anyhow::Result<()>`.

// <commands-mod>
pub mod arena;
pub mod baseline;
mod candidates;
pub mod classify_image;
pub mod data;
pub mod embed;
pub mod encoders;
pub mod eval;
pub mod export;
mod image_stage;
pub mod init;
pub mod label;
pub mod media;
pub mod models;
pub mod ontology;
pub mod package;
mod pipeline;
pub mod predict;
mod progress;
pub mod render;
mod render_stage;
pub mod run;
pub mod search;
pub mod serve;
pub mod shard;
pub mod train;

/// Logs go to stderr so that stdout stays for results.
pub fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
