//! Building mix traffic with the published crates, and what those crates say a gateway must
//! deliver for it.
//!
//! Packets come from `nym_sphinx::preparer::MessagePreparer` (the code every Nym client runs),
//! routed over a hand-made topology: our gateway (its real keys, read from its PEM files) as the
//! egress, and nodes the test plays itself, e.g. the sender's gateway whose `mix_host` is an
//! [`AckSink`](crate::ack_sink::AckSink), so SURB-acks come back to the test.

use crate::keys::GatewayKeys;
use anyhow::{bail, ensure, Context};
use bytes::BytesMut;
use nym_crypto::asymmetric::{ed25519, x25519};
use nym_crypto::rng::{os_rng, OsRng};
use nym_sphinx::acknowledgements::identifier::recover_identifier;
use nym_sphinx::acknowledgements::AckKey;
use nym_sphinx::addressing::clients::Recipient;
use nym_sphinx::chunking::fragment::FragmentIdentifier;
use nym_sphinx::forwarding::packet::MixPacket;
use nym_sphinx::framing::codec::NymCodec;
use nym_sphinx::framing::packet::FramedNymPacket;
use nym_sphinx::framing::processing::{process_framed_packet, MixProcessingResultData};
use nym_sphinx::message::NymMessage;
use nym_sphinx::params::{PacketSize, PacketType, SphinxKeyRotation};
use nym_sphinx::preparer::MessagePreparer;
use nym_sphinx::receiver::{MessageReceiver, SphinxMessageReceiver};
use nym_sphinx::{Delay, Destination, DestinationAddressBytes, Node as SphinxNode, NymPacket};
use nym_topology::{
    CachedEpochRewardedSet, EntryDetails, NymRouteProvider, NymTopology, NymTopologyMetadata,
    RoutingNode, SupportedRoles,
};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::codec::{Decoder, Encoder};

/// Node id of the gateway under test in every topology built here.
pub const GATEWAY_NODE_ID: u32 = 1;

/// A topology node.
pub fn routing_node(
    node_id: u32,
    identity: ed25519::PublicKey,
    sphinx_key: x25519::PublicKey,
    mix_host: SocketAddr,
    clients_ws_port: Option<u16>,
) -> RoutingNode {
    RoutingNode {
        node_id,
        mix_host,
        entry: clients_ws_port.map(|port| EntryDetails {
            ip_addresses: vec![mix_host.ip()],
            clients_ws_port: port,
            hostname: None,
            clients_wss_port: None,
        }),
        identity_key: identity,
        sphinx_key,
        supported_roles: SupportedRoles {
            mixnode: false,
            mixnet_entry: true,
            mixnet_exit: true,
        },
    }
}

/// The gateway under test as a topology node.
pub fn gateway_node(keys: &GatewayKeys, mix_host: SocketAddr, clients_port: u16) -> RoutingNode {
    routing_node(
        GATEWAY_NODE_ID,
        keys.identity,
        keys.sphinx_public,
        mix_host,
        Some(clients_port),
    )
}

/// A route provider over `nodes`, every one of them an entry and exit gateway.
pub fn route_provider(nodes: &[RoutingNode]) -> NymRouteProvider {
    route_provider_with(NymTopologyMetadata::default(), nodes)
}

/// As [`route_provider`], for a topology fetched during key rotation `rotation_id`: packets
/// built with it carry that rotation's parity, as a client's do.
pub fn route_provider_at(rotation_id: u32, nodes: &[RoutingNode]) -> NymRouteProvider {
    let metadata = NymTopologyMetadata::new(rotation_id, 0, std::time::SystemTime::now());
    route_provider_with(metadata, nodes)
}

fn route_provider_with(metadata: NymTopologyMetadata, nodes: &[RoutingNode]) -> NymRouteProvider {
    let mut rewarded = CachedEpochRewardedSet::default();
    for node in nodes {
        rewarded.entry_gateways.insert(node.node_id);
        rewarded.exit_gateways.insert(node.node_id);
    }
    let topology = NymTopology::new(metadata, rewarded, nodes.to_vec());
    NymRouteProvider::new(Arc::new(topology), true)
}

