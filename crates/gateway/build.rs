//! Records the build facts that `nym-gateway --version` prints (timestamp, commit, rustc, profile).
//! Every value degrades to "unknown" instead of failing the build (e.g. building from a tarball).

use std::process::Command;

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn emit(key: &str, value: Option<String>) {
    println!(
        "cargo:rustc-env={key}={}",
        value.unwrap_or_else(|| "unknown".to_owned())
    );
}

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = command_output(&rustc, &["--version"]);
    // "rustc 1.95.0 (59807616e 2026-04-14)" -> "1.95.0"; a "-nightly"/"-beta" suffix gives the channel.
    let semver = rustc_version
        .as_deref()
        .and_then(|v| v.split_whitespace().nth(1))
        .map(str::to_owned);
    let channel = semver.as_deref().map(|v| {
        if v.contains("nightly") {
            "nightly"
        } else if v.contains("beta") {
            "beta"
        } else {
            "stable"
        }
        .to_owned()
    });
    emit("GATEWAY_RUSTC_SEMVER", semver);
    emit("GATEWAY_RUSTC_CHANNEL", channel);
    emit("GATEWAY_CARGO_PROFILE", std::env::var("PROFILE").ok());
    emit("GATEWAY_CARGO_TRIPLE", std::env::var("TARGET").ok());
    emit(
        "GATEWAY_BUILD_TIMESTAMP",
        command_output("date", &["-u", "+%Y-%m-%dT%H:%M:%S.%N+00:00"]),
    );
    emit(
        "GATEWAY_GIT_SHA",
        command_output("git", &["rev-parse", "HEAD"]),
    );
    emit(
        "GATEWAY_GIT_COMMIT_DATE",
        command_output("git", &["log", "-1", "--format=%cI"]),
    );
    let branch = command_output("git", &["rev-parse", "--abbrev-ref", "HEAD"]).map(|b| {
        if b == "HEAD" {
            "detached HEAD".to_owned()
        } else {
            b
        }
    });
    emit("GATEWAY_GIT_BRANCH", branch);
    // Rebuild the facts when the checked-out commit moves or the code compiled into the binary
    // changes (this crate's and its two path dependencies' sources), so the build timestamp
    // tells two builds apart: the load generator's smoke test uses it to know that the
    // binary next to it is the build of this very tree.
    println!("cargo:rerun-if-changed=build.rs");
    for dir in ["src", "../protocol/src", "../store/src"] {
        println!("cargo:rerun-if-changed={dir}");
    }
    if let Some(git_dir) = command_output("git", &["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        println!("cargo:rerun-if-changed={git_dir}/refs");
    }
}
