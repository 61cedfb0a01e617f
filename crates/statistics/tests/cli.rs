//! The command line of the real binary: help, version, defaults, and start-up failures.

mod util;

use std::net::TcpListener;
use std::process::Command;

use util::{run_to_end, temp_database, Service, BIN};

#[test]
fn help_names_every_flag_and_its_default() {
    let (status, stdout, _) = run_to_end(&["--help"], None);
    assert!(status.success());
    assert!(stdout.contains("--listen <ADDR>"), "{stdout}");
    assert!(stdout.contains("0.0.0.0:8090"), "{stdout}");
    assert!(stdout.contains("--database <PATH>"), "{stdout}");
    assert!(
        stdout.contains(".nym/service-providers/network-statistics/db.sqlite"),
        "{stdout}"
    );
    for (flag, default) in [
        ("--max-request-bytes <BYTES>", "[default: 1048576]"),
        ("--max-report-entries <N>", "[default: 4096]"),
        ("--max-query-entries <N>", "[default: 100000]"),
    ] {
        assert!(stdout.contains(flag), "{flag} missing from {stdout}");
        assert!(stdout.contains(default), "{default} missing from {stdout}");
    }
}

#[test]
fn a_zero_limit_exits_1_naming_the_flag() {
    let (status, _, stderr) = run_to_end(&["--max-query-entries", "0"], None);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("invalid value '0' for '--max-query-entries <N>': must be at least 1"),
        "{stderr}"
    );
}

#[test]
fn version_is_the_workspace_version() {
    let (status, stdout, _) = run_to_end(&["--version"], None);
    assert!(status.success());
    assert_eq!(
        stdout.trim(),
        format!("nym-network-statistics {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bad_listen_address_exits_1() {
    let (status, _, stderr) = run_to_end(&["--listen", "localhost:8090"], None);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("invalid value 'localhost:8090'"),
        "{stderr}"
    );
}

#[test]
fn unknown_flag_exits_1() {
    let (status, _, stderr) = run_to_end(&["--port", "8090"], None);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("--port"), "{stderr}");
}

#[test]
fn unusable_databases_exit_1_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().to_str().unwrap();
    let (status, _, stderr) = run_to_end(&["--listen", "127.0.0.1:0", "--database", folder], None);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("the database is not usable"), "{stderr}");
    assert!(stderr.contains(folder), "{stderr}");

    let garbage = dir.path().join("garbage.sqlite");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    let (status, _, stderr) = run_to_end(
        &[
            "--listen",
            "127.0.0.1:0",
            "--database",
            garbage.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("not a database"), "{stderr}");

    // A path below a regular file cannot become a folder.
    let below_file = garbage.join("db.sqlite");
    let (status, _, stderr) = run_to_end(
        &[
            "--listen",
            "127.0.0.1:0",
            "--database",
            below_file.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("cannot create the database folder"),
        "{stderr}"
    );
}

#[test]
fn missing_home_without_database_exits_1() {
    let (status, _, stderr) = run_to_end(&["--listen", "127.0.0.1:0"], None);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("pass --database"), "{stderr}");
}

#[test]
fn busy_port_exits_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (_dir, db) = temp_database();
    let (status, _, stderr) = run_to_end(
        &["--listen", &addr, "--database", db.to_str().unwrap()],
        None,
    );
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[test]
fn default_database_lives_under_home() {
    let home = tempfile::tempdir().unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["--listen", "127.0.0.1:0"])
        .env("HOME", home.path());
    let service = Service::spawn(command);
    let status = service.stop_with("TERM");
    assert_eq!(status.code(), Some(0));
    assert!(home
        .path()
        .join(".nym/service-providers/network-statistics/db.sqlite")
        .is_file());
}
