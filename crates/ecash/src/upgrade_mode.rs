//! Upgrade mode, as nym-node 1.31.0 reads it: while the network upgrades its e-cash signers,
//! its attester publishes a signed attestation at a well-known URL and gateways stop metering
//! bandwidth. Clients that learned of it first show it to a gateway as a JWT
//! (`upgradeModeJWT`) signed by a credential proxy the attestation names.
//!
//! This module parses and verifies both; fetching the attestation is the gateway's job.
//!
//! - The published document is JSON `null` (no upgrade) or an attestation
//!   `{"type":"upgrade_mode","starting_time":…,"attester_public_key":…,"authorised_jwt_issuers":[…],"signature":…}`
//!   whose ed25519 signature (bs58) covers the JSON of the other fields, serialized in that
//!   order. It counts only if signed by the attester key configured for the network.
//! - The JWT is EdDSA (`alg`), its signer's bs58 key in the header's `jwk`, with the claims
//!   `iss` = `nym-credential-proxy`, `iat`/`nbf`/`exp` (15 minutes' tolerance, as nym's
//!   `jwt-simple` defaults) and the attestation's fields; its signer must be among the
//!   attestation's `authorised_jwt_issuers`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::Deserialize;
use serde_json::{json, Value};
use thiserror::Error;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The `iss` of JWTs that may enable upgrade mode (nym's `CREDENTIAL_PROXY_JWT_ISSUER`).
pub const JWT_ISSUER: &str = "nym-credential-proxy";

/// Clock tolerance of the JWT's times, as nym's `jwt-simple` verifies them.
const JWT_TIME_TOLERANCE_SECS: i64 = 15 * 60;

/// A parsed upgrade-mode attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestation {
    /// When upgrade mode started.
    pub starting_time: OffsetDateTime,
    /// Who signed it.
    pub attester_public_key: VerifyingKey,
    /// Who may sign JWTs carrying it.
    pub authorised_jwt_issuers: Vec<VerifyingKey>,
    /// The attester's signature over [`Attestation::signed_content`].
    pub signature: Signature,
}

/// Why a published attestation is not taken.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AttestationError {
    /// Not JSON of the attestation's shape.
    #[error("the upgrade mode attestation is malformed: {0}")]
    Malformed(String),
    /// Signed by another key than the network's attester.
    #[error("the upgrade mode attestation was not made by the expected attester")]
    UnexpectedAttester,
    /// The signature does not verify.
    #[error("the upgrade mode attestation's signature is invalid")]
    BadSignature,
}

/// Why an `upgradeModeJWT` is refused; the texts are nym-node's (`UpgradeModeCheckError`,
/// with `jwt-simple`'s texts inside).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum JwtError {
    /// The header is not base64url JSON.
    #[error("failed to decode jwt metadata: JWT compact encoding error")]
    Metadata,
    /// The claims carry no attestation.
    #[error("the upgrade mode JWT is malformed")]
    Malformed,
    /// The header names no signer key.
    #[error("the jwt metadata didn't contain explicit public key")]
    MissingPublicKey,
    /// The header's key is not an ed25519 key.
    #[error("the attached public key was not valid ed25519 public key")]
    BadPublicKey,
    /// Layout, algorithm, signature, times or issuer (`jwt-simple`'s text).
    #[error("failed to verify the jwt: {0}")]
    Verification(&'static str),
    /// Signed by a key the attestation does not authorise.
    #[error("the jwt signer does not appear in the authorised attestation set")]
    UnauthorisedIssuer,
}

/// `jwt-simple`'s texts for the checks [`verify_jwt`] makes.
const COMPACT_ENCODING: &str = "JWT compact encoding error";
const BAD_SIGNATURE: &str = "Signature tag didn't verify";

#[derive(Deserialize)]
struct RawAttestation {
    #[serde(rename = "type")]
    kind: String,
    starting_time: String,
    attester_public_key: String,
    authorised_jwt_issuers: Vec<String>,
    signature: String,
}

impl RawAttestation {
    fn parse(self) -> Result<Attestation, String> {
        if self.kind != "upgrade_mode" {
            return Err(format!("unexpected type {:?}", self.kind));
        }
        let starting_time = OffsetDateTime::parse(&self.starting_time, &Rfc3339)
            .map_err(|e| format!("starting_time: {e}"))?;
        let attester_public_key = bs58_key(&self.attester_public_key)
            .ok_or_else(|| "attester_public_key is not an ed25519 key".to_owned())?;
        let authorised_jwt_issuers = self
            .authorised_jwt_issuers
            .iter()
            .map(|key| bs58_key(key))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| "an authorised issuer is not an ed25519 key".to_owned())?;
        let signature = bs58_array::<64>(&self.signature)
            .map(|bytes| Signature::from_bytes(&bytes))
            .ok_or_else(|| "signature is not 64 bs58 bytes".to_owned())?;
        Ok(Attestation {
            starting_time,
            attester_public_key,
            authorised_jwt_issuers,
            signature,
        })
    }
}

