//! The replay filter's cost with its default settings, measured on the real process: an idle
//! demo gateway writes no filter file and keeps a small memory; after traffic, the file is a
//! megabyte or two, a restart still refuses a replay, and a run that sees nothing new does not
//! rewrite it.

mod util;

use std::time::Duration;

use util::harness::TestGateway;
use util::probe::{rss_kib, AckSink, Traffic};
use util::ws_client::TestClient;
use util::{Gateway, OutputText};

const REPLAYS: &str = "gateway_mix_packets_dropped_total{reason=\"replay\"}";
const BYTES: &str = "gateway_replay_filter_bytes";
const CAPACITY: &str = "gateway_replay_filter_generation_capacity";
/// The bound on what an idle demo gateway may leave.
const MAX_FILE_BYTES: u64 = 16 * 1000 * 1000;
/// Resident memory an idle gateway may have: the filter used to take 267 MiB of it.
const MAX_IDLE_RSS_KIB: u64 = 64 * 1024;

fn filter_file(gw: &Gateway) -> std::path::PathBuf {
    gw.dir().join("data/replay_filter.bin")
}

#[test]
fn an_idle_demo_gateway_writes_no_replay_filter_and_stays_small() {
    // The README's demo: `run --id demo --init-if-missing`, every setting at its default
    // (only the ports are this test's own).
    let gw = Gateway::new("demo");
    let (mix, clients, http) = (
        gw.mix_port.to_string(),
        gw.clients_port.to_string(),
        format!("127.0.0.1:{}", gw.http_port),
    );
    let args = [
        "run",
        "--id",
        "demo",
        "--init-if-missing",
        "--mix-port",
        &mix,
        "--clients-port",
        &clients,
        "--http-api-address",
        &http,
    ];
    for round in 0..2 {
        let mut running = gw.spawn(&args);
        running.wait_ready();
        std::thread::sleep(Duration::from_secs(3));
        let rss = rss_kib(running.id());
        eprintln!("[idle demo, run {round}] gateway RSS {rss} KiB");
        let out = running.terminate("INT");
        let log = out.stderr_text();
        assert_eq!(out.status.code(), Some(0), "{log}");
        assert!(rss > 0 && rss < MAX_IDLE_RSS_KIB, "idle RSS {rss} KiB");
        // Nothing was seen, so nothing is saved: no file at all.
        assert!(
            !filter_file(&gw).exists(),
            "an idle gateway wrote {} bytes of replay filter",
            std::fs::metadata(filter_file(&gw)).map_or(0, |m| m.len())
        );
        assert!(log.contains("no saved replay filter"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_traffic_the_file_is_small_and_a_restart_still_refuses_the_replay() {
    // Default filter settings (the harness's small test bound put back to the default).
    let mut gateway = TestGateway::start("replay-size", &[("replay_filter_capacity", "180000000")]);
    let file = filter_file(&gateway.gw);
    let sink = AckSink::start().await;
    let target = TestClient::new();
    let target_bs58 = target.address_bs58();
    let mut traffic = Traffic::default();

    // The filter's gauges: one generation of the initial 500 000 packets, about 1.4 MiB.
    assert_eq!(gateway.metric(CAPACITY).await, 500_000.0);
    let filter_bytes = gateway.metric(BYTES).await;
    assert!((1.0e6..2.0e6).contains(&filter_bytes), "{filter_bytes}");

    let packet = traffic.frame(&gateway, target.address(), sink.addr(), b"once only");
    gateway.inject(std::slice::from_ref(&packet)).await;
    gateway.wait_stored(&target_bs58, 1).await;
    assert_eq!(gateway.metric(BYTES).await, filter_bytes);
    let out = gateway.stop("INT");
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_text());
    let saved = std::fs::metadata(&file).expect("saved at shutdown after traffic");
    eprintln!("[after traffic] replay filter file {} bytes", saved.len());
    assert!(saved.len() < MAX_FILE_BYTES, "{} bytes", saved.len());
    // One generation of 500 000 packets at 1e-5: about 1.4 MiB.
    assert!(saved.len() < 2 * 1024 * 1024, "{} bytes", saved.len());
    // The generation and a few header words.
    assert!(
        saved.len() as f64 - filter_bytes < 200.0,
        "{} bytes",
        saved.len()
    );
    assert_eq!(util::mode(&file), 0o600);
    let bytes = std::fs::read(&file).unwrap();

    // Loaded at start: the packet is a replay; memory stays small with the filter loaded.
    gateway.restart();
    let rss = rss_kib(gateway.pid());
    eprintln!("[filter loaded] gateway RSS {rss} KiB");
    assert!(rss > 0 && rss < MAX_IDLE_RSS_KIB, "RSS {rss} KiB");
    gateway.inject(std::slice::from_ref(&packet)).await;
    assert_eq!(gateway.wait_metric(REPLAYS, 1.0).await, 1.0);
    assert_eq!(gateway.stored_count(&target_bs58), 1);
    let out = gateway.stop("INT");
    let log = out.stderr_text();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("replay filter loaded"), "{log}");
    // A replay adds nothing: the file was not written again.
    assert_eq!(
        std::fs::read(&file).unwrap(),
        bytes,
        "the file was rewritten"
    );
    assert!(!gateway.gw.dir().join("data/replay_filter.bin.tmp").exists());

    // And the replay is still refused after that second restart.
    gateway.restart();
    gateway.inject(std::slice::from_ref(&packet)).await;
    assert_eq!(gateway.wait_metric(REPLAYS, 1.0).await, 1.0);
    assert_eq!(gateway.stored_count(&target_bs58), 1);
    let out = gateway.stop("TERM");
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_text());
}
