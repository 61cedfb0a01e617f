//! Process control for the gateway under test.
//!
//! Every test gets its own [`GatewayHome`] (a temporary `HOME` holding `~/.nym/gateways/<id>/`)
//! and its own loopback ports, so tests can run in parallel.

use crate::keys::GatewayKeys;
use anyhow::{bail, Context};
use rustix::process::{kill_process, Pid, Signal};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// The line the gateway prints (stderr) once every listener is up.
pub const READY_LINE: &str = "Finished nym gateway startup procedure";

/// Wallet address passed to `init` (any valid bech32 `n1…` address will do).
pub const WALLET_ADDRESS: &str = "n10yyd98e2tuwu0f7ypz9dy3hhjw7v772q6287gy";

const INIT_TIMEOUT: Duration = Duration::from_secs(60);
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Path of the gateway binary: `$NYM_GATEWAY_BIN`, else `<repo>/target/debug/nym-gateway`.
pub fn gateway_binary() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("NYM_GATEWAY_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("interop/ lives inside the repository")
            .join("target/debug/nym-gateway"),
    };
    if !path.is_file() {
        bail!(
            "the gateway binary was not found at {}: build the main workspace first \
             (`cargo build -p nym-gateway` in the repository root) or point NYM_GATEWAY_BIN at it",
            path.display()
        );
    }
    Ok(path)
}

/// Loopback ports the gateway listens on.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub mix: u16,
    pub clients: u16,
    pub http: u16,
}

impl Ports {
    /// Three distinct free loopback ports (bound to port 0, then released).
    pub fn pick() -> anyhow::Result<Self> {
        let listeners = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()
            .context("binding loopback port 0")?;
        let port = |i: usize| listeners[i].local_addr().map(|a| a.port());
        Ok(Ports {
            mix: port(0)?,
            clients: port(1)?,
            http: port(2)?,
        })
    }
}

/// An initialised gateway (`nym-gateway init`) in a temporary `HOME`.
pub struct GatewayHome {
    home: tempfile::TempDir,
    binary: PathBuf,
    pub id: String,
    pub ports: Ports,
}

impl GatewayHome {
    /// Runs `nym-gateway init` with fresh ports in a fresh temporary `HOME`.
    pub async fn init(id: &str) -> anyhow::Result<Self> {
        Self::init_with(id, &[]).await
    }

    /// [`GatewayHome::init`], with `extra` appended to the `init` arguments.
    pub async fn init_with(id: &str, extra: &[&str]) -> anyhow::Result<Self> {
        let binary = gateway_binary()?;
        let home = tempfile::Builder::new()
            .prefix("gateway-interop-")
            .tempdir()
            .context("creating a temporary HOME")?;
        let ports = Ports::pick()?;
        let this = GatewayHome {
            home,
            binary,
            id: id.to_string(),
            ports,
        };
        let mix_port = ports.mix.to_string();
        let clients_port = ports.clients.to_string();
        let http = format!("127.0.0.1:{}", ports.http);
        let mut args = vec![
            "init",
            "--id",
            id,
            "--host",
            "127.0.0.1",
            "--wallet-address",
            WALLET_ADDRESS,
            "--mix-port",
            &mix_port,
            "--clients-port",
            &clients_port,
            "--http-api-address",
            &http,
        ];
        args.extend_from_slice(extra);
        let output = tokio::time::timeout(
            INIT_TIMEOUT,
            this.command().args(&args).stdin(Stdio::null()).output(),
        )
        .await
        .context("`nym-gateway init` did not finish in time")?
        .context("running `nym-gateway init`")?;
        if !output.status.success() {
            bail!(
                "`nym-gateway {}` failed with {}\nstdout:\n{}\nstderr:\n{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(this)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.env("HOME", self.home.path());
        cmd
    }

    /// `$HOME/.nym/gateways/<id>`.
    pub fn gateway_dir(&self) -> PathBuf {
        self.home.path().join(".nym/gateways").join(&self.id)
    }

    /// `$HOME/.nym/gateways/<id>/config/config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.gateway_dir().join("config/config.toml")
    }

    /// Adds `line` to the `[gateway]` table of `config.toml`, right below its header.
    pub fn add_gateway_config_line(&self, line: &str) -> anyhow::Result<()> {
        let path = self.config_path();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let header = "\n[gateway]\n";
        let at = text
            .find(header)
            .with_context(|| format!("{} has no [gateway] table", path.display()))?
            + header.len();
        let text = format!("{}{line}\n{}", &text[..at], &text[at..]);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// `$HOME/.nym/gateways/<id>/data`.
    pub fn data_dir(&self) -> PathBuf {
        self.gateway_dir().join("data")
    }

    /// The message store.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir().join("db.sqlite")
    }

    pub fn keys(&self) -> anyhow::Result<GatewayKeys> {
        GatewayKeys::load(&self.data_dir())
    }

    pub fn mix_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.mix))
    }

    pub fn clients_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.clients))
    }

    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.http))
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.ports.clients)
    }

    /// Runs `nym-gateway run --id <id>` and waits until it is ready.
    pub async fn start(&self) -> anyhow::Result<GatewayProcess> {
        let mut child = self
            .command()
            .args(["run", "--id", &self.id])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawning `nym-gateway run`")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(collect_lines(out, "stdout", log.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(collect_lines(err, "stderr", log.clone()));
        }
        let mut process = GatewayProcess { child, log };
        if let Err(err) = process.wait_ready(self).await {
            let _ = process.kill().await;
            return Err(err);
        }
        Ok(process)
    }
}

