//! The whole path with real tickets from the test authority: each check refuses what it
//! should, with nym-node's text, and a valid ticket passes all of them.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::OnceLock;
use std::time::Duration;

use time::Duration as Days;

use crate::authority::{Authority, TicketBook};
use crate::keys::{key_response_json, MasterKeys};
use crate::verify::{encoded_date, precheck, utc_date, TicketType, Verifier};
use crate::wire::{PayInfoFields, SpendingData};
use crate::TicketError;

/// 2026-12-04 13:20:00 UTC.
const NOW: i64 = 1_796_342_400 + 48_000;
const GATEWAY: [u8; 32] = [0x42; 32];

fn authority() -> &'static Authority {
    static AUTHORITY: OnceLock<Authority> = OnceLock::new();
    AUTHORITY.get_or_init(|| Authority::new(7, 2, 3).unwrap())
}

fn book() -> TicketBook {
    authority()
        .issue_current(TicketType::V1MixnetEntry, NOW)
        .unwrap()
}

fn verifier() -> Verifier {
    Verifier::new(GATEWAY, 30)
}

/// Every check, as the gateway runs them (the store lookup aside).
fn check(verifier: &Verifier, data: SpendingData, now: i64) -> Result<TicketType, TicketError> {
    let ticket = precheck(data, now)?;
    verifier.check_payment(&ticket, authority().master_key(), now)?;
    Ok(ticket.ticket_type)
}

#[test]
fn a_valid_ticket_passes_and_survives_its_encoding() {
    let mut book = book();
    let data = book.spend(GATEWAY, NOW).unwrap();
    let encoded = data.encode();
    let parsed = SpendingData::parse(&encoded).unwrap();
    assert_eq!(parsed, data);
    assert_eq!(parsed.serial_number().len(), 48);
    assert_eq!(parsed.epoch_id, 7);
    let verifier = verifier();
    assert_eq!(
        check(&verifier, parsed, NOW).unwrap(),
        TicketType::V1MixnetEntry
    );
    assert_eq!(verifier.remembered_pay_infos(), 1);
    assert_eq!(TicketType::V1MixnetEntry.bandwidth(), 200_000_000);
}

#[test]
fn the_pay_info_must_name_this_gateway_now_and_once() {
    let mut book = book();
    let verifier = verifier();
    let other = book.spend([0x43; 32], NOW).unwrap();
    assert!(matches!(
        check(&verifier, other, NOW),
        Err(TicketError::WrongProvider)
    ));

    let data = book.spend(GATEWAY, NOW - 31).unwrap();
    assert!(matches!(
        check(&verifier, data, NOW),
        Err(TicketError::PayInfoTimestamp)
    ));
    let data = book.spend(GATEWAY, NOW + 31).unwrap();
    assert!(matches!(
        check(&verifier, data, NOW),
        Err(TicketError::PayInfoTimestamp)
    ));
    let data = book.spend(GATEWAY, NOW - 30).unwrap();
    check(&verifier, data.clone(), NOW).expect("the window's edge is inside");
    assert!(matches!(
        check(&verifier, data.clone(), NOW),
        Err(TicketError::DuplicatePayInfo)
    ));
    // Once outside the window the entry is dropped; the timestamp check refuses it anyway.
    assert!(matches!(
        check(&verifier, data, NOW + 1),
        Err(TicketError::PayInfoTimestamp)
    ));
    let fresh = book.spend(GATEWAY, NOW + 1).unwrap();
    check(&verifier, fresh, NOW + 1).unwrap();
    assert_eq!(
        verifier.remembered_pay_infos(),
        1,
        "the old entry was dropped"
    );
}

#[test]
fn spend_date_type_and_value_are_checked_first() {
    let mut book = book();
    let verifier = verifier();
    let data = book.spend(GATEWAY, NOW).unwrap();
    let tomorrow = NOW + 86_400;
    let e = check(&verifier, data.clone(), tomorrow).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the provided credential has an invalid spending date. got 2026-12-04 but expected 2026-12-05"
    );
    let mut multiple = data.clone();
    multiple.payment.spend_value = 2;
    assert_eq!(
        check(&verifier, multiple, NOW).unwrap_err().to_string(),
        "the received payment contained more than a single ticket. that's currently not supported"
    );
    let mut unknown = data;
    unknown.payment.t_type = 4;
    assert_eq!(
        check(&verifier, unknown, NOW).unwrap_err().to_string(),
        "provided unknown ticketbook type"
    );
}

#[test]
fn forged_tickets_fail_verification() {
    let mut book = book();
    let verifier = verifier();
    // A pay info changed after the spend: the proof no longer holds.
    let mut tampered = book.spend(GATEWAY, NOW).unwrap();
    tampered.pay_info.pay_info_bytes[0] ^= 1;
    assert_eq!(
        check(&verifier, tampered, NOW).unwrap_err().to_string(),
        "the provided ticket failed to get verified"
    );
    // Another authority's ticket under this epoch's key.
    let stranger = Authority::new(7, 1, 1).unwrap();
    let mut foreign = stranger
        .issue_current(TicketType::V1MixnetEntry, NOW)
        .unwrap();
    let data = foreign.spend(GATEWAY, NOW).unwrap();
    assert!(matches!(
        check(&verifier, data, NOW),
        Err(TicketError::BadTicket)
    ));
    // Made for tomorrow, presented as today's: the expiration-date signature is tomorrow's.
    let tomorrow = utc_date(NOW) + Days::days(1);
    let pay_info = PayInfoFields {
        randomness: [1; 32],
        timestamp: NOW,
        provider: GATEWAY,
    };
    let mut data = book.spend_with(pay_info, tomorrow).unwrap();
    data.spend_date = utc_date(NOW);
    assert_eq!(
        check(&verifier, data, NOW).unwrap_err().to_string(),
        "failed to verify provided ticket due to invalid expiration date signatures"
    );
    assert_eq!(verifier.remembered_pay_infos(), 0);
}

