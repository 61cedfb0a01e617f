//! The `hold` helper: a process of our own binary that registers `count` clients from its own
//! range of 127.0.0.x source addresses, keeps them connected and idle, reports
//! `ready <connected> <failed> <first error>` on stdout, and exits when stdin closes (or its
//! time is up). The memory measurement needs more sockets than one process may open.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ed25519_dalek::VerifyingKey;
use tokio::io::AsyncReadExt as _;

use crate::client::{Connection, Identity};
use crate::phases::run_concurrent;

/// What a helper does.
#[derive(Debug, Clone)]
pub struct HoldSettings {
    /// The gateway's client port.
    pub gateway: SocketAddr,
    /// The gateway's identity key, base58.
    pub identity: String,
    /// Clients to connect.
    pub count: usize,
    /// First source address 127.0.0.`first_source`.
    pub first_source: u8,
    /// Number of source addresses.
    pub sources: u8,
    /// Registrations in flight at once.
    pub concurrency: usize,
    /// Time bound.
    pub max_duration: Duration,
}

impl From<crate::cli::HoldArgs> for HoldSettings {
    fn from(args: crate::cli::HoldArgs) -> Self {
        Self {
            gateway: args.gateway,
            identity: args.identity,
            count: args.count,
            first_source: args.first_source,
            sources: args.sources.max(1),
            concurrency: args.concurrency,
            max_duration: Duration::from_secs(args.max_seconds),
        }
    }
}

/// The `ready` line a helper prints once its clients are connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// Clients connected and registered.
    pub connected: usize,
    /// Clients that failed.
    pub failed: usize,
    /// The first failure.
    pub first_error: Option<String>,
}

impl Ready {
    /// The line, without the newline.
    pub fn to_line(&self) -> String {
        let error = self
            .first_error
            .as_deref()
            .unwrap_or("-")
            .replace('\n', " ");
        format!("ready {} {} {error}", self.connected, self.failed)
    }

    /// Parses a line written by [`Ready::to_line`].
    pub fn parse(line: &str) -> Option<Self> {
        let mut parts = line.trim_end().splitn(4, ' ');
        if parts.next()? != "ready" {
            return None;
        }
        let connected = parts.next()?.parse().ok()?;
        let failed = parts.next()?.parse().ok()?;
        let first_error = parts.next().filter(|e| *e != "-").map(str::to_owned);
        Some(Self {
            connected,
            failed,
            first_error,
        })
    }
}

/// Runs the helper.
pub async fn run(settings: HoldSettings) -> anyhow::Result<()> {
    let deadline = Instant::now() + settings.max_duration;
    let identity: [u8; 32] = bs58::decode(&settings.identity)
        .into_vec()?
        .try_into()
        .map_err(|_| anyhow::anyhow!("the identity key is not 32 bytes"))?;
    let identity = VerifyingKey::from_bytes(&identity).context("invalid identity key")?;
    let (gateway, first, sources) = (settings.gateway, settings.first_source, settings.sources);
    let held = run_concurrent(
        settings.count,
        settings.concurrency,
        deadline,
        move |n| async move {
            let source = IpAddr::V4(Ipv4Addr::new(
                127,
                0,
                0,
                first.saturating_add((n % usize::from(sources)) as u8),
            ));
            let mut connection = Connection::open(gateway, Some(source)).await?;
            connection.register(&mut Identity::new(), &identity).await?;
            Ok(connection)
        },
    )
    .await;
    let ready = Ready {
        connected: held.done.len(),
        failed: held.failed,
        first_error: held.first_error,
    };
    println!("{}", ready.to_line());
    // Idle until the parent closes our stdin (or the time is up); the connections stay open.
    let mut sink = Vec::new();
    let _ = tokio::time::timeout_at(
        tokio::time::Instant::from_std(deadline),
        tokio::io::stdin().read_to_end(&mut sink),
    )
    .await;
    drop(held.done);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines_round_trip() {
        let ready = Ready {
            connected: 9000,
            failed: 2,
            first_error: Some("connect: refused\nagain".into()),
        };
        let line = ready.to_line();
        assert_eq!(line, "ready 9000 2 connect: refused again");
        let parsed = Ready::parse(&line).unwrap();
        assert_eq!(parsed.connected, 9000);
        assert_eq!(
            parsed.first_error.as_deref(),
            Some("connect: refused again")
        );
        let clean = Ready {
            connected: 5,
            failed: 0,
            first_error: None,
        };
        assert_eq!(Ready::parse(&clean.to_line()), Some(clean));
        assert_eq!(Ready::parse("hello 1 2"), None);
    }
}
