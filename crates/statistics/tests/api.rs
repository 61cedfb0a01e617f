//! The HTTP API of the running binary: reports in, range queries out, bad input, persistence.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread;

use serde_json::{json, Value};

use util::{temp_database, Service, BIN};

fn gateway_report(gateway_id: &str, inbox_count: u32, timestamp: &str) -> String {
    json!({
        "stats_data": [{"Gateway": {"gateway_id": gateway_id, "inbox_count": inbox_count}}],
        "interval_seconds": 60,
        "timestamp": timestamp,
    })
    .to_string()
}

fn service_report(services: &[(&str, u32, u32)], timestamp: &str) -> String {
    let entries: Vec<Value> = services
        .iter()
        .map(|(service, request, response)| {
            json!({"Service": {
                "requested_service": service,
                "request_bytes": request,
                "response_bytes": response,
            }})
        })
        .collect();
    json!({"stats_data": entries, "interval_seconds": 60, "timestamp": timestamp}).to_string()
}

fn assert_stored(service: &Service, body: &str) {
    let response = service.post("/v1/statistic", body);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body, "null");
    assert_eq!(response.header("content-type"), Some("application/json"));
}

fn assert_rejected(service: &Service, path: &str, body: &str, status: u16, message: &str) {
    let response = service.post(path, body);
    assert_eq!(response.status, status, "{body}: {}", response.body);
    assert!(
        response
            .header("content-type")
            .is_some_and(|value| value.starts_with("text/plain")),
        "{:?}",
        response.headers
    );
    assert!(
        response.body.contains(message),
        "expected {message:?} in {:?}",
        response.body
    );
}

/// The seed's sample output, recorded from reports sent as gateways and network requesters
/// send them, then queried with the seed's exact `curl` body.
#[test]
fn seed_query_returns_the_seed_sample_output() {
    let (_dir, db) = temp_database();
    let service = Service::start(&db);
    let fo4f = "Fo4f4SQLdoyoGkFae5TpVhRVoXCF8UiypLVGtGjujVPf";
    let bumsf = "2BuMSfMW3zpeAjKXyKLhmY4QW1DXurrtSPEJ6CjX3SEh";
    let reports = [
        gateway_report(fo4f, 7, "2022-07-26T12:45:34.147000000+00:00"),
        gateway_report(fo4f, 8, "2022-07-26T12:46:34.148075290+00:00"),
        gateway_report(bumsf, 6, "2022-07-26T12:46:51.578765358+00:00"),
        gateway_report(fo4f, 8, "2022-07-26T12:47:34.149270862+00:00"),
        service_report(
            &[("chat-0.core.keybaseapi.com:443", 294, 0)],
            "2022-07-26T12:55:44.459257091+00:00",
        ),
        service_report(
            &[
                ("chat-0.core.keybaseapi.com:443", 890, 0),
                ("api-0.core.keybaseapi.com:443", 1473, 0),
            ],
            "2022-07-26T12:56:44.459333653+00:00",
        ),
        service_report(
            &[("chat-0.core.keybaseapi.com:443", 12, 34)],
            "2022-07-26T12:57:44.459400000+00:00",
        ),
    ];
    for report in &reports {
        assert_stored(&service, report);
    }

    let response = service.post(
        "/v1/all-statistics",
        r#"{"since":"2022-07-26T12:46:00.000000+00:00", "until":"2022-07-26T12:57:00.000000+00:00"}"#,
    );
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let expected = json!([
        {"Service": {"requested_service": "chat-0.core.keybaseapi.com:443", "request_processed_bytes": 294,
            "response_processed_bytes": 0, "interval_seconds": 60, "timestamp": "2022-07-26 12:55:44.459257091"}},
        {"Service": {"requested_service": "chat-0.core.keybaseapi.com:443", "request_processed_bytes": 890,
            "response_processed_bytes": 0, "interval_seconds": 60, "timestamp": "2022-07-26 12:56:44.459333653"}},
        {"Service": {"requested_service": "api-0.core.keybaseapi.com:443", "request_processed_bytes": 1473,
            "response_processed_bytes": 0, "interval_seconds": 60, "timestamp": "2022-07-26 12:56:44.459333653"}},
        {"Gateway": {"gateway_id": fo4f, "inbox_count": 8, "timestamp": "2022-07-26 12:46:34.148075290"}},
        {"Gateway": {"gateway_id": bumsf, "inbox_count": 6, "timestamp": "2022-07-26 12:46:51.578765358"}},
        {"Gateway": {"gateway_id": fo4f, "inbox_count": 8, "timestamp": "2022-07-26 12:47:34.149270862"}},
    ]);
    assert_eq!(response.json(), expected);
}

#[test]
fn bounds_are_inclusive_to_the_nanosecond() {
    let (_dir, db) = temp_database();
    let service = Service::start(&db);
    assert_stored(
        &service,
        &gateway_report("g", 1, "2022-07-26T12:00:00.000000005Z"),
    );

    let exact = "2022-07-26T12:00:00.000000005Z";
    assert_eq!(service.query(exact, exact).as_array().unwrap().len(), 1);
    let before = "2022-07-26T12:00:00.000000004Z";
    let after = "2022-07-26T12:00:00.000000006Z";
    assert_eq!(service.query(before, exact).as_array().unwrap().len(), 1);
    assert_eq!(service.query(exact, after).as_array().unwrap().len(), 1);
    assert_eq!(service.query(before, before), json!([]));
    assert_eq!(service.query(after, after), json!([]));
}

