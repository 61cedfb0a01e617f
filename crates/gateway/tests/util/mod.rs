//! Running the real `nym-gateway` binary in a temporary HOME.
#![allow(dead_code, unreachable_pub)]

pub mod harness;
pub mod in_process;
pub mod netns;
pub mod probe;
pub mod tls;
pub mod ws_client;

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A valid mainnet wallet address.
pub const MAINNET_WALLET: &str = "n10yyd98e2tuwu0f7ypz9dy3hhjw7v772q6287gy";

/// How long a test waits for the gateway to be ready before failing.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub trait OutputText {
    fn stdout_text(&self) -> String;
    fn stderr_text(&self) -> String;
}

impl OutputText for Output {
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Ports handed to tests come from below the kernel's ephemeral range (32768 and up on
/// Linux), so no `bind(0)` or outgoing connection elsewhere can take one between the test
/// picking it and the gateway binding it.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// Locks held for the life of this test process: one per port it was given.
static PORT_LOCKS: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());

/// A loopback port no other test (in this process or any other) has been given, and that
/// is free now. Each port is claimed with an exclusive lock on a file named after it; the
/// lock is released when the process exits, so a crashed test leaks nothing.
pub fn free_port() -> u16 {
    let dir = std::env::temp_dir().join("nym-gateway-test-ports");
    std::fs::create_dir_all(&dir).expect("creating the test-port lock directory");
    let span = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    // Start where this process's id points so concurrent test processes rarely probe the
    // same ports first.
    let start = std::process::id() % span;
    for step in 0..span {
        let port = TEST_PORTS.start + ((start + step * 7) % span) as u16;
        let Ok(file) = std::fs::File::create(dir.join(port.to_string())) else {
            continue;
        };
        if file.try_lock().is_err() {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            PORT_LOCKS.lock().unwrap().push(file);
            return port;
        }
    }
    panic!("no free test port in {TEST_PORTS:?}");
}

/// Lets this test process open `wanted` more descriptors than it has open now: raises the
/// soft open-files limit up to the hard limit if needed (gateways spawned afterwards inherit
/// it). Returns how many of the `wanted` fit, which is less only when the hard limit is too
/// low; prints what it did either way.
pub fn descriptors_for(label: &str, wanted: u64) -> u64 {
    let open = std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count) as u64;
    // Room for the runtime, the gateway's output pipes and the test's own connections.
    let needed = open + wanted + 64;
    let nym_gateway::fd_limit::Raised { before, now, hard } =
        nym_gateway::fd_limit::raise_soft_limit(needed)
            .unwrap_or_else(|e| panic!("[{label}] raising the open-files limit failed: {e}"));
    if now > before {
        eprintln!(
            "[{label}] raised the soft open-files limit from {before} to {now} (hard limit {hard})"
        );
    }
    let soft = now;
    let fit = soft.saturating_sub(open + 64).min(wanted);
    if fit < wanted {
        eprintln!("[{label}] only {fit} of {wanted} descriptors fit under the hard open-files limit {hard}: scaled down");
    } else {
        eprintln!("[{label}] {wanted} descriptors fit under the soft open-files limit {soft}");
    }
    fit
}

/// Permission bits of a file.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The value after `prefix` on the line that starts with it.
pub fn field(text: &str, prefix: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{text}"))
        .trim()
        .to_owned()
}

/// Panics unless the process exited with `code` and its stderr contains `needle`.
pub fn assert_exit(out: &Output, code: i32, needle: &str) {
    let stderr = out.stderr_text();
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in:\n{stderr}");
}

