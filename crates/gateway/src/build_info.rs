//! Build facts recorded by `build.rs`, printed by `nym-gateway --version`.

/// The package version, which is also the version written into `config.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The block `--version` prints after the binary name: one `{label:<20}{value}` line per fact.
pub const LONG_VERSION: &str = concat!(
    "\nBuild Timestamp:    ",
    env!("GATEWAY_BUILD_TIMESTAMP"),
    "\nBuild Version:      ",
    env!("CARGO_PKG_VERSION"),
    "\nCommit SHA:         ",
    env!("GATEWAY_GIT_SHA"),
    "\nCommit Date:        ",
    env!("GATEWAY_GIT_COMMIT_DATE"),
    "\nCommit Branch:      ",
    env!("GATEWAY_GIT_BRANCH"),
    "\nrustc Version:      ",
    env!("GATEWAY_RUSTC_SEMVER"),
    "\nrustc Channel:      ",
    env!("GATEWAY_RUSTC_CHANNEL"),
    "\ncargo Profile:      ",
    env!("GATEWAY_CARGO_PROFILE"),
    "\n"
);

/// The banner printed before every command, as operators know it.
pub fn banner() -> String {
    format!(
        r#"

      _ __  _   _ _ __ ___
     | '_ \| | | | '_ \ _ \
     | | | | |_| | | | | | |
     |_| |_|\__, |_| |_| |_|
            |___/

             (gateway - version {VERSION})

    
"#
    )
}
