//! Client → gateway JSON text frames (PROTOCOL §2.9).
//!
//! A text frame is parsed once into [`ClientRequest`] and then dispatched on. Frames read while a
//! registration handshake is running are parsed as [`HandshakeFrame`] instead.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Every control request a client may send, tagged by `"type"`.
///
/// Legacy variants are parsed only so they can be refused with their own error texts.
/// Variant order matters: serde lists the names in this order in its "unknown variant" error,
/// which the gateway forwards to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ClientRequest {
    /// A returning client proving it holds the shared key (§2.5).
    AuthenticateV2(Box<AuthenticateV2Request>),
    /// The first registration handshake message (§2.4). Real clients send the alias
    /// `handshakePayload`.
    #[serde(alias = "handshakePayload")]
    RegisterHandshakeInitRequest {
        /// The client's proposed protocol version; 0 when absent.
        #[serde(default)]
        protocol_version: u8,
        /// Handshake message 1.
        data: Vec<u8>,
    },
    /// An encrypted e-cash ticket.
    EcashCredential {
        /// `AEAD(k, iv, credential bytes)`.
        enc_credential: Vec<u8>,
        /// The nonce (`nonce` is accepted as an alias).
        #[serde(alias = "nonce")]
        iv: Vec<u8>,
    },
    /// An upgrade-mode attestation.
    #[serde(rename = "upgradeModeJWT")]
    UpgradeModeJwt {
        /// The attestation JWT.
        token: String,
    },
    /// Free bandwidth, granted when credentials are not enforced.
    ClaimFreeTestnetBandwidth,
    /// An encrypted [`SensitiveRequest`].
    EncryptedRequest {
        /// `AEAD(k, nonce, JSON)`.
        ciphertext: Vec<u8>,
        /// The AEAD nonce (12 bytes when well formed).
        nonce: Vec<u8>,
    },
    /// Asks which protocol version the gateway speaks.
    SupportedProtocol,
    /// Legacy (pre-v4) authentication; always refused.
    Authenticate {
        /// The declared protocol version.
        #[serde(default)]
        protocol_version: Option<u8>,
        /// bs58 client address.
        address: String,
        /// bs58 encrypted address.
        enc_address: String,
        /// bs58 IV.
        iv: String,
    },
    /// Legacy coconut credential; always refused.
    BandwidthCredential {
        /// Encrypted credential.
        enc_credential: Vec<u8>,
        /// IV.
        iv: Vec<u8>,
    },
    /// Legacy coconut credential, second form; always refused.
    BandwidthCredentialV2 {
        /// Encrypted credential.
        enc_credential: Vec<u8>,
        /// IV.
        iv: Vec<u8>,
    },
}

impl ClientRequest {
    /// Parses a text frame. On failure the error's `Display` is serde_json's message, which
    /// the gateway wraps in its own text.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The exact JSON text of this request.
    pub fn to_text(&self) -> String {
        // Serializing these plain types cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `authenticateV2`: the only request whose fields are camelCase (§2.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticateV2Request {
    /// Declared protocol version (4..=6 are accepted).
    pub protocol_version: u8,
    /// The client's ed25519 identity, which is also its address. Parsing fails unless it is a
    /// valid compressed point.
    #[serde(with = "identity_bytes")]
    pub client_identity: [u8; 32],
    /// `AEAD(k, nonce, client address)`, base64 on the wire.
    #[serde(with = "base64_bytes")]
    pub address_ciphertext: Vec<u8>,
    /// The AEAD nonce, base64 on the wire; its length is checked during verification.
    #[serde(with = "base64_bytes")]
    pub nonce: Vec<u8>,
    /// Unix seconds at which the client made the request.
    pub request_unix_timestamp: u64,
    /// ed25519 signature over [`AuthenticateV2Request::signed_message`].
    #[serde(with = "signature_bytes")]
    pub request_signature: [u8; 64],
    /// Optional tracing id some clients add; only logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_trace_id: Option<String>,
}

impl AuthenticateV2Request {
    /// The signed bytes: `version ‖ identity ‖ address_ciphertext ‖ nonce ‖ timestamp (u64 BE)`.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 32 + self.address_ciphertext.len() + 12 + 8);
        out.push(self.protocol_version);
        out.extend_from_slice(&self.client_identity);
        out.extend_from_slice(&self.address_ciphertext);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.request_unix_timestamp.to_be_bytes());
        out
    }
}

/// A text frame read while a registration handshake is in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum HandshakeFrame {
    /// A handshake message.
    HandshakePayload {
        /// The sender's protocol version; 0 when absent.
        #[serde(default)]
        protocol_version: u8,
        /// Message bytes.
        data: Vec<u8>,
    },
    /// The peer gave up on the handshake.
    HandshakeError {
        /// Its reason.
        message: String,
    },
}

