//! The last warnings and errors the gateway logged, kept in memory for the dashboard: a
//! `tracing` layer copies each WARN/ERROR event into a bounded ring. Logging is set up before
//! the config is read, so the ring starts with the defaults and the node sets the configured
//! bounds ([`RecentWarnings::configure`]) when it starts.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// One logged warning or error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// When it was logged, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `WARN` or `ERROR`.
    pub level: &'static str,
    /// The module that logged it.
    pub target: String,
    /// The message and its fields (`error=...`), cut to the configured length.
    pub text: String,
}

/// A bounded ring of the latest warnings; the oldest goes when a new one comes.
#[derive(Debug)]
pub struct RecentWarnings {
    ring: Mutex<Ring>,
}

#[derive(Debug)]
struct Ring {
    capacity: usize,
    max_bytes: usize,
    entries: VecDeque<Warning>,
}

/// The ring's bounds until the config sets them (the `[debug]` defaults).
const DEFAULT_CAPACITY: usize = 50;
const DEFAULT_MAX_BYTES: usize = 512;

/// The process's ring: the logging layer writes it and every node in the process reads it.
static RECENT: RecentWarnings = RecentWarnings::new(DEFAULT_CAPACITY, DEFAULT_MAX_BYTES);

/// The warnings of this process.
pub fn recent_warnings() -> &'static RecentWarnings {
    &RECENT
}

impl RecentWarnings {
    /// An empty ring keeping `capacity` warnings of at most `max_bytes` of text each.
    pub const fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            ring: Mutex::new(Ring {
                capacity,
                max_bytes,
                entries: VecDeque::new(),
            }),
        }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the bounds; the oldest warnings beyond the new capacity are dropped.
    pub fn configure(&self, capacity: usize, max_bytes: usize) {
        let mut ring = self.ring();
        ring.capacity = capacity;
        ring.max_bytes = max_bytes;
        let excess = ring.entries.len().saturating_sub(capacity);
        ring.entries.drain(..excess);
        ring.entries.shrink_to(capacity);
    }

    /// Keeps `warning`, its text cut to the configured length, dropping the oldest if full.
    pub fn push(&self, mut warning: Warning) {
        let mut ring = self.ring();
        if ring.capacity == 0 {
            return;
        }
        truncate(&mut warning.text, ring.max_bytes);
        truncate(&mut warning.target, ring.max_bytes);
        if ring.entries.len() >= ring.capacity {
            ring.entries.pop_front();
        }
        ring.entries.push_back(warning);
    }

    /// The kept warnings, oldest first.
    pub fn snapshot(&self) -> Vec<Warning> {
        self.ring().entries.iter().cloned().collect()
    }
}

/// Cuts `text` to at most `max` bytes, on a character boundary, marking the cut with `…`.
fn truncate(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
}

/// The layer that copies WARN and ERROR events into [`recent_warnings`]. Give it a WARN level
/// filter so that it does not make lower-level call sites interesting to the subscriber.
pub struct CaptureWarnings {
    into: &'static RecentWarnings,
}

/// The layer writing this process's ring.
pub fn layer() -> CaptureWarnings {
    CaptureWarnings { into: &RECENT }
}

impl<S: Subscriber> Layer<S> for CaptureWarnings {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut text = TextVisitor {
            text: String::new(),
            // Fields past this are not kept anyway: stop formatting a huge value early.
            limit: self.into.ring().max_bytes,
        };
        event.record(&mut text);
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.into.push(Warning {
            at_ms,
            level: if level == Level::ERROR {
                "ERROR"
            } else {
                "WARN"
            },
            target: event.metadata().target().to_owned(),
            text: text.text,
        });
    }
}

/// Writes an event as `message key=value ...`.
struct TextVisitor {
    text: String,
    limit: usize,
}

impl Visit for TextVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if self.text.len() > self.limit {
            return;
        }
        if !self.text.is_empty() {
            self.text.push(' ');
        }
        // Writing into a String cannot fail.
        let _ = if field.name() == "message" {
            write!(self.text, "{value:?}")
        } else {
            write!(self.text, "{}={value:?}", field.name())
        };
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        // Strings without their Debug quotes, as the fmt layer writes them.
        self.record_debug(field, &format_args!("{value}"));
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::Layer as _;

    use super::*;

    fn warning(text: &str) -> Warning {
        Warning {
            at_ms: 0,
            level: "WARN",
            target: "t".into(),
            text: text.into(),
        }
    }

    #[test]
    fn the_ring_keeps_only_the_latest_and_cuts_long_texts() {
        let ring = RecentWarnings::new(3, 8);
        for i in 0..10 {
            ring.push(warning(&format!("w{i}")));
        }
        let texts: Vec<_> = ring.snapshot().into_iter().map(|w| w.text).collect();
        assert_eq!(texts, ["w7", "w8", "w9"]);

        ring.push(warning("ééééééééé"));
        let long = ring.snapshot().pop().unwrap().text;
        assert!(long.len() <= 8 && long.ends_with('…'), "{long:?}");

        ring.configure(1, 8);
        assert_eq!(ring.snapshot().len(), 1);
        ring.configure(0, 8);
        assert!(ring.snapshot().is_empty());
        ring.push(warning("dropped"));
        assert!(ring.snapshot().is_empty());
    }

    #[test]
    fn the_layer_keeps_warnings_and_errors_with_their_fields_only() {
        static RING: RecentWarnings = RecentWarnings::new(10, 200);
        let subscriber = tracing_subscriber::registry().with(
            CaptureWarnings { into: &RING }
                .with_filter(tracing_subscriber::filter::LevelFilter::WARN),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept");
            tracing::debug!("not kept either");
            tracing::warn!(error = %"disk full", count = 3, "message not stored");
            tracing::error!("the store is gone");
        });
        let kept = RING.snapshot();
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert_eq!(kept[0].level, "WARN");
        assert_eq!(kept[0].text, "message not stored error=disk full count=3");
        assert_eq!(kept[1].level, "ERROR");
        assert_eq!(kept[1].text, "the store is gone");
        assert!(kept[0].at_ms > 0);
    }
}
