//! Operating the gateway: the validator duplicate-host check, bonding details, the HTTP API.

mod util;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use util::{assert_contains_all, Gateway, OutputText, MAINNET_WALLET};

/// A one-route HTTP server on loopback answering every request with `body` (JSON).
fn fake_validator_api(body: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    port
}

fn bonds(host: &str, identity: &str) -> String {
    format!(
        r#"[{{"pledge_amount":{{"denom":"unym","amount":"100000000"}},"owner":"{MAINNET_WALLET}","block_height":1,"gateway":{{"host":"{host}","mix_port":1789,"clients_port":9000,"location":"x","sphinx_key":"s","identity_key":"{identity}","version":"1.0.2"}},"proxy":null}}]"#
    )
}

const ANNOUNCE: &str = "gw.example.test";

fn gateway_with_api(id: &str, api_port: u16) -> (Gateway, String) {
    let gw = Gateway::new(id);
    let api = format!("http://127.0.0.1:{api_port}/api/");
    let out = gw.init(&["--announce-host", ANNOUNCE, "--validator-apis", &api]);
    assert!(out.status.success(), "{}", out.stderr_text());
    let details = gw.cmd(&["node-details", "--id", id]).stdout_text();
    let identity = util::field(&details, "Identity Key: ");
    (gw, identity)
}

