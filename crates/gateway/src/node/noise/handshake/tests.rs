use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use x25519_dalek::{PublicKey, StaticSecret};

use super::*;

const TIMEOUT: Duration = Duration::from_secs(5);

fn keypair(seed: u8) -> ([u8; 32], [u8; 32]) {
    let secret = StaticSecret::from([seed; 32]);
    (secret.to_bytes(), PublicKey::from(&secret).to_bytes())
}

/// A connected pair of loopback sockets: (initiator's end, responder's end).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let connect = TcpStream::connect(listener.local_addr().unwrap());
    let (connected, accepted) = tokio::join!(connect, listener.accept());
    (connected.unwrap(), accepted.unwrap().0)
}

#[test]
fn the_pattern_parses() {
    assert_eq!(params().name, PARAMS);
}

#[test]
fn psk_is_sha256_of_the_prefix_and_the_responder_key() {
    // SHA-256("NYMTECH_NOISE_dQw4w9WgXcQ" || [0; 32]), computed independently.
    let mut hash = Sha256::new();
    hash.update(b"NYMTECH_NOISE_dQw4w9WgXcQ");
    hash.update([0u8; 32]);
    let expected: [u8; 32] = hash.finalize().into();
    assert_eq!(psk(&[0; 32]), expected);
    assert_ne!(psk(&[1; 32]), expected);
}

#[tokio::test]
async fn both_ends_agree_and_carry_data_both_ways() {
    let (init_secret, init_public) = keypair(1);
    let (resp_secret, resp_public) = keypair(2);
    let (a, b) = pair().await;
    let (initiator, responder) = tokio::join!(
        initiate(a, &init_secret, &resp_public, TIMEOUT),
        respond(b, &resp_secret, &resp_public, TIMEOUT),
    );
    let (mut initiator, mut responder) = (initiator.unwrap(), responder.unwrap());
    // XK: the responder learns the initiator's static key.
    assert_eq!(responder.remote_static(), Some(&init_public[..]));

    // Larger than one frame, so it spans several.
    let message: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let send = async {
        initiator.write_all(&message).await.unwrap();
        initiator.flush().await.unwrap();
        initiator
    };
    let mut received = vec![0u8; message.len()];
    let (mut initiator, _) = tokio::join!(send, responder.read_exact(&mut received));
    assert_eq!(received, message);

    responder.write_all(b"back").await.unwrap();
    responder.flush().await.unwrap();
    let mut back = [0u8; 4];
    initiator.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"back");

    // A clean close reads as the end of the stream.
    initiator.shutdown().await.unwrap();
    drop(initiator);
    let mut rest = Vec::new();
    assert_eq!(responder.read_to_end(&mut rest).await.unwrap(), 0);
}

#[tokio::test]
async fn an_initiator_with_the_wrong_responder_key_fails() {
    let (init_secret, _) = keypair(1);
    let (resp_secret, resp_public) = keypair(2);
    let (_, other_public) = keypair(3);
    let (a, b) = pair().await;
    let (initiator, responder) = tokio::join!(
        initiate(a, &init_secret, &other_public, TIMEOUT),
        respond(b, &resp_secret, &resp_public, TIMEOUT),
    );
    // The responder cannot open the first message (wrong es and wrong PSK); it closes, so
    // the initiator fails too.
    assert!(matches!(responder, Err(HandshakeError::Crypto(_))));
    assert!(initiator.is_err());
}

#[tokio::test]
async fn plain_mix_frames_are_not_a_handshake() {
    let (resp_secret, resp_public) = keypair(2);
    let (mut a, b) = pair().await;
    // A v8 mix frame header and some body.
    a.write_all(&[8, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await.unwrap();
    let result = respond(b, &resp_secret, &resp_public, TIMEOUT).await;
    assert!(matches!(
        result,
        Err(HandshakeError::Header(HeaderError::Version(8)))
    ));
}

#[tokio::test]
async fn a_data_frame_before_the_handshake_is_refused() {
    let (resp_secret, resp_public) = keypair(2);
    let (mut a, b) = pair().await;
    a.write_all(&Header::new(Kind::Data, 48).encode())
        .await
        .unwrap();
    a.write_all(&[0; 48]).await.unwrap();
    let result = respond(b, &resp_secret, &resp_public, TIMEOUT).await;
    assert!(matches!(result, Err(HandshakeError::DataDuringHandshake)));
}

#[tokio::test]
async fn an_oversized_handshake_message_is_refused_before_it_is_read() {
    let (resp_secret, resp_public) = keypair(2);
    let (mut a, b) = pair().await;
    a.write_all(&Header::new(Kind::Handshake, 60_000).encode())
        .await
        .unwrap();
    let result = respond(b, &resp_secret, &resp_public, TIMEOUT).await;
    assert!(matches!(result, Err(HandshakeError::TooLong(60_000))));
}

#[tokio::test]
async fn a_peer_that_stalls_mid_handshake_times_out() {
    let (resp_secret, resp_public) = keypair(2);
    let (mut a, b) = pair().await;
    // Half of a first message, then nothing.
    a.write_all(&Header::new(Kind::Handshake, 48).encode())
        .await
        .unwrap();
    a.write_all(&[0; 10]).await.unwrap();
    let short = Duration::from_millis(300);
    let result = respond(b, &resp_secret, &resp_public, short).await;
    assert!(matches!(result, Err(HandshakeError::Timeout(t)) if t == short));
}

#[tokio::test]
async fn a_tampered_data_frame_is_an_error_not_data() {
    let (init_secret, _) = keypair(1);
    let (resp_secret, resp_public) = keypair(2);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The initiator's bytes pass through this relay, which flips a bit of the first data frame.
    let relay = tokio::spawn(async move {
        let (mut from_initiator, _) = listener.accept().await.unwrap();
        let (mut to_responder, from_responder_side) = pair().await;
        let responder = tokio::spawn(async move {
            let mut noise = respond(from_responder_side, &resp_secret, &resp_public, TIMEOUT)
                .await
                .unwrap();
            let mut buf = [0u8; 16];
            noise.read(&mut buf).await
        });
        // Handshake: 56 bytes in, 56 back, 72 in; then the data frame.
        let mut hs1 = [0u8; 56];
        from_initiator.read_exact(&mut hs1).await.unwrap();
        to_responder.write_all(&hs1).await.unwrap();
        let mut hs2 = [0u8; 56];
        to_responder.read_exact(&mut hs2).await.unwrap();
        from_initiator.write_all(&hs2).await.unwrap();
        let mut rest = [0u8; 72 + 8 + 5 + TAG];
        from_initiator.read_exact(&mut rest).await.unwrap();
        rest[72 + 8] ^= 1;
        to_responder.write_all(&rest).await.unwrap();
        responder.await.unwrap()
    });
    const TAG: usize = super::super::stream::TAG_LEN;
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut noise = initiate(stream, &init_secret, &keypair(2).1, TIMEOUT)
        .await
        .unwrap();
    noise.write_all(b"hello").await.unwrap();
    noise.flush().await.unwrap();
    let read = relay.await.unwrap();
    assert_eq!(read.unwrap_err().kind(), std::io::ErrorKind::InvalidData);
}
