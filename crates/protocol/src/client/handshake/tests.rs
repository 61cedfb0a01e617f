use ed25519_dalek::{Signer, SigningKey};
use rand::rngs::StdRng;
use rand::SeedableRng;
use x25519_dalek::{PublicKey as X25519Public, StaticSecret};

use super::*;
use crate::test_support::vectors::{hex32, hex_field, load};

struct Vectors {
    v: serde_json::Value,
}

impl Vectors {
    fn new() -> Self {
        Self {
            v: load("handshake.json"),
        }
    }
    fn bytes(&self, field: &str) -> Vec<u8> {
        hex_field(&self.v, field)
    }
    fn msg(&self, i: usize) -> Vec<u8> {
        hex_field(&self.v["transcript"][i], "data_hex")
    }
    fn gateway_identity(&self) -> SigningKey {
        SigningKey::from_bytes(&hex32(&self.v, "gateway_identity_ed25519_secret_hex"))
    }
    fn gateway_ephemeral(&self) -> StaticSecret {
        StaticSecret::from(hex32(&self.v, "gateway_ephemeral_x25519_secret_hex"))
    }
    /// The nonce the reference gateway drew for message 2: its last 12 bytes.
    fn msg2_nonce(&self) -> [u8; NONCE_LEN] {
        self.msg(1)[GATEWAY_MESSAGE_LEN - NONCE_LEN..]
            .try_into()
            .unwrap()
    }
    fn start(&self) -> (AwaitingClientFinish, Vec<u8>) {
        start(
            &self.msg(0),
            &self.gateway_identity(),
            self.gateway_ephemeral(),
            self.msg2_nonce(),
        )
        .unwrap()
    }
}

#[test]
fn vector_lengths() {
    let v = Vectors::new();
    assert_eq!(v.msg(0).len(), INIT_LEN);
    assert_eq!(v.msg(1).len(), GATEWAY_MESSAGE_LEN);
    assert_eq!(v.msg(2).len(), CLIENT_FINISH_LEN);
    assert_eq!(v.msg(3), FINALIZATION_SUCCESS);
}

#[test]
fn hkdf_blake3_derives_the_vector_key() {
    let v = Vectors::new();
    let key = derive_shared_key(
        &hex32(&v.v, "x25519_shared_secret_hex"),
        &v.bytes("hkdf_salt_hex"),
    );
    assert_eq!(key.as_bytes().to_vec(), v.bytes("derived_shared_key_hex"));
}

#[test]
fn message_2_equals_the_vector_given_its_ephemeral_and_nonce() {
    let v = Vectors::new();
    let (state, msg2) = v.start();
    assert_eq!(msg2, v.msg(1));
    assert_eq!(msg2[..32], v.bytes("gateway_ephemeral_x25519_public_hex"));
    assert_eq!(
        state.client_identity().to_vec(),
        v.bytes("client_identity_ed25519_public_hex")
    );
}

#[test]
fn message_3_completes_with_the_vector_key() {
    let v = Vectors::new();
    let (state, _) = v.start();
    let done = state.finish(&v.msg(2)).unwrap();
    assert_eq!(
        done.shared_key.as_bytes().to_vec(),
        v.bytes("derived_shared_key_hex")
    );
    assert_eq!(
        done.client_identity.to_vec(),
        v.bytes("client_identity_ed25519_public_hex")
    );
}

#[test]
fn tampered_message_3_fails() {
    let v = Vectors::new();
    for i in [0, 40, 79, 80, 91] {
        let mut msg3 = v.msg(2);
        msg3[i] ^= 0x01;
        let (state, _) = v.start();
        let err = state.finish(&msg3).unwrap_err();
        assert_eq!(err, HandshakeError::KeyUsage(KeyUsageError::AeadFailure));
        assert_eq!(
            err.to_string(),
            "failed to either encrypt or decrypt provided message"
        );
    }
    for len in [0, 91, 93] {
        let mut msg3 = v.msg(2);
        msg3.resize(len, 0);
        let (state, _) = v.start();
        let err = state.finish(&msg3).unwrap_err();
        assert_eq!(err, HandshakeError::MalformedResponse);
        assert_eq!(err.to_string(), "received response was malformed:");
    }
}

#[test]
fn wrong_signature_under_a_valid_seal_fails() {
    let v = Vectors::new();
    let (state, msg2) = v.start();
    let key = SharedKey::try_from_slice(&v.bytes("derived_shared_key_hex")).unwrap();
    let client_eph: [u8; 32] = v.msg(0)[32..64].try_into().unwrap();
    let gateway_eph: [u8; 32] = msg2[..32].try_into().unwrap();
    // Signed by someone else, and signed by the client over the wrong order.
    let stranger = SigningKey::from_bytes(&[0x33; 32]);
    let client = SigningKey::from_bytes(&hex32(&v.v, "client_identity_ed25519_secret_hex"));
    for signature in [
        stranger.sign(&concat(&client_eph, &gateway_eph)),
        client.sign(&concat(&gateway_eph, &client_eph)),
    ] {
        let nonce = [5u8; NONCE_LEN];
        let mut msg3 = key.encrypt(&nonce, &signature.to_bytes()).unwrap();
        msg3.extend_from_slice(&nonce);
        let (state, _) = v.start();
        let err = state.finish(&msg3).unwrap_err();
        assert_eq!(err, HandshakeError::InvalidSignature);
        assert_eq!(err.to_string(), "received invalid signature");
    }
    drop(state);
}

