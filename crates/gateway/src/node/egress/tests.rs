//! Egress against real loopback sockets: batching, the per-hop queue and the hop limit (each a
//! counted drop), reconnecting with a capped doubling backoff, a batch whose write failed sent
//! again on the next connection, and the idle close. Times are only checked as lower bounds
//! and as caps with generous slack, never as speed.

use super::*;
use crate::config::NoiseMode;
use crate::keys::NoiseKey;
use crate::node::metrics::EgressDrop;
use gateway_protocol::framing::{self, KeyRotation};
use gateway_protocol::packet_size::PacketSize;
use std::time::Instant;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;

/// How long a test waits for anything that should happen before it fails.
const WAIT: Duration = Duration::from_secs(15);

fn config() -> EgressConfig {
    EgressConfig {
        queue_capacity: 1000,
        max_connections: 4,
        connect_timeout: Duration::from_secs(2),
        initial_backoff: Duration::from_millis(10),
        maximum_backoff: Duration::from_millis(50),
        idle_timeout: Duration::from_secs(30),
        frame_version: FrameVersion::V8,
    }
}

/// An egress with its metrics and the switches that stop it.
/// Noise off: these tests are about queues and connections, not the link's encryption.
fn plain_tcp() -> Noise {
    Noise::new(
        NoiseMode::Off,
        NoiseKey::generate().unwrap(),
        Duration::from_secs(5),
    )
}

