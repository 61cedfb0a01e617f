//! The `nym-gateway` node: operator CLI, configuration, keys and the running gateway.
//!
//! # Layout
//! - [`cli`]: the command line as operators type it (clap lives only here).
//! - [`commands`]: one module per subcommand (`init`, `run`, `node-details`, `sign`, `upgrade`,
//!   `bonding-information`).
//! - [`config`]: `config.toml` — loading, validation, rendering, migration of old versions.
//! - [`network`]: built-in mainnet defaults and `--config-env-file` networks.
//! - [`keys`]: the identity (ed25519) and sphinx (x25519) key files.
//! - [`wallet`]: bech32 wallet-address validation.
//! - [`node_details`]: the node-details block printed by `init`, `run` and `node-details`.
//! - [`bonding`]: bonding with today's wallet (`bonding-information`, `sign --contract-msg`).
//! - [`build_info`]: what `--version` prints.
//! - [`fd_limit`]: the open-file limit checked against the connection caps at start.
//! - [`node`]: the running gateway (listeners, router, store, egress, the HTTP API and its
//!   dashboard).
//! - [`storage`]: opening the SQLite store from the config.
//! - [`logging`]: log output, and the latest warnings kept for the dashboard.
#![forbid(unsafe_code)]

pub mod bonding;
pub mod build_info;
pub mod cli;
pub mod commands;
pub mod config;
pub mod fd_limit;
pub mod keys;
pub mod logging;
pub mod network;
pub mod node;
pub mod node_details;
pub mod storage;
pub mod wallet;
