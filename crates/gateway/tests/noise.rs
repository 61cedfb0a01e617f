//! Noise on the mix port, whole node: peers that misbehave during or after the handshake are
//! cut off and counted, each for its own reason, while an honest Noise peer's packets keep
//! arriving; with `mix_noise = "required"` plain TCP is refused. (The published nym-noise crate
//! and real nym-node are the peers of the interop suites; here the honest peer is the
//! gateway's own initiator.)

mod util;

use std::time::Duration;

use gateway_protocol::test_support::sphinx::{final_hop_packet, v7_frame, ACK_PACKET_LEN};
use nym_gateway::config::NoiseMode;
use nym_gateway::keys::{NodeKeys, NoiseKey};
use nym_gateway::network::Network;
use nym_gateway::node::noise::frame::{Header, Kind};
use nym_gateway::node::noise::handshake;
use nym_gateway::node::rotation;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use util::in_process::{discarding_sink, http_get, loopback_config, metric, RunningNode};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(500);
const WAIT: Duration = Duration::from_secs(20);

/// Whether the gateway closed `stream` within `limit` (it never writes after the handshake).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// `gateway_mix_connections_closed_total{reason}` now.
async fn closed(http: std::net::SocketAddr, reason: &str) -> f64 {
    let (_, text) = http_get(http, "/metrics").await;
    metric(
        &text,
        &format!("gateway_mix_connections_closed_total{{reason=\"{reason}\"}}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_noise_peers_are_cut_off_and_counted_while_others_deliver() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = loopback_config("noise", dir.path(), &Network::mainnet());
    config.debug.mix_noise = NoiseMode::Required;
    config.debug.noise_handshake_timeout = HANDSHAKE_TIMEOUT;
    let keys = NodeKeys::generate().unwrap();
    let sphinx_key = x25519_dalek::PublicKey::from(&keys.sphinx).to_bytes();
    let node = RunningNode::start(&config, keys).await;
    let (mix, http) = (node.mix, node.http);
    let gateway_noise = NoiseKey::load_or_create(rotation::key_dir(&config))
        .unwrap()
        .public;
    let acks = discarding_sink().await;
    let packet = |i: usize| {
        v7_frame(&final_hop_packet(
            sphinx_key,
            mix,
            [0x3c; 32],
            acks,
            &[9; ACK_PACKET_LEN],
            format!("message {i}").as_bytes(),
        ))
    };

    // The honest peer: a completed handshake, then half of its packets.
    let peer_secret = [0x42u8; 32];
    let tcp = TcpStream::connect(mix).await.unwrap();
    let mut honest = handshake::initiate(tcp, &peer_secret, &gateway_noise, WAIT)
        .await
        .expect("the handshake with the gateway completes");
    for i in 0..10 {
        honest.write_all(&packet(i)).await.unwrap();
    }
    honest.flush().await.unwrap();

    // Plain TCP while Noise is required.
    let mut plain = TcpStream::connect(mix).await.unwrap();
    plain.write_all(&packet(100)).await.unwrap();
    assert!(
        closed_within(&mut plain, WAIT).await,
        "plain TCP is refused"
    );
    assert_eq!(closed(http, "noise_required").await, 1.0);

    // A first handshake message that does not decrypt (wrong key material).
    let mut wrong = TcpStream::connect(mix).await.unwrap();
    wrong
        .write_all(&Header::new(Kind::Handshake, 48).encode())
        .await
        .unwrap();
    wrong.write_all(&[0x55; 48]).await.unwrap();
    assert!(
        closed_within(&mut wrong, WAIT).await,
        "a wrong handshake is refused"
    );

    // Half a handshake message, then silence: cut off after the handshake timeout.
    let mut stalled = TcpStream::connect(mix).await.unwrap();
    stalled
        .write_all(&Header::new(Kind::Handshake, 48).encode())
        .await
        .unwrap();
    stalled.write_all(&[0; 10]).await.unwrap();
    assert!(
        !closed_within(&mut stalled, HANDSHAKE_TIMEOUT / 4).await,
        "a slow handshake gets its time"
    );
    assert!(
        closed_within(&mut stalled, WAIT).await,
        "a stalled handshake is cut off"
    );
    assert_eq!(closed(http, "noise_handshake").await, 2.0);

    // A completed handshake, then bytes that are not a sealed frame.
    let tcp = TcpStream::connect(mix).await.unwrap();
    let garbage = handshake::initiate(tcp, &[0x43; 32], &gateway_noise, WAIT)
        .await
        .unwrap();
    let mut raw = garbage_stream(garbage);
    let mut frame = Header::new(Kind::Data, 64).encode().to_vec();
    frame.extend_from_slice(&[0xee; 64]);
    raw.write_all(&frame).await.unwrap();
    assert!(
        closed_within(&mut raw, WAIT).await,
        "garbage after the handshake is cut off"
    );
    assert_eq!(closed(http, "noise_stream").await, 1.0);

    // The honest peer was not disturbed: the rest of its packets arrive on the same connection.
    for i in 10..20 {
        honest.write_all(&packet(i)).await.unwrap();
    }
    honest.flush().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let stored = loop {
        let (_, text) = http_get(http, "/metrics").await;
        let stored = metric(&text, "gateway_messages_stored_total");
        if stored >= 20.0 || tokio::time::Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        stored, 20.0,
        "every packet of the honest peer is stored, and no other"
    );
    let (_, text) = http_get(http, "/metrics").await;
    assert_eq!(
        metric(
            &text,
            "gateway_noise_handshakes_accepted_total{outcome=\"ok\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &text,
            "gateway_noise_handshakes_accepted_total{outcome=\"failed\"}"
        ),
        2.0
    );
    drop(honest);
    node.stop().await;
}

/// The TCP stream under a Noise connection, to write bytes the Noise layer would never send.
fn garbage_stream(noise: nym_gateway::node::noise::stream::NoiseStream<TcpStream>) -> TcpStream {
    noise.into_inner()
}
