//! The e-cash endpoints over real HTTP, checked with the gateway's own ticket code: the key it
//! fetches, the checks it runs, and a signer's answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gateway_ecash::{precheck, MasterKeys, PayInfoFields, TicketError, Verifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::api;
use crate::clock::Clock;
use crate::directory::Directory;

const GATEWAY: [u8; 32] = [7; 32];
const TIMEOUT: Duration = Duration::from_secs(30);

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// nym-api's endpoints on a free port, with a fresh authority.
struct Server {
    address: SocketAddr,
    ecash: Arc<Ecash>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start() -> Self {
        let ecash = Arc::new(
            tokio::task::spawn_blocking(Ecash::new)
                .await
                .unwrap()
                .unwrap(),
        );
        let directory = Arc::new(Directory::new(Clock::new(
            SystemTime::now(),
            Duration::from_secs(60),
            2,
        )));
        let listener = api::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(api::serve(
            listener,
            directory,
            Some(ecash.clone()),
            shutdown.clone(),
        ));
        Self {
            address,
            ecash,
            shutdown,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }

    /// `method path` with a JSON `body`: the status and the body of the answer.
    async fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(self.address).await.unwrap();
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                self.address,
                body.len()
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            stream.write_all(body).await.unwrap();
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await.unwrap();
            response
        };
        let response = tokio::time::timeout(TIMEOUT, exchange).await.unwrap();
        let end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&response[..end]).to_string();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, response[end + 4..].to_vec())
    }

    async fn ticket(&self, request: Value) -> IssuedTicket {
        let (status, body) = self
            .request("POST", TICKET_PATH, request.to_string().as_bytes())
            .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    async fn verify(&self, body: &Value) -> (u16, Value) {
        let (status, body) = self
            .request(
                "POST",
                "/v1/ecash/verify-ecash-ticket",
                body.to_string().as_bytes(),
            )
            .await;
        let value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
        (status, value)
    }
}

fn for_gateway() -> Value {
    json!({ "gateway_identity": bs58::encode(GATEWAY).into_string() })
}

fn decode(ticket: &IssuedTicket) -> SpendingData {
    SpendingData::parse(&bs58::decode(&ticket.credential).into_vec().unwrap()).unwrap()
}

/// A gateway's account address on the Nyx chain.
fn cosmos_address() -> String {
    bech32::encode::<bech32::Bech32>(bech32::Hrp::parse("n").unwrap(), &[5; 20]).unwrap()
}

