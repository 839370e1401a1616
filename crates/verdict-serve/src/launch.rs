//! Running the service as a process: bind first, load the model in the background, serve
//! until Ctrl-C / SIGTERM, then finish the requests in flight.
//!
//! The socket opens before the model loads so orchestrators see a live process at once
//! (`/healthz`) and route traffic only when `/readyz` turns 200. A model that fails to load
//! stops the service with that error.

use std::path::PathBuf;

use crate::config::ServeConfig;
use crate::error::{Result, ServeError};
use crate::model::{ModelInfo, ServedModel};
use crate::placement::Placement;
use crate::state::{AppState, TaskSettings};

/// Everything `verdict serve` needs.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    pub model: PathBuf,
    pub adapter: Option<PathBuf>,
    /// `host:port`.
    pub address: String,
    pub config: ServeConfig,
    pub task: TaskSettings,
    /// Device and precision of the model.
    pub placement: Placement,
}

/// Serves until a shutdown signal; blocks the calling thread.
pub fn run_service(options: LaunchOptions) -> Result<()> {
    let mut info = ModelInfo::from_path(&options.model);
    if let Some(adapter) = &options.adapter {
        info.adapter = Some(ModelInfo::from_path(adapter).id);
    }
    let state = AppState::new(options.config.clone(), info, &options.task)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&options.address)
            .await
            .map_err(|e| ServeError::Config(format!("binding {}: {e}", options.address)))?;
        tracing::info!("listening on http://{}", listener.local_addr()?);
        let (failed, failure) = tokio::sync::oneshot::channel::<ServeError>();
        let loader = state.clone();
        let LaunchOptions {
            model,
            adapter,
            task,
            placement,
            ..
        } = options;
        tokio::task::spawn_blocking(move || {
            let loaded = ServedModel::load_on(&model, task.labels, adapter.as_deref(), &placement)
                .and_then(|served| loader.install(served));
            match loaded {
                Ok(()) => tracing::info!(
                    "model {} loaded on {}; ready",
                    model.display(),
                    placement.describe()
                ),
                Err(error) => {
                    let _ = failed.send(error);
                }
            }
        });
        let (report, load_error) = tokio::sync::oneshot::channel::<ServeError>();
        let shutdown = async move {
            let load_failed = async {
                match failure.await {
                    Ok(error) => {
                        let _ = report.send(error);
                    }
                    // Loaded fine: only a signal stops the service.
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = crate::shutdown_signal() => {},
                () = load_failed => {},
            }
        };
        crate::serve(listener, state, shutdown).await?;
        match load_error.await {
            Ok(error) => Err(error),
            Err(_) => Ok(()),
        }
    })
}
