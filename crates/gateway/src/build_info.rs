//! Build facts recorded by `build.rs`, printed by `nym-gateway --version`.

/// This software's name, which it gives wherever it describes itself (never `nym-node`).
pub const BINARY_NAME: &str = env!("CARGO_PKG_NAME");

/// The package version, which is also the version written into `config.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// When the binary was built.
pub const BUILD_TIMESTAMP: &str = env!("GATEWAY_BUILD_TIMESTAMP");
/// The git commit built.
pub const COMMIT_SHA: &str = env!("GATEWAY_GIT_SHA");
/// That commit's date.
pub const COMMIT_DATE: &str = env!("GATEWAY_GIT_COMMIT_DATE");
/// That commit's branch.
pub const COMMIT_BRANCH: &str = env!("GATEWAY_GIT_BRANCH");
/// rustc's version.
pub const RUSTC_VERSION: &str = env!("GATEWAY_RUSTC_SEMVER");
/// stable, beta or nightly.
pub const RUSTC_CHANNEL: &str = env!("GATEWAY_RUSTC_CHANNEL");
/// debug or release.
pub const CARGO_PROFILE: &str = env!("GATEWAY_CARGO_PROFILE");
/// The target triple.
pub const CARGO_TRIPLE: &str = env!("GATEWAY_CARGO_TRIPLE");

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
