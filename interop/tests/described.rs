//! The self-described API (`/api/v1/...`) read the way nym-api reads it: every body is fetched
//! from the running gateway over HTTP, parsed with the published `nym-node-requests` types, and
//! host-information's signature is checked with that crate's own `verify` and
//! `verify_host_information`. Each parsed value must be what the gateway's keys and config say,
//! and serialising it again with the crate's types must give back the exact bytes served.

use anyhow::{ensure, Context};
use gateway_interop::gateway::{GatewayHome, GatewayProcess};
use gateway_interop::keys::{read_key, IDENTITY_PRIVATE};
use gateway_interop::within;
use gateway_test_harness::{http_get, http_request};
use nym_crypto::asymmetric::{ed25519, x25519};
use nym_node_requests::api::v1::gateway::models::WebSockets;
use nym_node_requests::api::v1::health::models::NodeHealth;
use nym_node_requests::api::v1::node::models::{
    AuxiliaryDetailsV1, BinaryBuildInformationOwned, HostInformation, NodeRoles,
    SignedHostInformation, SphinxKey,
};
use nym_node_requests::api::SignedData;
use nym_node_requests::routes::api::v1 as routes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// What one gateway was set up with, to compare the described values against.
struct Expected {
    hostname: Option<&'static str>,
    ips: Vec<IpAddr>,
    accepted_terms: bool,
}

/// GET `path`, parse it as `T`, and require `T`'s own serialisation to give back the very bytes
/// the gateway sent.
async fn fetch<T: DeserializeOwned + Serialize>(
    home: &GatewayHome,
    path: &str,
) -> anyhow::Result<T> {
    let body = http_get(home.http_addr(), path).await?;
    let parsed: T = serde_json::from_str(&body)
        .with_context(|| format!("{path}: nym-node-requests cannot parse `{body}`"))?;
    let again = serde_json::to_string(&parsed)?;
    ensure!(
        again == body,
        "{path}: nym-node-requests serialises the parsed body as\n{again}\nbut the gateway sent\n{body}"
    );
    Ok(parsed)
}

