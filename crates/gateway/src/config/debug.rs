//! `[debug]`: every limit, queue size and timeout, each with a default sized for a 2-core,
//! 4 GB machine. Durations are written the humantime way (`1500ms`, `30s`, `24h`).
//!
//! Each key is declared once, in the `tuning_keys!` list below: its comment in config.toml,
//! its type, default and check. That one list makes the struct [`Tuning`], its `Default`, the
//! comments of the `[debug]` section the template writes (`Tuning::KEYS`) and the checks of
//! single keys in [`Tuning::validate`].

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Largest replay filter bound accepted (1 TiB): far beyond any machine this runs on, it only
/// keeps the sizing arithmetic meaningful.
const MAX_REPLAY_FILTER_BYTES: u64 = 1 << 40;

/// Most samples the dashboard's history may keep (a day at one a second, ~35 MB): its memory
/// is bounded by config, and this keeps that bound reasonable.
const MAX_DASHBOARD_SAMPLES: usize = 86_400;

/// Declares the `[debug]` keys. Each entry, in the order config.toml lists them:
///
/// ```text
/// /// One line: the key's comment in config.toml (and the first line of its rustdoc).
/// ///
/// /// More rustdoc (optional), then serde attributes (optional).
/// #[serde(with = "humantime_serde")]
/// name: Type = default_expression, check function;   // `, check ...` is optional
/// ```
///
/// A check is a `fn(&Type) -> Result<(), String>` whose error is the reason the value is
/// refused. Checks that involve two keys are in [`Tuning::validate`].
macro_rules! tuning_keys {
    ($(
        #[doc = $comment:literal]
        $(#[$attr:meta])*
        $name:ident: $ty:ty = $default:expr $(, check $check:path)?;
    )*) => {
        /// The `[debug]` table of config.toml: limits, queue sizes, timeouts and switches.
        /// Any key may be omitted; it then takes its default.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Tuning {
            $(
                #[doc = $comment]
                $(#[$attr])*
                #[doc = ""]
                #[doc = concat!("Default: `", stringify!($default), "`.")]
                pub $name: $ty,
            )*
        }

        impl Default for Tuning {
            fn default() -> Self {
                Self {
                    $($name: $default,)*
                }
            }
        }

        impl Tuning {
            /// Every key with its one-line comment in config.toml, in the file's order.
            pub(super) const KEYS: &[(&str, &str)] = &[$((stringify!($name), $comment),)*];

            /// The checks of single keys, in the file's order.
            fn check_keys(&self) -> Result<(), ConfigError> {
                $($(
                    $check(&self.$name).map_err(|reason| ConfigError::Invalid {
                        key: stringify!($name),
                        reason,
                    })?;
                )?)*
                Ok(())
            }
        }
    };
}

tuning_keys! {
    /// First reconnect delay of an outgoing mix connection.
    #[serde(with = "humantime_serde")]
    packet_forwarding_initial_backoff: Duration = Duration::from_secs(1);
    /// Reconnect delays double up to this.
    #[serde(with = "humantime_serde")]
    packet_forwarding_maximum_backoff: Duration = Duration::from_secs(30);
    /// Connect timeout of an outgoing mix connection.
    #[serde(with = "humantime_serde")]
    initial_connection_timeout: Duration = Duration::from_millis(1500);
    /// Packets queued per next hop; more are dropped and counted.
    maximum_connection_buffer_size: NonZeroUsize = nonzero(2000);
    /// Outgoing mix connections open at once; packets for more hops are dropped and counted.
    ///
    /// One connection per next hop.
    maximum_egress_connections: NonZeroUsize = nonzero(1024);
    /// An outgoing mix connection with nothing to send for this long is closed.
    #[serde(with = "humantime_serde")]
    egress_idle_timeout: Duration = Duration::from_secs(600);
    /// Stored messages sent to a client per batch.
    message_retrieval_limit: NonZeroUsize = nonzero(100);
    /// Open client connections; more are refused.
    maximum_client_connections: NonZeroUsize = nonzero(8192);
    /// Open mix connections; more are refused.
    maximum_mix_connections: NonZeroUsize = nonzero(4096);
    /// Open mix connections from one address (an IPv6 /64 counts as one); more are closed at once.
    maximum_mix_connections_per_address: NonZeroUsize = nonzero(32);
    /// Open client connections from one address (an IPv6 /64 counts as one); more are refused.
    maximum_client_connections_per_address: NonZeroUsize = nonzero(256);
    /// Whether the per-address limits also count loopback (off: a local TLS proxy, the load generator and nym-localnet connect from it).
    per_address_limits_include_loopback: bool = false;
    /// A mix frame must arrive in full within this of its first byte, or the connection is closed.
    #[serde(with = "humantime_serde")]
    mix_frame_timeout: Duration = Duration::from_secs(30);
    /// A mix connection that sends nothing for this long is closed.
    #[serde(with = "humantime_serde")]
    mix_connection_idle_timeout: Duration = Duration::from_secs(600);
    /// The websocket upgrade must complete within this.
    #[serde(with = "humantime_serde")]
    websocket_upgrade_timeout: Duration = Duration::from_millis(1500);
    /// A wss connection's TLS handshake must complete within this (the upgrade's time starts after it).
    ///
    /// Longer than the upgrade's: TLS takes one or two round trips more, and a far client on
    /// a slow link should not be cut off.
    #[serde(with = "humantime_serde")]
    tls_handshake_timeout: Duration = Duration::from_secs(5);
    /// Each message before authentication must arrive within this.
    #[serde(with = "humantime_serde")]
    initial_message_timeout: Duration = Duration::from_secs(10);
    /// A client must register or authenticate within this of connecting, whatever else it sends.
    ///
    /// Counted from the websocket upgrade, however many other messages the client sends.
    #[serde(with = "humantime_serde")]
    pre_authentication_timeout: Duration = Duration::from_secs(30);
    /// Each registration handshake message must arrive within this.
    #[serde(with = "humantime_serde")]
    handshake_message_timeout: Duration = Duration::from_secs(5);
    /// Largest websocket message accepted from a client, in bytes.
    maximum_client_message_size: NonZeroUsize = nonzero(64 * 1024);
    /// A client socket write slower than this ends the session; its messages are stored.
    ///
    /// The session's undelivered messages go back to the store.
    #[serde(with = "humantime_serde")]
    client_write_timeout: Duration = Duration::from_secs(10);
    /// Messages queued for one connected client before new ones are stored.
    client_push_queue_capacity: NonZeroUsize = nonzero(256);
    /// Forward a pushed message's SURB-ack only once the client's pong shows it read the message.
    ///
    /// After each batch written to a client the session sends a websocket ping; the batch counts
    /// as delivered (acks forwarded, stored copies deleted) only when the pong comes back. Off:
    /// delivered once written to the socket.
    client_delivery_confirmation: bool = true;
    /// A client that does not confirm a batch within this is disconnected; its unconfirmed messages go back to the store.
    #[serde(with = "humantime_serde")]
    client_delivery_confirmation_timeout: Duration = Duration::from_secs(10), check not_zero;
    /// Batches written to one client and not yet confirmed; at this many the session takes no new messages (they are stored).
    client_max_unconfirmed_batches: NonZeroUsize = nonzero(64);
    /// Allowed clock difference of authentication requests.
    ///
    /// The timestamp of `authenticateV2` requests.
    #[serde(with = "humantime_serde")]
    maximum_auth_request_timestamp_skew: Duration = Duration::from_secs(120);
    /// Bytes granted per free bandwidth claim.
    ///
    /// Per `claimFreeTestnetBandwidth` request (64 GiB).
    free_bandwidth_per_claim: i64 = 64 * 1024 * 1024 * 1024, check not_negative;
    /// How far a zk-nym ticket's pay-info timestamp may be from our clock.
    ///
    /// nym-node's window (30 s): a ticket spent longer ago or later is refused, and a pay info
    /// is remembered this long to refuse its replay.
    #[serde(with = "humantime_serde")]
    zk_nym_pay_info_window: Duration = Duration::from_secs(30), check not_zero;
    /// DKG epochs whose master verification key is kept (older ones are fetched again if needed).
    zk_nym_key_cache_epochs: NonZeroUsize = nonzero(8);
    /// Largest answer read from nym-api for a master verification key, in bytes.
    ///
    /// A key of a few attributes is about 2 KB of JSON; a larger answer is refused like an
    /// unreachable nym-api.
    zk_nym_key_max_answer_size: NonZeroUsize = nonzero(256 * 1024);
    /// zk-nym tickets verified at once (each takes a CPU core for about 40 ms: BENCHMARKS.md).
    zk_nym_verification_concurrency: NonZeroUsize = nonzero(2);
    /// Accepted zk-nym tickets waiting to be sent to the signers (as many again may wait for a retry).
    zk_nym_signer_queue_capacity: NonZeroUsize = nonzero(1024);
    /// Attempts to get a ticket's verdict from the signers before it is left unverified.
    zk_nym_signer_attempts: NonZeroU32 = nonzero(5);
    /// Wait before asking signers that did not answer about a ticket again.
    ///
    /// nym-node retries pending tickets every 5 minutes.
    #[serde(with = "humantime_serde")]
    zk_nym_signer_retry_interval: Duration = Duration::from_secs(300), check not_zero;
    /// Share of the signers whose acceptance settles a ticket; `1 -` this share refusing rejects it.
    zk_nym_signer_quorum: f64 = 0.7, check between_0_and_1;
    /// A ticket the signers reject costs its client this many times its bandwidth.
    zk_nym_revocation_penalty: f64 = 10.0, check not_negative_factor;
    /// Largest answer read from an e-cash signer about a ticket, in bytes.
    ///
    /// A verdict is a few dozen bytes; a larger answer counts as no answer (asked again later).
    zk_nym_signer_max_answer_size: NonZeroUsize = nonzero(64 * 1024);
    /// Wait between fetches of the upgrade-mode attestation while upgrade mode is off.
    ///
    /// nym-node's `regular_polling_interval`.
    #[serde(with = "humantime_serde")]
    upgrade_mode_poll_interval: Duration = Duration::from_secs(15 * 60), check not_zero;
    /// Wait between fetches of the upgrade-mode attestation while upgrade mode is on.
    ///
    /// nym-node's `expedited_poll_interval`: the end of an upgrade is noticed sooner.
    #[serde(with = "humantime_serde")]
    upgrade_mode_expedited_poll_interval: Duration = Duration::from_secs(2 * 60), check not_zero;
    /// A client's upgradeModeJWT makes the gateway fetch the attestation again only this long after its last fetch.
    ///
    /// nym-node's `upgrade_mode_min_staleness_recheck`; a JWT sooner than that is refused.
    #[serde(with = "humantime_serde")]
    upgrade_mode_min_staleness_recheck: Duration = Duration::from_secs(30);
    /// Timeout of one fetch of the upgrade-mode attestation.
    #[serde(with = "humantime_serde")]
    upgrade_mode_request_timeout: Duration = Duration::from_secs(5), check not_zero;
    /// Failed attestation fetches in a row that turn upgrade mode off.
    upgrade_mode_failure_threshold: NonZeroU32 = nonzero(5);
    /// Largest upgrade-mode attestation document read, and largest upgradeModeJWT taken, in bytes.
    upgrade_mode_max_document_size: NonZeroUsize = nonzero(64 * 1024);
    /// Timeout of the start-up duplicate-host check against the validator API.
    #[serde(with = "humantime_serde")]
    validator_check_timeout: Duration = Duration::from_secs(5);
    /// Largest answer read from the validator API for the start-up duplicate-host check, in bytes.
    ///
    /// The answer lists every bonded gateway; a larger one counts as an unreachable API (a
    /// warning, and the gateway starts).
    validator_check_max_answer_size: NonZeroUsize = nonzero(10 * 1024 * 1024);
    /// Timeout of one request to nym-api (key rotation, refresh-described).
    #[serde(with = "humantime_serde")]
    nym_api_timeout: Duration = Duration::from_secs(10), check not_zero;
    /// How often nym-api's key-rotation information is read, besides the rotation's own times.
    ///
    /// The rotation steps are scheduled from nym-api's epochs; this poll only catches changed
    /// rotation settings.
    #[serde(with = "humantime_serde")]
    key_rotation_poll_interval: Duration = Duration::from_secs(600), check not_zero;
    /// After nym-api failed to answer (or its epoch is stuck), ask again after this.
    #[serde(with = "humantime_serde")]
    key_rotation_retry_interval: Duration = Duration::from_secs(60), check not_zero;
    /// Largest key-rotation answer read from nym-api, in bytes.
    ///
    /// The answer is a few hundred bytes of JSON; a larger one is a failed request (a warning,
    /// and nym-api is asked again after `key_rotation_retry_interval`).
    key_rotation_max_answer_size: NonZeroUsize = nonzero(64 * 1024);
    /// How often statistics are reported when enabled.
    #[serde(with = "humantime_serde")]
    statistics_report_interval: Duration = Duration::from_secs(60);
    /// Timeout of one statistics report.
    #[serde(with = "humantime_serde")]
    statistics_request_timeout: Duration = Duration::from_secs(10);
    /// Longest each stage of a shutdown waits for its work before the next stage starts anyway.
    ///
    /// The stages stop in order: connections and sessions, store commits, delayed forward
    /// hops, outgoing packets, the HTTP API. A stage still busy after this is logged and left.
    /// The systemd unit allows 60 s for the whole stop: raise its `TimeoutStopSec` with this.
    #[serde(with = "humantime_serde")]
    shutdown_stage_timeout: Duration = Duration::from_secs(10), check not_zero;
    /// Stored messages older than this are deleted.
    #[serde(with = "humantime_serde")]
    stored_messages_max_age: Duration = Duration::from_secs(24 * 3600);
    /// How often old stored messages are deleted.
    #[serde(with = "humantime_serde")]
    stale_messages_cleaner_interval: Duration = Duration::from_secs(3600);
    /// Stored messages per client; more are refused (0 = unlimited).
    max_stored_messages_per_client: u64 = 20_000;
    /// Stored bytes per client; more are refused (0 = unlimited).
    max_stored_bytes_per_client: u64 = 64 * 1024 * 1024;
    /// Store operations queued before callers wait.
    store_queue_capacity: NonZeroUsize = nonzero(8192);
    /// Store operations committed in one transaction at most.
    store_max_batch: NonZeroUsize = nonzero(512);
    /// true: commits survive power loss (slower); false: they survive process crashes.
    ///
    /// True commits with `synchronous=FULL`: a committed message (whose SURB-ack is then sent)
    /// survives power loss, not only process crashes, at one fsync per batch.
    store_synchronous_full: bool = true;
    /// Page cache of the store's write connection, in KiB.
    store_cache_kib: NonZeroU32 = nonzero(16 * 1024);
    /// Copy the WAL into the database file on a thread of its own instead of the writer's.
    store_background_checkpoints: bool = true;
    /// WAL pages (4 KiB) written between two background checkpoints.
    store_checkpoint_pages: NonZeroU32 = nonzero(1000);
    /// WAL pages at which the writer rewinds the WAL; bounds the WAL file to about this size.
    store_wal_restart_pages: NonZeroU32 = nonzero(4096);
    /// Most packets the replay filter remembers (both generations): bounds its memory and file, ~3 bytes a packet at 1e-5.
    ///
    /// At the default false-positive rate, the default takes at most about 515 MiB, which
    /// 2 000 packets/s need for 25 h. The filter starts at `replay_filter_initial_capacity` and
    /// grows only as the packet rate requires.
    replay_filter_capacity: NonZeroU64 = nonzero(180_000_000);
    /// Packets the replay filter's first generation holds; later ones grow as the packet rate requires.
    ///
    /// At most half of `replay_filter_capacity`; the default takes about 1.4 MiB at the
    /// default rate.
    replay_filter_initial_capacity: NonZeroU64 = nonzero(500_000);
    /// Each replay filter generation is sized to last at least this at the packet rate seen (within replay_filter_capacity).
    ///
    /// Sized for the rate seen while the last one filled: a packet is remembered at least this
    /// long.
    #[serde(with = "humantime_serde")]
    replay_filter_generation_lifetime: Duration = Duration::from_secs(12 * 3600 + 30 * 60),
        check not_zero;
    /// Acceptable false-positive rate of each replay filter generation.
    replay_filter_false_positive_rate: f64 = 1e-5, check between_0_and_1;
    /// How often the replay filter is saved next to the store if it changed (also at shutdown; loaded at start).
    ///
    /// The file is `replay_filter.bin`. Each save writes the whole filter (as large as its
    /// generations: about 1.4 MiB for a quiet gateway, at most about 515 MiB at the default
    /// capacity); after a crash, the packets of the last interval are forgotten.
    #[serde(with = "humantime_serde")]
    replay_filter_save_interval: Duration = Duration::from_secs(3600);
    /// How Sphinx packets are unwrapped: 'fast' (byte-identical, ~1.8x faster) or 'reference' (sphinx-packet).
    ///
    /// `fast` is our path; `reference` is `sphinx-packet` 0.8.0.
    final_hop_implementation: FinalHopImplementation = FinalHopImplementation::Fast;
    /// Framing of outgoing mix packets: 'v8' keeps each packet's key rotation (nym-node 1.31), 'v7' for older peers.
    ///
    /// v8 carries the rotation byte the client (or the previous hop) gave the packet, so the
    /// next hop picks the right sphinx key; v7 drops it and the next hop must guess.
    egress_frame_version: EgressFraming = EgressFraming::V8;
    /// Noise on the mix port: auto (as nym-node), required (every peer), or off (plain TCP).
    ///
    /// auto: the gateway announces a Noise key; peers the directory lists with a Noise key
    /// must use it, both ways; others may use Noise or plain TCP. required: every connection,
    /// in and out, uses Noise (next hops without a listed key get nothing). off: no key is
    /// announced and every connection is plain TCP.
    mix_noise: NoiseMode = NoiseMode::Auto;
    /// A Noise handshake on the mix port must complete within this.
    #[serde(with = "humantime_serde")]
    noise_handshake_timeout: Duration = Duration::from_secs(5), check not_zero;
    /// How often the directory's Noise keys are read from nym-api.
    #[serde(with = "humantime_serde")]
    noise_directory_refresh_interval: Duration = Duration::from_secs(300), check not_zero;
    /// Largest page of nym-api's node list read for the Noise keys, in bytes.
    ///
    /// Mainnet's list is a few hundred KiB, all on one page; a larger page fails the read,
    /// which keeps the last view (a warning).
    noise_directory_max_answer_size: NonZeroUsize = nonzero(32 * 1024 * 1024);
    /// Pages of nym-api's node list read at most per refresh; nodes on further pages count as announcing no Noise key.
    ///
    /// nym-api puts every node on the first page today; reaching the limit is a warning.
    noise_directory_max_pages: NonZeroUsize = nonzero(64);
    /// Threads unwrapping Sphinx packets (0 = one per core).
    unwrap_workers: usize = 0;
    /// Threads running sockets, sessions and routing (0 = one per two cores, at least one).
    ///
    /// The Sphinx unwrapping, most of a packet's CPU, runs on `unwrap_workers`; the async side
    /// mostly waits for sockets. A second async thread on a two-core machine mostly wakes up to
    /// steal a task the first would have run next: on two cores one async thread cost ~8–14 µs
    /// less CPU per packet than two, and carried ~15 % more packets at peak (BENCHMARKS.md).
    async_workers: usize = 0;
    /// Packets waiting for or in unwrapping, over all connections.
    unwrap_queue_capacity: NonZeroUsize = nonzero(4096);
    /// Packets one mix connection may have in unwrapping at once.
    mix_connection_max_in_flight: NonZeroUsize = nonzero(256);
    /// A read completing at most this many frames (none in the pool) is unwrapped by its connection's task (0 = always the pool).
    ///
    /// A read from a mix connection that completes at most this many frames, with none of the
    /// connection's packets in the pool, is unwrapped by the connection's own task instead of
    /// the pool: a packet arriving on its own then costs no hand-off between threads.
    unwrap_inline_max_frames: usize = 1;
    /// Mix relay role: forward hops go on after their delay (false: a gateway only; they are dropped).
    ///
    /// On, forward-hop packets go on to their next hop after the delay their header asks for,
    /// as a mix node does.
    forward_hop_processing: bool = false;
    /// Longest a forward-hop packet is held, whatever its header asks for.
    #[serde(with = "humantime_serde")]
    maximum_forward_delay: Duration = Duration::from_secs(10);
    /// Forward-hop packets waiting for their delay at once; more are dropped and counted.
    ///
    /// The default holds at most about 24 MB of regular packets.
    forward_queue_capacity: NonZeroUsize = nonzero(10_000);
    /// How often the dashboard's history takes a sample of the metrics.
    #[serde(with = "humantime_serde")]
    dashboard_sample_interval: Duration = Duration::from_secs(2), check not_zero;
    /// How far back the dashboard's charts go; its history keeps this divided by the sample interval.
    ///
    /// Each sample takes about 8 bytes per series shown (about 50): the default keeps 450
    /// samples, under 200 KiB.
    #[serde(with = "humantime_serde")]
    dashboard_history: Duration = Duration::from_secs(15 * 60);
    /// How often the dashboard's samples re-read the store's totals (a scan of its message index).
    ///
    /// Counting the stored messages and their bytes reads every row header of the message
    /// table; `/metrics` scrapes read them too, and a sample shows the last totals read.
    #[serde(with = "humantime_serde")]
    dashboard_store_interval: Duration = Duration::from_secs(10);
    /// The latest warnings and errors the dashboard shows (0 = none are kept).
    dashboard_warnings: usize = 50;
    /// Longest text kept of one of those warnings, in bytes.
    dashboard_warning_bytes: NonZeroUsize = nonzero(512);
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

/// How outgoing mix packets are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EgressFraming {
    /// `07 size type`: no key rotation (mix nodes before key rotation).
    V7,
    /// `08 size type rotation`: the packet's key rotation travels with it.
    V8,
}

/// Noise on the mix port (`mix_noise`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoiseMode {
    /// As nym-node: Noise with peers that announce a key, plain TCP with the others.
    Auto,
    /// Noise with every peer.
    Required,
    /// Plain TCP only; no Noise key announced.
    Off,
}

