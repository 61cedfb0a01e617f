//! Two real nym-sdk 1.21.6 clients talk through our gateway and three real nym-node 1.31.0 mix
//! nodes (`nym-localnet --nym-node-bin`), across a sphinx key rotation:
//!
//! 1. The directory's answers parse into nym-api's own types, every node (nym-node and ours) is
//!    described, and the key each list announces is the one nym-api's own
//!    `NymNodeDescriptionV1::current_sphinx_key` picks from that description.
//! 2. Messages go both ways through 3-hop routes (layer 1, 2, 3 nym-nodes, then our gateway).
//! 3. The key rotation advances (40 s epochs, 2 per rotation): the directory's
//!    key-rotation-info says so, every node's signed host information (each nym-node's and our
//!    gateway's, which follows the directory's rotation) now carries a key of the new rotation,
//!    and the lists announce those keys.
//! 4. With topologies refreshed every few seconds, messages go both ways again on the new keys.
//! 5. Every message arrived, a SURB-ack came back for every real packet, and no packet was
//!    retransmitted.
//! 6. Every mix link used Noise: the directory lists each node's Noise key, the layer-3
//!    nym-node connected to our gateway over Noise and our gateway to the layer-1 nym-node, no
//!    handshake failed, and no nym-node fell back to plain TCP.
//!
//! # Running it
//! It needs nym-node: `NYM_NODE_BIN` names the binary (the failure message says how to unpack
//! it from `../shared/peers/nym-node/`). Because of that it is `#[ignore]`d: a plain
//! `cargo nextest run` reports it as skipped, never as passed. CI sets `NYM_NODE_BIN` and runs it
//! with `cargo nextest run --run-ignored only`; run that way without `NYM_NODE_BIN`, it fails
//! and prints how to get the binary.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{ensure, Context as _};
use gateway_interop_sdk::clients::{self, exchange, wait_for_every_ack};
use gateway_interop_sdk::{client_statistic, http_get, http_post, nym_node_bin, Localnet};
use nym_api_requests::models::described::v1::NymNodeDescriptionV1;
use nym_api_requests::models::{KeyRotationInfoResponse, RewardedSetResponse};
use nym_api_requests::nym_nodes::{
    NodesByAddressesResponse, PaginatedCachedNodesResponseV2, SemiSkimmedNodeV1, SkimmedNodeV1,
};
use nym_api_requests::pagination::PaginatedResponse;
use nym_sdk::mixnet::MixnetClient;
use nym_sdk::DebugConfig;

/// The whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(600);
/// Epoch length: nym-localnet's minimum with nym-node (its rotation steps need 30 s of notice).
const EPOCH_SECONDS: u64 = 40;
/// Epochs per key rotation: the fewest nym-node keeps up with. A rotation lasts 80 s.
const ROTATION_EPOCHS: u32 = 2;
/// How often the clients fetch the topology (default 5 min): well within an epoch, so they
/// learn the new keys while nym-node still holds the old ones (one epoch of overlap).
const TOPOLOGY_REFRESH: Duration = Duration::from_secs(4);
/// Added to each packet's wait for its SURB-ack, as in the other localnet test: a late ack on a
/// busy machine must not read as a lost one.
const ACK_WAIT_ADDITION: Duration = Duration::from_secs(30);
/// Message sizes: one packet, a few, many.
const SIZES: [usize; 3] = [1, 1_500, 30_000];

#[ignore = "needs nym-node: set NYM_NODE_BIN and run with --run-ignored (see the module docs)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sdk_clients_through_nym_node_mix_nodes_across_a_key_rotation() -> anyhow::Result<()> {
    let nym_node = nym_node_bin()?;
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let localnet = Localnet::start_with(&[
        "--nym-node-bin".into(),
        nym_node.into_os_string(),
        "--epoch-seconds".into(),
        EPOCH_SECONDS.to_string().into(),
        "--rotation-epochs".into(),
        ROTATION_EPOCHS.to_string().into(),
    ])
    .await?;
    let result = gateway_interop_sdk::within(TEST_TIMEOUT, scenario(&localnet)).await;
    localnet.finish(result).await
}

