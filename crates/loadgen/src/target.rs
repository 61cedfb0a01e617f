//! The gateway under load: one that is already running (`--gateway-id`, read from its
//! `config.toml` and key files), one we start ourselves in a temporary HOME, a nym-node entry
//! gateway we start (see [`crate::nym_node`]), or any gateway given by its keys and ports
//! (see [`crate::external`]). Either way we know its addresses and public keys; and, when we
//! can, its sphinx secret (to time unwrapping in-process on the same packets), its pid (for
//! memory and CPU figures) and its metrics (our gateway's; phases count at the sinks and the
//! clients when there are none).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use ed25519_dalek::VerifyingKey;
use nym_gateway::config::{config_path, nym_root_directory, Config};
use nym_gateway::keys::NodeKeys;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The id of a gateway we start ourselves.
const OWN_ID: &str = "loadgen";

/// A valid wallet address for `init`.
const WALLET: &str = "n10yyd98e2tuwu0f7ypz9dy3hhjw7v772q6287gy";

/// How long a gateway may take to come up or to stop.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start our own gateway.
#[derive(Debug, Clone)]
pub struct OwnSettings {
    /// The `nym-gateway` executable.
    pub binary: PathBuf,
    /// `[debug]` values to set in its config.toml, as TOML (`("key", "value")`).
    pub debug: Vec<(String, String)>,
    /// `RUST_LOG` for it.
    pub log_filter: String,
}

/// Which software the target runs, as far as the load generator needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Software {
    /// Our `nym-gateway`: `/metrics` with our series, our config and store files.
    NymGateway,
    /// Nym's `nym-node` as an entry gateway.
    NymNode,
    /// A gateway given by keys and ports: nothing known beyond them.
    Unknown,
}

/// A gateway's HTTP API: where to ask whether it is up, and (ours) its metrics.
#[derive(Debug, Clone)]
pub struct HttpApi {
    /// Its address, on loopback.
    pub addr: SocketAddr,
    /// Bearer token, if it needs one.
    pub token: Option<String>,
    /// The health path (`/health` ours, `/api/v1/health` nym-node's).
    pub health_path: &'static str,
    /// Our Prometheus `/metrics`, if the target has them (nym-node's are bearer-protected
    /// and refreshed periodically, so we count at the sinks and the clients instead).
    pub metrics_path: Option<&'static str>,
}

/// The gateway under test.
pub struct Target {
    /// Which software it is.
    pub software: Software,
    /// Its mix port, on loopback.
    pub mix_addr: SocketAddr,
    /// Its client (websocket) port, on loopback.
    pub clients_addr: SocketAddr,
    /// Its HTTP API, if known.
    pub http: Option<HttpApi>,
    /// Its identity key, which signs the registration handshake.
    pub identity: VerifyingKey,
    /// Its sphinx public key (of the current rotation).
    pub sphinx_public: [u8; 32],
    /// Its sphinx secret key bytes, when its key files are readable.
    pub sphinx_secret: Option<[u8; 32]>,
    /// The directory of our gateway's key files (its Noise key is made there at its first
    /// start).
    pub key_dir: Option<PathBuf>,
    /// Its `maximum_client_connections` (or a generous bound when unknown).
    pub max_clients: usize,
    /// Its SQLite store, ours (the WAL is beside it, with `-wal` appended).
    pub store_path: Option<PathBuf>,
    /// Its process id, if known.
    pub pid: Option<u32>,
    /// The process, when we started it.
    pub process: Option<Process>,
}