/// `init`, with `nym_api_urls = []` (no nym-api, so no key rotation: the sphinx key is the
/// static one) plus `config_lines` in `[gateway]`, then `run`.
async fn start(
    id: &str,
    init_args: &[&str],
    config_lines: &[&str],
) -> anyhow::Result<(GatewayHome, GatewayProcess)> {
    let home = GatewayHome::init_with(id, init_args).await?;
    home.add_gateway_config_line("nym_api_urls = []")?;
    for line in config_lines {
        home.add_gateway_config_line(line)?;
    }
    let gateway = home.start().await?;
    Ok((home, gateway))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_announcing_gateway_describes_itself_as_nym_api_parses_it() -> anyhow::Result<()> {
    within(LIMIT, async {
        let (home, gateway) = start("described-ip", &[], &[]).await?;
        let expected = Expected {
            hostname: None,
            ips: vec!["127.0.0.1".parse()?],
            accepted_terms: false,
        };
        let body = check_described(&home, &expected).await;
        gateway.finish(body).await
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostname_announcing_gateway_describes_itself_as_nym_api_parses_it() -> anyhow::Result<()>
{
    within(LIMIT, async {
        let (home, gateway) = start(
            "described-name",
            &["--announce-host", "localhost"],
            &["accepted_operator_terms_and_conditions = true"],
        )
        .await?;
        // The gateway announces what the name resolves to, here as for the gateway.
        let mut ips: Vec<IpAddr> = tokio::net::lookup_host(("localhost", 0))
            .await?
            .map(|a| a.ip())
            .collect();
        ips.dedup();
        let expected = Expected {
            hostname: Some("localhost"),
            ips,
            accepted_terms: true,
        };
        let body = check_described(&home, &expected).await;
        gateway.finish(body).await
    })
    .await
}

async fn check_described(home: &GatewayHome, expected: &Expected) -> anyhow::Result<()> {
    let keys = home.keys()?;

    let health: NodeHealth = fetch(home, &routes::health_absolute()).await?;
    ensure!(health.status.is_up(), "health: {health:?}");
    ensure!(health.uptime < LIMIT.as_secs(), "health: {health:?}");

    let build: BinaryBuildInformationOwned = fetch(home, &routes::build_info_absolute()).await?;
    ensure!(build.binary_name == "nym-gateway", "{build:?}");
    for (name, value) in [
        ("build_version", &build.build_version),
        ("cargo_triple", &build.cargo_triple),
        ("rustc_version", &build.rustc_version),
    ] {
        ensure!(
            !value.is_empty() && value != "unknown",
            "build-information {name}: {value:?}"
        );
    }

    let roles: NodeRoles = fetch(home, &routes::roles_absolute()).await?;
    ensure!(
        roles.gateway_enabled
            && !roles.mixnode_enabled
            && !roles.network_requester_enabled
            && !roles.ip_packet_router_enabled,
        "roles: {roles:?}"
    );
    // How nym-api reads the roles: an entry gateway, neither exit nor mix node.
    ensure!(roles.can_operate_entry_gateway());
    ensure!(!roles.can_operate_exit_gateway() && !roles.can_operate_mixnode());

    let signed: SignedHostInformation = fetch(home, &routes::host_info_absolute()).await?;
    check_host_information(home, &signed, &keys.identity, &keys.sphinx_public, expected)?;

    let aux: AuxiliaryDetailsV1 = fetch(home, &routes::auxiliary_absolute()).await?;
    ensure!(aux.location.is_none(), "{aux:?}");
    ensure!(
        aux.announce_ports.mix_port == Some(home.ports.mix),
        "{aux:?}"
    );
    ensure!(aux.announce_ports.verloc_port.is_none(), "{aux:?}");
    ensure!(
        aux.accepted_operator_terms_and_conditions == expected.accepted_terms,
        "{aux:?}"
    );

    let ws: WebSockets = fetch(
        home,
        &routes::gateway::client_interfaces::mixnet_websockets_absolute(),
    )
    .await?;
    ensure!(ws.ws_port == home.ports.clients, "{ws:?}");
    ensure!(ws.wss_port.is_none(), "{ws:?}");

    // nym-api also asks for the exit services, wireguard and the Lewes protocol; a node that
    // has none answers 404, which nym-api reads as "not offered".
    for path in [
        routes::network_requester_absolute(),
        routes::network_requester::exit_policy_absolute(),
        routes::ip_packet_router_absolute(),
        routes::authenticator_absolute(),
        routes::gateway::client_interfaces::wireguard_absolute(),
        routes::lp_absolute(),
    ] {
        let (status, body) = http_request(home.http_addr(), "GET", &path, None).await?;
        ensure!(status == 404, "{path}: {status} {body}");
    }
    Ok(())
}

#[allow(deprecated)] // `x25519_sphinx`: nym-api still reads it
fn check_host_information(
    home: &GatewayHome,
    signed: &SignedHostInformation,
    identity: &ed25519::PublicKey,
    sphinx: &x25519::PublicKey,
    expected: &Expected,
) -> anyhow::Result<()> {
    let data = &signed.data;
    ensure!(data.ip_address == expected.ips, "ip_address: {data:?}");
    ensure!(
        data.hostname.as_deref() == expected.hostname,
        "hostname: {data:?}"
    );
    // nym-api describes no node that announces a loopback address; for these local gateways
    // that is the expected reading.
    ensure!(!data.check_ips(), "loopback addresses passed check_ips");

    let k = &data.keys;
    ensure!(k.ed25519_identity == *identity, "ed25519_identity: {k:?}");
    ensure!(k.x25519_sphinx == *sphinx, "x25519_sphinx: {k:?}");
    let SphinxKey {
        rotation_id,
        public_key,
    } = &k.primary_x25519_sphinx_key;
    ensure!(
        *rotation_id == u32::MAX && k.primary_x25519_sphinx_key.is_legacy(),
        "without a nym-api the sphinx key is the static (legacy) one: {k:?}"
    );
    ensure!(*public_key == *sphinx, "primary_x25519_sphinx_key: {k:?}");
    ensure!(k.pre_announced_x25519_sphinx_key.is_none(), "{k:?}");
    // The mix port's Noise key, as the gateway keeps it beside its sphinx key.
    let noise = read_key(
        &home.data_dir(),
        ("public_x25519_noise.pem", "X25519 PUBLIC KEY"),
    )?;
    let announced = k
        .x25519_versioned_noise
        .with_context(|| format!("no Noise key announced: {k:?}"))?;
    ensure!(
        announced.supported_version == nym_noise_keys::NoiseVersion::V1
            && announced.x25519_pubkey.to_bytes() == noise,
        "x25519_versioned_noise is not the key file's, version 1: {k:?}"
    );

    // Signed over the current format (not only through the crate's legacy fallbacks)...
    ensure!(signed.verify(identity), "signature does not verify");
    ensure!(
        signed.verify_host_information(),
        "verify_host_information rejects the served host information"
    );
    // ...and exactly as the crate signs: Ed25519 is deterministic.
    let private = ed25519::PrivateKey::from_bytes(&read_key(&home.data_dir(), IDENTITY_PRIVATE)?)?;
    let resigned = SignedData::new(data.clone(), &private)?;
    ensure!(
        resigned.signature == signed.signature,
        "the crate's SignedData::new signs the served data differently"
    );

    // Any altered field breaks the signature.
    let other_key = |seed: u8| {
        let private = x25519::PrivateKey::from_bytes(&[seed; 32]).expect("32 bytes");
        x25519::PublicKey::from(&private).to_base58_string()
    };
    let other_identity = {
        let private = ed25519::PrivateKey::from_bytes(&[7; 32]).expect("32 bytes");
        ed25519::PublicKey::from(&private).to_base58_string()
    };
    let tampered: [(&str, &str, Value); 8] = [
        ("/ip_address", "ip_address", json!(["203.0.113.7"])),
        ("/hostname", "hostname", json!("gateway.example.org")),
        (
            "/keys/ed25519_identity",
            "ed25519_identity",
            json!(other_identity),
        ),
        ("/keys/x25519_sphinx", "x25519_sphinx", json!(other_key(1))),
        (
            "/keys/primary_x25519_sphinx_key/rotation_id",
            "rotation_id",
            json!(7),
        ),
        (
            "/keys/primary_x25519_sphinx_key/public_key",
            "primary public_key",
            json!(other_key(2)),
        ),
        (
            "/keys/pre_announced_x25519_sphinx_key",
            "pre_announced_x25519_sphinx_key",
            json!({"rotation_id": 8, "public_key": other_key(3)}),
        ),
        (
            "/keys/x25519_versioned_noise",
            "x25519_versioned_noise",
            json!({"supported_version": 1, "x25519_pubkey": other_key(4)}),
        ),
    ];
    let served = serde_json::to_value(data)?;
    for (pointer, what, value) in tampered {
        let mut altered = served.clone();
        *altered
            .pointer_mut(pointer)
            .with_context(|| format!("no {pointer} in {served}"))? = value;
        let altered: HostInformation = serde_json::from_value(altered)
            .with_context(|| format!("nym-node-requests rejects the altered {what}"))?;
        let forged = SignedData {
            data: altered,
            signature: signed.signature,
        };
        ensure!(
            !forged.verify(identity) && !forged.verify_host_information(),
            "the signature still verifies with {what} altered"
        );
    }
    let mut bad = signed.signature.to_bytes();
    bad[0] ^= 1;
    let forged = SignedData {
        data: data.clone(),
        signature: ed25519::Signature::from_bytes(&bad)?,
    };
    ensure!(
        !forged.verify_host_information(),
        "a flipped signature bit still verifies"
    );
    Ok(())
}