struct Setup {
    egress: Egress,
    metrics: Metrics,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Setup {
    fn new(config: EgressConfig) -> Self {
        let metrics = Metrics::new();
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let egress = Egress::new(
            config,
            plain_tcp(),
            metrics.clone(),
            shutdown.clone(),
            tasks.clone(),
        );
        Self {
            egress,
            metrics,
            shutdown,
            tasks,
        }
    }

    /// Packets dropped for `reason`.
    fn dropped(&self, reason: EgressDrop) -> u64 {
        self.metrics
            .egress_packets_dropped
            .get_or_create(&reason)
            .get()
    }

    /// Shuts the egress down and waits for its connection tasks.
    async fn stop(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        tokio::time::timeout(WAIT, self.tasks.wait())
            .await
            .expect("the egress stops");
    }
}

/// A regular-size packet whose bytes say which one it is.
fn packet(next_hop: SocketAddr, n: u32) -> MixPacket {
    let mut packet = vec![0u8; PacketSize::Regular.size()];
    packet[..4].copy_from_slice(&n.to_be_bytes());
    packet[PacketSize::Regular.size() - 4..].copy_from_slice(&n.to_be_bytes());
    MixPacket {
        next_hop,
        packet_size: PacketSize::Regular,
        key_rotation: KeyRotation::Unknown,
        packet,
    }
}

/// Reads frames from `stream` until `want` were decoded or the peer closed; returns the
/// packet numbers in arrival order.
async fn read_numbers(stream: &mut TcpStream, want: usize) -> Vec<u32> {
    let mut buf = Vec::new();
    let mut numbers = Vec::new();
    while numbers.len() < want {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("frames arrive in time")
            .unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut used_total = 0;
        while let Some((frame, used)) = framing::decode(&buf[used_total..]).unwrap() {
            used_total += used;
            let p = &frame.packet;
            let n = u32::from_be_bytes(p[..4].try_into().unwrap());
            assert_eq!(p[p.len() - 4..], n.to_be_bytes(), "a frame arrived whole");
            numbers.push(n);
        }
        buf.drain(..used_total);
    }
    numbers
}

/// The next connection the egress makes to `listener`.
async fn accept(listener: &TcpListener) -> TcpStream {
    tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("the egress connects in time")
        .unwrap()
        .0
}

/// Reads until the egress closes `stream`; panics if it is still open after [`WAIT`] or
/// sends anything.
async fn expect_eof(stream: &mut TcpStream) {
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(WAIT, stream.read(&mut byte))
        .await
        .expect("the egress closes the connection");
    assert_eq!(read.unwrap(), 0, "nothing more is sent");
}

async fn loopback_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// v8 frames carry each packet's key rotation, so the next hop can pick the key the sender
/// used; with v7 configured the same packets go out as `07 size type`.
#[tokio::test]
async fn frames_carry_each_packets_key_rotation_unless_v7_is_configured() {
    for (version, want) in [
        (
            FrameVersion::V8,
            vec![vec![8, 1, 0, 1], vec![8, 1, 0, 2], vec![8, 1, 0, 0]],
        ),
        (
            FrameVersion::V7,
            vec![vec![7, 1, 0], vec![7, 1, 0], vec![7, 1, 0]],
        ),
    ] {
        let (listener, addr) = loopback_listener().await;
        let setup = Setup::new(EgressConfig {
            frame_version: version,
            ..config()
        });
        for (n, rotation) in [KeyRotation::Odd, KeyRotation::Even, KeyRotation::Unknown]
            .into_iter()
            .enumerate()
        {
            let mut p = packet(addr, n as u32);
            p.key_rotation = rotation;
            setup.egress.send(&p).unwrap();
        }
        let mut stream = accept(&listener).await;
        let header = want[0].len();
        for expected in want {
            let mut frame = vec![0u8; header + PacketSize::Regular.size()];
            tokio::time::timeout(WAIT, stream.read_exact(&mut frame))
                .await
                .expect("frames arrive in time")
                .unwrap();
            assert_eq!(frame[..header], expected[..], "{version:?}");
        }
        setup.stop().await;
    }
}

#[tokio::test]
async fn a_burst_to_one_next_hop_arrives_whole_and_in_order() {
    let (listener, addr) = loopback_listener().await;
    let setup = Setup::new(config());
    // Queued before the connection exists, so the writer finds many frames at once and
    // writes them in batches.
    for n in 0..500 {
        setup.egress.send(&packet(addr, n)).unwrap();
    }
    let mut stream = accept(&listener).await;
    let numbers = read_numbers(&mut stream, 500).await;
    assert_eq!(numbers, (0..500).collect::<Vec<_>>());
    setup.stop().await;
    assert_eq!(setup.metrics.egress_packets_sent.get(), 500);
    assert_eq!(setup.metrics.egress_queue_depth.get(), 0);
}

// Current-thread runtime (the default): the connection task cannot run while the test calls
// `send`, so the queue holds exactly what was sent until the test awaits.
#[tokio::test]
async fn a_full_queue_drops_and_counts_the_packets_it_cannot_take() {
    const CAPACITY: usize = 4;
    let (listener, addr) = loopback_listener().await;
    let setup = Setup::new(EgressConfig {
        queue_capacity: CAPACITY,
        ..config()
    });
    let results: Vec<_> = (0..10)
        .map(|n| setup.egress.send(&packet(addr, n)))
        .collect();
    assert_eq!(results[..CAPACITY], [Ok(()); CAPACITY]);
    assert_eq!(
        results[CAPACITY..],
        [Err(EgressError::QueueFull); 10 - CAPACITY]
    );
    assert_eq!(setup.dropped(EgressDrop::QueueFull), (10 - CAPACITY) as u64);
    assert_eq!(setup.metrics.egress_queue_depth.get(), CAPACITY as i64);

    // What the queue took arrives; once it drained, it takes packets again.
    let mut stream = accept(&listener).await;
    assert_eq!(read_numbers(&mut stream, CAPACITY).await, [0, 1, 2, 3]);
    setup.egress.send(&packet(addr, 10)).unwrap();
    assert_eq!(read_numbers(&mut stream, 1).await, [10]);
    setup.stop().await;
    assert_eq!(setup.metrics.egress_packets_sent.get(), CAPACITY as u64 + 1);
    assert_eq!(setup.dropped(EgressDrop::QueueFull), (10 - CAPACITY) as u64);
}

#[tokio::test]
async fn next_hops_past_the_limit_are_refused_and_counted_until_one_closes() {
    let (first, first_addr) = loopback_listener().await;
    let (second, second_addr) = loopback_listener().await;
    let (third, third_addr) = loopback_listener().await;
    let setup = Setup::new(EgressConfig {
        max_connections: 2,
        idle_timeout: Duration::from_millis(300),
        ..config()
    });
    setup.egress.send(&packet(first_addr, 0)).unwrap();
    setup.egress.send(&packet(second_addr, 1)).unwrap();
    assert_eq!(
        setup.egress.send(&packet(third_addr, 2)),
        Err(EgressError::TooManyConnections)
    );
    assert_eq!(setup.dropped(EgressDrop::TooManyConnections), 1);
    // A hop already in use still takes packets.
    setup.egress.send(&packet(first_addr, 3)).unwrap();
    let mut to_first = accept(&first).await;
    let mut to_second = accept(&second).await;
    assert_eq!(read_numbers(&mut to_first, 2).await, [0, 3]);
    assert_eq!(read_numbers(&mut to_second, 1).await, [1]);

    // Both connections close when idle; then the third hop gets its place.
    expect_eof(&mut to_first).await;
    expect_eof(&mut to_second).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(100), third.accept())
            .await
            .is_err(),
        "the refused packet never opened a connection"
    );
    setup.egress.send(&packet(third_addr, 4)).unwrap();
    let mut to_third = accept(&third).await;
    assert_eq!(read_numbers(&mut to_third, 1).await, [4]);
    setup.stop().await;
    assert_eq!(setup.dropped(EgressDrop::TooManyConnections), 1);
    assert_eq!(setup.metrics.egress_packets_sent.get(), 4);
}

