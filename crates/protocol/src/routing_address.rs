//! The node routing address: how an IP socket address of a mix node or gateway is written inside
//! MixPackets, SURB-acks and Sphinx headers.
//!
//! ```text
//! IPv4: 0x04 ‖ port (u16 BE) ‖ 4 address bytes  = 7 bytes
//! IPv6: 0x06 ‖ port (u16 BE) ‖ 16 address bytes = 19 bytes
//! ```
//! Where the field is wider (19 bytes in a SURB-ack, 32 in a Sphinx header) the encoding is
//! zero-padded, and decoding reads from the start and ignores what follows.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use thiserror::Error;

/// Encoded length of an IPv4 address.
pub const IPV4_LEN: usize = 7;
/// Encoded length of an IPv6 address.
pub const IPV6_LEN: usize = 19;
/// The longest encoding (IPv6); the width of the address field of a SURB-ack.
pub const MAX_LEN: usize = IPV6_LEN;

const IPV4_TAG: u8 = 4;
const IPV6_TAG: u8 = 6;

/// Why bytes are not a routing address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum RoutingAddressError {
    /// The input was empty.
    #[error("no bytes to read a routing address from")]
    Empty,
    /// The input ended before the address did.
    #[error("an IPv{ip_version} routing address needs {required} bytes, only {received} given")]
    TooShort {
        /// The IP version named by the first byte.
        ip_version: u8,
        /// Bytes available.
        received: usize,
        /// Bytes this IP version needs.
        required: usize,
    },
    /// The first byte is neither 4 nor 6.
    #[error(
        "{0} is not a valid version of the Internet Protocol (IP). Expected either '4' or '6'"
    )]
    InvalidIpVersion(u8),
}

/// The encoded length of `addr`.
pub fn encoded_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => IPV4_LEN,
        SocketAddr::V6(_) => IPV6_LEN,
    }
}

/// Appends the (unpadded) encoding of `addr` to `out`.
pub fn encode(addr: &SocketAddr, out: &mut Vec<u8>) {
    match addr {
        SocketAddr::V4(v4) => {
            out.push(IPV4_TAG);
            out.extend_from_slice(&v4.port().to_be_bytes());
            out.extend_from_slice(&v4.ip().octets());
        }
        SocketAddr::V6(v6) => {
            out.push(IPV6_TAG);
            out.extend_from_slice(&v6.port().to_be_bytes());
            out.extend_from_slice(&v6.ip().octets());
        }
    }
}

/// The (unpadded) encoding of `addr`.
pub fn to_bytes(addr: &SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(addr));
    encode(addr, &mut out);
    out
}

