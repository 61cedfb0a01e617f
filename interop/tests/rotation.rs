//! Sphinx key rotation as Nym's own crates see it. The gateway follows a stand-in nym-api whose
//! epochs last three seconds (rotations: two epochs), starting at rotation 1: clients mark
//! rotation 0 (and the static key's u32::MAX) as unknown, so odd and even begin at 1. At each checkpoint the test reads the keys
//! the gateway announces (host-information, parsed and its signature verified with
//! `nym-node-requests` 2.0.0), builds packets with `nym-sphinx` 2.0.0's `MessagePreparer` over a
//! topology of that rotation (so the crate itself picks the frame's rotation byte), and checks
//! which are delivered: packets for the current, the next (pre-announced) and the previous
//! rotation across a boundary are; a packet for a deleted key is not.

use anyhow::ensure;
use gateway_interop::ack_sink::AckSink;
use gateway_interop::gateway::GatewayHome;
use gateway_interop::keys::GatewayKeys;
use gateway_interop::metrics::scrape;
use gateway_interop::mix::MixConnection;
use gateway_interop::nym_api::NymApi;
use gateway_interop::packets::{
    route_provider_at, routing_node, FakeNode, Framing, PacketFactory, TestClient,
};
use gateway_interop::store::stored_messages;
use gateway_interop::{eventually, within};
use gateway_test_harness::http_get;
use nym_crypto::asymmetric::ed25519;
use nym_node_requests::api::v1::node::models::{SignedHostInformation, SphinxKey};
use nym_sphinx::params::{PacketSize, SphinxKeyRotation};
use std::time::Duration;

const EPOCH: Duration = Duration::from_secs(3);
const VALIDITY: u32 = 2;
const LIMIT: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(10);

/// The keys announced now, after checking the signature as nym-api does.
async fn announced(
    home: &GatewayHome,
    identity: &ed25519::PublicKey,
) -> anyhow::Result<(SphinxKey, Option<SphinxKey>)> {
    let body = http_get(home.http_addr(), "/api/v1/host-information").await?;
    let signed: SignedHostInformation = serde_json::from_str(&body)?;
    ensure!(signed.verify(identity), "host-information signature");
    ensure!(signed.verify_host_information(), "verify_host_information");
    let keys = signed.data.keys;
    Ok((
        keys.primary_x25519_sphinx_key,
        keys.pre_announced_x25519_sphinx_key,
    ))
}

/// The same key of the same rotation.
fn same(a: &SphinxKey, b: &SphinxKey) -> bool {
    a.rotation_id == b.rotation_id && a.public_key == b.public_key
}

/// The parity `nym-sphinx` marks a packet of `rotation` with (rotation 0 and the static key's
/// u32::MAX are unmarked).
fn parity(rotation: u32) -> SphinxKeyRotation {
    if rotation == 0 || rotation == u32::MAX {
        SphinxKeyRotation::Unknown
    } else if rotation.is_multiple_of(2) {
        SphinxKeyRotation::EvenRotation
    } else {
        SphinxKeyRotation::OddRotation
    }
}

/// The gateway, its keys, and the clients around it.
struct Scene {
    home: GatewayHome,
    keys: GatewayKeys,
    sender: TestClient,
    sender_gateway: FakeNode,
    recipient: TestClient,
}

impl Scene {
    /// One message for the recipient in a packet built by `nym-sphinx` for a topology of
    /// `key`'s rotation in which the gateway's sphinx key is `key`.
    fn packet(&self, key: &SphinxKey, text: &str) -> anyhow::Result<Vec<u8>> {
        let gateway = routing_node(
            1,
            self.keys.identity,
            key.public_key,
            self.home.mix_addr(),
            Some(self.home.ports.clients),
        );
        let nodes = [gateway, self.sender_gateway.routing_node()];
        let provider = route_provider_at(key.rotation_id, &nodes);
        let prepared = PacketFactory::new(&self.sender, provider).prepare_single(
            &self.recipient.recipient(),
            text.as_bytes(),
            PacketSize::RegularPacket,
        )?;
        ensure!(
            prepared.key_rotation == parity(key.rotation_id),
            "nym-sphinx marked rotation {} as {:?}",
            key.rotation_id,
            prepared.key_rotation
        );
        Ok(prepared.frame(Framing::V8(prepared.key_rotation)))
    }

    async fn send(&self, frame: &[u8]) -> anyhow::Result<()> {
        let mut mix = MixConnection::connect(self.home.mix_addr()).await?;
        mix.send(frame).await
    }

    fn stored(&self) -> anyhow::Result<usize> {
        let all = stored_messages(&self.home.db_path(), Some(&self.recipient.address_bs58()))?;
        Ok(all.len())
    }

