//! Node routing addresses ([`gateway_protocol::routing_address::decode`]): next hops inside
//! MixPackets and the first hop of every SURB-ack.

use std::net::SocketAddr;

use gateway_protocol::routing_address::{
    decode, encode, encoded_len, to_bytes, RoutingAddressError, IPV4_LEN, IPV6_LEN,
};

pub fn run(data: &[u8]) {
    match decode(data) {
        Ok((addr, used)) => {
            assert_eq!(used, encoded_len(&addr));
            assert!(used <= data.len());
            assert_eq!(
                to_bytes(&addr)[..],
                data[..used],
                "re-encoding changed the address"
            );
            let mut appended = vec![0xee];
            encode(&addr, &mut appended);
            assert_eq!(appended[1..], data[..used]);
            match addr {
                SocketAddr::V4(_) => assert_eq!(data[0], 4),
                SocketAddr::V6(v6) => {
                    assert_eq!(data[0], 6);
                    assert_eq!((v6.flowinfo(), v6.scope_id()), (0, 0));
                }
            }
            // bytes after the address never matter
            assert_eq!(decode(&data[..used]), Ok((addr, used)));
        }
        Err(err) => {
            match err {
                RoutingAddressError::Empty => assert!(data.is_empty()),
                RoutingAddressError::InvalidIpVersion(v) => {
                    assert_eq!(data.first(), Some(&v));
                    assert!(v != 4 && v != 6);
                }
                RoutingAddressError::TooShort {
                    ip_version,
                    received,
                    required,
                } => {
                    assert_eq!(data.first(), Some(&ip_version));
                    assert_eq!(received, data.len());
                    let expected = if ip_version == 4 { IPV4_LEN } else { IPV6_LEN };
                    assert_eq!(required, expected);
                    assert!(received < required);
                }
            }
            assert!(!err.to_string().is_empty());
        }
    }
}
