//! A spawned test peer that never outlives its test.

use anyhow::{bail, ensure, Context as _};
use rustix::process::{kill_process, Pid, Signal};
use std::time::Duration;
use tokio::process::Child;

/// A child process that gets SIGTERM if dropped while still running: a failing or panicking
/// test still lets it shut down in order (nym-localnet then stops the nodes it started), which
/// SIGKILL would not. A passing test ends with [`stop`](Self::stop).
pub struct ChildGuard {
    child: Child,
    name: String,
}

impl ChildGuard {
    /// Guards `child`; `name` stands for it in errors.
    pub fn new(child: Child, name: impl Into<String>) -> Self {
        Self {
            child,
            name: name.into(),
        }
    }

    /// SIGTERM, then waits up to `limit` for the exit, which must be a success.
    pub async fn stop(&mut self, limit: Duration) -> anyhow::Result<()> {
        let name = &self.name;
        if !terminate(&self.child) {
            bail!("{name} had already exited");
        }
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .with_context(|| format!("{name} did not exit within {limit:?} of SIGTERM"))?
            .with_context(|| format!("waiting for {name}"))?;
        ensure!(
            status.success(),
            "{name} exited with {status} after SIGTERM"
        );
        Ok(())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            terminate(&self.child);
        }
    }
}

/// SIGTERM to `child`; false if it has no pid any more (already reaped) or the signal failed.
fn terminate(child: &Child) -> bool {
    match child.id().and_then(|id| Pid::from_raw(id as i32)) {
        Some(pid) => kill_process(pid, Signal::TERM).is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::process::test_kill_process;
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    use tokio::process::Command;

    const LIMIT: Duration = Duration::from_secs(10);

    /// A shell that exits with `on_term` when it gets SIGTERM, once its trap is set (a SIGTERM
    /// before that would kill it).
    async fn shell_exiting_on_term(on_term: u8) -> ChildGuard {
        let script =
            format!("trap 'exit {on_term}' TERM; echo trapped; while :; do sleep 0.05; done");
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh runs");
        let stdout = child.stdout.take().expect("piped");
        let line = BufReader::new(stdout).lines().next_line().await;
        assert_eq!(line.expect("read").as_deref(), Some("trapped"));
        ChildGuard::new(child, "the shell")
    }

    #[tokio::test]
    async fn stop_accepts_a_clean_exit() {
        let mut guard = shell_exiting_on_term(0).await;
        guard.stop(LIMIT).await.expect("exit 0 after SIGTERM");
    }

    #[tokio::test]
    async fn stop_refuses_a_failed_exit() {
        let mut guard = shell_exiting_on_term(3).await;
        let err = guard.stop(LIMIT).await.expect_err("exit 3 is a failure");
        assert!(err.to_string().contains("the shell exited with"), "{err:#}");
    }

    #[tokio::test]
    async fn stop_refuses_a_process_that_already_exited() {
        let child = Command::new("true").spawn().expect("true runs");
        let mut guard = ChildGuard::new(child, "true");
        guard.child.wait().await.expect("true exits");
        let err = guard.stop(LIMIT).await.expect_err("nothing left to stop");
        assert!(err.to_string().contains("already exited"), "{err:#}");
    }

    #[tokio::test]
    async fn dropping_a_running_child_terminates_it() {
        let guard = shell_exiting_on_term(0).await;
        let pid = Pid::from_raw(guard.child.id().expect("running") as i32).expect("a pid");
        drop(guard);
        // The shell is not ours to reap any more, so it ends as a zombie until the test process
        // exits; a zombie still answers to signal 0, so look for its state instead.
        let deadline = tokio::time::Instant::now() + LIMIT;
        while test_kill_process(pid).is_ok() && !is_zombie(pid) {
            assert!(tokio::time::Instant::now() < deadline, "still running");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn is_zombie(pid: Pid) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()))
            .unwrap_or_default();
        // The state follows the command name, which is in parentheses.
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
    }
}
