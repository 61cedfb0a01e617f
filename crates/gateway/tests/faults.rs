//! Crashes and faults: SIGKILL in a loop under traffic, the replay filter across restarts, a
//! full disk, and a locked or corrupt database. The promise checked throughout: a message
//! whose SURB-ack was sent is delivered or still stored, whatever happens to the process or
//! its disk.

mod util;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gateway_protocol::client::binary::decrypt_pushed_message;
use rusqlite::OpenFlags;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use util::harness::{open_store, set_debug, stored_contents_read_write, TestGateway};
use util::probe::{stop_and_check_log, warnings, AckSink, Prober, Traffic};
use util::ws_client::{TestClient, WsClient, READ_TIMEOUT};
use util::{Gateway, OutputText};

const REPLAYS: &str = "gateway_mix_packets_dropped_total{reason=\"replay\"}";
const STORE_FAILED: &str = "gateway_mix_packets_dropped_total{reason=\"store_failed\"}";

/// `PRAGMA integrity_check` of the store (with the gateway stopped or running).
fn integrity(db: &Path) -> String {
    open_store(db, OpenFlags::default())
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap()
}

/// Reads a client's connection until it ends; returns the messages pushed on it. `answered`
/// is notified when the `authenticate` answer (sent after the stored messages) arrives.
fn collect_pushed(
    mut ws: WsClient,
    key: gateway_protocol::client::SharedKey,
    answered: Arc<Notify>,
) -> tokio::task::JoinHandle<Vec<Vec<u8>>> {
    tokio::spawn(async move {
        let mut messages = Vec::new();
        while let Ok(Some(Ok(message))) = ws.read(Duration::from_secs(60)).await {
            match message {
                Message::Binary(frame) => messages
                    .push(decrypt_pushed_message(&frame, &key).expect("pushed frame decrypts")),
                Message::Text(_) => answered.notify_one(),
                _ => {}
            }
        }
        messages
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_a_loop_keeps_every_acknowledged_message() {
    const ROUNDS: usize = 5;
    const PER_ROUND: usize = 160;
    let mut gateway = TestGateway::start("kill-loop", &[]);
    let sink = AckSink::start().await;
    let mut online = TestClient::new();
    let offline = TestClient::new();
    let mut traffic = Traffic::default();
    let mut delivered: HashSet<Vec<u8>> = HashSet::new();
    // Registered before the first kill: a registration is durable once `register` is answered,
    // and a kill during the handshake would leave the client to register again.
    let mut ws = WsClient::connect(gateway.clients_port()).await;
    online.register(&mut ws, &gateway.identity).await;
    ws.close().await;

    for round in 0..ROUNDS {
        let frames: Vec<Vec<u8>> = (0..PER_ROUND)
            .map(|i| {
                let recipient = if i % 2 == 0 { &online } else { &offline };
                let message = format!("round {round} message {i}").into_bytes();
                traffic.frame(&gateway, recipient.address(), sink.addr(), &message)
            })
            .collect();
        let acks_before = sink.count();
        let mix_addr = gateway.mix_addr();
        let sender = tokio::spawn(async move {
            let mut sent = 0;
            let Ok(mut mix) = TcpStream::connect(mix_addr).await else {
                return sent;
            };
            for batch in frames.chunks(8) {
                if mix.write_all(&batch.concat()).await.is_err() {
                    break;
                }
                sent += batch.len();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sent
        });
        // The online client comes in once some of its messages are stored: it gets those
        // from the store, then the rest pushed.
        sink.wait_for(acks_before + 10, READ_TIMEOUT).await;
        let mut ws = WsClient::connect(gateway.clients_port()).await;
        online.send_authenticate(&mut ws).await;
        let answered = Arc::new(Notify::new());
        let reader = collect_pushed(ws, online.key().clone(), answered.clone());
        // Kill mid-stream, once the client has its stored messages and gets pushes.
        let _ = tokio::time::timeout(READ_TIMEOUT, answered.notified()).await;
        let acks_now = sink.count();
        sink.wait_for(acks_now + 20, READ_TIMEOUT).await;
        gateway.stop("KILL");
        let sent = sender.await.unwrap();
        delivered.extend(reader.await.unwrap());
        // Acks already on the wire still arrive.
        let acks = sink.settle(Duration::from_millis(300)).await;

        let check = integrity(&gateway.db_path());
        assert_eq!(check, "ok", "round {round}: the store is damaged");
        let stored: HashSet<Vec<u8>> = gateway
            .stored_contents(&online.address_bs58())
            .into_iter()
            .chain(gateway.stored_contents(&offline.address_bs58()))
            .collect();
        let acknowledged = traffic.acknowledged(&sink.acks());
        let lost: Vec<&Vec<u8>> = acknowledged
            .iter()
            .map(|(_, message)| message)
            .filter(|message| !delivered.contains(*message) && !stored.contains(*message))
            .collect();
        eprintln!(
            "[kill loop] round {round}: sent {sent} of {PER_ROUND}, {} acks this round, {} delivered and {} stored in all, integrity {check}",
            acks - acks_before,
            delivered.len(),
            stored.len()
        );
        assert!(
            lost.is_empty(),
            "round {round}: {} acknowledged messages are neither delivered nor stored, e.g. {:?}",
            lost.len(),
            String::from_utf8_lossy(lost[0])
        );
        assert!(
            sent < PER_ROUND || acks - acks_before < PER_ROUND,
            "killed mid-stream"
        );
        gateway.restart();
    }

    // The online client takes what is left for it: every acknowledged message of it arrives.
    let mut ws = WsClient::connect(gateway.clients_port()).await;
    online.send_authenticate(&mut ws).await;
    let reader = collect_pushed(ws, online.key().clone(), Arc::new(Notify::new()));
    gateway.wait_stored(&online.address_bs58(), 0).await;
    let out = gateway.stop("TERM");
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_text());
    delivered.extend(reader.await.unwrap());
    let offline_stored: HashSet<Vec<u8>> = gateway
        .stored_contents(&offline.address_bs58())
        .into_iter()
        .collect();
    for (client, message) in traffic.acknowledged(&sink.acks()) {
        if client == online.address() {
            assert!(
                delivered.contains(&message),
                "acknowledged, never delivered"
            );
        } else {
            assert!(
                offline_stored.contains(&message),
                "acknowledged, not stored"
            );
        }
    }
    assert_eq!(integrity(&gateway.db_path()), "ok");
}

/// Waits until `path` was modified after `since`.
async fn wait_modified_after(path: &Path, since: SystemTime) {
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    loop {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if modified.is_some_and(|m| m > since) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} was not saved",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_filter_survives_restarts_and_crashes() {
    let mut gateway =
        TestGateway::start("replay-restart", &[("replay_filter_save_interval", "'1s'")]);
    let filter_file = gateway.gw.dir().join("data/replay_filter.bin");
    let sink = AckSink::start().await;
    let target = TestClient::new();
    let target_bs58 = target.address_bs58();
    let mut traffic = Traffic::default();

    // Accepted, then a clean restart (the filter is saved at shutdown): now a replay.
    let first = traffic.frame(&gateway, target.address(), sink.addr(), b"first");
    gateway.inject(std::slice::from_ref(&first)).await;
    gateway.wait_stored(&target_bs58, 1).await;
    let out = gateway.stop("TERM");
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_text());
    assert_eq!(util::mode(&filter_file), 0o600);
    gateway.restart();
    gateway.inject(std::slice::from_ref(&first)).await;
    assert_eq!(gateway.wait_metric(REPLAYS, 1.0).await, 1.0);
    assert_eq!(gateway.stored_count(&target_bs58), 1);

    // Accepted, saved by the periodic save, then SIGKILL: still a replay after the restart.
    let second = traffic.frame(&gateway, target.address(), sink.addr(), b"second");
    gateway.inject(std::slice::from_ref(&second)).await;
    gateway.wait_stored(&target_bs58, 2).await;
    wait_modified_after(&filter_file, SystemTime::now()).await;
    gateway.stop("KILL");
    gateway.restart();
    gateway.inject(&[second.clone(), first.clone()]).await;
    assert_eq!(gateway.wait_metric(REPLAYS, 2.0).await, 2.0);
    assert_eq!(gateway.stored_count(&target_bs58), 2);
    assert_eq!(sink.settle(Duration::from_millis(300)).await, 2);

    // A damaged file: a warning naming it, an empty filter, no crash.
    let out = gateway.stop("TERM");
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_text());
    let mut bytes = std::fs::read(&filter_file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&filter_file, bytes).unwrap();
    gateway.restart();
    gateway.inject(std::slice::from_ref(&first)).await;
    gateway.wait_stored(&target_bs58, 3).await;
    let out = gateway.stop("TERM");
    let log = out.stderr_text();
    assert_eq!(out.status.code(), Some(0), "{log}");
    let warned = warnings(&log);
    assert!(
        warned.iter().any(
            |line| line.contains("the saved replay filter cannot be used")
                && line.contains("checksum")
                && line.contains(&filter_file.display().to_string())
        ),
        "{log}"
    );

    // A file larger than the configuration now allows: the same.
    set_debug(&gateway.gw, &[("replay_filter_capacity", "20000")]);
    gateway.restart();
    let out = gateway.stop("TERM");
    let log = out.stderr_text();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("more than the") && log.contains("replay_filter_capacity allows"),
        "{log}"
    );
}

