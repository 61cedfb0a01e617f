//! Client JSON text frames ([`ClientRequest::parse`], and [`HandshakeFrame::parse`] during a
//! registration). Websocket text frames are UTF-8, so only UTF-8 input reaches the parsers.

use ed25519_dalek::VerifyingKey;
use gateway_protocol::client::{ClientRequest, HandshakeFrame};

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(request) = ClientRequest::parse(text) {
        check_request(&request);
    }
    if let Some(frame) = HandshakeFrame::parse(text) {
        let again = serde_json::to_string(&frame).expect("a handshake frame serializes");
        assert_eq!(HandshakeFrame::parse(&again), Some(frame));
    }
}

/// parse → to_text → parse gives the same request, and to_text is stable.
pub fn check_request(request: &ClientRequest) {
    let text = request.to_text();
    let again = ClientRequest::parse(&text)
        .unwrap_or_else(|e| panic!("our own text {text:?} does not parse: {e}"));
    assert_eq!(&again, request, "{text}");
    assert_eq!(again.to_text(), text);
    if let ClientRequest::AuthenticateV2(auth) = request {
        assert!(
            VerifyingKey::from_bytes(&auth.client_identity).is_ok(),
            "an accepted authenticateV2 carries a valid ed25519 point"
        );
        assert_eq!(
            auth.signed_message().len(),
            1 + 32 + auth.address_ciphertext.len() + auth.nonce.len() + 8
        );
    }
}