fn bs58_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    bs58::decode(text).into_vec().ok()?.try_into().ok()
}

/// An ed25519 public key written in bs58, as nym's configs and env files write them.
pub fn bs58_key(text: &str) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(&bs58_array::<32>(text)?).ok()
}

fn json_string(text: &str) -> String {
    Value::from(text).to_string()
}

fn bs58_text(key: &VerifyingKey) -> String {
    bs58::encode(key.as_bytes()).into_string()
}

impl Attestation {
    /// The bytes the attester signs: the JSON of the fields other than the signature, as
    /// nym's serde writes them (this order, no spaces, RFC 3339 time, bs58 keys).
    pub fn signed_content(&self) -> String {
        // Written by hand: the field order is part of what is signed, and a `serde_json::Value`
        // map may sort its keys.
        let mut out = format!(
            r#"{{"type":"upgrade_mode","starting_time":{},"attester_public_key":{},"authorised_jwt_issuers":["#,
            // Formatting a parsed RFC 3339 time cannot fail; an empty one would not verify.
            json_string(&self.starting_time.format(&Rfc3339).unwrap_or_default()),
            json_string(&bs58_text(&self.attester_public_key)),
        );
        for (i, issuer) in self.authorised_jwt_issuers.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&json_string(&bs58_text(issuer)));
        }
        out.push_str("]}");
        out
    }

    /// The attestation as published (the signed content plus `signature`).
    pub fn to_json(&self) -> String {
        let mut out = self.signed_content();
        out.pop();
        out.push_str(r#","signature":"#);
        out.push_str(&json_string(
            &bs58::encode(self.signature.to_bytes()).into_string(),
        ));
        out.push('}');
        out
    }

    fn from_value(value: Value) -> Result<Self, String> {
        serde_json::from_value::<RawAttestation>(value)
            .map_err(|e| e.to_string())?
            .parse()
    }

    /// Whether `attester` signed it.
    pub fn verify(&self, attester: &VerifyingKey) -> Result<(), AttestationError> {
        if self.attester_public_key != *attester {
            return Err(AttestationError::UnexpectedAttester);
        }
        attester
            .verify_strict(self.signed_content().as_bytes(), &self.signature)
            .map_err(|_| AttestationError::BadSignature)
    }
}

/// Reads the document published at the attestation URL: `Ok(None)` if it is JSON `null` (no
/// upgrade under way), the attestation if `attester` signed it, an error otherwise.
pub fn parse_published(
    body: &[u8],
    attester: &VerifyingKey,
) -> Result<Option<Attestation>, AttestationError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| AttestationError::Malformed(e.to_string()))?;
    if value.is_null() {
        return Ok(None);
    }
    let attestation = Attestation::from_value(value).map_err(AttestationError::Malformed)?;
    attestation.verify(attester)?;
    Ok(Some(attestation))
}

#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    jwk: Option<String>,
    #[serde(default)]
    crit: Option<Vec<String>>,
}

/// Verifies an `upgradeModeJWT` at `now` (Unix seconds) and returns the attestation it carries.
/// The attestation's own signature is not checked here: the caller compares it with the one
/// it fetched and verified.
pub fn verify_jwt(token: &str, now: i64) -> Result<Attestation, JwtError> {
    // nym-node's order: the header's key first, then `jwt-simple`'s verification.
    let mut parts = token.split('.');
    let header_b64 = parts.next().unwrap_or_default();
    let header: JwtHeader = URL_SAFE_NO_PAD
        .decode(header_b64)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(JwtError::Metadata)?;
    let key = header.jwk.as_deref().ok_or(JwtError::MissingPublicKey)?;
    let key = bs58_key(key).ok_or(JwtError::BadPublicKey)?;

    let (Some(claims_b64), Some(signature_b64), None) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Verification(COMPACT_ENCODING));
    };
    if header.crit.is_some_and(|crit| !crit.is_empty()) {
        return Err(JwtError::Verification(
            "Unknown critical extension in token header",
        ));
    }
    if let Some(typ) = header.typ {
        let typ = typ.to_uppercase();
        if typ != "JWT" && !typ.ends_with("+JWT") {
            return Err(JwtError::Verification("Not a JWT token"));
        }
    }
    if header.alg != "EdDSA" {
        return Err(JwtError::Verification("JWT algorithm mismatch"));
    }
    let signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| JwtError::Verification(COMPACT_ENCODING))?
        .try_into()
        .map_err(|_| JwtError::Verification(BAD_SIGNATURE))?;
    let signed = &token[..header_b64.len() + 1 + claims_b64.len()];
    key.verify_strict(signed.as_bytes(), &Signature::from_bytes(&signature))
        .map_err(|_| JwtError::Verification(BAD_SIGNATURE))?;

    let claims: Value = URL_SAFE_NO_PAD
        .decode(claims_b64)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(JwtError::Malformed)?;
    check_times(&claims, now)?;
    match claims.get("iss").and_then(Value::as_str) {
        Some(JWT_ISSUER) => {}
        Some(_) => return Err(JwtError::Verification("Required issuer mismatch")),
        None => return Err(JwtError::Verification("Required issuer missing")),
    }
    let attestation = Attestation::from_value(claims).map_err(|_| JwtError::Malformed)?;
    if !attestation.authorised_jwt_issuers.contains(&key) {
        return Err(JwtError::UnauthorisedIssuer);
    }
    Ok(attestation)
}

