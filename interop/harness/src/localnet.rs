//! `nym-localnet` as a child process: started in a fresh directory, its output kept for failure
//! reports, the nym-api URL it announces, and a stop that requires a clean exit.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::ChildGuard;

/// nym-localnet prints its nym-api URL once every node runs; builds on a busy machine are slow.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// nym-localnet stops every node (each with its own grace period) before it exits.
const STOP_TIMEOUT: Duration = Duration::from_secs(90);
/// Lines of each node's log a failure report ends with.
const LOG_TAIL_LINES: usize = 25;

/// A running nym-localnet. Dropping it sends SIGTERM, so nym-localnet still stops its nodes.
pub struct LocalnetProcess {
    process: ChildGuard,
    output: Arc<Mutex<Vec<String>>>,
    /// Where the nodes live: `localnet.json` describes them, `logs/` holds their logs.
    pub dir: tempfile::TempDir,
    /// nym-api's base URL as nym-localnet announced it, e.g. `http://127.0.0.1:41234/`.
    pub api_url: String,
}

impl LocalnetProcess {
    /// Starts `bin` with `args` in a fresh directory named `dir_prefix…`, with the gateway of
    /// `$NYM_GATEWAY_BIN` when set, and waits until it announces its nym-api.
    pub async fn start(
        bin: &Path,
        dir_prefix: &str,
        args: impl IntoIterator<Item = impl AsRef<OsStr>>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix(dir_prefix).tempdir()?;
        let mut command = Command::new(bin);
        command
            .args(["--api-address", "127.0.0.1:0", "--dir"])
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        if let Some(gateway) = std::env::var_os("NYM_GATEWAY_BIN") {
            command.arg("--gateway-bin").arg(gateway);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let output = Arc::new(Mutex::new(Vec::new()));
        let (api_tx, mut api_rx) = tokio::sync::mpsc::channel(1);
        if let Some(stdout) = child.stdout.take() {
            let output = output.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(url) = line.trim().strip_prefix("nym-api") {
                        let _ = api_tx.try_send(url.trim().to_owned());
                    }
                    push(&output, line);
                }
            });
        }
        if let Some(stderr) = child.stderr.take() {
            let output = output.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    push(&output, format!("[stderr] {line}"));
                }
            });
        }
        // From here on, every early return stops nym-localnet.
        let process = ChildGuard::new(child, "nym-localnet");
        let Ok(Some(api_url)) = tokio::time::timeout(STARTUP_TIMEOUT, api_rx.recv()).await else {
            // Give it a moment to print why it stopped, if it did.
            tokio::time::sleep(Duration::from_millis(500)).await;
            bail!(
                "nym-localnet did not come up within {STARTUP_TIMEOUT:?}\n{}",
                lines(&output).join("\n")
            );
        };
        Ok(Self {
            process,
            output,
            dir,
            api_url,
        })
    }

    /// nym-api's `host:port`, from the URL it announced.
    pub fn api_address(&self) -> anyhow::Result<SocketAddr> {
        let host = self
            .api_url
            .trim_end_matches('/')
            .strip_prefix("http://")
            .context("the nym-api URL is not http")?;
        Ok(host.parse()?)
    }

    /// `localnet.json`: the nodes nym-localnet started, with their addresses and files.
    pub fn description(&self) -> anyhow::Result<serde_json::Value> {
        let path = self.dir.path().join("localnet.json");
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
    }

    /// `err` with what nym-localnet printed and the tail of every node's log, for a failure
    /// message.
    pub fn explain(&self, err: anyhow::Error) -> anyhow::Error {
        let mut text = format!(
            "--- nym-localnet output ---\n{}\n",
            lines(&self.output).join("\n")
        );
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join("logs")) {
            for entry in entries.flatten() {
                let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let start = lines.len().saturating_sub(LOG_TAIL_LINES);
                text.push_str(&format!(
                    "--- {} (last lines) ---\n{}\n",
                    entry.path().display(),
                    lines[start..].join("\n")
                ));
            }
        }
        err.context(text)
    }

    /// SIGTERM; nym-localnet stops every node and must exit 0 (else the error, explained).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let stopped = self.process.stop(STOP_TIMEOUT).await;
        stopped.map_err(|err| self.explain(err))
    }
}

/// A reader task that panicked mid-push leaves whole lines behind: the output stays readable.
fn push(output: &Mutex<Vec<String>>, line: String) {
    output
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(line);
}

fn lines(output: &Mutex<Vec<String>>) -> Vec<String> {
    output
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// A stand-in for nym-localnet: a script that takes the same `--dir`, writes a node log
    /// there, announces a nym-api URL unless told to fail, and exits `on_term` on SIGTERM.
    fn fake_localnet(scripts: &Path, announces: bool, on_term: u8) -> std::path::PathBuf {
        let announce = if announces {
            "echo 'nym-api http://127.0.0.1:1/'"
        } else {
            "echo 'no gateway binary' >&2; exit 1"
        };
        let script = format!(
            "#!/bin/sh\n\
             while [ \"$1\" != --dir ]; do shift; done; dir=$2\n\
             mkdir -p \"$dir/logs\"; printf 'first\\nlast line of the node\\n' > \"$dir/logs/node.log\"\n\
             echo '{{\"nodes\": []}}' > \"$dir/localnet.json\"\n\
             trap 'exit {on_term}' TERM\n\
             {announce}\n\
             while :; do sleep 0.05; done\n"
        );
        let path = scripts.join(format!("localnet-{announces}-{on_term}"));
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn it_runs_until_stopped_and_explains_failures_with_output_and_logs() {
        let scripts = tempfile::tempdir().unwrap();
        let bin = fake_localnet(scripts.path(), true, 0);
        let mut localnet = LocalnetProcess::start(&bin, "harness-test-", ["--extra"])
            .await
            .unwrap();
        assert_eq!(localnet.api_url, "http://127.0.0.1:1/");
        assert_eq!(
            localnet.api_address().unwrap(),
            "127.0.0.1:1".parse().unwrap()
        );
        assert_eq!(
            localnet.description().unwrap()["nodes"],
            serde_json::json!([])
        );
        let report = format!("{:#}", localnet.explain(anyhow::anyhow!("the test failed")));
        assert!(report.contains("nym-api http://127.0.0.1:1/"), "{report}");
        assert!(report.contains("last line of the node"), "{report}");
        assert!(report.ends_with("the test failed"), "{report}");
        localnet.stop().await.expect("exit 0 after SIGTERM");
    }

    #[tokio::test]
    async fn a_failed_stop_comes_with_the_output() {
        let scripts = tempfile::tempdir().unwrap();
        let bin = fake_localnet(scripts.path(), true, 4);
        let mut localnet = LocalnetProcess::start(&bin, "harness-test-", [""; 0])
            .await
            .unwrap();
        let err = format!("{:#}", localnet.stop().await.unwrap_err());
        assert!(err.contains("nym-localnet exited with"), "{err}");
        assert!(err.contains("last line of the node"), "{err}");
    }

    #[tokio::test]
    async fn one_that_never_announces_its_api_fails_with_what_it_printed() {
        let scripts = tempfile::tempdir().unwrap();
        let bin = fake_localnet(scripts.path(), false, 0);
        let err = LocalnetProcess::start(&bin, "harness-test-", [""; 0])
            .await
            .err()
            .expect("no nym-api line");
        let err = format!("{err:#}");
        assert!(err.contains("did not come up"), "{err}");
        assert!(err.contains("[stderr] no gateway binary"), "{err}");
    }
}
