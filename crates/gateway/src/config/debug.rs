//! `[debug]`: every limit, queue size and timeout, each with a default sized for a 2-core,
//! 4 GB machine. Durations are written the humantime way (`1500ms`, `30s`, `24h`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Largest replay filter bound accepted (1 TiB): far beyond any machine this runs on, it only
/// keeps the sizing arithmetic meaningful.
const MAX_REPLAY_FILTER_BYTES: u64 = 1 << 40;

/// Limits and timeouts. Any key may be omitted; it then takes the default shown in its doc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Debug {
    /// First reconnect delay of an outgoing mix connection (default 1s).
    #[serde(with = "humantime_serde")]
    pub packet_forwarding_initial_backoff: Duration,
    /// Reconnect delays double up to this (default 30s).
    #[serde(with = "humantime_serde")]
    pub packet_forwarding_maximum_backoff: Duration,
    /// Connect timeout of an outgoing mix connection (default 1500ms).
    #[serde(with = "humantime_serde")]
    pub initial_connection_timeout: Duration,
    /// Packets queued per next hop before new ones are dropped and counted (default 2000).
    pub maximum_connection_buffer_size: usize,
    /// Outgoing mix connections (one per next hop) open at once; packets for more hops are
    /// dropped and counted (default 1024).
    pub maximum_egress_connections: usize,
    /// An outgoing mix connection with nothing to send for this long is closed (default 10m).
    #[serde(with = "humantime_serde")]
    pub egress_idle_timeout: Duration,
    /// Stored messages sent to a client per batch (default 100).
    pub message_retrieval_limit: usize,
    /// Open client connections; more are refused (default 8192).
    pub maximum_client_connections: usize,
    /// Open mix connections; more are refused (default 4096).
    pub maximum_mix_connections: usize,
    /// A mix frame must arrive in full within this of its first byte, or the connection is
    /// closed (default 30s).
    #[serde(with = "humantime_serde")]
    pub mix_frame_timeout: Duration,
    /// A mix connection that sends nothing for this long is closed (default 10m).
    #[serde(with = "humantime_serde")]
    pub mix_connection_idle_timeout: Duration,
    /// The websocket upgrade must complete within this (default 1500ms).
    #[serde(with = "humantime_serde")]
    pub websocket_upgrade_timeout: Duration,
    /// Each message before authentication must arrive within this (default 10s).
    #[serde(with = "humantime_serde")]
    pub initial_message_timeout: Duration,
    /// A client must send its register or authenticate request within this of the websocket
    /// upgrade, however many other messages it sends (default 30s).
    #[serde(with = "humantime_serde")]
    pub pre_authentication_timeout: Duration,
    /// Each registration handshake message must arrive within this (default 5s).
    #[serde(with = "humantime_serde")]
    pub handshake_message_timeout: Duration,
    /// Largest websocket message accepted from a client, in bytes (default 65536).
    pub maximum_client_message_size: usize,
    /// A write to a client socket that takes longer than this ends the session; its undelivered
    /// messages go back to the store (default 10s).
    #[serde(with = "humantime_serde")]
    pub client_write_timeout: Duration,
    /// Messages queued for one connected client before new ones go to the store (default 256).
    pub client_push_queue_capacity: usize,
    /// Allowed clock difference of `authenticateV2` requests (default 120s).
    #[serde(with = "humantime_serde")]
    pub maximum_auth_request_timestamp_skew: Duration,
    /// Bytes granted per `claimFreeTestnetBandwidth` (default 64 GiB).
    pub free_bandwidth_per_claim: i64,
    /// Timeout of the start-up duplicate-host check against the validator API (default 5s).
    #[serde(with = "humantime_serde")]
    pub validator_check_timeout: Duration,
    /// How often statistics are reported when enabled (default 60s).
    #[serde(with = "humantime_serde")]
    pub statistics_report_interval: Duration,
    /// Timeout of one statistics report (default 10s).
    #[serde(with = "humantime_serde")]
    pub statistics_request_timeout: Duration,
    /// Stored messages older than this are deleted (default 24h).
    #[serde(with = "humantime_serde")]
    pub stored_messages_max_age: Duration,
    /// How often old stored messages are deleted (default 1h).
    #[serde(with = "humantime_serde")]
    pub stale_messages_cleaner_interval: Duration,
    /// Stored messages per client; more are refused (0 = unlimited; default 20000).
    pub max_stored_messages_per_client: u64,
    /// Stored bytes per client; more are refused (0 = unlimited; default 64 MiB).
    pub max_stored_bytes_per_client: u64,
    /// Store operations queued before callers wait (default 8192).
    pub store_queue_capacity: usize,
    /// Store operations committed in one transaction at most (default 512).
    pub store_max_batch: usize,
    /// Commit with `synchronous=FULL`: a committed message (whose SURB-ack is then sent)
    /// survives power loss, not only process crashes, at one fsync per batch (default true).
    pub store_synchronous_full: bool,
    /// Page cache of the store's write connection, KiB (default 16384).
    pub store_cache_kib: u32,
    /// Copy the WAL into the database file on a thread of its own instead of the writer's
    /// (default true).
    pub store_background_checkpoints: bool,
    /// WAL pages (4 KiB) written between two background checkpoints (default 1000).
    pub store_checkpoint_pages: u32,
    /// WAL pages at which the writer rewinds the WAL, which bounds its file (default 4096).
    pub store_wal_restart_pages: u32,
    /// Most packets the replay filter remembers, both generations together: the bound on its
    /// memory and file, about 3 bytes a packet at the default false-positive rate (default
    /// 180 000 000: at most about 515 MiB, which 2 000 packets/s need for 25 h). The filter
    /// starts at `replay_filter_initial_capacity` and grows only as the packet rate requires.
    pub replay_filter_capacity: u64,
    /// Packets the replay filter's first generation holds (at most half of
    /// `replay_filter_capacity`; default 500 000: about 1.4 MiB at the default rate).
    pub replay_filter_initial_capacity: u64,
    /// Each new replay filter generation is sized for the packet rate seen while the last one
    /// filled, to last at least this (within `replay_filter_capacity`): a packet is remembered
    /// at least this long (default 12h 30m).
    #[serde(with = "humantime_serde")]
    pub replay_filter_generation_lifetime: Duration,
    /// Acceptable false-positive rate of each replay filter generation (default 1e-5).
    pub replay_filter_false_positive_rate: f64,
    /// How often the replay filter is saved to `replay_filter.bin` next to the store, if it
    /// changed; it is also saved at shutdown (if it changed) and loaded at start. Each save
    /// writes the whole filter (as large as its generations: about 1.4 MiB for a quiet gateway,
    /// at most about 515 MiB at the default capacity); after a crash, the packets of the last
    /// interval are forgotten (default 1h).
    #[serde(with = "humantime_serde")]
    pub replay_filter_save_interval: Duration,
    /// How Sphinx packets are unwrapped: `fast` (our path, byte-identical, about 1.8x faster)
    /// or `reference` (`sphinx-packet` 0.8.0) (default fast).
    pub final_hop_implementation: FinalHopImplementation,
    /// Threads unwrapping Sphinx packets (0 = one per core; default 0).
    pub unwrap_workers: usize,
    /// Packets waiting for or in unwrapping, over all connections (default 4096).
    pub unwrap_queue_capacity: usize,
    /// Packets one mix connection may have in unwrapping at once (default 256).
    pub mix_connection_max_in_flight: usize,
    /// A read from a mix connection that completes at most this many frames, with none of the
    /// connection's packets in the pool, is unwrapped by the connection's own task instead of
    /// the pool: a packet arriving on its own then costs no hand-off between threads (0 = always
    /// the pool; default 1).
    pub unwrap_inline_max_frames: usize,
    /// The mix relay role: pass forward-hop packets on to their next hop after the delay their
    /// header asks for, as a mix node does. Off, the node is a gateway only and drops them
    /// (default false).
    pub forward_hop_processing: bool,
    /// Longest a forward-hop packet is held, whatever its header asks for (default 10s).
    #[serde(with = "humantime_serde")]
    pub maximum_forward_delay: Duration,
    /// Forward-hop packets waiting for their delay at once; more are dropped and counted
    /// (default 10000; at most about 24 MB of regular packets).
    pub forward_queue_capacity: usize,
}

