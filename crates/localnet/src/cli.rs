//! The command line. Clap stays here; [`Cli::into_options`] hands plain values to the rest.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::Options;

/// Runs a local Nym mixnet: our gateway and three mix nodes (layers 1-3) on 127.0.0.1, plus the
/// nym-api endpoints clients and nodes need.
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

    /// Run Nym's own nym-node (this binary) as the three mix nodes instead of our gateway with
    /// the relay role
    #[arg(long, value_name = "PATH")]
    pub nym_node_bin: Option<PathBuf>,

    /// Address the nym-api endpoints listen on (port 0 picks a free one)
    #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1:8099")]
    pub api_address: SocketAddr,

    /// Length of an epoch in seconds. With nym-node at least 40: it skips a rotation step that
    /// comes less than 30 s before the next rotation, and each step is an epoch before one
    #[arg(long, value_name = "N", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub epoch_seconds: u64,

    /// Epochs a sphinx key rotation lasts. With nym-node at least 2: it pre-announces the next
    /// key an epoch before the rotation and drops the old one an epoch after
    #[arg(long, value_name = "N", default_value_t = 24,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rotation_epochs: u32,

    /// The gateway grants bandwidth only for zk-nym tickets (`enforce_zk_nyms = true`): clients
    /// must run in credentials mode and get their tickets from this network's e-cash authority
    #[arg(long)]
    pub tickets_required: bool,
}

/// The shortest epoch nym-node's key rotation keeps up with.
pub const NYM_NODE_MIN_EPOCH_SECONDS: u64 = 40;
/// The fewest epochs per rotation nym-node's key rotation keeps up with.
pub const NYM_NODE_MIN_ROTATION_EPOCHS: u32 = 2;

impl Cli {
    /// The options [`crate::run`] takes, or why these make no working network.
    pub fn into_options(self) -> Result<Options, String> {
        if self.nym_node_bin.is_some()
            && (self.epoch_seconds < NYM_NODE_MIN_EPOCH_SECONDS
                || self.rotation_epochs < NYM_NODE_MIN_ROTATION_EPOCHS)
        {
            return Err(format!(
                "with --nym-node-bin, epochs must last at least {NYM_NODE_MIN_EPOCH_SECONDS} s \
                 and rotations at least {NYM_NODE_MIN_ROTATION_EPOCHS} epochs, or nym-node's \
                 key rotation falls behind (see --help)"
            ));
        }
        Ok(Options {
            dir: self.dir,
            gateway_bin: self.gateway_bin,
            nym_node_bin: self.nym_node_bin,
            api_address: self.api_address,
            epoch: Duration::from_secs(self.epoch_seconds),
            rotation_epochs: self.rotation_epochs,
            tickets_required: self.tickets_required,
        })
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

    fn options(args: &[&str]) -> Result<Options, String> {
        let cli = Cli::try_parse_from(std::iter::once("nym-localnet").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.into_options()
    }

    #[test]
    fn epochs_default_to_an_hour_and_rotations_to_a_day() {
        let o = options(&[]).unwrap();
        assert_eq!(o.epoch, Duration::from_secs(3600));
        assert_eq!(o.rotation_epochs, 24);
        assert!(o.nym_node_bin.is_none());
        assert!(!o.tickets_required, "free bandwidth unless asked");
        assert!(options(&["--tickets-required"]).unwrap().tickets_required);
        let o = options(&["--epoch-seconds", "5", "--rotation-epochs", "1"]).unwrap();
        assert_eq!((o.epoch, o.rotation_epochs), (Duration::from_secs(5), 1));
        assert!(options(&["--epoch-seconds", "0"]).is_err());
        assert!(options(&["--rotation-epochs", "0"]).is_err());
    }

    #[test]
    fn nym_node_needs_epochs_its_rotation_keeps_up_with() {
        let nym_node = ["--nym-node-bin", "/bin/nym-node"];
        let with = |more: &[&str]| options(&[&nym_node[..], more].concat());
        let o = with(&["--epoch-seconds", "40", "--rotation-epochs", "2"]).unwrap();
        assert_eq!(
            o.nym_node_bin.as_deref(),
            Some(std::path::Path::new("/bin/nym-node"))
        );
        assert!(with(&["--epoch-seconds", "39"])
            .unwrap_err()
            .contains("at least 40 s"));
        assert!(with(&["--epoch-seconds", "60", "--rotation-epochs", "1"]).is_err());
    }
}
