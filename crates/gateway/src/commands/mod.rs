//! One module per subcommand. Each returns `anyhow::Result`; `main` maps errors to exit code 1.

mod bonding_information;
mod init;
mod node_details;
mod overrides;
mod run;
mod sign;
mod signals;
mod upgrade;

use std::path::PathBuf;

use anyhow::Context as _;

use crate::cli::Command;
use crate::config::{self, Config};
use crate::network::Network;

pub use overrides::apply_overrides;

/// An error whose message was already printed the way operators know it (e.g. in red); `main`
/// only sets the exit code.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AlreadyReported(pub String);

/// What every command needs besides its own flags.
#[derive(Debug, Clone)]
pub struct Context {
    /// The network (mainnet or `--config-env-file`).
    pub network: Network,
    /// `$HOME/.nym/gateways`.
    pub root: PathBuf,
}

impl Context {
    /// The context of this process: `$HOME` decides where gateways live.
    pub fn from_env(network: Network) -> anyhow::Result<Self> {
        let root = config::nym_root_directory()
            .context("Failed to evaluate $HOME value: set HOME to the user's home directory")?;
        Ok(Self { network, root })
    }

    /// `config.toml` of gateway `id`.
    pub fn config_path(&self, id: &str) -> PathBuf {
        config::config_path(&self.root, id)
    }

    /// Loads the config of an initialised gateway, with the operator-facing error.
    pub fn load_config(&self, id: &str) -> anyhow::Result<Config> {
        let path = self.config_path(id);
        Config::load(&path).with_context(|| {
            format!("Failed to load config for {id}. Are you sure you have run `init` before?")
        })
    }
}

/// Runs one subcommand.
pub fn execute(command: Command, ctx: &Context) -> anyhow::Result<()> {
    match command {
        Command::BondingInformation(args) => bonding_information::execute(&args, ctx),
        Command::Init(args) => init::execute(&args, ctx),
        Command::Run(args) => run::execute(&args, ctx),
        Command::NodeDetails(args) => node_details::execute(&args, ctx),
        Command::Sign(args) => sign::execute(&args, ctx),
        Command::Upgrade(args) => upgrade::execute(&args, ctx),
    }
}

/// Prints a wallet error the way 1.0.x did (red, on stdout, then `Exiting...`).
fn report_wallet_error(err: &crate::wallet::WalletError) -> anyhow::Error {
    println!("\x1b[31mError: {err}\x1b[0m");
    println!("Exiting...");
    AlreadyReported(err.to_string()).into()
}
