//! Sans-IO wire protocol of the gateway.
//!
//! Nothing in this crate touches a socket, a file or a clock: inputs are bytes (and, where time
//! matters, a `now` passed in), outputs are bytes, typed values and typed errors. The gateway
//! crate does all I/O around it.
//!
//! # Layout
//! Mix side (TCP port 1789):
//! - [`packet_size`]: the Sphinx packet sizes and their wire ids.
//! - [`framing`]: v7/v8 frame headers and the frame decoder/encoder.
//! - [`routing_address`]: the node routing address (IP + port) encoding.
//! - [`mix_packet`]: a Sphinx packet plus its next hop, as clients submit and acks travel.
//! - [`final_hop`]: unwrapping a final-hop Sphinx packet and splitting off its SURB-ack.
//! - [`fast_final_hop`]: the same results in a little over half the time (aws-lc X25519, the
//!   rest of the hop implemented here); its tests prove it identical to [`final_hop`].
//!
//! Client side (websocket port 9000):
//! - [`client`]: JSON control messages, the registration handshake, `authenticateV2`, and the
//!   encrypted binary frames.
//!
//! Behind the `test-support` feature (and in this crate's tests):
//! - `test_support`: the honest Sphinx packet builder and the test-vector loaders that tests,
//!   benchmarks, the fuzzer and the load generator share.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod fast_final_hop;
pub mod final_hop;
pub mod framing;
pub mod mix_packet;
pub mod packet_size;
pub mod routing_address;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
// The name the tests of final_hop and fast_final_hop use.
#[cfg(test)]
use test_support::vectors as test_vectors;
