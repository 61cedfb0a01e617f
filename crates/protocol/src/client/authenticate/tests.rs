use ed25519_dalek::{Signer, SigningKey};

use super::*;
use crate::client::request::ClientRequest;
use crate::test_support::vectors::{hex32, load, shared_key};

const TS: u64 = 1_750_000_000;
const SKEW: u64 = DEFAULT_MAX_TIMESTAMP_SKEW_SECS;

fn vector_request() -> AuthenticateV2Request {
    let v = load("authenticate_v2.json");
    match ClientRequest::parse(v["ws_text"].as_str().unwrap()).unwrap() {
        ClientRequest::AuthenticateV2(req) => *req,
        other => panic!("wrong variant {other:?}"),
    }
}

fn client_key() -> SigningKey {
    let v = load("authenticate_v2.json");
    SigningKey::from_bytes(&hex32(&v, "client_identity_ed25519_secret_hex"))
}

/// The vector request changed by `edit`, then signed again by the client.
fn resigned(edit: impl FnOnce(&mut AuthenticateV2Request)) -> AuthenticateV2Request {
    let mut req = vector_request();
    edit(&mut req);
    req.request_signature = client_key().sign(&req.signed_message()).to_bytes();
    req
}

#[test]
fn vector_request_verifies() {
    let verified = verify_request(vector_request(), TS, SKEW).unwrap();
    assert_eq!(verified.protocol_version(), 6);
    assert_eq!(verified.request_timestamp(), TS);
    assert_eq!(
        verified.client_identity(),
        client_key().verifying_key().to_bytes()
    );
    assert_eq!(verified.verify_with_key(shared_key(), None), Ok(TS));
    assert_eq!(verified.verify_with_key(shared_key(), Some(TS - 1)), Ok(TS));
}

#[test]
fn live_example_verifies_under_the_vector_key() {
    let v = load("authenticate_v2.json");
    let ClientRequest::AuthenticateV2(req) =
        ClientRequest::parse(v["ws_text_live_example"].as_str().unwrap()).unwrap()
    else {
        panic!("wrong variant");
    };
    let ts = req.request_unix_timestamp;
    let verified = verify_request(*req, ts + 5, SKEW).unwrap();
    assert_eq!(verified.verify_with_key(shared_key(), None), Ok(ts));
}

#[test]
fn skew_window_is_inclusive_and_configurable() {
    for now in [TS - SKEW, TS, TS + SKEW] {
        assert!(verify_request(vector_request(), now, SKEW).is_ok(), "{now}");
    }
    for now in [TS - SKEW - 1, TS + SKEW + 1, 0, u64::MAX] {
        assert!(
            matches!(
                verify_request(vector_request(), now, SKEW),
                Err(AuthError::ExcessiveTimestampSkew { .. })
            ),
            "{now}"
        );
    }
    assert!(verify_request(vector_request(), TS + 1000, 1000).is_ok());
    assert!(verify_request(vector_request(), TS + 1, 0).is_err());
}

#[test]
fn skew_error_text_has_the_reference_format() {
    let v = load("authenticate_v2.json");
    // The vector's server time carries nanoseconds; ours is whole seconds.
    let reference = v["verify_timestamp_error_now"].as_str().unwrap();
    let reference = reference.replace("9:26:46.881932873", "9:26:46.0");
    let now = 1_795_598_806; // 2026-11-25 9:26:46 UTC, the generator's clock
    let err = verify_request(vector_request(), now, SKEW).unwrap_err();
    assert_eq!(err.to_string(), reference);
    assert_eq!(
        err.to_string(),
        "the provided request timestamp is excessively skewed. got 2025-06-15 15:06:40.0 \
         +00:00:00 whilst the server time is 2026-11-25 9:26:46.0 +00:00:00"
    );
}

#[test]
fn absurd_timestamps_are_shown_as_the_reference_does() {
    let req = resigned(|r| r.request_unix_timestamp = u64::MAX);
    let err = verify_request(req, TS, SKEW).unwrap_err();
    assert_eq!(
        err,
        AuthError::ExcessiveTimestampSkew {
            received: -1,
            server: TS as i64
        }
    );
    let req = resigned(|r| r.request_unix_timestamp = 1 << 40);
    let err = verify_request(req, TS, SKEW).unwrap_err();
    assert!(
        err.to_string()
            .contains("got 1970-01-01 0:00:00.0 +00:00:00 whilst"),
        "{err}"
    );
}

