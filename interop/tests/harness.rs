//! The harness proves itself without a gateway: packets it builds for a key pair it generates
//! unwrap with the crates' own processing into exactly what the tests later expect from the
//! gateway, and its readers (PEM, metrics, store, frame sink) read what they should.

use gateway_interop::ack_sink::AckSink;
use gateway_interop::keys::{parse_pem, read_key, GatewayKeys, SPHINX_PRIVATE};
use gateway_interop::metrics::Metrics;
use gateway_interop::mix::MixConnection;
use gateway_interop::packets::{
    ack_sized_packet, expected_final_hop, forward_hop_packet, frame, loopback,
    malformed_surb_ack_packet, route_provider, FakeNode, Framing, PacketFactory, TestClient,
};
use gateway_interop::store::stored_messages;
use nym_sphinx::framing::processing::{process_framed_packet, MixProcessingResultData};
use nym_sphinx::params::{PacketSize, SphinxKeyRotation};
use std::time::Duration;

/// A stand-in for our gateway (fresh keys) and the sender's gateway (whose mix host is `ack_host`).
fn setup(ack_host: std::net::SocketAddr) -> (FakeNode, FakeNode, TestClient, TestClient) {
    let gateway = FakeNode::new(1, loopback(1789));
    let sender_gateway = FakeNode::new(2, ack_host);
    let recipient = TestClient::new(*gateway.identity.public_key());
    let sender = TestClient::new(*sender_gateway.identity.public_key());
    (gateway, sender_gateway, recipient, sender)
}

#[test]
fn prepared_packets_unwrap_into_message_and_surb_ack() -> anyhow::Result<()> {
    let (gateway, sender_gateway, recipient, sender) = setup(loopback(40000));
    let topology = route_provider(&[gateway.routing_node(), sender_gateway.routing_node()]);
    let mut factory = PacketFactory::new(&sender, topology);
    let gw_keys = gateway.keys();

    let sizes = [
        PacketSize::RegularPacket,
        PacketSize::ExtendedPacket8,
        PacketSize::ExtendedPacket16,
        PacketSize::ExtendedPacket32,
    ];
    let framings = [
        Framing::V7,
        Framing::V8(SphinxKeyRotation::Unknown),
        Framing::V8(SphinxKeyRotation::OddRotation),
        Framing::V8(SphinxKeyRotation::EvenRotation),
    ];
    for (i, size) in sizes.into_iter().enumerate() {
        let plaintext = format!("harness message {i} of size {size}").into_bytes();
        let prepared = factory.prepare_single(&recipient.recipient(), &plaintext, size)?;
        assert_eq!(prepared.packet_size(), size);
        // route = [gateway]: the client hands it to the gateway's mix host
        assert_eq!(prepared.next_hop, gateway.mix_host);

        for framing in framings {
            let framed = prepared.frame(framing);
            let header_len = if framing == Framing::V7 { 3 } else { 4 };
            assert_eq!(framed.len(), header_len + size.size());
            assert_eq!(framed[0], if framing == Framing::V7 { 7 } else { 8 });
            assert_eq!(framed[1], size as u8);

            let hop = expected_final_hop(&framed, &gw_keys)?;
            assert_eq!(hop.destination, recipient.address());
            assert_eq!(
                hop.message.len(),
                size.plaintext_size() - nym_sphinx::acknowledgements::surb_ack::SurbAck::len(None)
            );
            let mut reassembler = recipient.reassembler();
            assert_eq!(reassembler.push(&hop.message)?, Some(plaintext.clone()));

            // the SURB-ack goes to the sender's gateway, v8-framed with the packet's rotation
            let ack = hop.ack.expect("a SURB-ack");
            assert_eq!(ack.next_hop, sender_gateway.mix_host);
            assert_eq!(ack.packet.len(), PacketSize::AckPacket.size());
            assert_eq!(&ack.framed[..3], &[8, 2, 0]);
            assert_eq!(&ack.framed[4..], ack.packet.as_slice());

            // ... where it unwraps into the ack of this very fragment
            let at_sender_gateway = expected_final_hop(&ack.framed, &sender_gateway.keys())?;
            assert_eq!(at_sender_gateway.destination, sender.address());
            assert!(at_sender_gateway.ack.is_none());
            assert_eq!(
                sender.acked_fragment(&at_sender_gateway.message)?,
                prepared.fragment_id
            );
        }
    }
    Ok(())
}

