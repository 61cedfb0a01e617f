//! The gateway's mix port, driven as a nym-node drives it: Sphinx packets built by the published
//! `nym-sphinx` crates, framed with `NymCodec` (v7 and v8), over plain TCP.
//!
//! The recipient is a client of our gateway that is not connected, so every message is stored.
//! The sender's gateway is a node the test plays (an [`AckSink`]), so SURB-acks come back here.

use gateway_interop::ack_sink::{AckSink, ReceivedFrame};
use gateway_interop::gateway::{GatewayHome, GatewayProcess};
use gateway_interop::keys::GatewayKeys;
use gateway_interop::metrics::{self, scrape, Metrics};
use gateway_interop::mix::MixConnection;
use gateway_interop::packets::{
    ack_sized_packet, expected_final_hop, forward_hop_packet, frame, gateway_node,
    malformed_surb_ack_packet, route_provider, FakeNode, FinalHop, Framing, PacketFactory,
    TestClient,
};
use gateway_interop::store::stored_messages;
use gateway_interop::{eventually, within};
use nym_sphinx::params::{PacketSize, SphinxKeyRotation};
use nym_topology::RoutingNode;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

const TEST_LIMIT: Duration = Duration::from_secs(240);
const WAIT: Duration = Duration::from_secs(30);

/// A started gateway plus the cast around it.
struct MixScene {
    home: GatewayHome,
    keys: GatewayKeys,
    gateway: RoutingNode,
    sink: AckSink,
    sender_gateway: FakeNode,
    /// Offline client of our gateway.
    recipient: TestClient,
    factory: PacketFactory,
}

async fn scene(id: &str) -> anyhow::Result<(MixScene, GatewayProcess)> {
    let home = GatewayHome::init(id).await?;
    let process = home.start().await?;
    let keys = home.keys()?;
    let gateway = gateway_node(&keys, home.mix_addr(), home.ports.clients);
    let sink = AckSink::bind().await?;
    let sender_gateway = FakeNode::new(2, sink.addr());
    let recipient = TestClient::new(keys.identity);
    let sender = TestClient::new(*sender_gateway.identity.public_key());
    let factory = PacketFactory::new(
        &sender,
        route_provider(&[gateway.clone(), sender_gateway.routing_node()]),
    );
    Ok((
        MixScene {
            home,
            keys,
            gateway,
            sink,
            sender_gateway,
            recipient,
            factory,
        },
        process,
    ))
}

impl MixScene {
    fn stored(&self) -> anyhow::Result<Vec<Vec<u8>>> {
        if !self.home.db_path().exists() {
            return Ok(Vec::new());
        }
        Ok(
            stored_messages(&self.home.db_path(), Some(&self.recipient.address_bs58()))?
                .into_iter()
                .map(|m| m.content)
                .collect(),
        )
    }

    async fn wait_stored(&self, n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
        let what = format!("{n} stored messages");
        let stored = eventually(WAIT, &what, || async {
            let stored = self.stored()?;
            Ok((stored.len() >= n).then_some(stored))
        })
        .await?;
        anyhow::ensure!(
            stored.len() == n,
            "expected {n} stored messages, found {}",
            stored.len()
        );
        Ok(stored)
    }

    async fn metrics(&self) -> anyhow::Result<Metrics> {
        scrape(self.home.http_addr()).await
    }

    /// A valid single-packet message for the recipient.
    fn valid(&mut self, text: &str, size: PacketSize) -> anyhow::Result<Vec<u8>> {
        let recipient = self.recipient.recipient();
        Ok(self
            .factory
            .prepare_single(&recipient, text.as_bytes(), size)?
            .frame(Framing::V7))
    }
}

fn delta(after: &Metrics, before: &Metrics, name: &str) -> f64 {
    after.value(name) - before.value(name)
}

fn dropped_delta(after: &Metrics, before: &Metrics, reason: &str) -> f64 {
    after.dropped(reason) - before.dropped(reason)
}

