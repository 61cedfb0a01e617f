//! Timestamps: RFC 3339 in requests, integer nanoseconds (UTC) in the database, and the
//! 1.0.2 service's rendering (`2022-07-26 12:46:34.148075290`) in query results.

use chrono::{DateTime, FixedOffset, Utc};
use thiserror::Error;

/// A request timestamp that is not usable.
#[derive(Debug, Error)]
pub enum TimestampError {
    /// Not an RFC 3339 date; the first words are the 1.0.2 service's message.
    #[error("Timestamp could not be parsed (`{field}`: {reason}); expected RFC 3339, e.g. 2022-07-26T12:46:00.000000+00:00")]
    Parse {
        /// The JSON field that held the date.
        field: &'static str,
        /// What the parser disliked.
        reason: chrono::ParseError,
    },
    /// A valid date that integer nanoseconds cannot hold.
    #[error("Timestamp out of range (`{field}`: reports must be dated between 1677-09-22 and 2262-04-11)")]
    OutOfRange {
        /// The JSON field that held the date.
        field: &'static str,
    },
}

/// Parses an RFC 3339 date with any offset and converts it to UTC.
pub fn parse_rfc3339(field: &'static str, text: &str) -> Result<DateTime<Utc>, TimestampError> {
    DateTime::<FixedOffset>::parse_from_rfc3339(text)
        .map(|date| date.with_timezone(&Utc))
        .map_err(|reason| TimestampError::Parse { field, reason })
}

/// Nanoseconds since the Unix epoch, UTC: the stored form, so a range query is a plain integer
/// comparison on an indexed column whatever offset or precision the reporter used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnixNanos(pub i64);

impl UnixNanos {
    /// The exact value; fails for dates outside 1677-09-21..2262-04-11, which an `i64` of
    /// nanoseconds cannot hold (used for reports, which must not be stored wrongly).
    pub fn exact(field: &'static str, date: DateTime<Utc>) -> Result<Self, TimestampError> {
        date.timestamp_nanos_opt()
            .map(Self)
            .ok_or(TimestampError::OutOfRange { field })
    }

    /// The nearest representable value (used for query bounds: `since` = year 1 still means
    /// "from the beginning").
    pub fn saturating(date: DateTime<Utc>) -> Self {
        match date.timestamp_nanos_opt() {
            Some(nanos) => Self(nanos),
            None if date.timestamp() < 0 => Self(i64::MIN),
            None => Self(i64::MAX),
        }
    }

    /// Renders as the 1.0.2 service did (chrono's `NaiveDateTime` display of the UTC time): a
    /// space between date and time, no zone, and the fraction in 3, 6 or 9 digits, whichever
    /// is exact (none when it is zero). Real reports carry nanoseconds, hence 9 digits.
    pub fn render(self) -> String {
        DateTime::from_timestamp_nanos(self.0)
            .naive_utc()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(text: &str) -> UnixNanos {
        UnixNanos::exact("t", parse_rfc3339("t", text).unwrap()).unwrap()
    }

    #[test]
    fn renders_like_the_seed_sample() {
        assert_eq!(
            nanos("2022-07-26T12:46:34.148075290+00:00").render(),
            "2022-07-26 12:46:34.148075290"
        );
    }

    #[test]
    fn renders_the_shortest_exact_fraction() {
        assert_eq!(
            nanos("2022-07-26T12:46:00Z").render(),
            "2022-07-26 12:46:00"
        );
        assert_eq!(
            nanos("2022-07-26T12:46:00.5Z").render(),
            "2022-07-26 12:46:00.500"
        );
        assert_eq!(
            nanos("2022-07-26T12:46:00.000001Z").render(),
            "2022-07-26 12:46:00.000001"
        );
    }

    #[test]
    fn converts_offsets_to_utc() {
        assert_eq!(
            nanos("2022-07-26T14:46:00+02:00"),
            nanos("2022-07-26T12:46:00Z")
        );
    }

    #[test]
    fn rejects_non_rfc3339_with_the_original_message() {
        let err = parse_rfc3339("since", "2022-07-26 12:46").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("Timestamp could not be parsed"), "{text}");
        assert!(text.contains("`since`"), "{text}");
        assert!(parse_rfc3339("since", "yesterday").is_err());
    }

    #[test]
    fn out_of_range_is_exact_error_but_saturates_for_queries() {
        let early = parse_rfc3339("t", "0001-01-01T00:00:00Z").unwrap();
        let late = parse_rfc3339("t", "9999-12-31T23:59:59Z").unwrap();
        assert!(matches!(
            UnixNanos::exact("t", early),
            Err(TimestampError::OutOfRange { field: "t" })
        ));
        assert_eq!(UnixNanos::saturating(early), UnixNanos(i64::MIN));
        assert_eq!(UnixNanos::saturating(late), UnixNanos(i64::MAX));
    }
}