#[test]
fn version_must_be_4_to_6() {
    for version in [4, 5, 6] {
        let req = resigned(|r| r.protocol_version = version);
        let verified = verify_request(req, TS, SKEW).unwrap();
        assert_eq!(verified.protocol_version(), version);
    }
    for version in [0, 3, 7, 255] {
        let req = resigned(|r| r.protocol_version = version);
        let err = verify_request(req, TS, SKEW).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Attempted to negotiate connection with client using incompatible protocol \
                 version. Ours is 6 and the client reports {version}"
            )
        );
    }
}

#[test]
fn version_is_checked_before_the_clock() {
    let mut req = vector_request();
    req.protocol_version = 3;
    assert!(matches!(
        verify_request(req, 0, SKEW),
        Err(AuthError::IncompatibleProtocol { theirs: 3, .. })
    ));
}

#[test]
fn signature_covers_every_field() {
    let edits: [fn(&mut AuthenticateV2Request); 5] = [
        |r| r.protocol_version = 5,
        |r| r.address_ciphertext[0] ^= 1,
        |r| r.nonce[0] ^= 1,
        |r| r.request_unix_timestamp += 1,
        |r| r.request_signature[10] ^= 1,
    ];
    for edit in edits {
        let mut req = vector_request();
        edit(&mut req);
        let err = verify_request(req, TS, SKEW).unwrap_err();
        assert_eq!(err, AuthError::InvalidSignature);
        assert_eq!(err.to_string(), "failed to verify request signature");
    }
}

#[test]
fn key_checks() {
    let key = shared_key();
    let wrong_key = SharedKey::from_bytes([7; 32]);
    let verified = verify_request(vector_request(), TS, SKEW).unwrap();
    assert_eq!(
        verified.verify_with_key(&wrong_key, None),
        Err(AuthError::MalformedCiphertext)
    );

    let short_nonce = resigned(|r| r.nonce.truncate(11));
    let verified = verify_request(short_nonce, TS, SKEW).unwrap();
    assert_eq!(
        verified.verify_with_key(key, None),
        Err(AuthError::MalformedNonce)
    );

    let truncated = resigned(|r| r.address_ciphertext.truncate(47));
    let verified = verify_request(truncated, TS, SKEW).unwrap();
    assert_eq!(
        verified.verify_with_key(key, None),
        Err(AuthError::MalformedCiphertext)
    );
}

#[test]
fn replay_rule_is_strict() {
    let verified = verify_request(vector_request(), TS, SKEW).unwrap();
    let key = shared_key();
    assert_eq!(
        verified.verify_with_key(key, Some(TS)),
        Err(AuthError::RequestReuse)
    );
    assert_eq!(
        verified.verify_with_key(key, Some(TS + 60)),
        Err(AuthError::RequestReuse)
    );
    let v = load("authenticate_v2.json");
    assert_eq!(
        AuthError::RequestReuse.to_string(),
        v["reuse_error_if_previous_equal"].as_str().unwrap()
    );
}

#[test]
fn stale_session_rule() {
    assert_eq!(check_not_stale(TS, TS), Err(AuthError::StaleAuthentication));
    assert_eq!(
        check_not_stale(TS, TS + 1),
        Err(AuthError::StaleAuthentication)
    );
    assert_eq!(check_not_stale(TS + 1, TS), Ok(()));
    assert_eq!(
        AuthError::StaleAuthentication.to_string(),
        "attempted to overwrite client session with a stale authentication"
    );
}

#[test]
fn error_texts_match_the_reference() {
    let v = load("error_strings.json");
    let e = &v["errors"];
    let cases = [
        (
            AuthError::MalformedCiphertext,
            "AuthenticationFailure::MalformedCiphertext",
        ),
        (
            AuthError::NotRegistered,
            "AuthenticationFailure::NotRegistered",
        ),
        (
            AuthError::RequestReuse,
            "AuthenticationFailure::RequestReuse",
        ),
    ];
    for (err, name) in cases {
        assert_eq!(err.to_string(), e[name].as_str().unwrap(), "{name}");
    }
    assert_eq!(
        AuthError::MalformedNonce.to_string(),
        "the provided nonce (or legacy IV) did not have the expected length"
    );
}
