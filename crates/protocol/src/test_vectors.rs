//! Loading the vectors in `testdata/vectors/` for the tests of this crate.

/// Parses one vector file.
pub(crate) fn load(file: &str) -> serde_json::Value {
    let path = format!(
        "{}/../../testdata/vectors/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Decodes the hex string `value[field]`.
pub(crate) fn hex_field(value: &serde_json::Value, field: &str) -> Vec<u8> {
    let text = value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string field {field}"));
    hex::decode(text).unwrap_or_else(|e| panic!("{field}: {e}"))
}

/// Decodes a 32-byte hex field.
pub(crate) fn hex32(value: &serde_json::Value, field: &str) -> [u8; 32] {
    hex_field(value, field)
        .try_into()
        .unwrap_or_else(|_| panic!("{field} is not 32 bytes"))
}
