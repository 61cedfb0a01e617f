//! Frames on the mix port: a 3-byte (v7) or 4-byte (v8) header, then exactly one Sphinx packet
//! whose length the header's size id implies.
//!
//! ```text
//! v7: [0]=7 version  [1]=size id  [2]=packet type
//! v8: [0]=8 version  [1]=size id  [2]=packet type  [3]=key rotation
//! ```
//! Mix nodes send v7 today; both must be accepted. [`decode`] checks each header byte as soon as
//! it has arrived, so a peer sending garbage is cut off without waiting for a body.

use crate::packet_size::{InvalidSizeId, PacketSize, UnknownPacketLength};
use thiserror::Error;

/// Packet type byte of a Sphinx packet, the only type accepted.
const PACKET_TYPE_MIX: u8 = 0;
/// Packet type byte of the retired Outfox format.
const PACKET_TYPE_OUTFOX: u8 = 2;

/// Frame header layout version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FrameVersion {
    /// Version 7: no key-rotation byte. What mix nodes send today, so the default for sending.
    #[default]
    V7,
    /// Version 8: a fourth byte names the sphinx key rotation.
    V8,
}

impl FrameVersion {
    /// The version byte.
    pub const fn byte(self) -> u8 {
        match self {
            Self::V7 => 7,
            Self::V8 => 8,
        }
    }

    /// Header length of this layout.
    pub const fn header_len(self) -> usize {
        match self {
            Self::V7 => 3,
            Self::V8 => 4,
        }
    }
}

/// Which of a node's rotating sphinx keys a packet was made for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum KeyRotation {
    /// Not stated (all v7 frames and v1 MixPackets).
    #[default]
    Unknown = 0,
    /// An odd-numbered rotation.
    Odd = 1,
    /// An even-numbered rotation.
    Even = 2,
}

/// A key-rotation byte other than 0, 1 or 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("{0} is not a valid encoding of a sphinx key rotation")]
pub struct InvalidKeyRotation(pub u8);

impl KeyRotation {
    /// The wire byte.
    pub const fn byte(self) -> u8 {
        self as u8
    }

    /// Parses a wire byte.
    pub fn from_byte(byte: u8) -> Result<Self, InvalidKeyRotation> {
        match byte {
            0 => Ok(Self::Unknown),
            1 => Ok(Self::Odd),
            2 => Ok(Self::Even),
            other => Err(InvalidKeyRotation(other)),
        }
    }
}

/// Why the bytes on a mix connection are not a frame. Every variant ends the connection, since
/// the stream can no longer be delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum FramingError {
    /// Version byte below 7.
    #[error(
        "the packet version information was malformed: attempted to use legacy packet version"
    )]
    LegacyVersion(u8),
    /// Version byte above 8.
    #[error("received unsupported packet version {0}. max supported is 8")]
    UnsupportedVersion(u8),
    /// Size id naming no supported size (including the Outfox ids 6 and 7).
    #[error("the packet size information was malformed: {0}")]
    InvalidPacketSize(InvalidSizeId),
    /// Packet type 2, the retired Outfox format.
    #[error("attempted to use outfox, but it is currently not supported by the network")]
    OutfoxUnsupported,
    /// Packet type other than 0 (Sphinx) or 2 (Outfox).
    #[error("the packet mode information was malformed: {0} is not a valid packet type tag")]
    InvalidPacketType(u8),
    /// Key-rotation byte of a v8 header other than 0, 1 or 2.
    #[error("the sphinx key rotation information was malformed: {0}")]
    InvalidKeyRotation(InvalidKeyRotation),
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    /// Header layout.
    pub version: FrameVersion,
    /// Size of the Sphinx packet that follows.
    pub packet_size: PacketSize,
    /// Sphinx key rotation; always [`KeyRotation::Unknown`] for v7.
    pub key_rotation: KeyRotation,
}

impl FrameHeader {
    /// Header plus body length.
    pub const fn frame_len(&self) -> usize {
        self.version.header_len() + self.packet_size.size()
    }

