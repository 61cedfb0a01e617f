//! Mix-side ingest to clients that are registered but not connected: every message is
//! committed to the store before its SURB-ack leaves, so the acks at our sinks time the
//! inserts through the gateway. Then the clients come back and authenticate, and the drain
//! of their inboxes times the deliveries through the gateway.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::ingest::{send_packets, IngestRun};
use super::{source_ip, Context, CpuMeter};
use crate::client::{Connection, Identity};
use crate::packets::Packet;
use crate::stats::per_second;

/// Stored-message counter of the gateway.
const STORED_METRIC: &str = "gateway_messages_stored_total";
/// Messages in the store, updated at each scrape.
const STORE_GAUGE: &str = "gateway_store_messages";

/// Offline ingest: `packets` for registered, disconnected clients, as fast as taken.
pub async fn ingest(
    ctx: &Context,
    packets: &[Packet],
    wait: Duration,
) -> anyhow::Result<(IngestRun, u64)> {
    let stored_before = stored_total(ctx).await?;
    let acks_before = ctx.acks.frames();
    let meter = CpuMeter::start(ctx);
    let started = ctx.epoch.elapsed();
    let links = send_packets(ctx, packets, ctx.settings.mix_connections, 0.0, None).await?;
    let acks = ctx
        .acks
        .wait_for(acks_before + packets.len() as u64, ctx.bounded(wait))
        .await
        - acks_before;
    drop(links);
    let elapsed = ctx.acks.last_frame().saturating_sub(started);
    let cpu = meter.stop(ctx);
    // Without the gateway's metrics, every acked message counts as stored: the gateway acks
    // a stored message after its commit.
    let stored = match stored_before {
        Some(before) => stored_total(ctx).await?.unwrap_or(before) - before,
        None => acks as f64,
    };
    Ok((
        IngestRun {
            packets: packets.len(),
            paced_packets_per_s: 0.0,
            packets_per_s: per_second(acks, elapsed),
            completed: acks,
            acks,
            latency: None,
            cpu,
        },
        stored.max(0.0) as u64,
    ))
}

/// The gateway's stored-message counter, if its metrics are read.
async fn stored_total(ctx: &Context) -> anyhow::Result<Option<f64>> {
    if !ctx.target.has_metrics() {
        return Ok(None);
    }
    Ok(Some(ctx.target.metrics().await?.sum(STORED_METRIC)))
}

/// The drain of stored messages on authentication.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DrainFigures {
    /// Clients that came back.
    pub clients: usize,
    /// Stored messages they received before their `authenticate` response.
    pub delivered: u64,
    /// Deliveries per second, from the first `authenticateV2` to the last response.
    pub deliveries_per_s: f64,
    /// Messages still stored afterwards (0 when every delivered message was deleted).
    pub left_in_store: u64,
    /// From the last response until the store was empty (deletes wait for each batch's pong),
    /// at most 10 s.
    pub store_emptied_after_s: f64,
}

/// Connects every client in `identities`, then has all of them authenticate at once.
pub async fn drain(ctx: &Context, identities: &[Identity]) -> anyhow::Result<DrainFigures> {
    let mut connections = Vec::with_capacity(identities.len());
    for (n, identity) in identities.iter().enumerate() {
        let connection = Connection::open(ctx.target.clients_addr, Some(source_ip(n))).await?;
        connections.push((connection, identity.clone()));
    }
    let limit = ctx.bounded(Duration::from_secs(300));
    let start = Instant::now();
    let mut clients = JoinSet::new();
    for (mut connection, identity) in connections {
        clients.spawn(async move {
            let stored = tokio::time::timeout(limit, connection.authenticate(&identity)).await;
            let done = Instant::now();
            connection.close().await;
            (stored, done)
        });
    }
    let mut delivered = 0;
    let mut last = start;
    while let Some(joined) = clients.join_next().await {
        let (stored, done) = joined?;
        delivered += stored.map_err(|_| anyhow::anyhow!("the drain timed out"))??;
        last = last.max(done);
    }
    // A batch is deleted once the client's pong confirms it (or right after it was written,
    // with confirmation off): wait, boundedly, for the store to empty.
    // Without metrics the store cannot be watched: reported as 0 left, after 0 s.
    let settle = Instant::now();
    let mut left = 0.0;
    if ctx.target.has_metrics() {
        left = ctx.target.metrics().await?.sum(STORE_GAUGE);
        while left > 0.0 && settle.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            left = ctx.target.metrics().await?.sum(STORE_GAUGE);
        }
    }

    Ok(DrainFigures {
        clients: identities.len(),
        delivered,
        deliveries_per_s: per_second(delivered, last - start),
        left_in_store: left.max(0.0) as u64,
        store_emptied_after_s: settle.elapsed().as_secs_f64(),
    })
}