/// A tmpfs of a few MB, unmounted on drop. Mounting needs root, so the tests using one are
/// `#[ignore]`d: nextest reports them as skipped, and `.ci/run` (as root) runs them with
/// `--run-ignored only`.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts one; a test that asked for it fails if it cannot (it only runs where it can).
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
        assert!(
            out.status.success(),
            "cannot mount a tmpfs (this test needs root): {}",
            out.stderr_text().trim()
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk, then frees `leave` bytes; returns the filler file.
    fn fill(&self, leave: u64) -> PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0x5Au8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        let _ = file.sync_all();
        file.set_len(written.saturating_sub(leave)).unwrap();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: mounts a tmpfs; .ci/run runs it (cargo nextest run --run-ignored only ...)"]
async fn a_full_disk_refuses_messages_without_acks_and_recovers() {
    let disk = SmallDisk::mount("4m");
    let db = disk.path().join("db.sqlite");
    let gateway = TestGateway::start(
        "disk-full",
        &[("persistent_storage", &format!("'{}'", db.display()))],
    );
    let sink = AckSink::start().await;
    let mut prober = Prober::register(gateway.clients_port(), &gateway.identity).await;
    let target = TestClient::new();
    let target_bs58 = target.address_bs58();
    let mut traffic = Traffic::default();
    let filler = disk.fill(256 * 1024);

    // 400 messages of 1.6 kB: more than the 256 kB left.
    const FLOOD: usize = 400;
    let body = vec![0x42u8; 1600];
    let frames: Vec<Vec<u8>> = (0..FLOOD)
        .map(|i| {
            let mut message = body.clone();
            message[..8].copy_from_slice(&(i as u64).to_be_bytes());
            traffic.frame(&gateway, target.address(), sink.addr(), &message)
        })
        .collect();
    let mut mix = TcpStream::connect(gateway.mix_addr()).await.unwrap();
    for batch in frames.chunks(50) {
        mix.write_all(&batch.concat()).await.unwrap();
        prober.round_trip().await;
    }
    let failed = gateway.wait_metric(STORE_FAILED, 1.0).await;
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    while gateway.metric("gateway_mix_packets_unwrapped_total").await < FLOOD as f64
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let acks = sink.settle(Duration::from_millis(500)).await;
    let failed = gateway.metric(STORE_FAILED).await.max(failed);
    let committed = gateway.metric("gateway_messages_stored_total").await;
    // Read-write: on the full tmpfs a read-only connection does not see the WAL's content.
    let stored: HashSet<Vec<u8>> = stored_contents_read_write(&db, &target_bs58)
        .into_iter()
        .collect();
    eprintln!(
        "[disk full] {FLOOD} sent: {committed} stored, {failed} refused by the full disk, {acks} acks"
    );
    assert!(failed > 0.0, "the disk filled up");
    assert!(committed > 0.0, "the disk took some");
    assert_eq!(
        acks as f64, committed,
        "an ack for each committed message only"
    );
    assert_eq!(committed + failed, FLOOD as f64);
    for (_, message) in traffic.acknowledged(&sink.acks()) {
        assert!(stored.contains(&message), "acknowledged but not stored");
    }
    prober.round_trip().await;

    // Space again: messages are stored and acknowledged as before.
    std::fs::remove_file(filler).unwrap();
    let frames: Vec<Vec<u8>> = (0..20)
        .map(|i| traffic.frame(&gateway, target.address(), sink.addr(), &[i; 100]))
        .collect();
    gateway.inject(&frames).await;
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    while stored_contents_read_write(&db, &target_bs58).len() < stored.len() + 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "stored again after space came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sink.wait_for(acks + 20, READ_TIMEOUT).await, acks + 20);
    prober.report("disk full");

    // Warnings are rate-limited.
    let log = stop_and_check_log(gateway, "disk full", 6);
    assert!(
        warnings(&log)
            .iter()
            .any(|l| l.contains("message not stored")),
        "the operator is told"
    );
    assert_eq!(integrity(&db), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_locked_at_runtime_refuses_messages_then_recovers() {
    let gateway = TestGateway::start("locked-runtime", &[]);
    let sink = AckSink::start().await;
    let mut prober = Prober::register(gateway.clients_port(), &gateway.identity).await;
    let target = TestClient::new();
    let mut traffic = Traffic::default();

    let locker = open_store(&gateway.db_path(), OpenFlags::default());
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let locked: Vec<Vec<u8>> = (0..5)
        .map(|i| traffic.frame(&gateway, target.address(), sink.addr(), &[i; 64]))
        .collect();
    gateway.inject(&locked).await;
    // The store gives up after its busy timeout (5 s); the client is served meanwhile.
    for _ in 0..5 {
        prober.round_trip().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(gateway.wait_metric(STORE_FAILED, 5.0).await, 5.0);
    assert_eq!(sink.settle(Duration::from_millis(300)).await, 0, "no acks");
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);

    let unlocked: Vec<Vec<u8>> = (10..15)
        .map(|i| traffic.frame(&gateway, target.address(), sink.addr(), &[i; 64]))
        .collect();
    gateway.inject(&unlocked).await;
    gateway.wait_stored(&target.address_bs58(), 5).await;
    assert_eq!(sink.wait_for(5, READ_TIMEOUT).await, 5);
    let stored: HashSet<Vec<u8>> = gateway
        .stored_contents(&target.address_bs58())
        .into_iter()
        .collect();
    for (_, message) in traffic.acknowledged(&sink.acks()) {
        assert!(stored.contains(&message));
    }
    prober.report("locked at runtime");
    assert_eq!(integrity(&gateway.db_path()), "ok");
}

/// `run` for an initialised gateway; returns the exit code and stderr.
fn run_to_exit(gw: &Gateway) -> (Option<i32>, String) {
    let mut running = gw.spawn(&["run", "--id", gw.id()]);
    let out = running.wait_exit();
    (out.status.code(), out.stderr_text())
}

#[test]
fn an_unusable_database_stops_the_start_with_a_clear_error() {
    // Not a database.
    let gw = Gateway::new("corrupt-db");
    assert!(gw.init(&[]).status.success());
    let db = gw.dir().join("data/db.sqlite");
    std::fs::write(&db, vec![0xA5u8; 16 * 1024]).unwrap();
    let (code, log) = run_to_exit(&gw);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("failed to initialise gateway storage")
            && log.contains(&db.display().to_string())
            && log.contains("not a database"),
        "{log}"
    );

    // Locked by another process.
    let gw = Gateway::new("locked-db");
    assert!(gw.init(&[]).status.success());
    let db = gw.dir().join("data/db.sqlite");
    let locker = rusqlite::Connection::open(&db).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (code, log) = run_to_exit(&gw);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("is locked by another process"), "{log}");
    drop(locker);
}

#[test]
#[ignore = "needs root: mounts a tmpfs; .ci/run runs it (cargo nextest run --run-ignored only ...)"]
fn no_space_for_the_database_stops_the_start_with_a_clear_error() {
    let disk = SmallDisk::mount("1m");
    disk.fill(0);
    let gw = Gateway::new("no-space");
    assert!(gw.init(&[]).status.success());
    let db = disk.path().join("db.sqlite");
    set_debug(
        &gw,
        &[("persistent_storage", &format!("'{}'", db.display()))],
    );
    let (code, log) = run_to_exit(&gw);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("failed to initialise gateway storage")
            && (log.contains("full") || log.contains("No space left")),
        "{log}"
    );
    eprintln!("[no space] {}", log.lines().last().unwrap_or_default());
}
