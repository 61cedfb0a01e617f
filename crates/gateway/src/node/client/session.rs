//! An authenticated session (PROTOCOL §2.7–2.11): one `select!` over the client's frames, live
//! messages from the router, liveness probes, store notifications and shutdown; and the end
//! of a session, which gives back everything it still holds.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use gateway_protocol::client::{ServerResponse, SharedKey};
use gateway_store::ClientAddress;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::bandwidth::ClientBandwidth;
use super::confirmation::{Confirmed, Unconfirmed};
use super::delivery::{self, DeliveryError};
use super::inbox::{self, InboxReceiver};
use super::socket::{ClientSocket, WriteError};
use super::{ClientContext, STORAGE_ERROR};
use crate::node::router::{Delivery, LivenessProbe, Registration, Router, SessionHandle};

/// How long a client has to answer our liveness Ping with its Pong (PROTOCOL §2.10).
const PONG_TIMEOUT: Duration = Duration::from_secs(1);

/// Live messages written per flush at most (see [`Session::push`]); bounds how long one
/// session's writing keeps it from reading its client.
const PUSH_BATCH: usize = 32;

/// Message bytes taken into one flush at most (the first message always is): what a session
/// holds beyond its queue while a client is slow to read stays this small even for the
/// largest packet sizes (32 regular messages, two of the largest).
const PUSH_BATCH_BYTES: usize = 64 * 1024;

/// The session's end of what the router holds for it (its [`SessionHandle`]): live messages,
/// liveness probes, and "a message was stored for you".
pub(super) struct SessionQueues {
    inbox: InboxReceiver,
}

impl SessionQueues {
    /// Unregisters the session, then hands every message still queued for it to the store
    /// (their acks follow once committed).
    pub(super) async fn give_back(
        self,
        registration: Registration,
        router: &Router,
        client: ClientAddress,
    ) {
        // Unregister first: from here on the router stores new messages instead of queueing
        // them for us, so the queue below only shrinks.
        drop(registration);
        self.inbox.close();
        let mut returned = 0u64;
        while let Some(delivery) = self.inbox.recv().await {
            router.store_then_ack(client, *delivery).await;
            returned += 1;
        }
        if returned > 0 {
            debug!(returned, "queued messages handed back to the store");
        }
    }
}

/// A new session's channels: the handle for the router and the queues for the session.
/// `started_at` is the authentication timestamp or registration time (unix seconds).
pub(super) fn session_queues(
    push_queue_capacity: usize,
    started_at: u64,
) -> (SessionHandle, SessionQueues) {
    let (sender, inbox) = inbox::inbox(push_queue_capacity);
    let handle = SessionHandle {
        inbox: sender,
        started_at,
    };
    (handle, SessionQueues { inbox })
}

/// A registered or authenticated client and the answer it is waiting for.
pub(super) struct Accepted {
    pub(super) session: Session,
    /// `register` or `authenticate`, sent once the stored messages are out.
    pub(super) response: ServerResponse,
}

/// An authenticated client's session.
pub(super) struct Session {
    pub(super) socket: ClientSocket,
    /// Shared by every session (an `Arc`, so a session holds a pointer, not ~440 bytes).
    pub(super) ctx: Arc<ClientContext>,
    pub(super) client: ClientAddress,
    pub(super) key: SharedKey,
    pub(super) bandwidth: ClientBandwidth,
    registration: Registration,
    queues: SessionQueues,
    probe: Option<PendingProbe>,
    /// Batches waiting for the client's pong; `None` with confirmation off.
    unconfirmed: Option<Unconfirmed>,
    /// Stored messages were left unsent for lack of room in `unconfirmed`: send them once a
    /// pong makes room.
    stored_waiting: bool,
}

/// A liveness Ping we sent and the prober waiting for its answer.
struct PendingProbe {
    payload: [u8; 8],
    reply: LivenessProbe,
    deadline: Instant,
}

