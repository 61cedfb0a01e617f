//! The open-file limit against the connection caps: every connection is a file descriptor, so
//! a soft limit below the caps (1 024 is a common default for a shell) makes the gateway refuse
//! connections with "too many open files" long before its own limits are reached.
//!
//! At start the gateway raises its soft limit as far as needed, up to the hard limit (what
//! any process may do); if that is still short of what the caps need, it warns, naming both.

use tracing::{debug, warn};

use crate::config::Tuning;

/// Descriptors the gateway holds besides connections: listeners, the store's database, WAL
/// and shared-memory files on two connections, the replay file, log output, the runtime.
const RESERVED: u64 = 64;

/// Descriptors the caps of `limits` may need at once.
pub fn needed(limits: &Tuning) -> u64 {
    [
        limits.maximum_mix_connections,
        limits.maximum_client_connections,
        limits.maximum_egress_connections,
    ]
    .iter()
    .map(|cap| cap.get() as u64)
    .sum::<u64>()
        + RESERVED
}

/// What [`ensure`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The soft limit was already enough (or unlimited).
    Enough,
    /// The soft limit was raised from `from` to `to`.
    Raised {
        /// The soft limit found.
        from: u64,
        /// The soft limit now.
        to: u64,
    },
    /// Even the hard limit (or the raise) falls short: the caps cannot all be reached.
    Short {
        /// The soft limit now.
        limit: u64,
        /// What the caps need.
        needed: u64,
    },
}

/// The soft open-file limit before and after [`raise_soft_limit`], and the hard limit
/// (`u64::MAX` where unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    /// The soft limit found.
    pub before: u64,
    /// The soft limit now.
    pub now: u64,
    /// The hard limit, which the soft one may not pass.
    pub hard: u64,
}

/// Raises this process's soft open-file limit to `needed`, or as far as the hard limit allows;
/// never lowers it. Processes started afterwards inherit it. Shared with the tests that open
/// thousands of sockets.
pub fn raise_soft_limit(needed: u64) -> std::io::Result<Raised> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

    let found = getrlimit(Resource::Nofile);
    let before = found.current.unwrap_or(u64::MAX);
    let hard = found.maximum.unwrap_or(u64::MAX);
    let target = needed.min(hard);
    if target <= before {
        return Ok(Raised {
            before,
            now: before,
            hard,
        });
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: found.maximum,
    };
    setrlimit(Resource::Nofile, raised)?;
    Ok(Raised {
        before,
        now: target,
        hard,
    })
}

/// Raises the soft open-file limit to what `limits` need (up to the hard limit) and logs a
/// warning if it stays short.
pub fn ensure(limits: &Tuning) -> Outcome {
    let needed = needed(limits);
    let (soft, now) = match raise_soft_limit(needed) {
        Ok(Raised { before, now, .. }) => (before, now),
        Err(e) => {
            debug!(error = %e, "could not raise the open-file limit");
            let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .current
                .unwrap_or(u64::MAX);
            (soft, soft)
        }
    };
    if soft >= needed {
        return Outcome::Enough;
    }
    if now >= needed {
        debug!(from = soft, to = now, "raised the open-file limit");
        return Outcome::Raised {
            from: soft,
            to: now,
        };
    }
    warn!(
        limit = now,
        needed,
        maximum_mix_connections = limits.maximum_mix_connections.get(),
        maximum_client_connections = limits.maximum_client_connections.get(),
        maximum_egress_connections = limits.maximum_egress_connections.get(),
        "the open-file limit ({now}) is below what the connection caps need ({needed}): connections beyond it fail with \"too many open files\"; raise it (`ulimit -n {needed}`, or LimitNOFILE= in the systemd unit) or lower the caps in [debug]"
    );
    Outcome::Short { limit: now, needed }
}