/// A node the test plays itself (a mix node or another gateway): fresh keys, a chosen address.
pub struct FakeNode {
    pub node_id: u32,
    pub identity: ed25519::KeyPair,
    pub sphinx: x25519::KeyPair,
    pub mix_host: SocketAddr,
}

impl FakeNode {
    pub fn new(node_id: u32, mix_host: SocketAddr) -> Self {
        let mut rng = os_rng();
        FakeNode {
            node_id,
            identity: ed25519::KeyPair::new(&mut rng),
            sphinx: x25519::KeyPair::new(&mut rng),
            mix_host,
        }
    }

    pub fn routing_node(&self) -> RoutingNode {
        routing_node(
            self.node_id,
            *self.identity.public_key(),
            *self.sphinx.public_key(),
            self.mix_host,
            Some(9000),
        )
    }

    /// Its keys, to unwrap what the gateway forwards to it.
    pub fn keys(&self) -> GatewayKeys {
        GatewayKeys::from_parts(*self.identity.public_key(), &self.sphinx)
    }
}

/// A Nym client's keys: identity (its address), encryption key, ack key, and its gateway.
pub struct TestClient {
    pub identity: Arc<ed25519::KeyPair>,
    pub encryption: x25519::KeyPair,
    pub ack_key: AckKey,
    pub gateway: ed25519::PublicKey,
}

impl TestClient {
    pub fn new(gateway: ed25519::PublicKey) -> Self {
        let mut rng = os_rng();
        TestClient {
            identity: Arc::new(ed25519::KeyPair::new(&mut rng)),
            encryption: x25519::KeyPair::new(&mut rng),
            ack_key: AckKey::new(&mut rng),
            gateway,
        }
    }

    pub fn recipient(&self) -> Recipient {
        Recipient::new(
            *self.identity.public_key(),
            *self.encryption.public_key(),
            self.gateway,
        )
    }

    /// The 32-byte Sphinx destination address (the identity key).
    pub fn address(&self) -> [u8; 32] {
        self.identity.public_key().to_bytes()
    }

    /// The address as the gateway stores it (`client_address_bs58`).
    pub fn address_bs58(&self) -> String {
        DestinationAddressBytes::from_bytes(self.address()).as_base58_string()
    }

    /// Turns pushed/stored final-hop messages back into the sender's plaintexts.
    pub fn reassembler(&self) -> Reassembler {
        Reassembler {
            receiver: SphinxMessageReceiver::new(),
            key: x25519::PrivateKey::from_bytes(&self.encryption.private_key().to_bytes())
                .expect("a valid x25519 key"),
        }
    }

    /// The fragment an ack (the 21-byte final-hop message of a SURB-ack) acknowledges.
    pub fn acked_fragment(&self, ack_message: &[u8]) -> anyhow::Result<FragmentIdentifier> {
        ensure!(
            ack_message.len() == PacketSize::AckPacket.plaintext_size(),
            "an ack message is {} bytes, got {}",
            PacketSize::AckPacket.plaintext_size(),
            ack_message.len()
        );
        let id = recover_identifier(&self.ack_key, ack_message)
            .context("could not recover the fragment identifier from the ack")?;
        FragmentIdentifier::try_from_bytes(id).context("malformed fragment identifier in the ack")
    }
}

/// Reassembles messages from the final-hop payloads a client receives, as a Nym client does.
pub struct Reassembler {
    receiver: SphinxMessageReceiver,
    key: x25519::PrivateKey,
}

impl Reassembler {
    /// Feeds one received message; returns a plaintext once all its fragments are in.
    pub fn push(&mut self, received: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        let mut buf = received.to_vec();
        let fragment_data = self
            .receiver
            .recover_plaintext_from_regular_packet(&self.key, &mut buf)
            .context("decrypting the received message")?;
        let fragment = self
            .receiver
            .recover_fragment(fragment_data)
            .context("parsing the fragment")?;
        let message = self
            .receiver
            .insert_new_fragment(fragment)
            .context("reassembling")?;
        Ok(message.map(|(message, _)| message.into_inner_data()))
    }
}

/// One Sphinx packet ready to go: what a client would hand its gateway.
#[derive(Clone)]
pub struct Prepared {
    pub sphinx: Vec<u8>,
    pub next_hop: SocketAddr,
    pub key_rotation: SphinxKeyRotation,
    pub fragment_id: FragmentIdentifier,
}

