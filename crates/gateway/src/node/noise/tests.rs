use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::time::Duration;

use super::directory::DirectorySettings;
use super::*;
use crate::config::Tuning;
use crate::node::test_http::Server;

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

/// A semi-skimmed page listing one node, 192.0.2.1:1789 with key `[5; 32]`, of `total`.
fn one_node_page(total: usize) -> String {
    let key = bs58::encode([5u8; 32]).into_string();
    format!(
        r#"{{"nodes":{{"pagination":{{"total":{total},"page":0,"size":1}},"data":[
            {{"basic":{{"ip_addresses":["192.0.2.1"],"mix_port":1789}},
              "x25519_noise_versioned_key":{{"supported_version":1,"x25519_pubkey":"{key}"}}}}]}}}}"#
    )
}

fn directory_settings(max_answer_size: usize, max_pages: usize) -> DirectorySettings {
    let tuning = Tuning {
        noise_directory_max_answer_size: NonZeroUsize::new(max_answer_size).unwrap(),
        noise_directory_max_pages: NonZeroUsize::new(max_pages).unwrap(),
        ..Tuning::default()
    };
    DirectorySettings::from_config(&tuning)
}

#[test]
fn a_directory_page_over_the_configured_size_fails_the_read() {
    let page = one_node_page(1);
    let api = Server::answering(page.clone());
    let apis = [api.url.clone()];

    let peers = directory::fetch(&apis, &directory_settings(page.len(), 64)).unwrap();
    assert_eq!(
        peers.key_of("192.0.2.1:1789".parse().unwrap()),
        Some([5; 32])
    );
    let err = directory::fetch(&apis, &directory_settings(page.len() - 1, 64)).unwrap_err();
    assert_eq!(
        err,
        format!(
            "{}: the response body is larger than request limit: {}",
            api.url,
            page.len() - 1
        )
    );
}

#[test]
fn the_directory_is_read_up_to_the_configured_number_of_pages() {
    // Every page lists one node of a thousand: only the page limit ends the read.
    let api = Server::answering(one_node_page(1000));
    let apis = [api.url.clone()];
    let peers = directory::fetch(&apis, &directory_settings(64 * 1024, 3)).unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(api.requests(), 3);
}