/// Every forwarded ack must be byte-exact (header `08 02 00 <rotation>`, as the crates frame
/// it without the legacy encoding) and one of the expected ones.
fn check_acks(frames: &[ReceivedFrame], expected: &[&FinalHop]) -> anyhow::Result<()> {
    let mut want: Vec<Vec<u8>> = expected
        .iter()
        .map(|e| e.ack.as_ref().expect("an ack").framed.clone())
        .collect();
    let mut got: Vec<Vec<u8>> = frames.iter().map(ReceivedFrame::raw).collect();
    for f in frames {
        anyhow::ensure!(
            f.header[..3] == [8, 2, 0],
            "a forwarded SURB-ack must be v8-framed `08 02 00 ..`, got header {}",
            hex::encode(&f.header)
        );
    }
    want.sort();
    got.sort();
    anyhow::ensure!(
        want == got,
        "forwarded acks differ from the SURB-acks in the packets ({} expected, {} received)",
        want.len(),
        got.len()
    );
    Ok(())
}

/// (a) + (b): an offline client's messages are stored exactly as the crates deliver them, in
/// order, and every SURB-ack reaches its first hop byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_messages_are_stored_and_surb_acks_forwarded() -> anyhow::Result<()> {
    within(TEST_LIMIT, async {
        let (mut s, gw) = scene("mix-store").await?;
        let body = async {
            let before = s.metrics().await?;
            let recipient = s.recipient.recipient();

            // every size and both framings; then ack-size packets (no SURB-ack inside)
            let cases = [
                (PacketSize::RegularPacket, Framing::V7),
                (
                    PacketSize::ExtendedPacket8,
                    Framing::V8(SphinxKeyRotation::Unknown),
                ),
                (
                    PacketSize::RegularPacket,
                    Framing::V8(SphinxKeyRotation::OddRotation),
                ),
                (PacketSize::ExtendedPacket16, Framing::V7),
                (
                    PacketSize::ExtendedPacket32,
                    Framing::V8(SphinxKeyRotation::EvenRotation),
                ),
            ];
            let mut frames = Vec::new();
            let mut plaintexts = Vec::new();
            for (i, (size, framing)) in cases.into_iter().enumerate() {
                let text = format!("message {i}: {size} over {framing:?}").into_bytes();
                let packet = s.factory.prepare_single(&recipient, &text, size)?;
                frames.push(packet.frame(framing));
                plaintexts.push(Some(text));
            }
            // a three-fragment message, back to back
            let long: Vec<u8> = (0..4000u32).map(|i| (i % 253) as u8).collect();
            let parts = s
                .factory
                .prepare(&recipient, &long, PacketSize::RegularPacket)?;
            anyhow::ensure!(
                parts.len() == 3,
                "expected 3 fragments, got {}",
                parts.len()
            );
            for (i, p) in parts.iter().enumerate() {
                frames.push(p.frame(Framing::V7));
                plaintexts.push((i == 2).then(|| long.clone()));
            }
            let ack_plain = [[0x11u8; 21], [0x22u8; 21]];
            for (plain, framing) in ack_plain
                .iter()
                .zip([Framing::V7, Framing::V8(SphinxKeyRotation::EvenRotation)])
            {
                let packet = ack_sized_packet(&s.gateway, &s.recipient.address(), plain)?;
                frames.push(frame(&packet, framing));
                plaintexts.push(None);
            }

            let expected = frames
                .iter()
                .map(|f| expected_final_hop(f, &s.keys))
                .collect::<anyhow::Result<Vec<_>>>()?;

            let mut conn = MixConnection::connect(s.home.mix_addr()).await?;
            for f in &frames {
                conn.send(f).await?;
            }

            // (a) stored, in order, exactly the crates' final-hop messages
            let stored = s.wait_stored(frames.len()).await?;
            for (i, (got, want)) in stored.iter().zip(&expected).enumerate() {
                anyhow::ensure!(
                    got == &want.message,
                    "stored message {i} differs from what process_framed_packet yields \
                     ({} vs {} bytes)",
                    got.len(),
                    want.message.len()
                );
            }
            let all = stored_messages(&s.home.db_path(), None)?;
            anyhow::ensure!(
                all.iter()
                    .all(|m| m.client_address_bs58 == s.recipient.address_bs58()),
                "messages stored under an unexpected client address"
            );
            // and the client can read them
            let mut reassembler = s.recipient.reassembler();
            for (i, (got, want)) in stored.iter().zip(&plaintexts).enumerate() {
                if got.len() == PacketSize::AckPacket.plaintext_size() {
                    continue;
                }
                let message = reassembler.push(got)?;
                anyhow::ensure!(&message == want, "message {i} does not reassemble");
            }
            assert_eq!(&stored[stored.len() - 2], &ack_plain[0].to_vec());
            assert_eq!(&stored[stored.len() - 1], &ack_plain[1].to_vec());

            // (b) one SURB-ack per packet that carried one, byte-exact and v8-framed
            let with_ack: Vec<&FinalHop> = expected.iter().filter(|e| e.ack.is_some()).collect();
            for e in &with_ack {
                assert_eq!(e.ack.as_ref().unwrap().next_hop, s.sink.addr());
            }
            let acks = s.sink.wait_for(with_ack.len(), WAIT).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let acks_after = s.sink.frames();
            anyhow::ensure!(
                acks_after.len() == acks.len(),
                "{} frames reached the ack sink, expected {}",
                acks_after.len(),
                with_ack.len()
            );
            check_acks(&acks_after, &with_ack)?;
            // ... each the ack of the fragment its packet carried
            for f in &acks_after {
                let at_sender_gateway = expected_final_hop(&f.raw(), &s.sender_gateway.keys())?;
                anyhow::ensure!(at_sender_gateway.message.len() == 21);
            }

            anyhow::ensure!(conn.still_open(Duration::from_millis(200)).await);
            let after = eventually(WAIT, "the counters", || async {
                let m = s.metrics().await?;
                Ok(
                    (delta(&m, &before, metrics::ACKS_FORWARDED) >= with_ack.len() as f64)
                        .then_some(m),
                )
            })
            .await?;
            let n = frames.len() as f64;
            assert_eq!(delta(&after, &before, metrics::RECEIVED), n, "received");
            assert_eq!(delta(&after, &before, metrics::STORED), n, "stored");
            assert_eq!(delta(&after, &before, metrics::PUSHED), 0.0, "pushed");
            assert_eq!(
                delta(&after, &before, metrics::ACKS_FORWARDED),
                with_ack.len() as f64,
                "acks forwarded"
            );
            assert_eq!(
                after.sum(metrics::DROPPED) - before.sum(metrics::DROPPED),
                0.0,
                "dropped"
            );
            anyhow::Ok(())
        }
        .await;
        gw.finish(body).await
    })
    .await
}