/// Reads an address from the start of `bytes` and returns it with the number of bytes it took.
/// Anything after it (padding, or the rest of a message) is left alone.
pub fn decode(bytes: &[u8]) -> Result<(SocketAddr, usize), RoutingAddressError> {
    let (&tag, rest) = bytes.split_first().ok_or(RoutingAddressError::Empty)?;
    let required = match tag {
        IPV4_TAG => IPV4_LEN,
        IPV6_TAG => IPV6_LEN,
        other => return Err(RoutingAddressError::InvalidIpVersion(other)),
    };
    let too_short = RoutingAddressError::TooShort {
        ip_version: tag,
        received: bytes.len(),
        required,
    };
    let Some((port, ip)) = rest.split_first_chunk::<2>() else {
        return Err(too_short);
    };
    let port = u16::from_be_bytes(*port);
    let addr = if tag == IPV4_TAG {
        let Some(octets) = ip.first_chunk::<4>() else {
            return Err(too_short);
        };
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(*octets), port))
    } else {
        let Some(octets) = ip.first_chunk::<16>() else {
            return Err(too_short);
        };
        SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(*octets), port, 0, 0))
    };
    Ok((addr, required))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        ::hex::decode(s).expect("hex")
    }

    #[test]
    fn vector_encodings() {
        let v = crate::test_support::vectors::file("mix_packet.json");
        let encodings = v["encodings"].as_array().expect("encodings");
        assert_eq!(encodings.len(), 2);
        for e in encodings {
            let addr: SocketAddr = e["next_hop"].as_str().expect("hop").parse().expect("addr");
            let bytes = hex(e["routing_address_bytes_hex"].as_str().expect("bytes"));
            assert_eq!(to_bytes(&addr), bytes);
            assert_eq!(encoded_len(&addr), bytes.len());
            assert_eq!(decode(&bytes), Ok((addr, bytes.len())));
        }
    }

    #[test]
    fn spec_example() {
        let addr: SocketAddr = "1.2.3.4:1789".parse().expect("addr");
        assert_eq!(to_bytes(&addr), hex("0406fd01020304"));
    }

    #[test]
    fn padded_input_decodes_from_the_start() {
        let addr: SocketAddr = "192.0.2.10:1789".parse().expect("addr");
        let mut padded = to_bytes(&addr);
        padded.resize(32, 0);
        assert_eq!(decode(&padded), Ok((addr, IPV4_LEN)));
    }

    #[test]
    fn errors() {
        assert_eq!(decode(&[]), Err(RoutingAddressError::Empty));
        assert_eq!(
            decode(&[5, 0, 1]),
            Err(RoutingAddressError::InvalidIpVersion(5))
        );
        assert_eq!(
            RoutingAddressError::InvalidIpVersion(5).to_string(),
            "5 is not a valid version of the Internet Protocol (IP). Expected either '4' or '6'"
        );
        assert_eq!(decode(&[0]), Err(RoutingAddressError::InvalidIpVersion(0)));
        for len in 1..IPV4_LEN {
            let short = &hex("0406fd01020304")[..len];
            assert_eq!(
                decode(short),
                Err(RoutingAddressError::TooShort {
                    ip_version: 4,
                    received: len,
                    required: IPV4_LEN
                })
            );
        }
        let v6 = hex("0606fd20010db8000000000000000000000001");
        for len in 1..IPV6_LEN {
            assert!(matches!(
                decode(&v6[..len]),
                Err(RoutingAddressError::TooShort { ip_version: 6, received, required: IPV6_LEN })
                    if received == len
            ));
        }
    }

    /// A small deterministic generator, so the round-trip test covers many addresses without a
    /// property-testing dependency.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn round_trip_many() {
        let mut state = 0x9e37_79b9_7f4a_7c15;
        for i in 0..2000 {
            let r = xorshift(&mut state);
            let port = (r >> 48) as u16;
            let addr = if i % 2 == 0 {
                SocketAddr::from((Ipv4Addr::from(r as u32), port))
            } else {
                let hi = xorshift(&mut state);
                let ip = Ipv6Addr::from((u128::from(hi) << 64) | u128::from(r));
                SocketAddr::from((ip, port))
            };
            let mut bytes = to_bytes(&addr);
            assert_eq!(bytes.len(), encoded_len(&addr));
            assert_eq!(decode(&bytes), Ok((addr, bytes.len())));
            // trailing bytes never change the result
            bytes.extend_from_slice(&r.to_be_bytes());
            assert_eq!(decode(&bytes), Ok((addr, encoded_len(&addr))));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_reencode() {
        let mut state = 42;
        for len in 0..40 {
            for _ in 0..200 {
                let mut bytes: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8).collect();
                if let Some(first) = bytes.first_mut() {
                    // bias towards valid tags so the success path is exercised too
                    if xorshift(&mut state).is_multiple_of(2) {
                        *first = if xorshift(&mut state).is_multiple_of(2) {
                            4
                        } else {
                            6
                        };
                    }
                }
                if let Ok((addr, used)) = decode(&bytes) {
                    assert_eq!(to_bytes(&addr), bytes[..used]);
                }
            }
        }
    }
}
