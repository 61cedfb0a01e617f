//! The gateway's client port, driven by the real `nym_gateway_client::GatewayClient` (2.0.0):
//! registration, free bandwidth, a packet looped through the gateway's own mix port and pushed
//! back, then stored delivery after a reconnection with `authenticateV2`.

use gateway_interop::ack_sink::AckSink;
use gateway_interop::client::ConnectedClient;
use gateway_interop::gateway::GatewayHome;
use gateway_interop::metrics::{self, scrape, Metrics};
use gateway_interop::mix::MixConnection;
use gateway_interop::packets::{
    expected_final_hop, gateway_node, route_provider, FakeNode, Framing, PacketFactory, TestClient,
};
use gateway_interop::store::stored_messages;
use gateway_interop::{eventually, within};
use nym_sphinx::params::{PacketSize, SphinxKeyRotation};
use std::time::Duration;

const TEST_LIMIT: Duration = Duration::from_secs(240);
const WAIT: Duration = Duration::from_secs(30);

fn delta(after: &Metrics, before: &Metrics, name: &str) -> f64 {
    after.value(name) - before.value(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_client_gets_pushed_and_stored_messages() -> anyhow::Result<()> {
    within(TEST_LIMIT, async {
        let home = GatewayHome::init("client-side").await?;
        let gw = home.start().await?;
        let body = async {
            let keys = home.keys()?;
            let gateway = gateway_node(&keys, home.mix_addr(), home.ports.clients);
            let me = TestClient::new(keys.identity);
            let stored_for_me = || -> anyhow::Result<Vec<Vec<u8>>> {
                if !home.db_path().exists() {
                    return Ok(Vec::new());
                }
                Ok(stored_messages(&home.db_path(), Some(&me.address_bs58()))?
                    .into_iter()
                    .map(|m| m.content)
                    .collect())
            };
            let before = scrape(home.http_addr()).await?;

            // 1. register (no stored key) and claim free bandwidth
            let mut client =
                ConnectedClient::connect(&home.ws_url(), keys.identity, &me, None).await?;
            anyhow::ensure!(
                client.client.remaining_bandwidth() > 0,
                "no bandwidth after claimFreeTestnetBandwidth"
            );

            // 2. a packet to ourselves: route = [our gateway], sent via the websocket, so the
            // gateway forwards it to its own mix port, unwraps it and pushes it to us
            let mut own = PacketFactory::new(&me, route_provider(std::slice::from_ref(&gateway)));
            let text = b"hello through our gateway, from the real nym-gateway-client".to_vec();
            let packet = own.prepare_single(&me.recipient(), &text, PacketSize::RegularPacket)?;
            anyhow::ensure!(packet.next_hop == home.mix_addr());
            let expected = expected_final_hop(&packet.frame(Framing::V7), &keys)?;
            client.send(packet.mix_packet()).await?;
            let pushed = client.messages(1, WAIT).await?;
            anyhow::ensure!(
                pushed[0] == expected.message,
                "the pushed message differs from the final-hop message ({} vs {} bytes)",
                pushed[0].len(),
                expected.message.len()
            );
            let mut reassembler = me.reassembler();
            anyhow::ensure!(
                reassembler.push(&pushed[0])? == Some(text.clone()),
                "the pushed message does not decrypt to what was sent"
            );
            // its SURB-ack was routed to our own gateway too, and comes back as an ack
            let acks = client.acks(1, WAIT).await?;
            anyhow::ensure!(
                me.acked_fragment(&acks[0])? == packet.fragment_id,
                "the pushed ack does not acknowledge the fragment we sent"
            );
            let mid = eventually(WAIT, "the push counters", || async {
                let m = scrape(home.http_addr()).await?;
                Ok((delta(&m, &before, metrics::PUSHED) >= 2.0).then_some(m))
            })
            .await?;
            assert_eq!(delta(&mid, &before, metrics::PUSHED), 2.0, "pushed");
            assert_eq!(delta(&mid, &before, metrics::STORED), 0.0, "stored");
            assert_eq!(delta(&mid, &before, metrics::ACKS_FORWARDED), 1.0, "acks");
            anyhow::ensure!(
                stored_for_me()?.is_empty(),
                "pushed messages were also stored"
            );

            // 3. disconnect; messages arriving meanwhile are stored
            let shared_key = client.shared_key.clone();
            client.close().await?;
            tokio::time::sleep(Duration::from_millis(300)).await;

            let sink = AckSink::bind().await?;
            let sender_gateway = FakeNode::new(2, sink.addr());
            let sender = TestClient::new(*sender_gateway.identity.public_key());
            let mut factory = PacketFactory::new(
                &sender,
                route_provider(&[gateway.clone(), sender_gateway.routing_node()]),
            );
            let cases = [
                (PacketSize::RegularPacket, Framing::V7),
                (PacketSize::ExtendedPacket8, Framing::V7),
                (
                    PacketSize::RegularPacket,
                    Framing::V8(SphinxKeyRotation::EvenRotation),
                ),
                (
                    PacketSize::ExtendedPacket32,
                    Framing::V8(SphinxKeyRotation::Unknown),
                ),
                (PacketSize::RegularPacket, Framing::V7),
                (
                    PacketSize::ExtendedPacket16,
                    Framing::V8(SphinxKeyRotation::OddRotation),
                ),
            ];
            let mut texts = Vec::new();
            let mut frames = Vec::new();
            for (i, (size, framing)) in cases.into_iter().enumerate() {
                let text = format!("stored message {i} ({size})").into_bytes();
                frames.push(
                    factory
                        .prepare_single(&me.recipient(), &text, size)?
                        .frame(framing),
                );
                texts.push(text);
            }
            let expected = frames
                .iter()
                .map(|f| expected_final_hop(f, &keys))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut mix = MixConnection::connect(home.mix_addr()).await?;
            for f in &frames {
                mix.send(f).await?;
            }
            let n = frames.len();
            eventually(
                WAIT,
                "the messages to be stored for the offline client",
                || async { Ok((stored_for_me()?.len() >= n).then_some(())) },
            )
            .await?;
            sink.wait_for(n, WAIT).await?;

            // 4. reconnect with the stored key (authenticateV2): everything arrives, in order
            let mut client =
                ConnectedClient::connect(&home.ws_url(), keys.identity, &me, Some(shared_key))
                    .await?;
            let delivered = client.messages(n, WAIT).await?;
            for (i, (got, want)) in delivered.iter().zip(&expected).enumerate() {
                anyhow::ensure!(
                    got == &want.message,
                    "delivered message {i} is not the stored final-hop message (order or content)"
                );
            }
            let mut reassembler = me.reassembler();
            for (i, (got, text)) in delivered.iter().zip(&texts).enumerate() {
                anyhow::ensure!(
                    reassembler.push(got)?.as_ref() == Some(text),
                    "delivered message {i} does not decrypt to what was sent"
                );
            }
            // ... and the store is emptied
            eventually(WAIT, "the store to be emptied after delivery", || async {
                Ok(stored_for_me()?.is_empty().then_some(()))
            })
            .await?;
            let after = eventually(WAIT, "the delivery counters", || async {
                let m = scrape(home.http_addr()).await?;
                Ok((delta(&m, &mid, metrics::DELIVERED_FROM_STORE) >= n as f64).then_some(m))
            })
            .await?;
            assert_eq!(delta(&after, &mid, metrics::DELIVERED_FROM_STORE), n as f64);
            assert_eq!(delta(&after, &mid, metrics::STORED), n as f64);
            tokio::time::sleep(Duration::from_millis(300)).await;
            anyhow::ensure!(
                client.pending_messages().is_empty(),
                "messages were delivered more than once"
            );
            client.close().await?;
            anyhow::Ok(())
        }
        .await;
        gw.finish(body).await
    })
    .await
}
