//! Abusive peers on both ports, over loopback: slowloris, idle connections past the caps, a
//! full file table, oversize frames, a quota flood, replay floods, a client that never reads,
//! and rapid reconnects. In each, a well-behaved client keeps being served (its latency is
//! measured and printed), the gateway's memory stays bounded and its log is not flooded.
//!
//! Every loop is bounded in count and time; limits are set small through `[debug]` so the
//! tests stay light.

mod util;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use gateway_protocol::client::ServerResponse;
use gateway_protocol::packet_size::PacketSize;
use gateway_protocol::test_support::sphinx::{
    final_hop_plaintext, v7_frame, HonestPacket, RouteNode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use util::harness::TestGateway;
use util::probe::{
    closed_within, stop_and_check_log, summary, AckSink, Prober, Sampler, Traffic, Usage,
};
use util::ws_client::{random, TestClient, WsClient, READ_TIMEOUT};

/// Memory the gateway may gain during an attack before a test fails: generous, since the
/// point is to catch growth with the attack's size (a buffer per declared frame length, a
/// queue per message), not allocator noise.
const RSS_SLACK_MIB: u64 = 64;

/// How long a test waits for the gateway to close an abusive connection.
const CLOSE_WAIT: Duration = Duration::from_secs(15);

async fn mix_connection(gateway: &TestGateway) -> TcpStream {
    TcpStream::connect(gateway.mix_addr()).await.unwrap()
}

/// A websocket upgrade done by hand, leaving the raw stream for raw frames.
async fn raw_websocket(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut byte = [0u8; 1];
    while !response.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(READ_TIMEOUT, stream.read(&mut byte))
            .await
            .expect("upgrade response in time")
            .unwrap();
        assert_eq!(read, 1, "connection closed during the upgrade");
        response.push(byte[0]);
    }
    assert!(response.starts_with(b"HTTP/1.1 101"), "{response:?}");
    stream
}

/// A masked client frame header announcing `len` payload bytes.
fn frame_header(opcode: u8, fin: bool, len: u64) -> Vec<u8> {
    let mut header = vec![u8::from(fin) << 7 | opcode];
    match len {
        0..=125 => header.push(0x80 | len as u8),
        126..=65535 => {
            header.push(0x80 | 126);
            header.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            header.push(0x80 | 127);
            header.extend_from_slice(&len.to_be_bytes());
        }
    }
    header.extend_from_slice(&[0, 0, 0, 0]); // a zero mask leaves the payload as it is
    header
}

