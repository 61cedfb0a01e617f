//! The `ecashCredential` plaintext (`SpendingData::parse`), as a client sends it: any bytes
//! give a credential or an error, never a panic; a parsed credential encodes to bytes that
//! parse to the same credential, with a 48-byte serial number (one ticket's) or a multiple.

use gateway_ecash::SpendingData;

pub fn run(data: &[u8]) {
    let Ok(parsed) = SpendingData::parse(data) else {
        return;
    };
    let encoded = parsed.encode();
    let again = SpendingData::parse(&encoded).expect("an encoded credential parses");
    assert_eq!(again, parsed, "encode and parse round-trip");
    assert_eq!(parsed.serial_number().len() % 48, 0);
}
