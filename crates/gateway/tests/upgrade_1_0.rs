//! A gateway directory as the 1.0.1 binary left it (1.0.1 config, PEM keys, a store in the
//! 1.0.x schema with messages, shared keys and bandwidth) goes through each of the operator
//! document's upgrade methods; then `run` serves, and a client that registers with an address
//! that had stored messages receives them.

mod util;

use std::fs;
use std::path::Path;

use rusqlite::Connection;
use tokio_tungstenite::tungstenite::Message;
use util::harness::public_keys;
use util::ws_client::{TestClient, WsClient};
use util::{free_port, Gateway, OutputText, MAINNET_WALLET};

/// The 1.0.x schema, from the spec; the store is built from it here, not by this gateway.
const SCHEMA_1_0: &str = include_str!("../../../testdata/store-1.0.x/schema.sql");

/// The messages the 1.0.1 gateway stored for the client, oldest first.
const STORED: [&[u8]; 3] = [b"stored by 1.0.1: first", b"second", b"third"];

/// A gateway directory made by 1.0.1: keys (PEM, the same format), a 1.0.1 config and a 1.0.x
/// store holding `STORED` for `client` between rows for others.
fn gateway_left_by_1_0_1(client: &str) -> Gateway {
    let gw = Gateway::new("supergateway");
    assert!(gw.init(&[]).status.success());
    let config = include_str!("fixtures/config-1.0.1.toml")
        .replace("@ROOT@", gw.root().to_str().unwrap())
        .replace("mix_port = 1789", &format!("mix_port = {}", gw.mix_port))
        .replace(
            "clients_port = 9000",
            &format!("clients_port = {}", gw.clients_port),
        );
    fs::write(gw.config_path(), config).unwrap();

    let db = gw.dir().join("data/db.sqlite");
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let conn = Connection::open(&db).unwrap();
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .unwrap();
    conn.execute_batch(SCHEMA_1_0).unwrap();
    let other = "4kjbTiFH6DZUygaF7mjWzpGF3Qd2Dc5tq9TPtrzcttxF";
    let insert = |address: &str, content: &[u8]| {
        conn.execute(
            "INSERT INTO message_store (client_address_bs58, content) VALUES (?1, ?2)",
            rusqlite::params![address, content],
        )
        .unwrap();
    };
    insert(other, b"for someone else");
    for content in STORED {
        insert(client, content);
        insert(other, b"for someone else");
    }
    conn.execute(
        "INSERT INTO shared_keys VALUES (?1, ?2)",
        [client, "8sG4gXvUQB4jF2bWvLZ4s9wT3rjTzN7hQ2xS5vK1aPcE"],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO available_bandwidth VALUES (?1, 1000000)",
        [client],
    )
    .unwrap();
    gw
}

fn table_names(db: &Path) -> Vec<String> {
    Connection::open(db)
        .unwrap()
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Runs the gateway, registers `client` and expects exactly `STORED`, in order.
async fn run_and_receive_stored(gw: &Gateway, mut client: TestClient) {
    let http = format!("127.0.0.1:{}", free_port());
    let mut running = gw.spawn(&["run", "--id", "supergateway", "--http-api-address", &http]);
    running.wait_ready();
    let (identity, _) = public_keys(gw);
    let mut ws = WsClient::connect(gw.clients_port).await;
    // Registration pushes the stored messages, then answers `register` (PROTOCOL §2.4).
    client.handshake(&mut ws, &identity).await;
    let mut received = Vec::new();
    loop {
        match ws.next_message().await {
            Message::Binary(frame) => received.push(client.open_pushed(&frame)),
            Message::Text(text) => {
                assert!(text.contains("\"register\""), "{text}");
                assert!(text.contains("\"status\":true"), "{text}");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(received, STORED.map(<[u8]>::to_vec));
    ws.close().await;
    let out = running.terminate("TERM");
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_text());
}

fn assert_imported(gw: &Gateway, backup_version: &str) {
    let data = gw.dir().join("data");
    let tables = table_names(&data.join("db.sqlite"));
    assert!(
        tables.contains(&"legacy_1_0_shared_keys".to_owned()),
        "{tables:?}"
    );
    let backup = data.join(format!("db.sqlite.{backup_version}.bak"));
    assert!(backup.exists(), "no backup at {backup:?}");
    assert!(table_names(&backup).contains(&"_sqlx_migrations".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_command_imports_a_1_0_1_gateway() {
    let client = TestClient::new();
    let gw = gateway_left_by_1_0_1(&client.address_bs58());
    let out = gw.cmd(&["upgrade", "--id", "supergateway"]);
    assert!(out.status.success(), "{}", out.stderr_text());
    assert!(out
        .stdout_text()
        .contains("Upgrade from 1.0.1 to 1.0.2 was successful!"));
    let log = out.stderr_text();
    assert!(log.contains("must register again"), "{log}");
    assert!(log.contains("1 clients registered"), "{log}");
    assert_imported(&gw, "1.0.1");
    assert!(fs::read_to_string(gw.config_path())
        .unwrap()
        .contains("version = '1.0.2'"));
    run_and_receive_stored(&gw, client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_running_init_imports_a_1_0_1_gateway() {
    let client = TestClient::new();
    let gw = gateway_left_by_1_0_1(&client.address_bs58());
    let keys_before = fs::read(gw.dir().join("data/private_identity.pem")).unwrap();
    let out = gw.init(&[]);
    assert!(out.status.success(), "{}", out.stderr_text());
    assert_imported(&gw, "1.0.1");
    assert_eq!(
        fs::read(gw.dir().join("data/private_identity.pem")).unwrap(),
        keys_before
    );
    run_and_receive_stored(&gw, client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_config_by_hand_then_running_imports_a_1_0_1_gateway() {
    let client = TestClient::new();
    let gw = gateway_left_by_1_0_1(&client.address_bs58());
    // The document's manual method: set the version, add the statistics keys, restart.
    let config = fs::read_to_string(gw.config_path())
        .unwrap()
        .replace("version = '1.0.1'", "version = '1.0.2'")
        .replace(
            "[gateway]\n",
            "[gateway]\nenabled_statistics = false\nstatistics_service_url = 'https://mainnet-stats.nymte.ch:8090/'\n",
        );
    fs::write(gw.config_path(), config).unwrap();
    run_and_receive_stored(&gw, client).await;
    assert_imported(&gw, "1.0.2");
}

#[test]
fn init_leaves_the_config_alone_when_the_store_cannot_be_imported() {
    let gw = gateway_left_by_1_0_1(&TestClient::new().address_bs58());
    // A table in the way of today's schema: the import fails and rolls back.
    Connection::open(gw.dir().join("data/db.sqlite"))
        .unwrap()
        .execute_batch("CREATE TABLE clients (x INTEGER)")
        .unwrap();
    let before = fs::read(gw.config_path()).unwrap();
    for args in [
        vec![
            "init",
            "--id",
            "supergateway",
            "--host",
            "127.0.0.1",
            "--wallet-address",
            MAINNET_WALLET,
        ],
        vec!["upgrade", "--id", "supergateway"],
    ] {
        let out = gw.cmd(&args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            out.stderr_text()
        );
        assert!(
            out.stderr_text().contains("migrating store"),
            "{}",
            out.stderr_text()
        );
        assert_eq!(fs::read(gw.config_path()).unwrap(), before, "{args:?}");
    }
    assert!(table_names(&gw.dir().join("data/db.sqlite")).contains(&"shared_keys".to_owned()));
}