impl Tuning {
    /// Samples the dashboard's history keeps: `dashboard_history / dashboard_sample_interval`,
    /// at least one.
    pub fn dashboard_samples(&self) -> usize {
        let interval = self.dashboard_sample_interval.as_millis().max(1);
        usize::try_from(self.dashboard_history.as_millis() / interval)
            .unwrap_or(usize::MAX)
            .max(1)
    }

    /// Rejects values that make no sense: the checks of single keys, then those of two keys.
    /// (Zero limits cannot be written: their `NonZero*` types refuse 0 when the file is read.)
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_keys()?;
        let replay = crate::node::replay::ReplaySettings::from_config(self);
        if replay.max_bytes() > MAX_REPLAY_FILTER_BYTES {
            return Err(ConfigError::Invalid {
                key: "replay_filter_capacity",
                reason: format!(
                    "the replay filter would take up to {} bytes at replay_filter_false_positive_rate {}; at most {MAX_REPLAY_FILTER_BYTES} are allowed",
                    replay.max_bytes(),
                    self.replay_filter_false_positive_rate,
                ),
            });
        }
        if self.dashboard_samples() > MAX_DASHBOARD_SAMPLES {
            return Err(ConfigError::Invalid {
                key: "dashboard_history",
                reason: format!(
                    "keeps {} samples at dashboard_sample_interval {}; at most {MAX_DASHBOARD_SAMPLES} are allowed",
                    self.dashboard_samples(),
                    humantime::format_duration(self.dashboard_sample_interval),
                ),
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

/// A non-zero default, written as a plain number in `tuning_keys!`.
fn nonzero<T: TryFrom<NonZeroU64>>(n: u64) -> T {
    NonZeroU64::new(n)
        .and_then(|n| T::try_from(n).ok())
        .expect("a non-zero default that fits its type")
}

fn not_negative(value: &i64) -> Result<(), String> {
    if *value < 0 {
        return Err("must not be negative".into());
    }
    Ok(())
}

fn not_negative_factor(value: &f64) -> Result<(), String> {
    if value.is_finite() && *value >= 0.0 {
        Ok(())
    } else {
        Err(format!("{value} is not a finite factor of 0 or more"))
    }
}

fn not_zero(value: &Duration) -> Result<(), String> {
    if value.is_zero() {
        return Err("must be greater than 0".into());
    }
    Ok(())
}

fn between_0_and_1(rate: &f64) -> Result<(), String> {
    if !(*rate > 0.0 && *rate < 1.0) {
        return Err(format!("{rate} is not between 0 and 1"));
    }
    Ok(())
}
