//! The 8-byte header in front of every Noise message on the mix port, as nym-node frames it:
//!
//! ```text
//! [0] version (1)  [1] pattern (1 = XKpsk3)  [2] type (0 handshake, 1 data)
//! [3..5] payload length, u16 big-endian     [5..8] reserved, zero
//! ```
//!
//! Parsing checks every byte it knows (the reserved ones are ignored, as nym-node does), so a peer that is not speaking Noise is cut off on its
//! first header instead of after a long payload.

use thiserror::Error;

/// Header length.
pub const HEADER_LEN: usize = 8;
/// The only Noise version there is; also the first byte of every Noise frame, which is how a
/// Noise connection is told from a plain one (plain frames start with 7 or 8).
pub const VERSION: u8 = 1;
/// `Noise_XKpsk3_25519_AESGCM_SHA256`.
pub const PATTERN_XKPSK3: u8 = 1;
/// Largest payload a frame can carry (its length is a u16).
pub const MAX_PAYLOAD: usize = u16::MAX as usize;

/// Handshake or transport data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A handshake message.
    Handshake = 0,
    /// An encrypted transport message.
    Data = 1,
}

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Handshake or data.
    pub kind: Kind,
    /// Payload bytes after the header.
    pub len: u16,
}

/// A header that is not one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HeaderError {
    /// Another Noise version (or no Noise at all).
    #[error("unsupported Noise version {0}")]
    Version(u8),
    /// Another handshake pattern.
    #[error("unsupported Noise pattern {0}")]
    Pattern(u8),
    /// Neither handshake nor data.
    #[error("unknown Noise message type {0}")]
    Kind(u8),
}

impl Header {
    /// The header of a `kind` frame carrying `len` bytes.
    pub fn new(kind: Kind, len: u16) -> Self {
        Self { kind, len }
    }

    /// The wire bytes.
    pub fn encode(self) -> [u8; HEADER_LEN] {
        let [hi, lo] = self.len.to_be_bytes();
        [VERSION, PATTERN_XKPSK3, self.kind as u8, hi, lo, 0, 0, 0]
    }

    /// Parses the first [`HEADER_LEN`] bytes of `bytes` (the caller has at least that many).
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Self, HeaderError> {
        if bytes[0] != VERSION {
            return Err(HeaderError::Version(bytes[0]));
        }
        if bytes[1] != PATTERN_XKPSK3 {
            return Err(HeaderError::Pattern(bytes[1]));
        }
        let kind = match bytes[2] {
            0 => Kind::Handshake,
            1 => Kind::Data,
            other => return Err(HeaderError::Kind(other)),
        };
        Ok(Self {
            kind,
            len: u16::from_be_bytes([bytes[3], bytes[4]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_nym_nodes_layout() {
        assert_eq!(
            Header::new(Kind::Handshake, 48).encode(),
            [1, 1, 0, 0, 48, 0, 0, 0]
        );
        assert_eq!(
            Header::new(Kind::Data, 0x1234).encode(),
            [1, 1, 1, 0x12, 0x34, 0, 0, 0]
        );
    }

    #[test]
    fn round_trips() {
        for kind in [Kind::Handshake, Kind::Data] {
            for len in [0, 1, 48, 65535] {
                let h = Header::new(kind, len);
                assert_eq!(Header::decode(&h.encode()), Ok(h));
            }
        }
    }

    #[test]
    fn refuses_every_foreign_byte() {
        let good = Header::new(Kind::Data, 10).encode();
        let with = |i: usize, b: u8| {
            let mut h = good;
            h[i] = b;
            Header::decode(&h)
        };
        // A plain v7/v8 mix frame starts with its version byte.
        assert_eq!(with(0, 7), Err(HeaderError::Version(7)));
        assert_eq!(with(0, 8), Err(HeaderError::Version(8)));
        assert_eq!(with(1, 2), Err(HeaderError::Pattern(2)));
        assert_eq!(with(2, 2), Err(HeaderError::Kind(2)));
        // Reserved bytes are ignored, as nym-node ignores them: a later version may use them.
        assert_eq!(with(6, 1), Ok(Header::new(Kind::Data, 10)));
    }
}
