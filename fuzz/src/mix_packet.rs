//! MixPackets ([`MixPacket::decode_v1`] / [`MixPacket::decode_v2`]): what an authenticated
//! client asks the gateway to forward.

use gateway_protocol::framing::{self, FrameVersion, KeyRotation};
use gateway_protocol::mix_packet::{MixPacket, MixPacketError};
use gateway_protocol::packet_size::PacketSize;
use gateway_protocol::routing_address;

pub fn run(data: &[u8]) {
    let v1 = MixPacket::decode_v1(data);
    check(data, &v1, 1);
    check(data, &MixPacket::decode_v2(data), 2);

    // v1 is v2 without the rotation byte: inserting a 0 there must not change the result
    if let Some((&packet_type, rest)) = data.split_first() {
        let widened = [&[packet_type, KeyRotation::Unknown.byte()][..], rest].concat();
        assert_eq!(MixPacket::decode_v2(&widened), v1);
    }
}

/// Checks the result of decoding `data` in `version` 1 or 2.
pub fn check(data: &[u8], result: &Result<MixPacket, MixPacketError>, version: u8) {
    let fixed = usize::from(version);
    match result {
        Ok(packet) => {
            assert_eq!(
                PacketSize::from_len(packet.packet.len()),
                Ok(packet.packet_size)
            );
            let encoded = if version == 1 {
                assert_eq!(packet.key_rotation, KeyRotation::Unknown);
                packet.to_v1_bytes()
            } else {
                packet.to_v2_bytes()
            };
            assert_eq!(
                encoded, data,
                "re-encoding changed the v{version} MixPacket"
            );
            let (next_hop, used) =
                routing_address::decode(&data[fixed..]).expect("the address decoded before");
            assert_eq!(next_hop, packet.next_hop);
            assert_eq!(data[fixed + used..], packet.packet[..]);

            // what the egress sends: a frame that decodes to the same packet and rotation
            let mut frame = Vec::new();
            packet
                .encode_frame(FrameVersion::V8, &mut frame)
                .expect("a decoded packet has a known size");
            let (decoded, used) = framing::decode(&frame)
                .expect("our frame is valid")
                .expect("our frame is complete");
            assert_eq!(used, frame.len());
            assert_eq!(decoded.packet, packet.packet);
            assert_eq!(decoded.header.key_rotation, packet.key_rotation);
            assert_eq!(decoded.header.packet_size, packet.packet_size);
        }
        Err(err) => {
            if data.len() <= fixed {
                assert_eq!(*err, MixPacketError::TooShort);
            }
            if *err == MixPacketError::TooShort {
                assert!(data.len() <= fixed);
            }
            let reply = err.gateway_reply();
            assert!(reply.ends_with(&err.to_string()));
        }
    }
}
