//! What happens to a mix packet after framing, without sockets: unwrap, replay check, then the
//! relay (forward hops) or the router (final hops). Forward hops go to a recorder, never to a
//! socket: the vectors' next hops are documentation addresses (192.0.2.x, 198.51.100.x).

use std::net::SocketAddr;
use std::time::Duration;

use gateway_protocol::framing::{FrameVersion, KeyRotation};
use gateway_protocol::mix_packet::MixPacket;
use gateway_protocol::packet_size::PacketSize;
use gateway_protocol::test_support::sphinx::{
    frame as frame_bytes, node_address, HonestPacket, RouteNode,
};
use gateway_protocol::test_support::vectors::{hex32, hex_field, load};
use serde_json::Value;

use super::*;
use crate::config::FinalHopImplementation;
use crate::node::metrics::MixDrop;
use crate::node::relay::{Forward, RelayConfig};
use crate::node::replay::{ReplayFile, ReplayFilter};
use crate::node::unwrapper::Unwrapper;
use gateway_protocol::final_hop::{self, SphinxSecret};
use std::sync::Mutex;

fn vectors() -> Value {
    load("final_hop.json")
}

fn secret_field(v: &Value, key: &str) -> [u8; 32] {
    hex32(v, key)
}

/// The stages after framing, with a relay whose egress is a recorder.
struct Pipeline {
    metrics: Metrics,
    /// Shared by every key the tests use, so a replay is one whatever key unwrapped it.
    replay: Arc<Mutex<ReplayFilter>>,
    relay: Option<Relay>,
    sent: Arc<Mutex<Vec<MixPacket>>>,
}

impl Pipeline {
    fn relay_role() -> Self {
        Self::new(true)
    }

    fn gateway_only() -> Self {
        Self::new(false)
    }

    fn new(relay_role: bool) -> Self {
        let metrics = Metrics::new();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let recorder = sent.clone();
        let forward: Forward = Arc::new(move |packet: &MixPacket| {
            recorder.lock().unwrap().push(packet.clone());
            Ok(())
        });
        let config = RelayConfig {
            maximum_delay: Duration::from_secs(10),
            queue_capacity: 8,
        };
        Self {
            relay: relay_role.then(|| Relay::new(config, forward, metrics.clone())),
            replay: Arc::new(Mutex::new(ReplayFilter::with_capacity(1000, 1e-6))),
            metrics,
            sent,
        }
    }

    /// The static key `secret` (reference unwrap), with the pipeline's replay filter.
    fn keys(&self, secret: &[u8; 32]) -> KeySet {
        let unwrapper = Unwrapper::new(*secret, FinalHopImplementation::Reference).unwrap();
        self.keys_of(unwrapper)
    }

    fn keys_of(&self, unwrapper: Unwrapper) -> KeySet {
        KeySet::single(Arc::new(RotationKey {
            rotation_id: crate::node::rotation::LEGACY_ROTATION_ID,
            public: [0; 32],
            unwrapper: Arc::new(unwrapper),
            replay: self.replay.clone(),
            replay_file: ReplayFile::new("/nonexistent".into(), [0; 32]),
        }))
    }

    /// Decodes one whole frame and runs it through unwrap and dispatch with `secret`.
    fn process(&self, secret: &[u8; 32], framed: &[u8]) -> Option<(ClientAddress, Delivery)> {
        self.process_with(&self.keys(secret), framed)
    }

    fn process_with(&self, keys: &KeySet, framed: &[u8]) -> Option<(ClientAddress, Delivery)> {
        let (frame, used) = framing::decode(framed).unwrap().unwrap();
        assert_eq!(used, framed.len());
        dispatch(
            unwrap(keys, &frame),
            self.relay.as_ref(),
            &self.metrics,
            tokio::time::Instant::now(),
        )
    }

    /// Runs the relay's timer until every waiting packet has left; returns what was sent.
    async fn drain(&self) -> Vec<MixPacket> {
        if let Some(relay) = &self.relay {
            let task = tokio::spawn(relay.clone().run());
            tokio::time::sleep(Duration::from_secs(11)).await;
            assert_eq!(relay.waiting(), 0);
            relay.stop();
            task.await.unwrap();
        }
        self.sent.lock().unwrap().clone()
    }

    fn dropped(&self, reason: MixDrop) -> u64 {
        self.metrics
            .mix_packets_dropped
            .get_or_create(&reason)
            .get()
    }

