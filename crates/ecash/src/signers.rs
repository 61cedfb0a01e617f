//! The e-cash signers' (nym-apis') verification of a ticket a gateway accepted:
//! `POST /v1/ecash/verify-ecash-ticket` with nym-api's `VerifyEcashTicketBody`, answered by an
//! `EcashTicketVerificationResponse`. Only the JSON is here; the gateway sends it.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::wire::SpendingData;

/// The route under a signer's API base.
pub const VERIFY_TICKET_PATH: &str = "v1/ecash/verify-ecash-ticket";

/// The request body: the credential as nym-api's serde reads it (group elements as hex
/// strings, the pay info as 72 numbers, the date as `YYYY-MM-DD`, which nym-api accepts as
/// well as its tuple form) and the gateway's nyx account address.
pub fn verify_ticket_body(data: &SpendingData, gateway_cosmos_addr: &str) -> Value {
    json!({
        "credential": {
            "payment": data.payment,
            "pay_info": data.pay_info.pay_info_bytes.to_vec(),
            "spend_date": data.spend_date.to_string(),
            "epoch_id": data.epoch_id,
        },
        "gateway_cosmos_addr": gateway_cosmos_addr,
    })
}

/// A signer's verdict on a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vote {
    /// `{"verified":{"Ok":null}}`.
    Accepted,
    /// `{"verified":{"Err":…}}`: why, as the signer put it (`DoubleSpend`, `InvalidTicket`, …).
    Rejected(String),
}

#[derive(Deserialize)]
struct Response {
    verified: Verified,
}

#[derive(Deserialize)]
enum Verified {
    Ok(serde::de::IgnoredAny),
    Err(Value),
}

/// Reads a signer's answer; `None` if it is not one (an error page, a non-signer's text).
pub fn parse_vote(body: &[u8]) -> Option<Vote> {
    let response: Response = serde_json::from_slice(body).ok()?;
    Some(match response.verified {
        Verified::Ok(serde::de::IgnoredAny) => Vote::Accepted,
        Verified::Err(Value::String(reason)) => Vote::Rejected(reason),
        Verified::Err(other) => Vote::Rejected(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes_are_read_from_nym_apis_answers() {
        assert_eq!(
            parse_vote(br#"{"verified":{"Ok":null}}"#),
            Some(Vote::Accepted)
        );
        assert_eq!(
            parse_vote(br#"{"verified":{"Err":"DoubleSpend"}}"#),
            Some(Vote::Rejected("DoubleSpend".into()))
        );
        assert!(matches!(
            parse_vote(br#"{"verified":{"Err":{"InvalidSpentDate":{"today":"2026-12-04"}}}}"#),
            Some(Vote::Rejected(reason)) if reason.contains("InvalidSpentDate")
        ));
        assert_eq!(parse_vote(b"\"this nym-api is not an ecash signer\""), None);
        assert_eq!(parse_vote(b"<html>"), None);
    }
}
