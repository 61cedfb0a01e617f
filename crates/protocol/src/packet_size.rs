//! The Sphinx packet sizes of the mixnet and their one-byte wire ids.
//!
//! A frame on the mix port carries no length field: the size id in its header implies the
//! length of the Sphinx packet that follows. Client-submitted packets carry no id at all, so
//! their size is recovered from their length ([`PacketSize::from_len`]).

use thiserror::Error;

/// Bytes of a Sphinx header: α (32) + MAC (16) + routing information (5 hops × 60).
pub const SPHINX_HEADER_LEN: usize = 348;

/// Bytes a Sphinx payload adds around its plaintext: 16 leading zeros + the `0x01` padding marker.
pub const PAYLOAD_OVERHEAD_LEN: usize = 17;

/// Length of the SURB-ack at the start of a final-hop plaintext: a zero-padded 19-byte first-hop
/// address followed by an ack-size Sphinx packet.
pub const SURB_ACK_LEN: usize = crate::routing_address::MAX_LEN + PacketSize::Ack.size();

/// One of the Sphinx packet sizes in use. The discriminant is the wire id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketSize {
    /// `regular`: 2413 bytes, 2048 bytes of plaintext. The default.
    Regular = 1,
    /// `ack`: 386 bytes, the size of SURB-acks (21 bytes of plaintext).
    Ack = 2,
    /// `extended32`: 33133 bytes, 32 KiB of plaintext.
    Extended32 = 3,
    /// `extended8`: 8557 bytes, 8 KiB of plaintext.
    Extended8 = 4,
    /// `extended16`: 16749 bytes, 16 KiB of plaintext.
    Extended16 = 5,
}

/// A size id that names no supported size (ids 6 and 7 were Outfox sizes and are rejected).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("{0} is not a valid packet size tag")]
pub struct InvalidSizeId(pub u8);

/// A byte length that is not the length of any supported Sphinx packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("{0} does not correspond with any known packet size")]
pub struct UnknownPacketLength(pub usize);

impl PacketSize {
    /// Every supported size, in id order.
    pub const ALL: [Self; 5] = [
        Self::Regular,
        Self::Ack,
        Self::Extended32,
        Self::Extended8,
        Self::Extended16,
    ];

    /// The one-byte wire id.
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// The size's name as it appears in configuration and logs (`regular`, `ack`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Regular => "regular",
            Self::Ack => "ack",
            Self::Extended32 => "extended32",
            Self::Extended8 => "extended8",
            Self::Extended16 => "extended16",
        }
    }

    /// The plaintext a packet of this size carries (before any SURB-ack split).
    pub const fn plaintext_size(self) -> usize {
        match self {
            Self::Regular => 2048,
            // 16-byte IV + 5-byte fragment id
            Self::Ack => 21,
            Self::Extended32 => 32 * 1024,
            Self::Extended8 => 8 * 1024,
            Self::Extended16 => 16 * 1024,
        }
    }

    /// The Sphinx payload length: plaintext plus the payload overhead.
    pub const fn payload_size(self) -> usize {
        self.plaintext_size() + PAYLOAD_OVERHEAD_LEN
    }

    /// The total length of the Sphinx packet: header plus payload.
    pub const fn size(self) -> usize {
        SPHINX_HEADER_LEN + self.payload_size()
    }

    /// Whether a final-hop plaintext of this size starts with a SURB-ack. Acks themselves carry
    /// none.
    pub const fn has_surb_ack(self) -> bool {
        !matches!(self, Self::Ack)
    }

    /// The size with wire id `id`.
    pub fn from_id(id: u8) -> Result<Self, InvalidSizeId> {
        Self::ALL
            .into_iter()
            .find(|size| size.id() == id)
            .ok_or(InvalidSizeId(id))
    }

    /// The size whose total Sphinx length is exactly `len`.
    pub fn from_len(len: usize) -> Result<Self, UnknownPacketLength> {
        Self::ALL
            .into_iter()
            .find(|size| size.size() == len)
            .ok_or(UnknownPacketLength(len))
    }
}

impl std::fmt::Display for PacketSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vectors() -> Value {
        crate::test_support::vectors::load("packet_sizes.json")
    }

    #[test]
    fn sizes_match_vectors() {
        let v = vectors();
        let sizes = v["sizes"].as_array().expect("sizes");
        assert_eq!(sizes.len(), PacketSize::ALL.len());
        for entry in sizes {
            let id = u8::try_from(entry["id"].as_u64().expect("id")).expect("id fits u8");
            let size = PacketSize::from_id(id).expect("known id");
            assert_eq!(size.id(), id);
            assert_eq!(size.name(), entry["name"].as_str().expect("name"));
            assert_eq!(size.to_string(), size.name());
            assert_eq!(size.size() as u64, entry["size"].as_u64().expect("size"));
            assert_eq!(
                size.payload_size() as u64,
                entry["payload_size"].as_u64().expect("payload_size")
            );
            assert_eq!(
                size.plaintext_size() as u64,
                entry["plaintext_size"].as_u64().expect("plaintext_size")
            );
            assert_eq!(
                SPHINX_HEADER_LEN as u64,
                entry["header_size"].as_u64().expect("header_size")
            );
            assert_eq!(PacketSize::from_len(size.size()), Ok(size));
        }
        assert_eq!(
            SURB_ACK_LEN as u64,
            v["surb_ack_len"].as_u64().expect("ack len")
        );
        assert_eq!(
            crate::routing_address::MAX_LEN as u64,
            v["max_node_address_unpadded_len"]
                .as_u64()
                .expect("max addr len")
        );
    }

    #[test]
    fn outfox_and_unknown_ids_are_rejected() {
        let v = vectors();
        assert_eq!(v["size_id_6_7_accepted"], serde_json::json!([false, false]));
        for id in [0u8, 6, 7, 8, 255] {
            assert_eq!(PacketSize::from_id(id), Err(InvalidSizeId(id)));
        }
        assert_eq!(
            InvalidSizeId(6).to_string(),
            "6 is not a valid packet size tag"
        );
    }

    #[test]
    fn unknown_lengths_are_rejected() {
        for len in [0, 1, 385, 387, 2412, 2414, 100_000] {
            assert_eq!(PacketSize::from_len(len), Err(UnknownPacketLength(len)));
        }
        assert_eq!(
            UnknownPacketLength(100).to_string(),
            "100 does not correspond with any known packet size"
        );
    }

    #[test]
    fn constants_agree_with_sphinx_library() {
        assert_eq!(SPHINX_HEADER_LEN, sphinx_packet::header::HEADER_SIZE);
        assert_eq!(
            PAYLOAD_OVERHEAD_LEN,
            sphinx_packet::payload::PAYLOAD_OVERHEAD_SIZE
        );
    }

    #[test]
    fn only_ack_size_lacks_surb_ack() {
        for size in PacketSize::ALL {
            assert_eq!(size.has_surb_ack(), size != PacketSize::Ack);
        }
    }
}