    fn forwarded(&self) -> u64 {
        self.metrics.relay_packets_forwarded.get()
    }
}

/// The vector's SURB-ack packet, as the first mix node receives it: relayed to the gateway after
/// the 1 ms its header asks for, keeping the frame's key rotation, and the gateway can then take
/// off the last layer and find the client's ack.
#[tokio::test(start_paused = true)]
async fn vector_ack_packet_is_relayed_to_its_next_hop() {
    let v = vectors();
    let mix = secret_field(&v, "mix_node_sphinx_private_key_hex");
    let gateway = secret_field(&v, "gateway_sphinx_private_key_hex");
    let expected = &v["ack_packet_processed_by_mix_node"];
    let want_hop: SocketAddr = expected["next_hop"].as_str().unwrap().parse().unwrap();
    let want_delay = Duration::from_nanos(expected["delay_nanos"].as_u64().unwrap());
    assert_eq!(want_delay, Duration::from_millis(1));

    for result in v["expected_results_for_v7_and_v8"].as_array().unwrap() {
        let ack = hex_field(result, "ack_packet_hex");
        for (version, rotation) in [
            (FrameVersion::V7, KeyRotation::Unknown),
            (FrameVersion::V8, KeyRotation::Odd),
        ] {
            let pipeline = Pipeline::relay_role();
            let start = tokio::time::Instant::now();
            let framed = frame_bytes(version, rotation, &ack);
            assert!(pipeline.process(&mix, &framed).is_none(), "not a final hop");
            assert_eq!(pipeline.metrics.relay_queue_depth.get(), 1);
            assert!(
                pipeline.sent.lock().unwrap().is_empty(),
                "held for its delay"
            );

            tokio::time::sleep(want_delay / 2).await;
            assert!(
                pipeline.sent.lock().unwrap().is_empty(),
                "not before its delay"
            );
            let sent = pipeline.drain().await;
            assert_eq!(sent.len(), 1);
            let packet = &sent[0];
            assert_eq!(packet.next_hop, want_hop);
            assert_eq!(packet.key_rotation, rotation);
            assert_eq!(packet.packet_size, PacketSize::Ack);
            assert!(tokio::time::Instant::now() - start >= want_delay);
            assert_eq!(pipeline.forwarded(), 1);
            assert_eq!(pipeline.metrics.mix_packets_unwrapped.get(), 0);

            let gateway = SphinxSecret::from_bytes(gateway);
            let last = final_hop::unwrap(&gateway, &packet.packet, packet.key_rotation).unwrap();
            let Hop::Final(last) = last.hop else {
                panic!("the gateway gets the final hop")
            };
            assert_eq!(last.message, vec![0xaa; 21]);
            assert_eq!(
                last.destination.to_vec(),
                hex_field(&v, "client_address_hex")
            );
        }
    }
}

/// The fast unwrap path (the default) and the `sphinx-packet` reference relay the vector's ack
/// packet identically: same next hop, same bytes, same key rotation.
#[tokio::test(start_paused = true)]
async fn both_unwrap_implementations_relay_the_same_packet() {
    let v = vectors();
    let key: [u8; 32] = hex_field(&v, "mix_node_sphinx_private_key_hex")
        .try_into()
        .unwrap();
    let ack = hex_field(&v["expected_results_for_v7_and_v8"][0], "ack_packet_hex");
    let framed = frame_bytes(FrameVersion::V8, KeyRotation::Odd, &ack);
    let mut relayed = Vec::new();
    for implementation in [
        FinalHopImplementation::Fast,
        FinalHopImplementation::Reference,
    ] {
        let pipeline = Pipeline::relay_role();
        let keys = pipeline.keys_of(Unwrapper::new(key, implementation).unwrap());
        assert!(pipeline.process_with(&keys, &framed).is_none());
        let sent = pipeline.drain().await;
        assert_eq!(sent.len(), 1);
        relayed.push(sent[0].clone());
    }
    assert_eq!(relayed[0], relayed[1]);
    assert_eq!(relayed[0].key_rotation, KeyRotation::Odd);
}

