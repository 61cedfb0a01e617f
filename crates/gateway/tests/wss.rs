//! The wss client listener: a client that trusts only a test CA registers, authenticates and
//! receives a message over `wss://`; failed and timed-out handshakes are counted; the self-described API
//! announces the port; SIGHUP serves a renewed certificate to new connections while open
//! sessions go on, and keeps the old one when the new files are bad; unusable certificate
//! files stop `run` with the path and the reason.

mod util;

use std::net::SocketAddr;
use std::time::Duration;

use gateway_protocol::client::{ClientRequest, ServerResponse};
use gateway_protocol::test_support::sphinx::{final_hop_packet, v7_frame, ACK_PACKET_LEN};
use nym_gateway::config::Config;
use nym_gateway::keys::NodeKeys;
use nym_gateway::network::Network;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use util::harness::{public_keys, set_debug, NextHop, TestGateway};
use util::in_process::{http_get, loopback_config, RunningNode};
use util::tls::{CertFiles, TestCa, HOST};
use util::ws_client::{random, TestClient, WsClient, READ_TIMEOUT};
use util::{assert_exit, Gateway, OutputText};

/// The rejection counter of failed TLS handshakes.
const TLS_REJECTED: &str = "gateway_client_connections_rejected_total{reason=\"tls_handshake\"}";
const RELOADS_OK: &str = "gateway_wss_certificate_reloads_total{outcome=\"ok\"}";
const RELOADS_FAILED: &str = "gateway_wss_certificate_reloads_total{outcome=\"failed\"}";

