//! Upgrade mode's peer inputs: the document at the attestation URL (first byte even) and a
//! client's `upgradeModeJWT` (first byte odd), checked against a fixed test attester at a fixed
//! time. Nothing panics; an attestation that is taken was signed by the attester and reads back
//! from its own JSON; a JWT that is taken carries an attestation whose JSON parses.

use gateway_ecash::upgrade_mode::{parse_published, verify_jwt, TestAttester};

/// The seeds' clock (the JWT seed was issued then).
const NOW: i64 = 1_796_342_400 + 48_000;

pub fn run(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let attester = TestAttester::new([3; 32], [4; 32]).public_key();
    if selector % 2 == 0 {
        if let Ok(Some(attestation)) = parse_published(rest, &attester) {
            assert_eq!(attestation.verify(&attester), Ok(()));
            assert_eq!(
                parse_published(attestation.to_json().as_bytes(), &attester),
                Ok(Some(attestation))
            );
        }
    } else if let Ok(token) = std::str::from_utf8(rest) {
        if let Ok(attestation) = verify_jwt(token, NOW) {
            let json: serde_json::Value =
                serde_json::from_str(&attestation.to_json()).expect("JSON");
            assert_eq!(json["type"], "upgrade_mode");
        }
    }
}
