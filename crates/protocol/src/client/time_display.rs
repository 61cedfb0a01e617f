//! Unix seconds shown the way the reference gateway prints `time::OffsetDateTime` in UTC
//! (`2025-06-15 15:06:40.0 +00:00:00`), because clients see it in the skew error.

use std::fmt;

/// Earliest and latest instants `time::OffsetDateTime` represents without its large-dates
/// feature: -9999-01-01 00:00:00 and 9999-12-31 23:59:59 UTC.
const MIN_UNIX: i64 = -377_705_116_800;
const MAX_UNIX: i64 = 253_402_300_799;

/// The instant the reference implementation makes of a request timestamp: the `u64` is
/// reinterpreted as `i64`, and anything outside the representable range becomes the epoch.
pub(super) fn request_instant(unix: u64) -> i64 {
    let signed = unix as i64;
    if (MIN_UNIX..=MAX_UNIX).contains(&signed) {
        signed
    } else {
        0
    }
}

/// Displays whole unix seconds (UTC) as `Y-MM-DD H:MM:SS.0 +00:00:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct UtcSeconds(pub(super) i64);

impl fmt::Display for UtcSeconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let width = if year < 0 { 5 } else { 4 };
        write!(
            f,
            "{year:0width$}-{month:02}-{day:02} {}:{:02}:{:02}.0 +00:00:00",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
        )
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_offset_date_time() {
        assert_eq!(
            UtcSeconds(1_750_000_000).to_string(),
            "2025-06-15 15:06:40.0 +00:00:00"
        );
        assert_eq!(UtcSeconds(0).to_string(), "1970-01-01 0:00:00.0 +00:00:00");
        assert_eq!(
            UtcSeconds(1_795_598_806).to_string(),
            "2026-11-25 9:26:46.0 +00:00:00"
        );
        assert_eq!(
            UtcSeconds(951_782_400).to_string(),
            "2000-02-29 0:00:00.0 +00:00:00"
        );
        assert_eq!(
            UtcSeconds(-1).to_string(),
            "1969-12-31 23:59:59.0 +00:00:00"
        );
        assert_eq!(
            UtcSeconds(MAX_UNIX).to_string(),
            "9999-12-31 23:59:59.0 +00:00:00"
        );
        assert_eq!(
            UtcSeconds(MIN_UNIX).to_string(),
            "-9999-01-01 0:00:00.0 +00:00:00"
        );
    }

    #[test]
    fn out_of_range_request_times_become_the_epoch() {
        assert_eq!(request_instant(1_750_000_000), 1_750_000_000);
        assert_eq!(request_instant(MAX_UNIX as u64), MAX_UNIX);
        assert_eq!(request_instant(MAX_UNIX as u64 + 1), 0);
        assert_eq!(request_instant(u64::MAX), -1);
        assert_eq!(request_instant(1 << 63), 0);
    }
}
