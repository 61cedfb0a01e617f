//! Gateway → client JSON text frames (PROTOCOL §2.9).
//!
//! Serialization is byte-exact with the reference crate (field order included), so the types
//! here derive it and tests compare against `json_messages.json`. Deserialization exists for
//! tests that play the client.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Every text frame the gateway sends, tagged by `"type"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerResponse {
    /// `authenticateV2` succeeded.
    Authenticate {
        /// The client's declared version.
        #[serde(default)]
        protocol_version: u8,
        /// Always `true` from current gateways.
        status: bool,
        /// Remaining bandwidth in bytes.
        bandwidth_remaining: i64,
        /// Upgrade mode is not supported: `false`.
        #[serde(default)]
        upgrade_mode: bool,
    },
    /// Registration succeeded.
    Register {
        /// The negotiated version.
        #[serde(default)]
        protocol_version: u8,
        /// Always `true` from current gateways.
        status: bool,
        /// Upgrade mode is not supported: `false`.
        #[serde(default)]
        upgrade_mode: bool,
    },
    /// Bandwidth after a claim or a credential.
    Bandwidth {
        /// Total available bytes.
        available_total: i64,
        /// Upgrade mode is not supported: `false`.
        #[serde(default)]
        upgrade_mode: bool,
    },
    /// Reply to each forwarded packet.
    Send {
        /// Remaining bytes.
        remaining_bandwidth: i64,
        /// Upgrade mode is not supported: `false`.
        #[serde(default)]
        upgrade_mode: bool,
    },
    /// Reply to `supportedProtocol`.
    SupportedProtocol {
        /// Our protocol version.
        version: u8,
    },
    /// Any failure, as text.
    Error {
        /// What failed.
        message: String,
    },
    /// A failure the client acts on programmatically.
    TypedError {
        /// The failure.
        error: TypedError,
    },
    /// An encrypted [`SensitiveResponse`].
    EncryptedResponse {
        /// `AEAD(k, nonce, JSON)`.
        ciphertext: Vec<u8>,
        /// The AEAD nonce.
        nonce: Vec<u8>,
    },
    /// A registration handshake message.
    HandshakePayload {
        /// The negotiated version.
        protocol_version: u8,
        /// Message bytes.
        data: Vec<u8>,
    },
    /// The registration handshake failed.
    HandshakeError {
        /// Why.
        message: String,
    },
}

impl ServerResponse {
    /// An `error` frame carrying `message`.
    pub fn error(message: impl ToString) -> Self {
        Self::Error {
            message: message.to_string(),
        }
    }

    /// The exact JSON text of this response.
    pub fn to_text(&self) -> String {
        // Serializing these plain types cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a text frame (for tests that play the client).
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Errors sent as `typedError` (externally tagged, snake_case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Error)]
#[serde(rename_all = "snake_case")]
pub enum TypedError {
    /// Not enough bandwidth for a forward request; the packet was dropped.
    #[error(
        "insufficient bandwidth available to process the request. required: {required}B, available: {available}B"
    )]
    OutOfBandwidth {
        /// The cost of the request in bytes.
        required: i64,
        /// What the client had.
        available: i64,
    },
    /// An e-cash ticket spent before.
    #[error("the provided ticket has already been spent before at this gateway")]
    TicketReplay,
}