/// Why a session ended (for the log).
pub(super) enum End {
    ClientClosed,
    ReadFailed(String),
    WriteFailed(WriteError),
    Store(String),
    Replaced,
    Unresponsive,
    Unconfirmed,
    Shutdown,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientClosed => f.write_str("the client closed the connection"),
            Self::ReadFailed(e) => write!(f, "reading from the client failed: {e}"),
            Self::WriteFailed(e) => write!(f, "writing to the client failed: {e}"),
            Self::Store(e) => write!(f, "the store failed: {e}"),
            Self::Replaced => f.write_str("a newer connection of the client replaced this one"),
            Self::Unresponsive => f.write_str("the client did not answer a liveness ping"),
            Self::Unconfirmed => {
                f.write_str("the client did not confirm the messages written to it in time")
            }
            Self::Shutdown => f.write_str("the gateway is shutting down"),
        }
    }
}

impl From<WriteError> for End {
    fn from(e: WriteError) -> Self {
        Self::WriteFailed(e)
    }
}

impl From<DeliveryError> for End {
    fn from(e: DeliveryError) -> Self {
        match e {
            DeliveryError::Write(e) => Self::WriteFailed(e),
            DeliveryError::Store(e) => Self::Store(e.to_string()),
        }
    }
}

impl Session {
    pub(super) fn new(
        socket: ClientSocket,
        ctx: Arc<ClientContext>,
        client: ClientAddress,
        key: SharedKey,
        bandwidth: ClientBandwidth,
        registration: Registration,
        queues: SessionQueues,
    ) -> Self {
        let limits = &ctx.limits;
        let unconfirmed = limits.delivery_confirmation.then(|| {
            Unconfirmed::new(
                limits.max_unconfirmed_batches,
                limits.delivery_confirmation_timeout,
            )
        });
        Self {
            socket,
            ctx,
            client,
            key,
            bandwidth,
            registration,
            queues,
            probe: None,
            unconfirmed,
            stored_waiting: false,
        }
    }

    /// Whether another batch may be written now (room for its confirmation).
    fn may_send(&self) -> bool {
        self.unconfirmed.as_ref().is_none_or(Unconfirmed::has_room)
    }

    /// Sends everything stored for the client, then the register/authenticate `response`.
    pub(super) async fn start(
        &mut self,
        response: ServerResponse,
        shutdown: &CancellationToken,
    ) -> Result<(), End> {
        let result = self.deliver_stored(shutdown).await;
        if let Err(End::Store(e)) = &result {
            crate::warn_rate_limited!(super::STORE_ERRORS, error = %e, "could not read the client's stored messages");
            let reply = ServerResponse::error(STORAGE_ERROR);
            let _ = self.socket.send_response(&reply).await;
        }
        result?;
        self.socket.send_response(&response).await?;
        Ok(())
    }

