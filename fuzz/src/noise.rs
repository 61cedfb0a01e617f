//! Noise on the mix port (`node::noise`): what a peer can send the responder, before and after
//! the handshake.
//!
//! Mode 0 (raw): the bytes are everything an initiator sends. Without the responder's key
//! material nothing completes the handshake, so it must fail, and with the error the bytes call
//! for: a foreign first header names its version, pattern or type; a data frame is refused as
//! such; an oversized message is refused by its length.
//!
//! Mode 1 (structured): a real handshake between the gateway's initiator and responder, then
//! either the initiator's honest writes (chunks the fuzzer picks), which must arrive whole and in
//! order, or bytes the fuzzer writes under the Noise layer, which must never read as plaintext.

use std::time::Duration;

use arbitrary::Unstructured;
use nym_gateway::node::noise::frame::{Header, HeaderError, Kind, HEADER_LEN};
use nym_gateway::node::noise::handshake::{self, HandshakeError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x25519_dalek::{PublicKey, StaticSecret};

/// Generous: inputs end with the writer's close, so nothing waits for this.
const TIMEOUT: Duration = Duration::from_secs(5);
const INITIATOR: [u8; 32] = [0x11; 32];
const RESPONDER: [u8; 32] = [0x22; 32];

fn responder_public() -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(RESPONDER)).to_bytes()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime")
}

/// Runs the target on `data`.
pub fn run(data: &[u8]) {
    crate::by_mode(data, raw, structured);
}

fn raw(data: &[u8]) {
    let result = runtime().block_on(async {
        let (mut peer, ours) = tokio::io::duplex(64 * 1024);
        let _ = peer.write_all(data).await;
        let _ = peer.shutdown().await;
        handshake::respond(ours, &RESPONDER, &responder_public(), TIMEOUT).await
    });
    let Err(err) = result else {
        panic!("raw bytes completed a Noise handshake")
    };
    let Some(first) = data.first_chunk::<HEADER_LEN>() else {
        assert!(matches!(err, HandshakeError::Io(_)), "short input: {err}");
        return;
    };
    match Header::decode(first) {
        Err(expected) => {
            assert!(
                matches!(err, HandshakeError::Header(e) if e == expected),
                "{err}"
            );
            assert!(!matches!(expected, HeaderError::Version(1)));
        }
        Ok(h) if h.kind == Kind::Data => {
            assert!(matches!(err, HandshakeError::DataDuringHandshake), "{err}")
        }
        Ok(h) if usize::from(h.len) > 1024 => {
            assert!(
                matches!(err, HandshakeError::TooLong(n) if n == usize::from(h.len)),
                "{err}"
            )
        }
        // A handshake message of a possible length: what fails later (the cryptography, the
        // stream's end, or the next message's header) is the input's choice.
        Ok(_) => {}
    }
}

fn structured(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let honest = u.arbitrary::<bool>()?;
    let chunks: Vec<Vec<u8>> = u.arbitrary()?;
    runtime().block_on(async move {
        let (a, b) = tokio::io::duplex(256 * 1024);
        let public = responder_public();
        let (initiator, responder) = tokio::join!(
            handshake::initiate(a, &INITIATOR, &public, TIMEOUT),
            handshake::respond(b, &RESPONDER, &public, TIMEOUT),
        );
        let mut initiator = initiator.expect("honest initiator");
        let mut responder = responder.expect("honest responder");
        if honest {
            let sent: Vec<u8> = chunks.concat();
            let write = async {
                for chunk in &chunks {
                    initiator.write_all(chunk).await.unwrap();
                }
                initiator.flush().await.unwrap();
                initiator.shutdown().await.unwrap();
            };
            let mut received = Vec::new();
            let (_, read) = tokio::join!(write, responder.read_to_end(&mut received));
            read.expect("an honest stream reads to its end");
            assert_eq!(received, sent);
        } else {
            let mut under = initiator.into_inner();
            let write = async {
                for chunk in &chunks {
                    let _ = under.write_all(chunk).await;
                }
                let _ = under.shutdown().await;
            };
            let mut received = Vec::new();
            let (_, read) = tokio::join!(write, responder.read_to_end(&mut received));
            // Forged bytes never read as plaintext: an error, or an empty stream.
            assert!(
                received.is_empty(),
                "forged bytes read as {} plaintext bytes",
                received.len()
            );
            if chunks.iter().any(|c| !c.is_empty()) {
                assert!(
                    read.is_err(),
                    "a non-empty forged stream read as a clean end"
                );
            }
        }
    });
    Ok(())
}
