//! Renders `config.toml` with comments, in the 1.0.2 layout. The `tests` module renders, parses
//! back and compares, so the template can never drift from the schema.

use std::fmt::Write;
use std::path::Path;

use super::Config;

/// One line of explanation for each `[debug]` key, in the order they are written.
const DEBUG_KEYS: &[(&str, &str)] = &[
    (
        "packet_forwarding_initial_backoff",
        "First reconnect delay of an outgoing mix connection.",
    ),
    (
        "packet_forwarding_maximum_backoff",
        "Reconnect delays double up to this.",
    ),
    (
        "initial_connection_timeout",
        "Connect timeout of an outgoing mix connection.",
    ),
    (
        "maximum_connection_buffer_size",
        "Packets queued per next hop; more are dropped and counted.",
    ),
    (
        "maximum_egress_connections",
        "Outgoing mix connections open at once; packets for more hops are dropped and counted.",
    ),
    (
        "egress_idle_timeout",
        "An outgoing mix connection with nothing to send for this long is closed.",
    ),
    (
        "message_retrieval_limit",
        "Stored messages sent to a client per batch.",
    ),
    (
        "maximum_client_connections",
        "Open client connections; more are refused.",
    ),
    (
        "maximum_mix_connections",
        "Open mix connections; more are refused.",
    ),
    (
        "mix_frame_timeout",
        "A mix frame must arrive in full within this of its first byte, or the connection is closed.",
    ),
    (
        "mix_connection_idle_timeout",
        "A mix connection that sends nothing for this long is closed.",
    ),
    (
        "websocket_upgrade_timeout",
        "The websocket upgrade must complete within this.",
    ),
    (
        "initial_message_timeout",
        "Each message before authentication must arrive within this.",
    ),
    (
        "pre_authentication_timeout",
        "A client must register or authenticate within this of connecting, whatever else it sends.",
    ),
    (
        "handshake_message_timeout",
        "Each registration handshake message must arrive within this.",
    ),
    (
        "maximum_client_message_size",
        "Largest websocket message accepted from a client, in bytes.",
    ),
    (
        "client_write_timeout",
        "A client socket write slower than this ends the session; its messages are stored.",
    ),
    (
        "client_push_queue_capacity",
        "Messages queued for one connected client before new ones are stored.",
    ),
    (
        "maximum_auth_request_timestamp_skew",
        "Allowed clock difference of authentication requests.",
    ),
    (
        "free_bandwidth_per_claim",
        "Bytes granted per free bandwidth claim.",
    ),
    (
        "validator_check_timeout",
        "Timeout of the start-up duplicate-host check against the validator API.",
    ),
    (
        "statistics_report_interval",
        "How often statistics are reported when enabled.",
    ),
    (
        "statistics_request_timeout",
        "Timeout of one statistics report.",
    ),
    (
        "stored_messages_max_age",
        "Stored messages older than this are deleted.",
    ),
    (
        "stale_messages_cleaner_interval",
        "How often old stored messages are deleted.",
    ),
    (
        "max_stored_messages_per_client",
        "Stored messages per client; more are refused (0 = unlimited).",
    ),
    (
        "max_stored_bytes_per_client",
        "Stored bytes per client; more are refused (0 = unlimited).",
    ),
    (
        "store_queue_capacity",
        "Store operations queued before callers wait.",
    ),
    (
        "store_max_batch",
        "Store operations committed in one transaction at most.",
    ),
    (
        "store_synchronous_full",
        "true: commits survive power loss (slower); false: they survive process crashes.",
    ),
    (
        "store_cache_kib",
        "Page cache of the store's write connection, in KiB.",
    ),
    (
        "store_background_checkpoints",
        "Copy the WAL into the database file on a thread of its own instead of the writer's.",
    ),
    (
        "store_checkpoint_pages",
        "WAL pages (4 KiB) written between two background checkpoints.",
    ),
    (
        "store_wal_restart_pages",
        "WAL pages at which the writer rewinds the WAL; bounds the WAL file to about this size.",
    ),
    (
        "replay_filter_capacity",
        "Most packets the replay filter remembers (both generations): bounds its memory and file, ~3 bytes a packet at 1e-5.",
    ),
    (
        "replay_filter_initial_capacity",
        "Packets the replay filter's first generation holds; later ones grow as the packet rate requires.",
    ),
    (
        "replay_filter_generation_lifetime",
        "Each replay filter generation is sized to last at least this at the packet rate seen (within replay_filter_capacity).",
    ),
    (
        "replay_filter_false_positive_rate",
        "Acceptable false-positive rate of each replay filter generation.",
    ),
    (
        "replay_filter_save_interval",
        "How often the replay filter is saved next to the store if it changed (also at shutdown; loaded at start).",
    ),
    (
        "final_hop_implementation",
        "How Sphinx packets are unwrapped: 'fast' (byte-identical, ~1.8x faster) or 'reference' (sphinx-packet).",
    ),
    (
        "unwrap_workers",
        "Threads unwrapping Sphinx packets (0 = one per core).",
    ),
    (
        "unwrap_queue_capacity",
        "Packets waiting for or in unwrapping, over all connections.",
    ),
    (
        "mix_connection_max_in_flight",
        "Packets one mix connection may have in unwrapping at once.",
    ),
    (
        "unwrap_inline_max_frames",
        "A read completing at most this many frames (none in the pool) is unwrapped by its connection's task (0 = always the pool).",
    ),
    (
        "forward_hop_processing",
        "Mix relay role: forward hops go on after their delay (false: a gateway only; they are dropped).",
    ),
    (
        "maximum_forward_delay",
        "Longest a forward-hop packet is held, whatever its header asks for.",
    ),
    (
        "forward_queue_capacity",
        "Forward-hop packets waiting for their delay at once; more are dropped and counted.",
    ),
];

