//! Writes the seed corpora in `seeds/<target>/` from `testdata/vectors/` (and, for the operator
//! files, from what `init` writes). Run from `fuzz/`: `cargo run --example build_corpus`.
//! Each target's folder is emptied first, so the seeds are exactly what this program makes.

use std::fs;
use std::path::{Path, PathBuf};

use gateway_fuzz::{pem_keys, replay_file};
use gateway_protocol::final_hop::{self, Hop};
use gateway_protocol::framing::KeyRotation;
use gateway_protocol::test_support::vectors;
use nym_gateway::config::Config;
use nym_gateway::keys::KeyPaths;
use nym_gateway::network::Network;
use serde_json::Value;

struct Seeds {
    dir: PathBuf,
}

impl Seeds {
    fn new(target: &str) -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("seeds")
            .join(target);
        if dir.exists() {
            fs::remove_dir_all(&dir).expect("empties the seed folder");
        }
        fs::create_dir_all(&dir).expect("creates the seed folder");
        Self { dir }
    }

    fn add(&self, name: &str, parts: &[&[u8]]) {
        fs::write(self.dir.join(name), parts.concat()).expect("writes a seed");
    }
}

fn text<'a>(value: &'a Value, key: &str) -> &'a [u8] {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no text field {key}"))
        .as_bytes()
}