#[test]
fn an_expired_ticketbook_cannot_spend_today() {
    let expired = utc_date(NOW) - Days::days(1);
    let mut book = authority()
        .issue(TicketType::V1MixnetEntry, expired)
        .unwrap();
    let pay_info = PayInfoFields {
        randomness: [2; 32],
        timestamp: NOW,
        provider: GATEWAY,
    };
    assert!(
        book.spend_with(pay_info, utc_date(NOW)).is_err(),
        "no date signature for today"
    );
    // Its last valid day, presented today, fails on the date.
    let data = book.spend_with(pay_info, expired).unwrap();
    assert!(matches!(
        check(&verifier(), data, NOW),
        Err(TicketError::SpendingDate { .. })
    ));
    assert_eq!(encoded_date(utc_date(NOW)), 1_796_342_400);
}

#[test]
fn parsing_never_panics() {
    let data = book().spend(GATEWAY, NOW).unwrap().encode();
    for len in 0..data.len() {
        assert!(
            SpendingData::parse(&data[..len]).is_err(),
            "truncated to {len}"
        );
    }
    // Every single-byte change either parses or is refused, never panics.
    let mut changed = data.clone();
    for i in (0..data.len()).step_by(7) {
        changed[i] ^= 0xff;
        let _ = SpendingData::parse(&changed);
        changed[i] ^= 0xff;
    }
    let mut bad_date = data.clone();
    let at = data.len() - 12;
    bad_date[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(matches!(
        SpendingData::parse(&bad_date),
        Err(crate::WireError::SpendDate(i32::MAX))
    ));
}

/// Room for any key answer (one is about 2 KB).
const MAX_ANSWER: usize = 256 * 1024;

/// A one-connection-at-a-time HTTP server answering every request with `status` and `body`;
/// returns its base URL.
fn serve(status: u16, body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn master_keys_come_from_nym_api_once_per_epoch() {
    let key = authority().master_key();
    let url = serve(200, key_response_json(key));
    let keys = MasterKeys::new(&[url], Duration::from_secs(5), 2, MAX_ANSWER);
    assert_eq!(*keys.get(7).unwrap(), *key);
    assert!(keys.cached(7).is_some());
    keys.get(8).unwrap();
    keys.get(9).unwrap();
    assert!(
        keys.cached(7).is_none(),
        "the oldest epoch leaves a full cache"
    );

    let missing = MasterKeys::new(
        &[serve(404, "\"no key\"".into())],
        Duration::from_secs(5),
        2,
        MAX_ANSWER,
    );
    assert_eq!(
        missing.get(3).unwrap_err().to_string(),
        "the DKG threshold value for epoch 3 is currently unavailable. we're probably mid-epoch transition"
    );
    let garbage = MasterKeys::new(
        &[serve(200, "{\"key\":1}".into())],
        Duration::from_secs(5),
        2,
        MAX_ANSWER,
    );
    assert!(matches!(
        garbage.get(3),
        Err(TicketError::NymApiUnavailable { epoch: 3, .. })
    ));

    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/api/", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = MasterKeys::new(&[dead], Duration::from_secs(5), 2, MAX_ANSWER);
    let e = unreachable.get(3).unwrap_err().to_string();
    assert!(
        e.starts_with("failed to query the nym API for the verification key of epoch 3: "),
        "{e}"
    );
    assert!(unreachable.cached(3).is_none(), "failures are not cached");
}

#[test]
fn a_key_answer_larger_than_the_limit_is_refused() {
    let answer = key_response_json(authority().master_key());
    let urls = [serve(200, answer.clone())];
    let exact = MasterKeys::new(&urls, Duration::from_secs(5), 2, answer.len());
    exact.get(7).unwrap();
    let short = MasterKeys::new(&urls, Duration::from_secs(5), 2, answer.len() - 1);
    let e = short.get(7).unwrap_err();
    assert!(
        matches!(e, TicketError::NymApiUnavailable { epoch: 7, .. }),
        "{e:?}"
    );
    let e = e.to_string();
    assert!(
        e.ends_with(&format!(
            "the response body is larger than request limit: {}",
            answer.len() - 1
        )),
        "{e}"
    );
    assert!(short.cached(7).is_none(), "failures are not cached");
}

#[test]
fn the_signers_body_carries_the_credential_as_nym_api_reads_it() {
    let data = book().spend(GATEWAY, NOW).unwrap();
    let body = crate::signers::verify_ticket_body(&data, "n1gateway");
    let credential = &body["credential"];
    let payment: nym_compact_ecash::scheme::Payment =
        serde_json::from_value(credential["payment"].clone()).unwrap();
    assert_eq!(payment, data.payment);
    assert_eq!(credential["pay_info"].as_array().unwrap().len(), 72);
    assert_eq!(credential["spend_date"], "2026-12-04");
    assert_eq!(credential["epoch_id"], 7);
    assert_eq!(body["gateway_cosmos_addr"], "n1gateway");
}
