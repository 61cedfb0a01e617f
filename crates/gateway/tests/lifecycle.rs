//! Statistics mode against a real statistics service, a clean shutdown under load, the systemd
//! notifications (`Type=notify`), and the retention cleaner of the running gateway.

mod util;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_protocol::test_support::sphinx::{final_hop_packet, v7_frame, ACK_PACKET_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use util::harness::{set_debug, NextHop, TestGateway};
use util::probe::{AckSink, Traffic};
use util::ws_client::{now_unix, random, TestClient, WsClient, READ_TIMEOUT};
use util::{Gateway, OutputText};

/// Starts the statistics service in this process on a loopback port; returns its URL and a
/// switch that stops it.
async fn statistics_service(dir: &std::path::Path) -> (String, tokio::sync::oneshot::Sender<()>) {
    let storage =
        nym_network_statistics::storage::Storage::open(&dir.join("stats.sqlite")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(nym_network_statistics::serve(
        listener,
        storage,
        nym_network_statistics::api::Limits::DEFAULT,
        async move {
            let _ = stopped.await;
        },
    ));
    (url, stop)
}

/// `POST /v1/all-statistics` as the operator document does with curl.
async fn all_statistics(url: &str, since: &str, until: &str) -> serde_json::Value {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let body = format!(r#"{{"since":"{since}", "until":"{until}"}}"#);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /v1/all-statistics HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{response}");
    serde_json::from_str(body).unwrap()
}

fn gateway_rows(rows: &serde_json::Value, gateway_id: &str) -> Vec<u64> {
    rows.as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.get("Gateway"))
        .filter(|g| g["gateway_id"] == gateway_id)
        .map(|g| g["inbox_count"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_report_the_connected_clients_and_the_gateway_survives_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let (url, stop_service) = statistics_service(dir.path()).await;
    let since =
        humantime::format_rfc3339_micros(std::time::SystemTime::now() - Duration::from_secs(5))
            .to_string();
    let gateway = TestGateway::start_with_args(
        "stats",
        &[("statistics_report_interval", "'300ms'")],
        &[
            "--enabled-statistics",
            "true",
            "--statistics-service-url",
            &url,
        ],
    );
    let gateway_id = bs58::encode(gateway.identity.as_bytes()).into_string();

    const CLIENTS: u64 = 3;
    let mut sessions = Vec::new();
    for _ in 0..CLIENTS {
        let mut ws = WsClient::connect(gateway.clients_port()).await;
        let mut client = TestClient::new();
        client.register(&mut ws, &gateway.identity).await;
        sessions.push(ws);
    }

    let deadline = Instant::now() + Duration::from_secs(20);
    let counts = loop {
        let until = humantime::format_rfc3339_micros(
            std::time::SystemTime::now() + Duration::from_secs(60),
        )
        .to_string();
        let counts = gateway_rows(&all_statistics(&url, &since, &until).await, &gateway_id);
        if counts.contains(&CLIENTS) || Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        counts.first(),
        Some(&0),
        "the start-up report comes before any client: {counts:?}"
    );
    assert!(
        counts.contains(&CLIENTS),
        "a report counts the {CLIENTS} connected clients: {counts:?}"
    );

    // The service goes away: the gateway keeps serving clients.
    let _ = stop_service.send(());
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut ws = WsClient::connect(gateway.clients_port()).await;
    let mut client = TestClient::new();
    client.register(&mut ws, &gateway.identity).await;
    ws.claim_free_bandwidth().await;
    drop(sessions);

    let out = gateway.running.terminate("TERM");
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_text());
    assert!(
        out.stderr_text().contains("Statistics not sent"),
        "the outage is logged:\n{}",
        out.stderr_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_acknowledged_message() {
    let gateway = TestGateway::start("drain", &[]);
    // One client online (receives pushes), one offline (its messages are stored).
    let mut online = TestClient::new();
    let online_bs58 = online.address_bs58();
    let mut ws = WsClient::connect(gateway.clients_port()).await;
    online.register(&mut ws, &gateway.identity).await;
    let offline = TestClient::new();

    let ack_hop = NextHop::bind().await;
    const PACKETS: usize = 400;
    let mut ack_to_message = std::collections::HashMap::new();
    let mut frames = Vec::new();
    for i in 0..PACKETS {
        let recipient = if i % 2 == 0 { &online } else { &offline };
        let ack: [u8; ACK_PACKET_LEN] = random();
        let message = format!("message {i}").into_bytes();
        ack_to_message.insert(ack.to_vec(), (i % 2 == 0, message.clone()));
        frames.push(v7_frame(&final_hop_packet(
            gateway.sphinx_key,
            gateway.mix_addr(),
            recipient.address(),
            ack_hop.addr(),
            &ack,
            &message,
        )));
    }

    // Collect acks as they arrive, for as long as the gateway sends them. The offline
    // client's count tells the sender when the store path has been taken: on a busy machine
    // the gateway may not have processed any of the first half by the time it is written.
    let offline_acks = Arc::new(AtomicUsize::new(0));
    let offline_acked = offline_acks.clone();
    let offline_ack_set: HashSet<Vec<u8>> = ack_to_message
        .iter()
        .filter(|(_, (to_online, _))| !to_online)
        .map(|(ack, _)| ack.clone())
        .collect();
    let acks = tokio::spawn(async move {
        let mut received = Vec::new();
        let Ok(mut stream) = tokio::time::timeout(Duration::from_secs(20), ack_hop.accept()).await
        else {
            return received;
        };
        let mut frame = vec![0u8; 4 + ACK_PACKET_LEN];
        while tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut frame))
            .await
            .is_ok_and(|r| r.is_ok())
        {
            if offline_ack_set.contains(&frame[4..]) {
                offline_acked.fetch_add(1, Ordering::Relaxed);
            }
            received.push(frame[4..].to_vec());
        }
        received
    });
    // The online client reads what is pushed, until the gateway closes the socket.
    let pushed = tokio::spawn(async move {
        let mut messages = Vec::new();
        while let Some(frame) = ws.try_next_binary(Duration::from_secs(5)).await {
            messages.push(online.open_pushed(&frame));
        }
        messages
    });

    // Stream packets and stop the gateway midway.
    let mut mix = TcpStream::connect(gateway.mix_addr()).await.unwrap();
    for (i, frame) in frames.iter().enumerate() {
        if mix.write_all(frame).await.is_err() {
            break;
        }
        if i == PACKETS / 2 {
            // Stop it once at least one stored message was acknowledged (within bounds).
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while offline_acks.load(Ordering::Relaxed) == 0
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let pid = gateway.running.id();
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap();
        }
    }
    drop(mix);
    let mut gateway = gateway;
    let out = gateway.running.wait_exit();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_text());

    let acks = acks.await.unwrap();
    let pushed: HashSet<Vec<u8>> = pushed.await.unwrap().into_iter().collect();
    let stored_offline: HashSet<Vec<u8>> = gateway
        .stored_contents(&offline.address_bs58())
        .into_iter()
        .collect();
    // Messages queued for the online client when it was shut down go to the store too.
    let stored_online: HashSet<Vec<u8>> =
        gateway.stored_contents(&online_bs58).into_iter().collect();
    assert!(
        !acks.is_empty(),
        "some packets were processed before the signal"
    );
    for ack in &acks {
        let (to_online, message) = &ack_to_message[ack];
        let kept = if *to_online {
            pushed.contains(message) || stored_online.contains(message)
        } else {
            stored_offline.contains(message)
        };
        assert!(
            kept,
            "message {:?} was acknowledged but is neither delivered nor stored",
            String::from_utf8_lossy(message)
        );
    }
    // A message may be kept without its ack having left before egress closed (the sender then
    // retransmits: a duplicate, never a loss), so kept messages are at least the acks.
    let kept = pushed.len() + stored_online.len() + stored_offline.len();
    assert!(
        kept >= acks.len(),
        "{kept} kept < {} acknowledged",
        acks.len()
    );
    assert!(
        !stored_offline.is_empty(),
        "the offline client's messages were stored"
    );
}

#[test]
fn systemd_is_told_when_the_gateway_is_ready_and_when_it_stops() {
    // What systemd does for a Type=notify unit: a datagram socket named in NOTIFY_SOCKET.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let systemd = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    systemd.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let gw = Gateway::new("notify");
    assert!(gw.init(&[]).status.success());
    // A small replay filter, quick to save at shutdown.
    set_debug(&gw, &[("replay_filter_capacity", "100000")]);
    let running = gw.spawn_with_env(
        &["run", "--id", "notify"],
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    );
    let mut datagram = [0u8; 1024];
    let n = systemd.recv(&mut datagram).expect("READY=1 arrives");
    assert_eq!(String::from_utf8_lossy(&datagram[..n]), "READY=1\n");
    // Ready means serving: both ports accept.
    std::net::TcpStream::connect(("127.0.0.1", gw.mix_port)).unwrap();
    std::net::TcpStream::connect(("127.0.0.1", gw.clients_port)).unwrap();

    let out = running.terminate("TERM");
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_text());
    let n = systemd.recv(&mut datagram).expect("STOPPING=1 arrives");
    assert_eq!(String::from_utf8_lossy(&datagram[..n]), "STOPPING=1\n");
    systemd.set_nonblocking(true).unwrap();
    assert!(systemd.recv(&mut datagram).is_err(), "nothing else is sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleaner_deletes_stored_messages_past_their_max_age_and_only_those() {
    /// `stored_messages_max_age`, in seconds.
    const MAX_AGE: i64 = 8;
    /// How much younger the fresh message is.
    const YOUNGER: i64 = 5;
    let gateway = TestGateway::start(
        "retention",
        &[
            ("stored_messages_max_age", &format!("'{MAX_AGE}s'")),
            ("stale_messages_cleaner_interval", "'1s'"),
        ],
    );
    let sink = AckSink::start().await;
    let (old, fresh) = (TestClient::new(), TestClient::new());
    let (old_bs58, fresh_bs58) = (old.address_bs58(), fresh.address_bs58());
    let stored_at = |client: &str| {
        gateway.query_i64(
            "SELECT MIN(timestamp) FROM message_store WHERE client_address_bs58 = ?1",
            client,
        )
    };
    let mut traffic = Traffic::default();

    // Two offline clients' messages, stored YOUNGER seconds apart.
    let frame = traffic.frame(&gateway, old.address(), sink.addr(), b"old");
    gateway.inject(&[frame]).await;
    gateway.wait_stored(&old_bs58, 1).await;
    let old_at = stored_at(&old_bs58);
    while now_unix() < (old_at + YOUNGER) as u64 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let frame = traffic.frame(&gateway, fresh.address(), sink.addr(), b"fresh");
    gateway.inject(&[frame]).await;
    gateway.wait_stored(&fresh_bs58, 1).await;
    let fresh_at = stored_at(&fresh_bs58);
    assert!(fresh_at >= old_at + YOUNGER);

    // Watch the store file until the old message is gone. A message may only go once the
    // cleaner's cutoff (its clock minus the max age, the clock being before ours here) passed
    // its timestamp.
    let fresh_when_old_went = loop {
        let old_left = gateway.stored_count(&old_bs58);
        let fresh_left = gateway.stored_count(&fresh_bs58);
        let now = now_unix() as i64;
        assert!(
            fresh_left == 1 || now > fresh_at + MAX_AGE,
            "the fresh message (stored at {fresh_at}) was deleted at {now}, before its max age"
        );
        if old_left == 0 {
            assert!(
                now > old_at + MAX_AGE,
                "the old message (stored at {old_at}) was deleted at {now}, before its max age"
            );
            break fresh_left;
        }
        assert!(
            now <= old_at + MAX_AGE + READ_TIMEOUT.as_secs() as i64,
            "the old message (stored at {old_at}) is still there at {now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        fresh_when_old_went, 1,
        "the message {YOUNGER} s younger outlived the old one"
    );

    let TestGateway { running, .. } = gateway;
    let out = running.terminate("TERM");
    let log = out.stderr_text();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("deleted stored messages older than 8s"),
        "the deletion is logged:\n{log}"
    );
}