#[test]
fn offsets_are_converted_to_utc() {
    let (_dir, db) = temp_database();
    let service = Service::start(&db);
    // 14:30 at +02:00 is 12:30 UTC, stored and rendered as UTC.
    assert_stored(
        &service,
        &gateway_report("g", 2, "2022-07-26T14:30:00.25+02:00"),
    );
    let found = service.query("2022-07-26T12:30:00Z", "2022-07-26T07:30:00.25-05:00");
    assert_eq!(
        found,
        json!([{"Gateway": {"gateway_id": "g", "inbox_count": 2, "timestamp": "2022-07-26 12:30:00.250"}}])
    );
    // Dates no 64-bit nanosecond count can hold still work as open query bounds.
    let everything = service.query("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z");
    assert_eq!(everything, found);
}

#[test]
fn services_come_before_gateways_each_in_time_order() {
    let (_dir, db) = temp_database();
    let service = Service::start(&db);
    assert_stored(&service, &gateway_report("late", 1, "2022-07-26T12:00:02Z"));
    assert_stored(
        &service,
        &service_report(&[("b:443", 1, 1)], "2022-07-26T12:00:03Z"),
    );
    assert_stored(
        &service,
        &gateway_report("early", 1, "2022-07-26T12:00:01Z"),
    );
    assert_stored(
        &service,
        &service_report(&[("a:443", 1, 1)], "2022-07-26T12:00:00Z"),
    );

    let found = service.query("2022-07-26T00:00:00Z", "2022-07-27T00:00:00Z");
    let names: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            entry
                .pointer("/Service/requested_service")
                .or_else(|| entry.pointer("/Gateway/gateway_id"))
                .and_then(Value::as_str)
                .unwrap()
        })
        .collect();
    assert_eq!(names, ["a:443", "b:443", "early", "late"]);
}

/// 1.0.2 gateways joined the default URL `https://…:8090/` and `/v1/statistic`.
#[test]
fn doubled_slash_paths_are_accepted() {
    let (_dir, db) = temp_database();
    let service = Service::start(&db);
    let body = gateway_report("g", 8, "2022-07-26T12:46:34.148075290+00:00");
    // The request as a 1.0.2 gateway's HTTP client wrote it.
    let response = service.request(&format!(
        "POST //v1/statistic HTTP/1.1\r\ncontent-type: application/json\r\naccept: */*\r\n\
         host: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        service.addr,
        body.len()
    ));
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body, "null");

    let query = r#"{"since":"2022-07-26T12:46:00Z","until":"2022-07-26T12:47:00Z"}"#;
    let response = service.post("//v1/all-statistics", query);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json().as_array().unwrap().len(), 1);
}

