//! What the load generator's integration tests share: the `nym-gateway` binary of this build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `nym-gateway` binary of this very tree: the one cargo built next to ours when it
/// built the workspace (`cargo nextest run --workspace`, `cargo test --workspace`), which
/// `--version` shows to be the build of the `nym-gateway` library linked into this test.
/// Only when that binary is missing or from another build (this package's tests run alone)
/// is it built here, and the test says so.
pub(crate) fn gateway_binary() -> PathBuf {
    let loadgen = Path::new(env!("CARGO_BIN_EXE_nym-gateway-loadgen"));
    let profile_dir = loadgen.parent().expect("binary directory");
    let gateway = profile_dir.join("nym-gateway");
    if is_this_build(&gateway) {
        return gateway;
    }
    eprintln!(
        "note: {} is missing or from another build; building it (cargo build -p nym-gateway)",
        gateway.display()
    );
    let target_dir = profile_dir.parent().expect("target directory");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let mut build = Command::new(env!("CARGO"));
    build
        .args(["build", "-p", "nym-gateway", "--bin", "nym-gateway"])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            build.arg("--release");
        }
        Some(other) => {
            build.args(["--profile", other]);
        }
        None => panic!("unexpected binary path {}", loadgen.display()),
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building nym-gateway failed");
    assert!(gateway.exists(), "{} missing", gateway.display());
    gateway
}

/// Whether `binary --version` prints the build facts (timestamp, commit, profile) of the
/// `nym-gateway` library this test was linked with.
fn is_this_build(binary: &Path) -> bool {
    Command::new(binary)
        .arg("--version")
        .output()
        .is_ok_and(|out| {
            String::from_utf8_lossy(&out.stdout).contains(nym_gateway::build_info::LONG_VERSION)
        })
}
