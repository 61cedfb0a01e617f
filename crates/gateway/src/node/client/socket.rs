//! The client's websocket, with every write bounded by `client_write_timeout` so a client that
//! stops reading cannot hold a session (and the messages queued for it) forever.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use gateway_protocol::client::ServerResponse;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::debug;

use super::idle_buffer::IdleReleasingReader;

/// Why a write to the client failed; the session ends either way.
#[derive(Debug, thiserror::Error)]
pub(super) enum WriteError {
    /// The write did not complete within `client_write_timeout`.
    #[error("the client did not take the data in time")]
    Timeout,
    /// The connection failed or is closed.
    #[error("connection error: {0}")]
    Connection(#[from] WsError),
}

/// A client's websocket connection.
pub(super) struct ClientSocket {
    ws: WebSocketStream<IdleReleasingReader>,
    write_timeout: Duration,
}

impl ClientSocket {
    pub(super) fn new(ws: WebSocketStream<IdleReleasingReader>, write_timeout: Duration) -> Self {
        Self { ws, write_timeout }
    }

    /// The next message from the client; `None` once the connection is closed. Cancel-safe:
    /// a partly read frame stays buffered.
    pub(super) async fn next(&mut self) -> Option<Result<Message, WsError>> {
        self.ws.next().await
    }

    /// Sends a text response.
    pub(super) async fn send_response(
        &mut self,
        response: &ServerResponse,
    ) -> Result<(), WriteError> {
        self.send(Message::text(response.to_text())).await
    }

    /// Sends binary frames in order, then a Ping carrying `ping` if given, with one flush at
    /// the end; each frame has its own timeout.
    pub(super) async fn send_binaries(
        &mut self,
        frames: Vec<Vec<u8>>,
        ping: Option<[u8; 8]>,
    ) -> Result<(), WriteError> {
        for frame in frames {
            self.bounded(|ws| ws.feed(Message::binary(frame))).await?;
        }
        if let Some(payload) = ping {
            self.bounded(|ws| ws.feed(Message::Ping(payload.to_vec().into())))
                .await?;
        }
        self.bounded(|ws| ws.flush()).await
    }

    /// Sends a websocket Ping carrying `payload`.
    pub(super) async fn ping(&mut self, payload: [u8; 8]) -> Result<(), WriteError> {
        self.send(Message::Ping(payload.to_vec().into())).await
    }

    /// Sends `{"type":"error",...}` and closes: how every failure before authentication ends.
    pub(super) async fn fail(mut self, message: &str) {
        debug!(error = message, "closing client connection");
        let _ = self.send_response(&ServerResponse::error(message)).await;
        self.close().await;
    }

    /// Closes the connection politely (a Close frame, also answering the client's), bounded by
    /// the write timeout; dropping the socket then closes TCP.
    pub(super) async fn close(mut self) {
        let _ = tokio::time::timeout(self.write_timeout, self.ws.close(None)).await;
    }

    async fn send(&mut self, message: Message) -> Result<(), WriteError> {
        self.bounded(|ws| ws.send(message)).await
    }

    async fn bounded<'a, F>(
        &'a mut self,
        op: impl FnOnce(&'a mut WebSocketStream<IdleReleasingReader>) -> F,
    ) -> Result<(), WriteError>
    where
        F: std::future::Future<Output = Result<(), WsError>> + 'a,
    {
        match tokio::time::timeout(self.write_timeout, op(&mut self.ws)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(WriteError::Timeout),
        }
    }
}