#[test]
fn duplicate_host_check_has_three_outcomes() {
    // Another identity bonded with our host: refuse to start.
    let api = fake_validator_api(bonds(
        ANNOUNCE,
        "SomeoneElse111111111111111111111111111111111",
    ));
    let (gw, _) = gateway_with_api("dup", api);
    let out = gw.cmd(&["run", "--id", "dup"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr_text());
    assert!(out.stderr_text().contains("Our announce-host is identical to an existing node's announce-host! (its key is \"SomeoneElse111111111111111111111111111111111\")"), "{}", out.stderr_text());

    // Our own identity bonded with our host: warn and start.
    let gw = Gateway::new("self");
    let api_port_placeholder = util::free_port();
    let api = format!("http://127.0.0.1:{api_port_placeholder}/api/");
    assert!(gw
        .init(&["--announce-host", ANNOUNCE, "--validator-apis", &api])
        .status
        .success());
    let identity = util::field(
        &gw.cmd(&["node-details", "--id", "self"]).stdout_text(),
        "Identity Key: ",
    );
    let api = format!(
        "http://127.0.0.1:{}/api/",
        fake_validator_api(bonds(ANNOUNCE, &identity))
    );
    let out = gw.run_and_stop(&["run", "--id", "self", "--validator-apis", &api], "TERM");
    assert_contains_all(
        &out.stderr_text(),
        &["We seem to have not unregistered after going offline"],
    );

    // Unreachable API (nothing listens): warn and start, offline-first.
    let (gw, _) = gateway_with_api("offline", util::free_port());
    let out = gw.run_and_stop(&["run", "--id", "offline"], "TERM");
    assert_contains_all(
        &out.stderr_text(),
        &["failed to grab initial network gateways"],
    );

    // No other gateway with our host: start quietly.
    let api = fake_validator_api(bonds("203.0.113.9", "Other"));
    let (gw, _) = gateway_with_api("clear", api);
    let out = gw.run_and_stop(&["run", "--id", "clear"], "TERM");
    assert_contains_all(
        &out.stderr_text(),
        &["no other gateway is bonded with our announce host"],
    );
}

#[test]
fn node_details_prints_a_complete_bond_gateway_message() {
    let gw = Gateway::new("bond");
    assert!(gw
        .init(&["--announce-host", "gw.example.org"])
        .status
        .success());
    let out = gw.cmd(&["node-details", "--id", "bond", "--output", "json"]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let gateway = &json["bond_gateway_message"]["bond_gateway"]["gateway"];
    for field in [
        "host",
        "mix_port",
        "clients_port",
        "location",
        "sphinx_key",
        "identity_key",
        "version",
    ] {
        assert!(!gateway[field].is_null(), "{field} missing: {json}");
    }
    assert_eq!(gateway["host"], "gw.example.org");
    assert_eq!(gateway["clients_port"], gw.clients_port);
    assert_eq!(gateway["identity_key"], json["identity_key"]);
    assert_eq!(
        json["bond_gateway_message"]["bond_gateway"]["owner_signature"],
        json["owner_signature"]
    );
    let command = json["bonding_command"].as_str().unwrap();
    assert!(command.starts_with("nyxd tx wasm execute n14hj2tavq8fpesdwxxcu44rty3hh90vhujrvcmstl4zr3txmfvw9sjyvg3g '{\"bond_gateway\""), "{command}");
    assert!(
        command.ends_with(&format!(
            "--from {MAINNET_WALLET} --chain-id nyx --amount 100000000unym"
        )),
        "{command}"
    );
    let text = gw.cmd(&["node-details", "--id", "bond"]).stdout_text();
    assert!(text.contains(command), "{text}");
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn metric(body: &str, name: &str, label: Option<(&str, &str)>) -> f64 {
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[test]
fn http_api_serves_health_metrics_and_details() {
    let gw = Gateway::new("api");
    assert!(gw.init(&[]).status.success());
    let mut child = gw.spawn(&["run", "--id", "api"]);
    child.wait_ready();

    let (status, body) = http_get(gw.http_port, "/health");
    assert_eq!(status, 200);
    assert!(body.contains("\"ok\""), "{body}");

    let (status, body) = http_get(gw.http_port, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        metric(
            &body,
            "gateway_mix_connections_closed_total",
            Some(("reason", "codec_error"))
        ),
        0.0
    );

    // A garbage frame on the mix port closes that connection and moves the counter.
    let mut mix = TcpStream::connect(("127.0.0.1", gw.mix_port)).unwrap();
    mix.write_all(&[0x06, 0x01, 0x00, 0xff, 0xff]).unwrap();
    mix.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        mix.read(&mut buf).unwrap_or(0),
        0,
        "the gateway closes a corrupted stream"
    );
    let (_, body) = http_get(gw.http_port, "/metrics");
    assert_eq!(
        metric(
            &body,
            "gateway_mix_connections_closed_total",
            Some(("reason", "codec_error"))
        ),
        1.0,
        "{body}"
    );
    assert_eq!(
        metric(&body, "gateway_mix_packets_received_total", None),
        0.0
    );
    assert_eq!(metric(&body, "gateway_store_messages", None), 0.0);

    let (status, body) = http_get(gw.http_port, "/api/v1/node-details");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["mix_port"], gw.mix_port);

    let out = child.terminate("TERM");
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_text());
}

fn http_get_with_token(port: u16, path: &str, token: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn http_api_token_protects_metrics_and_details_but_not_health() {
    let gw = Gateway::new("token");
    assert!(gw.init(&[]).status.success());
    let config = std::fs::read_to_string(gw.config_path()).unwrap();
    let config = config.replacen(
        "\nenabled_statistics",
        "\nhttp_api_token = 's3cret'\nenabled_statistics",
        1,
    );
    std::fs::write(gw.config_path(), config).unwrap();
    let mut child = gw.spawn(&["run", "--id", "token"]);
    child.wait_ready();
    assert_eq!(http_get(gw.http_port, "/health").0, 200);
    assert_eq!(http_get(gw.http_port, "/metrics").0, 401);
    assert_eq!(http_get(gw.http_port, "/api/v1/node-details").0, 401);
    assert_eq!(http_get_with_token(gw.http_port, "/metrics", "wrong"), 401);
    assert_eq!(http_get_with_token(gw.http_port, "/metrics", "s3cret"), 200);
    assert_eq!(
        http_get_with_token(gw.http_port, "/api/v1/node-details", "s3cret"),
        200
    );
    let out = child.terminate("TERM");
    assert_eq!(out.status.code(), Some(0));
}
