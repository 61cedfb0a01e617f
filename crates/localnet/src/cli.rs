//! The command line. Clap stays here; [`Cli::into_options`] hands plain values to the rest.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::Options;

/// Runs a local Nym mixnet: one gateway and three mix relays (layers 1-3) on 127.0.0.1, plus the
/// nym-api endpoints a client reads its topology from.
#[derive(Debug, Parser)]
#[command(name = "nym-localnet", version, term_width = 0)]
pub struct Cli {
    /// Directory for the nodes' keys, configs, stores and logs. Reusing it keeps the same keys
    /// and ports. Without it a temporary directory is used and deleted on exit
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// The nym-gateway binary to run [default: nym-gateway next to this program]
    #[arg(long, value_name = "PATH")]
    pub gateway_bin: Option<PathBuf>,

    /// Address the nym-api endpoints listen on (port 0 picks a free one)
    #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1:8099")]
    pub api_address: SocketAddr,
}

impl Cli {
    /// The options [`crate::run`] takes.
    pub fn into_options(self) -> Options {
        Options {
            dir: self.dir,
            gateway_bin: self.gateway_bin,
            api_address: self.api_address,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
