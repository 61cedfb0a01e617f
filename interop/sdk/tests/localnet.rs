//! Two real nym-sdk 1.21.6 clients, configured with nothing but nym-localnet's nym-api address,
//! talk through our gateway and three of our mix relays: default client settings, so 3-hop
//! routes (layer 1, 2, 3, gateway), Poisson-timed sending, loop cover traffic and SURB-acks.
//!
//! 1. The directory's JSON parses into the client's own nym-api types.
//! 2. Messages of several sizes (one packet up to > 100 KiB) go both ways, byte-exact.
//! 3. One client stops; messages sent to it are stored by the gateway; it comes back with the same
//!    keys (on-disk storage) and receives them.
//! 4. No retransmission happened (every SURB-ack came back in time), and, once the clients are
//!    gone, the relays' and the gateway's counters balance: every packet the gateway sent into the
//!    mixnet (client packets and SURB-acks) passed layer 1, 2 and 3 and came back to it, none
//!    dropped anywhere.
//!
//! Loopback only, bounded in time; on failure the error carries nym-localnet's output and the
//! tail of every node's log.

use std::time::Duration;

use anyhow::{ensure, Context as _};
use gateway_interop_sdk::clients::{self, messages, receive_exactly, send_all};
use gateway_interop_sdk::{client_statistic, metrics, mix_drops, value, Localnet};
use nym_api_requests::models::{KeyRotationInfoResponse, RewardedSetResponse};
use nym_api_requests::nym_nodes::{PaginatedCachedNodesResponseV2, SkimmedNodeV1};
use nym_sdk::mixnet::MixnetClient;
use nym_sdk::DebugConfig;

/// The whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(600);
/// Added to each packet's wait for its SURB-ack (see `connect`).
const ACK_WAIT_ADDITION: Duration = Duration::from_secs(30);
/// Message sizes in bytes: one packet, a few, many (> 100 KiB).
const SIZES: [usize; 4] = [1, 1_500, 30_000, 150_000];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sdk_clients_through_a_local_mixnet() -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let localnet = Localnet::start().await?;
    let result = gateway_interop_sdk::within(TEST_TIMEOUT, scenario(&localnet)).await;
    localnet.finish(result).await
}

async fn scenario(localnet: &Localnet) -> anyhow::Result<()> {
    directory_speaks_the_clients_types(localnet).await?;

    let storage = tempfile::Builder::new().prefix("sdk-clients-").tempdir()?;
    let alice_dir = storage.path().join("alice");
    let bob_dir = storage.path().join("bob");
    let mut alice = connect(localnet, &alice_dir)
        .await
        .context("alice connects")?;
    let mut bob = connect(localnet, &bob_dir).await.context("bob connects")?;
    let alice_address = *alice.nym_address();
    let bob_address = *bob.nym_address();
    let gateway = localnet.gateway().identity_key.clone();
    ensure!(
        alice_address.gateway().to_base58_string() == gateway,
        "alice chose a gateway that is not ours: {alice_address}"
    );
    eprintln!("alice {alice_address}\nbob   {bob_address}");

    // Both ways, every size.
    let to_bob = messages("alice->bob", &SIZES);
    let to_alice = messages("bob->alice", &SIZES);
    send_all(&alice, bob_address, &to_bob).await?;
    send_all(&bob, alice_address, &to_alice).await?;
    receive_exactly(&mut bob, &to_bob)
        .await
        .context("bob receives")?;
    receive_exactly(&mut alice, &to_alice)
        .await
        .context("alice receives")?;
    eprintln!("both directions delivered");
    report(localnet).await?;

    // Bob goes away; what alice sends him waits in the gateway's store.
    bob.disconnect().await;
    let gateway_metrics = metrics(localnet.gateway()).await?;
    let stored_before = value(&gateway_metrics, "gateway_messages_stored_total");
    let while_away = messages("alice->bob (stored)", &[777, 120_000]);
    send_all(&alice, bob_address, &while_away).await?;
    // A packet carries at most 2 KiB of a message: at least this many must be stored.
    let at_least = while_away
        .iter()
        .map(|m| m.len().div_ceil(2048))
        .sum::<usize>() as f64;
    let stored = wait_until_stored(localnet, stored_before + at_least).await?;
    eprintln!(
        "{} packets stored for bob while he was away",
        stored - stored_before
    );

    // Bob comes back with the same keys and gets them.
    let mut bob = connect(localnet, &bob_dir)
        .await
        .context("bob reconnects")?;
    ensure!(
        *bob.nym_address() == bob_address,
        "bob came back with another address"
    );
    receive_exactly(&mut bob, &while_away)
        .await
        .context("bob receives what was stored")?;
    let after = metrics(localnet.gateway()).await?;
    ensure!(
        value(&after, "gateway_messages_delivered_from_store_total") > 0.0,
        "the messages did not come from the store"
    );
    eprintln!("stored messages delivered after the restart");

    // Every fragment was acknowledged in time: no retransmission.
    let real_sent = client_statistic("real_packets_sent");
    let retransmissions = client_statistic("retransmissions_queued");
    let real_acks = client_statistic("real_acks_received");
    eprintln!(
        "clients: {real_sent} real packets sent, {real_acks} acks for them, \
         {retransmissions} retransmissions"
    );
    ensure!(
        real_sent > 0.0,
        "the clients' packet statistics are not recorded"
    );

    alice.disconnect().await;
    bob.disconnect().await;
    counters_balance(localnet).await?;
    ensure!(
        retransmissions == 0.0,
        "{retransmissions} packets were retransmitted: SURB-acks were lost or late"
    );
    Ok(())
}