/// The vector's forward-hop packet for the gateway key: a relay passes it on (to 192.0.2.10,
/// after 5 ns); a gateway only drops it.
#[tokio::test(start_paused = true)]
async fn vector_forward_hop_is_relayed_by_a_relay_and_dropped_by_a_gateway() {
    let v = vectors();
    let gateway = secret_field(&v, "gateway_sphinx_private_key_hex");
    let framed = hex_field(&v, "forward_hop_packet_framed_v7_hex_gateway_must_reject");

    let relay = Pipeline::relay_role();
    assert!(relay.process(&gateway, &framed).is_none());
    let sent = relay.drain().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].next_hop, "192.0.2.10:1789".parse().unwrap());
    assert_eq!(sent[0].packet_size, PacketSize::Regular);
    assert_eq!(sent[0].key_rotation, KeyRotation::Unknown);
    // The last layer belongs to the mix node: a 7-byte message, too short for a SURB-ack.
    let mix = secret_field(&v, "mix_node_sphinx_private_key_hex");
    assert!(matches!(
        final_hop::unwrap(
            &SphinxSecret::from_bytes(mix),
            &sent[0].packet,
            KeyRotation::Unknown
        ),
        Err(UnwrapError::MissingSurbAck { plaintext_len: 7 })
    ));

    let gateway_only = Pipeline::gateway_only();
    assert!(gateway_only.process(&gateway, &framed).is_none());
    assert_eq!(gateway_only.dropped(MixDrop::ForwardHop), 1);
    assert!(gateway_only.drain().await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_replayed_forward_hop_is_relayed_once() {
    let v = vectors();
    let gateway = secret_field(&v, "gateway_sphinx_private_key_hex");
    let framed = hex_field(&v, "forward_hop_packet_framed_v7_hex_gateway_must_reject");
    let pipeline = Pipeline::relay_role();
    assert!(pipeline.process(&gateway, &framed).is_none());
    // The same packet again, also re-framed as v8: the replay tag is the same.
    let (frame, _) = framing::decode(&framed).unwrap().unwrap();
    let v8 = frame_bytes(FrameVersion::V8, KeyRotation::Even, &frame.packet);
    assert!(pipeline.process(&gateway, &framed).is_none());
    assert!(pipeline.process(&gateway, &v8).is_none());
    assert_eq!(pipeline.dropped(MixDrop::Replay), 2);
    assert_eq!(pipeline.drain().await.len(), 1);
}

/// A replay is recognised after the header step, before the payload is decrypted: the
/// second unwrap stops with `Replayed`, and it still counts as a replay.
#[tokio::test(start_paused = true)]
async fn a_replay_stops_before_its_payload_is_decrypted() {
    let v = vectors();
    let gateway = secret_field(&v, "gateway_sphinx_private_key_hex");
    let framed = hex_field(&v, "forward_hop_packet_framed_v7_hex_gateway_must_reject");
    let pipeline = Pipeline::relay_role();
    let (frame, _) = framing::decode(&framed).unwrap().unwrap();
    let keys = pipeline.keys(&gateway);
    let first = unwrap(&keys, &frame);
    assert!(first.result.is_ok());
    assert!(dispatch(
        first,
        pipeline.relay.as_ref(),
        &pipeline.metrics,
        tokio::time::Instant::now()
    )
    .is_none());
    let again = unwrap(&keys, &frame);
    assert!(
        matches!(again.result, Err(UnwrapError::Replayed)),
        "{:?}",
        again.result.err()
    );
    assert!(dispatch(
        again,
        pipeline.relay.as_ref(),
        &pipeline.metrics,
        tokio::time::Instant::now()
    )
    .is_none());
    assert_eq!(pipeline.dropped(MixDrop::Replay), 1);
    assert_eq!(pipeline.drain().await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_tampered_header_is_dropped_not_relayed() {
    let v = vectors();
    let mix = secret_field(&v, "mix_node_sphinx_private_key_hex");
    let ack = hex_field(&v["expected_results_for_v7_and_v8"][0], "ack_packet_hex");
    let pipeline = Pipeline::relay_role();
    // α (0..32), the MAC (32..48) and the routing information (48..348) are all covered.
    for position in [0, 40, 100, 347] {
        let mut tampered = ack.clone();
        tampered[position] ^= 0x04;
        let framed = frame_bytes(FrameVersion::V7, KeyRotation::Unknown, &tampered);
        assert!(pipeline.process(&mix, &framed).is_none());
    }
    assert_eq!(pipeline.dropped(MixDrop::UnwrapFailed), 4);
    assert!(pipeline.drain().await.is_empty());
    assert_eq!(pipeline.forwarded(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_packet_for_another_key_is_dropped_not_relayed() {
    let v = vectors();
    let gateway = secret_field(&v, "gateway_sphinx_private_key_hex");
    // The ack packet's first layer is for the mix node, not for the gateway key.
    let ack = hex_field(&v["expected_results_for_v7_and_v8"][0], "ack_packet_hex");
    let pipeline = Pipeline::relay_role();
    let framed = frame_bytes(FrameVersion::V8, KeyRotation::Even, &ack);
    assert!(pipeline.process(&gateway, &framed).is_none());
    assert_eq!(pipeline.dropped(MixDrop::UnwrapFailed), 1);
    assert!(pipeline.drain().await.is_empty());
}

/// A two-hop ack-size packet whose first layer is for `first` and names `second_address` as the
/// next hop, asking the first hop to wait `delay`.
fn two_hop_packet(first: &[u8; 32], second_address: [u8; 32], delay: Duration) -> Vec<u8> {
    let first = SphinxSecret::from_bytes(*first);
    let second = SphinxSecret::from_bytes([0x77; 32]);
    let route = vec![
        RouteNode::at("192.0.2.1:1789".parse().unwrap(), first.public_key()).with_delay(delay),
        RouteNode {
            address: second_address,
            sphinx_key: second.public_key(),
            delay: Duration::ZERO,
        },
    ];
    HonestPacket::new(PacketSize::Ack, route, [3; 32]).build(b"relay test")
}

#[tokio::test(start_paused = true)]
async fn a_next_hop_that_is_no_address_is_dropped() {
    let relay_key = [0x31; 32];
    // The next hop's address field starts with 9: no IP version.
    let packet = two_hop_packet(&relay_key, [9; 32], Duration::from_millis(5));
    let pipeline = Pipeline::relay_role();
    let framed = frame_bytes(FrameVersion::V7, KeyRotation::Unknown, &packet);
    assert!(pipeline.process(&relay_key, &framed).is_none());
    assert_eq!(pipeline.dropped(MixDrop::MalformedNextHop), 1);
    assert!(pipeline.drain().await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_delay_beyond_the_maximum_is_cut_to_it() {
    let relay_key = [0x31; 32];
    let next: SocketAddr = "198.51.100.20:1789".parse().unwrap();
    let packet = two_hop_packet(&relay_key, node_address(&next), Duration::from_secs(3600));
    let pipeline = Pipeline::relay_role();
    let start = tokio::time::Instant::now();
    let framed = frame_bytes(FrameVersion::V7, KeyRotation::Unknown, &packet);
    assert!(pipeline.process(&relay_key, &framed).is_none());
    assert_eq!(pipeline.metrics.relay_delays_capped.get(), 1);
    let sent = pipeline.drain().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].next_hop, next);
    // `drain` waits 11 s: the packet left at the 10 s cap, not after an hour.
    assert!(tokio::time::Instant::now() - start < Duration::from_secs(12));
}

#[tokio::test(start_paused = true)]
async fn a_full_relay_queue_drops_and_counts() {
    let relay_key = [0x31; 32];
    let next: SocketAddr = "198.51.100.20:1789".parse().unwrap();
    let pipeline = Pipeline::relay_role();
    // Capacity 8: every packet is distinct (fresh ephemeral keys), all ask for 1 s.
    for _ in 0..10 {
        let packet = two_hop_packet(&relay_key, node_address(&next), Duration::from_secs(1));
        let framed = frame_bytes(FrameVersion::V7, KeyRotation::Unknown, &packet);
        assert!(pipeline.process(&relay_key, &framed).is_none());
    }
    assert_eq!(pipeline.dropped(MixDrop::RelayQueueFull), 2);
    assert_eq!(pipeline.drain().await.len(), 8);
    assert_eq!(pipeline.forwarded(), 8);
}

#[test]
fn final_hops_still_go_to_the_router_with_the_relay_role_on() {
    let v = vectors();
    let gateway = secret_field(&v, "gateway_sphinx_private_key_hex");
    let pipeline = Pipeline::relay_role();
    let (destination, delivery) = pipeline
        .process(&gateway, &hex_field(&v, "framed_v8_even_hex"))
        .expect("a final hop");
    assert_eq!(
        destination.as_bytes().to_vec(),
        hex_field(&v, "client_address_hex")
    );
    assert_eq!(delivery.message, hex_field(&v, "expected_message_hex"));
    assert!(delivery.ack.is_some());
    assert_eq!(pipeline.forwarded(), 0);
    assert_eq!(pipeline.metrics.mix_packets_unwrapped.get(), 1);
}

/// A pool job of several frames unwraps them together (`unwrap_many`) with the outcome of
/// `unwrap` on each frame: the same result, key and rotation, with two keys (an unmarked frame
/// tries the primary, then the secondary), packets for neither, tampered headers, wrong sizes
/// and a replay, in batches of every size.
#[test]
fn a_batch_unwraps_as_each_frame_alone() {
    let pipeline = Pipeline::gateway_only();
    let (even, odd) = ([0x24; 32], [0x25; 32]);
    let key = |rotation_id: u32, secret: [u8; 32]| {
        Arc::new(RotationKey {
            rotation_id,
            public: [0; 32],
            unwrapper: Arc::new(Unwrapper::new(secret, FinalHopImplementation::Fast).unwrap()),
            replay: pipeline.replay.clone(),
            replay_file: ReplayFile::new("/nonexistent".into(), [0; 32]),
        })
    };
    let keys = KeySet {
        primary: key(4, even),
        secondary: Some(key(5, odd)),
    };
    let mut frames = Vec::new();
    for (n, rotation) in [
        KeyRotation::Unknown,
        KeyRotation::Even,
        KeyRotation::Odd,
        KeyRotation::Unknown,
    ]
    .into_iter()
    .enumerate()
    {
        for secret in [even, odd, [0x26; 32]] {
            let packet = two_hop_packet(
                &secret,
                node_address(&"192.0.2.9:1789".parse().unwrap()),
                Duration::ZERO,
            );
            let mut tampered = packet.clone();
            tampered[40 + n] ^= 1;
            for packet in [packet, tampered] {
                let framed = frame_bytes(FrameVersion::V8, rotation, &packet);
                frames.push(framing::decode(&framed).unwrap().unwrap().0);
            }
        }
    }
    let mut short = frames[0].clone();
    short.packet.truncate(100);
    frames.insert(3, short);
    // a copy of the first frame and, in the filter, the tag of the third
    frames.push(frames[0].clone());
    let tag = unwrap(&keys, &frames[2]).result.unwrap().replay_tag;
    pipeline
        .replay
        .lock()
        .unwrap()
        .check_and_insert_at(&tag, std::time::Instant::now());

    let describe = |o: &UnwrapOutcome| {
        format!(
            "{:?} {:?} {:?}",
            o.result,
            o.key.as_ref().map(|k| k.rotation_id),
            o.key_rotation
        )
    };
    let alone: Vec<String> = frames.iter().map(|f| describe(&unwrap(&keys, f))).collect();
    assert!(alone
        .iter()
        .any(|o| o.starts_with("Ok(") && o.contains("Some(5)")));
    assert!(alone.iter().any(|o| o.starts_with("Err(Replayed")));
    assert!(alone.iter().any(|o| o.starts_with("Err(InvalidSize")));
    for size in [2, 3, 5, 8, frames.len()] {
        for (chunk, alone) in frames.chunks(size).zip(alone.chunks(size)) {
            let pairs: Vec<(&KeySet, &Frame)> = chunk.iter().map(|f| (&keys, f)).collect();
            let together: Vec<String> = unwrap_many(&pairs).iter().map(describe).collect();
            assert_eq!(together, alone);
        }
    }

    // One batch of the pool: jobs of several connections, each answered with its own frames'
    // outcomes, in order.
    let keys = Arc::new(keys);
    let mut replies = Vec::new();
    let mut jobs = Vec::new();
    for chunk in frames.chunks(3) {
        let (reply, rx) = oneshot::channel();
        jobs.push(UnwrapJob {
            frames: chunk.to_vec(),
            keys: keys.clone(),
            reply,
        });
        replies.push(rx);
    }
    assert!(jobs.len() >= 3, "several jobs in the batch");
    unwrap_jobs(jobs);
    let mut answered = Vec::new();
    for mut rx in replies {
        let outcomes = rx.try_recv().expect("answered").expect("no panic");
        answered.extend(outcomes.iter().map(describe));
    }
    assert_eq!(answered, alone);
}