#[test]
fn multi_fragment_messages_reassemble() -> anyhow::Result<()> {
    let (gateway, sender_gateway, recipient, sender) = setup(loopback(40000));
    let topology = route_provider(&[gateway.routing_node(), sender_gateway.routing_node()]);
    let mut factory = PacketFactory::new(&sender, topology);
    let plaintext: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let packets = factory.prepare(
        &recipient.recipient(),
        &plaintext,
        PacketSize::RegularPacket,
    )?;
    assert!(packets.len() > 1);
    let mut reassembler = recipient.reassembler();
    let mut done = None;
    for p in &packets {
        let hop = expected_final_hop(&p.frame(Framing::V7), &gateway.keys())?;
        if let Some(m) = reassembler.push(&hop.message)? {
            done = Some(m);
        }
    }
    assert_eq!(done, Some(plaintext));
    Ok(())
}

#[test]
fn hand_built_packets_behave_as_labelled() -> anyhow::Result<()> {
    let (gateway, sender_gateway, recipient, _) = setup(loopback(40000));
    let keys = gateway.keys();

    let ack_plain = [0x5au8; 21];
    let ack = ack_sized_packet(&gateway.routing_node(), &recipient.address(), &ack_plain)?;
    let hop = expected_final_hop(&frame(&ack, Framing::V7), &keys)?;
    assert_eq!(hop.message, ack_plain);
    assert!(hop.ack.is_none());

    let fwd = forward_hop_packet(
        &gateway.routing_node(),
        &sender_gateway.routing_node(),
        &recipient.address(),
    )?;
    let framed = gateway_interop::packets::decode_frame(&frame(&fwd, Framing::V7))?;
    let processed =
        process_framed_packet(framed, &keys.sphinx_secret()).map_err(|e| anyhow::anyhow!("{e}"))?;
    match processed.processing_data {
        MixProcessingResultData::ForwardHop { packet, .. } => {
            assert_eq!(packet.next_hop_address(), sender_gateway.mix_host)
        }
        MixProcessingResultData::FinalHop { .. } => panic!("expected a forward hop"),
    }

    let bad = malformed_surb_ack_packet(&gateway.routing_node(), &recipient.address())?;
    let err = expected_final_hop(&frame(&bad, Framing::V7), &keys).unwrap_err();
    assert!(err.to_string().contains("SURB-Ack"), "{err}");

    // a flipped header byte breaks the MAC
    let mut corrupted = frame(&ack, Framing::V7);
    corrupted[3 + 100] ^= 0x01;
    assert!(expected_final_hop(&corrupted, &keys).is_err());
    Ok(())
}

#[test]
fn pem_reader_accepts_crlf_and_lf() -> anyhow::Result<()> {
    let key = [7u8; 32];
    let b64 = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let crlf = format!(
        "-----BEGIN X25519 PRIVATE KEY-----\r\n{b64}\r\n-----END X25519 PRIVATE KEY-----\r\n"
    );
    assert_eq!(parse_pem(&crlf, "X25519 PRIVATE KEY")?, key);
    let lf = crlf.replace("\r\n", "\n");
    assert_eq!(parse_pem(&lf, "X25519 PRIVATE KEY")?, key);
    assert!(parse_pem(&crlf, "ED25519 PRIVATE KEY").is_err());
    assert!(parse_pem(
        "-----BEGIN X25519 PRIVATE KEY-----\r\n",
        "X25519 PRIVATE KEY"
    )
    .is_err());

    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("private_sphinx.pem"), &crlf)?;
    assert_eq!(read_key(dir.path(), SPHINX_PRIVATE)?, key);
    std::fs::write(
        dir.path().join("private_sphinx.pem"),
        crlf.replace(b64, "BwcH"),
    )?;
    assert!(read_key(dir.path(), SPHINX_PRIVATE).is_err());
    Ok(())
}

#[test]
fn gateway_keys_load_and_cross_check() -> anyhow::Result<()> {
    use base64::Engine;
    use nym_crypto::asymmetric::{ed25519, x25519};
    let mut rng = nym_crypto::rng::os_rng();
    let id = ed25519::KeyPair::new(&mut rng);
    let sx = x25519::KeyPair::new(&mut rng);
    let dir = tempfile::tempdir()?;
    let write = |file: &str, tag: &str, bytes: &[u8]| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        std::fs::write(
            dir.path().join(file),
            format!("-----BEGIN {tag}-----\r\n{b64}\r\n-----END {tag}-----\r\n"),
        )
    };
    write(
        "private_identity.pem",
        "ED25519 PRIVATE KEY",
        &id.private_key().to_bytes(),
    )?;
    write(
        "public_identity.pem",
        "ED25519 PUBLIC KEY",
        &id.public_key().to_bytes(),
    )?;
    write(
        "private_sphinx.pem",
        "X25519 PRIVATE KEY",
        &sx.private_key().to_bytes(),
    )?;
    write(
        "public_sphinx.pem",
        "X25519 PUBLIC KEY",
        &sx.public_key().to_bytes(),
    )?;
    let keys = GatewayKeys::load(dir.path())?;
    assert_eq!(keys.identity, *id.public_key());
    assert_eq!(keys.sphinx_public, *sx.public_key());

    // a public key that does not match its private key is caught
    let other = x25519::KeyPair::new(&mut rng);
    write(
        "public_sphinx.pem",
        "X25519 PUBLIC KEY",
        &other.public_key().to_bytes(),
    )?;
    assert!(GatewayKeys::load(dir.path()).is_err());
    Ok(())
}