#[test]
fn malformed_message_1_is_refused() {
    let v = Vectors::new();
    let good = v.msg(0);
    let mut not_a_point = good.clone();
    not_a_point[..32].fill(0);
    not_a_point[0] = 2; // y = 2 has no matching x
    let cases = [
        Vec::new(),
        good[..64].to_vec(), // the legacy, salt-less message
        good[..79].to_vec(),
        [good.clone(), vec![0]].concat(),
        not_a_point,
    ];
    for init in cases {
        let err = start(
            &init,
            &v.gateway_identity(),
            v.gateway_ephemeral(),
            [0; NONCE_LEN],
        )
        .unwrap_err();
        assert_eq!(err, HandshakeError::MalformedRequest);
        assert_eq!(err.to_string(), "sent request was malformed");
    }
}

#[test]
fn identity_is_readable_before_the_handshake() {
    let v = Vectors::new();
    let want = v.bytes("client_identity_ed25519_public_hex");
    assert_eq!(client_identity_from_init(&v.msg(0)).unwrap().to_vec(), want);
    assert_eq!(client_identity_from_init(&want).unwrap().to_vec(), want);
    assert_eq!(
        client_identity_from_init(&want[..31]),
        Err(HandshakeError::MalformedRequest)
    );
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2; // y = 2 has no matching x
    assert_eq!(
        client_identity_from_init(&not_a_point),
        Err(HandshakeError::MalformedRequest)
    );
}

/// Plays the client side of a whole handshake against `start_with_rng`.
#[test]
fn full_handshake_with_a_random_gateway() {
    let mut rng = StdRng::seed_from_u64(7);
    let gateway_identity = SigningKey::from_bytes(&[0x22; 32]);
    let client_identity = SigningKey::from_bytes(&[0x11; 32]);
    let client_secret = StaticSecret::from([0x44; 32]);
    let client_eph = X25519Public::from(&client_secret).to_bytes();
    let salt = [0x55; SALT_LEN];
    let init = [
        client_identity.verifying_key().to_bytes().as_slice(),
        &client_eph,
        &salt,
    ]
    .concat();

    let (state, msg2) = start_with_rng(&init, &gateway_identity, &mut rng).unwrap();
    assert_eq!(msg2.len(), GATEWAY_MESSAGE_LEN);

    // Client: derive the key, check the gateway's signature, send its own.
    let gateway_eph: [u8; 32] = msg2[..32].try_into().unwrap();
    let dh = client_secret.diffie_hellman(&X25519Public::from(gateway_eph));
    let key = derive_shared_key(dh.as_bytes(), &salt);
    let nonce: [u8; NONCE_LEN] = msg2[32 + 80..].try_into().unwrap();
    let sig = key.decrypt(&nonce, &msg2[32..32 + 80]).unwrap();
    gateway_identity
        .verifying_key()
        .verify(
            &concat(&gateway_eph, &client_eph),
            &Signature::from_bytes(&sig.try_into().unwrap()),
        )
        .unwrap();
    let nonce = [6u8; NONCE_LEN];
    let mut msg3 = key
        .encrypt(
            &nonce,
            &client_identity
                .sign(&concat(&client_eph, &gateway_eph))
                .to_bytes(),
        )
        .unwrap();
    msg3.extend_from_slice(&nonce);

    let done = state.finish(&msg3).unwrap();
    assert_eq!(done.shared_key, key);
    assert_eq!(
        done.client_identity,
        client_identity.verifying_key().to_bytes()
    );

    // A second run draws a different ephemeral key.
    let (_, other) = start_with_rng(&init, &gateway_identity, &mut rng).unwrap();
    assert_ne!(other[..32], msg2[..32]);
}

#[test]
fn error_texts_match_the_reference() {
    let v = load("error_strings.json");
    let e = &v["errors"];
    let cases = [
        (
            HandshakeError::InvalidSignature,
            "HandshakeError::InvalidSignature",
        ),
        (
            HandshakeError::MalformedRequest,
            "HandshakeError::MalformedRequest",
        ),
        (HandshakeError::Timeout, "HandshakeError::Timeout"),
    ];
    for (err, name) in cases {
        assert_eq!(err.to_string(), e[name].as_str().unwrap(), "{name}");
    }
    assert_eq!(
        HandshakeError::Remote("boom".into()).to_string(),
        "error on the remote: boom"
    );
    assert_eq!(
        HandshakeError::Network.to_string(),
        "encountered network error"
    );
}

#[test]
fn debug_hides_the_key() {
    let v = Vectors::new();
    let (state, _) = v.start();
    let shown = format!("{state:?}");
    assert!(!shown.contains("819922") && !shown.contains("shared_key"));
}
