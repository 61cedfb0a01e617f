//! The node processes (`nym-gateway run --id <id>` or `nym-node run ...`, with the node's
//! `HOME`), output to a log file.
//! `nym-localnet` stops them with SIGTERM (SIGKILL if one does not exit in time). They stay in
//! its process group, so a Ctrl-C or a closed terminal reaches them too and each shuts down
//! cleanly on its own; only a SIGKILL of `nym-localnet` itself leaves them running.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use rustix::process::{kill_process, Pid, Signal};
use tokio::process::{Child, Command};

use crate::nodes::{Implementation, Node};

/// How long a node may take to open its ports.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node may take to exit after SIGTERM (the gateway's own stages take up to 10 s
/// each; nym-node forces its exit after 10-13 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(45);

/// A running node.
pub struct NodeProcess {
    /// The node.
    pub node: Node,
    child: Child,
}

/// Starts `node`: `program args` with the node's home.
pub fn spawn(node: &Node, program: &Path, args: &[String]) -> anyhow::Result<NodeProcess> {
    if let Some(logs) = node.log_file.parent() {
        fs::create_dir_all(logs).with_context(|| format!("failed to create {logs:?}"))?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&node.log_file)
        .with_context(|| format!("failed to open the log file {:?}", node.log_file))?;
    let child = Command::new(program)
        .args(args)
        .env("HOME", &node.home)
        // Plain logs in the file (nym-node colours them otherwise).
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("failed to start {program:?} for node {}", node.id))?;
    Ok(NodeProcess {
        node: node.clone(),
        child,
    })
}

impl NodeProcess {
    /// Waits until the node's HTTP API accepts connections: the gateway binds it after its mix
    /// and client listeners, so all three are up then. (Probing the client port itself would be
    /// counted as a failed client connection.) A nym-node may bind its HTTP API first, so its
    /// mix port is probed too.
    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        let n = &self.node;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "node {} exited during start-up ({status})\n{}",
                    n.id,
                    log_tail(&n.log_file, 30)
                );
            }
            if accepts(n.http_address).await
                && (n.implementation == Implementation::NymGateway || accepts(n.mix_address).await)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "node {} did not open its ports within {STARTUP_TIMEOUT:?}\n{}",
                    n.id,
                    log_tail(&n.log_file, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Asks the node to stop (SIGTERM); a node that already exited is fine.
    pub fn terminate(&self) {
        let pid = self
            .child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw);
        if let Some(pid) = pid {
            let _ = kill_process(pid, Signal::TERM);
        }
    }

    /// Waits for the exit after [`terminate`](Self::terminate); kills it if it takes too long.
    pub async fn wait_stopped(mut self) -> anyhow::Result<ExitStatus> {
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                let _ = self.child.kill().await;
                bail!(
                    "node {} did not stop within {STOP_TIMEOUT:?} of SIGTERM and was killed",
                    self.node.id
                )
            }
        }
    }
}

async fn accepts(address: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(address)
        )
        .await,
        Ok(Ok(_))
    )
}

/// The last `n` lines of a log file, for error messages.
pub fn log_tail(path: &PathBuf, n: usize) -> String {
    let Ok(file) = fs::File::open(path) else {
        return format!("(no log at {path:?})");
    };
    let lines: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
    let start = lines.len().saturating_sub(n);
    format!(
        "--- last lines of {} ---\n{}",
        path.display(),
        lines[start..].join("\n")
    )
}