/// Which code unwraps Sphinx packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinalHopImplementation {
    /// Our faster path (aws-lc X25519), proven identical to the reference by tests.
    Fast,
    /// `sphinx-packet` 0.8.0.
    Reference,
}

impl Default for Debug {
    fn default() -> Self {
        Self {
            packet_forwarding_initial_backoff: Duration::from_secs(1),
            packet_forwarding_maximum_backoff: Duration::from_secs(30),
            initial_connection_timeout: Duration::from_millis(1500),
            maximum_connection_buffer_size: 2000,
            maximum_egress_connections: 1024,
            egress_idle_timeout: Duration::from_secs(600),
            message_retrieval_limit: 100,
            maximum_client_connections: 8192,
            maximum_mix_connections: 4096,
            mix_frame_timeout: Duration::from_secs(30),
            mix_connection_idle_timeout: Duration::from_secs(600),
            websocket_upgrade_timeout: Duration::from_millis(1500),
            initial_message_timeout: Duration::from_secs(10),
            pre_authentication_timeout: Duration::from_secs(30),
            handshake_message_timeout: Duration::from_secs(5),
            maximum_client_message_size: 64 * 1024,
            client_write_timeout: Duration::from_secs(10),
            client_push_queue_capacity: 256,
            maximum_auth_request_timestamp_skew: Duration::from_secs(120),
            free_bandwidth_per_claim: 64 * 1024 * 1024 * 1024,
            validator_check_timeout: Duration::from_secs(5),
            statistics_report_interval: Duration::from_secs(60),
            statistics_request_timeout: Duration::from_secs(10),
            stored_messages_max_age: Duration::from_secs(24 * 3600),
            stale_messages_cleaner_interval: Duration::from_secs(3600),
            max_stored_messages_per_client: 20_000,
            max_stored_bytes_per_client: 64 * 1024 * 1024,
            store_queue_capacity: 8192,
            store_max_batch: 512,
            store_synchronous_full: true,
            store_cache_kib: 16 * 1024,
            store_background_checkpoints: true,
            store_checkpoint_pages: 1000,
            store_wal_restart_pages: 4096,
            replay_filter_capacity: 180_000_000,
            replay_filter_initial_capacity: 500_000,
            replay_filter_generation_lifetime: Duration::from_secs(12 * 3600 + 30 * 60),
            replay_filter_false_positive_rate: 1e-5,
            replay_filter_save_interval: Duration::from_secs(3600),
            final_hop_implementation: FinalHopImplementation::Fast,
            unwrap_workers: 0,
            unwrap_queue_capacity: 4096,
            mix_connection_max_in_flight: 256,
            unwrap_inline_max_frames: 1,
            forward_hop_processing: false,
            maximum_forward_delay: Duration::from_secs(10),
            forward_queue_capacity: 10_000,
        }
    }
}