/// `iat` and `nbf` not ahead of `now`, `exp` not behind it, each within the tolerance.
fn check_times(claims: &Value, now: i64) -> Result<(), JwtError> {
    let time = |name: &str| -> Result<Option<i64>, JwtError> {
        match claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value.as_i64().map(Some).ok_or(JwtError::Malformed),
        }
    };
    if time("iat")?.is_some_and(|iat| iat > now.saturating_add(JWT_TIME_TOLERANCE_SECS)) {
        return Err(JwtError::Verification("Clock drift detected"));
    }
    if time("nbf")?.is_some_and(|nbf| now.saturating_add(JWT_TIME_TOLERANCE_SECS) < nbf) {
        return Err(JwtError::Verification("Token not valid yet"));
    }
    if time("exp")?.is_some_and(|exp| now.saturating_sub(JWT_TIME_TOLERANCE_SECS) > exp) {
        return Err(JwtError::Verification("Token has expired"));
    }
    Ok(())
}

/// An attester and a credential proxy with their own keys, for tests and local networks:
/// they publish attestations and issue JWTs the way nym's do.
pub struct TestAttester {
    attester: SigningKey,
    proxy: SigningKey,
}

impl TestAttester {
    /// From two 32-byte secret keys.
    pub fn new(attester: [u8; 32], proxy: [u8; 32]) -> Self {
        Self {
            attester: SigningKey::from_bytes(&attester),
            proxy: SigningKey::from_bytes(&proxy),
        }
    }

    /// The attester's public key (what the gateway is configured with).
    pub fn public_key(&self) -> VerifyingKey {
        self.attester.verifying_key()
    }

    /// The attester's public key in bs58, as config files and env files write it.
    pub fn public_key_bs58(&self) -> String {
        bs58_text(&self.public_key())
    }

    /// An attestation started at `starting_time` (Unix seconds) authorising the proxy.
    pub fn attest(&self, starting_time: i64) -> Attestation {
        let mut attestation = Attestation {
            starting_time: OffsetDateTime::from_unix_timestamp(starting_time)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            attester_public_key: self.public_key(),
            authorised_jwt_issuers: vec![self.proxy.verifying_key()],
            signature: Signature::from_bytes(&[0; 64]),
        };
        attestation.signature = self.attester.sign(attestation.signed_content().as_bytes());
        attestation
    }

    /// A JWT carrying `attestation`, issued at `now` for `validity_secs`, signed by the proxy.
    pub fn jwt(&self, attestation: &Attestation, now: i64, validity_secs: i64) -> String {
        jwt_signed_by(attestation, now, validity_secs, &self.proxy, JWT_ISSUER)
    }
}