/// Panics unless `text` contains every one of `needles`.
pub fn assert_contains_all(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

/// One gateway id in its own temporary HOME, with its own free ports.
pub struct Gateway {
    home: tempfile::TempDir,
    id: String,
    pub mix_port: u16,
    pub clients_port: u16,
    pub http_port: u16,
    /// Where the gateway listens and what it announces: loopback unless it runs in a network
    /// namespace.
    pub host: IpAddr,
    /// The network namespace the gateway runs in (`ip netns exec`), if any.
    netns: Option<String>,
}

impl Gateway {
    pub fn new(id: &str) -> Self {
        Self {
            home: tempfile::tempdir().unwrap(),
            id: id.to_owned(),
            mix_port: free_port(),
            clients_port: free_port(),
            http_port: free_port(),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            netns: None,
        }
    }

    /// A gateway that runs in the network namespace `netns`, listening on all its addresses
    /// and announcing `host` (its address on one of the namespace's links).
    pub fn in_netns(id: &str, netns: &str, host: IpAddr) -> Self {
        Self {
            host,
            netns: Some(netns.to_owned()),
            ..Self::new(id)
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn root(&self) -> PathBuf {
        self.home().join(".nym/gateways")
    }

    pub fn dir(&self) -> PathBuf {
        self.root().join(&self.id)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir().join("config/config.toml")
    }

    fn command(&self, args: &[&str]) -> Command {
        let binary = env!("CARGO_BIN_EXE_nym-gateway");
        // `ip netns exec` enters the namespace and then executes the gateway in its own
        // process, so the child's pid is the gateway's (for signals and /proc).
        let mut cmd = match &self.netns {
            Some(netns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", netns, binary]);
                cmd
            }
            None => Command::new(binary),
        };
        cmd.args(args)
            .env("HOME", self.home())
            .env_remove("CONFIGURED")
            .env("RUST_LOG", "info")
            .env_remove("NYM_GATEWAY_LOG_FORMAT")
            .stdin(Stdio::null());
        cmd
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// The stdout of a command that must succeed.
    pub fn cmd_stdout(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(out.status.success(), "{args:?}: {}", out.stderr_text());
        out.stdout_text()
    }

    /// `init` on 127.0.0.1 (in a namespace: on all its addresses, announcing
    /// [`host`](Self::host)) with this gateway's ports, plus `extra` flags.
    pub fn init(&self, extra: &[&str]) -> Output {
        let mix = self.mix_port.to_string();
        let clients = self.clients_port.to_string();
        // In a namespace the HTTP API stays on the namespace's own loopback.
        let http = format!("127.0.0.1:{}", self.http_port);
        let host = self.host.to_string();
        let mut args = vec!["init", "--id", &self.id, "--wallet-address", MAINNET_WALLET];
        if self.netns.is_some() {
            args.extend(["--host", "0.0.0.0", "--announce-host", &host]);
        } else {
            args.extend(["--host", &host]);
        }
        // This gateway's own ports, unless the test supplies its own.
        for (flag, value) in [
            ("--mix-port", &mix),
            ("--clients-port", &clients),
            ("--http-api-address", &http),
        ] {
            if !extra.contains(&flag) {
                args.extend([flag, value.as_str()]);
            }
        }
        args.extend_from_slice(extra);
        self.cmd(&args)
    }

    /// `init` with defaults and `extra` flags (which may be invalid).
    pub fn init_with(&self, extra: &[&str]) -> Output {
        self.init(extra)
    }

    /// Spawns `args` (a `run` command), waits until the gateway is ready, then stops it with
    /// `signal`; expects exit code 0 and returns the output.
    pub fn run_and_stop(&self, args: &[&str], signal: &str) -> Output {
        let mut child = self.spawn(args);
        child.wait_ready();
        let out = child.terminate(signal);
        assert_eq!(
            out.status.code(),
            Some(0),
            "SIG{signal}: {}",
            out.stderr_text()
        );
        out
    }

    pub fn spawn(&self, args: &[&str]) -> Running {
        self.spawn_with_env(args, &[])
    }

    /// As [`spawn`](Self::spawn), with extra environment variables (e.g. `RUST_LOG`).
    pub fn spawn_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let tx_err = tx.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Finished nym gateway startup procedure") {
                    let _ = tx_err.send(());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let stdout = child.stdout.take().unwrap();
        let stdout_reader = std::thread::spawn(move || {
            let mut all = String::new();
            let _ = BufReader::new(stdout).read_to_string(&mut all);
            all
        });
        drop(tx);
        Running {
            child,
            ready: rx,
            stdout_reader: Some(stdout_reader),
            stderr_reader: Some(stderr_reader),
        }
    }
}

/// A running gateway process.
pub struct Running {
    child: Child,
    ready: mpsc::Receiver<()>,
    stdout_reader: Option<std::thread::JoinHandle<String>>,
    stderr_reader: Option<std::thread::JoinHandle<String>>,
}

impl Running {
    /// Waits for the startup-finished log line; panics with the process output on timeout.
    pub fn wait_ready(&mut self) {
        match self.ready.recv_timeout(READY_TIMEOUT) {
            Ok(()) => {}
            Err(_) => {
                let _ = self.child.kill();
                let out = self.collect();
                panic!(
                    "gateway not ready:\nstdout:\n{}\nstderr:\n{}",
                    out.stdout_text(),
                    out.stderr_text()
                );
            }
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit on its own (30 s at most, then it is killed).
    pub fn wait_exit(&mut self) -> Output {
        self.collect()
    }

    /// Sends a signal (`INT`, `TERM`, `KILL`) and waits for exit.
    pub fn terminate(mut self, signal: &str) -> Output {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.collect()
    }

    fn collect(&mut self) -> Output {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                break self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = self
            .stdout_reader
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default();
        let stderr = self
            .stderr_reader
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default();
        Output {
            status,
            stdout: stdout.into_bytes(),
            stderr: stderr.into_bytes(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
