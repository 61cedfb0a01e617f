//! The command line, exactly as operators know it from the 1.0.x gateway (names, value names,
//! descriptions), plus a few additions that are documented in the README. Clap stays in this
//! module: commands receive these plain structs.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::build_info::LONG_VERSION;

const TOP_LEVEL_TEMPLATE: &str = "\
{name} {version}
{author}
{about}

{usage-heading}
    {usage}

{all-args}{after-help}
";

const SUBCOMMAND_TEMPLATE: &str = "\
{name} 
{about}

{usage-heading}
    {usage}

{all-args}{after-help}
";

/// `nym-gateway [OPTIONS] <SUBCOMMAND>`
#[derive(Debug, Parser)]
#[command(
    name = "nym-gateway",
    author = "Nymtech",
    version,
    long_version = LONG_VERSION,
    about = "Implementation of the Nym Mixnet Gateway",
    arg_required_else_help = true,
    subcommand_value_name = "SUBCOMMAND",
    subcommand_help_heading = "SUBCOMMANDS",
    help_template = TOP_LEVEL_TEMPLATE,
    next_display_order = None,
    term_width = 0,
)]
pub struct Cli {
    /// Path pointing to an env file that configures the gateway
    #[arg(long)]
    pub config_env_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[command(help_template = SUBCOMMAND_TEMPLATE)]
pub enum Command {
    /// Show what today's wallet asks for to bond this gateway (as a Nym node)
    #[command(help_template = SUBCOMMAND_TEMPLATE, next_display_order = None, term_width = 0)]
    BondingInformation(BondingInformation),
    /// Initialise the gateway
    #[command(help_template = SUBCOMMAND_TEMPLATE, next_display_order = None, term_width = 0)]
    Init(Init),
    /// Show details of this gateway
    #[command(help_template = SUBCOMMAND_TEMPLATE, next_display_order = None, term_width = 0)]
    NodeDetails(NodeDetails),
    /// Starts the gateway
    #[command(help_template = SUBCOMMAND_TEMPLATE, next_display_order = None, term_width = 0)]
    Run(Run),
    /// Sign text to prove ownership of this mixnode
    #[command(help_template = SUBCOMMAND_TEMPLATE, next_display_order = None, term_width = 0)]
    Sign(Sign),
    /// Try to upgrade the gateway
    #[command(help_template = SUBCOMMAND_TEMPLATE, next_display_order = None, term_width = 0)]
    Upgrade(Upgrade),
}

/// Values `init` and `run` both accept; each overrides the matching config key.
#[derive(Debug, Default, Clone, Args)]
pub struct Overrides {
    /// The host that will be reported to the directory server
    #[arg(long)]
    pub announce_host: Option<String>,

    /// The port on which the gateway will be listening for clients gateway-requests
    #[arg(long)]
    pub clients_port: Option<u16>,

    /// Path to sqlite database containing all gateway persistent data
    #[arg(long)]
    pub datastore: Option<PathBuf>,

    /// Enable/disable gateway anonymized statistics that get sent to a statistics aggregator server
    #[arg(long, value_name = "ENABLED_STATISTICS", action = clap::ArgAction::Set)]
    pub enabled_statistics: Option<bool>,

    /// Address of the HTTP API serving /health and /metrics [default: 127.0.0.1:8080]
    #[arg(long)]
    pub http_api_address: Option<SocketAddr>,

    /// The port on which the gateway will be listening for sphinx packets
    #[arg(long)]
    pub mix_port: Option<u16>,

    /// URL where a statistics aggregator is running. The default value is a Nym aggregator server
    #[arg(long)]
    pub statistics_service_url: Option<String>,

    /// Comma separated list of endpoints of the validators APIs
    #[arg(long)]
    pub validator_apis: Option<String>,

    /// Comma separated list of endpoints of the validator
    #[arg(long)]
    pub validators: Option<String>,
}

/// `nym-gateway init`
#[derive(Debug, Args)]
pub struct Init {
    /// Id of the gateway we want to create config for
    #[arg(long)]
    pub id: String,

    /// The custom host on which the gateway will be running for receiving sphinx packets
    #[arg(long)]
    pub host: String,

    /// Cosmos wallet mnemonic needed for double spending protection
    #[arg(long)]
    pub mnemonic: Option<String>,

    /// The wallet address you will use to bond this gateway, e.g.
    /// nymt1z9egw0knv47nmur0p8vk4rcx59h9gg4zuxrrr9
    #[arg(long, verbatim_doc_comment)]
    pub wallet_address: String,

    #[command(flatten)]
    pub overrides: Overrides,
}

/// `nym-gateway run`
#[derive(Debug, Args)]
pub struct Run {
    /// Id of the gateway we want to run
    #[arg(long)]
    pub id: String,

    /// The custom host on which the gateway will be running for receiving sphinx packets
    #[arg(long)]
    pub host: Option<String>,

    /// Cosmos wallet mnemonic
    #[arg(long)]
    pub mnemonic: Option<String>,

    /// The wallet address you will use to bond this gateway, e.g.
    /// nymt1z9egw0knv47nmur0p8vk4rcx59h9gg4zuxrrr9
    #[arg(long, verbatim_doc_comment)]
    pub wallet_address: Option<String>,

    /// Create a local gateway with default settings (127.0.0.1, no wallet address) if this id
    /// has no configuration yet
    #[arg(long)]
    pub init_if_missing: bool,

    #[command(flatten)]
    pub overrides: Overrides,
}

/// `nym-gateway node-details`
#[derive(Debug, Args)]
pub struct NodeDetails {
    /// The id of the gateway you want to show details for
    #[arg(long)]
    pub id: String,

    /// Output format of the details
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// `nym-gateway bonding-information`
#[derive(Debug, Args)]
pub struct BondingInformation {
    /// The id of the gateway you want to bond
    #[arg(long)]
    pub id: String,

    /// Output format of the bonding information
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// How `node-details`, `bonding-information` and `sign --contract-msg` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Plain text for people
    Text,
    /// One JSON object
    Json,
}

/// `nym-gateway sign`
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("sign").required(true).args(["address", "text", "contract_msg"])))]
pub struct Sign {
    /// The id of the mixnode you want to sign with
    #[arg(long)]
    pub id: String,

    /// Signs your blockchain address with your identity key
    #[arg(long)]
    pub address: Option<String>,

    /// Signs an arbitrary piece of text with your identity key
    #[arg(long)]
    pub text: Option<String>,

    /// Signs the base58 contract message today's wallet shows when bonding, with your identity key
    #[arg(long)]
    pub contract_msg: Option<String>,

    /// Output format of the --contract-msg signature [default: text]
    // Not `requires = "contract_msg"`: clap accepts any member of the group for it (clap#4707).
    #[arg(short, long, value_enum, conflicts_with_all = ["address", "text"])]
    pub output: Option<OutputFormat>,
}

/// `nym-gateway upgrade`
#[derive(Debug, Args)]
pub struct Upgrade {
    /// Id of the nym-gateway we want to upgrade
    #[arg(long)]
    pub id: String,
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