impl Prepared {
    pub fn packet(&self) -> NymPacket {
        NymPacket::sphinx_from_bytes(&self.sphinx).expect("bytes of a valid sphinx packet")
    }

    pub fn mix_packet(&self) -> MixPacket {
        MixPacket::new(
            self.next_hop.into(),
            self.packet(),
            PacketType::Mix,
            self.key_rotation,
        )
    }

    pub fn frame(&self, framing: Framing) -> Vec<u8> {
        frame(&self.sphinx, framing)
    }

    pub fn packet_size(&self) -> PacketSize {
        PacketSize::get_type(self.sphinx.len()).expect("a known packet size")
    }
}

/// Message preparation exactly as a Nym client does it (`MessagePreparer`), with mix hops
/// disabled: route = `[recipient's gateway]`, SURB-ack route = `[sender's gateway]`.
pub struct PacketFactory {
    preparer: MessagePreparer<OsRng>,
    ack_key: AckKey,
    topology: NymRouteProvider,
}

impl PacketFactory {
    pub fn new(sender: &TestClient, topology: NymRouteProvider) -> Self {
        PacketFactory {
            preparer: MessagePreparer::new(
                os_rng(),
                false,
                sender.recipient(),
                Duration::ZERO,
                Duration::ZERO,
                true,
            ),
            ack_key: AckKey::try_from_bytes(&sender.ack_key.to_bytes()).expect("a valid ack key"),
            topology,
        }
    }

    /// Pads and splits `message` into `size` packets for `recipient`.
    pub fn prepare(
        &mut self,
        recipient: &Recipient,
        message: &[u8],
        size: PacketSize,
    ) -> anyhow::Result<Vec<Prepared>> {
        let fragments = self
            .preparer
            .pad_and_split_message(NymMessage::new_plain(message.to_vec()), size);
        fragments
            .into_iter()
            .map(|fragment| {
                let prepared = self
                    .preparer
                    .prepare_chunk_for_sending(
                        fragment,
                        &self.topology,
                        &self.ack_key,
                        recipient,
                        PacketType::Mix,
                    )
                    .context("preparing a fragment")?;
                let mix_packet = prepared.mix_packet;
                Ok(Prepared {
                    sphinx: mix_packet.packet().to_bytes()?,
                    next_hop: mix_packet.next_hop_address(),
                    key_rotation: mix_packet.key_rotation(),
                    fragment_id: prepared.fragment_identifier,
                })
            })
            .collect()
    }

    /// A message that fits in one packet of `size`.
    pub fn prepare_single(
        &mut self,
        recipient: &Recipient,
        message: &[u8],
        size: PacketSize,
    ) -> anyhow::Result<Prepared> {
        let mut packets = self.prepare(recipient, message, size)?;
        ensure!(
            packets.len() == 1,
            "message split into {} packets",
            packets.len()
        );
        Ok(packets.remove(0))
    }
}

fn sphinx_build(
    size: PacketSize,
    payload: &[u8],
    route: &[SphinxNode],
    to: &[u8; 32],
) -> anyhow::Result<Vec<u8>> {
    let destination = Destination::new(DestinationAddressBytes::from_bytes(*to), [0u8; 16]);
    let delays = vec![Delay::new_from_nanos(0); route.len()];
    let packet =
        NymPacket::sphinx_build(size.payload_size(), payload, route, &destination, &delays)
            .context("building a sphinx packet")?;
    Ok(packet.to_bytes()?)
}

/// An ack-size packet whose final hop is `gateway` (no SURB-ack inside: the whole 21-byte
/// plaintext is the message, as for a SURB-ack arriving at its client's gateway).
pub fn ack_sized_packet(
    gateway: &RoutingNode,
    to: &[u8; 32],
    plaintext: &[u8; 21],
) -> anyhow::Result<Vec<u8>> {
    sphinx_build(PacketSize::AckPacket, plaintext, &[gateway.into()], to)
}

