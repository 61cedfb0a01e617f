//! The real `nym_gateway_client::GatewayClient` (2.0.0), set up as a Nym client sets it up: no
//! reconnection, no DNS, and either disabled credentials mode (free bandwidth) or credentials
//! mode with a given ticket provider.

use crate::packets::TestClient;
use anyhow::{bail, Context};
use futures::channel::mpsc;
use futures::StreamExt;
use nym_bandwidth_controller::mock::MockBandwidthController;
use nym_bandwidth_controller::BandwidthTicketProvider;
use nym_crypto::asymmetric::ed25519;
use nym_gateway_client::client::GatewayListeners;
use nym_gateway_client::{
    AcknowledgementReceiver, GatewayClient, GatewayClientConfig, GatewayConfig,
    MixnetMessageReceiver, PacketRouter, SharedSymmetricKey,
};
use nym_sphinx::forwarding::packet::MixPacket;
use nym_statistics_common::clients::ClientStatsSender;
use nym_task::ShutdownToken;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

const RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);

/// An authenticated client with its bandwidth claimed and its mixnet listener running.
pub struct ConnectedClient {
    pub client: GatewayClient,
    pub shared_key: Arc<SharedSymmetricKey>,
    mix_rx: MixnetMessageReceiver,
    ack_rx: AcknowledgementReceiver,
    shutdown: ShutdownToken,
}

/// How a client pays for bandwidth.
pub enum Bandwidth {
    /// Disabled credentials mode: `claimFreeTestnetBandwidth`.
    Free,
    /// Credentials mode: `ecashCredential` with the tickets of this provider.
    Tickets(Box<dyn BandwidthTicketProvider>),
}

impl ConnectedClient {
    /// Connects to `ws_url`: registers when `shared_key` is `None`, else `authenticateV2`s.
    /// Then claims free bandwidth if needed and starts listening, as `nym-client-core` does.
    pub async fn connect(
        ws_url: &str,
        gateway_identity: ed25519::PublicKey,
        client: &TestClient,
        shared_key: Option<Arc<SharedSymmetricKey>>,
    ) -> anyhow::Result<Self> {
        Self::connect_with(
            ws_url,
            gateway_identity,
            client,
            shared_key,
            Bandwidth::Free,
        )
        .await
    }

    /// [`connect`](Self::connect), paying for bandwidth as `bandwidth` says.
    pub async fn connect_with(
        ws_url: &str,
        gateway_identity: ed25519::PublicKey,
        client: &TestClient,
        shared_key: Option<Arc<SharedSymmetricKey>>,
        bandwidth: Bandwidth,
    ) -> anyhow::Result<Self> {
        let shutdown = ShutdownToken::default();
        let (ack_tx, ack_rx) = mpsc::unbounded();
        let (mix_tx, mix_rx) = mpsc::unbounded();
        let (free, provider): (bool, Box<dyn BandwidthTicketProvider>) = match bandwidth {
            Bandwidth::Free => (true, Box::new(MockBandwidthController::default())),
            Bandwidth::Tickets(provider) => (false, provider),
        };
        let config = GatewayClientConfig::new_default()
            .with_disabled_credentials_mode(free)
            .with_reconnection_on_failure(false)
            .with_hickory_dns(false)
            .with_response_timeout(RESPONSE_TIMEOUT);
        let listeners = GatewayListeners {
            primary: Url::parse(ws_url)?,
            fallback: None,
        };
        let mut gateway_client = GatewayClient::new(
            config,
            GatewayConfig::new(gateway_identity, listeners),
            client.identity.clone(),
            shared_key,
            PacketRouter::new(ack_tx, mix_tx, shutdown.clone()),
            provider,
            ClientStatsSender::new(None, shutdown.clone()),
            None,
            shutdown.clone(),
        );
        let auth = tokio::time::timeout(
            RESPONSE_TIMEOUT * 2,
            gateway_client.perform_initial_authentication(),
        )
        .await
        .context("registration/authentication timed out")?
        .context("registration/authentication failed")?;
        tokio::time::timeout(RESPONSE_TIMEOUT, gateway_client.claim_initial_bandwidth())
            .await
            .context("claiming bandwidth timed out")?
            .context("claiming bandwidth failed")?;
        gateway_client
            .start_listening_for_mixnet_messages()
            .context("starting the mixnet listener")?;
        Ok(ConnectedClient {
            client: gateway_client,
            shared_key: auth.initial_shared_key,
            mix_rx,
            ack_rx,
            shutdown,
        })
    }

    pub async fn send(&mut self, packet: MixPacket) -> anyhow::Result<()> {
        tokio::time::timeout(RESPONSE_TIMEOUT, self.client.send_mix_packet(packet))
            .await
            .context("send_mix_packet timed out")?
            .context("send_mix_packet failed")
    }

    /// Collects exactly `n` pushed (non-ack) messages, in arrival order.
    pub async fn messages(&mut self, n: usize, limit: Duration) -> anyhow::Result<Vec<Vec<u8>>> {
        collect(&mut self.mix_rx, n, limit, "pushed messages").await
    }

    /// Collects exactly `n` pushed acks, in arrival order.
    pub async fn acks(&mut self, n: usize, limit: Duration) -> anyhow::Result<Vec<Vec<u8>>> {
        collect(&mut self.ack_rx, n, limit, "pushed acks").await
    }

    /// Messages that have already arrived, without waiting.
    pub fn pending_messages(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Ok(batch) = self.mix_rx.try_recv() {
            out.extend(batch);
        }
        out
    }

    /// Closes the websocket (a close frame, as a client shutting down sends).
    pub async fn close(mut self) -> anyhow::Result<()> {
        let result = tokio::time::timeout(RESPONSE_TIMEOUT, self.client.close_connection())
            .await
            .context("closing the connection timed out")?;
        self.shutdown.cancel();
        result.context("closing the connection")
    }
}

async fn collect(
    rx: &mut mpsc::UnboundedReceiver<Vec<Vec<u8>>>,
    n: usize,
    limit: Duration,
    what: &str,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout_at(deadline, rx.next()).await {
            Ok(Some(batch)) => out.extend(batch),
            Ok(None) => bail!(
                "the client's {what} channel closed after {} of {n}",
                out.len()
            ),
            Err(_) => bail!("received {} of {n} {what} within {limit:?}", out.len()),
        }
    }
    if out.len() > n {
        bail!("expected {n} {what}, received {}", out.len());
    }
    Ok(out)
}
