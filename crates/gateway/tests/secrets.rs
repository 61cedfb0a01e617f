//! Secrets stay secret: private files are owner-only and checked at start, and a fully traced
//! session logs no key, shared key, mnemonic or message content.

mod util;

use std::path::Path;
use std::time::Duration;

use gateway_protocol::client::{RequestKind, ServerResponse};
use gateway_protocol::framing::KeyRotation;
use gateway_protocol::mix_packet::MixPacket;
use gateway_protocol::test_support::sphinx::{final_hop_packet, v7_frame};
use util::harness::{public_keys, set_debug, NextHop, TestGateway};
use util::probe::AckSink;
use util::ws_client::{random, TestClient, WsClient};
use util::{Gateway, OutputText};

#[cfg(unix)]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_files_are_owner_only_and_wider_modes_are_reported_at_start() {
    let mut gateway = TestGateway::start("modes", &[]);
    let data = gateway.gw.dir().join("data");
    let config = gateway.gw.config_path();
    let db = data.join("db.sqlite");
    for file in [
        &config,
        &data.join("private_identity.pem"),
        &data.join("private_sphinx.pem"),
        &db,
    ] {
        assert_eq!(util::mode(file), 0o600, "{}", file.display());
    }
    let out = gateway.stop("TERM");
    let log = out.stderr_text();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(!log.contains("holds secrets"), "{log}");
    // Idle, the replay filter has nothing to save: no file (its mode, once it exists, is
    // checked by faults::the_replay_filter_survives_restarts_and_crashes).
    assert!(!data.join("replay_filter.bin").exists());

    let loose = [
        (config.clone(), 0o644),
        (data.join("private_identity.pem"), 0o640),
        (data.join("private_sphinx.pem"), 0o604),
        (db.clone(), 0o644),
    ];
    for (file, mode) in &loose {
        chmod(file, *mode);
    }
    // Public keys may be read by anyone.
    chmod(&data.join("public_identity.pem"), 0o644);
    gateway.restart();
    let out = gateway.stop("TERM");
    let log = out.stderr_text();
    assert_eq!(out.status.code(), Some(0), "{log}");
    for (file, mode) in &loose {
        let path = file.display().to_string();
        let expected = format!(
            "{path} holds secrets but other users can access it (mode {mode:o}): run `chmod 600 {path}`"
        );
        assert!(
            log.lines()
                .any(|line| line.contains(" WARN ") && line.contains(&expected)),
            "no warning for {path}:\n{log}"
        );
    }
    assert!(!log.contains("public_identity.pem holds secrets"), "{log}");
}

/// The ways a secret could show up in a log.
fn spellings(bytes: &[u8]) -> Vec<String> {
    let decimal: Vec<String> = bytes.iter().take(8).map(u8::to_string).collect();
    vec![
        hex::encode(bytes),
        hex::encode_upper(bytes),
        bs58::encode(bytes).into_string(),
        format!("[{}", decimal.join(", ")),
        format!("[{}", decimal.join(",")),
    ]
}