/// A packet for which `first` is only a forward hop (the next hop is `second`).
pub fn forward_hop_packet(
    first: &RoutingNode,
    second: &RoutingNode,
    to: &[u8; 32],
) -> anyhow::Result<Vec<u8>> {
    sphinx_build(
        PacketSize::RegularPacket,
        b"this packet must not be forwarded by a gateway",
        &[first.into(), second.into()],
        to,
    )
}

/// A final-hop packet whose SURB-ack bytes do not parse (bad first-hop address type).
pub fn malformed_surb_ack_packet(gateway: &RoutingNode, to: &[u8; 32]) -> anyhow::Result<Vec<u8>> {
    let mut payload = vec![0xffu8; nym_sphinx::acknowledgements::surb_ack::SurbAck::len(None)];
    payload.extend_from_slice(b"message behind a malformed SURB-ack");
    sphinx_build(PacketSize::RegularPacket, &payload, &[gateway.into()], to)
}

/// Mix-port framing as nym-nodes send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Legacy 3-byte header (`07 size type`): what nym-nodes send today.
    V7,
    /// Current 4-byte header (`08 size type rotation`).
    V8(SphinxKeyRotation),
}

/// Frames a Sphinx packet with `NymCodec`.
pub fn frame(sphinx: &[u8], framing: Framing) -> Vec<u8> {
    let packet = NymPacket::sphinx_from_bytes(sphinx).expect("bytes of a valid sphinx packet");
    let framed = match framing {
        Framing::V7 => {
            FramedNymPacket::new(packet, PacketType::Mix, SphinxKeyRotation::Unknown, true)
        }
        Framing::V8(rotation) => FramedNymPacket::new(packet, PacketType::Mix, rotation, false),
    };
    let mut buf = BytesMut::new();
    NymCodec
        .encode(framed, &mut buf)
        .expect("encoding a framed packet");
    buf.to_vec()
}

/// Decodes exactly one frame with `NymCodec`.
pub fn decode_frame(bytes: &[u8]) -> anyhow::Result<FramedNymPacket> {
    let mut buf = BytesMut::from(bytes);
    let framed = NymCodec
        .decode(&mut buf)
        .map_err(|e| anyhow::anyhow!("NymCodec rejected the frame: {e}"))?
        .context("incomplete frame")?;
    ensure!(buf.is_empty(), "{} bytes after the frame", buf.len());
    Ok(framed)
}

/// A SURB-ack as the gateway must forward it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedAck {
    pub next_hop: SocketAddr,
    /// The 386-byte ack Sphinx packet.
    pub packet: Vec<u8>,
    /// What goes on the wire to `next_hop`, as the crates frame it without the legacy
    /// encoding: `08 02 00 <key rotation>` + `packet` (the rotation of the packet it came in).
    pub framed: Vec<u8>,
}

/// What a gateway must do with a final-hop packet, according to the crates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalHop {
    pub destination: [u8; 32],
    /// The message to push or store (SURB-ack removed).
    pub message: Vec<u8>,
    pub ack: Option<ForwardedAck>,
}

/// Unwraps one mix-port frame with `process_framed_packet` and `keys`, as a gateway does.
pub fn expected_final_hop(frame: &[u8], keys: &GatewayKeys) -> anyhow::Result<FinalHop> {
    let framed = decode_frame(frame)?;
    let processed = process_framed_packet(framed, &keys.sphinx_secret())
        .map_err(|e| anyhow::anyhow!("process_framed_packet: {e}"))?;
    let MixProcessingResultData::FinalHop { final_hop_data } = processed.processing_data else {
        bail!("not a final-hop packet");
    };
    let ack = match final_hop_data.forward_ack {
        None => None,
        Some(ack) => {
            let next_hop = ack.next_hop_address();
            let packet = ack.packet().to_bytes()?;
            let mut framed = BytesMut::new();
            NymCodec
                .encode(FramedNymPacket::from_mix_packet(ack, false), &mut framed)
                .map_err(|e| anyhow::anyhow!("framing the ack: {e}"))?;
            Some(ForwardedAck {
                next_hop,
                packet,
                framed: framed.to_vec(),
            })
        }
    };
    Ok(FinalHop {
        destination: final_hop_data.destination.as_bytes(),
        message: final_hop_data.message,
        ack,
    })
}

/// Loopback address helper.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port)
}
