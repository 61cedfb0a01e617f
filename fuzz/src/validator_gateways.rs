//! The validator API's `/v1/gateways` body ([`parse_gateways`]) and the duplicate-host decision
//! on it ([`outcome`]). What parses agrees with the body read as plain JSON (an array with, in
//! each element, a `gateway` object whose `host` and `identity_key` are those strings); the
//! decision is the first bonded gateway with our host, whatever else the list holds.
//!
//! The typed parse skips the fields it does not read without checking their strings (invalid
//! UTF-8, lone surrogate escapes, control characters), which plain JSON refuses: such a body is
//! only checked for the decision.

use nym_gateway::node::validator_check::{outcome, parse_gateways, BondedGateway, CheckOutcome};
use serde_json::Value;

/// An announce host no seed uses.
const OTHER_HOST: &str = "gw.example.test";

pub fn run(data: &[u8]) {
    let Ok(bonded) = parse_gateways(data) else {
        return;
    };
    match serde_json::from_slice::<Value>(data) {
        Ok(json) => {
            let elements = json.as_array().expect("the body is an array");
            assert_eq!(elements.len(), bonded.len());
            for (element, gateway) in elements.iter().zip(&bonded) {
                assert_eq!(
                    element["gateway"]["host"].as_str(),
                    Some(gateway.host.as_str())
                );
                assert_eq!(
                    element["gateway"]["identity_key"].as_str(),
                    Some(gateway.identity_key.as_str())
                );
            }
        }
        Err(e) => {
            let e = e.to_string();
            assert!(
                ["unicode", "surrogate", "hex escape", "control character"]
                    .iter()
                    .any(|skipped| e.contains(skipped)),
                "parsed as bonds, but not JSON: {e}"
            );
        }
    }

    // Our host: not listed, or each listed host with its own identity and with another one.
    assert_eq!(
        outcome(&bonded, OTHER_HOST, "me").map_err(|e| e.identity),
        decision(&bonded, OTHER_HOST, "me")
    );
    for gateway in bonded.iter().take(4) {
        for identity in [gateway.identity_key.as_str(), "me"] {
            let decided = outcome(&bonded, &gateway.host, identity).map_err(|e| e.identity);
            assert_eq!(decided, decision(&bonded, &gateway.host, identity));
            if let Err(other) = &decided {
                assert_ne!(other, identity, "our own identity is never a duplicate");
            }
        }
    }
}

/// The decision worked out separately: the first listed gateway with `host`.
fn decision(bonded: &[BondedGateway], host: &str, identity: &str) -> Result<CheckOutcome, String> {
    let Some(index) = bonded.iter().position(|g| g.host == host) else {
        return Ok(CheckOutcome::Clear);
    };
    let first = &bonded[index];
    if first.identity_key == identity {
        Ok(CheckOutcome::OurselvesBonded)
    } else {
        Err(first.identity_key.clone())
    }
}
