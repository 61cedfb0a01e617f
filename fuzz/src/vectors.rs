//! Fixed keys and messages from `testdata/vectors/`, compiled in so the targets use exactly the
//! keys the unit tests and the reference crates used.

use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use gateway_protocol::client::SharedKey;
use gateway_protocol::fast_final_hop::FastSphinxSecret;
use gateway_protocol::final_hop::SphinxSecret;
use serde_json::Value;

macro_rules! vector_file {
    ($name:ident, $file:literal) => {
        #[doc = concat!("`testdata/vectors/", $file, "`, parsed.")]
        pub fn $name() -> &'static Value {
            static PARSED: OnceLock<Value> = OnceLock::new();
            PARSED.get_or_init(|| {
                serde_json::from_str(include_str!(concat!("../../testdata/vectors/", $file)))
                    .expect(concat!($file, " is JSON"))
            })
        }
    };
}

vector_file!(final_hop, "final_hop.json");
vector_file!(handshake, "handshake.json");
vector_file!(authenticate_v2, "authenticate_v2.json");
vector_file!(binary_frames, "binary_frames.json");
vector_file!(json_messages, "json_messages.json");
vector_file!(mix_packet, "mix_packet.json");
vector_file!(framing_headers, "framing_headers.json");

/// The request time of `authenticate_v2.json`, used as "now" so its request is fresh.
pub const AUTH_NOW: u64 = 1_750_000_000;

/// Decodes the hex string `value[key]`.
pub fn hex(value: &Value, key: &str) -> Vec<u8> {
    let text = value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no hex field {key}"));
    ::hex::decode(text).unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// Decodes the 32-byte hex string `value[key]`.
pub fn hex32(value: &Value, key: &str) -> [u8; 32] {
    hex(value, key)
        .try_into()
        .unwrap_or_else(|_| panic!("{key} is not 32 bytes"))
}

/// The gateway's sphinx secret (`42…42`).
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

fn gateway_sphinx_key_bytes() -> [u8; 32] {
    hex32(final_hop(), "gateway_sphinx_private_key_hex")
}

/// The sphinx secret of the mix node in `final_hop.json` (`55…55`).
pub fn mix_node_sphinx_secret() -> &'static SphinxSecret {
    static KEY: OnceLock<SphinxSecret> = OnceLock::new();
    KEY.get_or_init(|| {
        SphinxSecret::from_bytes(hex32(final_hop(), "mix_node_sphinx_private_key_hex"))
    })
}

/// The gateway's ed25519 identity from `handshake.json` (`22…22`).
pub fn gateway_identity() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        SigningKey::from_bytes(&hex32(handshake(), "gateway_identity_ed25519_secret_hex"))
    })
}

/// The shared key every client-side vector uses (derived in `handshake.json`).
pub fn shared_key() -> &'static SharedKey {
    static KEY: OnceLock<SharedKey> = OnceLock::new();
    KEY.get_or_init(|| SharedKey::from_bytes(hex32(handshake(), "derived_shared_key_hex")))
}

/// The `data_hex` of handshake message `index` (0-based) in the vector transcript.
pub fn handshake_message(index: usize) -> Vec<u8> {
    hex(&handshake()["transcript"][index], "data_hex")
}
