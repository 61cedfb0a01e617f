//! `nym-network-statistics`: parse flags, set up logging, open the database, serve until SIGINT
//! or SIGTERM. Exit code 0 after a clean shutdown (and for `--help`/`--version`), 1 on any error.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tracing::info;
use tracing_subscriber::EnvFilter;

use nym_network_statistics::cli::Cli;
use nym_network_statistics::storage::Storage;

const DEFAULT_LOG_FILTER: &str = "info,hyper=warn,rusqlite=warn";

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            // --help and --version land here too; they are not failures.
            return if err.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.into_config(std::env::var_os("HOME"))?;
    let storage = Storage::open(&config.database).context("the database is not usable")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Handlers are installed before the address is announced, so a signal sent right after
        // start-up is a clean shutdown rather than the default kill.
        let shutdown = shutdown_signal().context("cannot install signal handlers")?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener
            .local_addr()
            .context("cannot read the bound address")?;
        // Plain stdout line: scripts (and the tests) learn the port when --listen used port 0.
        println!("Listening on http://{addr}");
        std::io::stdout()
            .flush()
            .context("cannot write to stdout")?;
        info!(%addr, database = %config.database.display(), "statistics service started");
        nym_network_statistics::serve(listener, storage.clone(), config.limits, shutdown)
            .await
            .context("the HTTP server failed")
    })?;
    // Requests still running after the grace period are dropped with the runtime.
    drop(runtime);
    storage.close().context("cannot close the database")?;
    info!("statistics service stopped");
    Ok(())
}

#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        info!(signal = name, "shutting down");
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        info!(signal = "ctrl-c", "shutting down");
    })
}
