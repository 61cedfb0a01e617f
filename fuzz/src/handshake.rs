//! The registration handshake, gateway side ([`handshake::start`] with message 1, then
//! [`AwaitingClientFinish::finish`] with message 3).
//!
//! Input: a mode byte, then
//! - even mode (raw peer bytes): the length of message 1, message 1, and message 3. The gateway
//!   uses the vector identity, ephemeral key and nonce, so the vector transcript completes.
//! - odd mode (an honest client): the client's keys, salt and nonce, the gateway's ephemeral key
//!   and nonce, and an optional bit to flip in message 3. The handshake must complete with the
//!   client's key exactly when nothing was flipped.

use arbitrary::{Result, Unstructured};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use gateway_protocol::client::handshake::{
    self, AwaitingClientFinish, CLIENT_FINISH_LEN, GATEWAY_MESSAGE_LEN, INIT_LEN,
};
use gateway_protocol::client::shared_key::{KeyUsageError, SharedKey, NONCE_LEN};
use gateway_protocol::client::HandshakeError;
use x25519_dalek::{PublicKey, StaticSecret};

use gateway_protocol::test_support::vectors;

pub fn run(data: &[u8]) {
    crate::by_mode(data, raw, honest_client);
}

fn raw(data: &[u8]) {
    let Some((&init_len, rest)) = data.split_first() else {
        return;
    };
    let (init, finish) = rest.split_at(rest.len().min(usize::from(init_len)));
    let ephemeral = StaticSecret::from(vectors::hex32(
        vectors::file("handshake.json"),
        "gateway_ephemeral_x25519_secret_hex",
    ));
    let vector_reply = vectors::handshake_message(1);
    let nonce: [u8; NONCE_LEN] = vector_reply[GATEWAY_MESSAGE_LEN - NONCE_LEN..]
        .try_into()
        .expect("12 bytes");

    let identity_ok = init
        .get(..32)
        .is_some_and(|id| VerifyingKey::from_bytes(id.try_into().expect("32")).is_ok());
    assert_eq!(
        handshake::client_identity_from_init(init).is_ok(),
        identity_ok
    );

    let (state, reply) =
        match handshake::start(init, vectors::gateway_identity(), ephemeral.clone(), nonce) {
            Ok(started) => started,
            Err(err) => {
                assert_eq!(err, HandshakeError::MalformedRequest);
                assert!(init.len() != INIT_LEN || !identity_ok);
                return;
            }
        };
    assert!(init.len() == INIT_LEN && identity_ok);
    if init == vectors::handshake_message(0) {
        assert_eq!(reply, vector_reply, "message 2 differs from the vector");
    }
    let key = client_view(init, &ephemeral);
    check_reply(init, &reply, &key);
    check_finish(init, &reply, state, finish, &key);
}

/// The key a client holding the ephemeral secret behind message 1 would derive; computed here
/// from the gateway's side of the exchange.
fn client_view(init: &[u8], gateway_ephemeral: &StaticSecret) -> SharedKey {
    let client_ephemeral: [u8; 32] = init[32..64].try_into().expect("32");
    let dh = gateway_ephemeral.diffie_hellman(&PublicKey::from(client_ephemeral));
    handshake::derive_shared_key(dh.as_bytes(), &init[64..INIT_LEN])
}

/// Message 2 is what a client accepts: gʸ, then the gateway's signature over gʸ ‖ gˣ sealed
/// under the shared key, then the nonce.
fn check_reply(init: &[u8], reply: &[u8], key: &SharedKey) {
    assert_eq!(reply.len(), GATEWAY_MESSAGE_LEN);
    let (gateway_ephemeral, rest) = reply.split_at(32);
    let (sealed, nonce) = rest.split_at(rest.len() - NONCE_LEN);
    let signature = key
        .decrypt(nonce.try_into().expect("12"), sealed)
        .expect("the client can open message 2");
    let signature = Signature::from_slice(&signature).expect("64 bytes");
    let signed = [gateway_ephemeral, &init[32..64]].concat();
    vectors::gateway_identity()
        .verifying_key()
        .verify(&signed, &signature)
        .expect("the gateway's signature verifies");
}

