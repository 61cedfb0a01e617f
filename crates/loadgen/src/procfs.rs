//! What `/proc` tells about a process: resident memory, CPU time per thread, open files and
//! the file limit; and raising our own file limit.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Resident memory (`VmRSS`) of process `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status_kib(&status, "VmRSS:")
        .map(|kib| kib * 1024)
        .context("no VmRSS line in /proc/<pid>/status")
}

/// Anonymous resident memory (`RssAnon`: heap, stacks) of process `pid`, in bytes.
pub fn rss_anon_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status_kib(&status, "RssAnon:")
        .map(|kib| kib * 1024)
        .context("no RssAnon line in /proc/<pid>/status")
}

/// The value in KiB of a `/proc/<pid>/status` line such as `VmRSS:   1234 kB`.
pub fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Files process `pid` has open.
pub fn open_files(pid: u32) -> anyhow::Result<u64> {
    let dir = PathBuf::from(format!("/proc/{pid}/fd"));
    Ok(std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .count() as u64)
}

/// The soft limit on open files of process `pid` (`None` = unlimited).
pub fn file_limit(pid: u32) -> anyhow::Result<Option<u64>> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .with_context(|| format!("reading /proc/{pid}/limits"))?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .context("no open-files line in /proc/<pid>/limits")?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()
        .context("malformed open-files line")?;
    Ok(soft.parse().ok())
}

/// Raises our soft limit on open files to the hard limit (children inherit it); returns the
/// new soft limit.
pub fn raise_file_limit() -> anyhow::Result<u64> {
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: hard,
            maximum: hard,
        },
    )
    .context("raising the open-files limit")?;
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}

/// CPU seconds (user + system) of each thread of `pid`, summed by thread name with digits
/// removed (`unwrap-0` and `unwrap-1` count as `unwrap-`).
pub fn thread_cpu_seconds(pid: u32) -> anyhow::Result<BTreeMap<String, f64>> {
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let mut by_name = BTreeMap::new();
    let dir = format!("/proc/{pid}/task");
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let Ok(entry) = entry else { continue };
        // A thread may end between listing and reading.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((name, cpu_ticks)) = parse_stat(&stat) {
            let name: String = name.chars().filter(|c| !c.is_ascii_digit()).collect();
            *by_name.entry(name).or_insert(0.0) += cpu_ticks as f64 / ticks;
        }
    }
    Ok(by_name)
}

/// CPU seconds (user + system) of the whole process `pid`.
pub fn process_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let (_, ticks) = parse_stat(&stat).context("malformed /proc/<pid>/stat")?;
    Ok(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// The command name and utime + stime (in clock ticks) of a `/proc/.../stat` line. The name
/// is in parentheses and may itself contain spaces or parentheses.
pub fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    // After the name: state is field 3, utime field 14, stime field 15 (1-based).
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// Per-name CPU seconds spent between two snapshots, largest first.
pub fn cpu_delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> Vec<(String, f64)> {
    let mut delta: Vec<(String, f64)> = after
        .iter()
        .map(|(name, &secs)| {
            (
                name.clone(),
                secs - before.get(name).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, secs)| *secs > 0.0)
        .collect();
    delta.sort_by(|a, b| b.1.total_cmp(&a.1));
    delta
}

/// The pid of a running `nym-gateway run --id <id>`, found by its command line.
pub fn find_gateway_pid(id: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let is_gateway = args
            .first()
            .is_some_and(|exe| exe.ends_with(b"nym-gateway"));
        let runs_id = args
            .windows(2)
            .any(|w| w[0] == b"--id" && w[1] == id.as_bytes())
            && args.contains(&b"run".as_slice());
        if is_gateway && runs_id {
            return Some(pid);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names() {
        let stat = "1234 (unwrap-0) S 1 2 3 4 5 6 7 8 9 10 250 40 0 0 20 0 1 0 100 200 300";
        assert_eq!(parse_stat(stat), Some(("unwrap-0".into(), 290)));
        let odd = "9 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 1 2 0 0";
        assert_eq!(parse_stat(odd), Some(("a (b) c".into(), 3)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn status_values() {
        let status = "Name:\tnym-gateway\nVmRSS:\t   51234 kB\nThreads:\t7\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(51234));
        assert_eq!(status_kib(status, "VmHWM:"), None);
    }

    #[test]
    fn cpu_deltas_are_sorted() {
        let before = BTreeMap::from([("a".to_owned(), 1.0), ("b".to_owned(), 2.0)]);
        let after = BTreeMap::from([
            ("a".to_owned(), 1.5),
            ("b".to_owned(), 4.0),
            ("c".to_owned(), 0.25),
        ]);
        assert_eq!(
            cpu_delta(&before, &after),
            vec![("b".into(), 2.0), ("a".into(), 0.5), ("c".into(), 0.25)]
        );
    }

    #[test]
    fn our_own_process_is_readable() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 0);
        assert!(rss_anon_bytes(pid).unwrap() > 0);
        assert!(open_files(pid).unwrap() > 0);
        assert!(process_cpu_seconds(pid).unwrap() >= 0.0);
        assert!(!thread_cpu_seconds(pid).unwrap().is_empty());
    }
}
