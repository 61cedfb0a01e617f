//! A network namespace for the gateway, joined to the test's own namespace by veth links on
//! which faults are switched on and off: packet loss and a stalled link (nftables rules inside
//! the namespace) and a slow link (a `tbf` rate limit on both ends). Everything is removed on
//! drop, also when a test panics; deleting the namespace takes its veth ends with it.
//!
//! The kernel's `sch_netem` would be the usual tool, but kernels built without it (and
//! without module loading) are common on CI machines, so the faults use what every kernel
//! with network namespaces has: nftables and `tbf`.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::OutputText;

/// How many labs may run at once on one machine: each has its own /24 in `10.213.0.0/16`.
const SLOTS: u32 = 256;
/// Links per lab: each is a /30 of the lab's /24.
const MAX_LINKS: usize = 64;

static LABS: AtomicUsize = AtomicUsize::new(0);

/// A namespace and its links. Needs root (`CAP_NET_ADMIN`).
pub struct Netns {
    name: String,
    slot: u32,
    links: Vec<Link>,
    /// Held for the life of the namespace: no other test process takes the same addresses.
    _slot_lock: File,
}

/// One veth pair: `outside` in the test's namespace, `inside` in the gateway's.
#[derive(Clone, Debug)]
pub struct Link {
    pub outside_dev: String,
    pub inside_dev: String,
    pub outside: Ipv4Addr,
    pub inside: Ipv4Addr,
}

impl Link {
    /// `port` at the namespace's end of this link.
    pub fn inside_at(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.inside), port)
    }

    /// `port` at the test's end of this link.
    pub fn outside_at(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.outside), port)
    }
}

impl Netns {
    /// Creates a namespace with loopback up; fails with a clear message without root.
    pub fn create() -> Self {
        let lab = LABS.fetch_add(1, Ordering::Relaxed);
        let name = format!("nymgw-{}-{lab}", std::process::id());
        // First, so that without root the test fails saying why.
        let out = run("ip", &["netns", "add", &name]);
        assert!(
            out.status.success(),
            "cannot create a network namespace (this test needs root and iproute2): {}",
            out.stderr_text().trim()
        );
        let (slot, slot_lock) = claim_slot();
        let netns = Self {
            name,
            slot,
            links: Vec::new(),
            _slot_lock: slot_lock,
        };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `program` to be run inside the namespace (`ip netns exec <name> <program>`).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// A new veth link between the test's namespace and this one, up and addressed.
    pub fn link(&mut self) -> Link {
        let index = self.links.len();
        assert!(index < MAX_LINKS, "at most {MAX_LINKS} links per namespace");
        let base = 4 * index as u8;
        // Interface names are at most 15 bytes and unique on the machine.
        let outside_dev = format!("ng{}o{index}", self.slot);
        let inside_dev = format!("ng{}i{index}", self.slot);
        let link = Link {
            outside: Ipv4Addr::new(10, 213, self.slot as u8, base + 1),
            inside: Ipv4Addr::new(10, 213, self.slot as u8, base + 2),
            outside_dev,
            inside_dev,
        };
        // A stale pair left by a killed test process that had this slot.
        let _ = run("ip", &["link", "del", &link.outside_dev]);
        must(&[
            "link",
            "add",
            &link.outside_dev,
            "type",
            "veth",
            "peer",
            "name",
            &link.inside_dev,
            "netns",
            &self.name,
        ]);
        self.links.push(link.clone());
        must(&[
            "addr",
            "add",
            &format!("{}/30", link.outside),
            "dev",
            &link.outside_dev,
        ]);
        must(&["link", "set", &link.outside_dev, "up"]);
        self.ip(&[
            "addr",
            "add",
            &format!("{}/30", link.inside),
            "dev",
            &link.inside_dev,
        ]);
        self.ip(&["link", "set", &link.inside_dev, "up"]);
        link
    }

    /// Drops `percent` of the packets crossing `link`, in each direction, chosen at random
    /// (0 removes the rule; 100 is a link that stalls: TCP keeps retrying until it is lifted).
    pub fn set_loss(&self, link: &Link, percent: u32) {
        let table = format!("loss_{}", link.inside_dev);
        // Deleting a table that does not exist fails; that is the state wanted.
        let _ = self
            .command("nft")
            .args(["delete", "table", "inet", &table])
            .output();
        if percent == 0 {
            return;
        }
        let dev = &link.inside_dev;
        // `numgen random mod 100` is 0..=99: every packet is dropped without it.
        let chance = if percent >= 100 {
            String::new()
        } else {
            format!("numgen random mod 100 < {percent} ")
        };
        let rules = format!(
            "table inet {table} {{\n\
             chain input {{ type filter hook input priority 0; iifname \"{dev}\" {chance}counter drop; }}\n\
             chain output {{ type filter hook output priority 0; oifname \"{dev}\" {chance}counter drop; }}\n\
             }}\n"
        );
        let mut child = self
            .command("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run nft (install nftables): {e}"));
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(rules.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "nft could not add the loss rules: {}",
            out.stderr_text().trim()
        );
    }

