//! What the gateway's tests, the load generator, the fuzzer and the benchmarks share to play the
//! gateway's peers, behind the `test-support` feature (off by default: the gateway binary does
//! not carry it).
//!
//! - [`sphinx`]: Sphinx packets built with `sphinx-packet` as an honest client builds them
//!   (final hops with a SURB-ack, forward hops), and their mix-port frames.
//! - [`vectors`]: the files of `testdata/vectors/`, compiled in, and the keys they fix.

pub mod sphinx;
pub mod vectors;