async fn scenario(localnet: &Localnet) -> anyhow::Result<()> {
    for layer in 1..=3 {
        ensure!(
            localnet.mix(layer).implementation == "nym-node",
            "mix layer {layer} is not a nym-node"
        );
    }
    ensure!(localnet.gateway().implementation == "nym-gateway");
    let before = wait_until_described(localnet).await?;
    eprintln!("rotation {}: {:?}", before.rotation, before.keys);

    let storage = tempfile::Builder::new().prefix("sdk-clients-").tempdir()?;
    let mut alice = connect(localnet, &storage.path().join("alice")).await?;
    let mut bob = connect(localnet, &storage.path().join("bob")).await?;
    let gateway = &localnet.gateway().identity_key;
    ensure!(
        alice.nym_address().gateway().to_base58_string() == *gateway,
        "alice chose a gateway that is not ours"
    );
    exchange(&mut alice, &mut bob, "before the rotation", &SIZES).await?;

    let after = wait_for_rotation(localnet, before.rotation).await?;
    eprintln!("rotation {}: {:?}", after.rotation, after.keys);
    for layer in 1..=3 {
        let id = &localnet.mix(layer).identity_key;
        ensure!(
            after.keys[id] != before.keys[id],
            "mix layer {layer} is listed with the same key in rotations {} and {}",
            before.rotation,
            after.rotation
        );
    }
    // Let both clients fetch the new topology.
    tokio::time::sleep(TOPOLOGY_REFRESH * 3).await;
    exchange(&mut alice, &mut bob, "after the rotation", &SIZES).await?;

    let (real_sent, real_acks) = wait_for_every_ack().await;
    let retransmissions = client_statistic("retransmissions_queued");
    eprintln!(
        "clients: {real_sent} real packets sent, {real_acks} acks for them, \
         {retransmissions} retransmissions"
    );
    alice.disconnect().await;
    bob.disconnect().await;
    ensure!(
        real_sent > 0.0,
        "the clients' packet statistics are not recorded"
    );
    ensure!(
        retransmissions == 0.0,
        "{retransmissions} packets were retransmitted: SURB-acks were lost or late"
    );
    every_link_used_noise(localnet).await
}

