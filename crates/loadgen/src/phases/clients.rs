//! Client-side rates: registration handshakes per second (connect, websocket upgrade, key
//! agreement, `register`), authentications per second of returning clients, and forward
//! requests per second (binary frames answered by `send`, packets counted at the sink).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use gateway_protocol::framing::KeyRotation;
use gateway_protocol::mix_packet::MixPacket;
use gateway_protocol::packet_size::PacketSize;

use super::{run_concurrent, source_ip, Context};
use crate::client::{forward_frame, random, Connection, Identity};
use crate::stats::per_second;

/// Forward requests one client may have unanswered.
const FORWARD_WINDOW: usize = 64;

/// The figures.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ClientFigures {
    /// Registrations attempted.
    pub handshakes: usize,
    /// Registrations completed per second.
    pub handshakes_per_s: f64,
    /// Registrations that failed.
    pub handshake_failures: usize,
    /// Authentications completed per second.
    pub authentications_per_s: f64,
    /// Authentications that failed.
    pub authentication_failures: usize,
    /// Forward requests sent.
    pub forwards: u64,
    /// Forward requests answered with `send`, per second.
    pub forward_requests_per_s: f64,
    /// Forward requests answered otherwise.
    pub forwards_refused: u64,
    /// Forwarded packets that reached the sink.
    pub forwarded_at_sink: u64,
    /// Packets per second the gateway wrote to the sinks while the requests ran.
    pub forward_egress_per_s: f64,
    /// The first failure of any kind.
    pub first_error: Option<String>,
}

/// Registers `count` new clients, `concurrency` at a time; returns the figures so far and
/// the registered identities.
pub async fn handshakes(
    ctx: &Context,
    count: usize,
    figures: &mut ClientFigures,
) -> anyhow::Result<Vec<Identity>> {
    let gateway = ctx.target.clients_addr;
    let identity = ctx.target.identity;
    let result = run_concurrent(
        count,
        ctx.settings.concurrency,
        ctx.deadline,
        move |n| async move {
            let mut client = Identity::new();
            let mut connection = Connection::open(gateway, Some(source_ip(n))).await?;
            connection.register(&mut client, &identity).await?;
            connection.close().await;
            Ok(client)
        },
    )
    .await;
    figures.handshakes = count;
    figures.handshakes_per_s = per_second(result.done.len() as u64, result.elapsed);
    figures.handshake_failures = result.failed;
    figures.first_error = figures.first_error.take().or(result.first_error);
    Ok(result.done)
}

/// Authenticates every one of `clients` again, `concurrency` at a time.
pub async fn authentications(ctx: &Context, clients: &[Identity], figures: &mut ClientFigures) {
    let gateway = ctx.target.clients_addr;
    let clients: Arc<[Identity]> = clients.into();
    let result = run_concurrent(clients.len(), ctx.settings.concurrency, ctx.deadline, {
        let clients = clients.clone();
        move |n| {
            let clients = clients.clone();
            async move {
                let mut connection = Connection::open(gateway, Some(source_ip(n))).await?;
                connection.authenticate(&clients[n]).await?;
                connection.close().await;
                Ok(())
            }
        }
    })
    .await;
    figures.authentications_per_s = per_second(result.done.len() as u64, result.elapsed);
    figures.authentication_failures = result.failed;
    figures.first_error = figures.first_error.take().or(result.first_error);
}

/// `total` forward requests spread over `clients`, each client pipelining its share.
pub async fn forwards(
    ctx: &Context,
    clients: &[Identity],
    total: usize,
    figures: &mut ClientFigures,
) -> anyhow::Result<()> {
    ensure!(!clients.is_empty(), "no registered clients to forward with");
    let sinks = ctx.forwards.addrs().to_vec();
    let per_client = total.div_ceil(clients.len());
    // Connected, authenticated, with bandwidth, and every frame encrypted before the clock starts.
    let mut ready = Vec::with_capacity(clients.len());
    for (n, client) in clients.iter().enumerate() {
        let mut connection = Connection::open(ctx.target.clients_addr, Some(source_ip(n))).await?;
        connection.authenticate(client).await?;
        let available = connection.claim_bandwidth().await?;
        let needed = (per_client * PacketSize::Regular.size()) as i64;
        ensure!(
            available >= needed,
            "the gateway granted {available} bytes of bandwidth, {needed} are needed"
        );
        let packet = MixPacket::new(
            sinks[n % sinks.len()],
            KeyRotation::Unknown,
            random::<{ PacketSize::Regular.size() }>().to_vec(),
        )?;
        let frames = (0..per_client)
            .map(|_| forward_frame(client, &packet))
            .collect::<anyhow::Result<Vec<_>>>()?;
        ready.push((connection, frames));
    }
    let at_sink_before = ctx.forwards.frames();
    let start = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    let limit = ctx.bounded(Duration::from_secs(120));
    for (mut connection, frames) in ready {
        senders.spawn(async move {
            let outcome =
                tokio::time::timeout(limit, connection.forward_pipelined(frames, FORWARD_WINDOW))
                    .await;
            connection.close().await;
            outcome
        });
    }
    let mut accepted = 0;
    while let Some(joined) = senders.join_next().await {
        match joined? {
            Ok(Ok(outcome)) => {
                accepted += outcome.accepted;
                figures.forwards_refused += outcome.refused;
                if figures.first_error.is_none() {
                    figures.first_error = outcome.first_refusal;
                }
            }
            Ok(Err(e)) => {
                figures
                    .first_error
                    .get_or_insert_with(|| format!("forwarding: {e:#}"));
            }
            Err(_) => {
                figures
                    .first_error
                    .get_or_insert_with(|| "forwarding timed out".into());
            }
        }
    }
    let elapsed = start.elapsed();
    let at_sink_during = ctx.forwards.frames() - at_sink_before;
    figures.forward_egress_per_s = per_second(at_sink_during, elapsed);
    figures.forwards = (per_client * clients.len()) as u64;
    figures.forward_requests_per_s = per_second(accepted, elapsed);
    let expected = at_sink_before + accepted;
    figures.forwarded_at_sink = ctx
        .forwards
        .wait_for(expected, ctx.bounded(Duration::from_secs(10)))
        .await
        - at_sink_before;
    Ok(())
}
