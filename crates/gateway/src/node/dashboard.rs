//! The operator's live view: a page at `/dashboard` (one self-contained HTML file, embedded)
//! and the JSON it polls at `/dashboard/data`.
//!
//! The page is public and holds no data and no secret; the data endpoint follows `/metrics`'s
//! token rule. When a token is set, the page asks for it (or takes it from the URL fragment,
//! `#token=...`, which browsers never send to the server) and sends it as
//! `Authorization: Bearer` on each poll, keeping it only in the tab's `sessionStorage`.

pub mod history;

use serde::Serialize;

use self::history::{unix_ms, History, Snapshot};
use super::described::{BuildInformation, Described, SignedHostInformation};
use crate::logging::recent::{recent_warnings, Warning};

/// The page, script and styles included.
pub const PAGE: &str = include_str!("dashboard/page.html");

/// What `/dashboard/data` serves.
#[derive(Debug, Serialize)]
pub struct Data {
    /// When this answer was made, in milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// Milliseconds between two rows of the history.
    pub interval_ms: u64,
    /// Rows the history keeps at most.
    pub capacity: usize,
    /// Seconds since the node started.
    pub uptime: u64,
    /// The version and build, as `/api/v1/build-information` says.
    pub build: BuildInformation,
    /// The identity, addresses and announced sphinx keys, signed, as
    /// `/api/v1/host-information` says.
    pub host: SignedHostInformation,
    /// The history after the `since` asked for.
    #[serde(flatten)]
    pub history: Snapshot,
    /// The latest warnings and errors, oldest first.
    pub warnings: Vec<Warning>,
}

/// What the data endpoint reads from.
#[derive(Clone)]
pub struct Dashboard {
    /// The sampled metrics.
    pub history: History,
    /// Milliseconds between two samples.
    pub interval_ms: u64,
    /// Rows kept at most.
    pub capacity: usize,
}

impl Dashboard {
    /// The answer for a page that already has the rows up to `since_ms` (0: none).
    pub fn data(&self, described: &Described, uptime: u64, since_ms: u64) -> Data {
        Data {
            now_ms: unix_ms(),
            interval_ms: self.interval_ms,
            capacity: self.capacity,
            uptime,
            build: described.build_information.clone(),
            host: described.host_information(),
            history: self.history.since(since_ms),
            warnings: recent_warnings().snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained() {
        // Everything is inline: no script, style, image or font is fetched from anywhere.
        for fetch in ["src=", "href=", "@import", "url(", "http://", "https://"] {
            assert!(!PAGE.contains(fetch), "the page fetches something: {fetch}");
        }
        assert!(PAGE.contains("/dashboard/data"));
    }
}
