//! Faults on the link between a real nym-node 1.31.0 and our gateway: two nym-sdk 1.21.6
//! clients talk through three nym-node mix nodes (`nym-localnet --nym-node-bin`) while the
//! packets between the layer-3 nym-node and our gateway's mix port are
//!
//! 1. dropped at random (10 % of them, both directions): every message still arrives, once;
//! 2. all dropped for 4 s (a stalled link): nothing arrives meanwhile, then everything does;
//!
//! and at the end every real packet the clients sent got its SURB-ack back, none was
//! retransmitted, and the loss rule did drop packets (so the faults were real).
//!
//! # Running it
//! The whole local network runs in a network namespace of its own, so the faults (nftables
//! rules on its loopback) touch nothing else on the machine: the test creates the namespace,
//! then runs itself inside it (`ip netns exec`). That needs root, iproute2 and nftables, and
//! nym-node (`NYM_NODE_BIN`, as for `localnet_nym_node.rs`), so it is `#[ignore]`d: a plain
//! `cargo nextest run` reports it as skipped. CI runs it as root with `--run-ignored only`;
//! run that way without root or `NYM_NODE_BIN`, it fails saying which is missing.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context as _};
use gateway_interop_sdk::clients::{
    self, exchange, messages, receive_exactly, send_all, wait_for_every_ack,
};
use gateway_interop_sdk::{client_statistic, nym_node_bin, Localnet};
use nym_sdk::mixnet::MixnetClient;
use nym_sdk::DebugConfig;

/// This test's name, to run it again inside the namespace.
const TEST_NAME: &str = "sdk_clients_through_nym_node_over_a_lossy_then_stalled_link";
/// Set (to the namespace's name) in the run inside the namespace.
const INSIDE: &str = "GATEWAY_INTEROP_FAULT_NETNS";
/// The whole scenario, inside the namespace.
const TEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Packets dropped on the nym-node → gateway link in the lossy phase, in percent: enough that
/// among the hundred-odd packets of that phase some are always dropped (checked).
const LOSS_PERCENT: u32 = 10;
/// How long the link stalls.
const STALL: Duration = Duration::from_secs(4);
/// As in the other localnet tests: a late ack on a busy machine must not read as a lost one.
const ACK_WAIT_ADDITION: Duration = Duration::from_secs(30);
/// Message sizes: one packet, a few, many.
const SIZES: [usize; 3] = [1, 1_500, 30_000];
/// The nftables table holding the fault.
const TABLE: &str = "gateway_link_fault";

#[ignore = "needs root and nym-node: set NYM_NODE_BIN and run as root with --run-ignored (see the module docs)"]
#[test]
fn sdk_clients_through_nym_node_over_a_lossy_then_stalled_link() -> anyhow::Result<()> {
    match std::env::var(INSIDE) {
        Ok(netns) => inside(&netns),
        Err(_) => run_in_a_namespace(),
    }
}

/// Creates a namespace with loopback up, runs this test again inside it, and deletes it.
fn run_in_a_namespace() -> anyhow::Result<()> {
    nym_node_bin()?;
    let netns = format!("nym-interop-{}", std::process::id());
    let namespace = Namespace::create(&netns)?;
    let status = Command::new("ip")
        .args(["netns", "exec", &namespace.0])
        .arg(std::env::current_exe()?)
        .args([TEST_NAME, "--exact", "--ignored", "--nocapture"])
        .env(INSIDE, &namespace.0)
        .stdin(Stdio::null())
        .status()
        .context("running the test inside the namespace")?;
    ensure!(
        status.success(),
        "the scenario failed inside the namespace ({status}); its output is above"
    );
    Ok(())
}

/// A network namespace, deleted on drop (also when the test fails).
struct Namespace(String);

impl Namespace {
    fn create(name: &str) -> anyhow::Result<Self> {
        run("ip", &["netns", "add", name])
            .context("creating a network namespace (this test needs root and iproute2)")?;
        let namespace = Self(name.to_owned());
        run("ip", &["-n", name, "link", "set", "lo", "up"])?;
        Ok(namespace)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.0]);
    }
}

/// Runs `program` with `args`; its stderr is the error if it fails.
fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The scenario, in the namespace `netns` (which the rules below stay in).
fn inside(netns: &str) -> anyhow::Result<()> {
    // The rules are added without `ip netns exec`: make sure this process really is in a
    // namespace of its own, not the machine's.
    let own = run("ip", &["netns", "identify"])?;
    ensure!(
        own.trim() == netns,
        "{INSIDE}={netns} is set, but this process is in the network namespace {:?}",
        own.trim()
    );
    let nym_node = nym_node_bin()?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?
        .block_on(async {
            let localnet =
                Localnet::start_with(&["--nym-node-bin".into(), nym_node.into_os_string()]).await?;
            let result = gateway_interop_sdk::within(TEST_TIMEOUT, scenario(&localnet)).await;
            let _ = fault(localnet.gateway().mix_address.port(), 0);
            localnet.finish(result).await
        })
}