    async fn expect_stored(&self, n: usize) -> anyhow::Result<()> {
        eventually(WAIT, &format!("{n} stored messages"), || async {
            Ok((self.stored()? >= n).then_some(()))
        })
        .await?;
        let now = self.stored()?;
        ensure!(now == n, "{now} stored, expected {n}");
        Ok(())
    }

    async fn announced(&self) -> anyhow::Result<(SphinxKey, Option<SphinxKey>)> {
        announced(&self.home, &self.keys.identity).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_for_the_current_next_and_previous_rotation_are_delivered_then_the_old_key_is_gone(
) -> anyhow::Result<()> {
    within(LIMIT, async {
        // Epoch 2: the first of rotation 1.
        let api = NymApi::start(EPOCH, VALIDITY, 2).await?;
        let home = GatewayHome::init("rotation").await?;
        home.add_gateway_config_line(&format!("nym_api_urls = [\"{}\"]", api.url()))?;
        let gateway = home.start().await?;
        let keys = home.keys()?;
        let sink = AckSink::bind().await?;
        let sender_gateway = FakeNode::new(2, sink.addr());
        let s = Scene {
            recipient: TestClient::new(keys.identity),
            sender: TestClient::new(*sender_gateway.identity.public_key()),
            sender_gateway,
            keys,
            home,
        };
        let body = async {
            let mut sent = 0usize;

            // Rotation 1: the static key adopted; no key announced ahead yet.
            api.at(0.5).await;
            let (k0, next) = s.announced().await?;
            ensure!(k0.rotation_id == 1, "primary {k0:?}");
            ensure!(
                k0.public_key == s.keys.sphinx_public,
                "the static key is adopted"
            );
            ensure!(
                next.is_none(),
                "nothing pre-announced in the rotation's first epoch: {next:?}"
            );
            s.send(&s.packet(&k0, "rotation 1")?).await?;
            sent += 1;
            s.expect_stored(sent).await?;

            // The rotation's last epoch: the next key is announced and accepted already.
            api.at(1.5).await;
            let (primary, next) = s.announced().await?;
            ensure!(same(&primary, &k0), "{primary:?}");
            let k1 = next.ok_or_else(|| anyhow::anyhow!("rotation 2's key is pre-announced"))?;
            ensure!(
                k1.rotation_id == 2 && k1.public_key != k0.public_key,
                "{k1:?}"
            );
            s.send(&s.packet(&k1, "rotation 2, ahead")?).await?;
            s.send(&s.packet(&k0, "rotation 1, last epoch")?).await?;
            sent += 2;
            s.expect_stored(sent).await?;

            // The next epoch: rotation 2's key is current; rotation 1's still opens packets.
            api.at(2.5).await;
            let (primary, next) = s.announced().await?;
            ensure!(same(&primary, &k1), "{primary:?}");
            ensure!(next.is_none(), "{next:?}");
            s.send(&s.packet(&k1, "rotation 2")?).await?;
            s.send(&s.packet(&k0, "rotation 1, overlap")?).await?;
            sent += 2;
            s.expect_stored(sent).await?;

            // The epoch after: rotation 1's key is deleted (rotation 3's is pre-announced).
            api.at(3.5).await;
            let (primary, next) = s.announced().await?;
            ensure!(same(&primary, &k1), "{primary:?}");
            let k2 = next.ok_or_else(|| anyhow::anyhow!("rotation 3's key is pre-announced"))?;
            ensure!(k2.rotation_id == 3, "{k2:?}");
            let before = scrape(s.home.http_addr()).await?;
            s.send(&s.packet(&k0, "rotation 1, deleted key")?).await?;
            s.send(&s.packet(&k2, "rotation 3, ahead")?).await?;
            sent += 1;
            s.expect_stored(sent).await?;
            let refused = eventually(WAIT, "the deleted key's packet refused", || async {
                let m = scrape(s.home.http_addr()).await?;
                let refused = m.dropped("unwrap_failed") + m.dropped("no_key_for_rotation")
                    - before.dropped("unwrap_failed")
                    - before.dropped("no_key_for_rotation");
                Ok((refused >= 1.0).then_some(refused))
            })
            .await?;
            ensure!(refused == 1.0, "{refused} refused");
            tokio::time::sleep(Duration::from_millis(300)).await;
            ensure!(s.stored()? == sent, "nothing stored for a deleted key");

            // Every delivered packet's SURB-ack came back; nym-api was asked to describe the
            // node again after each change.
            let acks = sink.wait_for(sent, WAIT).await?;
            ensure!(
                acks.len() == sent,
                "{} acks for {sent} messages",
                acks.len()
            );
            ensure!(api.refreshes() >= 4, "{} refresh requests", api.refreshes());
            Ok(())
        };
        gateway.finish(body.await).await
    })
    .await
}