/// (c) Bad traffic is dropped (connection kept) or closes its connection (bad framing); the
/// counters say which; the gateway keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_packets_are_dropped_and_bad_frames_close_the_connection() -> anyhow::Result<()> {
    within(TEST_LIMIT, async {
        let (mut s, gw) = scene("mix-bad").await?;
        let body = async {
            let before = s.metrics().await?;
            let mut conn = MixConnection::connect(s.home.mix_addr()).await?;

            let first = s.valid("first valid", PacketSize::RegularPacket)?;
            conn.send(&first).await?;
            s.wait_stored(1).await?;

            // replays: the same Sphinx packet again, v7 and v8 framed
            conn.send(&first).await?;
            let sphinx = &first[3..];
            conn.send(&frame(sphinx, Framing::V8(SphinxKeyRotation::OddRotation)))
                .await?;
            // the gateway as a middle hop; the next hop is the sink, which must see nothing
            let fwd = forward_hop_packet(
                &s.gateway,
                &s.sender_gateway.routing_node(),
                &s.recipient.address(),
            )?;
            conn.send(&frame(&fwd, Framing::V7)).await?;
            // a flipped header byte (MAC check fails)
            let mut bad_mac = s.valid("bad mac", PacketSize::RegularPacket)?;
            bad_mac[3 + 100] ^= 0x01;
            conn.send(&bad_mac).await?;
            // a well-framed but all-zero Sphinx packet
            let mut zeros = vec![7u8, 1, 0];
            zeros.resize(3 + PacketSize::RegularPacket.size(), 0);
            conn.send(&zeros).await?;
            // a final hop whose SURB-ack does not parse
            let bad_ack = malformed_surb_ack_packet(&s.gateway, &s.recipient.address())?;
            conn.send(&frame(&bad_ack, Framing::V7)).await?;
            // the connection is kept: a valid packet on it is still processed
            let second = s.valid("second valid", PacketSize::RegularPacket)?;
            conn.send(&second).await?;
            let stored = s.wait_stored(2).await?;
            anyhow::ensure!(
                stored[1] == expected_final_hop(&second, &s.keys)?.message,
                "the packet after the dropped ones was not stored correctly"
            );

            let reasons = [
                "replay",
                "forward_hop",
                "unwrap_failed",
                "malformed_surb_ack",
            ];
            let want = [2.0, 1.0, 2.0, 1.0];
            let last = std::sync::Mutex::new(Metrics::default());
            let mid = eventually(WAIT, "the drop counters", || async {
                let m = s.metrics().await?;
                let ok = reasons
                    .iter()
                    .zip(want)
                    .all(|(r, w)| dropped_delta(&m, &before, r) >= w);
                *last.lock().expect("lock") = m.clone();
                Ok(ok.then_some(m))
            })
            .await
            .map_err(|e| {
                let m = last.lock().expect("lock").clone();
                let moved: Vec<String> = reasons
                    .iter()
                    .map(|r| format!("{r} +{}", dropped_delta(&m, &before, r)))
                    .collect();
                e.context(format!(
                    "drop counters moved: {} (wanted replay +2, forward_hop +1, \
                     unwrap_failed +2, malformed_surb_ack +1)",
                    moved.join(", ")
                ))
            })?;
            assert_eq!(dropped_delta(&mid, &before, "replay"), 2.0);
            assert_eq!(dropped_delta(&mid, &before, "forward_hop"), 1.0);
            assert_eq!(dropped_delta(&mid, &before, "unwrap_failed"), 2.0);
            assert_eq!(dropped_delta(&mid, &before, "malformed_surb_ack"), 1.0);
            assert_eq!(dropped_delta(&mid, &before, "store_refused"), 0.0);
            assert_eq!(delta(&mid, &before, metrics::STORED), 2.0);
            assert!(delta(&mid, &before, metrics::RECEIVED) >= 8.0);
            anyhow::ensure!(
                conn.still_open(Duration::from_millis(200)).await,
                "dropping packets must not close the connection"
            );

            // bad framing closes that connection (and only that one)
            // header plus a full frame's worth of junk: a decoder may reject at the header or only
            // once the frame is complete (as `NymCodec` does for outfox types)
            let mut junk = vec![0xabu8; 3000];
            let garbage: [(&str, Vec<u8>); 5] = [
                ("version 9", [vec![9u8, 1, 0, 0], junk.clone()].concat()),
                ("version 6", [vec![6u8, 1, 0], junk.clone()].concat()),
                (
                    "size tag 6 (outfox)",
                    [vec![7u8, 6, 0], junk.clone()].concat(),
                ),
                (
                    "packet type 2 (outfox)",
                    [vec![7u8, 1, 2], junk.clone()].concat(),
                ),
                (
                    "rotation byte 3",
                    [vec![8u8, 1, 0, 3], junk.clone()].concat(),
                ),
            ];
            junk.clear();
            for (what, bytes) in &garbage {
                let mut bad = MixConnection::connect(s.home.mix_addr()).await?;
                // the gateway may close before it has read everything: a failed write is fine
                let _ = bad.send(bytes).await;
                anyhow::ensure!(
                    bad.closed_within(Duration::from_secs(10)).await,
                    "a frame with {what} did not close the connection"
                );
            }
            let closed = eventually(WAIT, "the codec_error counter", || async {
                let m = s.metrics().await?;
                let d = m.get(metrics::CONNECTIONS_CLOSED, &[("reason", "codec_error")])
                    - mid.get(metrics::CONNECTIONS_CLOSED, &[("reason", "codec_error")]);
                Ok((d >= garbage.len() as f64).then_some(d))
            })
            .await?;
            assert_eq!(closed, garbage.len() as f64);
            anyhow::ensure!(
                conn.still_open(Duration::from_millis(200)).await,
                "a bad frame on another connection closed this one"
            );

            // the gateway keeps serving: a fresh packet on a fresh connection
            let third = s.valid("third valid", PacketSize::ExtendedPacket8)?;
            let mut fresh = MixConnection::connect(s.home.mix_addr()).await?;
            fresh.send(&third).await?;
            let stored = s.wait_stored(3).await?;
            assert_eq!(stored[2], expected_final_hop(&third, &s.keys)?.message);

            // exactly the three valid packets' acks were forwarded; nothing else reached the sink
            let expected: Vec<FinalHop> = [&first, &second, &third]
                .iter()
                .map(|f| expected_final_hop(f, &s.keys))
                .collect::<anyhow::Result<_>>()?;
            s.sink.wait_for(3, WAIT).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            check_acks(&s.sink.frames(), &expected.iter().collect::<Vec<_>>())?;

            let after = s.metrics().await?;
            assert_eq!(delta(&after, &before, metrics::STORED), 3.0);
            assert_eq!(delta(&after, &before, metrics::ACKS_FORWARDED), 3.0);
            anyhow::Ok(())
        }
        .await;
        gw.finish(body).await
    })
    .await
}

