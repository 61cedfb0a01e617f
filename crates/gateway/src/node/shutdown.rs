//! Shutdown signals: SIGINT (Ctrl-C) and SIGTERM (systemd's default stop signal) both start a
//! clean shutdown.

use tokio::signal::unix::{signal, SignalKind};

/// Waits for SIGINT or SIGTERM and names the one that arrived.
pub async fn wait_for_signal() -> std::io::Result<&'static str> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    })
}
