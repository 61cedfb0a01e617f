//! `nym-gateway`: parse the command line, set up logging, run the command, map the result to an
//! exit code (0 ok, 1 failure, 2 usage error).

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Parser;

use nym_gateway::build_info::banner;
use nym_gateway::cli::Cli;
use nym_gateway::commands::{self, AlreadyReported, Context};
use nym_gateway::logging;
use nym_gateway::network::Network;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // Machine-readable output must not be preceded by the banner.
    let wants_json = args
        .windows(2)
        .any(|w| (w[0] == "--output" || w[0] == "-o") && w[1] == "json")
        || args
            .iter()
            .any(|a| a == "--output=json" || a == "-ojson" || a == "-o=json");
    if !wants_json {
        print!("{}", banner());
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    logging::init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.downcast_ref::<AlreadyReported>().is_none() {
                eprintln!("Error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let process_env: HashMap<String, String> = std::env::vars().collect();
    let network = Network::resolve(cli.config_env_file.as_deref(), &process_env)?;
    let ctx = Context::from_env(network)?;
    commands::execute(cli.command, &ctx)
}