    /// Appends the header bytes to `out`. A v7 header cannot carry the key rotation and drops it.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.version.byte(), self.packet_size.id(), PACKET_TYPE_MIX]);
        if self.version == FrameVersion::V8 {
            out.push(self.key_rotation.byte());
        }
    }

    /// Checks the header bytes present at the start of `buf`, rejecting a bad byte as soon as it
    /// is there. Returns `Ok(None)` while the header is incomplete but so far valid.
    pub fn check(buf: &[u8]) -> Result<Option<Self>, FramingError> {
        let Some(&version) = buf.first() else {
            return Ok(None);
        };
        let version = match version {
            7 => FrameVersion::V7,
            8 => FrameVersion::V8,
            v if v < 7 => return Err(FramingError::LegacyVersion(v)),
            v => return Err(FramingError::UnsupportedVersion(v)),
        };
        let Some(&size_id) = buf.get(1) else {
            return Ok(None);
        };
        let packet_size = PacketSize::from_id(size_id).map_err(FramingError::InvalidPacketSize)?;
        let Some(&packet_type) = buf.get(2) else {
            return Ok(None);
        };
        match packet_type {
            PACKET_TYPE_MIX => {}
            PACKET_TYPE_OUTFOX => return Err(FramingError::OutfoxUnsupported),
            other => return Err(FramingError::InvalidPacketType(other)),
        }
        let key_rotation = match version {
            FrameVersion::V7 => KeyRotation::Unknown,
            FrameVersion::V8 => {
                let Some(&rotation) = buf.get(3) else {
                    return Ok(None);
                };
                KeyRotation::from_byte(rotation).map_err(FramingError::InvalidKeyRotation)?
            }
        };
        Ok(Some(Self {
            version,
            packet_size,
            key_rotation,
        }))
    }
}

/// One frame: its header and the Sphinx packet bytes (exactly `header.packet_size.size()` long).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The parsed header.
    pub header: FrameHeader,
    /// The Sphinx packet. Only its length has been checked.
    pub packet: Vec<u8>,
}

/// Decodes the frame at the start of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, or the frame and how many bytes of `buf` it
/// used (the caller advances its buffer by that much). An error means the connection must be
/// closed.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, FramingError> {
    let Some(header) = FrameHeader::check(buf)? else {
        return Ok(None);
    };
    let frame_len = header.frame_len();
    let Some(packet) = buf.get(header.version.header_len()..frame_len) else {
        return Ok(None);
    };
    let frame = Frame {
        header,
        packet: packet.to_vec(),
    };
    Ok(Some((frame, frame_len)))
}

/// Appends a frame carrying `packet` to `out`. The size id comes from the packet's length, so a
/// packet of no supported length is refused rather than sent with a header that would desync the
/// peer's decoder.
pub fn encode(
    version: FrameVersion,
    key_rotation: KeyRotation,
    packet: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), UnknownPacketLength> {
    let header = FrameHeader {
        version,
        packet_size: PacketSize::from_len(packet.len())?,
        key_rotation,
    };
    out.reserve(header.frame_len());
    header.encode(out);
    out.extend_from_slice(packet);
    Ok(())
}