#[test]
fn bad_reports_get_400_and_store_nothing() {
    let (_dir, db) = temp_database();
    let service = Service::start(&db);
    let path = "/v1/statistic";
    let entry = r#"{"Gateway":{"gateway_id":"g","inbox_count":1}}"#;
    let with = |entries: &str, timestamp: &str| {
        format!(r#"{{"stats_data":[{entries}],"interval_seconds":60,"timestamp":"{timestamp}"}}"#)
    };
    let ok_time = "2022-07-26T12:00:00Z";

    let too_many = vec![entry; 4097].join(",");
    let bodies: [(&str, &str); 11] = [
        ("", "Invalid JSON body"),
        ("hello", "Invalid JSON body"),
        ("[]", "Invalid JSON body"),
        (
            &format!(r#"{{"stats_data":[{entry}],"timestamp":"{ok_time}"}}"#),
            "missing field `interval_seconds`",
        ),
        (
            &with(
                r#"{"Gateway":{"gateway_id":"g","inbox_count":"8"}}"#,
                ok_time,
            ),
            "invalid type",
        ),
        (
            &with(
                r#"{"Gateway":{"gateway_id":"g","inbox_count":-1}}"#,
                ok_time,
            ),
            "Invalid JSON body",
        ),
        (
            &with(
                r#"{"Gateway":{"gateway_id":"g","inbox_count":4294967296}}"#,
                ok_time,
            ),
            "Invalid JSON body",
        ),
        (
            &with(r#"{"Mixnode":{"id":"m"}}"#, ok_time),
            "unknown variant `Mixnode`",
        ),
        (
            &with(entry, "2022-07-26 12:00"),
            "Timestamp could not be parsed",
        ),
        (
            &with(entry, "2300-01-01T00:00:00Z"),
            "Timestamp out of range",
        ),
        (&with(&too_many, ok_time), "Too many entries"),
    ];
    for (body, message) in bodies {
        assert_rejected(&service, path, body, 400, message);
    }

    assert_eq!(
        service.query("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
        json!([])
    );
}

#[test]
fn bad_queries_get_400() {
    let (_dir, db) = temp_database();
    let service = Service::start(&db);
    let path = "/v1/all-statistics";
    for (body, message) in [
        ("{", "Invalid JSON body"),
        (
            r#"{"since":"2022-07-26T12:46:00Z"}"#,
            "missing field `until`",
        ),
        (
            r#"{"since":"yesterday","until":"2022-07-26T12:46:00Z"}"#,
            "Timestamp could not be parsed (`since`",
        ),
        (
            r#"{"since":"2022-07-26T12:46:00Z","until":"2022-07-26T25:00:00Z"}"#,
            "Timestamp could not be parsed (`until`",
        ),
        (
            r#"{"since":"2022-07-26T12:46:00.000000001Z","until":"2022-07-26T12:46:00Z"}"#,
            "is later than `until`",
        ),
    ] {
        assert_rejected(&service, path, body, 400, message);
    }
}

/// Posts `body`, which the service should refuse as too large, and returns the raw response.
/// The service may answer and close before reading the whole body, so the body is sent from
/// another thread and write errors are ignored.
fn post_oversized(service: &Service, body: String) -> String {
    let mut stream = TcpStream::connect(service.addr).unwrap();
    let head = format!(
        "POST /v1/statistic HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        service.addr,
        body.len()
    );
    let mut writer = stream.try_clone().unwrap();
    let sender = thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes());
        let _ = writer.write_all(body.as_bytes());
    });
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    sender.join().unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn oversized_body_is_refused_with_413() {
    let (_dir, db) = temp_database();
    let service = Service::start(&db);
    let body = format!(r#"{{"padding":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let response = post_oversized(&service, body);
    assert!(
        response.starts_with("HTTP/1.1 413"),
        "{}",
        &response[..response.len().min(200)]
    );
    assert!(response.contains("at most 1048576 bytes"), "{response}");
}

/// Each limit is a flag: a service started with smaller ones refuses what they exclude, with
/// the errors of the defaults naming the configured limit.
#[test]
fn smaller_limits_set_by_flags_refuse_larger_requests() {
    let (_dir, db) = temp_database();
    let mut command = Command::new(BIN);
    command
        .args(["--listen", "127.0.0.1:0", "--database"])
        .arg(&db)
        .args(["--max-request-bytes", "1024"])
        .args(["--max-report-entries", "2"])
        .args(["--max-query-entries", "2"]);
    let service = Service::spawn(command);

    let at = "2022-07-26T12:46:00Z";
    let three = [
        ("a.example:443", 1, 2),
        ("b.example:443", 3, 4),
        ("c.example:443", 5, 6),
    ];
    assert_rejected(
        &service,
        "/v1/statistic",
        &service_report(&three, at),
        400,
        "Too many entries in one report: 3 (at most 2)",
    );
    assert_stored(&service, &service_report(&three[..2], at));

    let (since, until) = ("2022-07-26T12:00:00Z", "2022-07-26T13:00:00Z");
    assert_eq!(service.query(since, until).as_array().unwrap().len(), 2);
    assert_stored(&service, &gateway_report("g", 1, "2022-07-26T12:47:00Z"));
    assert_rejected(
        &service,
        "/v1/all-statistics",
        &format!(r#"{{"since":"{since}","until":"{until}"}}"#),
        400,
        "More than 2 entries match",
    );

    let report = gateway_report("g", 1, at);
    let padded = format!("{report:<1025}");
    let response = post_oversized(&service, padded);
    assert!(
        response.starts_with("HTTP/1.1 413"),
        "{}",
        &response[..response.len().min(200)]
    );
    assert!(response.contains("at most 1024 bytes"), "{response}");
    assert_stored(&service, &format!("{report:<1024}"));
}

#[test]
fn unknown_routes_and_methods_get_clear_errors() {
    let (_dir, db) = temp_database();
    let service = Service::start(&db);
    assert_rejected(
        &service,
        "/v2/statistic",
        "{}",
        404,
        "POST /v1/all-statistics",
    );
    let response = service.request(&format!(
        "GET /v1/all-statistics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        service.addr
    ));
    assert_eq!(response.status, 405);
    assert!(response.body.contains("use POST"), "{}", response.body);
}

#[test]
fn data_survives_a_restart_and_sigterm_exits_cleanly() {
    let (_dir, db) = temp_database();
    let service = Service::start(&db);
    assert_stored(
        &service,
        &gateway_report("g", 3, "2022-07-26T12:00:00.123456789Z"),
    );
    assert_stored(
        &service,
        &service_report(&[("s:443", 5, 6)], "2022-07-26T12:01:00Z"),
    );
    let before = service.query("2022-07-26T00:00:00Z", "2022-07-27T00:00:00Z");
    assert_eq!(before.as_array().unwrap().len(), 2);
    let status = service.stop_with("TERM");
    assert_eq!(status.code(), Some(0), "{status:?}");

    let service = Service::start(&db);
    assert_eq!(
        service.query("2022-07-26T00:00:00Z", "2022-07-27T00:00:00Z"),
        before
    );
    let status = service.stop_with("INT");
    assert_eq!(status.code(), Some(0), "{status:?}");
}