    /// Serves the client until it leaves, fails, is replaced, or the gateway shuts down.
    ///
    /// What each event starts (a write, a request, a store read) is boxed: this future lives
    /// as long as the session, and while idle it should hold only the `select!` below, not the
    /// largest of those (a task's future is allocated at its largest state for its whole life).
    pub(super) async fn run(&mut self, shutdown: &CancellationToken) -> End {
        loop {
            let probe_deadline = self.probe.as_ref().map(|p| p.deadline);
            let confirmation_deadline = self.unconfirmed.as_ref().and_then(Unconfirmed::deadline);
            let may_send = self.may_send();
            let result = tokio::select! {
                _ = shutdown.cancelled() => return End::Shutdown,
                // While the client has the most batches unconfirmed it may, new messages wait
                // in the queue (and, when that is full, the router stores them).
                delivery = self.queues.inbox.recv(), if may_send => match delivery {
                    Some(delivery) => Box::pin(self.push(delivery)).await,
                    // The router dropped our queue: another connection of the client took over.
                    None => return End::Replaced,
                },
                probe = self.queues.inbox.recv_probe() => Box::pin(self.start_probe(probe)).await,
                _ = self.queues.inbox.stored(), if may_send => match Box::pin(self.deliver_stored(shutdown)).await {
                    // The messages stay stored for the next notification or connection.
                    Err(End::Store(e)) => {
                        crate::warn_rate_limited!(super::STORE_ERRORS, error = %e, "could not read the client's stored messages");
                        Ok(())
                    }
                    other => other,
                },
                _ = tokio::time::sleep_until(probe_deadline.unwrap_or_else(Instant::now)), if probe_deadline.is_some() => {
                    if let Some(probe) = self.probe.take() {
                        let _ = probe.reply.send(false);
                    }
                    return End::Unresponsive;
                }
                _ = tokio::time::sleep_until(confirmation_deadline.unwrap_or_else(Instant::now)), if confirmation_deadline.is_some() => {
                    return End::Unconfirmed;
                }
                message = self.socket.next() => match message {
                    None | Some(Ok(Message::Close(_))) => return End::ClientClosed,
                    Some(Err(e)) => return End::ReadFailed(e.to_string()),
                    Some(Ok(message)) => Box::pin(self.handle_message(message)).await,
                },
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    async fn handle_message(&mut self, message: Message) -> Result<(), End> {
        let response = match message {
            Message::Text(text) => self.handle_text(&text).await,
            Message::Binary(frame) => self.handle_binary(&frame).await,
            Message::Pong(payload) => return self.pong(&payload).await,
            // Pings are answered by the websocket layer.
            Message::Ping(_) | Message::Close(_) | Message::Frame(_) => return Ok(()),
        };
        self.socket.send_response(&response).await?;
        Ok(())
    }

    /// Writes a live message and whatever is queued behind it (up to [`PUSH_BATCH`] messages
    /// and about [`PUSH_BATCH_BYTES`]) with one flush, then, with confirmation on, a Ping: the
    /// batch waits in `unconfirmed` for its Pong before its acks leave. Under load the queue
    /// holds several messages, and writing them together costs one socket write per few frames
    /// instead of one per frame.
    /// If the write fails they all go back to the store and the session ends: a message the
    /// client may already have received can reach it twice, never zero times.
    async fn push(&mut self, first: Box<Delivery>) -> Result<(), End> {
        let mut bytes = first.message.len();
        let mut batch = vec![first];
        while batch.len() < PUSH_BATCH && bytes < PUSH_BATCH_BYTES {
            match self.queues.inbox.try_recv() {
                Some(delivery) => {
                    bytes += delivery.message.len();
                    batch.push(delivery);
                }
                None => break,
            }
        }
        let mut frames = Vec::with_capacity(batch.len());
        let mut sealed = Vec::with_capacity(batch.len());
        for delivery in batch {
            match delivery::seal(&delivery.message, &self.key) {
                Some(frame) => {
                    frames.push(frame);
                    sealed.push(delivery);
                }
                None => self.ctx.router.store_then_ack(self.client, *delivery).await,
            }
        }
        let ping = self.unconfirmed.is_some().then(delivery::random_bytes::<8>);
        match self.socket.send_binaries(frames, ping).await {
            Ok(()) => {
                match (&mut self.unconfirmed, ping) {
                    (Some(unconfirmed), Some(payload)) => {
                        let sealed = sealed.into_iter().map(|d| *d).collect();
                        unconfirmed.sent(payload, sealed, Vec::new());
                    }
                    _ => {
                        for delivery in sealed {
                            self.ctx.router.pushed(*delivery);
                        }
                    }
                }
                Ok(())
            }
            Err(e) => {
                for delivery in sealed {
                    self.ctx.router.store_then_ack(self.client, *delivery).await;
                }
                Err(e.into())
            }
        }
    }

    /// Sends what is stored for the client, batch by batch, while there is room for their
    /// confirmations (the rest when a pong makes room), and stops early between batches when
    /// `shutdown` fires. Fetching resumes after the last stored message still unconfirmed, so
    /// none is sent twice in one session.
    async fn deliver_stored(&mut self, shutdown: &CancellationToken) -> Result<(), End> {
        let mut after = self
            .unconfirmed
            .as_ref()
            .and_then(Unconfirmed::last_stored_id);
        loop {
            if !self.may_send() {
                self.stored_waiting = true;
                return Ok(());
            }
            self.stored_waiting = false;
            let ping = self.unconfirmed.is_some().then(delivery::random_bytes::<8>);
            let sent = delivery::send_stored_batch(
                &mut self.socket,
                &self.key,
                self.client,
                &self.ctx,
                after,
                ping,
            )
            .await?;
            let Some(sent) = sent else {
                return Ok(());
            };
            after = sent.ids.last().copied();
            match (&mut self.unconfirmed, ping) {
                (Some(unconfirmed), Some(payload)) => {
                    unconfirmed.sent(payload, Vec::new(), sent.ids);
                }
                _ => delivery::delivered(&self.ctx, sent.ids).await,
            }
            if !sent.full || shutdown.is_cancelled() {
                return Ok(());
            }
        }
    }

    /// A Pong: the answer to a liveness probe, or the confirmation of batches we wrote.
    async fn pong(&mut self, payload: &[u8]) -> Result<(), End> {
        if self.probe.as_ref().is_some_and(|p| p.payload == payload) {
            if let Some(probe) = self.probe.take() {
                let _ = probe.reply.send(true);
            }
            return Ok(());
        }
        let Some(confirmed) = self.unconfirmed.as_mut().and_then(|u| u.pong(payload)) else {
            return Ok(());
        };
        delivered(&self.ctx, confirmed).await;
        if self.stored_waiting {
            // The pong made room: send what waited (a store failure leaves it stored).
            return match self.deliver_stored(&CancellationToken::new()).await {
                Err(End::Store(_)) => Ok(()),
                other => other,
            };
        }
        Ok(())
    }

    /// Pings the client for a prober (a newer connection of the same client). A probe that
    /// arrives while one is pending is answered "alive" at once, as the reference does.
    async fn start_probe(&mut self, reply: LivenessProbe) -> Result<(), End> {
        if self.probe.is_some() {
            let _ = reply.send(true);
            return Ok(());
        }
        let payload = delivery::random_bytes::<8>();
        if let Err(e) = self.socket.ping(payload).await {
            let _ = reply.send(false);
            return Err(e.into());
        }
        self.probe = Some(PendingProbe {
            payload,
            reply,
            deadline: Instant::now() + PONG_TIMEOUT,
        });
        Ok(())
    }

    /// Ends the session: unregisters, gives every message unconfirmed or still queued back to
    /// the store (their acks follow once committed; unconfirmed stored ones stay stored),
    /// saves the bandwidth, closes the socket.
    pub(super) async fn finish(self, end: End) {
        let Self {
            socket,
            ctx,
            client,
            mut bandwidth,
            registration,
            queues,
            probe,
            unconfirmed,
            ..
        } = self;
        debug!(reason = %end, "session ended");
        if let Some(probe) = probe {
            let _ = probe.reply.send(false);
        }
        // The oldest first: unconfirmed messages were received before the queued ones.
        let unconfirmed = unconfirmed
            .map(Unconfirmed::into_pushed)
            .unwrap_or_default();
        if !unconfirmed.is_empty() {
            ctx.metrics
                .messages_unconfirmed_returned
                .inc_by(unconfirmed.len() as u64);
            debug!(
                count = unconfirmed.len(),
                "unconfirmed messages handed back to the store"
            );
        }
        for delivery in unconfirmed {
            ctx.router.store_then_ack(client, delivery).await;
        }
        queues.give_back(registration, &ctx.router, client).await;
        bandwidth.persist(&ctx.store).await;
        socket.close().await;
    }
}

/// Confirmed batches are delivered: acks leave, stored copies go.
async fn delivered(ctx: &ClientContext, confirmed: Confirmed) {
    for latency in confirmed.latencies {
        ctx.metrics
            .client_delivery_confirmation_seconds
            .observe(latency.as_secs_f64());
    }
    for delivery in confirmed.pushed {
        ctx.router.pushed(delivery);
    }
    if !confirmed.stored.is_empty() {
        delivery::delivered(ctx, confirmed.stored).await;
    }
}
