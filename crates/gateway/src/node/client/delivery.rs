//! Sending a client the messages stored for it (PROTOCOL §3), and sealing pushed messages.
//!
//! Stored messages go out in batches of `message_retrieval_limit`, oldest first; a batch is
//! deleted only after all of it was written to the socket. A batch whose write failed stays
//! stored, so the client gets it on its next connection.

use gateway_protocol::client::binary::encrypt_pushed_message;
use gateway_protocol::client::shared_key::NONCE_LEN;
use gateway_protocol::client::SharedKey;
use gateway_store::{ClientAddress, StoreError};
use rand::Rng as _;
use tokio_util::sync::CancellationToken;
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

/// Sends every message stored for `client`, batch by batch, deleting each batch once written.
/// Stops early (leaving the rest stored) when `shutdown` fires between batches.
pub(super) async fn send_stored(
    socket: &mut ClientSocket,
    key: &SharedKey,
    client: ClientAddress,
    ctx: &ClientContext,
    shutdown: &CancellationToken,
) -> Result<(), DeliveryError> {
    let store = &ctx.store;
    let limit = ctx.limits.message_retrieval_limit;
    // Fetch after the last id sent, so a batch whose delete failed is not sent twice now.
    let mut after = None;
    loop {
        let batch = store.fetch_messages(client, after, limit).await?;
        let Some(last) = batch.last() else {
            return Ok(());
        };
        after = Some(last.id);
        let count = batch.len();
        let mut ids = Vec::with_capacity(count);
        let mut frames = Vec::with_capacity(count);
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
        socket.send_binaries(frames).await?;
        if let Err(e) = store.delete_messages(ids).await {
            // They were delivered; if they stay, the client gets them again next time, which
            // is better than deleting before the write.
            crate::warn_rate_limited!(super::STORE_ERRORS, error = %e, "failed to delete delivered messages");
        }
        ctx.metrics
            .messages_delivered_from_store
            .inc_by(count as u64);
        debug!(count, "delivered stored messages");
        if count < limit || shutdown.is_cancelled() {
            return Ok(());
        }
    }
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