/// Our gateway's Noise handshake counters, and every nym-node's log.
async fn every_link_used_noise(localnet: &Localnet) -> anyhow::Result<()> {
    let m = gateway_interop_sdk::metrics(localnet.gateway()).await?;
    let count = |family: &str, outcome: &str| {
        gateway_interop_sdk::value(
            &m,
            &format!("gateway_{family}_total{{outcome=\"{outcome}\"}}"),
        )
    };
    let accepted = count("noise_handshakes_accepted", "ok");
    let initiated = count("noise_handshakes_initiated", "ok");
    let failed = count("noise_handshakes_accepted", "failed")
        + count("noise_handshakes_initiated", "failed");
    let plain_refused = gateway_interop_sdk::value(
        &m,
        "gateway_mix_connections_closed_total{reason=\"noise_required\"}",
    );
    eprintln!(
        "noise: {accepted} handshakes accepted, {initiated} initiated, {failed} failed, \
         {plain_refused} plain connections refused"
    );
    ensure!(
        accepted > 0.0,
        "no nym-node connected to our gateway over Noise"
    );
    ensure!(
        initiated > 0.0,
        "our gateway reached no nym-node over Noise"
    );
    ensure!(failed == 0.0, "{failed} Noise handshakes failed");
    ensure!(
        plain_refused == 0.0,
        "{plain_refused} plain connections came from Noise peers"
    );
    for layer in 1..=3 {
        let log = &localnet.mix(layer).log_file;
        let text = std::fs::read_to_string(log).with_context(|| format!("reading {log:?}"))?;
        ensure!(
            !text.contains("falling back to TCP"),
            "mix layer {layer} fell back to plain TCP:\n{}",
            text.lines()
                .filter(|l| l.contains("falling back to TCP"))
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(())
}

/// A client that refreshes its topology every [`TOPOLOGY_REFRESH`].
async fn connect(localnet: &Localnet, dir: &std::path::Path) -> anyhow::Result<MixnetClient> {
    let mut debug = DebugConfig::default();
    debug.acknowledgements.ack_wait_addition = ACK_WAIT_ADDITION;
    debug.topology.topology_refresh_rate = TOPOLOGY_REFRESH;
    clients::connect(localnet, dir, debug)
        .await
        .with_context(|| format!("connecting the client in {dir:?}"))
}

/// What the directory announces at one moment, checked against nym-api's own types.
struct Listing {
    /// The current key rotation.
    rotation: u32,
    /// Each node's announced sphinx key, by identity.
    keys: BTreeMap<String, String>,
}

/// Reads the directory, checking that each answer parses into nym-api's types, that every node
/// is described, and that each listed key is the one nym-api would pick from the description.
/// `Ok(None)` while some node is not described yet or the answers straddle an epoch change.
async fn listing(localnet: &Localnet) -> anyhow::Result<Option<Listing>> {
    let rotation: KeyRotationInfoResponse = localnet.api_get("/v1/epoch/key-rotation-info").await?;
    let rewarded: RewardedSetResponse = localnet.api_get("/v1/nym-nodes/rewarded-set").await?;
    let semi: PaginatedCachedNodesResponseV2<SemiSkimmedNodeV1> = localnet
        .api_get("/v2/unstable/nym-nodes/semi-skimmed?page=0")
        .await?;
    let skimmed: PaginatedCachedNodesResponseV2<SkimmedNodeV1> =
        localnet.api_get("/v2/unstable/nym-nodes/skimmed").await?;
    let described: PaginatedResponse<NymNodeDescriptionV1> =
        localnet.api_get("/v1/nym-nodes/described").await?;
    let current = rotation.progress.current_key_rotation_id;
    let epoch = rotation.details.current_absolute_epoch_id;
    if [
        rewarded.epoch_id,
        semi.metadata.absolute_epoch_id,
        skimmed.metadata.absolute_epoch_id,
    ]
    .iter()
    .any(|e| *e != epoch)
        || semi.metadata.rotation_id != current
    {
        return Ok(None);
    }
    ensure!(
        semi.nodes.data.len() == 4,
        "the semi-skimmed list has not 4 nodes"
    );
    if described.data.len() < 4 {
        return Ok(None);
    }
    let mut keys = BTreeMap::new();
    for node in &semi.nodes.data {
        let basic = &node.basic;
        let description = described
            .data
            .iter()
            .find(|d| d.node_id == basic.node_id)
            .with_context(|| format!("node {} is not described", basic.node_id))?;
        ensure!(description.ed25519_identity_key() == basic.ed25519_identity_pubkey);
        // Every node (nym-node and ours) speaks Noise, and is listed with the key it
        // announces, as nym-api lists it.
        let announced = description
            .description
            .host_information
            .keys
            .x25519_versioned_noise;
        ensure!(
            announced.is_some() && node.x25519_noise_versioned_key == announced,
            "node {} is listed with Noise key {:?} but announces {announced:?}",
            basic.node_id,
            node.x25519_noise_versioned_key
        );
        let picked = description.current_sphinx_key(current);
        ensure!(
            picked == basic.x25519_sphinx_pubkey,
            "node {} is listed with {} but nym-api would pick {} in rotation {current}",
            basic.node_id,
            basic.x25519_sphinx_pubkey.to_base58_string(),
            picked.to_base58_string()
        );
        let in_skimmed = skimmed
            .nodes
            .data
            .iter()
            .find(|n| n.node_id == basic.node_id)
            .context("the skimmed and semi-skimmed lists differ")?;
        ensure!(in_skimmed.x25519_sphinx_pubkey == basic.x25519_sphinx_pubkey);
        keys.insert(
            basic.ed25519_identity_pubkey.to_base58_string(),
            basic.x25519_sphinx_pubkey.to_base58_string(),
        );
    }
    Ok(Some(Listing {
        rotation: current,
        keys,
    }))
}

/// Waits until every node is described (nym-node registers itself, the refresh reads the rest),
/// and checks the node-address lookup nym-node makes.
async fn wait_until_described(localnet: &Localnet) -> anyhow::Result<Listing> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let listing = loop {
        if let Some(listing) = listing(localnet).await? {
            break listing;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the directory did not describe every node within a minute"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let by_address = http_post(
        localnet.api_address()?,
        "/v1/unstable/nym-nodes/by-addresses",
        r#"{"addresses": ["127.0.0.1", "192.0.2.1"]}"#,
    )
    .await?;
    let by_address: NodesByAddressesResponse = serde_json::from_str(&by_address)?;
    ensure!(by_address.existence[&"127.0.0.1".parse()?].is_some());
    ensure!(by_address.existence[&"192.0.2.1".parse()?].is_none());
    Ok(listing)
}

/// Waits for the rotation after `rotation`, until every node's own host information (our
/// gateway's too) carries a key of it and the lists announce them.
async fn wait_for_rotation(localnet: &Localnet, rotation: u32) -> anyhow::Result<Listing> {
    let rotation_length = Duration::from_secs(EPOCH_SECONDS * u64::from(ROTATION_EPOCHS));
    let deadline = tokio::time::Instant::now() + rotation_length + Duration::from_secs(60);
    loop {
        if let Some(listing) = listing(localnet).await? {
            if listing.rotation > rotation && nodes_rotated(localnet, listing.rotation).await? {
                return Ok(listing);
            }
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no key rotation after rotation {rotation} within {:?}",
            rotation_length + Duration::from_secs(60)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Whether each node's own `host-information` announces a key of `rotation`. A static key
/// (rotation id u32::MAX) is an error: every node follows the directory's rotation.
async fn nodes_rotated(localnet: &Localnet, rotation: u32) -> anyhow::Result<bool> {
    for node in &localnet.nodes {
        let info = http_get(node.http_address, "/api/v1/host-information").await?;
        let info: serde_json::Value = serde_json::from_str(&info)?;
        let primary = info["data"]["keys"]["primary_x25519_sphinx_key"]["rotation_id"]
            .as_u64()
            .context("host information without a primary sphinx key")?;
        ensure!(
            primary != u64::from(u32::MAX),
            "{} {} ({}) announced a static key",
            node.kind,
            node.identity_key,
            node.implementation
        );
        if primary != u64::from(rotation) {
            return Ok(false);
        }
    }
    Ok(true)
}