/// A gateway process we started and own: stopped when the target is dropped.
pub struct Process {
    /// Its `HOME` (removed with it).
    pub home: tempfile::TempDir,
    /// Its log file.
    pub log: PathBuf,
    /// How to start it again.
    pub spawn: Box<dyn Fn() -> anyhow::Result<Child> + Send + Sync>,
    /// The running child.
    pub child: Child,
    /// What the logs call it.
    pub name: &'static str,
    /// What must live as long as the process (nym-node's fake nym-api).
    pub companion: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl Target {
    /// A running gateway `id` under `$HOME/.nym/gateways`; `pid` overrides the search for
    /// its process.
    pub async fn attach(id: &str, pid: Option<u32>) -> anyhow::Result<Self> {
        let root = nym_root_directory().context("HOME is not set")?;
        let mut target = Self::from_files(
            &root,
            id,
            pid.or_else(|| crate::procfs::find_gateway_pid(id)),
        )?;
        target
            .wait_healthy(Duration::from_secs(5))
            .await
            .with_context(|| {
                format!(
                    "gateway {id} does not answer on its HTTP API {:?}; is it running?",
                    target.http.as_ref().map(|h| h.addr)
                )
            })?;
        Ok(target)
    }

    /// Starts a gateway of our own in a temporary HOME (`init` on 127.0.0.1 with free ports,
    /// then the `[debug]` values, then `run`).
    pub async fn start_own(settings: OwnSettings) -> anyhow::Result<Self> {
        let home = tempfile::Builder::new()
            .prefix("nym-gateway-loadgen")
            .tempdir()?;
        let ports = [free_port()?, free_port()?, free_port()?];
        let http = format!("127.0.0.1:{}", ports[2]);
        let (mix, clients) = (ports[0].to_string(), ports[1].to_string());
        let init = gateway_command(&settings, home.path())
            .args([
                "init",
                "--id",
                OWN_ID,
                "--host",
                "127.0.0.1",
                "--wallet-address",
                WALLET,
            ])
            .args([
                "--mix-port",
                &mix,
                "--clients-port",
                &clients,
                "--http-api-address",
                &http,
            ])
            .output()
            .with_context(|| format!("running {}", settings.binary.display()))?;
        ensure!(
            init.status.success(),
            "nym-gateway init failed:\n{}",
            String::from_utf8_lossy(&init.stderr)
        );
        let root = home.path().join(".nym/gateways");
        let config = config_path(&root, OWN_ID);
        let text = std::fs::read_to_string(&config)?;
        let text = set_debug_values(&text, &settings.debug)?;
        std::fs::write(&config, text)?;

        let mut target = Self::from_files(&root, OWN_ID, None)?;
        let home_path = home.path().to_path_buf();
        let spawn = move || spawn_run(&settings, &home_path);
        let child = spawn()?;
        target.pid = Some(child.id());
        target.process = Some(Process {
            log: home.path().join("gateway.log"),
            home,
            spawn: Box::new(spawn),
            child,
            name: "the gateway",
            companion: None,
        });
        target.wait_healthy(START_TIMEOUT).await?;
        Ok(target)
    }

    fn from_files(root: &Path, id: &str, pid: Option<u32>) -> anyhow::Result<Self> {
        let path = config_path(root, id);
        let config = Config::load(&path).with_context(|| format!("loading {}", path.display()))?;
        let keys = NodeKeys::load(&config.key_paths()).context("loading the gateway's keys")?;
        let g = &config.gateway;
        let host = loopback_of(g.listening_address)?;
        ensure!(
            g.http_api_address.ip().is_loopback(),
            "the HTTP API {} is not on loopback; the load generator only talks to loopback",
            g.http_api_address
        );
        Ok(Self {
            software: Software::NymGateway,
            mix_addr: SocketAddr::new(host, g.mix_port),
            clients_addr: SocketAddr::new(host, g.clients_port),
            http: Some(HttpApi {
                addr: g.http_api_address,
                token: g.http_api_token.clone(),
                health_path: "/health",
                metrics_path: Some("/metrics"),
            }),
            identity: keys.identity.verifying_key(),
            sphinx_public: x25519_dalek::PublicKey::from(&keys.sphinx).to_bytes(),
            sphinx_secret: Some(keys.sphinx.to_bytes()),
            key_dir: Some(nym_gateway::node::rotation::key_dir(&config).to_path_buf()),
            max_clients: config.debug.maximum_client_connections.get(),
            store_path: Some(g.persistent_storage.clone()),
            pid,
            process: None,
        })
    }

    /// The Noise key the gateway announces (read from its key files, which it writes at start).
    pub fn noise_key(&self) -> anyhow::Result<[u8; 32]> {
        let dir = self.key_dir.as_ref().context(
            "--mix-noise needs our gateway's key files (the target's Noise key is unknown)",
        )?;
        nym_gateway::keys::NoiseKey::load_or_create(dir)
            .map(|key| key.public)
            .context("reading the gateway's Noise key")
    }

    /// The gateway's process id, if known.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Whether we started this gateway (and can restart it).
    pub fn is_own(&self) -> bool {
        self.process.is_some()
    }

    /// Whether its metrics can be read (our gateway's `/metrics`).
    pub fn has_metrics(&self) -> bool {
        self.http.as_ref().is_some_and(|h| h.metrics_path.is_some())
    }

    /// The tail of the log of a gateway we started (for error messages).
    pub fn log_tail(&self) -> String {
        let Some(process) = &self.process else {
            return String::new();
        };
        let log = std::fs::read_to_string(&process.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops a gateway we started (SIGTERM, as an operator would) and starts it again on the
    /// same files: a fresh process for memory measurements. Does nothing for an attached
    /// gateway.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let Some(process) = &mut self.process else {
            return Ok(());
        };
        stop(&mut process.child, process.name)?;
        process.child = (process.spawn)()?;
        self.pid = Some(process.child.id());
        self.wait_healthy(START_TIMEOUT).await
    }

    /// Waits until the gateway answers: on its health path, or (without an HTTP API) on its
    /// client port.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(process) = &mut self.process {
                if let Some(status) = process.child.try_wait()? {
                    let name = process.name;
                    bail!("{name} exited with {status}:\n{}", self.log_tail());
                }
            }
            let up = match &self.http {
                Some(http) => self.http_get(http.health_path).await.is_ok(),
                None => TcpStream::connect(self.clients_addr).await.is_ok(),
            };
            // The mix port too: nym-node opens it after its HTTP API.
            if up && TcpStream::connect(self.mix_addr).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the gateway did not come up within {timeout:?}:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The Prometheus text of our gateway's `/metrics`.
    pub async fn metrics(&self) -> anyhow::Result<Metrics> {
        let path = self
            .http
            .as_ref()
            .and_then(|h| h.metrics_path)
            .context("this gateway's metrics are not read (count at the sinks instead)")?;
        Ok(Metrics(self.http_get(path).await?))
    }