/// Plaintext inside `encryptedResponse` (externally tagged JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SensitiveResponse {
    /// `ForgetMe` was carried out.
    ForgetMeAck {},
    /// `RememberMe` was recorded.
    RememberMeAck {},
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::vectors::load;

    fn vector(name: &str) -> String {
        let v = load("json_messages.json");
        v["server_responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no vector {name}"))["ws_text"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn responses_serialize_byte_exactly() {
        let cases = [
            (
                "authenticate",
                ServerResponse::Authenticate {
                    protocol_version: 6,
                    status: true,
                    bandwidth_remaining: 68_719_476_736,
                    upgrade_mode: false,
                },
            ),
            (
                "register",
                ServerResponse::Register {
                    protocol_version: 6,
                    status: true,
                    upgrade_mode: false,
                },
            ),
            (
                "bandwidth",
                ServerResponse::Bandwidth {
                    available_total: 68_719_476_736,
                    upgrade_mode: false,
                },
            ),
            (
                "send",
                ServerResponse::Send {
                    remaining_bandwidth: 68_719_474_323,
                    upgrade_mode: false,
                },
            ),
            (
                "supportedProtocol",
                ServerResponse::SupportedProtocol { version: 6 },
            ),
            (
                "error",
                ServerResponse::error("Only 'Register' or 'Authenticate' requests are allowed"),
            ),
            (
                "typedError_out_of_bandwidth",
                ServerResponse::TypedError {
                    error: TypedError::OutOfBandwidth {
                        required: 2413,
                        available: 0,
                    },
                },
            ),
            (
                "typedError_ticket_replay",
                ServerResponse::TypedError {
                    error: TypedError::TicketReplay,
                },
            ),
        ];
        for (name, response) in cases {
            let text = vector(name);
            assert_eq!(response.to_text(), text, "{name}");
            assert_eq!(ServerResponse::parse(&text).unwrap(), response, "{name}");
        }
    }

    #[test]
    fn every_response_vector_round_trips() {
        let v = load("json_messages.json");
        let all = v["server_responses"].as_array().unwrap();
        assert_eq!(all.len(), 9);
        for entry in all {
            let text = entry["ws_text"].as_str().unwrap();
            assert_eq!(ServerResponse::parse(text).unwrap().to_text(), text);
        }
    }

    #[test]
    fn handshake_responses_match_the_transcript() {
        let v = load("handshake.json");
        let last = &v["transcript"][3];
        let response = ServerResponse::HandshakePayload {
            protocol_version: 6,
            data: vec![1],
        };
        assert_eq!(response.to_text(), last["ws_text"].as_str().unwrap());
        let gateway_msg2 = &v["transcript"][1];
        let data = hex::decode(gateway_msg2["data_hex"].as_str().unwrap()).unwrap();
        assert_eq!(
            ServerResponse::HandshakePayload {
                protocol_version: 6,
                data
            }
            .to_text(),
            gateway_msg2["ws_text"].as_str().unwrap()
        );
        assert_eq!(
            ServerResponse::HandshakeError {
                message: "sent request was malformed".into()
            }
            .to_text(),
            r#"{"type":"handshakeError","message":"sent request was malformed"}"#
        );
    }

    #[test]
    fn old_shapes_still_parse() {
        assert_eq!(
            ServerResponse::parse(r#"{"type":"send","remaining_bandwidth":5}"#).unwrap(),
            ServerResponse::Send {
                remaining_bandwidth: 5,
                upgrade_mode: false
            }
        );
    }

    #[test]
    fn typed_error_texts() {
        let v = load("error_strings.json");
        let errors = &v["errors"];
        assert_eq!(
            TypedError::OutOfBandwidth {
                required: 2413,
                available: 0
            }
            .to_string(),
            errors["SimpleGatewayRequestsError::OutOfBandwidth"]
                .as_str()
                .unwrap()
        );
        assert_eq!(
            TypedError::TicketReplay.to_string(),
            errors["SimpleGatewayRequestsError::TicketReplay"]
                .as_str()
                .unwrap()
        );
    }

    #[test]
    fn sensitive_response_plaintexts() {
        let v = load("json_messages.json");
        let inner = &v["encrypted_inner_plaintexts"];
        assert_eq!(
            serde_json::to_string(&SensitiveResponse::ForgetMeAck {}).unwrap(),
            inner["SensitiveServerResponse_ForgetMeAck"]
                .as_str()
                .unwrap()
        );
        assert_eq!(
            serde_json::to_string(&SensitiveResponse::RememberMeAck {}).unwrap(),
            inner["SensitiveServerResponse_RememberMeAck"]
                .as_str()
                .unwrap()
        );
    }
}
