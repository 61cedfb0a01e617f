//! Noise on the mix port against the published `nym-noise` 2.0.0, the crate nym-node uses:
//!
//! - as the initiator (a mix node forwarding to us): its handshake completes with our gateway,
//!   and Sphinx packets sent inside it are stored for their recipient;
//! - as the responder (the next hop of our SURB-acks): our gateway's egress completes the
//!   handshake it expects, and every SURB-ack arrives inside Noise, byte-exact;
//! - nym-node's rule: once the directory lists a Noise key for an address, a plain connection
//!   from that address is refused (and counted), and nothing it sent is kept.
//!
//! The directory is a stand-in nym-api whose semi-skimmed list names the Noise-speaking sink.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context as _};
use gateway_interop::ack_sink::AckSink;
use gateway_interop::gateway::GatewayHome;
use gateway_interop::keys::read_key;
use gateway_interop::metrics::scrape;
use gateway_interop::mix::MixConnection;
use gateway_interop::nym_api::NymApi;
use gateway_interop::packets::{
    gateway_node, route_provider, FakeNode, Framing, PacketFactory, TestClient,
};
use gateway_interop::store::stored_messages;
use gateway_interop::{eventually, within};
use nym_crypto::asymmetric::x25519;
use nym_noise::config::{NoiseConfig, NoiseNetworkView, NoiseNode};
use nym_noise_keys::{NoiseVersion, VersionedNoiseKeyV1};
use nym_sphinx::params::PacketSize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const TEST_LIMIT: Duration = Duration::from_secs(180);
const WAIT: Duration = Duration::from_secs(30);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Messages sent inside Noise.
const MESSAGES: usize = 20;

/// A view naming one nym-node on loopback with Noise key `key`.
fn loopback_view(key: x25519::PublicKey) -> HashMap<IpAddr, NoiseNode> {
    let versioned = VersionedNoiseKeyV1 {
        supported_version: NoiseVersion::V1,
        x25519_pubkey: key,
    };
    HashMap::from([(LOOPBACK, NoiseNode::new_nym_node(versioned))])
}

#[tokio::test]
async fn nym_noise_initiates_and_responds_to_our_gateway() -> anyhow::Result<()> {
    within(TEST_LIMIT, scenario()).await
}

async fn scenario() -> anyhow::Result<()> {
    // The next hop of our SURB-acks: a nym-noise responder whose view is filled in once the
    // gateway's key exists.
    let sink_key = Arc::new(x25519::KeyPair::new(&mut nym_crypto::rng::os_rng()));
    let sink_view = NoiseNetworkView::new_empty();
    let sink = AckSink::bind_noise(NoiseConfig::new(
        sink_key.clone(),
        sink_view.clone(),
        HANDSHAKE_TIMEOUT,
    ))
    .await?;

    let api = NymApi::start(Duration::from_secs(3600), 24, 24).await?;
    api.set_noise_nodes(&[(sink.addr(), sink_key.public_key().to_base58_string())]);
    let home = GatewayHome::init("noise").await?;
    home.add_gateway_config_line(&format!("nym_api_urls = [\"{}\"]", api.url()))?;
    let process = home.start().await?;
    let result = with_gateway(&home, &sink, &sink_view).await;
    process.finish(result).await
}

