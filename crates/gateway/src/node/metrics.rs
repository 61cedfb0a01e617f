//! Prometheus metrics of the gateway, served at `/metrics`. Every counter a test or an operator
//! reads is here, with the reason label as the only dimension.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tracing::warn;

/// Counts one open thing (a connection) on a gauge while it lives: the gauge goes up when the
/// guard is made and down when it is dropped, on every path out, a panic's included.
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    /// Increments `gauge` until the guard is dropped.
    pub fn hold(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Declares the values of one label: an enum whose variants are written as the given
/// snake_case text, and which is itself the label set `$label="<text>"` of its counters, so
/// a counter can only be given a value it knows.
macro_rules! label_values {
    ($(#[$doc:meta])* $name:ident($label:literal) { $($variant:ident => $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }
        }

        impl EncodeLabelSet for $name {
            fn encode(&self, encoder: LabelSetEncoder<'_>) -> std::fmt::Result {
                [($label, self.as_str())].encode(encoder)
            }
        }
    };
}

label_values! {
    /// Why a mix packet was dropped after framing.
    MixDrop("reason") {
        Replay => "replay",
        NoKeyForRotation => "no_key_for_rotation",
        ForwardHop => "forward_hop",
        UnwrapFailed => "unwrap_failed",
        MalformedSurbAck => "malformed_surb_ack",
        MalformedNextHop => "malformed_next_hop",
        ShuttingDown => "shutting_down",
        StoreRefused => "store_refused",
        StoreFailed => "store_failed",
        RelayQueueFull => "relay_queue_full",
        RelayInvalidPacket => "relay_invalid_packet",
        RelayEgressRefused => "relay_egress_refused",
    }
}

label_values! {
    /// Why the gateway closed (or refused) a mix connection.
    MixClose("reason") {
        ConnectionLimit => "connection_limit",
        AddressLimit => "address_limit",
        CodecError => "codec_error",
        IdleTimeout => "idle_timeout",
        FrameTimeout => "frame_timeout",
        NoiseRequired => "noise_required",
        NoiseHandshake => "noise_handshake",
        NoiseStream => "noise_stream",
    }
}

label_values! {
    /// Why egress could not send a packet.
    EgressDrop("reason") {
        QueueFull => "queue_full",
        TooManyConnections => "too_many_connections",
        ShuttingDown => "shutting_down",
        InvalidPacket => "invalid_packet",
        Unreachable => "unreachable",
        NoNoiseKey => "no_noise_key",
    }
}

label_values! {
    /// Why a client connection was refused or closed before authentication.
    ClientRejection("reason") {
        ConnectionLimit => "connection_limit",
        AddressLimit => "address_limit",
        WebsocketUpgrade => "websocket_upgrade",
        TlsHandshake => "tls_handshake",
        InitialTimeout => "initial_timeout",
        PreAuthenticationTimeout => "pre_authentication_timeout",
        UnexpectedRequest => "unexpected_request",
        DuplicateClient => "duplicate_client",
    }
}

label_values! {
    /// How a handshake or authentication ended.
    Outcome("outcome") {
        Ok => "ok",
        Failed => "failed",
    }
}

/// Declares every metric once: its field (also its name, after the `gateway_` prefix), its
/// type and constructor, and its help text; generates [`Metrics`] and [`Metrics::new`].
macro_rules! metrics {
    ($($(#[$doc:meta])* $field:ident: $ty:ty = $make:expr, $help:literal;)*) => {
        /// All metrics; cloning shares them.
        #[derive(Clone)]
        pub struct Metrics {
            $($(#[$doc])* pub $field: $ty,)*
            registry: Arc<Registry>,
        }

        impl Metrics {
            /// Creates and registers every metric.
            pub fn new() -> Self {
                let mut registry = Registry::with_prefix("gateway");
                $(
                    let $field: $ty = $make;
                    registry.register(stringify!($field), $help, $field.clone());
                )*
                Self {
                    $($field,)*
                    registry: Arc::new(registry),
                }
            }
        }
    };
}

metrics! {
    /// Sphinx packets read from mix connections.
    mix_packets_received: Counter = Counter::default(), "Sphinx packets read from mix connections";
    /// Packets dropped after framing, by reason.
    mix_packets_dropped: Family<MixDrop, Counter> = Family::default(), "Mix packets dropped, by reason";
    /// Mix connections closed by us, by reason.
    mix_connections_closed: Family<MixClose, Counter> = Family::default(), "Mix connections closed by the gateway, by reason";
    /// Noise handshakes on accepted mix connections, by outcome.
    noise_handshakes_accepted: Family<Outcome, Counter> = Family::default(), "Noise handshakes on accepted mix connections, by outcome";
    /// Noise handshakes on connections to next hops, by outcome.
    noise_handshakes_initiated: Family<Outcome, Counter> = Family::default(), "Noise handshakes with next hops, by outcome";
    /// Open mix connections.
    mix_connections_active: Gauge = Gauge::default(), "Open mix connections";
    /// Mix connections with unwrap jobs waiting for a thread (they take turns).
    unwrap_connections_waiting: Gauge = Gauge::default(), "Mix connections with packets waiting for an unwrap thread (served in turn)";
    /// Final-hop packets unwrapped.
    mix_packets_unwrapped: Counter = Counter::default(), "Final-hop packets unwrapped";
    /// Messages written to a connected client's socket as they arrived.
    messages_pushed: Counter = Counter::default(), "Messages written to connected clients on arrival";
    /// Messages committed to the store for a client.
    messages_stored: Counter = Counter::default(), "Messages committed to the store";
    /// Stored messages written to a client's socket (and then deleted).
    messages_delivered_from_store: Counter = Counter::default(), "Stored messages delivered to clients (confirmed by the client's pong when confirmation is on)";
    /// Messages pushed or sent from the store whose pong did not come: back to the store.
    messages_unconfirmed_returned: Counter = Counter::default(), "Live messages returned to the store because the client did not confirm them";
    /// From a batch's ping to its pong.
    client_delivery_confirmation_seconds: Histogram = Histogram::new([1e-3, 5e-3, 25e-3, 100e-3, 250e-3, 1.0, 5.0]), "Time from writing a batch to a client to the client's pong confirming it, in seconds";
    /// SURB-acks handed to egress.
    acks_forwarded: Counter = Counter::default(), "SURB-acks handed to egress";
    /// Forward-hop packets handed to egress after their delay (relay role).
    relay_packets_forwarded: Counter = Counter::default(), "Forward-hop packets handed to egress after their delay";
    /// Forward-hop packets waiting for their delay (relay role).
    relay_queue_depth: Gauge = Gauge::default(), "Forward-hop packets waiting for their delay";
    /// Forward-hop packets whose requested delay was cut to `maximum_forward_delay`.
    relay_delays_capped: Counter = Counter::default(), "Forward-hop packets whose delay was capped at maximum_forward_delay";
    /// Packets written to next hops.
    egress_packets_sent: Counter = Counter::default(), "Packets written to next hops";
    /// Packets egress could not send, by reason.
    egress_packets_dropped: Family<EgressDrop, Counter> = Family::default(), "Packets egress could not send, by reason";
    /// Packets waiting in egress queues.
    egress_queue_depth: Gauge = Gauge::default(), "Packets waiting in egress queues";
    /// Open outgoing mix connections.
    egress_connections: Gauge = Gauge::default(), "Open outgoing mix connections";
    /// Attempts to connect to a next hop that failed or timed out (each is followed by a
    /// backoff).
    egress_connect_failures: Counter = Counter::default(), "Failed or timed-out connection attempts to next hops";
    /// Authenticated client sessions.
    clients_connected: Gauge = Gauge::default(), "Authenticated client sessions";
    /// Client connections refused or closed early, by reason.
    client_connections_rejected: Family<ClientRejection, Counter> = Family::default(), "Client connections refused or closed early, by reason";
    /// Registration handshakes by outcome.
    handshakes: Family<Outcome, Counter> = Family::default(), "Registration handshakes, by outcome";
    /// wss certificate reloads (SIGHUP) by outcome; a failed one keeps the certificate in use.
    wss_certificate_reloads: Family<Outcome, Counter> = Family::default(), "wss certificate reloads (SIGHUP), by outcome";
    /// Authentications by outcome.
    authentications: Family<Outcome, Counter> = Family::default(), "Client authentications, by outcome";
    /// Sphinx packets clients asked us to forward.
    client_packets_forwarded: Counter = Counter::default(), "Sphinx packets forwarded for clients";
    /// Bytes of bandwidth granted to clients.
    bandwidth_granted_bytes: Counter = Counter::default(), "Bandwidth granted to clients, in bytes";
    /// Bytes of bandwidth clients used.
    bandwidth_used_bytes: Counter = Counter::default(), "Bandwidth used by clients, in bytes";
    /// Messages in the store (updated at each scrape).
    store_messages: Gauge = Gauge::default(), "Messages in the store";
    /// Bytes of stored message content (updated at each scrape).
    store_message_bytes: Gauge = Gauge::default(), "Bytes of stored messages";
    /// Bytes the replay filter's generations take (memory, and about its file's size).
    replay_filter_bytes: Gauge = Gauge::default(), "Bytes the generations of the replay filter last used take (one filter per sphinx key)";
    /// Packets the replay filter's current generation is sized for.
    replay_filter_generation_capacity: Gauge = Gauge::default(), "Packets the current generation of the replay filter last used is sized for";
    /// Time to unwrap one final-hop packet, in seconds.
    unwrap_seconds: Histogram = Histogram::new([25e-6, 50e-6, 75e-6, 100e-6, 150e-6, 250e-6, 500e-6, 1e-3, 5e-3]), "Time to unwrap one Sphinx packet, in seconds";
    /// Time from a message's unwrap until it was written to its client's socket or committed
    /// to the store (when its SURB-ack may leave), in seconds.
    delivery_seconds: Histogram = Histogram::new([1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]), "Time from unwrap to written to the client or committed to the store, in seconds";
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Counts a dropped mix packet.
    pub fn mix_drop(&self, reason: MixDrop) {
        self.mix_drops(reason, 1);
    }

    /// Counts `packets` dropped mix packets.
    pub fn mix_drops(&self, reason: MixDrop, packets: usize) {
        self.mix_packets_dropped
            .get_or_create(&reason)
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

    /// Reads the store's totals into `store_messages` and `store_message_bytes`. Not on any hot
    /// path: it scans the message table (see `Store::stats`).
    pub async fn read_store_totals(&self, store: &gateway_store::Store) {
        match store.stats().await {
            Ok(stats) => {
                let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
                self.store_messages.set(gauge(stats.messages));
                self.store_message_bytes.set(gauge(stats.message_bytes));
            }
            Err(e) => warn!(error = %e, "could not read the store's totals for the metrics"),
        }
    }

    /// Counts a dropped egress packet.
    pub fn egress_drop(&self, reason: EgressDrop) {
        self.egress_packets_dropped.get_or_create(&reason).inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