/// Measures the prober (and, given a mix connection, a push to it) every 100 ms for `span`.
async fn probe_for(
    span: Duration,
    prober: &mut Prober,
    gateway: &TestGateway,
    mix: Option<(&mut TcpStream, SocketAddr)>,
) {
    let end = Instant::now() + span;
    let mut mix = mix;
    while Instant::now() < end {
        prober.round_trip().await;
        if let Some((stream, ack_hop)) = mix.as_mut() {
            prober.push_round_trip(gateway, stream, *ack_hop).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The well-behaved peers an attack must not disturb: an authenticated client (the prober)
/// and a mix connection of its own pushing messages to it, acknowledged to a sink of its own.
struct Bystanders {
    prober: Prober,
    mix: TcpStream,
    sink: AckSink,
}

impl Bystanders {
    /// Registers the prober and connects its mix connection; one push checks both work.
    async fn join(gateway: &TestGateway) -> Self {
        let sink = AckSink::start().await;
        let mut prober = Prober::register(gateway.clients_port(), &gateway.identity).await;
        let mut mix = mix_connection(gateway).await;
        prober.push_round_trip(gateway, &mut mix, sink.addr()).await;
        Self { prober, mix, sink }
    }

    /// One round trip of the prober and one push to it.
    async fn probe(&mut self, gateway: &TestGateway) {
        self.prober.round_trip().await;
        self.prober
            .push_round_trip(gateway, &mut self.mix, self.sink.addr())
            .await;
    }

    /// Probes every 100 ms for `span`.
    async fn probe_for(&mut self, span: Duration, gateway: &TestGateway) {
        let mix = Some((&mut self.mix, self.sink.addr()));
        probe_for(span, &mut self.prober, gateway, mix).await;
    }

    /// A push over a new mix connection: there is a place for it.
    async fn push_over_new_connection(&mut self, gateway: &TestGateway) {
        let mut fresh = mix_connection(gateway).await;
        self.prober
            .push_round_trip(gateway, &mut fresh, self.sink.addr())
            .await;
    }

    /// Stops `sampler` and prints what it and the prober measured.
    fn finish(&self, sampler: Sampler, label: &str) -> Usage {
        let usage = sampler.finish(label);
        self.prober.report(label);
        usage
    }
}

/// A connection to each port that sends nothing.
async fn idle_pair(gateway: &TestGateway) -> [TcpStream; 2] {
    [
        mix_connection(gateway).await,
        TcpStream::connect(("127.0.0.1", gateway.clients_port()))
            .await
            .unwrap(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_on_the_mix_port_is_cut_off() {
    let gateway = TestGateway::start(
        "mix-slowloris",
        &[
            ("maximum_mix_connections", "24"),
            ("mix_frame_timeout", "'1s'"),
            ("mix_connection_idle_timeout", "'3s'"),
        ],
    );
    let mut bystanders = Bystanders::join(&gateway).await;
    let sampler = Sampler::start(gateway.pid());

    // 22 stalled connections (with the probe's and the drip's, every place is taken): a
    // partial header, a header and part of a packet, or nothing.
    let mut stalled = tokio::task::JoinSet::new();
    for i in 0..22 {
        let mut stream = mix_connection(&gateway).await;
        let start = Instant::now();
        match i % 3 {
            0 => stream.write_all(&[7, 1]).await.unwrap(),
            1 => {
                stream.write_all(&[7, 1, 0]).await.unwrap();
                stream.write_all(&[0u8; 1000]).await.unwrap();
            }
            _ => {}
        }
        stalled.spawn(async move {
            let closed = closed_within(&mut stream, CLOSE_WAIT).await;
            (i % 3, closed.map(|_| start.elapsed()))
        });
    }
    // One drips a byte every 200 ms: each byte is new data, but its frame never completes.
    let drip = tokio::spawn({
        let addr = gateway.mix_addr();
        async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let (mut read, mut write) = stream.into_split();
            let start = Instant::now();
            let writer = tokio::spawn(async move {
                let header = [7u8, 1, 0];
                for n in 0..75 {
                    let byte = header.get(n).copied().unwrap_or(0);
                    if write.write_all(&[byte]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
            let mut buf = [0u8; 16];
            let closed = matches!(
                tokio::time::timeout(CLOSE_WAIT, read.read(&mut buf)).await,
                Ok(Ok(0) | Err(_))
            );
            writer.abort();
            closed.then(|| start.elapsed())
        }
    });
    // The well-behaved client and mix connection are served while the stalled ones wait out
    // their timeouts.
    bystanders.probe_for(Duration::from_secs(4), &gateway).await;

    let mut closed_after: HashMap<usize, Vec<Duration>> = HashMap::new();
    while let Some(result) = stalled.join_next().await {
        let (kind, elapsed) = result.unwrap();
        let elapsed = elapsed
            .unwrap_or_else(|| panic!("a stalled mix connection (kind {kind}) is still open"));
        closed_after.entry(kind).or_default().push(elapsed);
    }
    let drip = drip
        .await
        .unwrap()
        .expect("the dripping mix connection is closed");
    let usage = bystanders.finish(sampler, "mix slowloris");
    eprintln!(
        "[mix slowloris] closed after: partial header {}, partial packet {}, idle {}; drip closed after {drip:?}",
        summary(&closed_after[&0]),
        summary(&closed_after[&1]),
        summary(&closed_after[&2]),
    );
    let frame_timeouts = gateway
        .metric("gateway_mix_connections_closed_total{reason=\"frame_timeout\"}")
        .await;
    let idle_timeouts = gateway
        .metric("gateway_mix_connections_closed_total{reason=\"idle_timeout\"}")
        .await;
    eprintln!("[mix slowloris] closed: {frame_timeouts} frame timeouts, {idle_timeouts} idle");
    assert!(frame_timeouts >= 15.0, "{frame_timeouts}");
    assert!(idle_timeouts >= 7.0, "{idle_timeouts}");
    usage.assert_rss_within(RSS_SLACK_MIB);

    // Places are free again.
    bystanders.push_over_new_connection(&gateway).await;
    stop_and_check_log(gateway, "mix slowloris", 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_on_the_client_port_is_cut_off() {
    let gateway = TestGateway::start(
        "client-slowloris",
        &[
            ("maximum_client_connections", "48"),
            ("websocket_upgrade_timeout", "'1s'"),
            ("initial_message_timeout", "'1s'"),
            ("handshake_message_timeout", "'1s'"),
            ("pre_authentication_timeout", "'3s'"),
        ],
    );
    let port = gateway.clients_port();
    let identity = gateway.identity;
    let mut prober = Prober::register(port, &identity).await;
    let sampler = Sampler::start(gateway.pid());

    const EACH: usize = 10;
    let mut attackers = tokio::task::JoinSet::new();
    for _ in 0..EACH {
        // A websocket upgrade whose headers never end, one byte at a time.
        attackers.spawn(async move {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let start = Instant::now();
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .await
                .unwrap();
            while start.elapsed() < CLOSE_WAIT {
                if stream.write_all(b"a").await.is_err() {
                    break;
                }
                if closed_within(&mut stream, Duration::from_millis(200))
                    .await
                    .is_some()
                {
                    break;
                }
            }
            ("stalled upgrade", start.elapsed())
        });
        // supportedProtocol every 500 ms: every message is in time, but it never authenticates.
        attackers.spawn(async move {
            let mut ws = WsClient::connect(port).await;
            let start = Instant::now();
            while start.elapsed() < CLOSE_WAIT {
                let request = gateway_protocol::client::ClientRequest::SupportedProtocol;
                if ws.ws.send(Message::text(request.to_text())).await.is_err() {
                    break;
                }
                match ws.read(Duration::from_millis(500)).await {
                    Ok(Some(Ok(Message::Text(text)))) if text.contains("supportedProtocol") => {
                        tokio::time::sleep(Duration::from_millis(400)).await;
                    }
                    Ok(Some(Ok(Message::Text(text)))) => {
                        assert!(
                            text.contains("timed out while waiting for initial data"),
                            "{text}"
                        );
                        ws.expect_closed().await;
                        break;
                    }
                    _ => break,
                }
            }
            ("supportedProtocol forever", start.elapsed())
        });
        // The first byte of a websocket frame, then nothing.
        attackers.spawn(async move {
            let mut stream = raw_websocket(port).await;
            let start = Instant::now();
            stream.write_all(&[0x81]).await.unwrap();
            closed_within(&mut stream, CLOSE_WAIT).await;
            ("partial frame", start.elapsed())
        });
        // A handshake that never finishes, kept busy with frames the handshake ignores.
        attackers.spawn(async move {
            let mut ws = WsClient::connect(port).await;
            let (_, init) = TestClient::new().handshake_init();
            ws.send_request(&TestClient::init_request(init)).await;
            assert!(matches!(
                ws.next_response().await,
                ServerResponse::HandshakePayload { .. }
            ));
            let start = Instant::now();
            while start.elapsed() < CLOSE_WAIT {
                if ws
                    .ws
                    .send(Message::text(r#"{"type":"nothing"}"#))
                    .await
                    .is_err()
                {
                    break;
                }
                match ws.read(Duration::from_millis(300)).await {
                    Err(_) => {}
                    Ok(Some(Ok(Message::Text(text)))) => {
                        assert!(text.contains("handshake"), "{text}");
                    }
                    Ok(_) => break,
                }
            }
            ("stalled handshake", start.elapsed())
        });
    }

    probe_for(Duration::from_secs(4), &mut prober, &gateway, None).await;
    let mut lasted: HashMap<&str, Vec<Duration>> = HashMap::new();
    while let Some(result) = attackers.join_next().await {
        let (kind, elapsed) = result.unwrap();
        lasted.entry(kind).or_default().push(elapsed);
    }
    let usage = sampler.finish("client slowloris");
    prober.report("client slowloris");
    for (kind, durations) in &lasted {
        eprintln!("[client slowloris] {kind}: held for {}", summary(durations));
        assert_eq!(durations.len(), EACH);
        for held in durations {
            assert!(
                *held < Duration::from_secs(8),
                "a '{kind}' connection was held for {held:?}"
            );
        }
    }
    let rejected =
        |reason: &str| format!("gateway_client_connections_rejected_total{{reason=\"{reason}\"}}");
    assert_eq!(
        gateway
            .metric(&rejected("pre_authentication_timeout"))
            .await,
        EACH as f64
    );
    assert!(gateway.metric(&rejected("websocket_upgrade")).await >= EACH as f64);
    assert!(gateway.metric(&rejected("initial_timeout")).await >= EACH as f64);
    assert_eq!(
        gateway
            .metric("gateway_handshakes_total{outcome=\"failed\"}")
            .await,
        EACH as f64
    );
    usage.assert_rss_within(RSS_SLACK_MIB);
    prober.round_trip().await;
    stop_and_check_log(gateway, "client slowloris", 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_up_to_and_past_both_caps() {
    const CAP: usize = 64;
    /// Idle connections opened on each port, far past the caps: two descriptors per pair here.
    const ATTACK: usize = 1000;
    // Before the gateway starts, so that it inherits the raised limit too.
    let attack = util::descriptors_for("idle flood", 2 * ATTACK as u64) as usize / 2;
    assert!(
        attack >= 4 * CAP,
        "the hard open-files limit leaves room for {attack} idle pairs: too few to test caps of {CAP}"
    );
    let gateway = TestGateway::start(
        "idle-flood",
        &[
            ("maximum_mix_connections", &CAP.to_string()),
            ("maximum_client_connections", &CAP.to_string()),
            ("websocket_upgrade_timeout", "'4s'"),
            ("mix_connection_idle_timeout", "'4s'"),
        ],
    );
    // The well-behaved peers connect first and hold one place on each port.
    let mut bystanders = Bystanders::join(&gateway).await;
    let sampler = Sampler::start(gateway.pid());

    let started = Instant::now();
    let mut idle = Vec::with_capacity(2 * attack);
    for _ in 0..attack {
        idle.extend(idle_pair(&gateway).await);
    }
    eprintln!(
        "[idle flood] {} idle connections opened in {:?}",
        idle.len(),
        started.elapsed()
    );
    bystanders.probe_for(Duration::from_secs(2), &gateway).await;

    // Every idle connection is closed: past the cap at once, within it after its timeout.
    let mut lasted = Vec::new();
    for stream in &mut idle {
        lasted.push(
            closed_within(stream, CLOSE_WAIT)
                .await
                .expect("an idle connection is still open"),
        );
    }
    let usage = bystanders.finish(sampler, "idle flood");
    eprintln!("[idle flood] closed after {}", summary(&lasted));
    let refused_mix = gateway
        .metric("gateway_mix_connections_closed_total{reason=\"connection_limit\"}")
        .await;
    let refused_clients = gateway
        .metric("gateway_client_connections_rejected_total{reason=\"connection_limit\"}")
        .await;
    eprintln!("[idle flood] refused at the cap: {refused_mix} mix, {refused_clients} client");
    assert!(refused_mix >= (attack - 2 * CAP) as f64, "{refused_mix}");
    assert!(
        refused_clients >= (attack - 2 * CAP) as f64,
        "{refused_clients}"
    );
    assert!(
        usage.peak_fds <= usage.start_fds + 2 * CAP + 16,
        "the gateway held {} descriptors (started with {})",
        usage.peak_fds,
        usage.start_fds
    );
    usage.assert_rss_within(RSS_SLACK_MIB);

    // New peers get in again.
    let mut ws = WsClient::connect(gateway.clients_port()).await;
    TestClient::new().register(&mut ws, &gateway.identity).await;
    bystanders.push_over_new_connection(&gateway).await;
    stop_and_check_log(gateway, "idle flood", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_file_table_is_survived_and_warned_about_rate_limited() {
    /// Connection pairs opened against the gateway's few free descriptors.
    const PAIRS: usize = 300;
    let pairs = util::descriptors_for("file table full", 2 * PAIRS as u64) as usize / 2;
    assert!(
        pairs >= 50,
        "the hard open-files limit leaves room for {pairs} connection pairs: too few to fill the gateway's table"
    );
    let gateway = TestGateway::start("emfile", &[("websocket_upgrade_timeout", "'2s'")]);
    let mut prober = Prober::register(gateway.clients_port(), &gateway.identity).await;
    // Leave the gateway a handful of free descriptors.
    let pid = gateway.pid();
    let limit = util::probe::fd_count(pid) + 16;
    let status = std::process::Command::new("prlimit")
        .args([
            &format!("--pid={pid}"),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status()
        .expect("prlimit runs");
    assert!(status.success(), "prlimit failed");
    let sampler = Sampler::start(pid);

    let mut attackers = Vec::new();
    for _ in 0..pairs {
        attackers.extend(idle_pair(&gateway).await);
    }
    // For three seconds both listeners fail to accept; the authenticated client is served.
    probe_for(Duration::from_secs(3), &mut prober, &gateway, None).await;
    drop(attackers);
    let usage = sampler.finish("file table full");
    usage.assert_rss_within(RSS_SLACK_MIB);
    prober.report("file table full");

    // Once the attackers are gone, new clients get in.
    let deadline = Instant::now() + CLOSE_WAIT;
    let registered = loop {
        let attempt = tokio::time::timeout(Duration::from_secs(5), async {
            let mut ws = WsClient::connect(gateway.clients_port()).await;
            TestClient::new().register(&mut ws, &gateway.identity).await;
        })
        .await;
        if attempt.is_ok() || Instant::now() > deadline {
            break attempt.is_ok();
        }
    };
    assert!(registered, "a new client can register after the attack");
    let log = stop_and_check_log(gateway, "file table full", 3);
    let accept_warnings = log
        .lines()
        .filter(|line| line.contains("failed to accept"))
        .count();
    eprintln!("[file table full] {accept_warnings} accept warnings");
    assert!(
        (1..=2).contains(&accept_warnings),
        "accept failures are warned about, at most once per 10 s: {accept_warnings}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_frames_end_only_their_connection() {
    let gateway = TestGateway::start("oversize", &[("maximum_client_message_size", "4096")]);
    let port = gateway.clients_port();
    let sink = AckSink::start().await;
    let mut prober = Prober::register(port, &gateway.identity).await;
    let sampler = Sampler::start(gateway.pid());

    // Frames announcing a GiB, and a message fragmented past the limit, before authentication.
    let mut attackers = tokio::task::JoinSet::new();
    for i in 0..40 {
        attackers.spawn(async move {
            let mut stream = raw_websocket(port).await;
            if i % 2 == 0 {
                stream
                    .write_all(&frame_header(0x2, true, 1 << 30))
                    .await
                    .unwrap();
                let _ = stream.write_all(&[0u8; 1000]).await;
            } else {
                // 100 fragments of 100 bytes: 10 000 bytes in one message.
                for n in 0..100 {
                    let opcode = if n == 0 { 0x1 } else { 0x0 };
                    let mut frame = frame_header(opcode, n == 99, 100);
                    frame.extend_from_slice(&[b'a'; 100]);
                    if stream.write_all(&frame).await.is_err() {
                        break;
                    }
                }
            }
            closed_within(&mut stream, CLOSE_WAIT).await
        });
    }

    // On the mix port: extended32 frames of garbage are dropped one by one, the connection
    // stays and still delivers; an unknown size id closes its connection.
    let mut mix = mix_connection(&gateway).await;
    let mut garbage = vec![7, PacketSize::Extended32 as u8, 0];
    garbage.resize(3 + 33133, 0xA5);
    for _ in 0..20 {
        mix.write_all(&garbage).await.unwrap();
    }
    let mut bad_size = mix_connection(&gateway).await;
    bad_size.write_all(&[7, 99, 0]).await.unwrap();
    bad_size.write_all(&[0u8; 4096]).await.unwrap();
    assert!(closed_within(&mut bad_size, CLOSE_WAIT).await.is_some());

    probe_for(
        Duration::from_secs(2),
        &mut prober,
        &gateway,
        Some((&mut mix, sink.addr())),
    )
    .await;
    let mut closed = 0;
    while let Some(result) = attackers.join_next().await {
        assert!(
            result.unwrap().is_some(),
            "an oversize frame's connection is still open"
        );
        closed += 1;
    }
    let usage = sampler.finish("oversize frames");
    prober.report("oversize frames");
    assert_eq!(closed, 40);
    assert_eq!(
        gateway
            .metric("gateway_mix_packets_dropped_total{reason=\"unwrap_failed\"}")
            .await,
        20.0
    );
    assert_eq!(
        gateway
            .metric("gateway_mix_connections_closed_total{reason=\"codec_error\"}")
            .await,
        1.0
    );
    usage.assert_rss_within(RSS_SLACK_MIB);
    stop_and_check_log(gateway, "oversize frames", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_for_one_client_stops_at_its_quota_and_withholds_the_acks() {
    const QUOTA: usize = 20;
    const FLOOD: usize = 150;
    const OTHER: usize = 15;
    let gateway = TestGateway::start(
        "quota-flood",
        &[("max_stored_messages_per_client", &QUOTA.to_string())],
    );
    let sink = AckSink::start().await;
    let mut bystanders = Bystanders::join(&gateway).await;
    let flooded = TestClient::new();
    let other = TestClient::new();

    let mut traffic = Traffic::default();
    let mut frames = Vec::new();
    for i in 0..FLOOD {
        let message = format!("flood {i}").into_bytes();
        frames.push(traffic.frame(&gateway, flooded.address(), sink.addr(), &message));
        if i % 10 == 0 {
            let message = format!("other {i}").into_bytes();
            frames.push(traffic.frame(&gateway, other.address(), sink.addr(), &message));
        }
    }
    assert_eq!(frames.len(), FLOOD + OTHER);
    let sampler = Sampler::start(gateway.pid());
    let mut mix = mix_connection(&gateway).await;
    for batch in frames.chunks(20) {
        mix.write_all(&batch.concat()).await.unwrap();
        bystanders.probe(&gateway).await;
    }
    gateway
        .wait_stored(&other.address_bs58(), OTHER as i64)
        .await;
    gateway
        .wait_stored(&flooded.address_bs58(), QUOTA as i64)
        .await;
    let acks = sink.settle(Duration::from_millis(500)).await;
    let usage = bystanders.finish(sampler, "quota flood");

    let refused = gateway
        .wait_metric(
            "gateway_mix_packets_dropped_total{reason=\"store_refused\"}",
            (FLOOD - QUOTA) as f64,
        )
        .await;
    eprintln!("[quota flood] {acks} acks, {refused} refused");
    assert_eq!(refused, (FLOOD - QUOTA) as f64);
    assert_eq!(acks, QUOTA + OTHER, "an ack for each stored message only");
    let stored: HashSet<Vec<u8>> = gateway
        .stored_contents(&flooded.address_bs58())
        .into_iter()
        .chain(gateway.stored_contents(&other.address_bs58()))
        .collect();
    for (_, message) in traffic.acknowledged(&sink.acks()) {
        assert!(stored.contains(&message), "acknowledged but not stored");
    }
    usage.assert_rss_within(RSS_SLACK_MIB);
    // Quota refusals are the sender's doing: not warned about.
    stop_and_check_log(gateway, "quota flood", 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_floods_are_counted_and_store_nothing() {
    const DISTINCT: usize = 20;
    const COPIES: usize = 25;
    let gateway = TestGateway::start("replay-flood", &[]);
    let sink = AckSink::start().await;
    let mut bystanders = Bystanders::join(&gateway).await;
    let target = TestClient::new();
    let mut traffic = Traffic::default();
    let frames: Vec<Vec<u8>> = (0..DISTINCT)
        .map(|i| traffic.frame(&gateway, target.address(), sink.addr(), &[i as u8; 64]))
        .collect();

    let sampler = Sampler::start(gateway.pid());
    // Each packet 25 times, over 5 connections, interleaved.
    let mut connections = Vec::new();
    for _ in 0..5 {
        connections.push(mix_connection(&gateway).await);
    }
    for round in 0..COPIES {
        let stream = &mut connections[round % 5];
        stream.write_all(&frames.concat()).await.unwrap();
        if round % 5 == 0 {
            bystanders.probe(&gateway).await;
        }
    }
    gateway
        .wait_stored(&target.address_bs58(), DISTINCT as i64)
        .await;
    let expected_replays = (DISTINCT * (COPIES - 1)) as f64;
    let replays = gateway
        .wait_metric(
            "gateway_mix_packets_dropped_total{reason=\"replay\"}",
            expected_replays,
        )
        .await;
    let acks = sink.settle(Duration::from_millis(500)).await;
    let usage = bystanders.finish(sampler, "replay flood");
    eprintln!("[replay flood] {replays} replays dropped, {acks} acks");
    assert_eq!(replays, expected_replays);
    assert_eq!(
        gateway.stored_count(&target.address_bs58()),
        DISTINCT as i64
    );
    assert_eq!(acks, DISTINCT, "one ack per distinct packet");
    usage.assert_rss_within(RSS_SLACK_MIB);
    stop_and_check_log(gateway, "replay flood", 1);
}

/// A websocket client whose socket has a small receive buffer, so a client that stops
/// reading fills the connection quickly.
async fn connect_small_buffer(port: u16) -> WsClient {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    WsClient::over(tcp).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_bounded_and_cut_off() {
    const QUEUE: usize = 8;
    const MESSAGES: usize = 120;
    let gateway = TestGateway::start(
        "never-reads",
        &[
            ("client_push_queue_capacity", &QUEUE.to_string()),
            ("client_write_timeout", "'3s'"),
        ],
    );
    let sink = AckSink::start().await;
    let mut bystanders = Bystanders::join(&gateway).await;
    let mut silent = TestClient::new();
    let mut silent_ws = connect_small_buffer(gateway.clients_port()).await;
    silent.register(&mut silent_ws, &gateway.identity).await;

    // 120 messages of 32 kB: more than the socket buffers hold.
    let mut traffic = Traffic::default();
    let mut frames = Vec::new();
    for i in 0..MESSAGES {
        let mut message = vec![i as u8; 32_000];
        message[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let ack = random();
        traffic
            .by_ack
            .insert(Vec::from(ack), (silent.address(), message.clone()));
        let route = vec![RouteNode::at(gateway.mix_addr(), gateway.sphinx_key)];
        let packet = HonestPacket::new(PacketSize::Extended32, route, silent.address());
        frames.push(v7_frame(&packet.build(&final_hop_plaintext(
            sink.addr(),
            &ack,
            &message,
        ))));
    }
    let sampler = Sampler::start(gateway.pid());
    let mut mix = mix_connection(&gateway).await;
    let injected = Instant::now();
    mix.write_all(&frames.concat()).await.unwrap();

    // While its session still stands, what does not fit its queue goes to the store.
    // The first count seen is the one to keep: while the kernel's socket buffers still take
    // data, the live session also delivers (and deletes) what was stored for it.
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut stored_while_connected = 0;
    while stored_while_connected == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        stored_while_connected = gateway.stored_count(&silent.address_bs58());
    }
    let connected = gateway.metric("gateway_clients_connected").await;
    eprintln!(
        "[never reads] {stored_while_connected} stored while {connected} clients are connected"
    );
    assert_eq!(connected, 2.0, "the silent session still stands");
    assert!(stored_while_connected > 0);

    // The others are served meanwhile, and the silent session ends after the write timeout.
    let mut ended_after = None;
    let deadline = Instant::now() + CLOSE_WAIT;
    while Instant::now() < deadline {
        bystanders.probe(&gateway).await;
        if gateway.metric("gateway_clients_connected").await == 1.0 {
            ended_after = Some(injected.elapsed());
            break;
        }
    }
    let ended_after = ended_after.expect("the silent session ends");
    // Each message is acked once pushed or committed. What was queued for the session goes back
    // to the store when it ends, and under load those commits can leave gaps longer than the
    // settle time: wait for every ack first, then for quiet (a duplicate would show).
    sink.wait_for(MESSAGES, CLOSE_WAIT).await;
    let acks = sink.settle(Duration::from_millis(500)).await;
    let usage = bystanders.finish(sampler, "never reads");

    // Now read what the gateway wrote before giving up: complete frames only.
    let mut pushed = Vec::new();
    while let Some(frame) = silent_ws.try_next_binary(Duration::from_secs(2)).await {
        pushed.push(silent.open_pushed(&frame));
    }
    let stored = gateway.stored_contents(&silent.address_bs58());
    let pushed_set: HashSet<&Vec<u8>> = pushed.iter().collect();
    let stored_set: HashSet<&Vec<u8>> = stored.iter().collect();
    let duplicates = pushed_set.intersection(&stored_set).count();
    eprintln!(
        "[never reads] session ended {ended_after:?} after the injection; {} pushed ({} distinct), {} stored ({} distinct), {duplicates} in both, {acks} acks",
        pushed.len(),
        pushed_set.len(),
        stored.len(),
        stored_set.len()
    );
    for (_, message) in traffic.acknowledged(&sink.acks()) {
        assert!(
            pushed_set.contains(&message) || stored_set.contains(&message),
            "acknowledged but neither delivered nor stored"
        );
    }
    assert_eq!(
        pushed_set.union(&stored_set).count(),
        MESSAGES,
        "every message is delivered or stored"
    );
    assert_eq!(acks, MESSAGES);
    usage.assert_rss_within(RSS_SLACK_MIB);
    stop_and_check_log(gateway, "never reads", 1);
}

/// Reads a connection until it ends, returning the messages pushed on it.
async fn drain(ws: &mut WsClient, client: &TestClient) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    loop {
        match ws.read(READ_TIMEOUT).await {
            Ok(Some(Ok(Message::Binary(frame)))) => messages.push(client.open_pushed(&frame)),
            Ok(Some(Ok(_))) => {}
            Ok(None | Some(Err(_))) => return messages,
            Err(_) => panic!("the connection did not end"),
        }
    }
}

/// A whole session: authenticate, take the stored messages pushed before the answer, stop
/// sending, read everything until the connection ends. Returns the messages received.
async fn whole_session(port: u16, client: &mut TestClient) -> Vec<Vec<u8>> {
    let mut ws = WsClient::connect(port).await;
    client.send_authenticate(&mut ws).await;
    let mut received = Vec::new();
    loop {
        match ws.next_message().await {
            Message::Binary(frame) => received.push(client.open_pushed(&frame)),
            Message::Text(text) => {
                assert!(
                    matches!(
                        ServerResponse::parse(&text),
                        Ok(ServerResponse::Authenticate { status: true, .. })
                    ),
                    "{text}"
                );
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    ws.ws.get_mut().shutdown().await.unwrap();
    received.extend(drain(&mut ws, client).await);
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reconnects_of_one_client_lose_nothing() {
    const CYCLES: usize = 90;
    const MESSAGES: usize = 150;
    let gateway = TestGateway::start(
        "reconnects",
        &[("maximum_auth_request_timestamp_skew", "'1h'")],
    );
    let port = gateway.clients_port();
    let sink = AckSink::start().await;
    let mut prober = Prober::register(port, &gateway.identity).await;
    let mut client = TestClient::new();
    let mut ws = WsClient::connect(port).await;
    client.register(&mut ws, &gateway.identity).await;
    ws.close().await;
    let mut bystander = TestClient::new();
    let mut ws = WsClient::connect(port).await;
    bystander.register(&mut ws, &gateway.identity).await;
    ws.close().await;

    let mut traffic = Traffic::default();
    let frames: Vec<Vec<u8>> = (0..MESSAGES)
        .map(|i| {
            let message = format!("reconnect {i}").into_bytes();
            traffic.frame(&gateway, client.address(), sink.addr(), &message)
        })
        .collect();
    let sampler = Sampler::start(gateway.pid());
    let mix_addr = gateway.mix_addr();
    let injector = tokio::spawn(async move {
        let mut mix = TcpStream::connect(mix_addr).await.unwrap();
        for frame in frames {
            mix.write_all(&frame).await.unwrap();
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        mix
    });

    let mut received = Vec::new();
    let started = Instant::now();
    for cycle in 0..CYCLES {
        match cycle % 3 {
            // A whole session: authenticate, stop sending, read everything until it ends.
            0 => received.extend(whole_session(port, &mut client).await),
            // Authenticate and leave at once, still reading what was written.
            1 => {
                let mut ws = WsClient::connect(port).await;
                client.send_authenticate(&mut ws).await;
                ws.ws.get_mut().shutdown().await.unwrap();
                received.extend(drain(&mut ws, &client).await);
            }
            // Another client authenticates and resets its connection without a word.
            _ => {
                let mut ws = WsClient::connect(port).await;
                bystander.send_authenticate(&mut ws).await;
                let tcp = ws.ws.get_ref();
                tcp.set_zero_linger().unwrap();
                drop(ws);
            }
        }
        if cycle % 10 == 0 {
            prober.round_trip().await;
        }
    }
    let cycles_took = started.elapsed();
    drop(injector.await.unwrap());
    let acks = sink.settle(Duration::from_millis(500)).await;
    // A last session takes whatever is still stored.
    received.extend(whole_session(port, &mut client).await);
    let usage = sampler.finish("reconnects");
    prober.report("reconnects");

    let unique: HashSet<&Vec<u8>> = received.iter().collect();
    eprintln!(
        "[reconnects] {CYCLES} cycles in {cycles_took:?}; {} messages received ({} distinct), {acks} acks, {} still stored",
        received.len(),
        unique.len(),
        gateway.stored_count(&client.address_bs58())
    );
    for (_, message) in traffic.acknowledged(&sink.acks()) {
        assert!(
            unique.contains(&message),
            "acknowledged but never delivered"
        );
    }
    assert_eq!(unique.len(), MESSAGES, "every message arrives");
    assert_eq!(acks, MESSAGES);
    assert_eq!(gateway.stored_count(&client.address_bs58()), 0);
    let deadline = Instant::now() + READ_TIMEOUT;
    while gateway.metric("gateway_clients_connected").await != 1.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        gateway.metric("gateway_clients_connected").await,
        1.0,
        "only the prober's session is left"
    );
    usage.assert_rss_within(RSS_SLACK_MIB);
    stop_and_check_log(gateway, "reconnects", 1);
}