async fn with_gateway(
    home: &GatewayHome,
    sink: &AckSink,
    sink_view: &NoiseNetworkView,
) -> anyhow::Result<()> {
    // The key the gateway made at its first start, and announces.
    let gateway_noise = read_key(
        &home.data_dir(),
        ("public_x25519_noise.pem", "X25519 PUBLIC KEY"),
    )?;
    let gateway_noise = x25519::PublicKey::from_bytes(&gateway_noise)?;
    let announced =
        gateway_test_harness::http_get(home.http_addr(), "/api/v1/host-information").await?;
    ensure!(
        announced.contains(&format!(
            r#""x25519_versioned_noise":{{"supported_version":1,"x25519_pubkey":"{}"}}"#,
            gateway_noise.to_base58_string()
        )),
        "host-information does not announce the Noise key file's key: {announced}"
    );
    sink_view.swap_view(
        sink_view.get_update_permit().await,
        loopback_view(gateway_noise),
    );

    // Wait until the gateway has read the directory: from then on it requires Noise from
    // loopback (the sink is listed there).
    eventually(
        WAIT,
        "the gateway to refuse plain TCP from a listed address",
        || async {
            let mut plain = MixConnection::connect(home.mix_addr()).await?;
            plain.send(&[7, 0, 0]).await?;
            Ok(plain
                .closed_within(Duration::from_secs(1))
                .await
                .then_some(()))
        },
    )
    .await?;

    let keys = home.keys()?;
    let gateway = gateway_node(&keys, home.mix_addr(), home.ports.clients);
    let sender_gateway = FakeNode::new(2, sink.addr());
    let recipient = TestClient::new(keys.identity);
    let sender = TestClient::new(*sender_gateway.identity.public_key());
    let mut factory = PacketFactory::new(
        &sender,
        route_provider(&[gateway.clone(), sender_gateway.routing_node()]),
    );
    let mut frames = Vec::new();
    for i in 0..MESSAGES {
        let text = format!("inside noise {i}");
        frames.push(
            factory
                .prepare_single(
                    &recipient.recipient(),
                    text.as_bytes(),
                    PacketSize::RegularPacket,
                )?
                .frame(Framing::V7),
        );
    }

    // nym-noise as the initiator, as a mix node forwarding to us.
    let initiator_key = Arc::new(x25519::KeyPair::new(&mut nym_crypto::rng::os_rng()));
    let initiator = NoiseConfig::new(
        initiator_key,
        NoiseNetworkView::new(loopback_view(gateway_noise)),
        HANDSHAKE_TIMEOUT,
    );
    let tcp = TcpStream::connect(home.mix_addr()).await?;
    let mut noise = nym_noise::upgrade_noise_initiator(tcp, &initiator)
        .await
        .context("nym-noise's handshake with our gateway")?;
    ensure!(noise.is_noise(), "nym-noise fell back to plain TCP");
    for frame in &frames {
        noise.write_all(frame).await?;
    }
    noise.flush().await?;

    let recipient_bs58 = recipient.address_bs58();
    let stored = eventually(
        WAIT,
        "every message sent inside Noise to be stored",
        || async {
            let stored = stored_messages(&home.db_path(), Some(&recipient_bs58))?;
            Ok((stored.len() >= MESSAGES).then_some(stored))
        },
    )
    .await?;
    ensure!(
        stored.len() == MESSAGES,
        "{} messages stored, expected {MESSAGES}",
        stored.len()
    );

    // Every SURB-ack reached the nym-noise responder inside Noise.
    let acks = sink.wait_for(MESSAGES, WAIT).await?;
    ensure!(
        acks.len() == MESSAGES,
        "{} acks, expected {MESSAGES}",
        acks.len()
    );
    ensure!(sink.errors().is_empty(), "sink errors: {:?}", sink.errors());
    ensure!(
        sink.noise_connections() == sink.connections() && sink.connections() >= 1,
        "{} of {} connections to the sink used Noise",
        sink.noise_connections(),
        sink.connections()
    );

    let m = scrape(home.http_addr()).await?;
    let handshakes = |family: &str, outcome: &str| m.get(family, &[("outcome", outcome)]);
    ensure!(handshakes("gateway_noise_handshakes_accepted_total", "ok") >= 1.0);
    ensure!(handshakes("gateway_noise_handshakes_initiated_total", "ok") >= 1.0);
    ensure!(handshakes("gateway_noise_handshakes_accepted_total", "failed") == 0.0);
    ensure!(handshakes("gateway_noise_handshakes_initiated_total", "failed") == 0.0);
    ensure!(
        m.get(
            "gateway_mix_connections_closed_total",
            &[("reason", "noise_required")]
        ) >= 1.0,
        "the plain connection from a listed address was not counted"
    );
    Ok(())
}