/// Feeds message 3 and checks the outcome against what its bytes call for.
fn check_finish(
    init: &[u8],
    reply: &[u8],
    state: AwaitingClientFinish,
    finish: &[u8],
    key: &SharedKey,
) {
    assert_eq!(state.client_identity()[..], init[..32]);
    // whether the client's signature over gˣ ‖ gʸ is inside, checked without the state machine
    let signature_valid = || {
        let (sealed, nonce) = finish.split_at(CLIENT_FINISH_LEN - NONCE_LEN);
        let Ok(plaintext) = key.decrypt(nonce.try_into().expect("12"), sealed) else {
            return None;
        };
        let identity = VerifyingKey::from_bytes(init[..32].try_into().expect("32"))
            .expect("checked in message 1");
        let signature = Signature::from_slice(&plaintext).expect("64 bytes");
        let signed = [&init[32..64], &reply[..32]].concat();
        Some(identity.verify(&signed, &signature).is_ok())
    };
    match state.finish(finish) {
        Ok(registered) => {
            assert_eq!(finish.len(), CLIENT_FINISH_LEN);
            assert_eq!(signature_valid(), Some(true));
            assert_eq!(registered.client_identity[..], init[..32]);
            assert_eq!(&registered.shared_key, key);
        }
        Err(HandshakeError::MalformedResponse) => assert_ne!(finish.len(), CLIENT_FINISH_LEN),
        Err(HandshakeError::KeyUsage(KeyUsageError::AeadFailure)) => {
            assert_eq!(finish.len(), CLIENT_FINISH_LEN);
            assert_eq!(signature_valid(), None);
        }
        Err(HandshakeError::InvalidSignature) => {
            assert_eq!(finish.len(), CLIENT_FINISH_LEN);
            assert_eq!(signature_valid(), Some(false));
        }
        Err(other) => panic!("unexpected handshake error: {other}"),
    }
}

fn honest_client(u: &mut Unstructured<'_>) -> Result<()> {
    let client = SigningKey::from_bytes(&u.arbitrary()?);
    let client_ephemeral = StaticSecret::from(u.arbitrary::<[u8; 32]>()?);
    let salt: [u8; 16] = u.arbitrary()?;
    let client_nonce: [u8; NONCE_LEN] = u.arbitrary()?;
    let gateway_ephemeral = StaticSecret::from(u.arbitrary::<[u8; 32]>()?);
    let gateway_nonce: [u8; NONCE_LEN] = u.arbitrary()?;
    let flip: Option<(u8, u8)> = u.arbitrary()?;

    let gx = PublicKey::from(&client_ephemeral).to_bytes();
    let init = [&client.verifying_key().to_bytes()[..], &gx, &salt].concat();
    let (state, reply) = handshake::start(
        &init,
        vectors::gateway_identity(),
        gateway_ephemeral,
        gateway_nonce,
    )
    .expect("an honest message 1 is accepted");

    // the client's side
    let gy: [u8; 32] = reply[..32].try_into().expect("32");
    let dh = client_ephemeral.diffie_hellman(&PublicKey::from(gy));
    let key = handshake::derive_shared_key(dh.as_bytes(), &salt);
    check_reply(&init, &reply, &key);
    let signature = client.sign(&[gx, gy].concat());
    let mut finish = key
        .encrypt(&client_nonce, &signature.to_bytes())
        .expect("encrypts");
    finish.extend_from_slice(&client_nonce);
    assert_eq!(finish.len(), CLIENT_FINISH_LEN);
    if let Some((position, bit)) = flip {
        finish[usize::from(position) % CLIENT_FINISH_LEN] ^= 1 << (bit % 8);
    }

    match state.finish(&finish) {
        Ok(registered) => {
            assert!(flip.is_none(), "a tampered message 3 was accepted");
            assert_eq!(
                registered.client_identity,
                client.verifying_key().to_bytes()
            );
            assert_eq!(registered.shared_key, key);
        }
        Err(err) => {
            assert!(flip.is_some(), "an honest message 3 was refused: {err}");
            assert!(matches!(
                err,
                HandshakeError::KeyUsage(_) | HandshakeError::InvalidSignature
            ));
        }
    }
    Ok(())
}
