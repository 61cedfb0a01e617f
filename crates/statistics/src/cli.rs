//! Command-line flags (clap stays in this module) and their conversion into [`Config`].

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use thiserror::Error;

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
}

/// What the service runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// The SQLite database file.
    pub database: PathBuf,
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
