//! The open-file limit at start: raised up to the hard limit when the connection caps need it,
//! and a warning naming the limit and the caps when even that is short.

mod util;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use util::Gateway;

/// What the default caps need: 4 096 mix + 8 192 client + 1 024 egress connections + 64.
const DEFAULT_NEEDED: u64 = 4_096 + 8_192 + 1_024 + 64;

/// The (soft, hard) open-file limits in a `/proc/<pid>/limits` file.
fn nofile(path: &str) -> (u64, u64) {
    let limits = std::fs::read_to_string(path).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_else(|| panic!("no open-file limit in {limits}"));
    let mut values = line
        .split_whitespace()
        .skip(3)
        .map(|v| v.parse().unwrap_or(u64::MAX)); // "unlimited"
    (values.next().unwrap(), values.next().unwrap())
}

/// Starts `run` under `prlimit --nofile=<soft>:<hard>`, waits until it is ready, reads its
/// soft open-file limit from /proc, stops it; returns (soft limit seen, stderr so far).
fn start_with_nofile(gw: &Gateway, soft: u64, hard: u64) -> (u64, String) {
    let mut child = Command::new("prlimit")
        .arg(format!("--nofile={soft}:{hard}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_nym-gateway"))
        .args(["run", "--id", gw.id()])
        .env("HOME", gw.home())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs");
    // Read stderr to the end on a thread (a closed pipe would fail the gateway's last log
    // lines); the startup-finished line says when to look at its limits.
    let stderr = child.stderr.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("Finished nym gateway startup procedure") {
                let _ = ready_tx.send(());
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let ready = ready_rx.recv_timeout(std::time::Duration::from_secs(30));
    let (soft_now, _) = nofile(&format!("/proc/{}/limits", child.id()));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let log = reader.join().unwrap();
    assert!(ready.is_ok(), "the gateway did not start:\n{log}");
    assert!(status.success(), "{log}");
    (soft_now, log)
}

#[test]
fn a_low_soft_limit_is_raised_to_what_the_caps_need() {
    let gw = Gateway::new("raised");
    assert!(gw.init(&[]).status.success());
    // A process may raise its hard limit only as root; stay within ours.
    let (_, hard) = nofile("/proc/self/limits");
    let (soft, log) = start_with_nofile(&gw, 256, hard);
    assert_eq!(soft, DEFAULT_NEEDED.min(hard), "{log}");
    assert_eq!(
        log.contains("open-file limit"),
        hard < DEFAULT_NEEDED,
        "warned only if even the hard limit is short:\n{log}"
    );
}

#[test]
fn a_hard_limit_below_the_caps_is_warned_about_by_name() {
    let gw = Gateway::new("short");
    assert!(gw.init(&[]).status.success());
    let (soft, log) = start_with_nofile(&gw, 256, 512);
    // Raised as far as allowed, and still short: the warning names the limit and the caps.
    assert_eq!(soft, 512, "{log}");
    assert!(
        log.contains(&format!(
            "the open-file limit (512) is below what the connection caps need ({DEFAULT_NEEDED})"
        )),
        "{log}"
    );
    for cap in [
        "maximum_mix_connections=4096",
        "maximum_client_connections=8192",
        "maximum_egress_connections=1024",
    ] {
        assert!(log.contains(cap), "{cap} missing:\n{log}");
    }
}