#[tokio::test]
async fn reconnects_back_off_doubling_up_to_the_cap() {
    const INITIAL: Duration = Duration::from_millis(20);
    const CAP: Duration = Duration::from_millis(160);
    /// Scheduling noise allowed above the cap.
    const SLACK: Duration = Duration::from_secs(1);
    const ATTEMPTS: usize = 10;
    // A port nothing listens on (yet).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let setup = Setup::new(EgressConfig {
        initial_backoff: INITIAL,
        maximum_backoff: CAP,
        ..config()
    });
    setup.egress.send(&packet(addr, 0)).unwrap();

    // When each failed attempt is counted.
    let mut failures = Vec::new();
    let start = Instant::now();
    while failures.len() < ATTEMPTS {
        let count = setup.metrics.egress_connect_failures.get() as usize;
        while failures.len() < count {
            failures.push(Instant::now());
        }
        assert!(start.elapsed() < WAIT, "only {count} attempts");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let gaps: Vec<Duration> = failures.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("gaps between failed attempts: {gaps:?}");
    let backoffs: Vec<Duration> = (0..gaps.len())
        .map(|k| (INITIAL * 2u32.pow(k as u32)).min(CAP))
        .collect();
    for (k, gap) in gaps.iter().enumerate() {
        assert!(
            *gap <= CAP + SLACK,
            "attempt {}: {gap:?} after the previous one, past the cap {CAP:?}",
            k + 1
        );
    }
    // Never sooner than the backoff. A failure noticed late (the poll above sleeps, and a busy
    // machine wakes it late) lengthens one gap and shortens the next by the same amount, so
    // each two consecutive gaps are checked together (a quarter off for the polling).
    for k in 1..gaps.len() {
        let (pair, due) = (gaps[k - 1] + gaps[k], backoffs[k - 1] + backoffs[k]);
        assert!(
            pair >= due * 3 / 4,
            "attempts {k} and {}: {pair:?} after the one before, backoffs {due:?}",
            k + 1
        );
    }

    // The hop comes up: the next attempt (at most a capped backoff later) connects, and the
    // packet that waited is delivered.
    let listener = TcpListener::bind(addr).await.unwrap();
    let opened = Instant::now();
    let mut stream = accept(&listener).await;
    let waited = opened.elapsed();
    assert!(
        waited <= CAP + SLACK,
        "connected {waited:?} after the hop came up"
    );
    assert_eq!(read_numbers(&mut stream, 1).await, [0]);
    setup.stop().await;
    assert_eq!(setup.metrics.egress_packets_sent.get(), 1);
}