#[test]
fn metrics_parser_reads_the_text_format() -> anyhow::Result<()> {
    let text = "\
# HELP gateway_mix_packets_received_total Packets received on the mix port.
# TYPE gateway_mix_packets_received_total counter
gateway_mix_packets_received_total 12
gateway_mix_packets_dropped_total{reason=\"replay\"} 2
gateway_mix_packets_dropped_total{reason=\"forward_hop\",kind=\"x\"} 1 1700000000000
gateway_mix_connections_closed_total{ reason = \"codec_error\" } 3.0
weird{label=\"a \\\"quoted\\\" , value\"} +Inf
";
    let m = Metrics::parse(text)?;
    assert_eq!(m.value("gateway_mix_packets_received_total"), 12.0);
    assert_eq!(m.dropped("replay"), 2.0);
    assert_eq!(m.dropped("forward_hop"), 0.0);
    assert_eq!(
        m.get(
            "gateway_mix_packets_dropped_total",
            &[("kind", "x"), ("reason", "forward_hop")]
        ),
        1.0
    );
    assert_eq!(m.sum("gateway_mix_packets_dropped_total"), 3.0);
    assert_eq!(
        m.get(
            "gateway_mix_connections_closed_total",
            &[("reason", "codec_error")]
        ),
        3.0
    );
    assert_eq!(
        m.get("weird", &[("label", "a \"quoted\" , value")]),
        f64::INFINITY
    );
    assert!(!m.has("gateway_acks_forwarded_total"));
    assert!(Metrics::parse("name{unterminated=\"x 1").is_err());
    Ok(())
}

#[test]
fn store_reader_reads_the_message_store_schema() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("db.sqlite");
    let conn = rusqlite::Connection::open(&db)?;
    conn.execute_batch(
        "CREATE TABLE message_store(id INTEGER PRIMARY KEY AUTOINCREMENT, \
         client_address_bs58 TEXT, content BLOB, timestamp INTEGER); \
         INSERT INTO message_store(client_address_bs58, content, timestamp) VALUES ('a', x'0102', 1); \
         INSERT INTO message_store(client_address_bs58, content, timestamp) VALUES ('b', x'03', 2); \
         INSERT INTO message_store(client_address_bs58, content, timestamp) VALUES ('a', x'04', 3);",
    )?;
    drop(conn);
    let a = stored_messages(&db, Some("a"))?;
    assert_eq!(
        a.iter().map(|m| m.content.clone()).collect::<Vec<_>>(),
        vec![vec![1, 2], vec![4]]
    );
    assert_eq!(stored_messages(&db, None)?.len(), 3);
    assert!(stored_messages(&db, Some("c"))?.is_empty());
    Ok(())
}

#[tokio::test]
async fn ack_sink_splits_frames_and_reports_bad_ones() -> anyhow::Result<()> {
    let sink = AckSink::bind().await?;
    let (gateway, _, recipient, _) = setup(loopback(40000));
    let ack = ack_sized_packet(&gateway.routing_node(), &recipient.address(), &[1u8; 21])?;
    let v7 = frame(&ack, Framing::V7);
    let v8 = frame(&ack, Framing::V8(SphinxKeyRotation::EvenRotation));

    let mut conn = MixConnection::connect(sink.addr()).await?;
    // both frames in one write, the second split across two writes
    let mut bytes = v7.clone();
    bytes.extend_from_slice(&v8[..10]);
    conn.send(&bytes).await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.send(&v8[10..]).await?;
    let frames = sink.wait_for(2, Duration::from_secs(5)).await?;
    assert_eq!(frames[0].raw(), v7);
    assert_eq!(frames[1].raw(), v8);
    assert_eq!(frames[1].header, vec![8, 2, 0, 2]);

    let mut bad = MixConnection::connect(sink.addr()).await?;
    bad.send(&[9, 1, 0, 0]).await?;
    gateway_interop::eventually(Duration::from_secs(5), "a framing error", || async {
        Ok((!sink.errors().is_empty()).then_some(()))
    })
    .await?;
    assert_eq!(sink.connections(), 2);
    Ok(())
}

#[test]
fn missing_gateway_binary_is_a_clear_error() {
    // only meaningful when the binary is really absent; otherwise check the lookup succeeds
    match gateway_interop::gateway::gateway_binary() {
        Ok(path) => assert!(path.is_file()),
        Err(e) => assert!(e.to_string().contains("NYM_GATEWAY_BIN"), "{e}"),
    }
}
