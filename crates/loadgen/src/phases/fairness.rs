//! Fairness under a flooding peer: one mix connection writes as fast as the gateway reads
//! while another sends at a low, steady rate; the steady peer's latency (mix ingress to client
//! receipt) with the flood on is compared with the same rate and no flood. The gateway's
//! unwrap pool serves its connections in turn, so the flood should cost the steady peer a
//! share of the cores, not a place at the back of the flood's queue.
//!
//! The flood repeats a pool of pre-built packets (hours of fresh packets do not fit in
//! memory): the first pass is fresh, later passes are replays, which the gateway drops after
//! the unwrap's X25519, most of an unwrap's cost, before the payload is decrypted.

use std::io::{ErrorKind, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::net::TcpStream;

use super::ingest::{self, send_packets, OnlineClients, Timeline};
use super::Context;
use crate::client::{self, Identity};
use crate::packets::Packet;
use crate::stats::Latency;

/// How long the flood runs alone before the steady peer starts, so it is at full speed.
const WARM_UP: Duration = Duration::from_millis(500);
/// How long the steady peer's last packets may take to arrive.
const WAIT: Duration = Duration::from_secs(30);
/// Ids of the steady packets (the quiet run, then the flooded run), then the flood's pool.
const FIRST_ID: u64 = 1 << 42;

/// The figures.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FairnessFigures {
    /// The steady peer's rate, packets/s.
    pub steady_packets_per_s: f64,
    /// Its packets per run.
    pub steady_packets: usize,
    /// Its latency with no flood.
    pub quiet: Latency,
    /// Its latency while the other connection floods.
    pub flooded: Latency,
    /// Packets the flood wrote.
    pub flood_packets: u64,
    /// The flood's rate while the steady peer was sending, packets/s (what the gateway read).
    pub flood_packets_per_s: f64,
    /// Distinct packets in the flood's pool (the rest of the flood repeats them).
    pub flood_pool: usize,
}

/// Runs both: the steady peer alone, then beside the flood.
pub async fn run(ctx: &Context, online: &[Identity]) -> anyhow::Result<FairnessFigures> {
    let settings = &ctx.settings;
    let rate = settings.fair_rate;
    let count = ((rate * settings.fair_seconds as f64) as usize).max(1);
    let pool = settings.flood_pool.max(1);
    let addresses: Vec<[u8; 32]> = online.iter().map(Identity::address).collect();
    let quiet_packets = ingest::build(ctx, &addresses, FIRST_ID, count);
    let flooded_packets = ingest::build(ctx, &addresses, FIRST_ID + count as u64, count);
    // The flood goes to clients of its own, not connected (their messages are stored), so
    // that the steady peer's messages wait only at the gateway, not behind the flood's in
    // the same client's websocket.
    let flood_recipients: Vec<[u8; 32]> = (0..16).map(|_| client::random()).collect();
    let flood = ingest::build(ctx, &flood_recipients, FIRST_ID + 2 * count as u64, pool);
    let timeline = Arc::new(Timeline::new(FIRST_ID, 2 * count + pool));
    let clients = OnlineClients::connect(ctx, online.to_vec(), timeline).await?;
    let result = measure(ctx, &clients, &quiet_packets, &flooded_packets, flood, rate).await;
    clients.close().await;
    result
}

async fn measure(
    ctx: &Context,
    clients: &OnlineClients,
    quiet_packets: &[Packet],
    flooded_packets: &[Packet],
    flood: Vec<Packet>,
    rate: f64,
) -> anyhow::Result<FairnessFigures> {
    let pool = flood.len();
    let quiet = steady(ctx, clients, quiet_packets, rate).await?;

    let stream = TcpStream::connect(ctx.target.mix_addr)
        .await
        .context("connecting the flood")?
        .into_std()?;
    stream.set_nonblocking(false)?;
    // Short, so the flood notices its stop soon even when the gateway is not reading.
    stream.set_write_timeout(Some(Duration::from_millis(200)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let flooder = {
        let (stop, written) = (stop.clone(), written.clone());
        tokio::task::spawn_blocking(move || flood_until(stream, &flood, &stop, &written))
    };
    tokio::time::sleep(WARM_UP).await;
    let (before, started) = (written.load(Ordering::Relaxed), Instant::now());
    let flooded = steady(ctx, clients, flooded_packets, rate).await;
    let flood_packets_per_s =
        (written.load(Ordering::Relaxed) - before) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    flooder.await?;
    Ok(FairnessFigures {
        steady_packets_per_s: rate,
        steady_packets: quiet_packets.len(),
        quiet,
        flooded: flooded?,
        flood_packets: written.load(Ordering::Relaxed),
        flood_packets_per_s,
        flood_pool: pool,
    })
}

/// Sends `packets` at `rate` on one connection and waits for their receipt; their latency.
async fn steady(
    ctx: &Context,
    clients: &OnlineClients,
    packets: &[Packet],
    rate: f64,
) -> anyhow::Result<Latency> {
    let target = clients.timeline.received() + packets.len() as u64;
    let links = send_packets(ctx, packets, 1, rate, Some(clients.timeline.clone())).await?;
    let deadline = Instant::now() + ctx.bounded(WAIT);
    while clients.timeline.received() < target && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(links);
    let ids = packets.first().map_or(0, |p| p.id)..packets.last().map_or(0, |p| p.id + 1);
    let (_, _, mut latencies) = clients.timeline.summarise(ids);
    Ok(Latency::from_micros(&mut latencies))
}

/// Writes the pool over and over until `stop`, counting whole frames written.
fn flood_until(
    mut stream: std::net::TcpStream,
    pool: &[Packet],
    stop: &AtomicBool,
    written: &AtomicU64,
) {
    for packet in pool.iter().cycle() {
        let mut done = 0;
        while done < packet.frame.len() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match stream.write(&packet.frame[done..]) {
                Ok(0) => return,
                Ok(n) => done += n,
                // The gateway is pushing back: try again (the timeout only lets us see `stop`).
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(_) => return,
            }
        }
        written.fetch_add(1, Ordering::Relaxed);
    }
}