impl Frame {
    /// Appends this frame's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), UnknownPacketLength> {
        encode(
            self.header.version,
            self.header.key_rotation,
            &self.packet,
            out,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vectors() -> Value {
        crate::test_support::vectors::load("framing_headers.json")
    }

    fn size_by_name(name: &str) -> PacketSize {
        PacketSize::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .expect("known size name")
    }

    fn rotation_by_name(name: &str) -> KeyRotation {
        match name {
            "Unknown" => KeyRotation::Unknown,
            "OddRotation" => KeyRotation::Odd,
            "EvenRotation" => KeyRotation::Even,
            other => panic!("unexpected rotation {other}"),
        }
    }

    #[test]
    fn header_vectors_encode_and_decode() {
        let v = vectors();
        let headers = v["headers"].as_array().expect("headers");
        assert_eq!(headers.len(), 20);
        for h in headers {
            let expected = hex::decode(h["header_hex"].as_str().expect("hex")).expect("hex");
            let header = FrameHeader {
                version: if h["legacy_v7"].as_bool().expect("bool") {
                    FrameVersion::V7
                } else {
                    FrameVersion::V8
                },
                packet_size: size_by_name(h["packet_size"].as_str().expect("size")),
                key_rotation: rotation_by_name(h["key_rotation"].as_str().expect("rot")),
            };
            let total = h["total_frame_len"].as_u64().expect("len") as usize;
            assert_eq!(header.frame_len(), total);

            let mut out = Vec::new();
            header.encode(&mut out);
            assert_eq!(out, expected, "{h}");
            assert_eq!(FrameHeader::check(&expected), Ok(Some(header)));

            // a whole frame decodes only once every byte is there
            let body: Vec<u8> = (0..header.packet_size.size()).map(|i| i as u8).collect();
            let mut framed = Vec::new();
            encode(header.version, header.key_rotation, &body, &mut framed).expect("encode");
            assert_eq!(framed.len(), total);
            assert_eq!(framed[..expected.len()], expected[..]);
            assert_eq!(decode(&framed[..total - 1]), Ok(None));
            let (frame, used) = decode(&framed).expect("valid").expect("complete");
            assert_eq!(used, total);
            assert_eq!(frame.header, header);
            assert_eq!(frame.packet, body);
        }
    }

    /// The vectors' inputs each have 3000 trailing bytes; the decoder must give the same answer
    /// from the header bytes alone.
    #[test]
    fn codec_error_vectors() {
        let v = vectors();
        let cases: [(&str, &[u8], FramingError); 6] = [
            (
                "06 01 00 (version 6)",
                &[6, 1, 0],
                FramingError::LegacyVersion(6),
            ),
            (
                "09 01 00 00 (version 9)",
                &[9, 1, 0, 0],
                FramingError::UnsupportedVersion(9),
            ),
            (
                "07 06 00 (size id 6, outfox_regular)",
                &[7, 6, 0],
                FramingError::InvalidPacketSize(InvalidSizeId(6)),
            ),
            (
                "07 01 02 (packet type 2, outfox)",
                &[7, 1, 2],
                FramingError::OutfoxUnsupported,
            ),
            (
                "07 01 01 (packet type 1)",
                &[7, 1, 1],
                FramingError::InvalidPacketType(1),
            ),
            (
                "08 01 00 03 (rotation 3)",
                &[8, 1, 0, 3],
                FramingError::InvalidKeyRotation(InvalidKeyRotation(3)),
            ),
        ];
        let codec_errors = v["codec_errors"].as_object().expect("codec_errors");
        assert_eq!(codec_errors.len(), cases.len() + 2);
        for (name, header, err) in cases {
            let expected = codec_errors[name]["err"].as_str().expect(name);
            assert_eq!(err.to_string(), expected);
            assert_eq!(decode(header), Err(err), "{name}");
            let mut long = header.to_vec();
            long.resize(3000 + header.len(), 0);
            assert_eq!(decode(&long), Err(err), "{name}");
        }

        assert_eq!(codec_errors["07 01 00 + 100 bytes"], "need more data");
        let mut short = vec![7, 1, 0];
        short.resize(103, 0);
        assert_eq!(decode(&short), Ok(None));

        // the codec does not look inside the Sphinx bytes
        assert_eq!(
            codec_errors["07 01 00 + 2413 zero bytes (garbage sphinx)"],
            "ok"
        );
        let mut zeros = vec![7, 1, 0];
        zeros.resize(2416, 0);
        let (frame, used) = decode(&zeros).expect("valid").expect("complete");
        assert_eq!(used, 2416);
        assert_eq!(frame.packet, vec![0; 2413]);
    }

    #[test]
    fn bad_header_is_rejected_before_the_rest_arrives() {
        assert_eq!(decode(&[]), Ok(None));
        assert_eq!(decode(&[0]), Err(FramingError::LegacyVersion(0)));
        assert_eq!(decode(&[255]), Err(FramingError::UnsupportedVersion(255)));
        assert_eq!(decode(&[7]), Ok(None));
        assert_eq!(
            decode(&[8, 0]),
            Err(FramingError::InvalidPacketSize(InvalidSizeId(0)))
        );
        assert_eq!(
            decode(&[8, 7]),
            Err(FramingError::InvalidPacketSize(InvalidSizeId(7)))
        );
        assert_eq!(decode(&[8, 2]), Ok(None));
        assert_eq!(decode(&[8, 2, 3]), Err(FramingError::InvalidPacketType(3)));
        assert_eq!(decode(&[8, 2, 0]), Ok(None));
        assert_eq!(
            decode(&[8, 2, 0, 255]),
            Err(FramingError::InvalidKeyRotation(InvalidKeyRotation(255)))
        );
        assert_eq!(decode(&[8, 2, 0, 2]), Ok(None));
        // v7 has no rotation byte: the 4th byte is already packet data
        assert_eq!(decode(&[7, 2, 0, 255]), Ok(None));
    }

    #[test]
    fn encode_refuses_unknown_lengths() {
        let mut out = Vec::new();
        assert_eq!(
            encode(FrameVersion::V7, KeyRotation::Unknown, &[0; 100], &mut out),
            Err(UnknownPacketLength(100))
        );
        assert!(out.is_empty());
    }

    #[test]
    fn v7_drops_rotation() {
        let mut out = Vec::new();
        encode(FrameVersion::V7, KeyRotation::Even, &[0; 386], &mut out).expect("encode");
        let (frame, _) = decode(&out).expect("valid").expect("complete");
        assert_eq!(frame.header.key_rotation, KeyRotation::Unknown);
    }

    #[test]
    fn key_rotation_bytes() {
        for byte in 0..=255u8 {
            match KeyRotation::from_byte(byte) {
                Ok(rotation) => assert_eq!(rotation.byte(), byte),
                Err(err) => {
                    assert!(byte > 2);
                    assert_eq!(err, InvalidKeyRotation(byte));
                }
            }
        }
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Random sequences of frames, fed in random chunk sizes, come back out unchanged.
    #[test]
    fn stream_round_trip() {
        let mut state = 0x1234_5678_9abc_def0;
        let versions = [FrameVersion::V7, FrameVersion::V8];
        let rotations = [KeyRotation::Unknown, KeyRotation::Odd, KeyRotation::Even];
        let small = [PacketSize::Ack, PacketSize::Regular, PacketSize::Extended8];
        for _ in 0..20 {
            let mut wire = Vec::new();
            let mut sent = Vec::new();
            for _ in 0..(1 + xorshift(&mut state) % 6) {
                let r = xorshift(&mut state) as usize;
                let version = versions[r % 2];
                let rotation = match version {
                    FrameVersion::V7 => KeyRotation::Unknown,
                    FrameVersion::V8 => rotations[(r >> 8) % 3],
                };
                let size = small[(r >> 16) % 3];
                let body: Vec<u8> = (0..size.size())
                    .map(|_| xorshift(&mut state) as u8)
                    .collect();
                encode(version, rotation, &body, &mut wire).expect("encode");
                sent.push((version, rotation, body));
            }

            let mut received = Vec::new();
            let mut buffer: Vec<u8> = Vec::new();
            let mut offset = 0;
            while offset < wire.len() {
                let chunk = 1 + (xorshift(&mut state) as usize % 3000);
                let end = (offset + chunk).min(wire.len());
                buffer.extend_from_slice(&wire[offset..end]);
                offset = end;
                while let Some((frame, used)) = decode(&buffer).expect("valid stream") {
                    buffer.drain(..used);
                    received.push((
                        frame.header.version,
                        frame.header.key_rotation,
                        frame.packet,
                    ));
                }
            }
            assert!(buffer.is_empty());
            assert_eq!(received, sent);
        }
    }

    /// Arbitrary bytes never panic; whatever decodes re-encodes to the bytes it came from.
    #[test]
    fn arbitrary_input() {
        let mut state = 7;
        for _ in 0..5000 {
            let len = xorshift(&mut state) as usize % 8;
            let mut bytes: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8 % 10).collect();
            if xorshift(&mut state).is_multiple_of(4) {
                bytes.resize(bytes.len() + 400, 0);
            }
            match decode(&bytes) {
                Ok(Some((frame, used))) => {
                    let mut out = Vec::new();
                    frame.encode(&mut out).expect("encode");
                    assert_eq!(out, bytes[..used]);
                }
                // only ever "need more" while the header or the body is incomplete
                Ok(None) => match FrameHeader::check(&bytes) {
                    Ok(Some(header)) => assert!(bytes.len() < header.frame_len()),
                    other => {
                        assert_eq!(other, Ok(None));
                        assert!(bytes.len() < 4);
                    }
                },
                Err(err) => assert_eq!(FrameHeader::check(&bytes), Err(err)),
            }
        }
    }
}
