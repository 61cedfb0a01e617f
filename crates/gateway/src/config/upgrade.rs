//! Bringing a config written by an older gateway up to this version (`nym-gateway upgrade`), and
//! the version check `run` and `sign` perform.
//!
//! Keys added since 1.0.1 have serde defaults, so migrating a 1.0.x file is: parse, stamp the
//! new version, write it back in the current layout, keeping the old file as a backup. (The
//! original 1.0.2 binary could not upgrade a 1.0.1 config at all.)

use std::path::{Path, PathBuf};

use semver::Version;
use thiserror::Error;

use super::{Config, ConfigError, MISSING_VALUE};

/// Why an upgrade or version check failed. Texts follow the 1.0.x gateway.
#[derive(Debug, Error)]
pub enum UpgradeError {
    /// The config could not be read.
    #[error("failed to load existing config file! - {0}")]
    Load(#[from] ConfigError),
    /// No `version` key.
    #[error("the existing configuration file does not seem to contain version number.")]
    NoVersion,
    /// `version` is not semver.
    #[error("failed to parse client version! - {0}")]
    BadVersion(String),
    /// This binary is a pre-release.
    #[error("Trying to upgrade to a non-released version {0}. This is not supported!")]
    UnreleasedTarget(Version),
    /// The config comes from a pre-release.
    #[error("Trying to upgrade from a non-released version {0}. This is not supported!")]
    UnreleasedSource(Version),
    /// Older than anything we can migrate.
    #[error("Cannot perform upgrade from {from} to {to}. Your version is too old to perform the upgrade.!")]
    TooOld {
        /// Config version.
        from: Version,
        /// Binary version.
        to: Version,
    },
    /// The config was written by a newer gateway.
    #[error("Cannot perform upgrade from {from} to {to}. The configuration was written by a newer gateway; use that version's binary.")]
    Newer {
        /// Config version.
        from: Version,
        /// Binary version.
        to: Version,
    },
    /// The version check of `run`/`sign` failed.
    #[error("The gateway binary has different version than what is specified in config file! {binary} and {config} and they are semver incompatible! - please run the `upgrade` command before attempting `run` again")]
    Incompatible {
        /// Binary version.
        binary: String,
        /// Config version.
        config: String,
    },
}

/// What `upgrade` did.
#[derive(Debug, PartialEq, Eq)]
pub enum UpgradeOutcome {
    /// Nothing to do.
    AlreadyCurrent,
    /// Rewritten; the previous file was kept at `backup`.
    Upgraded {
        /// Config version before.
        from: Version,
        /// Config version now.
        to: Version,
        /// Where the old file went.
        backup: PathBuf,
    },
}

fn parse_version(text: &str) -> Result<Version, UpgradeError> {
    Version::parse(text.trim()).map_err(|e| UpgradeError::BadVersion(format!("{text:?}: {e}")))
}

/// Upgrades the config at `path` to `target` (this binary's version). `before_rewrite` runs
/// once the config was read and found upgradable (also when it is already current), before
/// anything is written: the `upgrade` command migrates the store there, so a store that cannot
/// be migrated leaves the config file untouched.
pub fn upgrade_file<E>(
    path: &Path,
    target: &str,
    before_rewrite: impl FnOnce(&Config) -> Result<(), E>,
) -> Result<Result<UpgradeOutcome, E>, UpgradeError> {
    let target = parse_version(target)?;
    if !target.pre.is_empty() || !target.build.is_empty() {
        return Err(UpgradeError::UnreleasedTarget(target));
    }
    let mut config = Config::load(path)?;
    if config.gateway.version == MISSING_VALUE {
        return Err(UpgradeError::NoVersion);
    }
    let from = parse_version(&config.gateway.version)?;
    if !from.pre.is_empty() {
        return Err(UpgradeError::UnreleasedSource(from));
    }
    if from > target {
        return Err(UpgradeError::Newer { from, to: target });
    }
    if from.major < 1 {
        return Err(UpgradeError::TooOld { from, to: target });
    }
    if let Err(e) = before_rewrite(&config) {
        return Ok(Err(e));
    }
    if from == target {
        return Ok(Ok(UpgradeOutcome::AlreadyCurrent));
    }
    let backup = path.with_file_name(format!("config.toml.{from}.bak"));
    std::fs::copy(path, &backup).map_err(|source| ConfigError::Io {
        path: backup.clone(),
        source,
    })?;
    config.gateway.version = target.to_string();
    config.save(path)?;
    Ok(Ok(UpgradeOutcome::Upgraded {
        from,
        to: target,
        backup,
    }))
}

/// How a config's version relates to the binary's.
#[derive(Debug, PartialEq, Eq)]
pub enum VersionCheck {
    /// Same version.
    Equal,
    /// Different, but same major and minor: run, and suggest `upgrade`.
    Compatible,
}

/// The check `run` and `sign` perform before using a config.
pub fn check_version(binary: &str, config: &str) -> Result<VersionCheck, UpgradeError> {
    if binary == config {
        return Ok(VersionCheck::Equal);
    }
    let incompatible = || UpgradeError::Incompatible {
        binary: binary.to_owned(),
        config: config.to_owned(),
    };
    let (Ok(b), Ok(c)) = (Version::parse(binary), Version::parse(config)) else {
        return Err(incompatible());
    };
    if b.major == c.major && b.minor == c.minor {
        Ok(VersionCheck::Compatible)
    } else {
        Err(incompatible())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_check_follows_semver_minor_compatibility() {
        assert_eq!(
            check_version("1.0.2", "1.0.2").unwrap(),
            VersionCheck::Equal
        );
        assert_eq!(
            check_version("1.0.2", "1.0.1").unwrap(),
            VersionCheck::Compatible
        );
        assert!(check_version("1.0.2", "0.12.1").is_err());
        assert!(check_version("1.0.2", "1.1.0").is_err());
        assert!(check_version("1.0.2", "garbage").is_err());
    }
}
