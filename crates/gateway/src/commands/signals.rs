//! Shutdown signals: SIGINT (Ctrl-C) and SIGTERM (systemd's default stop signal) both start a
//! clean shutdown.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGINT and SIGTERM handlers, installed: from here on neither signal kills the process.
pub(super) struct ShutdownSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl ShutdownSignals {
    /// Installs the handlers (inside a tokio runtime).
    pub(super) fn install() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for either signal and names the one that arrived.
    pub(super) async fn recv(mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}
