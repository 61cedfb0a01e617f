//! Command-line flags (clap stays in this module) and their conversion into [`Config`].

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use thiserror::Error;

use crate::api::Limits;

/// Where the database lives unless `--database` says otherwise, relative to `$HOME` (the 1.0.2
/// service's location, so an operator finds it where the old docs say).
pub const DEFAULT_DATABASE: &str = ".nym/service-providers/network-statistics/db.sqlite";

/// The address the 1.0.2 service listened on in release builds.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8090";

/// Collects usage statistics reported by Nym gateways and network requesters, and answers
/// queries over them.
#[derive(Debug, Parser)]
#[command(name = "nym-network-statistics", version)]
pub struct Cli {
    /// Address and port to serve the HTTP API on
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// SQLite database file, created if missing
    /// [default: $HOME/.nym/service-providers/network-statistics/db.sqlite]
    #[arg(long, value_name = "PATH")]
    pub database: Option<PathBuf>,

    /// Largest request body accepted, in bytes; a larger one is answered 413
    #[arg(long, value_name = "BYTES", value_parser = at_least_one, default_value_t = Limits::DEFAULT.max_request_bytes)]
    pub max_request_bytes: usize,

    /// Most entries one report may carry; a report with more is refused whole
    #[arg(long, value_name = "N", value_parser = at_least_one, default_value_t = Limits::DEFAULT.max_report_entries)]
    pub max_report_entries: usize,

    /// Most entries one query may answer; a range matching more is refused
    #[arg(long, value_name = "N", value_parser = at_least_one, default_value_t = Limits::DEFAULT.max_query_entries)]
    pub max_query_entries: usize,
}

/// What the service runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// The SQLite database file.
    pub database: PathBuf,
    /// What one request may ask.
    pub limits: Limits,
}

/// A limit of 0 would refuse every request: it is refused when the flags are read.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A flag combination that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// No `--database` and no home folder to put the default one in.
    #[error(
        "$HOME is not set, so the default database location is unknown; pass --database <PATH>"
    )]
    NoHome,
}

impl Cli {
    /// Resolves defaults; `home` is the value of `$HOME`.
    pub fn into_config(self, home: Option<OsString>) -> Result<Config, ConfigError> {
        let database = match self.database {
            Some(path) => path,
            None => match home.filter(|home| !home.is_empty()) {
                Some(home) => PathBuf::from(home).join(DEFAULT_DATABASE),
                None => return Err(ConfigError::NoHome),
            },
        };
        Ok(Config {
            listen: self.listen,
            database,
            limits: Limits {
                max_request_bytes: self.max_request_bytes,
                max_report_entries: self.max_report_entries,
                max_query_entries: self.max_query_entries,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("nym-network-statistics").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_1_0_2_service() {
        let config = parse(&[])
            .unwrap()
            .into_config(Some("/home/op".into()))
            .unwrap();
        assert_eq!(config.listen, "0.0.0.0:8090".parse().unwrap());
        assert_eq!(
            config.database,
            PathBuf::from("/home/op/.nym/service-providers/network-statistics/db.sqlite")
        );
        assert_eq!(config.limits, Limits::DEFAULT);
    }

    #[test]
    fn limits_are_read_from_their_flags_and_zero_is_refused() {
        let config = parse(&[
            "--database",
            "x.sqlite",
            "--max-request-bytes",
            "2048",
            "--max-report-entries",
            "3",
            "--max-query-entries",
            "4",
        ])
        .unwrap()
        .into_config(None)
        .unwrap();
        assert_eq!(
            config.limits,
            Limits {
                max_request_bytes: 2048,
                max_report_entries: 3,
                max_query_entries: 4,
            }
        );
        for flag in [
            "--max-request-bytes",
            "--max-report-entries",
            "--max-query-entries",
        ] {
            let err = parse(&[flag, "0"]).unwrap_err().to_string();
            assert!(err.contains("must be at least 1"), "{flag}: {err}");
        }
    }

    #[test]
    fn explicit_database_needs_no_home() {
        let config = parse(&["--listen", "127.0.0.1:9", "--database", "x.sqlite"])
            .unwrap()
            .into_config(None)
            .unwrap();
        assert_eq!(config.database, PathBuf::from("x.sqlite"));
        assert_eq!(config.listen.port(), 9);
    }

    #[test]
    fn missing_home_is_an_error() {
        let err = parse(&[]).unwrap().into_config(None).unwrap_err();
        assert!(err.to_string().contains("--database"));
    }

    #[test]
    fn bad_listen_address_is_rejected() {
        assert!(parse(&["--listen", "localhost"]).is_err());
        assert!(parse(&["--listen", "127.0.0.1:99999"]).is_err());
    }
}
