//! SURB-ack recovery ([`split_surb_ack`]) on arbitrary final-hop plaintexts: what a client put
//! in front of its message.
//!
//! Input: one control byte (packet size, key rotation), then the plaintext.

use gateway_protocol::final_hop::{split_surb_ack, UnwrapError};
use gateway_protocol::framing::{self, FrameVersion};
use gateway_protocol::packet_size::{PacketSize, SURB_ACK_LEN};
use gateway_protocol::routing_address::{self, MAX_LEN};

pub fn run(data: &[u8]) {
    let Some((&control, plaintext)) = data.split_first() else {
        return;
    };
    let size = PacketSize::ALL[usize::from(control % 5)];
    let rotation = crate::rotation(control / 5);
    let result = split_surb_ack(size, rotation, plaintext.to_vec());

    if !size.has_surb_ack() {
        let (ack, message) = result.expect("ack-size plaintexts are all message");
        assert_eq!(ack, None);
        assert_eq!(message, plaintext);
        return;
    }
    match result {
        Ok((ack, message)) => {
            let ack = ack.expect("a packet of this size carries a SURB-ack");
            assert!(plaintext.len() >= SURB_ACK_LEN);
            assert_eq!(message, plaintext[SURB_ACK_LEN..]);
            assert_eq!(ack.packet, plaintext[MAX_LEN..SURB_ACK_LEN]);
            assert_eq!(ack.packet_size, PacketSize::Ack);
            assert_eq!(PacketSize::from_len(ack.packet.len()), Ok(PacketSize::Ack));
            assert_eq!(ack.key_rotation, rotation);
            assert!(plaintext.starts_with(&routing_address::to_bytes(&ack.next_hop)));

            // the ack can always be framed and sent on
            let mut frame = Vec::new();
            ack.encode_frame(FrameVersion::V8, &mut frame)
                .expect("an ack has the ack size");
            let (decoded, used) = framing::decode(&frame)
                .expect("our frame is valid")
                .expect("our frame is complete");
            assert_eq!(used, frame.len());
            assert_eq!(decoded.packet, ack.packet);
            assert_eq!(decoded.header.key_rotation, rotation);
        }
        Err(UnwrapError::MissingSurbAck { plaintext_len }) => {
            assert_eq!(plaintext_len, plaintext.len());
            assert!(plaintext_len < SURB_ACK_LEN);
        }
        Err(UnwrapError::MalformedSurbAck(err)) => {
            assert!(plaintext.len() >= SURB_ACK_LEN);
            assert_eq!(routing_address::decode(&plaintext[..MAX_LEN]), Err(err));
        }
        Err(other) => panic!("unexpected error from the split: {other}"),
    }
}
