//! Logging to stderr with `tracing`. `RUST_LOG` filters (default `info`, chatty dependencies at
//! `warn`); `NYM_GATEWAY_LOG_FORMAT=json` switches to one JSON object per line.

use tracing_subscriber::EnvFilter;

const DEFAULT_FILTER: &str =
    "info,hyper=warn,tokio_tungstenite=warn,tungstenite=warn,mio=warn,rusqlite=warn";

/// Installs the global subscriber; safe to call once per process.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json =
        std::env::var("NYM_GATEWAY_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A second initialisation (tests) keeps the first subscriber.
    let _ = result;
}