impl Debug {
    /// Rejects values that would disable a limit by accident or make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive: [(&'static str, u64); 17] = [
            (
                "maximum_egress_connections",
                self.maximum_egress_connections as u64,
            ),
            (
                "maximum_connection_buffer_size",
                self.maximum_connection_buffer_size as u64,
            ),
            (
                "message_retrieval_limit",
                self.message_retrieval_limit as u64,
            ),
            (
                "maximum_client_connections",
                self.maximum_client_connections as u64,
            ),
            (
                "maximum_mix_connections",
                self.maximum_mix_connections as u64,
            ),
            (
                "maximum_client_message_size",
                self.maximum_client_message_size as u64,
            ),
            (
                "client_push_queue_capacity",
                self.client_push_queue_capacity as u64,
            ),
            ("store_queue_capacity", self.store_queue_capacity as u64),
            ("store_max_batch", self.store_max_batch as u64),
            ("store_cache_kib", u64::from(self.store_cache_kib)),
            (
                "store_checkpoint_pages",
                u64::from(self.store_checkpoint_pages),
            ),
            (
                "store_wal_restart_pages",
                u64::from(self.store_wal_restart_pages),
            ),
            ("replay_filter_capacity", self.replay_filter_capacity),
            (
                "replay_filter_initial_capacity",
                self.replay_filter_initial_capacity,
            ),
            ("unwrap_queue_capacity", self.unwrap_queue_capacity as u64),
            (
                "mix_connection_max_in_flight",
                self.mix_connection_max_in_flight as u64,
            ),
            ("forward_queue_capacity", self.forward_queue_capacity as u64),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be greater than 0".into(),
                });
            }
        }
        let rate = self.replay_filter_false_positive_rate;
        if !(rate > 0.0 && rate < 1.0) {
            return Err(ConfigError::Invalid {
                key: "replay_filter_false_positive_rate",
                reason: format!("{rate} is not between 0 and 1"),
            });
        }
        let replay = crate::node::replay::ReplaySettings::from_config(self);
        if replay.max_bytes() > MAX_REPLAY_FILTER_BYTES {
            return Err(ConfigError::Invalid {
                key: "replay_filter_capacity",
                reason: format!(
                    "the replay filter would take up to {} bytes at replay_filter_false_positive_rate {rate}; at most {MAX_REPLAY_FILTER_BYTES} are allowed",
                    replay.max_bytes()
                ),
            });
        }
        if self.replay_filter_generation_lifetime.is_zero() {
            return Err(ConfigError::Invalid {
                key: "replay_filter_generation_lifetime",
                reason: "must be greater than 0".into(),
            });
        }
        if self.free_bandwidth_per_claim < 0 {
            return Err(ConfigError::Invalid {
                key: "free_bandwidth_per_claim",
                reason: "must not be negative".into(),
            });
        }
        if self.packet_forwarding_initial_backoff > self.packet_forwarding_maximum_backoff {
            return Err(ConfigError::Invalid {
                key: "packet_forwarding_initial_backoff",
                reason: "must not exceed packet_forwarding_maximum_backoff".into(),
            });
        }
        Ok(())
    }
}