fn main() {
    let fh = vectors::file("final_hop.json");
    let mp = vectors::file("mix_packet.json");
    let hs = vectors::file("handshake.json");
    let auth = vectors::file("authenticate_v2.json");
    let bin = vectors::file("binary_frames.json");
    let json = vectors::file("json_messages.json");
    let hex = vectors::hex_field;

    let framed_v7 = hex(fh, "framed_v7_hex");
    let framed_v8 = hex(fh, "framed_v8_even_hex");
    let forward = hex(fh, "forward_hop_packet_framed_v7_hex_gateway_must_reject");
    let ack_framed = hex(
        &fh["expected_results_for_v7_and_v8"][0],
        "ack_framed_v7_hex",
    );
    let ack_packet = &ack_framed[3..];

    let s = Seeds::new("framing");
    s.add("regular_v7", &[&[0xff], &framed_v7]);
    s.add("regular_v8_even_chunked", &[&[0x10], &framed_v8]);
    s.add(
        "two_acks_v7_v8",
        &[&[0x40], &ack_framed, &[8, 2, 0, 1], ack_packet],
    );
    s.add("ack_then_partial", &[&[0x00], &ack_framed, &[8, 1, 0]]);
    for (name, header) in [
        ("legacy_version", &[6u8, 1, 0][..]),
        ("version_9", &[9, 1, 0, 0]),
        ("outfox_size", &[7, 6, 0]),
        ("outfox_type", &[7, 1, 2]),
        ("rotation_3", &[8, 1, 0, 3]),
    ] {
        s.add(name, &[&[0x03], header, &[0; 16]]);
    }

    let s = Seeds::new("routing_address");
    for (i, e) in mp["encodings"]
        .as_array()
        .expect("encodings")
        .iter()
        .enumerate()
    {
        s.add(
            &format!("encoding_{i}"),
            &[&hex(e, "routing_address_bytes_hex")],
        );
    }
    s.add("surb_ack_field", &[&hex(fh, "surb_ack_hex")[..19]]);
    s.add("short_v6", &[&[6, 0x06, 0xfd, 0x20, 0x01]]);
    s.add("version_5", &[&[5, 0, 1]]);

    let s = Seeds::new("mix_packet");
    s.add("v1_ipv4", &[&hex(mp, "v1_full_hex_ipv4")]);
    s.add("v2_ipv4_odd", &[&hex(mp, "v2_full_hex_ipv4_odd")]);
    let sphinx_ack = hex(mp, "sphinx_packet_hex");
    for (i, e) in mp["encodings"]
        .as_array()
        .expect("encodings")
        .iter()
        .enumerate()
    {
        let address = hex(e, "routing_address_bytes_hex");
        s.add(&format!("v1_{i}"), &[&[0], &address, &sphinx_ack]);
        s.add(&format!("v2_even_{i}"), &[&[0, 2], &address, &sphinx_ack]);
    }
    for (i, e) in mp["decode_errors_v1"]
        .as_array()
        .expect("errors")
        .iter()
        .enumerate()
    {
        s.add(&format!("error_{i}"), &[&hex(e, "input_hex")]);
    }

    let s = Seeds::new("surb_ack");
    let plaintext = hex(fh, "plaintext_hex");
    s.add("regular_unknown", &[&[0], &plaintext]);
    s.add("extended8_even", &[&[3 + 10], &plaintext]);
    s.add("ack_size", &[&[1], &[0xaa; 21]]);
    s.add("too_short", &[&[0], &plaintext[..404]]);
    s.add("bad_address", &[&[0], &[5; 405], b"message"]);

    let s = Seeds::new("final_hop");
    let sphinx = hex(fh, "sphinx_packet_hex");
    s.add("regular_unknown", &[&[0x00], &sphinx]);
    s.add("regular_even", &[&[0x10], &sphinx]);
    s.add("forward_hop", &[&[0x00], &forward[3..]]);
    // the mix node's layer taken off the vector's SURB-ack: an ack-size packet for the gateway
    let at_gateway = final_hop::unwrap(
        vectors::mix_node_sphinx_secret(),
        ack_packet,
        KeyRotation::Unknown,
    )
    .expect("the mix node unwraps the ack");
    let Hop::Forward(hop) = at_gateway.hop else {
        panic!("the mix node forwards the ack");
    };
    s.add("ack_for_gateway", &[&[0x01], &hop.packet]);
    s.add("raw_length", &[&[0x07], &[0x42; 100]]);

    let s = Seeds::new("final_hop_build");
    let mut ack_address = [0u8; 32];
    ack_address[..7].copy_from_slice(&plaintext[..7]);
    // version, size, rotation, sender secret, recipient, SURB id, delay, next hop: see the target
    let fields = |version: u8, size: u8, next_hop: Option<&[u8; 32]>| -> Vec<u8> {
        let mut out = vec![version, size, 0];
        out.extend_from_slice(&[7; 32]);
        out.extend_from_slice(&hex(fh, "client_address_hex"));
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(&1_000_000u64.to_le_bytes());
        match next_hop {
            Some(address) => {
                out.push(1);
                out.extend_from_slice(address);
            }
            None => out.push(0),
        }
        out
    };
    s.add("regular_final", &[&fields(4, 0, None), &plaintext]);
    s.add("ack_final", &[&fields(0, 1, None), &[0xaa; 21]]);
    s.add("extended_final", &[&fields(2, 2, None), &plaintext]);
    s.add("forward", &[&fields(3, 0, Some(&ack_address)), b"hello"]);

    let s = Seeds::new("fast_final_hop");
    s.add("regular_unknown", &[&[0, 0x00], &sphinx]);
    s.add("regular_even", &[&[0, 0x10], &sphinx]);
    s.add("forward_hop", &[&[0, 0x00], &forward[3..]]);
    s.add("ack_for_gateway", &[&[0, 0x01], &hop.packet]);
    // the final_hop_build fields, then the number of byte changes and the changes
    s.add(
        "built_regular",
        &[&[1], &fields(4, 0, None), &[0], &plaintext],
    );
    s.add("built_ack", &[&[1], &fields(0, 1, None), &[0], &[0xaa; 21]]);
    s.add(
        "built_forward",
        &[&[1], &fields(3, 0, Some(&ack_address)), &[0], b"hello"],
    );
    s.add(
        "built_payload_changed",
        &[
            &[1],
            &fields(4, 0, None),
            &[1, 0x00, 0x04, 0x80],
            &plaintext,
        ],
    );

    // RFC 7748 section 5.2's vectors (raw mode: secret, then the point 9 and 3 times), and
    // every edge point with and without its top bit (odd mode)
    let s = Seeds::new("x25519_batch");
    let unhex = |h: &str| -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
            .collect()
    };
    let (k1, u1) = (
        unhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
        unhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"),
    );
    let (k2, u2) = (
        unhex("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d"),
        unhex("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493"),
    );
    s.add("rfc7748_vector_1", &[&[0], &k1, &u1.repeat(9)]);
    s.add("rfc7748_vector_2", &[&[0], &k2, &u2.repeat(3)]);
    let secret: Vec<u8> = (0..32).collect();
    let edges: Vec<u8> = (0..8u8)
        .chain(0x80..0x88)
        .flat_map(|which| [which, 0])
        .chain([3, 0])
        .collect();
    s.add("edges", &[&[1], &secret, &edges]);

    let s = Seeds::new("client_request");
    for e in json["client_requests"].as_array().expect("requests") {
        s.add(e["name"].as_str().expect("name"), &[text(e, "ws_text")]);
    }
    for (i, input) in json["client_request_parse_results"]
        .as_object()
        .expect("results")
        .keys()
        .enumerate()
    {
        s.add(&format!("parse_result_{i}"), &[input.as_bytes()]);
    }
    s.add("authenticateV2", &[text(auth, "ws_text")]);
    s.add("handshake_1", &[text(&hs["transcript"][0], "ws_text")]);
    s.add(
        "handshake_error",
        &[br#"{"type":"handshakeError","message":"no"}"#],
    );

    let s = Seeds::new("handshake");
    let m1 = vectors::handshake_message(0);
    let m3 = vectors::handshake_message(2);
    s.add("transcript", &[&[0, 80], &m1, &m3]);
    let mut bad = m3.clone();
    bad[0] ^= 1;
    s.add("tampered_finish", &[&[0, 80], &m1, &bad]);
    s.add("short_finish", &[&[0, 80], &m1, &m3[..91]]);
    s.add("init_only", &[&[0, 79], &m1[..79]]);
    // mode, client identity, client ephemeral, salt, client nonce, gateway ephemeral and nonce
    let honest: [&[u8]; 7] = [
        &[1],
        &[0x11; 32],
        &[0x33; 32],
        &[0x44; 16],
        &[9; 12],
        &[0x55; 32],
        &[1; 12],
    ];
    // then the optional bit to flip in message 3
    s.add("honest", &[&honest[..], &[&[0]]].concat());
    s.add("honest_flipped", &[&honest[..], &[&[1, 3, 5]]].concat());

    let s = Seeds::new("authenticate");
    s.add("vector", &[&[0], text(auth, "ws_text")]);
    s.add("live_example", &[&[0], text(auth, "ws_text_live_example")]);
    // key, version (small), timestamp (near now), skew, nonce (12), honest ciphertext, ...
    let signed = |honest: u8| -> Vec<u8> {
        let mut out = vec![1];
        out.extend_from_slice(&[0x11; 32]);
        out.extend_from_slice(&[1, 6, 1, 0, 0, 120, 0, 1]);
        out.extend_from_slice(&[7; 12]);
        out.push(honest);
        out.extend_from_slice(&[0; 24]);
        out
    };
    s.add("signed_honest", &[&signed(1)]);
    s.add("signed_arbitrary_ciphertext", &[&signed(0)]);

    let s = Seeds::new("binary_frame");
    for name in [
        "forward_sphinx_v1",
        "forward_sphinx_v2",
        "pushed_mix_message",
    ] {
        s.add(name, &[&[0], &hex(&bin[name], "frame_hex")]);
    }
    s.add(
        "flag_0",
        &[
            &[0, 1, 0],
            &[0; 12],
            &hex(&bin["forward_sphinx_v1"], "plaintext_hex"),
        ],
    );
    s.add(
        "sealed_v1",
        &[
            &[1, 1, 0],
            &[9; 12],
            &hex(&bin["forward_sphinx_v1"], "plaintext_hex"),
        ],
    );
    s.add(
        "sealed_v2",
        &[
            &[1, 1, 1],
            &[9; 12],
            &hex(&bin["forward_sphinx_v2"], "plaintext_hex"),
        ],
    );
    s.add("sealed_kind_3", &[&[1, 0, 3], &[9; 12], b"x"]);

    let s = Seeds::new("encrypted_request");
    let forget = json["client_requests"]
        .as_array()
        .expect("requests")
        .iter()
        .find(|e| e["name"] == "encryptedRequest_forgetMe")
        .expect("forgetMe");
    s.add("forget_me_frame", &[&[0], text(forget, "ws_text")]);
    let inner = &json["encrypted_inner_plaintexts"];
    s.add(
        "forget_me",
        &[&[1], &[3; 12], text(inner, "ClientRequest_ForgetMe")],
    );
    s.add(
        "remember_me",
        &[&[1], &[3; 12], text(inner, "ClientRequest_RememberMe")],
    );
    s.add(
        "response_plaintext",
        &[
            &[1],
            &[3; 12],
            text(inner, "SensitiveServerResponse_ForgetMeAck"),
        ],
    );

    let s = Seeds::new("config");
    let root = Path::new("/home/nym/.nym/gateways");
    let mut config = Config::new("my-gateway", root, &Network::mainnet());
    s.add("init", &[config.render().as_bytes()]);
    config.gateway.eth_endpoint = Some("https://rinkeby.infura.io/v3/x".into());
    config.gateway.http_api_token = Some("it's a \"token\"\t".into());
    config.gateway.wallet_address = "n10yyd98e2tuwu0f7ypz9dy3hhjw7v772q6287gy".into();
    config.gateway.version = "1.0.1".into();
    s.add("every_optional_key", &[config.render().as_bytes()]);
    s.add(
        "minimal",
        &[br#"[gateway]
id = 'g'
announce_address = '127.0.0.1'
private_identity_key_file = '/k/private_identity.pem'
public_identity_key_file = '/k/public_identity.pem'
private_sphinx_key_file = '/k/private_sphinx.pem'
public_sphinx_key_file = '/k/public_sphinx.pem'
nym_root_directory = '/k'
persistent_storage = '/k/db.sqlite'

[debug]
packet_forwarding_initial_backoff = '1s 500ms'
replay_filter_false_positive_rate = 0.001
"#],
    );

    let s = Seeds::new("pem_keys");
    let dir = tempfile::tempdir().expect("temporary directory");
    let paths = KeyPaths::in_dir(dir.path());
    pem_keys::fixed_keys().save(&paths).expect("saves");
    let files = pem_keys::files(&paths).map(|p| fs::read(p).expect("reads"));
    for (i, name) in [
        "private_identity",
        "public_identity",
        "private_sphinx",
        "public_sphinx",
    ]
    .iter()
    .enumerate()
    {
        s.add(name, &[&[i as u8], &files[i]]);
    }
    let lf = String::from_utf8(files[0].clone())
        .expect("PEM is text")
        .replace("\r\n", "\n");
    s.add("private_identity_lf", &[&[0], lf.trim_end().as_bytes()]);
    s.add("wrong_tag", &[&[1], &files[3]]);

    let s = Seeds::new("statistics_report");
    s.add(
        "gateway_report",
        &[br#"{"stats_data":[{"Gateway":{"gateway_id":"Fo4f","inbox_count":8}}],"interval_seconds":60,"timestamp":"2022-07-26T12:46:34.148075290+00:00"}"#],
    );
    s.add(
        "service_report",
        &[br#"{"stats_data":[{"Service":{"requested_service":"example.com:443","request_bytes":10,"response_bytes":20}}],"interval_seconds":30,"timestamp":"2022-07-26T12:46:34+02:00"}"#],
    );
    s.add(
        "range",
        &[br#"{"since":"2022-07-26T12:00:00Z","until":"2262-04-11T23:47:16.854775807Z"}"#],
    );
    let s = Seeds::new("replay_file");
    for (name, seed) in replay_file::seeds() {
        s.add(name, &[&seed]);
    }
    println!(
        "seeds written to {}",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("seeds")
            .display()
    );
}