async fn scenario(localnet: &Localnet) -> anyhow::Result<()> {
    for layer in 1..=3 {
        ensure!(
            localnet.mix(layer).implementation == "nym-node",
            "mix layer {layer} is not a nym-node"
        );
    }
    let port = localnet.gateway().mix_address.port();
    let storage = tempfile::Builder::new().prefix("sdk-clients-").tempdir()?;
    let mut alice = connect(localnet, &storage.path().join("alice")).await?;
    let mut bob = connect(localnet, &storage.path().join("bob")).await?;

    fault(port, LOSS_PERCENT)?;
    exchange(&mut alice, &mut bob, "over the lossy link", &SIZES).await?;
    let lossy_drops = dropped()?;
    eprintln!("the lossy link dropped {lossy_drops} packets");

    // Stalled: what alice sends waits, and bob gets nothing until the link is back.
    fault(port, 100)?;
    let to_bob = messages("alice->bob across the stall", &SIZES);
    send_all(&alice, *bob.nym_address(), &to_bob).await?;
    let early = tokio::time::timeout(STALL, bob.wait_for_messages()).await;
    ensure!(
        early.is_err(),
        "bob received messages although the link to his gateway was stalled"
    );
    ensure!(dropped()? > 0, "the stalled link dropped nothing");
    fault(port, 0)?;
    receive_exactly(&mut bob, &to_bob)
        .await
        .context("bob receives after the stall")?;
    eprintln!("every message sent across the stall arrived");

    let (real_sent, real_acks) = wait_for_every_ack().await;
    let retransmissions = client_statistic("retransmissions_queued");
    eprintln!(
        "clients: {real_sent} real packets sent, {real_acks} acks for them, \
         {retransmissions} retransmissions"
    );
    alice.disconnect().await;
    bob.disconnect().await;
    ensure!(
        lossy_drops > 0,
        "the lossy link dropped nothing: no fault was applied"
    );
    ensure!(
        real_sent > 0.0,
        "the clients' packet statistics are not recorded"
    );
    ensure!(
        real_acks >= real_sent,
        "{real_sent} real packets sent, only {real_acks} acknowledged"
    );
    ensure!(
        retransmissions == 0.0,
        "{retransmissions} packets were retransmitted: SURB-acks were lost or late"
    );
    Ok(())
}

/// Drops `percent` of the TCP packets to and from the gateway's mix port `port` (the link from
/// the layer-3 nym-node), counted; 0 removes the rule. Every loopback packet passes the input
/// hook once, so one rule covers both directions.
fn fault(port: u16, percent: u32) -> anyhow::Result<()> {
    let _ = run("nft", &["delete", "table", "inet", TABLE]);
    if percent == 0 {
        return Ok(());
    }
    // `numgen random mod 100` is 0..=99: every packet is dropped without it.
    let chance = if percent >= 100 {
        String::new()
    } else {
        format!("numgen random mod 100 < {percent} ")
    };
    let rules = format!(
        "table inet {TABLE} {{\n chain input {{\n  type filter hook input priority 0;\n  \
         iifname \"lo\" tcp dport {port} {chance}counter drop\n  \
         iifname \"lo\" tcp sport {port} {chance}counter drop\n }}\n}}\n"
    );
    let mut nft = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft (this test needs nftables)")?;
    nft.stdin
        .take()
        .context("nft's stdin")?
        .write_all(rules.as_bytes())?;
    let out = nft.wait_with_output()?;
    ensure!(
        out.status.success(),
        "nft could not add the fault: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Packets the current fault dropped so far.
fn dropped() -> anyhow::Result<u64> {
    let listing = run("nft", &["list", "table", "inet", TABLE])?;
    let words: Vec<&str> = listing.split_whitespace().collect();
    Ok(words
        .windows(2)
        .filter(|pair| pair[0] == "packets")
        .filter_map(|pair| pair[1].parse::<u64>().ok())
        .sum())
}

async fn connect(localnet: &Localnet, dir: &std::path::Path) -> anyhow::Result<MixnetClient> {
    let mut debug = DebugConfig::default();
    debug.acknowledgements.ack_wait_addition = ACK_WAIT_ADDITION;
    clients::connect(localnet, dir, debug)
        .await
        .with_context(|| format!("connecting the client in {dir:?}"))
}
