//! Running the arena until Ctrl-C or SIGTERM, for the binary (which then needs no async code).

use std::net::SocketAddr;

use super::{bind, serve, AppState};

/// Binds `address` (loopback only unless `allow_remote`), calls `on_ready` with the bound
/// address, and serves until Ctrl-C or SIGTERM. Votes are committed as they arrive, so
/// stopping loses nothing.
pub fn serve_until_signal(
    state: AppState,
    address: SocketAddr,
    allow_remote: bool,
    on_ready: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = bind(address, allow_remote).await?;
        on_ready(listener.local_addr()?);
        serve(state, listener, shutdown_signal()).await
    })
}

async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("stopping the arena; every vote so far is stored");
}
