//! `nym-gateway-loadgen`: parse the flags, run, print the report (or run a `hold` helper).

use std::process::ExitCode;

use clap::Parser as _;
use gateway_loadgen::cli::{Cli, Command, Settings};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Command::Hold(args)) => runtime.block_on(gateway_loadgen::hold::run(args.into())),
        None => {
            let settings = Settings::from_cli(cli);
            let json = settings.json;
            runtime
                .block_on(gateway_loadgen::run(settings))
                .map(|report| {
                    if json {
                        println!("{}", report.to_json());
                    } else {
                        print!("{}", report.to_table());
                    }
                })
        }
    };
    // Helper processes and the gateway are stopped by their owners' drops; nothing is left.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
