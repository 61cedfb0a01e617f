//! Requests of an authenticated client (PROTOCOL §2.7, §2.8): each text or binary frame gets
//! exactly one text response, and an error never ends the session.

use gateway_protocol::client::binary::decrypt_request;
use gateway_protocol::client::encrypted::{open_request, seal_response};
use gateway_protocol::client::CURRENT_PROTOCOL_VERSION;
use gateway_protocol::client::{
    ClientRequest, RequestKind, SensitiveRequest, SensitiveResponse, ServerResponse,
};
use gateway_protocol::mix_packet::MixPacket;
use gateway_store::UnixTime;
use tracing::debug;

use super::delivery::random_bytes;
use super::session::Session;
use super::STORAGE_ERROR;
use crate::node::upgrade_mode::unmetered_bandwidth;

const COCONUT_REFUSED: &str = "The received request is not valid in the current context: coconut credential are not longer supported";
const UNKNOWN_TEXT_REQUEST: &str = "received a text request of an unknown type";

fn illegal(kind: &str) -> String {
    format!(
        "The received request is not valid in the current context: received illegal message of type {kind} in an authenticated client"
    )
}

impl Session {
    /// Answers a text request.
    pub(super) async fn handle_text(&mut self, text: &str) -> ServerResponse {
        let request = match ClientRequest::parse(text) {
            Ok(request) => request,
            Err(e) => {
                debug!(error = %e, "malformed text request");
                return ServerResponse::error(format!("Provided text request was malformed - {e}"));
            }
        };
        match request {
            ClientRequest::SupportedProtocol => ServerResponse::SupportedProtocol {
                version: CURRENT_PROTOCOL_VERSION,
            },
            ClientRequest::ClaimFreeTestnetBandwidth => self.claim_free_bandwidth().await,
            ClientRequest::EncryptedRequest { ciphertext, nonce } => {
                self.handle_sensitive(&ciphertext, &nonce).await
            }
            ClientRequest::EcashCredential { enc_credential, iv } => {
                self.spend_ticket(&enc_credential, &iv).await
            }
            ClientRequest::UpgradeModeJwt { token } => self.upgrade_mode_jwt(&token).await,
            ClientRequest::BandwidthCredential { .. }
            | ClientRequest::BandwidthCredentialV2 { .. } => ServerResponse::error(COCONUT_REFUSED),
            ClientRequest::Authenticate { .. } => ServerResponse::error(illegal("Authenticate")),
            ClientRequest::RegisterHandshakeInitRequest { .. } => {
                ServerResponse::error(illegal("RegisterHandshakeInitRequest"))
            }
            ClientRequest::AuthenticateV2(_) => ServerResponse::error(UNKNOWN_TEXT_REQUEST),
        }
    }

    async fn claim_free_bandwidth(&mut self) -> ServerResponse {
        if self.ctx.tickets.enforced() {
            return ServerResponse::error(super::tickets::ONLY_TICKETS);
        }
        let amount = self.ctx.limits.free_bandwidth_per_claim;
        let now = UnixTime::now();
        self.bandwidth.claim(amount, now);
        self.ctx
            .metrics
            .bandwidth_granted_bytes
            .inc_by(u64::try_from(amount).unwrap_or(0));
        self.bandwidth.persist(&self.ctx.store).await;
        // As saved: with any revocation made meanwhile.
        let total = self.bandwidth.available(now);
        ServerResponse::Bandwidth {
            available_total: total,
            upgrade_mode: self.ctx.upgrade_mode.enabled(),
        }
    }

    /// Answers `upgradeModeJWT` as nym-node: the unmetered allowance if upgrade mode is on or
    /// the JWT shows it is, else why not.
    async fn upgrade_mode_jwt(&mut self, token: &str) -> ServerResponse {
        let upgrade_mode = &self.ctx.upgrade_mode;
        if !upgrade_mode.enabled() {
            let now = UnixTime::now().as_secs();
            if let Err(e) = upgrade_mode.try_enable_with_jwt(token, now).await {
                debug!(error = %e, "upgrade mode JWT refused");
                return ServerResponse::error(e.to_string());
            }
        }
        ServerResponse::Bandwidth {
            available_total: unmetered_bandwidth(self.bandwidth.available(UnixTime::now())),
            upgrade_mode: true,
        }
    }

    async fn handle_sensitive(&mut self, ciphertext: &[u8], nonce: &[u8]) -> ServerResponse {
        let request = match open_request(&self.key, ciphertext, nonce) {
            Ok(request) => request,
            Err(e) => {
                debug!(error = %e, "bad encrypted request");
                return ServerResponse::error(e);
            }
        };
        let ack = match request {
            SensitiveRequest::ForgetMe { client, stats } => {
                if client {
                    if let Err(e) = self.ctx.store.forget_client(self.client).await {
                        crate::warn_rate_limited!(super::STORE_ERRORS, error = %e, "failed to forget a client");
                        return ServerResponse::error(STORAGE_ERROR);
                    }
                    self.bandwidth.forget();
                }
                // No per-client statistics are kept, so `stats` needs nothing.
                debug!(client, stats, "client asked to be forgotten");
                SensitiveResponse::ForgetMeAck {}
            }
            SensitiveRequest::RememberMe { session_type } => {
                debug!(?session_type, "client reported its session type");
                SensitiveResponse::RememberMeAck {}
            }
        };
        seal_response(&self.key, ack, random_bytes()).unwrap_or_else(ServerResponse::error)
    }

    /// Forwards a client's Sphinx packet to its next hop, metering it.
    pub(super) async fn handle_binary(&mut self, frame: &[u8]) -> ServerResponse {
        let request = match decrypt_request(frame, &self.key) {
            Ok(request) => request,
            Err(e) => {
                debug!(error = %e, "undecryptable binary request");
                return ServerResponse::error(format!(
                    "Provided binary request was malformed - {e}"
                ));
            }
        };
        let decoded = match request.kind {
            RequestKind::ForwardSphinx => MixPacket::decode_v1(&request.plaintext),
            RequestKind::ForwardSphinxV2 => MixPacket::decode_v2(&request.plaintext),
        };
        let packet = match decoded {
            Ok(packet) => packet,
            Err(e) => {
                debug!(error = %e, "malformed forward request");
                return ServerResponse::error(e.gateway_reply());
            }
        };
        // The cost is the Sphinx packet alone, as the reference meters it; nothing is
        // metered during upgrade mode.
        let cost = i64::try_from(packet.packet.len()).unwrap_or(i64::MAX);
        let upgrade_mode = self.ctx.upgrade_mode.enabled();
        if !upgrade_mode {
            if let Err(error) = self.bandwidth.check(cost, UnixTime::now()) {
                return ServerResponse::TypedError { error };
            }
        }
        if let Err(e) = self.ctx.egress.send(&packet) {
            // Not charged: the packet never left.
            return ServerResponse::error(format!("the packet could not be forwarded: {e}"));
        }
        let metrics = &self.ctx.metrics;
        metrics.client_packets_forwarded.inc();
        let remaining = if upgrade_mode {
            unmetered_bandwidth(self.bandwidth.available(UnixTime::now()))
        } else {
            let remaining = self.bandwidth.charge(cost);
            metrics.bandwidth_used_bytes.inc_by(cost.unsigned_abs());
            if self.bandwidth.save_due() {
                self.bandwidth.persist(&self.ctx.store).await;
            }
            remaining
        };
        ServerResponse::Send {
            remaining_bandwidth: remaining,
            upgrade_mode,
        }
    }
}