#[tokio::test]
async fn a_batch_whose_write_failed_is_sent_whole_on_the_next_connection() {
    const AFTER_RESET: u32 = 20;
    let (listener, addr) = loopback_listener().await;
    let setup = Setup::new(config());
    setup.egress.send(&packet(addr, 0)).unwrap();
    let first = accept(&listener).await;
    let mut first = first;
    assert_eq!(read_numbers(&mut first, 1).await, [0]);

    // The next hop resets the connection; the RST reaches the egress's socket before it writes
    // again, so the next write fails.
    first.set_zero_linger().unwrap();
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Queued at once (current-thread runtime): they go out as batches, the first of which
    // hits the reset connection.
    for n in 1..=AFTER_RESET {
        setup.egress.send(&packet(addr, n)).unwrap();
    }
    let mut second = accept(&listener).await;
    assert_eq!(
        read_numbers(&mut second, AFTER_RESET as usize).await,
        (1..=AFTER_RESET).collect::<Vec<_>>(),
        "every packet queued after the reset arrives once, in order, on the new connection"
    );
    setup.stop().await;
    assert_eq!(
        setup.metrics.egress_packets_sent.get(),
        u64::from(AFTER_RESET) + 1
    );
    assert_eq!(setup.dropped(EgressDrop::Unreachable), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closes_after_the_idle_timeout_and_traffic_keeps_it_open() {
    const IDLE: Duration = Duration::from_secs(1);
    let (listener, addr) = loopback_listener().await;
    let setup = Setup::new(EgressConfig {
        idle_timeout: IDLE,
        ..config()
    });
    let mut n = 0;
    let mut sent = Instant::now();
    setup.egress.send(&packet(addr, n)).unwrap();
    let mut connection = accept(&listener).await;
    assert_eq!(read_numbers(&mut connection, 1).await, [n]);

    // A packet every tenth of the idle timeout, until one connection has carried them for two
    // and a half timeouts: each write restarts the timer, so the connection stays open. The
    // test knows only when it sent a packet and when it read it; the egress wrote it between
    // the two, so two writes were at most "this read minus the previous send" apart. A busy
    // machine can stall the test for longer than the idle timeout: the connection may then
    // close (its packets go on over a new one), but only after such a gap, and the two and a
    // half timeouts are counted again from there.
    let deadline = Instant::now() + WAIT;
    let mut kept_since = sent;
    let mut longest_gap = Duration::ZERO;
    while sent - kept_since < IDLE * 5 / 2 {
        assert!(
            Instant::now() < deadline,
            "the test never ran for {:?} without a stall of {IDLE:?}",
            IDLE * 5 / 2
        );
        tokio::time::sleep(IDLE / 10).await;
        let previous = sent;
        sent = Instant::now();
        n += 1;
        setup.egress.send(&packet(addr, n)).unwrap();
        let read = read_numbers(&mut connection, 1).await;
        let gap = previous.elapsed();
        longest_gap = longest_gap.max(gap);
        if read.is_empty() {
            assert!(
                longest_gap >= IDLE,
                "closed while no two of its writes can have been more than {longest_gap:?} apart"
            );
            connection = accept(&listener).await;
            assert_eq!(read_numbers(&mut connection, 1).await, [n]);
            (kept_since, longest_gap) = (sent, Duration::ZERO);
        } else {
            assert_eq!(read, [n]);
            if gap >= IDLE {
                kept_since = sent;
            }
        }
    }
    // Only that connection is open (unless the test stalled again since, and it closed).
    let open = setup.metrics.egress_connections.get();
    assert!(
        open == 1 || (open == 0 && sent.elapsed() >= IDLE),
        "{open} connections open"
    );

    // Then nothing: the egress closes the connection, no sooner than the idle timeout after
    // its last write (which came after the last send).
    expect_eof(&mut connection).await;
    assert!(sent.elapsed() >= IDLE, "closed after {:?}", sent.elapsed());
    assert_eq!(setup.metrics.egress_connections.get(), 0);

    // A later packet opens a new one.
    n += 1;
    setup.egress.send(&packet(addr, n)).unwrap();
    let mut next = accept(&listener).await;
    assert_eq!(read_numbers(&mut next, 1).await, [n]);
    setup.stop().await;
    assert_eq!(setup.metrics.egress_packets_sent.get(), u64::from(n) + 1);
}
