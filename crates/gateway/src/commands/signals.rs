//! Signals: SIGINT (Ctrl-C) and SIGTERM (systemd's default stop signal) both start a clean
//! shutdown; SIGHUP (systemd's `ExecReload`) asks for the wss certificate to be re-read.

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

/// The SIGHUP handler, installed: from here on SIGHUP no longer kills the process.
pub(super) struct ReloadSignal(Signal);

impl ReloadSignal {
    /// Installs the handler (inside a tokio runtime).
    pub(super) fn install() -> std::io::Result<Self> {
        signal(SignalKind::hangup()).map(Self)
    }

    /// Waits for the next SIGHUP (several in a row may arrive as one).
    pub(super) async fn recv(&mut self) {
        // The stream ends only when the runtime shuts down; then there is nothing to reload.
        if self.0.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }
}