/// nym-api's `VerifyEcashTicketBody` for `data`, the date in the given form.
fn verify_body(data: &SpendingData, text_date: bool) -> Value {
    let date = if text_date {
        json!(date_text(data.spend_date))
    } else {
        json!([data.spend_date.year(), data.spend_date.ordinal()])
    };
    json!({
        "credential": {
            "payment": data.payment,
            "pay_info": data.pay_info,
            "spend_date": date,
            "epoch_id": data.epoch_id,
        },
        "gateway_cosmos_addr": cosmos_address(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_tickets_pass_the_gateways_checks_with_the_key_it_fetches() {
    let server = Server::start().await;
    let first = server.ticket(for_gateway()).await;
    assert_eq!(first.epoch_id, DKG_EPOCH);
    assert_eq!(first.ticket_type, "v1-mixnet-entry");
    assert_eq!(first.tickets_left, 49);
    let second = server.ticket(for_gateway()).await;
    assert_eq!(second.tickets_left, 48, "the same client's book");
    assert_ne!(second.serial_number, first.serial_number);
    let mut other = for_gateway();
    other["client"] = json!("bob");
    other["ticket_type"] = json!("v1-wireguard-exit");
    let bobs = server.ticket(other).await;
    assert_eq!(bobs.tickets_left, 49, "another client's book");
    assert_eq!(bobs.ticket_type, "v1-wireguard-exit");

    // The gateway's own fetch of the master key, from these endpoints, and its checks.
    let now = now_unix();
    let urls = [server.url()];
    let checked = tokio::task::spawn_blocking(move || {
        let keys = MasterKeys::new(&urls, Duration::from_secs(5), 4, 256 * 1024);
        let key = keys.get(DKG_EPOCH)?;
        let unknown = keys.get(DKG_EPOCH + 1).map(drop);
        let verifier = Verifier::new(GATEWAY, 30);
        let mut types = Vec::new();
        for ticket in [first, second, bobs] {
            let ticket = precheck(decode(&ticket), now)?;
            verifier.check_payment(&ticket, &key, now)?;
            types.push(ticket.ticket_type);
        }
        Ok::<_, TicketError>((types, unknown))
    })
    .await
    .unwrap();
    let (types, unknown) = checked.unwrap();
    assert_eq!(
        types,
        [
            TicketType::V1MixnetEntry,
            TicketType::V1MixnetEntry,
            TicketType::V1WireguardExit
        ]
    );
    assert!(
        matches!(unknown, Err(TicketError::EpochUnavailable(2))),
        "{unknown:?}"
    );

    // A ticket for another gateway fails the gateway's check.
    let mut elsewhere = for_gateway();
    elsewhere["gateway_identity"] = json!(bs58::encode([8u8; 32]).into_string());
    let ticket = precheck(decode(&server.ticket(elsewhere).await), now).unwrap();
    let key = server.ecash.authority.master_key().clone();
    assert!(matches!(
        Verifier::new(GATEWAY, 30).check_payment(&ticket, &key, now),
        Err(TicketError::WrongProvider)
    ));
    // The spend time the client asks for is the pay info's.
    let mut at = for_gateway();
    at["spend_time"] = json!(now - 10);
    let data = decode(&server.ticket(at).await);
    assert_eq!(
        PayInfoFields::from_pay_info(&data.pay_info).timestamp,
        now - 10
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_key_is_served_for_its_epoch_only() {
    let server = Server::start().await;
    let expected: Value =
        serde_json::from_str(&key_response_json(server.ecash.authority.master_key())).unwrap();
    for path in [
        "/v1/ecash/master-verification-key",
        "/v1/ecash/master-verification-key?epoch_id=1",
        "/v1/ecash/master-verification-key?output=json&epoch_id=1",
    ] {
        let (status, body) = server.request("GET", path, b"").await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), expected);
    }
    let (status, body) = server
        .request("GET", "/v1/ecash/master-verification-key?epoch_id=2", b"")
        .await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("epoch 2"));
    let (status, _) = server
        .request("GET", "/v1/ecash/master-verification-key?epoch_id=x", b"")
        .await;
    assert_eq!(status, 400);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signer_verifies_a_ticket_once_and_rejects_replays_double_spends_and_forgeries() {
    let server = Server::start().await;
    let ok = json!({ "verified": { "Ok": null } });
    let data = decode(&server.ticket(for_gateway()).await);
    let (status, answer) = server.verify(&verify_body(&data, true)).await;
    assert_eq!((status, answer), (200, ok.clone()));
    // The same ticket again: a replay, in either date form.
    for text_date in [true, false] {
        let (status, answer) = server.verify(&verify_body(&data, text_date)).await;
        assert_eq!(
            (status, answer),
            (200, json!({ "verified": { "Err": "ReplayedTicket" } }))
        );
    }
    // Another ticket, its date as a [year, ordinal] pair.
    let other = decode(&server.ticket(for_gateway()).await);
    let (status, answer) = server.verify(&verify_body(&other, false)).await;
    assert_eq!((status, answer), (200, ok.clone()));

    // The same ticket of a ticketbook spent twice, with different pay infos: a double spend.
    let now = now_unix();
    let mut book = server
        .ecash
        .authority
        .issue_current(TicketType::V1MixnetEntry, now)
        .unwrap();
    let mut twin = book.clone();
    let spent = book.spend(GATEWAY, now).unwrap();
    let again = twin.spend([9; 32], now).unwrap();
    assert_eq!(spent.serial_number(), again.serial_number());
    assert_eq!(server.verify(&verify_body(&spent, true)).await, (200, ok));
    assert_eq!(
        server.verify(&verify_body(&again, true)).await,
        (200, json!({ "verified": { "Err": "DoubleSpend" } }))
    );

    // A forged pay info breaks the proof.
    let mut forged = book.spend(GATEWAY, now).unwrap();
    let mut fields = PayInfoFields::from_pay_info(&forged.pay_info);
    fields.timestamp += 1;
    forged.pay_info = fields.to_pay_info();
    assert_eq!(
        server.verify(&verify_body(&forged, true)).await,
        (200, json!({ "verified": { "Err": "InvalidTicket" } }))
    );
    // Another epoch's ticket: nym-api has no key for it.
    let mut unknown = book.spend(GATEWAY, now).unwrap();
    unknown.epoch_id = 5;
    assert_eq!(server.verify(&verify_body(&unknown, true)).await.0, 404);

    // Bad requests are refused, never a crash.
    let mut bad_address = verify_body(&other, true);
    bad_address["gateway_cosmos_addr"] = json!("not an address");
    assert_eq!(server.verify(&bad_address).await.0, 422);
    for garbage in [json!({}), json!([1, 2]), json!({ "credential": 5 })] {
        assert_eq!(server.verify(&garbage).await.0, 422);
    }
    let mut bad_date = verify_body(&other, true);
    bad_date["credential"]["spend_date"] = json!("2026-13-40");
    assert_eq!(server.verify(&bad_date).await.0, 422);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_requests_that_name_no_gateway_or_type_are_refused() {
    let server = Server::start().await;
    let cases = [
        (json!({}), 422),
        (json!({ "gateway_identity": "0OIl" }), 400),
        (
            json!({ "gateway_identity": bs58::encode([1u8; 31]).into_string() }),
            400,
        ),
        (
            json!({ "gateway_identity": bs58::encode(GATEWAY).into_string(), "ticket_type": "gold" }),
            400,
        ),
        (
            json!({ "gateway_identity": bs58::encode(GATEWAY).into_string(), "extra": 1 }),
            422,
        ),
    ];
    for (request, expected) in cases {
        let (status, body) = server
            .request("POST", TICKET_PATH, request.to_string().as_bytes())
            .await;
        assert_eq!(
            status,
            expected,
            "{request}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let (status, _) = server.request("GET", TICKET_PATH, b"").await;
    assert_eq!(status, 404, "tickets are asked for with POST");
    server.stop().await;
}

#[test]
fn yesterdays_tickets_are_accepted_until_one_am_as_nym_api_does() {
    let ecash = Ecash::new().unwrap();
    // Spent on some day at 23:59:50 UTC; checked at 01:30 and at 00:30 of the next.
    let day_start = (now_unix() / 86_400) * 86_400;
    let spent_at = day_start - 10;
    let yesterday = utc_date(spent_at);
    let expiration = yesterday.checked_add(time::Duration::days(6)).unwrap();
    let mut book = ecash
        .authority
        .issue(TicketType::V1MixnetEntry, expiration)
        .unwrap();
    let ticket = book
        .spend_with(
            PayInfoFields {
                randomness: [3; 32],
                timestamp: spent_at,
                provider: GATEWAY,
            },
            yesterday,
        )
        .unwrap();
    let body = verify_body(&ticket, true).to_string();
    let late = ecash
        .verify_ticket(body.as_bytes(), day_start + 5_400)
        .unwrap();
    let refusal = &late["verified"]["Err"]["InvalidSpentDate"];
    assert_eq!(refusal["received"], json!(date_text(yesterday)), "{late}");
    assert_eq!(refusal["yesterday"], json!(date_text(yesterday)));
    assert_eq!(refusal["today"], json!(date_text(utc_date(day_start))));
    let early = ecash
        .verify_ticket(body.as_bytes(), day_start + 1_800)
        .unwrap();
    assert_eq!(early, json!({ "verified": { "Ok": null } }));
}

#[test]
fn dates_parse_in_both_serde_forms_and_nothing_else() {
    let date = Date::from_calendar_date(2026, Month::December, 5).unwrap();
    assert_eq!(date_text(date), "2026-12-05");
    assert_eq!(parse_date("2026-12-05"), Some(date));
    assert_eq!(DateForm::Tuple(2026, 339).date(), Some(date));
    for bad in ["", "2026-12", "2026-00-01", "2026-02-30", "x-1-1"] {
        assert_eq!(parse_date(bad), None, "{bad}");
    }
    assert_eq!(DateForm::Tuple(2026, 400).date(), None);
}

/// The exported ticketbook, read back field by field (nym's layout; `interop/` reads it with
/// nym-credentials itself and spends it with nym's bandwidth controller).
mod exported {
    use nym_compact_ecash::scheme::coin_indices_signatures::AnnotatedCoinIndexSignature;
    use nym_compact_ecash::scheme::expiration_date_signatures::AnnotatedExpirationDateSignature;
    use nym_compact_ecash::scheme::keygen::SecretKeyUser;
    use nym_compact_ecash::scheme::WalletSignatures;
    use nym_compact_ecash::VerificationKeyAuth;
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub(super) struct Versioned {
        pub(super) data: Vec<u8>,
        pub(super) revision: u8,
    }

    #[derive(Deserialize)]
    pub(super) struct Importable {
        pub(super) ticketbook: Versioned,
        pub(super) expiration_date_signatures: Option<Versioned>,
        pub(super) coin_index_signatures: Option<Versioned>,
        pub(super) master_verification_key: Option<Versioned>,
    }

    #[derive(Deserialize)]
    pub(super) struct Issued {
        pub(super) wallet: WalletSignatures,
        pub(super) spent_tickets: u64,
        pub(super) epoch_id: u64,
        pub(super) secret_key: SecretKeyUser,
        pub(super) expiration_date: (i32, u16),
        pub(super) ticket_type: u32,
    }

    #[derive(Deserialize)]
    pub(super) struct ExpirationDates {
        pub(super) epoch_id: u64,
        pub(super) expiration_date: String,
        pub(super) signatures: Vec<AnnotatedExpirationDateSignature>,
    }

    #[derive(Deserialize)]
    pub(super) struct CoinIndices {
        pub(super) epoch_id: u64,
        pub(super) signatures: Vec<AnnotatedCoinIndexSignature>,
    }

    #[derive(Deserialize)]
    pub(super) struct EpochKey {
        pub(super) epoch_id: u64,
        pub(super) key: VerificationKeyAuth,
    }

    pub(super) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
        use bincode::Options as _;
        bincode::DefaultOptions::new()
            .with_big_endian()
            .with_varint_encoding()
            .deserialize(bytes)
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_ticketbook_holds_what_a_client_spends_it_with() {
    let server = Server::start().await;
    let (status, body) = server.request("POST", TICKETBOOK_PATH, b"").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: IssuedTicketBook = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (answer.epoch_id, answer.tickets, answer.ticket_type.as_str()),
        (DKG_EPOCH, 50, "v1-mixnet-entry")
    );
    let now = now_unix();
    let expiration = utc_date(now).checked_add(time::Duration::days(6)).unwrap();
    assert_eq!(answer.expiration_date, date_text(expiration));

    let bytes = bs58::decode(&answer.ticketbook).into_vec().unwrap();
    let outer: exported::Importable = exported::decode(&bytes);
    assert_eq!(outer.ticketbook.revision, 1);
    let issued: exported::Issued = exported::decode(&outer.ticketbook.data);
    assert_eq!((issued.spent_tickets, issued.epoch_id), (0, DKG_EPOCH));
    assert_eq!(
        issued.expiration_date,
        (expiration.year(), expiration.ordinal())
    );
    assert_eq!(issued.ticket_type, 0, "mixnet entry is nym's first type");
    let dates = outer.expiration_date_signatures.unwrap();
    let coins = outer.coin_index_signatures.unwrap();
    let key = outer.master_verification_key.unwrap();
    assert_eq!((dates.revision, coins.revision, key.revision), (2, 2, 2));
    let dates: exported::ExpirationDates = exported::decode(&dates.data);
    let coins: exported::CoinIndices = exported::decode(&coins.data);
    let key: exported::EpochKey = exported::decode(&key.data);
    assert_eq!((dates.epoch_id, coins.epoch_id, key.epoch_id), (1, 1, 1));
    assert_eq!(dates.expiration_date, answer.expiration_date);
    assert_eq!(&key.key, server.ecash.authority.master_key());
    assert_eq!(coins.signatures.len(), 50);
    assert!(coins.signatures.iter().zip(0..).all(|(s, i)| s.index == i));
    let day = 86_400;
    let exp = encoded_date(expiration);
    assert_eq!(dates.signatures.len(), 7);
    for (offset, signature) in dates.signatures.iter().enumerate() {
        assert_eq!(signature.expiration_timestamp, exp);
        assert_eq!(
            signature.spending_timestamp,
            exp - (6 - offset as u32) * day,
            "day {offset}"
        );
    }

    // Spent by the client with nothing but what it was given, the ticket passes the gateway.
    let pay_info = PayInfoFields {
        randomness: [4; 32],
        timestamp: now,
        provider: GATEWAY,
    }
    .to_pay_info();
    let date_signatures: Vec<_> = dates.signatures.iter().map(|s| s.signature).collect();
    let coin_signatures: Vec<_> = coins.signatures.iter().map(|s| s.signature).collect();
    let mut wallet = issued.wallet.new_wallet();
    let payment = wallet
        .spend(
            ecash_parameters(),
            &key.key,
            &issued.secret_key,
            &pay_info,
            1,
            &date_signatures,
            &coin_signatures,
            encoded_date(utc_date(now)),
        )
        .unwrap();
    let data = SpendingData {
        payment,
        pay_info,
        spend_date: utc_date(now),
        epoch_id: issued.epoch_id,
    };
    let ticket = precheck(data, now).unwrap();
    Verifier::new(GATEWAY, 30)
        .check_payment(&ticket, &key.key, now)
        .unwrap();

    // Other types, and bad requests.
    let (status, body) = server
        .request(
            "POST",
            TICKETBOOK_PATH,
            br#"{"ticket_type": "v1-wireguard-entry"}"#,
        )
        .await;
    assert_eq!(status, 200);
    let answer: IssuedTicketBook = serde_json::from_slice(&body).unwrap();
    let outer: exported::Importable =
        exported::decode(&bs58::decode(&answer.ticketbook).into_vec().unwrap());
    let issued: exported::Issued = exported::decode(&outer.ticketbook.data);
    assert_eq!(issued.ticket_type, 2);
    for (request, expected) in [
        (&br#"{"ticket_type": "gold"}"#[..], 400),
        (br#"{"tickets": 3}"#, 422),
        (b"[", 422),
    ] {
        let (status, _) = server.request("POST", TICKETBOOK_PATH, request).await;
        assert_eq!(status, expected, "{}", String::from_utf8_lossy(request));
    }
    server.stop().await;
}