/// The 32 key bytes of a PEM file (one base64 line), and that line.
fn pem_key(path: &Path) -> ([u8; 32], String) {
    let text = std::fs::read_to_string(path).unwrap();
    let pem = pem::parse(text.trim()).unwrap();
    let line = text.lines().nth(1).unwrap().trim().to_owned();
    (pem.contents().try_into().unwrap(), line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_session_logs_no_secrets() {
    // A valid mnemonic that is not the built-in placeholder.
    let mnemonic = "legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth title";
    let gw = Gateway::new("traced");
    let out = gw.init(&["--mnemonic", mnemonic]);
    assert!(out.status.success(), "{}", out.stderr_text());
    let init_output = format!("{}{}", out.stdout_text(), out.stderr_text());
    set_debug(&gw, &[("replay_filter_capacity", "100000")]);
    assert!(std::fs::read_to_string(gw.config_path())
        .unwrap()
        .contains(mnemonic));
    let (identity, sphinx_public) = public_keys(&gw);
    let mut running = gw.spawn_with_env(&["run", "--id", "traced"], &[("RUST_LOG", "trace")]);
    running.wait_ready();
    let mix_addr = std::net::SocketAddr::from(([127, 0, 0, 1], gw.mix_port));
    let inject = |frame: Vec<u8>| async move {
        let mut stream = tokio::net::TcpStream::connect(mix_addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stream, &frame)
            .await
            .unwrap();
    };

    // Register, claim bandwidth, forward a packet, receive a pushed message; then a stored
    // one, delivered on authentication.
    let sink = AckSink::start().await;
    let pushed_body = b"pushed body 7d1c0ffee2 never in a log".to_vec();
    let stored_body = b"stored body 9bad5eed41 never in a log".to_vec();
    let mut client = TestClient::new();
    let mut ws = WsClient::connect(gw.clients_port).await;
    client.register(&mut ws, &identity).await;
    ws.claim_free_bandwidth().await;
    let hop = NextHop::bind().await;
    let bytes: Vec<u8> = (0..2413).map(|_| random::<1>()[0]).collect();
    let packet = MixPacket::new(hop.addr(), KeyRotation::Odd, bytes).unwrap();
    ws.send_binary(client.forward_frame(RequestKind::ForwardSphinxV2, &packet))
        .await;
    assert!(matches!(
        ws.next_response().await,
        ServerResponse::Send { .. }
    ));
    // Packets are built with the gateway's public sphinx key.
    let frame = |body: &[u8]| {
        v7_frame(&final_hop_packet(
            sphinx_public,
            mix_addr,
            client.address(),
            sink.addr(),
            &random(),
            body,
        ))
    };
    let (pushed_frame, stored_frame) = (frame(&pushed_body), frame(&stored_body));
    inject(pushed_frame).await;
    assert_eq!(client.open_pushed(&ws.next_binary().await), pushed_body);
    ws.close().await;
    inject(stored_frame).await;
    assert_eq!(sink.wait_for(2, Duration::from_secs(15)).await, 2);
    let mut ws = WsClient::connect(gw.clients_port).await;
    client.send_authenticate(&mut ws).await;
    assert_eq!(client.open_pushed(&ws.next_binary().await), stored_body);
    assert!(matches!(
        ws.next_response().await,
        ServerResponse::Authenticate { status: true, .. }
    ));
    ws.close().await;
    let out = running.terminate("TERM");
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_text());
    let log = format!("{init_output}{}{}", out.stdout_text(), out.stderr_text());
    assert!(
        log.lines().filter(|l| l.contains(" TRACE ")).count() > 100,
        "the log is traced"
    );
    assert!(log.contains("client registered"), "{log}");

    let data = gw.dir().join("data");
    let (identity_private, identity_line) = pem_key(&data.join("private_identity.pem"));
    let (sphinx_private, sphinx_line) = pem_key(&data.join("private_sphinx.pem"));
    let mut secrets: Vec<(&str, String)> = vec![
        ("identity key (PEM)", identity_line),
        ("sphinx key (PEM)", sphinx_line),
        ("mnemonic", mnemonic.to_owned()),
        ("mnemonic (first words)", mnemonic[..30].to_owned()),
        (
            "pushed message",
            String::from_utf8(pushed_body.clone()).unwrap(),
        ),
        (
            "stored message",
            String::from_utf8(stored_body.clone()).unwrap(),
        ),
    ];
    for (what, bytes) in [
        ("identity key", identity_private.to_vec()),
        ("sphinx key", sphinx_private.to_vec()),
        ("shared key", client.key().as_bytes().to_vec()),
        ("pushed message", pushed_body),
        ("stored message", stored_body),
    ] {
        for spelling in spellings(&bytes) {
            secrets.push((what, spelling));
        }
    }
    let leaks: Vec<String> = secrets
        .iter()
        .filter(|(_, text)| log.contains(text.as_str()))
        .map(|(what, text)| format!("{what} as {text:?}"))
        .collect();
    eprintln!(
        "[traced session] {} log lines searched for {} spellings of secrets",
        log.lines().count(),
        secrets.len()
    );
    assert!(leaks.is_empty(), "secrets in the log: {leaks:?}");
}