    async fn http_get(&self, path: &str) -> anyhow::Result<String> {
        let http = self.http.as_ref().context("no HTTP API")?;
        let mut stream = TcpStream::connect(http.addr).await?;
        let auth = http
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n",
            http.addr
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            stream.read_to_string(&mut response),
        )
        .await
        .context("HTTP API timed out")??;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .context("malformed HTTP response")?;
        ensure!(
            head.starts_with("HTTP/1.1 200"),
            "GET {path}: {}",
            head.lines().next().unwrap_or_default()
        );
        Ok(body.to_owned())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(process) = &mut self.process {
            if let Err(e) = stop(&mut process.child, process.name) {
                eprintln!("[loadgen] {e:#}");
            }
        }
    }
}

/// A `/metrics` scrape.
#[derive(Debug, Clone, Default)]
pub struct Metrics(pub String);

impl Metrics {
    /// The sum over all label sets of the series named `name` (0 when absent).
    pub fn sum(&self, name: &str) -> f64 {
        self.0
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let series_name = series.split('{').next()?;
                (series_name == name).then(|| value.trim().parse::<f64>().ok())?
            })
            .sum()
    }

    /// Every series named `name`: its label set (`{reason="replay"}`, or empty) and value.
    pub fn series(&self, name: &str) -> Vec<(String, f64)> {
        self.0
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let labels = series.strip_prefix(name)?;
                let labels_ok = labels.is_empty() || labels.starts_with('{');
                labels_ok.then(|| Some((labels.to_owned(), value.trim().parse().ok()?)))?
            })
            .collect()
    }

    /// The value of the series with exactly this label set, e.g. `{reason="replay"}`.
    pub fn labelled(&self, name: &str, labels: &str) -> f64 {
        let series = format!("{name}{labels} ");
        self.0
            .lines()
            .find_map(|line| line.strip_prefix(&series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

/// Replaces `key = value` lines in the `[debug]` section of a config.toml.
pub fn set_debug_values(text: &str, values: &[(String, String)]) -> anyhow::Result<String> {
    let start = text
        .find("\n[debug]")
        .context("no [debug] section in the config")?
        + 1;
    let mut out = text.to_owned();
    for (key, value) in values {
        let prefix = format!("\n{key} = ");
        let at = out[start..]
            .find(&prefix)
            .with_context(|| format!("{key} is not in the [debug] section"))?
            + start
            + 1;
        let end = out[at..].find('\n').map_or(out.len(), |n| at + n);
        out.replace_range(at..end, &format!("{key} = {value}"));
    }
    Ok(out)
}

/// The loopback address to reach a gateway listening on `listening`.
fn loopback_of(listening: IpAddr) -> anyhow::Result<IpAddr> {
    match listening {
        ip if ip.is_unspecified() && ip.is_ipv4() => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ip if ip.is_unspecified() => Ok(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)),
        ip if ip.is_loopback() => Ok(ip),
        ip => bail!("the gateway listens on {ip}, not on loopback; the load generator only talks to loopback"),
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn gateway_command(settings: &OwnSettings, home: &Path) -> Command {
    let mut command = Command::new(&settings.binary);
    command
        .env("HOME", home)
        .env_remove("CONFIGURED")
        .env("RUST_LOG", &settings.log_filter)
        .stdin(Stdio::null());
    command
}

/// `run` with output to `gateway.log` in `home` (a pipe nobody reads could stall it).
fn spawn_run(settings: &OwnSettings, home: &Path) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join("gateway.log"))?;
    gateway_command(settings, home)
        .args(["run", "--id", OWN_ID])
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", settings.binary.display()))
}

/// SIGTERM, then wait for a clean exit; SIGKILL if it takes too long.
pub fn stop(child: &mut Child, name: &str) -> anyhow::Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    if let Some(pid) = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill()?;
    child.wait()?;
    bail!("{name} did not stop within {STOP_TIMEOUT:?} of SIGTERM and was killed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_values_are_replaced_only_in_the_debug_section() {
        let text = "[gateway]\nmix_port = 1\n\n[debug]\n# comment\nmix_port = 2\nreplay_filter_capacity = 180000000\nlast = 'x'";
        let out = set_debug_values(
            text,
            &[
                ("replay_filter_capacity".into(), "1000".into()),
                ("mix_port".into(), "3".into()),
                ("last".into(), "'y'".into()),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "[gateway]\nmix_port = 1\n\n[debug]\n# comment\nmix_port = 3\nreplay_filter_capacity = 1000\nlast = 'y'"
        );
        assert!(set_debug_values(text, &[("absent".into(), "1".into())]).is_err());
        assert!(set_debug_values("[gateway]\n", &[]).is_err());
    }

    #[test]
    fn metrics_are_summed_over_labels() {
        let metrics = Metrics(
            "# HELP x\n# TYPE x counter\ngateway_dropped_total{reason=\"replay\"} 3\ngateway_dropped_total{reason=\"full\"} 4\ngateway_dropped_total_other 9\ngateway_clients_connected 12\n# EOF\n"
                .into(),
        );
        assert_eq!(metrics.sum("gateway_dropped_total"), 7.0);
        assert_eq!(metrics.sum("gateway_clients_connected"), 12.0);
        assert_eq!(metrics.sum("absent"), 0.0);
        assert_eq!(
            metrics.series("gateway_dropped_total"),
            vec![
                ("{reason=\"replay\"}".to_owned(), 3.0),
                ("{reason=\"full\"}".to_owned(), 4.0)
            ]
        );
        assert_eq!(
            metrics.labelled("gateway_dropped_total", "{reason=\"full\"}"),
            4.0
        );
    }

    #[test]
    fn only_loopback_gateways() {
        assert_eq!(
            loopback_of("0.0.0.0".parse().unwrap()).unwrap(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            loopback_of("127.0.0.5".parse().unwrap()).unwrap(),
            "127.0.0.5".parse::<IpAddr>().unwrap()
        );
        assert!(loopback_of("10.0.0.1".parse().unwrap()).is_err());
    }
}
