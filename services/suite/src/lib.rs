//! The `jixiao` binary's library: the demo year, the client commands and
//! their output. Which services a process runs, their configuration and
//! starting them live in `jixiao-suite` (shared with the test kit) and are
//! re-exported here.

pub mod client;
pub mod commands;
pub mod demo;
pub mod import;
pub mod table;

pub use jixiao_suite::{
    DEFAULT_ADDR, StartError, SuiteConfig, Target, parse_targets, start, start_with_admin,
};

/// The admin port's listener (`--admin-listen`), when one is asked for.
pub async fn bind_admin(
    at: Option<std::net::SocketAddr>,
) -> Result<Option<tokio::net::TcpListener>, String> {
    let Some(at) = at else { return Ok(None) };
    tokio::net::TcpListener::bind(at)
        .await
        .map(Some)
        .map_err(|e| format!("cannot listen on {at} (--admin-listen): {e}"))
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