/// SIGKILL mid-stream loses nothing whose SURB-ack was sent: the ack is the gateway's promise that
/// the message is durably stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_message_whose_ack_was_sent() -> anyhow::Result<()> {
    const PACKETS: usize = 600;
    const KILL_AFTER_ACKS: usize = 60;
    within(TEST_LIMIT, async {
        let (mut s, gw) = scene("mix-sigkill").await?;

        let mut frames = Vec::with_capacity(PACKETS);
        for i in 0..PACKETS {
            frames.push(s.valid(&format!("sigkill stream {i:04}"), PacketSize::RegularPacket)?);
        }
        let expected = frames
            .iter()
            .map(|f| expected_final_hop(f, &s.keys))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let by_ack: HashMap<Vec<u8>, usize> = expected
            .iter()
            .enumerate()
            .map(|(i, e)| (e.ack.as_ref().expect("an ack").framed.clone(), i))
            .collect();

        let mix_addr = s.home.mix_addr();
        let stream = tokio::spawn(async move {
            let Ok(mut conn) = MixConnection::connect(mix_addr).await else {
                return 0;
            };
            let mut sent = 0;
            for batch in frames.chunks(20) {
                if conn.send(&batch.concat()).await.is_err() {
                    break;
                }
                sent += batch.len();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            sent
        });

        if let Err(e) = s.sink.wait_for(KILL_AFTER_ACKS, WAIT).await {
            let err = gw.explain(e);
            let _ = gw.kill().await;
            return Err(err);
        }
        gw.kill().await?;
        let sent = stream.await?;
        // anything already on the wire to the sink still arrives
        tokio::time::sleep(Duration::from_millis(500)).await;
        let acked: BTreeSet<usize> = s
            .sink
            .frames()
            .iter()
            .map(|f| {
                by_ack.get(&f.raw()).copied().ok_or_else(|| {
                    anyhow::anyhow!("the gateway forwarded a frame that is none of the SURB-acks")
                })
            })
            .collect::<anyhow::Result<_>>()?;
        anyhow::ensure!(
            acked.len() < PACKETS,
            "all {PACKETS} acks arrived before the kill; the kill was not mid-stream"
        );
        eprintln!(
            "sent {sent} of {PACKETS} packets, {} acks before SIGKILL",
            acked.len()
        );

        let gw = s.home.start().await?;
        let body = async {
            let stored: BTreeSet<Vec<u8>> = s.stored()?.into_iter().collect();
            let lost: Vec<usize> = acked
                .iter()
                .copied()
                .filter(|&i| !stored.contains(&expected[i].message))
                .collect();
            anyhow::ensure!(
                lost.is_empty(),
                "{} of {} acked messages are not in the store after SIGKILL + restart \
                 (first: {:?})",
                lost.len(),
                acked.len(),
                &lost[..lost.len().min(10)]
            );
            let known: BTreeSet<&Vec<u8>> = expected.iter().map(|e| &e.message).collect();
            anyhow::ensure!(
                stored.iter().all(|m| known.contains(m)),
                "the store holds a message that was never sent"
            );
            eprintln!("{} messages stored after restart", stored.len());
            anyhow::Ok(())
        }
        .await;
        gw.finish(body).await
    })
    .await
}
