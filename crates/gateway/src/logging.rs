//! Logging to stderr with `tracing`. `RUST_LOG` filters (default `info`, chatty dependencies at
//! `warn`); `NYM_GATEWAY_LOG_FORMAT=json` switches to one JSON object per line. Warnings and
//! errors are also kept in memory for the dashboard ([`recent`]), whatever `RUST_LOG` says.

pub mod recent;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

const DEFAULT_FILTER: &str =
    "info,hyper=warn,tokio_tungstenite=warn,tungstenite=warn,mio=warn,rusqlite=warn";

/// Installs the global subscriber; safe to call once per process.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json =
        std::env::var("NYM_GATEWAY_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // Each layer has its own filter: the dashboard's copy of warnings does not depend on
    // RUST_LOG, and its WARN filter keeps debug call sites as cheap as RUST_LOG makes them.
    let registry =
        tracing_subscriber::registry().with(recent::layer().with_filter(LevelFilter::WARN));
    let result = if json {
        registry.with(stderr.json().with_filter(filter)).try_init()
    } else {
        registry.with(stderr.with_filter(filter)).try_init()
    };
    // A second initialisation (tests) keeps the first subscriber.
    let _ = result;
}

/// Lets a repeated warning through at most once per period and counts the ones held back, so
/// neither a misbehaving peer nor a failing disk can flood the log. Use it through
/// [`warn_rate_limited!`](crate::warn_rate_limited), one `static` per kind of warning.
#[derive(Debug)]
pub struct RateLimit {
    period: std::time::Duration,
    state: std::sync::Mutex<RateState>,
}

#[derive(Debug)]
struct RateState {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl RateLimit {
    /// At most one warning per `period`.
    pub const fn new(period: std::time::Duration) -> Self {
        Self {
            period,
            state: std::sync::Mutex::new(RateState {
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` if this occurrence may be logged (`n` were held back since the last one that
    /// was), `None` if it must be held back.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(std::time::Instant::now())
    }

    fn allow_at(&self, now: std::time::Instant) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < self.period)
        {
            state.suppressed += 1;
            return None;
        }
        state.last = Some(now);
        Some(std::mem::take(&mut state.suppressed))
    }
}

/// Period of the gateway's rate-limited warnings.
pub const WARNING_PERIOD: std::time::Duration = std::time::Duration::from_secs(10);

/// `warn!` through a [`RateLimit`]: `warn_rate_limited!(LIMIT, error = %e, "text")`. The event
/// gets a `suppressed` field counting the occurrences held back before it.
#[macro_export]
macro_rules! warn_rate_limited {
    ($limit:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $limit.allow() {
            ::tracing::warn!(suppressed, $($arg)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::RateLimit;

    #[test]
    fn one_warning_per_period_and_the_rest_are_counted() {
        let limit = RateLimit::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(limit.allow_at(start), Some(0));
        for ms in [1, 500, 9_999] {
            assert_eq!(limit.allow_at(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(limit.allow_at(start + Duration::from_secs(10)), Some(3));
        assert_eq!(limit.allow_at(start + Duration::from_secs(11)), None);
        assert_eq!(limit.allow_at(start + Duration::from_secs(25)), Some(1));
    }
}
