//! The soak's clients: each one comes online (connect, `authenticateV2`, receive what was
//! stored for it), reads its pushed messages for a while, leaves, stays away for a while (its
//! messages are stored meanwhile), and comes back, until the run ends. At the end every client
//! comes back and stays, so that everything stored is delivered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngExt as _;
use tokio::task::JoinSet;

use super::ledger::{Ledger, Via};
use crate::client::{open_pushed, Connection, Identity, Incoming};
use crate::packets::message_id;
use crate::phases::source_ip;

/// How long a leaving client keeps reading for messages pushed while it closes.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How long a connected client waits for a frame before it checks the clock and the stage.
const POLL: Duration = Duration::from_millis(100);

/// How long clients stay on and off, each spell drawn from ½× to 1½× the mean.
#[derive(Debug, Clone, Copy)]
pub struct Spells {
    /// Mean time connected.
    pub online: Duration,
    /// Mean time away.
    pub offline: Duration,
}

/// Where the run is; all clients follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    /// Come and go.
    Churn = 0,
    /// Come back and stay: the end of the run, stored messages drain.
    Settle = 1,
    /// Leave for good.
    Finish = 2,
}

/// The clients, as tasks.
pub struct Clients {
    stage: Arc<AtomicU8>,
    tasks: JoinSet<()>,
}

/// What every client task shares.
#[derive(Clone)]
struct Shared {
    gateway: SocketAddr,
    spells: Spells,
    ledger: Arc<Ledger>,
    stage: Arc<AtomicU8>,
    epoch: Instant,
}

impl Shared {
    fn stage(&self) -> Stage {
        match self.stage.load(Ordering::Relaxed) {
            0 => Stage::Churn,
            1 => Stage::Settle,
            _ => Stage::Finish,
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Clients {
    /// Starts one task per registered identity; each begins with a random spell away, so
    /// they do not all come and go in step.
    pub fn start(
        gateway: SocketAddr,
        identities: Vec<Identity>,
        spells: Spells,
        ledger: Arc<Ledger>,
        epoch: Instant,
    ) -> Self {
        let stage = Arc::new(AtomicU8::new(Stage::Churn as u8));
        let shared = Shared {
            gateway,
            spells,
            ledger,
            stage: stage.clone(),
            epoch,
        };
        let mut tasks = JoinSet::new();
        for (n, identity) in identities.into_iter().enumerate() {
            tasks.spawn(client(shared.clone(), identity, n));
        }
        Self { stage, tasks }
    }

    /// Moves every client to `stage`.
    pub fn set_stage(&self, stage: Stage) {
        self.stage.store(stage as u8, Ordering::Relaxed);
    }

    /// Tells every client to leave and waits for them.
    pub async fn finish(mut self) {
        self.set_stage(Stage::Finish);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// A spell of `mean` ± 50 %.
fn spell(mean: Duration) -> Duration {
    mean.mul_f64(rand::rng().random_range(0.5..1.5))
}

/// Sleeps for `wait`, or until the stage is no longer `Churn`.
async fn away(shared: &Shared, wait: Duration) {
    let until = Instant::now() + wait;
    while shared.stage() == Stage::Churn && Instant::now() < until {
        tokio::time::sleep(POLL.min(until.saturating_duration_since(Instant::now()))).await;
    }
}

async fn client(shared: Shared, identity: Identity, n: usize) {
    away(&shared, spell(shared.spells.offline)).await;
    while shared.stage() != Stage::Finish {
        if let Err(e) = session(&shared, &identity, n).await {
            shared.ledger.error(|| format!("client {n}: {e:#}"));
            // Back off before trying again, as a real client would.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if shared.stage() == Stage::Churn {
            away(&shared, spell(shared.spells.offline)).await;
        }
    }
}

/// One connection: authenticate, read pushes until the spell ends, close.
async fn session(shared: &Shared, identity: &Identity, n: usize) -> anyhow::Result<()> {
    let mut connection = Connection::open(shared.gateway, Some(source_ip(n))).await?;
    let mut on_stored = |frame: Vec<u8>| receive(shared, identity, &frame, Via::Drain);
    connection
        .authenticate_with(identity, &mut on_stored)
        .await?;
    let until = Instant::now() + spell(shared.spells.online);
    loop {
        let stay = match shared.stage() {
            Stage::Churn => Instant::now() < until,
            Stage::Settle => true,
            Stage::Finish => false,
        };
        if !stay {
            break;
        }
        match connection.next_within(POLL).await? {
            Some(Incoming::Binary(frame)) => receive(shared, identity, &frame, Via::Push),
            Some(Incoming::Response(_)) | None => {}
        }
    }
    let mut on_pushed = |frame: Vec<u8>| receive(shared, identity, &frame, Via::Push);
    connection.close_reading(CLOSE_WAIT, &mut on_pushed).await;
    Ok(())
}

fn receive(shared: &Shared, identity: &Identity, frame: &[u8], via: Via) {
    let now = shared.now_ns();
    match open_pushed(identity, frame)
        .ok()
        .as_deref()
        .and_then(message_id)
    {
        Some(id) => shared.ledger.received(id, now, via),
        None => shared
            .ledger
            .error(|| "a pushed frame that does not open".to_owned()),
    }
}
