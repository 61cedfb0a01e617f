use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::*;

const NODE: &str = "192.0.2.10";

fn noise(mode: NoiseMode) -> Noise {
    let n = Noise::new(mode, NoiseKey::generate().unwrap(), Duration::from_secs(1));
    let mut peers = NoisePeers::default();
    peers.insert(&[NODE.parse().unwrap()], 1789, [7; 32]);
    n.set_peers(peers);
    n
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn auto_follows_nym_node_and_accepts_noise_from_unlisted_peers() {
    let n = noise(NoiseMode::Auto);
    let listed = ip(NODE);
    let unlisted = ip("198.51.100.1");
    assert_eq!(n.ingress(listed, frame::VERSION), Ingress::Noise);
    assert_eq!(n.ingress(listed, 8), Ingress::NoiseRequired);
    assert_eq!(n.ingress(listed, 7), Ingress::NoiseRequired);
    assert_eq!(n.ingress(unlisted, 8), Ingress::Plain);
    assert_eq!(n.ingress(unlisted, frame::VERSION), Ingress::Noise);
    // An IPv4 peer seen on a dual-stack socket.
    assert_eq!(
        n.ingress(ip("::ffff:192.0.2.10"), 7),
        Ingress::NoiseRequired
    );

    let listed_port: SocketAddr = format!("{NODE}:1789").parse().unwrap();
    let other_port: SocketAddr = format!("{NODE}:1790").parse().unwrap();
    assert_eq!(n.egress(listed_port), Egress::Noise([7; 32]));
    assert_eq!(n.egress(other_port), Egress::Plain);
    assert!(!n.refuses(other_port));
    assert!(n.announced_key().is_some());
}

#[test]
fn required_takes_and_makes_only_noise() {
    let n = noise(NoiseMode::Required);
    assert_eq!(n.ingress(ip("198.51.100.1"), 8), Ingress::NoiseRequired);
    assert_eq!(
        n.ingress(ip("198.51.100.1"), frame::VERSION),
        Ingress::Noise
    );
    let unlisted: SocketAddr = "198.51.100.1:1789".parse().unwrap();
    assert_eq!(n.egress(unlisted), Egress::NoKey);
    assert!(n.refuses(unlisted));
    assert!(!n.refuses(format!("{NODE}:1789").parse().unwrap()));
    assert!(n.announced_key().is_some());
}

#[test]
fn off_announces_nothing_and_speaks_plain_tcp() {
    let n = noise(NoiseMode::Off);
    assert_eq!(n.announced_key(), None);
    assert_eq!(n.ingress(ip(NODE), 8), Ingress::Plain);
    let listed: SocketAddr = format!("{NODE}:1789").parse().unwrap();
    assert_eq!(n.egress(listed), Egress::Plain);
}

#[test]
fn a_semi_skimmed_page_yields_the_keys_nym_node_would_use() {
    let key = bs58::encode([5u8; 32]).into_string();
    let body = format!(
        r#"{{"status":null,"refreshed_at":"2026-01-01T00:00:00Z","nodes":{{
            "pagination":{{"total":4,"page":0,"size":4}},
            "data":[
              {{"basic":{{"node_id":1,"ed25519_identity_pubkey":"x","ip_addresses":["192.0.2.1","2001:db8::1"],"mix_port":1789}},
                "x25519_noise_versioned_key":{{"supported_version":1,"x25519_pubkey":"{key}"}}}},
              {{"basic":{{"ip_addresses":["192.0.2.2"],"mix_port":1789}},"x25519_noise_versioned_key":null}},
              {{"basic":{{"ip_addresses":["192.0.2.3"],"mix_port":1789}},
                "x25519_noise_versioned_key":{{"supported_version":2,"x25519_pubkey":"{key}"}}}},
              {{"basic":{{"ip_addresses":["192.0.2.4"],"mix_port":1789}},
                "x25519_noise_versioned_key":{{"supported_version":1,"x25519_pubkey":"not-bs58!"}}}}
            ]}}}}"#
    );
    let mut peers = NoisePeers::default();
    let page = NoisePeers::parse_page(body.as_bytes(), &mut peers).unwrap();
    assert_eq!((page.listed, page.total), (4, 4));
    assert_eq!(
        peers.key_of("192.0.2.1:1789".parse().unwrap()),
        Some([5; 32])
    );
    assert_eq!(
        peers.key_of("[2001:db8::1]:1789".parse().unwrap()),
        Some([5; 32])
    );
    // No key, an unknown version, a malformed key: plain TCP, as nym-node.
    for ip in ["192.0.2.2", "192.0.2.3", "192.0.2.4"] {
        assert!(!peers.announces(ip.parse().unwrap()), "{ip}");
    }
    assert_eq!(peers.len(), 2);
}

#[test]
fn a_page_that_is_not_a_node_list_is_an_error() {
    let mut peers = NoisePeers::default();
    for body in [&b"{}"[..], b"null", b"<html>", br#"{"nodes":{"data":[]}}"#] {
        assert!(NoisePeers::parse_page(body, &mut peers).is_err());
    }
    assert!(peers.is_empty());
}
