//! The load generator's smoke run against a freshly built gateway: every figure of the JSON
//! report is present and sane. No figure is compared with a target here (benchmarks, not
//! timing assertions).

mod common;

use std::process::Command;

use common::gateway_binary;

use serde_json::Value;

/// Runs the load generator with `args` against the gateway of this build; its JSON report.
fn run_loadgen(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_nym-gateway-loadgen"))
        .args(args)
        .arg("--gateway-bin")
        .arg(gateway_binary())
        .output()
        .expect("the load generator runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "loadgen failed:\n{stderr}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{stderr}"))
}

#[test]
fn smoke_run_reports_every_figure() {
    let report = run_loadgen(&["--smoke", "--json", "--max-seconds", "240"]);

    let number = |key: &str| -> f64 {
        report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing or not a number in {report:#}"))
    };
    for key in [
        "final_hop_us_reference",
        "final_hop_us_ours",
        "ingest_packets_per_s",
        "ingest_offline_packets_per_s",
        "gateway_cpu_us_per_packet",
        "ingest_two_cores_packets_per_s",
        "p50_ms",
        "p99_ms",
        "store_inserts_per_s",
        "store_deliveries_per_s",
        "store_inprocess_inserts_per_s",
        "store_inprocess_deliveries_per_s",
        "handshakes_per_s",
        "authentications_per_s",
        "forward_requests_per_s",
        "rss_bytes_per_idle_client",
    ] {
        let value = number(key);
        assert!(value.is_finite() && value > 0.0, "{key} = {value}");
    }
    assert!(number("p99_ms") >= number("p50_ms"));
    assert!(number("max_ms") >= number("p99_ms"));
    assert!(
        report["clients"].as_u64().unwrap_or(0) > 0,
        "clients: {}",
        report["clients"]
    );

    // Every packet arrived, every ack came back, every stored message was delivered.
    let online = &report["ingest_online"];
    assert_eq!(online["completed"], online["packets"], "{online:#}");
    assert_eq!(online["acks"], online["packets"], "{online:#}");
    let offline = &report["ingest_offline"];
    assert_eq!(offline["acks"], offline["packets"], "{offline:#}");
    let drain = &report["drain"];
    assert_eq!(drain["delivered"], offline["packets"], "{drain:#}");
    assert_eq!(drain["left_in_store"], 0, "{drain:#}");
    // The steady peer's packets all arrived, with the flood and without.
    let fairness = &report["fairness"];
    for run in ["quiet", "flooded"] {
        assert_eq!(
            fairness[run]["samples"], fairness["steady_packets"],
            "{fairness:#}"
        );
    }
    assert!(
        fairness["flood_packets"].as_u64().unwrap_or(0) > 0,
        "{fairness:#}"
    );
    let client = &report["client"];
    assert_eq!(client["handshake_failures"], 0, "{client:#}");
    assert_eq!(client["forwards_refused"], 0, "{client:#}");
    assert_eq!(
        client["forwarded_at_sink"], client["forwards"],
        "{client:#}"
    );
    assert!(
        report["targets"].as_array().is_some_and(|t| t.len() >= 6),
        "targets: {}",
        report["targets"]
    );
}

/// `--mix-noise`: the mix connections complete Noise handshakes with the gateway (a failed
/// handshake fails the run) and every packet sent inside Noise arrives and is acked.
#[test]
fn mix_noise_smoke_delivers_every_packet() {
    let report = run_loadgen(&[
        "--smoke",
        "--json",
        "--max-seconds",
        "120",
        "--mix-noise",
        "--skip",
        "unwrap,store,clients,memory",
    ]);
    assert!(
        report["gateway"]
            .as_str()
            .is_some_and(|g| g.contains("over Noise")),
        "{}",
        report["gateway"]
    );
    let online = &report["ingest_online"];
    assert!(online["packets"].as_u64().unwrap_or(0) > 0, "{online:#}");
    assert_eq!(online["completed"], online["packets"], "{online:#}");
    assert_eq!(online["acks"], online["packets"], "{online:#}");
    let offline = &report["ingest_offline"];
    assert_eq!(offline["acks"], offline["packets"], "{offline:#}");
}

#[test]
fn soak_smoke_reports_rows_and_delivers_every_acked_message() {
    let gateway = gateway_binary();
    let output = Command::new(env!("CARGO_BIN_EXE_nym-gateway-loadgen"))
        .arg("--gateway-bin")
        .arg(&gateway)
        .args(["soak", "--json", "--duration", "4s", "--interval", "1s"])
        .args(["--rate", "100", "--clients", "4", "--online", "1s"])
        .args(["--offline", "0.5s", "--settle", "30s"])
        .output()
        .expect("the load generator runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "soak failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{stderr}"));

    let rows = report["rows"].as_array().expect("rows");
    assert!(rows.len() >= 3, "{report:#}");
    for row in rows {
        for key in ["rss_bytes", "open_files", "store_bytes"] {
            assert!(row[key].as_u64().unwrap_or(0) > 0, "{key} in {row:#}");
        }
    }
    let summary = &report["summary"];
    let sent = summary["sent"].as_u64().unwrap_or(0);
    assert!(sent > 0, "{summary:#}");
    // Every packet was acked and received, and the books say so.
    assert_eq!(summary["acked"], sent, "{summary:#}");
    assert_eq!(summary["delivered"], sent, "{summary:#}");
    assert_eq!(summary["all_acked_delivered"], true, "{summary:#}");
    assert_eq!(summary["leftovers"]["missing"], 0, "{summary:#}");
    let drained: u64 = rows.iter().filter_map(|r| r["drained"].as_u64()).sum();
    assert!(
        drained > 0,
        "no client came back to stored messages: {report:#}"
    );
}