/// Prints the nodes' main counters.
async fn report(localnet: &Localnet) -> anyhow::Result<()> {
    for (name, node) in [
        ("gateway", localnet.gateway()),
        ("mix 1", localnet.mix(1)),
        ("mix 2", localnet.mix(2)),
        ("mix 3", localnet.mix(3)),
    ] {
        let m = metrics(node).await?;
        let interesting: Vec<String> = m
            .iter()
            .filter(|(k, v)| {
                **v != 0.0
                    && (k.contains("_total") || k.contains("depth"))
                    && !k.contains("bucket")
                    && !k.contains("bandwidth")
            })
            .map(|(k, v)| format!("{}={v}", k.trim_start_matches("gateway_")))
            .collect();
        eprintln!("{name}: {}", interesting.join(" "));
    }
    Ok(())
}

/// Every endpoint the client reads parses into the client's own types.
async fn directory_speaks_the_clients_types(localnet: &Localnet) -> anyhow::Result<()> {
    let rotation: KeyRotationInfoResponse = localnet.api_get("/v1/epoch/key-rotation-info").await?;
    let rewarded: RewardedSetResponse = localnet.api_get("/v1/nym-nodes/rewarded-set").await?;
    ensure!(rewarded.epoch_id == rotation.details.current_absolute_epoch_id);
    ensure!(rewarded.layer1.len() == 1 && rewarded.layer2.len() == 1 && rewarded.layer3.len() == 1);
    for path in [
        "/v2/unstable/nym-nodes/skimmed",
        "/v2/unstable/nym-nodes/skimmed/mixnodes/active",
        "/v2/unstable/nym-nodes/skimmed/entry-gateways?page=0&output=bincode",
    ] {
        let nodes: PaginatedCachedNodesResponseV2<SkimmedNodeV1> = localnet.api_get(path).await?;
        ensure!(!nodes.nodes.data.is_empty(), "{path} lists no nodes");
        ensure!(nodes.metadata.absolute_epoch_id == rewarded.epoch_id);
        for node in &nodes.nodes.data {
            ensure!(node.performance.round_to_integer() == 100);
            ensure!(node.ip_addresses.iter().all(|ip| ip.is_loopback()));
        }
    }
    Ok(())
}

/// A client with the one setting this test changes: how long a sent packet waits for its
/// SURB-ack before it is sent again (default 1.5 s plus 1.5 times the route's delays). On a
/// shared CI machine running six debug-built processes an ack can be late without being lost;
/// with 30 s, a retransmission means an ack that never came back, not a slow machine.
async fn connect(localnet: &Localnet, dir: &std::path::Path) -> anyhow::Result<MixnetClient> {
    let mut debug = DebugConfig::default();
    debug.acknowledgements.ack_wait_addition = ACK_WAIT_ADDITION;
    clients::connect(localnet, dir, debug).await
}

