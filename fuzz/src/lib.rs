//! The fuzzing module: one submodule per fuzz target, each with a `run(data)` that the target in
//! `fuzz_targets/` calls. Every `run` checks invariants (round-trips, lengths, which error for
//! which input), not only that nothing panics.
//!
//! # Layout
//! Mix port (1789):
//! - [`framing`]: frame decoding, whole and in chunks.
//! - [`routing_address`]: node addresses (IP + port).
//! - [`mix_packet`]: MixPacket v1/v2 as clients submit them.
//! - [`surb_ack`]: splitting a final-hop plaintext into SURB-ack and message.
//! - [`final_hop`]: unwrapping arbitrary packets with the gateway's vector key.
//! - [`final_hop_build`]: unwrapping packets an honest sender built from arbitrary contents.
//! - [`fast_final_hop`]: the fast final-hop path against the reference path, result for result.
//! - [`noise`]: the Noise handshake and stream, responder side.
//! - [`x25519_batch`]: batched X25519 (the fast path's α of many packets), every backend
//!   against x25519-dalek.
//!
//! Client port (9000):
//! - [`client_request`]: the JSON text requests.
//! - [`handshake`]: registration messages 1 and 3, gateway side.
//! - [`authenticate`]: `authenticateV2` verification.
//! - [`binary_frame`]: encrypted binary frames and the MixPackets inside them.
//! - [`encrypted_request`]: `encryptedRequest` and its plaintext.
//! - [`ticket`]: the `ecashCredential` plaintext (a zk-nym ticket).
//! - [`upgrade_mode`]: the published upgrade-mode attestation and `upgradeModeJWT`.
//!
//! Operator files and the statistics service:
//! - [`config`]: `config.toml` parsing, validation and rendering.
//! - [`pem_keys`]: the four PEM key files.
//! - [`replay_file`]: the saved replay filter, as loaded at start.
//! - [`statistics_report`]: the statistics service's request bodies.
//!
//! The fixed keys come from `gateway_protocol::test_support::vectors` (`testdata/vectors/`);
//! `honest_packet` picks what an honest sender puts in a packet for them, and
//! `gateway_protocol::test_support::sphinx` builds it.
#![forbid(unsafe_code)]

pub mod authenticate;
pub mod binary_frame;
pub mod client_request;
pub mod config;
pub mod encrypted_request;
pub mod fast_final_hop;
pub mod final_hop;
pub mod final_hop_build;
pub mod framing;
pub mod handshake;
mod honest_packet;
pub mod mix_packet;
pub mod noise;
pub mod pem_keys;
pub mod replay_file;
pub mod routing_address;
pub mod statistics_report;
pub mod surb_ack;
pub mod ticket;
pub mod upgrade_mode;
pub mod x25519_batch;

use arbitrary::Unstructured;
use gateway_protocol::client::ClientRequest;
use gateway_protocol::framing::KeyRotation;

/// Reads the mode byte the two-mode targets start with: an even mode hands the rest of `data`
/// to `raw` as it is, an odd one to `structured` (running out of bytes there ends the input
/// quietly). Empty input does nothing.
fn by_mode(
    data: &[u8],
    raw: impl FnOnce(&[u8]),
    structured: impl FnOnce(&mut Unstructured<'_>) -> arbitrary::Result<()>,
) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        raw(rest);
    } else {
        let _ = structured(&mut Unstructured::new(rest));
    }
}

/// The client request in a websocket text frame of `data`, if it is UTF-8 and parses.
fn text_request(data: &[u8]) -> Option<ClientRequest> {
    ClientRequest::parse(std::str::from_utf8(data).ok()?).ok()
}

/// The key rotation named by `n` modulo 3.
fn rotation(n: u8) -> KeyRotation {
    match n % 3 {
        0 => KeyRotation::Unknown,
        1 => KeyRotation::Odd,
        _ => KeyRotation::Even,
    }
}

// Operator input read at start-up (listed here, after the others):
// - `env_file`: the `--config-env-file` dotenv file and the network it gives.
// - `validator_gateways`: the validator API's `/v1/gateways` body and the duplicate-host decision.
pub mod env_file;
pub mod validator_gateways;
