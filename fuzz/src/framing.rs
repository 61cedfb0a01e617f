//! Mix-port framing ([`gateway_protocol::framing::decode`]): whatever a peer sends to port 1789.
//!
//! Input: one byte choosing the chunk size, then the byte stream. The stream is decoded frame
//! by frame from one buffer, and again fed in chunks as a connection receives it; both must
//! yield the same frames and the same end.

use gateway_protocol::framing::{
    decode, Frame, FrameHeader, FrameVersion, FramingError, KeyRotation,
};

/// How decoding a stream ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Waiting for more bytes, with this many buffered (0: a clean end between frames).
    NeedMore(usize),
    /// The connection must be closed.
    Error(FramingError),
}

pub fn run(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let whole = decode_whole(stream);
    let chunked = decode_in_chunks(stream, usize::from(chunk) + 1);
    assert_eq!(whole, chunked, "decoding in chunks changed the result");
}

fn decode_whole(stream: &[u8]) -> (Vec<Frame>, End) {
    let mut frames = Vec::new();
    let mut rest = stream;
    loop {
        match decode(rest) {
            Ok(Some((frame, used))) => {
                check_frame(rest, &frame, used);
                frames.push(frame);
                rest = &rest[used..];
            }
            Ok(None) => {
                check_incomplete(rest);
                return (frames, End::NeedMore(rest.len()));
            }
            Err(err) => {
                check_error(rest, err);
                return (frames, End::Error(err));
            }
        }
    }
}

/// What the connection task does: append each chunk, then take every complete frame.
fn decode_in_chunks(stream: &[u8], chunk: usize) -> (Vec<Frame>, End) {
    let mut frames = Vec::new();
    let mut buffer = Vec::new();
    for piece in stream.chunks(chunk) {
        buffer.extend_from_slice(piece);
        loop {
            match decode(&buffer) {
                Ok(Some((frame, used))) => {
                    frames.push(frame);
                    buffer.drain(..used);
                }
                Ok(None) => break,
                Err(err) => return (frames, End::Error(err)),
            }
        }
    }
    (frames, End::NeedMore(buffer.len()))
}

fn check_frame(input: &[u8], frame: &Frame, used: usize) {
    let header = frame.header;
    assert_eq!(used, header.frame_len());
    assert!(used <= input.len());
    assert_eq!(frame.packet.len(), header.packet_size.size());
    if header.version == FrameVersion::V7 {
        assert_eq!(header.key_rotation, KeyRotation::Unknown);
    }
    let mut header_bytes = Vec::new();
    header.encode(&mut header_bytes);
    assert_eq!(header_bytes.len(), header.version.header_len());
    assert_eq!(header_bytes[..], input[..header_bytes.len()]);

    let mut encoded = Vec::new();
    frame
        .encode(&mut encoded)
        .expect("a decoded packet has a known size");
    assert_eq!(encoded[..], input[..used], "re-encoding changed the frame");
    // one byte short is "need more", never an error or a shorter frame
    assert_eq!(decode(&input[..used - 1]), Ok(None));
}

fn check_incomplete(input: &[u8]) {
    match FrameHeader::check(input) {
        Ok(Some(header)) => assert!(input.len() < header.frame_len()),
        Ok(None) => assert!(input.len() < FrameVersion::V8.header_len()),
        Err(err) => panic!("decode wants more bytes but the header is bad: {err}"),
    }
}

fn check_error(input: &[u8], err: FramingError) {
    assert_eq!(FrameHeader::check(input), Err(err));
    // the header bytes alone decide: a bad header is refused before any body arrives
    let header = &input[..input.len().min(FrameVersion::V8.header_len())];
    assert_eq!(decode(header), Err(err));
    assert!(!err.to_string().is_empty());
}
