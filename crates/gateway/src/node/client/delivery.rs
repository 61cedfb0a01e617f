//! Sending a client the messages stored for it (PROTOCOL §3), and sealing pushed messages.
//!
//! Stored messages go out in batches of `message_retrieval_limit`, oldest first; a batch is
//! deleted only once delivered: confirmed by the client's Pong (see `confirmation`), or
//! written to the socket when confirmation is off. A batch whose write failed stays stored,
//! so the client gets it on its next connection.

use gateway_protocol::client::binary::encrypt_pushed_message;
use gateway_protocol::client::shared_key::NONCE_LEN;
use gateway_protocol::client::SharedKey;
use gateway_store::{ClientAddress, StoreError};
use rand::Rng as _;
use tracing::{debug, warn};

use super::socket::{ClientSocket, WriteError};
use super::ClientContext;

/// Why sending the stored messages stopped.
#[derive(Debug, thiserror::Error)]
pub(super) enum DeliveryError {
    /// The socket failed; the current batch stays stored.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The store could not be read.
    #[error("failed to read stored messages: {0}")]
    Store(#[from] StoreError),
}

/// A batch of stored messages written to the client's socket.
pub(super) struct SentBatch {
    /// Their ids, in order.
    pub(super) ids: Vec<i64>,
    /// The batch was as large as a batch may be: more may follow.
    pub(super) full: bool,
}

/// Writes the next batch of messages stored for `client` (oldest first, after id `after`),
/// followed by a Ping carrying `ping` if given, with one flush. `None` when nothing is left.
/// Nothing is deleted here: the caller deletes once the batch counts as delivered.
pub(super) async fn send_stored_batch(
    socket: &mut ClientSocket,
    key: &SharedKey,
    client: ClientAddress,
    ctx: &ClientContext,
    after: Option<i64>,
    ping: Option<[u8; 8]>,
) -> Result<Option<SentBatch>, DeliveryError> {
    let limit = ctx.limits.message_retrieval_limit;
    let batch = ctx.store.fetch_messages(client, after, limit).await?;
    if batch.is_empty() {
        return Ok(None);
    }
    let full = batch.len() >= limit;
    let mut ids = Vec::with_capacity(batch.len());
    let mut frames = Vec::with_capacity(batch.len());
    for message in batch {
        ids.push(message.id);
        match seal(&message.content, key) {
            Some(frame) => frames.push(frame),
            None => warn!(
                id = message.id,
                "stored message too large to encrypt; dropped"
            ),
        }
    }
    socket.send_binaries(frames, ping).await?;
    debug!(count = ids.len(), "stored messages written");
    Ok(Some(SentBatch { ids, full }))
}

/// Deletes stored messages that were delivered and counts them.
pub(super) async fn delivered(ctx: &ClientContext, ids: Vec<i64>) {
    let count = ids.len() as u64;
    if let Err(e) = ctx.store.delete_messages(ids).await {
        // They were delivered; if they stay, the client gets them again next time, which is
        // better than deleting before the write.
        crate::warn_rate_limited!(super::STORE_ERRORS, error = %e, "failed to delete delivered messages");
    }
    ctx.metrics.messages_delivered_from_store.inc_by(count);
}

/// The pushed-message frame for `message`, under a fresh random nonce; `None` only for
/// inputs beyond what AES-GCM-SIV can encrypt (far above any websocket frame).
pub(super) fn seal(message: &[u8], key: &SharedKey) -> Option<Vec<u8>> {
    encrypt_pushed_message(message, key, &random_bytes::<NONCE_LEN>()).ok()
}

/// `N` bytes from the thread's CSPRNG.
pub(super) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}
