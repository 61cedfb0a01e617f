//! A running gateway for the client protocol tests, and the loopback peers around it: the mix
//! port to inject packets, next-hop listeners, the metrics endpoint and the store file.

use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use rusqlite::{Connection, OpenFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::ws_client::READ_TIMEOUT;
use super::{Gateway, OutputText, Running};

/// A started gateway and the keys a client needs.
pub struct TestGateway {
    pub gw: Gateway,
    pub running: Running,
    pub identity: VerifyingKey,
    pub sphinx_key: [u8; 32],
}

impl TestGateway {
    /// `init`, then `[debug]` values (TOML, e.g. `("initial_message_timeout", "'2s'")`) on top
    /// of a small replay filter, then `run` until ready.
    pub fn start(id: &str, debug: &[(&str, &str)]) -> Self {
        Self::start_with_args(id, debug, &[])
    }

    /// As [`start`](Self::start), with extra `run` flags.
    pub fn start_with_args(id: &str, debug: &[(&str, &str)], run_args: &[&str]) -> Self {
        Self::start_prepared(Gateway::new(id), debug, run_args)
    }

    /// As [`start_with_args`](Self::start_with_args), for a gateway already set up (e.g. one
    /// in a network namespace, [`Gateway::in_netns`]).
    pub fn start_prepared(gw: Gateway, debug: &[(&str, &str)], run_args: &[&str]) -> Self {
        let id = gw.id().to_owned();
        let out = gw.init(&[]);
        assert!(out.status.success(), "{}", out.stderr_text());
        // The default replay filter is sized for a busy node; tests need a small one.
        let mut values = vec![("replay_filter_capacity", "100000")];
        values.extend_from_slice(debug);
        set_debug(&gw, &values);
        let (identity, sphinx_key) = public_keys(&gw);

        let mut args = vec!["run", "--id", &id];
        args.extend_from_slice(run_args);
        let mut running = gw.spawn(&args);
        running.wait_ready();
        Self {
            gw,
            running,
            identity,
            sphinx_key,
        }
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.running.id()
    }

    /// Sends `signal` (`TERM`, `KILL`, ...) and waits for the process to exit.
    pub fn stop(&mut self, signal: &str) -> std::process::Output {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.running.wait_exit()
    }

    /// Runs the gateway again (same home, ports and keys) until it is ready.
    pub fn restart(&mut self) {
        let id = self.gw.id().to_owned();
        self.running = self.gw.spawn(&["run", "--id", &id]);
        self.running.wait_ready();
    }

    pub fn clients_port(&self) -> u16 {
        self.gw.clients_port
    }

    pub fn mix_addr(&self) -> SocketAddr {
        SocketAddr::new(self.gw.host, self.gw.mix_port)
    }

    pub fn db_path(&self) -> PathBuf {
        self.gw.dir().join("data/db.sqlite")
    }

    /// The mix port on `[::1]`.
    pub fn mix_addr_v6(&self) -> SocketAddr {
        SocketAddr::from((Ipv6Addr::LOCALHOST, self.gw.mix_port))
    }

    /// Sends mix-port frames over one new connection.
    pub async fn inject(&self, frames: &[Vec<u8>]) {
        self.inject_at(self.mix_addr(), frames).await;
    }

    /// As [`inject`](Self::inject), to the mix port at `mix` (e.g. its IPv6 address).
    pub async fn inject_at(&self, mix: SocketAddr, frames: &[Vec<u8>]) {
        let mut stream = TcpStream::connect(mix).await.unwrap();
        for frame in frames {
            stream.write_all(frame).await.unwrap();
        }
        stream.flush().await.unwrap();
        // Closing right away is fine: the gateway processes what it read.
    }

    /// The Prometheus text from the HTTP API.
    pub async fn metrics(&self) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.gw.http_port))
            .await
            .unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        tokio::time::timeout(READ_TIMEOUT, stream.read_to_string(&mut body))
            .await
            .unwrap()
            .unwrap();
        body
    }

    /// The value of the metric line starting with `series ` (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    /// Polls the metric `series` until it is at least `value` (or the read timeout passed);
    /// returns its last value.
    pub async fn wait_metric(&self, series: &str, value: f64) -> f64 {
        let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
        loop {
            let now = self.metric(series).await;
            if now >= value || tokio::time::Instant::now() >= deadline {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls the store until `client` has `count` stored messages.
    pub async fn wait_stored(&self, client_bs58: &str, count: i64) {
        let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
        loop {
            if self.stored_count(client_bs58) == count {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {count} stored messages, have {}",
                self.stored_count(client_bs58)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Messages stored for `client`.
    pub fn stored_count(&self, client_bs58: &str) -> i64 {
        self.query_i64(
            "SELECT COUNT(*) FROM message_store WHERE client_address_bs58 = ?1",
            client_bs58,
        )
    }

    /// Every stored message's content for a client, in id order.
    pub fn stored_contents(&self, client_bs58: &str) -> Vec<Vec<u8>> {
        stored_contents_via(
            &open_store(&self.db_path(), OpenFlags::SQLITE_OPEN_READ_ONLY),
            client_bs58,
        )
    }

    /// Runs a one-number query with one text parameter against the store file.
    pub fn query_i64(&self, sql: &str, param: &str) -> i64 {
        open_store(&self.db_path(), OpenFlags::SQLITE_OPEN_READ_ONLY)
            .query_row(sql, [param], |row| row.get(0))
            .unwrap()
    }
}

/// The identity key and the sphinx public key that `node-details --output json` reports.
pub fn public_keys(gw: &Gateway) -> (VerifyingKey, [u8; 32]) {
    let details = gw.cmd(&["node-details", "--id", gw.id(), "--output", "json"]);
    assert!(details.status.success(), "{}", details.stderr_text());
    let json: serde_json::Value = serde_json::from_slice(&details.stdout).unwrap();
    let key = |name: &str| -> [u8; 32] {
        bs58::decode(json[name].as_str().unwrap())
            .into_vec()
            .unwrap()
            .try_into()
            .unwrap()
    };
    let identity = VerifyingKey::from_bytes(&key("identity_key")).unwrap();
    (identity, key("sphinx_key"))
}

/// A connection to the store file `db` (opened with `flags`) that waits up to 5 s for locks.
pub fn open_store(db: &Path, flags: OpenFlags) -> Connection {
    let conn = Connection::open_with_flags(db, flags).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

/// Every stored message's content for a client, in id order, read through `conn`.
pub fn stored_contents_via(conn: &Connection, client_bs58: &str) -> Vec<Vec<u8>> {
    let mut query = conn
        .prepare("SELECT content FROM message_store WHERE client_address_bs58 = ?1 ORDER BY id")
        .unwrap();
    query
        .query_map([client_bs58], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// As [`TestGateway::stored_contents`], through a normal (read-write) connection: on a full tmpfs a
/// read-only one does not see the WAL's content.
pub fn stored_contents_read_write(db: &Path, client_bs58: &str) -> Vec<Vec<u8>> {
    stored_contents_via(&open_store(db, OpenFlags::default()), client_bs58)
}

/// Rewrites `key = value` lines of the `[debug]` section (every key must be present).
pub fn set_debug(gw: &Gateway, values: &[(&str, &str)]) {
    let path = gw.config_path();
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (key, value) in values {
        let prefix = format!("\n{key} = ");
        let start = text
            .find(&prefix)
            .unwrap_or_else(|| panic!("{key} not in config"))
            + 1;
        let end = start + text[start..].find('\n').unwrap();
        text.replace_range(start..end, &format!("{key} = {value}"));
    }
    std::fs::write(&path, text).unwrap();
}

/// A loopback TCP listener standing in for a mix node.
pub struct NextHop {
    listener: TcpListener,
}

impl NextHop {
    pub async fn bind() -> Self {
        Self::bind_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// A next hop listening on `addr` (e.g. `[::1]:0`).
    pub async fn bind_on(addr: SocketAddr) -> Self {
        Self {
            listener: TcpListener::bind(addr).await.unwrap(),
        }
    }

    /// A next hop on `addr` whose connections have a receive buffer of about `bytes` (the
    /// kernel doubles it and has a minimum), so one that never reads soon closes its window.
    pub async fn bind_with_receive_buffer(addr: SocketAddr, bytes: u32) -> Self {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .unwrap();
        // Set on the listener, it is inherited by each accepted connection.
        socket.set_recv_buffer_size(bytes).unwrap();
        socket.bind(addr).unwrap();
        Self {
            listener: socket.listen(16).unwrap(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }

    /// Accepts the gateway's connection.
    pub async fn accept(&self) -> TcpStream {
        tokio::time::timeout(READ_TIMEOUT, self.listener.accept())
            .await
            .expect("the gateway connects in time")
            .unwrap()
            .0
    }

    /// Whether a connection is waiting within `wait`.
    pub async fn has_connection_within(&self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.listener.accept())
            .await
            .is_ok()
    }
}

/// Reads exactly `len` bytes.
pub async fn read_exact(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    tokio::time::timeout(READ_TIMEOUT, stream.read_exact(&mut buf))
        .await
        .expect("data in time")
        .unwrap();
    buf
}
