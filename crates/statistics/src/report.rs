//! The JSON the service speaks: reports in (`POST /v1/statistic`), range queries in and stored
//! entries out (`POST /v1/all-statistics`). Field and variant names are the 1.0.2 wire names.
//!
//! Raw request types are parsed once, then validated into [`Report`] / [`Range`], so storage
//! only ever sees checked values.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::timestamp::{parse_rfc3339, TimestampError, UnixNanos};

/// A request body that parsed as JSON but does not make sense.
#[derive(Debug, Error)]
pub enum InvalidRequest {
    /// A date that could not be used.
    #[error(transparent)]
    Timestamp(#[from] TimestampError),
    /// More entries than one report may carry (`--max-report-entries`).
    #[error("Too many entries in one report: {count} (at most {limit})")]
    TooManyEntries {
        /// How many the report carried.
        count: usize,
        /// How many it may carry.
        limit: usize,
    },
    /// A query range that ends before it starts.
    #[error("`since` ({since}) is later than `until` ({until})")]
    InvertedRange {
        /// The `since` text as sent.
        since: String,
        /// The `until` text as sent.
        until: String,
    },
}

/// `POST /v1/statistic` body as sent by gateways and network requesters.
#[derive(Debug, Deserialize)]
pub struct RawReport {
    stats_data: Vec<ReportEntry>,
    interval_seconds: u32,
    /// RFC 3339 start of the interval the entries cover.
    timestamp: String,
}

/// One measurement in a report (externally tagged, as the reporters serialise it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub enum ReportEntry {
    /// A network requester's traffic to one service.
    Service {
        /// `host:port` the requester connected to.
        requested_service: String,
        /// Bytes sent towards the service in the interval.
        request_bytes: u32,
        /// Bytes received from the service in the interval.
        response_bytes: u32,
    },
    /// A gateway's count of connected clients.
    Gateway {
        /// The gateway's bs58 identity key.
        gateway_id: String,
        /// Connected, authenticated clients at report time.
        inbox_count: u32,
    },
}

/// A validated report, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The measurements, in the order sent.
    pub entries: Vec<ReportEntry>,
    /// Length of the interval the entries cover.
    pub interval_seconds: u32,
    /// Start of that interval; every entry is stored with it.
    pub timestamp: UnixNanos,
}

impl RawReport {
    /// Checks the date and that there are at most `max_entries` entries.
    pub fn validate(self, max_entries: usize) -> Result<Report, InvalidRequest> {
        if self.stats_data.len() > max_entries {
            return Err(InvalidRequest::TooManyEntries {
                count: self.stats_data.len(),
                limit: max_entries,
            });
        }
        let date = parse_rfc3339("timestamp", &self.timestamp)?;
        Ok(Report {
            entries: self.stats_data,
            interval_seconds: self.interval_seconds,
            timestamp: UnixNanos::exact("timestamp", date)?,
        })
    }
}

/// `POST /v1/all-statistics` body.
#[derive(Debug, Deserialize)]
pub struct RawRange {
    since: String,
    until: String,
}

/// An inclusive time range; `since <= until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First instant included.
    pub since: UnixNanos,
    /// Last instant included.
    pub until: UnixNanos,
}

impl RawRange {
    /// Parses both dates and checks their order (on the exact dates, before any clamping).
    pub fn validate(self) -> Result<Range, InvalidRequest> {
        let since = parse_rfc3339("since", &self.since)?;
        let until = parse_rfc3339("until", &self.until)?;
        if since > until {
            return Err(InvalidRequest::InvertedRange {
                since: self.since,
                until: self.until,
            });
        }
        Ok(Range {
            since: UnixNanos::saturating(since),
            until: UnixNanos::saturating(until),
        })
    }
}

/// One row of a query result. Field names are the 1.0.2 output's, which differ from the report's
/// (`request_bytes` is answered as `request_processed_bytes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum StoredEntry {
    /// A stored service measurement.
    Service {
        /// `host:port` the requester connected to.
        requested_service: String,
        /// Bytes sent towards the service.
        request_processed_bytes: u32,
        /// Bytes received from the service.
        response_processed_bytes: u32,
        /// Length of the reporting interval.
        interval_seconds: u32,
        /// Start of the interval, rendered by [`UnixNanos::render`].
        timestamp: String,
    },
    /// A stored gateway measurement.
    Gateway {
        /// The gateway's bs58 identity key.
        gateway_id: String,
        /// Connected clients.
        inbox_count: u32,
        /// Start of the interval, rendered by [`UnixNanos::render`].
        timestamp: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_1_0_2_gateway_report() {
        let body = r#"{"stats_data":[{"Gateway":{"gateway_id":"Fo4f","inbox_count":8}}],"interval_seconds":60,"timestamp":"2022-07-26T12:46:34.148075290+00:00"}"#;
        let report = serde_json::from_str::<RawReport>(body)
            .unwrap()
            .validate(1)
            .unwrap();
        assert_eq!(report.interval_seconds, 60);
        assert_eq!(report.timestamp.render(), "2022-07-26 12:46:34.148075290");
        assert_eq!(
            report.entries,
            vec![ReportEntry::Gateway {
                gateway_id: "Fo4f".into(),
                inbox_count: 8
            }]
        );
    }

    #[test]
    fn rejects_too_many_entries() {
        let entry = r#"{"Gateway":{"gateway_id":"g","inbox_count":1}}"#;
        let entries = [entry; 3].join(",");
        let body = format!(
            r#"{{"stats_data":[{entries}],"interval_seconds":60,"timestamp":"2022-07-26T12:46:34Z"}}"#
        );
        let report = || serde_json::from_str::<RawReport>(&body).unwrap();
        assert_eq!(report().validate(3).unwrap().entries.len(), 3);
        let err = report().validate(2).unwrap_err();
        assert!(
            matches!(err, InvalidRequest::TooManyEntries { count: 3, limit: 2 }),
            "{err:?}"
        );
    }

    #[test]
    fn range_order_is_checked_on_exact_dates() {
        let range = |since: &str, until: &str| {
            RawRange {
                since: since.into(),
                until: until.into(),
            }
            .validate()
        };
        assert!(range("2022-07-26T12:00:00Z", "2022-07-26T12:00:00Z").is_ok());
        assert!(matches!(
            range("2022-07-26T12:00:01Z", "2022-07-26T12:00:00Z"),
            Err(InvalidRequest::InvertedRange { .. })
        ));
        // Both clamp to i64::MAX, but the order is still wrong.
        assert!(range("9999-01-02T00:00:00Z", "9999-01-01T00:00:00Z").is_err());
    }

    #[test]
    fn serialises_the_1_0_2_output_shape() {
        let entry = StoredEntry::Gateway {
            gateway_id: "g".into(),
            inbox_count: 6,
            timestamp: "2022-07-26 12:46:51.578765358".into(),
        };
        assert_eq!(
            serde_json::to_string(&entry).unwrap(),
            r#"{"Gateway":{"gateway_id":"g","inbox_count":6,"timestamp":"2022-07-26 12:46:51.578765358"}}"#
        );
    }
}