/// Sets the wss keys of the config at `path` (through the gateway's own config type).
fn enable_wss(path: &std::path::Path, port: u16, files: &CertFiles) {
    let mut config = Config::load(path).unwrap();
    config.gateway.clients_wss_port = Some(port);
    config.gateway.clients_wss_certificate_file = Some(files.chain.clone());
    config.gateway.clients_wss_private_key_file = Some(files.key.clone());
    config.save(path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_the_ca_registers_authenticates_and_receives_over_wss() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("wss test CA");
    let files = CertFiles::in_dir(dir.path());
    let cert = ca.issue(1, "gateway one");
    files.write(&cert);
    let mut config = loopback_config("wss", dir.path(), &Network::mainnet());
    config.gateway.announce_address = HOST.to_owned();
    config.gateway.clients_wss_port = Some(0);
    config.gateway.clients_wss_certificate_file = Some(files.chain.clone());
    config.gateway.clients_wss_private_key_file = Some(files.key.clone());
    config.gateway.validator_api_urls = Vec::new();
    let keys = NodeKeys::generate().unwrap();
    let identity = keys.identity.verifying_key();
    let sphinx_key = x25519_dalek::PublicKey::from(&keys.sphinx).to_bytes();
    let node = RunningNode::start(&config, keys).await;
    let wss = node.wss.expect("a wss listener");

    // Announced: the kernel's port for wss next to ws, and the host name clients connect to.
    let (_, body) = http_get(
        node.http,
        "/api/v1/gateway/client-interfaces/mixnet-websockets",
    )
    .await;
    let announced: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        announced,
        serde_json::json!({"ws_port": node.clients.port(), "wss_port": wss.port()})
    );
    let (_, body) = http_get(node.http, "/api/v1/host-information").await;
    assert!(body.contains(&format!(r#""hostname":"{HOST}""#)), "{body}");

    let mut client = TestClient::new();
    let mut ws = WsClient::connect_wss(wss, HOST, &ca.root()).await.unwrap();
    assert_eq!(ws.server_certificate(), cert.der);
    client.register(&mut ws, &identity).await;
    ws.claim_free_bandwidth().await;

    // A mix peer delivers a message for the client: pushed over the TLS session.
    let ack_hop = NextHop::bind().await;
    let message = b"over wss".to_vec();
    let ack: [u8; ACK_PACKET_LEN] = random();
    let packet = final_hop_packet(
        sphinx_key,
        node.mix,
        client.address(),
        ack_hop.addr(),
        &ack,
        &message,
    );
    let mut peer = TcpStream::connect(node.mix).await.unwrap();
    peer.write_all(&v7_frame(&packet)).await.unwrap();
    assert_eq!(client.open_pushed(&ws.next_binary().await), message);
    ws.close().await;

    // A later connection authenticates with the shared key from the registration.
    let mut again = WsClient::connect_wss(wss, HOST, &ca.root()).await.unwrap();
    client.send_authenticate(&mut again).await;
    assert!(matches!(
        again.next_response().await,
        ServerResponse::Authenticate { status: true, .. }
    ));
    again.close().await;

    // Plain ws still serves clients on its own port.
    let mut plain = WsClient::connect(node.clients.port()).await;
    TestClient::new().register(&mut plain, &identity).await;
    plain.close().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_tls_handshakes_are_counted_and_end_only_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("wss test CA");
    let files = CertFiles::in_dir(dir.path());
    files.write(&ca.issue(1, "gateway one"));
    let mut config = loopback_config("wss-bad", dir.path(), &Network::mainnet());
    config.gateway.clients_wss_port = Some(0);
    config.gateway.clients_wss_certificate_file = Some(files.chain.clone());
    config.gateway.clients_wss_private_key_file = Some(files.key.clone());
    config.gateway.validator_api_urls = Vec::new();
    config.debug.tls_handshake_timeout = Duration::from_millis(300);
    let node = RunningNode::start(&config, NodeKeys::generate().unwrap()).await;
    let wss = node.wss.unwrap();

    // Silence: closed after tls_handshake_timeout.
    let mut silent = TcpStream::connect(wss).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(READ_TIMEOUT, silent.read(&mut byte))
        .await
        .expect("the gateway closes a silent connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // Plain HTTP on the TLS port: the handshake fails and the connection is closed.
    let mut stream = TcpStream::connect(wss).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(READ_TIMEOUT, stream.read_to_end(&mut rest))
        .await
        .expect("the gateway closes the connection")
        .ok();
    // A client that trusts another CA gives up in the handshake.
    let stranger = TestCa::new("some other CA");
    assert!(WsClient::connect_wss(wss, HOST, &stranger.root())
        .await
        .is_err());
    wait_for(&node, TLS_REJECTED, 3.0).await;

    // The listener goes on serving clients that trust the certificate.
    let mut ws = WsClient::connect_wss(wss, HOST, &ca.root()).await.unwrap();
    ws.send_request(&ClientRequest::SupportedProtocol).await;
    assert!(matches!(
        ws.next_response().await,
        ServerResponse::SupportedProtocol { .. }
    ));
    ws.close().await;
    node.stop().await;
}

/// Polls the in-process node's metric `series` until it reaches `value`.
async fn wait_for(node: &RunningNode, series: &str, value: f64) {
    let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
    while node.metric(series).await < value {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} stayed below {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A gateway process (`init`, wss on with `files`, `run`), ready.
fn start_process(id: &str, files: &CertFiles) -> (TestGateway, SocketAddr) {
    let gw = Gateway::new(id);
    let out = gw.init(&[]);
    assert!(out.status.success(), "{}", out.stderr_text());
    set_debug(&gw, &[("replay_filter_capacity", "100000")]);
    let wss_port = util::free_port();
    enable_wss(&gw.config_path(), wss_port, files);
    let (identity, sphinx_key) = public_keys(&gw);
    let mut running = gw.spawn(&["run", "--id", id]);
    running.wait_ready();
    let gateway = TestGateway {
        gw,
        running,
        identity,
        sphinx_key,
    };
    (gateway, SocketAddr::from(([127, 0, 0, 1], wss_port)))
}

fn send_signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_serves_a_renewed_certificate_to_new_connections_and_keeps_open_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("wss test CA");
    let files = CertFiles::in_dir(dir.path());
    let first = ca.issue(1, "gateway one");
    files.write(&first);
    // A key other users can read is warned about at start, as the gateway's own keys are.
    std::fs::set_permissions(
        &files.key,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let (mut gateway, wss) = start_process("wss-reload", &files);

    let mut client = TestClient::new();
    let mut before = WsClient::connect_wss(wss, HOST, &ca.root()).await.unwrap();
    assert_eq!(before.server_certificate(), first.der);
    client.register(&mut before, &gateway.identity).await;

    // Renewal: new files, then SIGHUP.
    let second = ca.issue(2, "gateway two");
    files.write(&second);
    send_signal(gateway.pid(), "HUP");
    assert_eq!(gateway.wait_metric(RELOADS_OK, 1.0).await, 1.0);
    let after = WsClient::connect_wss(wss, HOST, &ca.root()).await.unwrap();
    assert_eq!(after.server_certificate(), second.der);
    after.close().await;
    // The session opened before the reload still answers.
    before.claim_free_bandwidth().await;

    // A broken file on reload: a warning, and the renewed certificate stays in use.
    std::fs::write(&files.chain, "not a certificate\n").unwrap();
    send_signal(gateway.pid(), "HUP");
    assert_eq!(gateway.wait_metric(RELOADS_FAILED, 1.0).await, 1.0);
    let still = WsClient::connect_wss(wss, HOST, &ca.root()).await.unwrap();
    assert_eq!(still.server_certificate(), second.der);
    still.close().await;
    before.claim_free_bandwidth().await;
    before.close().await;

    let out = gateway.stop("TERM");
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_text());
    let log = out.stderr_text();
    assert!(
        log.contains(&format!(
            "{} holds secrets but other users can access it",
            files.key.display()
        )),
        "{log}"
    );
    assert!(
        log.contains("wss certificate reload failed, the previous certificate stays in use")
            && log.contains(&files.chain.display().to_string()),
        "{log}"
    );
}

#[test]
fn run_stops_with_the_path_and_reason_for_unusable_wss_files() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("wss test CA");
    let good = ca.issue(1, "gateway one");
    let other = ca.issue(2, "gateway two");
    let files = CertFiles::in_dir(dir.path());
    let gw = Gateway::new("wss-bad-files");
    assert!(gw.init(&[]).status.success());
    enable_wss(&gw.config_path(), util::free_port(), &files);
    let run = || gw.cmd(&["run", "--id", "wss-bad-files"]);
    let chain = files.chain.display().to_string();
    let key = files.key.display().to_string();

    // Missing files.
    let out = run();
    assert_exit(
        &out,
        1,
        &format!("cannot use the wss certificate chain \"{chain}\""),
    );
    assert_exit(&out, 1, "No such file or directory");

    // Not PEM.
    std::fs::write(&files.chain, "garbage\n").unwrap();
    std::fs::write(&files.key, good.key_pem.as_bytes()).unwrap();
    assert_exit(&run(), 1, "no CERTIFICATE block in the file");

    // A certificate but no key in the key file.
    std::fs::write(&files.chain, good.chain_pem.as_bytes()).unwrap();
    std::fs::write(&files.key, good.chain_pem.as_bytes()).unwrap();
    let out = run();
    assert_exit(
        &out,
        1,
        &format!("cannot use the wss private key \"{key}\""),
    );
    assert_exit(&out, 1, "no PRIVATE KEY");

    // Another certificate's key.
    std::fs::write(&files.key, other.key_pem.as_bytes()).unwrap();
    assert_exit(&run(), 1, "does not belong to the first certificate");
}

#[test]
fn run_refuses_a_wss_port_without_certificate_files() {
    let gw = Gateway::new("wss-no-files");
    assert!(gw.init(&[]).status.success());
    let path = gw.config_path();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "# clients_wss_port = 9001",
        &format!("clients_wss_port = {}", util::free_port()),
    );
    std::fs::write(&path, text).unwrap();
    let out = gw.cmd(&["run", "--id", "wss-no-files"]);
    assert_exit(&out, 1, "clients_wss_certificate_file");
    assert!(
        !out.stderr_text().contains("panicked"),
        "{}",
        out.stderr_text()
    );
}

#[test]
fn sighup_without_a_wss_listener_is_logged_and_does_not_stop_the_gateway() {
    let mut gateway = TestGateway::start("hup-no-wss", &[]);
    send_signal(gateway.pid(), "HUP");
    // Still serving after the signal was handled: a client registers.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut ws = WsClient::connect(gateway.clients_port()).await;
        TestClient::new().register(&mut ws, &gateway.identity).await;
        ws.close().await;
    });
    let out = gateway.stop("TERM");
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_text());
    assert!(
        out.stderr_text()
            .contains("nothing to reload (no wss listener is configured)"),
        "{}",
        out.stderr_text()
    );
}
