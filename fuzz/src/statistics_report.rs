//! The statistics service's request bodies: reports (`POST /v1/statistic`) and range queries
//! (`POST /v1/all-statistics`), parsed as the service does and validated.

use chrono::NaiveDateTime;
use nym_network_statistics::api::Limits;
use nym_network_statistics::report::{RawRange, RawReport};

pub fn run(data: &[u8]) {
    if let Ok(raw) = serde_json::from_slice::<RawReport>(data) {
        let max_entries = Limits::DEFAULT.max_report_entries;
        match raw.validate(max_entries) {
            Ok(report) => {
                assert!(report.entries.len() <= max_entries);
                // what a query answers is the stored instant, exactly
                let rendered = report.timestamp.render();
                let parsed = NaiveDateTime::parse_from_str(&rendered, "%Y-%m-%d %H:%M:%S%.f")
                    .unwrap_or_else(|e| panic!("{rendered:?} does not read back: {e}"));
                assert_eq!(
                    parsed.and_utc().timestamp_nanos_opt(),
                    Some(report.timestamp.0),
                    "{rendered}"
                );
            }
            Err(err) => assert!(!err.to_string().is_empty()),
        }
    }
    if let Ok(raw) = serde_json::from_slice::<RawRange>(data) {
        match raw.validate() {
            Ok(range) => assert!(range.since <= range.until),
            Err(err) => assert!(!err.to_string().is_empty()),
        }
    }
}