/// A JWT carrying `attestation` signed by `signer` with issuer `issuer`, laid out as nym's
/// credential proxy lays it out (for tests, including refused ones).
pub fn jwt_signed_by(
    attestation: &Attestation,
    now: i64,
    validity_secs: i64,
    signer: &SigningKey,
    issuer: &str,
) -> String {
    let header = json!({
        "alg": "EdDSA",
        "typ": "JWT",
        "jwk": bs58_text(&signer.verifying_key()),
    });
    let mut claims: Value =
        serde_json::from_str(&attestation.to_json()).unwrap_or_else(|_| json!({}));
    claims["iat"] = now.into();
    claims["nbf"] = now.into();
    claims["exp"] = (now + validity_secs).into();
    claims["iss"] = issuer.into();
    claims["nonce"] = "test".into();
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = signer.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nym's own vector (`upgrade_mode_attestation_serde_json` in nym-upgrade-mode-check):
    /// the attester's secret key, the published JSON and its signed content.
    const NYM_KEY: [u8; 32] = [
        108, 49, 193, 21, 126, 161, 249, 85, 242, 207, 74, 195, 238, 6, 64, 149, 201, 140, 248,
        163, 122, 170, 79, 198, 87, 85, 36, 29, 243, 92, 64, 161,
    ];
    const NYM_ATTESTATION: &str = r#"{"type":"upgrade_mode","starting_time":"2021-08-23T12:00:00Z","attester_public_key":"3pkFcBXCEmbmXBT2G8CkFMuKisJcH54mbBGvncHaDibt","authorised_jwt_issuers":["Be9wH7xuXBRJAuV1pC7MALZv6a61RvWQ3SypsNarqTt"],"signature":"5Kt9dfwvnkdnDcENbwNyitrxghyckWUYycBv8jUUn7hJUMohWEMc6otb3scXQfCrAGSE7FD5m7kr6auBmkAmfczY"}"#;
    const NYM_CONTENT: &str = r#"{"type":"upgrade_mode","starting_time":"2021-08-23T12:00:00Z","attester_public_key":"3pkFcBXCEmbmXBT2G8CkFMuKisJcH54mbBGvncHaDibt","authorised_jwt_issuers":["Be9wH7xuXBRJAuV1pC7MALZv6a61RvWQ3SypsNarqTt"]}"#;

    fn nym_attester() -> VerifyingKey {
        SigningKey::from_bytes(&NYM_KEY).verifying_key()
    }

    #[test]
    fn nyms_published_attestation_verifies_byte_for_byte() {
        let attestation = parse_published(NYM_ATTESTATION.as_bytes(), &nym_attester())
            .unwrap()
            .unwrap();
        assert_eq!(attestation.signed_content(), NYM_CONTENT);
        assert_eq!(attestation.to_json(), NYM_ATTESTATION);
        assert_eq!(parse_published(b"null", &nym_attester()), Ok(None));
    }

    #[test]
    fn attestations_of_others_or_tampered_ones_are_refused() {
        let other = SigningKey::from_bytes(&[1; 32]).verifying_key();
        assert_eq!(
            parse_published(NYM_ATTESTATION.as_bytes(), &other),
            Err(AttestationError::UnexpectedAttester)
        );
        let tampered = NYM_ATTESTATION.replace("12:00:00Z", "12:00:01Z");
        assert_eq!(
            parse_published(tampered.as_bytes(), &nym_attester()),
            Err(AttestationError::BadSignature)
        );
        for garbage in [&b"<html>404</html>"[..], b"{}", b"[]", b"\"upgrade\""] {
            assert!(matches!(
                parse_published(garbage, &nym_attester()),
                Err(AttestationError::Malformed(_))
            ));
        }
    }

    #[test]
    fn jwts_carry_the_attestation_and_bad_ones_are_refused() {
        let now = 1_800_000_000;
        let attester = TestAttester::new([3; 32], [4; 32]);
        let attestation = attester.attest(now - 60);
        let jwt = attester.jwt(&attestation, now, 3600);
        assert_eq!(verify_jwt(&jwt, now), Ok(attestation.clone()));
        assert_eq!(verify_jwt(&jwt, now + 3600 + 900), Ok(attestation.clone()));
        assert_eq!(
            verify_jwt(&jwt, now + 3600 + 901),
            Err(JwtError::Verification("Token has expired"))
        );
        assert_eq!(
            verify_jwt(&jwt, now - 901),
            Err(JwtError::Verification("Clock drift detected"))
        );
        let stranger = SigningKey::from_bytes(&[5; 32]);
        assert_eq!(
            verify_jwt(
                &jwt_signed_by(&attestation, now, 60, &stranger, JWT_ISSUER),
                now
            ),
            Err(JwtError::UnauthorisedIssuer)
        );
        let proxy = SigningKey::from_bytes(&[4; 32]);
        assert_eq!(
            verify_jwt(
                &jwt_signed_by(&attestation, now, 60, &proxy, "someone"),
                now
            ),
            Err(JwtError::Verification("Required issuer mismatch"))
        );
        let (signed, _) = jwt.rsplit_once('.').unwrap();
        let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode([7u8; 64]));
        assert_eq!(
            verify_jwt(&forged, now),
            Err(JwtError::Verification(BAD_SIGNATURE))
        );
        for garbage in ["", "x", "a.b", "!!.??.**"] {
            assert_eq!(
                verify_jwt(garbage, now),
                Err(JwtError::Metadata),
                "{garbage}"
            );
        }
        let (header, _) = jwt.split_once('.').unwrap();
        for layout in [header.to_owned(), format!("{jwt}.x")] {
            assert_eq!(
                verify_jwt(&layout, now),
                Err(JwtError::Verification(COMPACT_ENCODING))
            );
        }
    }
}