impl HandshakeFrame {
    /// Parses a text frame; `None` for anything that is not a handshake frame (the gateway
    /// ignores those during the handshake).
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// Plaintext inside `encryptedRequest` (externally tagged JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SensitiveRequest {
    /// Delete what the gateway keeps about the client.
    ForgetMe {
        /// Forget the client's messages, bandwidth and key.
        client: bool,
        /// Forget its statistics.
        stats: bool,
    },
    /// Tell the gateway what kind of session this is (statistics only).
    RememberMe {
        /// The session kind.
        session_type: SessionType,
    },
}

/// Kind of client session, as reported in `RememberMe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum SessionType {
    Vpn,
    Mixnet,
    Wasm,
    Native,
    Socks5,
    Unknown,
}

mod base64_bytes {
    use super::*;

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        BASE64.decode(text).map_err(D::Error::custom)
    }
}

mod identity_bytes {
    use super::*;

    pub(super) fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let raw = Vec::<u8>::deserialize(d)?;
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| D::Error::custom("an ed25519 public key must be 32 bytes"))?;
        // Rejecting a non-point here makes the whole request unparsable, as with the
        // reference types.
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(D::Error::custom)?;
        Ok(bytes)
    }
}

mod signature_bytes {
    use super::*;

    pub(super) fn serialize<S: Serializer>(bytes: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let raw = Vec::<u8>::deserialize(d)?;
        raw.try_into()
            .map_err(|_| D::Error::custom("an ed25519 signature must be 64 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::vectors::{hex_field, load};

    #[test]
    fn every_client_request_vector_round_trips_byte_exactly() {
        let v = load("json_messages.json");
        let requests = v["client_requests"].as_array().unwrap();
        assert_eq!(requests.len(), 9);
        for entry in requests {
            let text = entry["ws_text"].as_str().unwrap();
            let parsed =
                ClientRequest::parse(text).unwrap_or_else(|e| panic!("{}: {e}", entry["name"]));
            assert_eq!(parsed.to_text(), text, "{}", entry["name"]);
        }
    }

    #[test]
    fn request_vectors_parse_to_the_right_variants() {
        let v = load("json_messages.json");
        let by_name = |name: &str| {
            let entry = v["client_requests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name)
                .unwrap();
            ClientRequest::parse(entry["ws_text"].as_str().unwrap()).unwrap()
        };
        assert_eq!(
            by_name("supportedProtocol"),
            ClientRequest::SupportedProtocol
        );
        assert_eq!(
            by_name("ecashCredential"),
            ClientRequest::EcashCredential {
                enc_credential: vec![1, 2, 3],
                iv: vec![0; 12]
            }
        );
        assert_eq!(
            by_name("upgradeModeJWT"),
            ClientRequest::UpgradeModeJwt {
                token: "eyJ...".into()
            }
        );
        assert_eq!(
            by_name("legacy_authenticate"),
            ClientRequest::Authenticate {
                protocol_version: Some(3),
                address: "addr".into(),
                enc_address: "enc".into(),
                iv: "iv".into()
            }
        );
        assert!(matches!(
            by_name("legacy_bandwidthCredentialV2"),
            ClientRequest::BandwidthCredentialV2 { .. }
        ));
        let ClientRequest::EncryptedRequest { ciphertext, nonce } =
            by_name("encryptedRequest_forgetMe")
        else {
            panic!("wrong variant");
        };
        assert_eq!(nonce.len(), 12);
        assert_eq!(ciphertext.len(), 58);
    }

    #[test]
    fn parse_results_match_the_reference_crate() {
        let v = load("json_messages.json");
        for (input, expected) in v["client_request_parse_results"].as_object().unwrap() {
            match (ClientRequest::parse(input), expected.get("err")) {
                (Err(e), Some(err)) => assert_eq!(e.to_string(), err.as_str().unwrap()),
                (Ok(req), None) => {
                    let want = expected["ok"].as_str().unwrap();
                    let got = match req {
                        ClientRequest::ClaimFreeTestnetBandwidth => "ClaimFreeTestnetBandwidth",
                        ClientRequest::EcashCredential { .. } => "EcashCredential",
                        ClientRequest::RegisterHandshakeInitRequest { .. } => {
                            "RegisterHandshakeInitRequest"
                        }
                        ClientRequest::SupportedProtocol => "SupportedProtocol",
                        _ => "other",
                    };
                    assert_eq!(got, want, "{input}");
                }
                (got, _) => panic!("{input}: unexpected {got:?}"),
            }
        }
    }

    #[test]
    fn aliases_and_defaults() {
        assert_eq!(
            ClientRequest::parse(r#"{"type":"handshakePayload","data":[1,2]}"#).unwrap(),
            ClientRequest::RegisterHandshakeInitRequest {
                protocol_version: 0,
                data: vec![1, 2]
            }
        );
        assert_eq!(
            ClientRequest::parse(r#"{"type":"ecashCredential","enc_credential":[1],"nonce":[2]}"#)
                .unwrap(),
            ClientRequest::EcashCredential {
                enc_credential: vec![1],
                iv: vec![2]
            }
        );
        assert_eq!(
            ClientRequest::parse(r#"{"type":"supportedProtocol","extra":1}"#).unwrap(),
            ClientRequest::SupportedProtocol
        );
        assert!(ClientRequest::parse(r#"{"type":"registerHandshakeInitRequest"}"#).is_err());
        assert!(ClientRequest::parse(r#"{"data":[1]}"#).is_err());
        assert!(ClientRequest::parse("").is_err());
    }

    #[test]
    fn authenticate_v2_vectors_parse() {
        let v = load("authenticate_v2.json");
        let text = v["ws_text"].as_str().unwrap();
        let ClientRequest::AuthenticateV2(req) = ClientRequest::parse(text).unwrap() else {
            panic!("wrong variant");
        };
        assert_eq!(req.protocol_version, 6);
        assert_eq!(req.request_unix_timestamp, 1_750_000_000);
        assert_eq!(req.nonce, hex_field(&v, "nonce_hex"));
        assert_eq!(
            req.address_ciphertext,
            hex_field(&v, "address_ciphertext_hex")
        );
        assert_eq!(
            req.request_signature.to_vec(),
            hex_field(&v, "signature_hex")
        );
        assert_eq!(req.signed_message(), hex_field(&v, "signed_plaintext_hex"));
        assert_eq!(req.signed_message().len(), 101);
        assert_eq!(ClientRequest::AuthenticateV2(req).to_text(), text);

        let live = v["ws_text_live_example"].as_str().unwrap();
        assert!(matches!(
            ClientRequest::parse(live),
            Ok(ClientRequest::AuthenticateV2(_))
        ));
    }

    #[test]
    fn authenticate_v2_rejects_malformed_fields() {
        let v = load("authenticate_v2.json");
        let text = v["ws_text"].as_str().unwrap();
        let mut good: serde_json::Value = serde_json::from_str(text).unwrap();
        good["debugTraceId"] = "trace".into();
        assert!(ClientRequest::parse(&good.to_string()).is_ok());

        let broken = |field: &str, value: serde_json::Value| {
            let mut j: serde_json::Value = serde_json::from_str(text).unwrap();
            j[field] = value;
            ClientRequest::parse(&j.to_string()).is_err()
        };
        assert!(broken("nonce", "not base64!".into()));
        assert!(broken("nonce", serde_json::json!([7, 7])));
        assert!(broken("clientIdentity", serde_json::json!([1, 2, 3])));
        // Not a point on the curve (y = 2 has no x).
        let mut not_point = vec![0u8; 32];
        not_point[0] = 2;
        assert!(broken("clientIdentity", serde_json::json!(not_point)));
        assert!(broken("requestSignature", serde_json::json!(vec![0u8; 63])));
        assert!(broken("requestUnixTimestamp", serde_json::json!(-1)));
        assert!(broken("protocolVersion", serde_json::json!(256)));
    }

    #[test]
    fn handshake_frames() {
        let v = load("handshake.json");
        for step in v["transcript"].as_array().unwrap() {
            let frame = HandshakeFrame::parse(step["ws_text"].as_str().unwrap()).unwrap();
            let HandshakeFrame::HandshakePayload {
                protocol_version,
                data,
            } = frame
            else {
                panic!("wrong variant")
            };
            assert_eq!(protocol_version, 6);
            assert_eq!(data, hex_field(step, "data_hex"));
        }
        assert_eq!(
            HandshakeFrame::parse(r#"{"type":"handshakeError","message":"no"}"#),
            Some(HandshakeFrame::HandshakeError {
                message: "no".into()
            })
        );
        assert_eq!(
            HandshakeFrame::parse(r#"{"type":"supportedProtocol"}"#),
            None
        );
        assert_eq!(HandshakeFrame::parse("garbage"), None);
    }

    #[test]
    fn sensitive_request_plaintexts() {
        let v = load("json_messages.json");
        let inner = &v["encrypted_inner_plaintexts"];
        let forget = inner["ClientRequest_ForgetMe"].as_str().unwrap();
        let remember = inner["ClientRequest_RememberMe"].as_str().unwrap();
        let f: SensitiveRequest = serde_json::from_str(forget).unwrap();
        assert_eq!(
            f,
            SensitiveRequest::ForgetMe {
                client: true,
                stats: false
            }
        );
        assert_eq!(serde_json::to_string(&f).unwrap(), forget);
        let r: SensitiveRequest = serde_json::from_str(remember).unwrap();
        assert_eq!(
            r,
            SensitiveRequest::RememberMe {
                session_type: SessionType::Mixnet
            }
        );
        assert_eq!(serde_json::to_string(&r).unwrap(), remember);
    }
}