    /// Packets dropped on `link` since its loss was last set (so a test can show its fault
    /// happened).
    pub fn dropped(&self, link: &Link) -> u64 {
        let table = format!("loss_{}", link.inside_dev);
        let out = self
            .command("nft")
            .args(["list", "table", "inet", &table])
            .output()
            .unwrap();
        assert!(out.status.success(), "nft: {}", out.stderr_text().trim());
        counter_sum(&out.stdout_text(), "packets")
    }

    /// Packets that waited for the rate limit on `link`, both ends together (so a test can
    /// show the limit bit).
    pub fn rate_limited(&self, link: &Link) -> u64 {
        let outside = run("tc", &["-s", "qdisc", "show", "dev", &link.outside_dev]);
        let inside = run(
            "tc",
            &[
                "-n",
                &self.name,
                "-s",
                "qdisc",
                "show",
                "dev",
                &link.inside_dev,
            ],
        );
        counter_sum(&outside.stdout_text(), "overlimits")
            + counter_sum(&inside.stdout_text(), "overlimits")
    }

    /// Limits `link` to `rate` (tc syntax, e.g. `1mbit`) in each direction; what does not fit
    /// in the short queue is dropped and resent by TCP, as on a slow access link.
    pub fn set_rate(&self, link: &Link, rate: &str) {
        let tbf = [
            "root", "tbf", "rate", rate, "burst", "16kb", "latency", "200ms",
        ];
        let mut outside = vec!["qdisc", "replace", "dev", &link.outside_dev];
        outside.extend(tbf);
        let out = run("tc", &outside);
        assert!(out.status.success(), "tc: {}", out.stderr_text().trim());
        let mut inside = vec![
            "-n",
            &self.name,
            "qdisc",
            "replace",
            "dev",
            &link.inside_dev,
        ];
        inside.extend(tbf);
        let out = run("tc", &inside);
        assert!(out.status.success(), "tc: {}", out.stderr_text().trim());
    }

    fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        must(&all);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // The namespace goes once its last process exits; its veth ends (and so the pairs)
        // with it. Deleting the outside ends first frees the names at once.
        for link in &self.links {
            let _ = run("ip", &["link", "del", &link.outside_dev]);
        }
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// The sum of every number that follows the word `name` in `text`.
fn counter_sum(text: &str, name: &str) -> u64 {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter(|pair| pair[0] == name)
        .filter_map(|pair| pair[1].parse::<u64>().ok())
        .sum()
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (install iproute2): {e}"))
}

/// `ip <args>`, which must succeed.
fn must(args: &[&str]) {
    let out = run("ip", args);
    assert!(
        out.status.success(),
        "ip {}: {} (these tests need root)",
        args.join(" "),
        out.stderr_text().trim()
    );
}

/// A /24 no other test process holds, claimed with an exclusive lock on a file named after it
/// (released when the process exits, so a crashed test leaks no slot).
fn claim_slot() -> (u32, File) {
    let dir = std::env::temp_dir().join("nym-gateway-test-netns");
    std::fs::create_dir_all(&dir).expect("creating the namespace lock directory");
    let start = std::process::id() % SLOTS;
    for step in 0..SLOTS {
        let slot = (start + step) % SLOTS;
        let path = dir.join(slot.to_string());
        let file =
            File::create(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        if file.try_lock().is_ok() {
            return (slot, file);
        }
    }
    panic!("all {SLOTS} namespace slots are taken");
}
