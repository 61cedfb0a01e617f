//! The test vectors of `testdata/vectors/`, compiled in (each file parsed once), and the fixed
//! keys they hold, so every test, fuzz target and benchmark uses exactly the keys the reference
//! crates used.

use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use serde_json::Value;

use crate::client::SharedKey;
use crate::fast_final_hop::FastSphinxSecret;
use crate::final_hop::SphinxSecret;

macro_rules! vector_files {
    ($($file:literal),* $(,)?) => {
        /// Name and text of every vector file.
        const FILES: &[(&str, &str)] = &[$(
            ($file, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/vectors/", $file))),
        )*];
    };
}

vector_files!(
    "authenticate_v2.json",
    "binary_frames.json",
    "error_strings.json",
    "final_hop.json",
    "framing_headers.json",
    "handshake.json",
    "json_messages.json",
    "mix_packet.json",
    "packet_sizes.json",
);

/// The request time of `authenticate_v2.json`, used as "now" so its request is fresh.
pub const AUTH_NOW: u64 = 1_750_000_000;

/// The vector file `name` (such as `"final_hop.json"`), parsed; panics on a name that is not in
/// `testdata/vectors/`.
pub fn file(name: &str) -> &'static Value {
    static PARSED: [OnceLock<Value>; FILES.len()] = [const { OnceLock::new() }; FILES.len()];
    let index = FILES
        .iter()
        .position(|(file, _)| *file == name)
        .unwrap_or_else(|| panic!("no vector file {name}"));
    PARSED[index].get_or_init(|| {
        serde_json::from_str(FILES[index].1).unwrap_or_else(|e| panic!("{name}: {e}"))
    })
}

/// A copy of [`file()`]`(name)`, for a test that keeps it.
pub fn load(name: &str) -> Value {
    file(name).clone()
}

/// Decodes the hex string `value[field]`.
pub fn hex_field(value: &Value, field: &str) -> Vec<u8> {
    let text = value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string field {field}"));
    hex::decode(text).unwrap_or_else(|e| panic!("{field}: {e}"))
}

/// Decodes the 32-byte hex string `value[field]`.
pub fn hex32(value: &Value, field: &str) -> [u8; 32] {
    hex_field(value, field)
        .try_into()
        .unwrap_or_else(|_| panic!("{field} is not 32 bytes"))
}

/// The gateway's sphinx secret in `final_hop.json` (`42…42`).
pub fn gateway_sphinx_secret() -> &'static SphinxSecret {
    static KEY: OnceLock<SphinxSecret> = OnceLock::new();
    KEY.get_or_init(|| SphinxSecret::from_bytes(gateway_sphinx_key_bytes()))
}

/// The same key, loaded for the fast final-hop path.
pub fn gateway_fast_sphinx_secret() -> &'static FastSphinxSecret {
    static KEY: OnceLock<FastSphinxSecret> = OnceLock::new();
    KEY.get_or_init(|| {
        FastSphinxSecret::from_bytes(gateway_sphinx_key_bytes())
            .expect("aws-lc loads the vector key")
    })
}

/// The bytes of that key.
pub fn gateway_sphinx_key_bytes() -> [u8; 32] {
    hex32(file("final_hop.json"), "gateway_sphinx_private_key_hex")
}

/// The sphinx secret of the mix node in `final_hop.json` (`55…55`).
pub fn mix_node_sphinx_secret() -> &'static SphinxSecret {
    static KEY: OnceLock<SphinxSecret> = OnceLock::new();
    KEY.get_or_init(|| {
        SphinxSecret::from_bytes(hex32(
            file("final_hop.json"),
            "mix_node_sphinx_private_key_hex",
        ))
    })
}

/// The gateway's ed25519 identity in `handshake.json` (`22…22`).
pub fn gateway_identity() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        SigningKey::from_bytes(&hex32(
            file("handshake.json"),
            "gateway_identity_ed25519_secret_hex",
        ))
    })
}

/// The shared key every client-side vector uses (derived in `handshake.json`).
pub fn shared_key() -> &'static SharedKey {
    static KEY: OnceLock<SharedKey> = OnceLock::new();
    KEY.get_or_init(|| {
        SharedKey::from_bytes(hex32(file("handshake.json"), "derived_shared_key_hex"))
    })
}

/// The `data_hex` of handshake message `index` (0-based) in the vector transcript.
pub fn handshake_message(index: usize) -> Vec<u8> {
    hex_field(&file("handshake.json")["transcript"][index], "data_hex")
}
