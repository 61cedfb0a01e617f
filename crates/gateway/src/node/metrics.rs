//! Prometheus metrics of the gateway, served at `/metrics`. Every counter a test or an operator
//! reads is here, with the reason label as the only dimension.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label for "why" counters (drops, closes).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// A short snake_case reason.
    pub reason: &'static str,
}

/// Label for outcome counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// `ok` or `failed`.
    pub outcome: &'static str,
}

/// All metrics; cloning shares them.
#[derive(Clone)]
pub struct Metrics {
    /// Sphinx packets read from mix connections.
    pub mix_packets_received: Counter,
    /// Packets dropped after framing, by reason.
    pub mix_packets_dropped: Family<Reason, Counter>,
    /// Mix connections closed by us, by reason.
    pub mix_connections_closed: Family<Reason, Counter>,
    /// Open mix connections.
    pub mix_connections_active: Gauge,
    /// Final-hop packets unwrapped.
    pub mix_packets_unwrapped: Counter,
    /// Messages written to a connected client's socket as they arrived.
    pub messages_pushed: Counter,
    /// Messages committed to the store for a client.
    pub messages_stored: Counter,
    /// Stored messages written to a client's socket (and then deleted).
    pub messages_delivered_from_store: Counter,
    /// SURB-acks handed to egress.
    pub acks_forwarded: Counter,
    /// Forward-hop packets handed to egress after their delay (relay role).
    pub relay_packets_forwarded: Counter,
    /// Forward-hop packets waiting for their delay (relay role).
    pub relay_queue_depth: Gauge,
    /// Forward-hop packets whose requested delay was cut to `maximum_forward_delay`.
    pub relay_delays_capped: Counter,
    /// Packets written to next hops.
    pub egress_packets_sent: Counter,
    /// Packets egress could not send, by reason.
    pub egress_packets_dropped: Family<Reason, Counter>,
    /// Packets waiting in egress queues.
    pub egress_queue_depth: Gauge,
    /// Open outgoing mix connections.
    pub egress_connections: Gauge,
    /// Attempts to connect to a next hop that failed or timed out (each is followed by a
    /// backoff).
    pub egress_connect_failures: Counter,
    /// Authenticated client sessions.
    pub clients_connected: Gauge,
    /// Client connections refused or closed early, by reason.
    pub client_connections_rejected: Family<Reason, Counter>,
    /// Registration handshakes by outcome.
    pub handshakes: Family<Outcome, Counter>,
    /// Authentications by outcome.
    pub authentications: Family<Outcome, Counter>,
    /// Sphinx packets clients asked us to forward.
    pub client_packets_forwarded: Counter,
    /// Bytes of bandwidth granted to clients.
    pub bandwidth_granted_bytes: Counter,
    /// Bytes of bandwidth clients used.
    pub bandwidth_used_bytes: Counter,
    /// Messages in the store (updated at each scrape).
    pub store_messages: Gauge,
    /// Bytes of stored message content (updated at each scrape).
    pub store_message_bytes: Gauge,
    /// Bytes the replay filter's generations take (memory, and about its file's size).
    pub replay_filter_bytes: Gauge,
    /// Packets the replay filter's current generation is sized for.
    pub replay_filter_generation_capacity: Gauge,
    /// Time to unwrap one final-hop packet, in seconds.
    pub unwrap_seconds: Histogram,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gateway");
        macro_rules! register {
            ($name:literal, $help:literal, $metric:expr) => {{
                let metric = $metric;
                registry.register($name, $help, metric.clone());
                metric
            }};
        }
        let metrics = Self {
            mix_packets_received: register!(
                "mix_packets_received",
                "Sphinx packets read from mix connections",
                Counter::default()
            ),
            mix_packets_dropped: register!(
                "mix_packets_dropped",
                "Mix packets dropped, by reason",
                Family::default()
            ),
            mix_connections_closed: register!(
                "mix_connections_closed",
                "Mix connections closed by the gateway, by reason",
                Family::default()
            ),
            mix_connections_active: register!(
                "mix_connections_active",
                "Open mix connections",
                Gauge::default()
            ),
            mix_packets_unwrapped: register!(
                "mix_packets_unwrapped",
                "Final-hop packets unwrapped",
                Counter::default()
            ),
            messages_pushed: register!(
                "messages_pushed",
                "Messages written to connected clients on arrival",
                Counter::default()
            ),
            messages_stored: register!(
                "messages_stored",
                "Messages committed to the store",
                Counter::default()
            ),
            messages_delivered_from_store: register!(
                "messages_delivered_from_store",
                "Stored messages written to clients",
                Counter::default()
            ),
            acks_forwarded: register!(
                "acks_forwarded",
                "SURB-acks handed to egress",
                Counter::default()
            ),
            relay_packets_forwarded: register!(
                "relay_packets_forwarded",
                "Forward-hop packets handed to egress after their delay",
                Counter::default()
            ),
            relay_queue_depth: register!(
                "relay_queue_depth",
                "Forward-hop packets waiting for their delay",
                Gauge::default()
            ),
            relay_delays_capped: register!(
                "relay_delays_capped",
                "Forward-hop packets whose delay was capped at maximum_forward_delay",
                Counter::default()
            ),
            egress_packets_sent: register!(
                "egress_packets_sent",
                "Packets written to next hops",
                Counter::default()
            ),
            egress_packets_dropped: register!(
                "egress_packets_dropped",
                "Packets egress could not send, by reason",
                Family::default()
            ),
            egress_queue_depth: register!(
                "egress_queue_depth",
                "Packets waiting in egress queues",
                Gauge::default()
            ),
            egress_connections: register!(
                "egress_connections",
                "Open outgoing mix connections",
                Gauge::default()
            ),
            egress_connect_failures: register!(
                "egress_connect_failures",
                "Failed or timed-out connection attempts to next hops",
                Counter::default()
            ),
            clients_connected: register!(
                "clients_connected",
                "Authenticated client sessions",
                Gauge::default()
            ),
            client_connections_rejected: register!(
                "client_connections_rejected",
                "Client connections refused or closed early, by reason",
                Family::default()
            ),
            handshakes: register!(
                "handshakes",
                "Registration handshakes, by outcome",
                Family::default()
            ),
            authentications: register!(
                "authentications",
                "Client authentications, by outcome",
                Family::default()
            ),
            client_packets_forwarded: register!(
                "client_packets_forwarded",
                "Sphinx packets forwarded for clients",
                Counter::default()
            ),
            bandwidth_granted_bytes: register!(
                "bandwidth_granted_bytes",
                "Bandwidth granted to clients, in bytes",
                Counter::default()
            ),
            bandwidth_used_bytes: register!(
                "bandwidth_used_bytes",
                "Bandwidth used by clients, in bytes",
                Counter::default()
            ),
            store_messages: register!("store_messages", "Messages in the store", Gauge::default()),
            store_message_bytes: register!(
                "store_message_bytes",
                "Bytes of stored messages",
                Gauge::default()
            ),
            replay_filter_bytes: register!(
                "replay_filter_bytes",
                "Bytes the replay filter's generations take",
                Gauge::default()
            ),
            replay_filter_generation_capacity: register!(
                "replay_filter_generation_capacity",
                "Packets the replay filter's current generation is sized for",
                Gauge::default()
            ),
            unwrap_seconds: register!(
                "unwrap_seconds",
                "Time to unwrap one Sphinx packet, in seconds",
                Histogram::new([25e-6, 50e-6, 75e-6, 100e-6, 150e-6, 250e-6, 500e-6, 1e-3, 5e-3])
            ),
            registry: Arc::new(Registry::default()),
        };
        Self {
            registry: Arc::new(registry),
            ..metrics
        }
    }

    /// Counts a dropped mix packet.
    pub fn mix_drop(&self, reason: &'static str) {
        self.mix_drops(reason, 1);
    }

    /// Counts `packets` dropped mix packets.
    pub fn mix_drops(&self, reason: &'static str, packets: usize) {
        self.mix_packets_dropped
            .get_or_create(&Reason { reason })
            .inc_by(packets as u64);
    }

    /// Shows the replay filter's size.
    pub fn replay_filter(&self, filter: &super::replay::ReplayFilter) {
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.replay_filter_bytes
            .set(gauge(filter.allocated_bytes()));
        self.replay_filter_generation_capacity
            .set(gauge(filter.generation_capacity()));
    }

    /// Counts a dropped egress packet.
    pub fn egress_drop(&self, reason: &'static str) {
        self.egress_packets_dropped
            .get_or_create(&Reason { reason })
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