async fn collect_lines(
    stream: impl AsyncRead + Unpin,
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        log.lock()
            .expect("log lock poisoned")
            .push(format!("[{name}] {line}"));
    }
}

/// A running `nym-gateway run`. Dropping it kills the process.
pub struct GatewayProcess {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl GatewayProcess {
    async fn wait_ready(&mut self, home: &GatewayHome) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                // give the log readers a moment to drain the pipes
                tokio::time::sleep(Duration::from_millis(100)).await;
                bail!(
                    "the gateway exited during startup with {status}\n{}",
                    self.log_tail(60)
                );
            }
            let ready_line = self.log_contains(READY_LINE);
            if ready_line
                && port_open(home.mix_addr()).await
                && port_open(home.clients_addr()).await
                && port_open(home.http_addr()).await
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the gateway was not ready after {STARTUP_TIMEOUT:?} (ready line seen: \
                     {ready_line})\n{}",
                    self.log_tail(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log
            .lock()
            .expect("log lock poisoned")
            .iter()
            .any(|l| l.contains(needle))
    }

    /// The last `n` lines the gateway printed, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().expect("log lock poisoned");
        let start = log.len().saturating_sub(n);
        format!(
            "--- gateway output (last {} lines) ---\n{}\n---",
            log.len() - start,
            log[start..].join("\n")
        )
    }

    /// Attaches the gateway's recent output to a test failure.
    pub fn explain(&self, err: anyhow::Error) -> anyhow::Error {
        err.context(format!("test failed\n{}", self.log_tail(80)))
    }

    /// Ends a test against this gateway: on failure the error carries the gateway's output; on
    /// success the gateway must stop cleanly on SIGTERM (exit status 0).
    /// Set `INTEROP_GATEWAY_LOG=1` to print the gateway's whole output even when the test passes.
    pub async fn finish<T>(self, body: anyhow::Result<T>) -> anyhow::Result<T> {
        if std::env::var_os("INTEROP_GATEWAY_LOG").is_some() {
            eprintln!("{}", self.log_tail(usize::MAX));
        }
        match body {
            Ok(value) => {
                self.stop().await?;
                Ok(value)
            }
            Err(err) => {
                let err = self.explain(err);
                let _ = self.kill().await;
                Err(err)
            }
        }
    }

    fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = self
            .child
            .id()
            .and_then(|id| Pid::from_raw(id as i32))
            .context("the gateway process has already been reaped")?;
        kill_process(pid, signal).with_context(|| format!("sending {signal:?} to the gateway"))?;
        Ok(())
    }

    /// SIGTERM, then waits for the exit status.
    pub async fn terminate(mut self) -> anyhow::Result<ExitStatus> {
        self.signal(Signal::TERM)?;
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                let tail = self.log_tail(40);
                let _ = self.kill().await;
                bail!("the gateway did not exit within {STOP_TIMEOUT:?} of SIGTERM\n{tail}")
            }
        }
    }

    /// SIGTERM and require a clean exit (status 0).
    pub async fn stop(self) -> anyhow::Result<()> {
        let log = self.log.clone();
        let status = self.terminate().await?;
        if !status.success() {
            let log = log.lock().expect("log lock poisoned");
            let start = log.len().saturating_sub(40);
            bail!(
                "the gateway exited with {status} after SIGTERM (expected 0)\n{}",
                log[start..].join("\n")
            );
        }
        Ok(())
    }

    /// SIGKILL, then reaps the process.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.signal(Signal::KILL)?;
        tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .context("the gateway did not die after SIGKILL")??;
        Ok(())
    }
}

async fn port_open(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(addr)
        )
        .await,
        Ok(Ok(_))
    )
}
