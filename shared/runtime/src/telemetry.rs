//! Structured logging: human-readable on a terminal, JSON lines for log
//! collectors (`--log-format json`). The level comes from `RUST_LOG`
//! (default `info`).

use tracing_subscriber::{EnvFilter, fmt};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    /// Coloured, readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The filter of a server: every call logged.
pub const SERVER_LOGS: &str = "info,sqlx=warn,h2=warn,tower=warn,hyper=warn";
/// The filter of an interactive command (the demo): problems only.
pub const QUIET_LOGS: &str = "warn,sqlx=error";

/// Installs the global subscriber with `RUST_LOG`, or `default` when it is
/// unset; later calls are ignored (tests start many suites in one process).
pub fn init(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.compact().try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
