//! `authenticateV2` ([`verify_request`], then [`VerifiedIdentity::verify_with_key`] with the
//! vector shared key), checked against the protocol's rules computed independently here.
//!
//! Input: a mode byte, then
//! - even mode: a JSON text frame as a client sends it, verified at the vector's "now";
//! - odd mode: the fields of a request that the fuzzer signs with a key of its choice (version,
//!   timestamp, skew, nonce, honest or arbitrary ciphertext, last-used time, a flipped signature
//!   bit), so every check after the signature is reached.

use arbitrary::{Result, Unstructured};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use gateway_protocol::client::authenticate::{
    check_skew, verify_request, AuthError, VerifiedIdentity, DEFAULT_MAX_TIMESTAMP_SKEW_SECS,
    MIN_AUTHENTICATE_V2_VERSION,
};
use gateway_protocol::client::shared_key::NONCE_LEN;
use gateway_protocol::client::{AuthenticateV2Request, ClientRequest, CURRENT_PROTOCOL_VERSION};

use gateway_protocol::test_support::vectors::{self, AUTH_NOW};

pub fn run(data: &[u8]) {
    crate::by_mode(data, text, signed);
}

fn text(data: &[u8]) {
    let Some(ClientRequest::AuthenticateV2(request)) = crate::text_request(data) else {
        return;
    };
    let last_used = request.request_unix_timestamp.checked_sub(1);
    check(
        *request,
        AUTH_NOW,
        DEFAULT_MAX_TIMESTAMP_SKEW_SECS,
        last_used,
    );
}

fn signed(u: &mut Unstructured<'_>) -> Result<()> {
    let client = SigningKey::from_bytes(&u.arbitrary()?);
    let protocol_version = if u.arbitrary()? {
        u.int_in_range(0..=8)?
    } else {
        u.arbitrary()?
    };
    let request_unix_timestamp = if u.arbitrary()? {
        AUTH_NOW.wrapping_add_signed(i64::from(u.arbitrary::<i16>()?))
    } else {
        u.arbitrary()?
    };
    let skew = u64::from(u.arbitrary::<u16>()?);
    let nonce = if u.arbitrary()? {
        u.arbitrary::<[u8; NONCE_LEN]>()?.to_vec()
    } else {
        let len = u.int_in_range(0..=16)?;
        u.bytes(len)?.to_vec()
    };
    let client_identity = client.verifying_key().to_bytes();
    let address_ciphertext = match <[u8; NONCE_LEN]>::try_from(nonce.as_slice()) {
        Ok(n) if u.arbitrary()? => vectors::shared_key()
            .encrypt(&n, &client_identity)
            .expect("encrypts"),
        _ => {
            let len = u.int_in_range(0..=64)?;
            u.bytes(len)?.to_vec()
        }
    };
    let last_used: Option<u64> = u.arbitrary()?;
    let flip: Option<u8> = u.arbitrary()?;

    let mut request = AuthenticateV2Request {
        protocol_version,
        client_identity,
        address_ciphertext,
        nonce,
        request_unix_timestamp,
        request_signature: [0; 64],
        debug_trace_id: None,
    };
    request.request_signature = client.sign(&request.signed_message()).to_bytes();
    if let Some(bit) = flip {
        request.request_signature[usize::from(bit / 8) % 64] ^= 1 << (bit % 8);
    }
    // the JSON a client would send carries the same request
    let wire = ClientRequest::AuthenticateV2(Box::new(request.clone()));
    crate::client_request::check_request(&wire);

    check(request, AUTH_NOW, skew, last_used);

    // the skew rule alone, over all clocks and skews (its error renders both times)
    let (request_unix, now, skew): (u64, u64, u64) = u.arbitrary()?;
    let result = check_skew(request_unix, now, skew);
    assert_eq!(result.is_ok(), within_skew(request_unix, now, skew));
    if let Err(err) = result {
        assert!(err.to_string().contains("excessively skewed"));
    }
    Ok(())
}

/// Verifies `request` and checks every outcome against the rules.
fn check(request: AuthenticateV2Request, now: u64, skew: u64, last_used: Option<u64>) {
    let version_ok = (MIN_AUTHENTICATE_V2_VERSION..=CURRENT_PROTOCOL_VERSION)
        .contains(&request.protocol_version);
    let fresh = within_skew(request.request_unix_timestamp, now, skew);
    assert_eq!(
        check_skew(request.request_unix_timestamp, now, skew).is_ok(),
        fresh
    );
    let signature_ok = VerifyingKey::from_bytes(&request.client_identity)
        .and_then(|key| {
            key.verify(
                &request.signed_message(),
                &Signature::from_bytes(&request.request_signature),
            )
        })
        .is_ok();
    let copy = request.clone();

    let verified = match verify_request(request, now, skew) {
        Ok(verified) => verified,
        Err(err) => {
            let expected = if !version_ok {
                matches!(err, AuthError::IncompatibleProtocol { theirs, .. } if theirs == copy.protocol_version)
            } else if !fresh {
                matches!(err, AuthError::ExcessiveTimestampSkew { .. })
            } else {
                !signature_ok && err == AuthError::InvalidSignature
            };
            assert!(expected, "wrong refusal {err:?} of {copy:?}");
            assert!(!err.to_string().is_empty());
            return;
        }
    };
    assert!(version_ok && fresh && signature_ok, "accepted {copy:?}");
    assert_eq!(verified.client_identity(), copy.client_identity);
    assert_eq!(verified.protocol_version(), copy.protocol_version);
    assert_eq!(verified.request_timestamp(), copy.request_unix_timestamp);
    check_key(&verified, &copy, last_used);
}

fn check_key(verified: &VerifiedIdentity, request: &AuthenticateV2Request, last_used: Option<u64>) {
    let key = vectors::shared_key();
    let ts = request.request_unix_timestamp;
    let result = verified.verify_with_key(key, last_used);
    let Ok(nonce) = <[u8; NONCE_LEN]>::try_from(request.nonce.as_slice()) else {
        assert_eq!(result, Err(AuthError::MalformedNonce));
        return;
    };
    let address_ok = key
        .decrypt(&nonce, &request.address_ciphertext)
        .is_ok_and(|address| address == request.client_identity);
    if !address_ok {
        assert_eq!(result, Err(AuthError::MalformedCiphertext));
    } else if last_used.is_some_and(|previous| ts <= previous) {
        assert_eq!(result, Err(AuthError::RequestReuse));
    } else {
        assert_eq!(result, Ok(ts));
        // the same request again is a replay
        assert_eq!(
            verified.verify_with_key(key, Some(ts)),
            Err(AuthError::RequestReuse)
        );
    }
}

/// The skew rule: |t − now| ≤ skew, where t is the request's u64 read as i64 (as the reference
/// does) and anything outside ±9999 years counts as the epoch; a `now` beyond i64 saturates.
fn within_skew(request_unix: u64, now: u64, skew: u64) -> bool {
    const MIN_UNIX: i64 = -377_705_116_800;
    const MAX_UNIX: i64 = 253_402_300_799;
    let signed = request_unix as i64;
    let t = if (MIN_UNIX..=MAX_UNIX).contains(&signed) {
        signed
    } else {
        0
    };
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    (i128::from(t) - i128::from(now)).abs() <= i128::from(skew)
}
