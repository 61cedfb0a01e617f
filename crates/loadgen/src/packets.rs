//! Real final-hop Sphinx packets for the gateway, built before a measurement starts so that
//! sending them costs the load generator only a socket write.
//!
//! Each packet is a regular-size (2413-byte) Sphinx packet whose only hop is the gateway, for
//! one client address, carrying a SURB-ack whose first hop is one of our loopback sinks and a
//! full-size message that starts with the packet's id (to match receipts to send times).

use std::net::SocketAddr;

use gateway_protocol::framing::{FrameVersion, KeyRotation};
use gateway_protocol::packet_size::{PacketSize, SURB_ACK_LEN};
use gateway_protocol::test_support::sphinx::{self, final_hop_packet, ACK_PACKET_LEN};
use rand::Rng as _;

/// The message a client receives from one regular packet: the whole plaintext after the
/// SURB-ack, as a real client fills it.
pub const MESSAGE_LEN: usize = PacketSize::Regular.plaintext_size() - SURB_ACK_LEN;

/// Frame version the packets are sent with.
pub const FRAME_VERSION: FrameVersion = FrameVersion::V7;

/// Length of one frame on the mix port.
pub const FRAME_LEN: usize = FRAME_VERSION.header_len() + PacketSize::Regular.size();

/// Where the packets go: the gateway's sphinx public key and mix address.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The gateway's x25519 sphinx public key.
    pub sphinx_key: [u8; 32],
    /// The gateway's mix port address, written into the Sphinx header as its node address.
    pub mix_addr: SocketAddr,
}

/// One pre-built packet.
#[derive(Debug, Clone)]
pub struct Packet {
    /// The id the message starts with.
    pub id: u64,
    /// Index of the recipient in the list the packets were built for.
    pub recipient: usize,
    /// The v7 frame carrying the packet.
    pub frame: Vec<u8>,
}

impl Packet {
    /// The Sphinx packet inside the frame.
    pub fn sphinx(&self) -> &[u8] {
        &self.frame[FRAME_VERSION.header_len()..]
    }
}

/// The message of packet `id`: the id, then filler.
pub fn message(id: u64) -> Vec<u8> {
    let mut message = vec![0x5a; MESSAGE_LEN];
    message[..8].copy_from_slice(&id.to_le_bytes());
    message
}

/// The id a received message starts with.
pub fn message_id(message: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(message.get(..8)?.try_into().ok()?))
}

/// The v7 frame of one packet for `client` with id `id`, whose SURB-ack goes to `ack_hop`.
pub fn build(route: &Route, client: [u8; 32], ack_hop: SocketAddr, id: u64) -> Vec<u8> {
    // The ack packet's bytes are opaque to the gateway: it forwards them as they are, so
    // they start with the id too, and a sink can tell which message each ack stands for.
    let mut ack_packet = [0u8; ACK_PACKET_LEN];
    rand::rng().fill_bytes(&mut ack_packet);
    ack_packet[..8].copy_from_slice(&id.to_le_bytes());
    let packet = final_hop_packet(
        route.sphinx_key,
        route.mix_addr,
        client,
        ack_hop,
        &ack_packet,
        &message(id),
    );
    sphinx::frame(FRAME_VERSION, KeyRotation::Unknown, &packet)
}

/// `count` packets with ids `first_id..`, recipients taken round-robin from `recipients` and
/// ack hops from `ack_hops`, built on `threads` threads.
pub fn build_many(
    route: &Route,
    recipients: &[[u8; 32]],
    ack_hops: &[SocketAddr],
    first_id: u64,
    count: usize,
    threads: usize,
) -> Vec<Packet> {
    assert!(!recipients.is_empty() && !ack_hops.is_empty());
    let threads = threads.clamp(1, count.max(1));
    let per_thread = count.div_ceil(threads);
    let mut packets = Vec::with_capacity(count);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let start = t * per_thread;
                let end = (start + per_thread).min(count);
                scope.spawn(move || {
                    (start..end)
                        .map(|n| {
                            let recipient = n % recipients.len();
                            let id = first_id + n as u64;
                            let ack_hop = ack_hops[n % ack_hops.len()];
                            Packet {
                                id,
                                recipient,
                                frame: build(route, recipients[recipient], ack_hop, id),
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for worker in workers {
            packets.extend(worker.join().expect("packet builder thread"));
        }
    });
    packets
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_protocol::final_hop::{self, Hop, SphinxSecret};

    #[test]
    fn built_packets_unwrap_to_their_message_and_ack() {
        let secret = SphinxSecret::from_bytes([7; 32]);
        let route = Route {
            sphinx_key: secret.public_key(),
            mix_addr: "127.0.0.1:1789".parse().unwrap(),
        };
        let sink: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let packets = build_many(&route, &[[1; 32], [2; 32]], &[sink], 40, 3, 2);
        assert_eq!(packets.len(), 3);
        for (n, packet) in packets.iter().enumerate() {
            assert_eq!(packet.frame.len(), FRAME_LEN);
            assert_eq!(packet.id, 40 + n as u64);
            let unwrapped =
                final_hop::unwrap(&secret, packet.sphinx(), KeyRotation::Unknown).unwrap();
            let Hop::Final(hop) = unwrapped.hop else {
                panic!("expected a final hop");
            };
            assert_eq!(hop.destination, [[1; 32], [2; 32]][packet.recipient]);
            assert_eq!(hop.message.len(), MESSAGE_LEN);
            assert_eq!(message_id(&hop.message), Some(packet.id));
            let ack = hop.ack.unwrap();
            assert_eq!(ack.next_hop, sink);
            assert_eq!(message_id(&ack.packet), Some(packet.id));
        }
    }

    #[test]
    fn message_ids_round_trip() {
        assert_eq!(message_id(&message(u64::MAX - 3)), Some(u64::MAX - 3));
        assert_eq!(message_id(&[1, 2, 3]), None);
    }
}
