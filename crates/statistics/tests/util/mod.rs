//! Runs the real `nym-network-statistics` binary on a loopback port and talks HTTP/1.1 to it
//! over a plain `TcpStream`, so tests can send exactly the bytes old gateways sent.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_nym-network-statistics");

/// How long the binary may take to start or stop; generous, the machine is shared.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

/// A running service; killed on drop if a test did not stop it.
pub struct Service {
    child: Child,
    pub addr: SocketAddr,
}

impl Service {
    /// Starts the binary with `--listen 127.0.0.1:0 --database <database>`.
    pub fn start(database: &Path) -> Self {
        let mut command = Command::new(BIN);
        command
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--database")
            .arg(database);
        Self::spawn(command)
    }

    /// Starts a prepared command and waits for its "Listening on http://ADDR" line.
    pub fn spawn(mut command: Command) -> Self {
        // Start/stop lines from every test would drown the test output; errors still show.
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "warn");
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the binary");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let Ok(line) = rx.recv_timeout(PROCESS_TIMEOUT) else {
            let _ = child.kill();
            panic!("the service did not announce its address");
        };
        let addr = line
            .trim()
            .strip_prefix("Listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("a socket address");
        Self { child, addr }
    }

    /// Sends `signal` (`TERM`, `INT`) and waits for the process to exit.
    pub fn stop_with(mut self, signal: &str) -> ExitStatus {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
        wait_with_timeout(&mut self.child)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &str) -> Response {
        self.request(&format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        ))
    }

    /// `POST /v1/all-statistics` for `since..=until`; asserts success and returns the entries.
    pub fn query(&self, since: &str, until: &str) -> serde_json::Value {
        let response = self.post(
            "/v1/all-statistics",
            &format!(r#"{{"since":"{since}","until":"{until}"}}"#),
        );
        assert_eq!(response.status, 200, "{}", response.body);
        response.json()
    }

    /// Sends raw request bytes and reads the whole response (the request must ask for
    /// `Connection: close`).
    pub fn request(&self, raw: &str) -> Response {
        let mut stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(PROCESS_TIMEOUT)).unwrap();
        stream.write_all(raw.as_bytes()).expect("send request");
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).expect("read response");
        Response::parse(&bytes)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_with_timeout(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "the service did not exit");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the binary to completion with `args`; returns (status, stdout, stderr).
pub fn run_to_end(args: &[&str], home: Option<&Path>) -> (ExitStatus, String, String) {
    let mut command = Command::new(BIN);
    command.args(args);
    match home {
        Some(home) => command.env("HOME", home),
        None => command.env_remove("HOME"),
    };
    let output = command.output().expect("run the binary");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    fn parse(bytes: &[u8]) -> Self {
        let text = String::from_utf8(bytes.to_vec()).expect("utf-8 response");
        let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .expect("a status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked"));
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        };
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// A fresh temporary folder and a database path inside it.
pub fn temp_database() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("db.sqlite");
    (dir, path)
}
