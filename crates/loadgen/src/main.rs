//! `nym-gateway-loadgen`: parse the flags, run (the measurements, or a soak), print the
//! report; or compare our gateway with nym-node; or run a `hold` helper.

use std::process::ExitCode;

use clap::Parser as _;
use gateway_loadgen::cli::{Cli, Command, Settings, SoakSettings};

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    let command = cli.command.take();
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
    let result = match command {
        Some(Command::Hold(args)) => runtime.block_on(gateway_loadgen::hold::run(args.into())),
        Some(Command::Compare(args)) => {
            let mut settings = Settings::from_cli(cli);
            if let Some(rates) = args.rate {
                settings.rates = rates.0;
            }
            let json = settings.json;
            runtime
                .block_on(gateway_loadgen::compare::run(settings))
                .map(|comparison| {
                    if json {
                        println!("{}", comparison.to_json());
                    } else {
                        print!("{}", comparison.to_table());
                    }
                })
        }
        Some(Command::Soak(args)) => {
            let settings = SoakSettings::new(args, Settings::from_cli(cli));
            let json = settings.run.json;
            runtime
                .block_on(gateway_loadgen::soak::run(settings))
                .map(|report| {
                    if json {
                        println!("{}", report.to_json());
                    } else {
                        print!("{}", report.to_table());
                    }
                })
        }
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
