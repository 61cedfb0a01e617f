//! Conformance harness for the `nym-gateway` binary.
//!
//! The peer is the published Nym crates (`nym-gateway-client`, `nym-sphinx`, … 2.0.0): packets are
//! built, framed and checked with the same code real clients and mix nodes run, and the gateway
//! under test is the binary of the main workspace, driven over loopback.
//!
//! * [`gateway`] — spawn/stop the binary in a temporary `HOME`, free ports, readiness.
//! * [`keys`] — the gateway's PEM key files.
//! * [`packets`] — topology, message preparation, framing, and what the crates expect a gateway
//!   to deliver for a packet.
//! * [`ack_sink`] — a loopback "mix node" that records every frame the gateway sends it.
//! * [`mix`] — a mix-node-like TCP connection to the gateway's mix port.
//! * [`client`] — the real `GatewayClient`, wired for tests.
//! * [`metrics`] — scraping and reading the Prometheus text format.
//! * [`store`] — reading the gateway's message store.
//! * [`nym_api`] — a stand-in nym-api serving key-rotation information on wall-clock epochs.
//! * [`localnet`] — `nym-localnet` (our gateway, relays, nym-api and an e-cash authority) as a peer.
//! * [`tickets`] — a ticket provider for the real client, fed by nym-localnet's authority.

pub mod ack_sink;
pub mod client;
pub mod gateway;
pub mod keys;
pub mod localnet;
pub mod metrics;
pub mod mix;
pub mod nym_api;
pub mod packets;
pub mod store;
pub mod tickets;

use std::future::Future;
use std::time::Duration;

/// Polls `check` until it yields `Some`, or fails with `what` after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a whole test body under a time limit, so nothing can hang.
pub async fn within<T>(
    limit: Duration,
    body: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, body)
        .await
        .map_err(|_| anyhow::anyhow!("the test did not finish within {limit:?}"))?
}