/// Waits until the gateway's count of stored packets reached `at_least` and stopped growing;
/// returns it.
async fn wait_until_stored(localnet: &Localnet, at_least: f64) -> anyhow::Result<f64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut last = 0.0;
    let mut unchanged_for = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = value(
            &metrics(localnet.gateway()).await?,
            "gateway_messages_stored_total",
        );
        unchanged_for = if now == last { unchanged_for + 1 } else { 0 };
        last = now;
        if now >= at_least && unchanged_for >= 2 {
            return Ok(now);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the gateway stored {now} packets in all, expected at least {at_least}"
        );
    }
}

/// With the clients gone and every queue empty, the counters must balance along the path
/// gateway → layer 1 → layer 2 → layer 3 → gateway.
async fn counters_balance(localnet: &Localnet) -> anyhow::Result<()> {
    let nodes = [
        localnet.gateway(),
        localnet.mix(1),
        localnet.mix(2),
        localnet.mix(3),
    ];
    // Quiet: nothing changes for 3 s in a row.
    let mut previous = Vec::new();
    let mut quiet_for = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let snapshot = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut snapshot = Vec::new();
        for node in nodes {
            snapshot.push(metrics(node).await?);
        }
        let totals: Vec<f64> = snapshot
            .iter()
            .map(|m| {
                value(m, "gateway_mix_packets_received_total")
                    + value(m, "gateway_egress_packets_sent_total")
            })
            .collect();
        quiet_for = if totals == previous { quiet_for + 1 } else { 0 };
        previous = totals;
        if quiet_for >= 3 {
            break snapshot;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "traffic did not stop after the clients left"
        );
    };
    report(localnet).await?;
    let [gateway, mix1, mix2, mix3] = [0, 1, 2, 3].map(|i| &snapshot[i]);
    let received = |m| value(m, "gateway_mix_packets_received_total");
    let forwarded = |m| value(m, "gateway_relay_packets_forwarded_total");
    let sent = |m| value(m, "gateway_egress_packets_sent_total");
    let client_packets = value(gateway, "gateway_client_packets_forwarded_total");
    let acks = value(gateway, "gateway_acks_forwarded_total");
    eprintln!(
        "gateway: {client_packets} client packets and {acks} SURB-acks sent into the mixnet, \
         {} packets received back; relays forwarded {} / {} / {}",
        received(gateway),
        forwarded(mix1),
        forwarded(mix2),
        forwarded(mix3)
    );
    for (name, m) in [
        ("gateway", gateway),
        ("mix 1", mix1),
        ("mix 2", mix2),
        ("mix 3", mix3),
    ] {
        let drops = mix_drops(m);
        ensure!(drops.is_empty(), "{name} dropped packets: {drops:?}");
        let egress_drops: f64 = m
            .iter()
            .filter(|(k, _)| k.starts_with("gateway_egress_packets_dropped_total"))
            .map(|(_, v)| v)
            .sum();
        ensure!(
            egress_drops == 0.0,
            "{name} could not send {egress_drops} packets"
        );
        ensure!(
            value(m, "gateway_relay_queue_depth") == 0.0,
            "{name} still holds packets"
        );
    }
    ensure!(
        acks > 0.0 && client_packets > 0.0,
        "no traffic went through the gateway"
    );
    ensure!(
        sent(gateway) == client_packets + acks,
        "the gateway sent {} packets, not its {client_packets} client packets + {acks} acks",
        sent(gateway)
    );
    ensure!(
        received(mix1) == sent(gateway),
        "layer 1 received {} of the gateway's {} packets",
        received(mix1),
        sent(gateway)
    );
    for (layer, this, next) in [(1, mix1, mix2), (2, mix2, mix3)] {
        ensure!(
            forwarded(this) == received(this) && sent(this) == forwarded(this),
            "layer {layer} received {}, forwarded {}, sent {}",
            received(this),
            forwarded(this),
            sent(this)
        );
        ensure!(
            received(next) == sent(this),
            "layer {} received {} of layer {layer}'s {}",
            layer + 1,
            received(next),
            sent(this)
        );
    }
    ensure!(
        forwarded(mix3) == received(mix3) && received(gateway) == sent(mix3),
        "layer 3 forwarded {} of {}; the gateway received {} of them",
        forwarded(mix3),
        received(mix3),
        received(gateway)
    );
    Ok(())
}