/// A TOML string: a literal (single-quoted, as 1.0.x wrote) when that is exact, else escaped.
fn string(value: &str) -> String {
    if value.contains('\'') || value.chars().any(char::is_control) {
        toml::Value::String(value.to_owned()).to_string()
    } else {
        format!("'{value}'")
    }
}

fn path(value: &Path) -> String {
    string(&value.to_string_lossy())
}

fn string_array(values: &[String]) -> String {
    if values.is_empty() {
        return "[]".to_owned();
    }
    let mut out = String::from("[\n");
    for v in values {
        let _ = writeln!(out, "    {},", string(v));
    }
    out.push(']');
    out
}

/// The full text of `config.toml`.
pub(super) fn render(config: &Config) -> String {
    let g = &config.gateway;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"# This is a TOML config file.
# For more information, see https://github.com/toml-lang/toml

##### main base mixnode config options #####

[gateway]
# Version of the gateway for which this configuration was created.
version = {version}

# Human readable ID of this particular gateway.
id = {id}

# Whether bandwidth is granted freely on request (credentials are not enforced).
disabled_credentials_mode = {disabled_credentials_mode}

# Address to which this gateway binds its mix and client listeners.
listening_address = {listening_address}

# Path to file containing private identity key.
private_identity_key_file = {private_identity_key_file}

# Path to file containing public identity key.
public_identity_key_file = {public_identity_key_file}

# Path to file containing private sphinx key.
private_sphinx_key_file = {private_sphinx_key_file}

# Path to file containing public sphinx key.
public_sphinx_key_file = {public_sphinx_key_file}
{eth_endpoint}
##### additional gateway config options #####

# Optional address announced to the directory server for the clients to connect to.
# It is useful, say, in NAT situations or when a host name should be announced.
announce_address = {announce_address}

# Port used for listening for all mixnet traffic.
mix_port = {mix_port}

# Port used for listening for all client websocket traffic.
clients_port = {clients_port}

# Address of the HTTP API serving /health, /metrics and /api/v1/node-details.
http_api_address = {http_api_address}

{http_api_token}# Whether gateway collects and sends anonymized statistics
enabled_statistics = {enabled_statistics}

# Domain address of the statistics service
statistics_service_url = {statistics_service_url}

# Addresses to APIs running on validator from which the node gets the view of the network.
validator_api_urls = {validator_api_urls}

# Addresses to validators which the node uses to check for double spending of ERC20 tokens.
validator_nymd_urls = {validator_nymd_urls}

# Mnemonic of a cosmos wallet used in checking for double spending.
cosmos_mnemonic = {cosmos_mnemonic}

# Wallet address this gateway is bonded with.
wallet_address = {wallet_address}

##### advanced configuration options #####

# Absolute path to the home Nym Clients directory.
nym_root_directory = {nym_root_directory}

# Path to sqlite database containing all persistent data: shared keys, stored messages
# and bandwidth.
persistent_storage = {persistent_storage}

##### logging configuration options #####

[logging]

# TODO

##### limits and timeouts (every key optional; defaults shown) #####

[debug]
"#,
        version = string(&g.version),
        id = string(&g.id),
        disabled_credentials_mode = g.disabled_credentials_mode,
        listening_address = string(&g.listening_address.to_string()),
        private_identity_key_file = path(&g.private_identity_key_file),
        public_identity_key_file = path(&g.public_identity_key_file),
        private_sphinx_key_file = path(&g.private_sphinx_key_file),
        public_sphinx_key_file = path(&g.public_sphinx_key_file),
        eth_endpoint = match &g.eth_endpoint {
            Some(e) => format!(
                "\n# Unused; kept from an older configuration.\neth_endpoint = {}\n",
                string(e)
            ),
            None => String::new(),
        },
        announce_address = string(&g.announce_address),
        mix_port = g.mix_port,
        clients_port = g.clients_port,
        http_api_address = string(&g.http_api_address.to_string()),
        http_api_token = match &g.http_api_token {
            Some(token) => format!(
                "# Bearer token required by /metrics and /api/v1/node-details.\nhttp_api_token = {}\n\n",
                string(token)
            ),
            None => String::new(),
        },
        enabled_statistics = g.enabled_statistics,
        statistics_service_url = string(&g.statistics_service_url),
        validator_api_urls = string_array(&g.validator_api_urls),
        validator_nymd_urls = string_array(&g.validator_nymd_urls),
        cosmos_mnemonic = string(&g.cosmos_mnemonic),
        wallet_address = string(&g.wallet_address),
        nym_root_directory = path(&g.nym_root_directory),
        persistent_storage = path(&g.persistent_storage),
    );
    let debug =
        toml::Value::try_from(&config.debug).unwrap_or(toml::Value::Table(Default::default()));
    for (key, comment) in DEBUG_KEYS {
        if let Some(value) = debug.get(key) {
            let _ = write!(out, "# {comment}\n{key} = {value}\n\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_debug_key_is_documented() {
        let debug = toml::Value::try_from(crate::config::Debug::default()).unwrap();
        let table = debug.as_table().unwrap();
        for key in table.keys() {
            assert!(
                DEBUG_KEYS.iter().any(|(k, _)| k == key),
                "{key} has no comment"
            );
        }
        assert_eq!(table.len(), DEBUG_KEYS.len());
    }

    #[test]
    fn strings_that_need_escaping_survive() {
        assert_eq!(string("plain"), "'plain'");
        let tricky = "it's \"quoted\"";
        let parsed: toml::Table = toml::from_str(&format!("k = {}", string(tricky))).unwrap();
        assert_eq!(parsed["k"].as_str(), Some(tricky));
    }
}
