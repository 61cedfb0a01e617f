//! The rotation task: asks nym-api, plans the next step ([`super::schedule::plan`]), sleeps
//! until its time (or the next poll, whichever comes first) and takes it. Every failure is a
//! warning and a later retry: an unreachable or confused nym-api, a full disk, a key that
//! cannot be written. The keys in use only change once the new key's file is written, so a
//! restart at any moment finds what was in use.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ed25519_dalek::SigningKey;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use x25519_dalek::StaticSecret;

use super::key_files::{self, KeyFiles};
use super::key_ring::{KeyRing, KeySet, RotationKey};
use super::nym_api::NymApi;
use super::schedule::{self, Plan, Step};
use super::KeyMaker;

/// What the task needs.
pub struct Controller {
    /// The keys in use, changed by the steps.
    pub ring: KeyRing,
    /// Where rotation keys are kept.
    pub files: KeyFiles,
    /// Builds a key with its replay filter.
    pub maker: KeyMaker,
    /// The static key, adopted as the first rotation's key.
    pub static_secret: StaticSecret,
    /// Signs the refresh request.
    pub identity: SigningKey,
    /// The nym-apis.
    pub api: NymApi,
    /// Ask nym-api at least this often (rotation settings can change).
    pub poll_interval: Duration,
    /// After a failed request or a stuck epoch, ask again after this.
    pub retry_interval: Duration,
}

impl Controller {
    /// Runs until `shutdown`. Every step is planned from an answer nym-api gave just
    /// before it is taken: a plan made earlier only says when to ask again, so a jump in
    /// nym-api's epochs is never met with a step planned for the old ones.
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        info!("sphinx key rotation follows nym-api");
        // Asked at start so nym-api describes us with the keys we hold now.
        this.refresh_described().await;
        loop {
            let plan = this.next_plan().await;
            let until = plan
                .at
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            if until.is_zero() && plan.step != Step::Wait {
                let step = plan.step;
                let task = this.clone();
                let failure = match tokio::task::spawn_blocking(move || task.take(step)).await {
                    Ok(Ok(true)) => {
                        this.refresh_described().await;
                        None
                    }
                    Ok(Ok(false)) => None,
                    Ok(Err(e)) => Some(format!("{e:#}")),
                    Err(e) => Some(e.to_string()),
                };
                if let Some(reason) = failure {
                    warn!(
                        "key rotation step {step:?} failed: {reason}; retrying in {:?}",
                        this.retry_interval
                    );
                    if this.pause(this.retry_interval, &shutdown).await {
                        break;
                    }
                }
                continue;
            }
            debug!(?plan.step, at = %humantime::format_rfc3339_seconds(plan.at), "next key rotation step");
            if this.pause(until.min(this.poll_interval), &shutdown).await {
                break;
            }
        }
    }

    /// Sleeps `wait`; true if `shutdown` came first.
    async fn pause(&self, wait: Duration, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            () = shutdown.cancelled() => true,
            () = tokio::time::sleep(wait) => false,
        }
    }

    /// The plan from nym-api's answer now, or a wait of `retry_interval` without one.
    async fn next_plan(self: &Arc<Self>) -> Plan {
        let task = self.clone();
        let answer = tokio::task::spawn_blocking(move || task.api.key_rotation_info()).await;
        let now = SystemTime::now();
        let info = match answer {
            Ok(Ok((info, body))) => {
                self.save_info(&body);
                info
            }
            Ok(Err(e)) => {
                warn!("no key-rotation information from nym-api ({e}); keeping the current sphinx keys");
                return self.wait(now);
            }
            Err(e) => {
                warn!("asking nym-api failed: {e}");
                return self.wait(now);
            }
        };
        if info.is_stuck(now) {
            warn!(
                epoch = info.current_epoch,
                "nym-api's epoch is overdue; key rotation waits for it to advance"
            );
        }
        let keys = self.ring.current();
        schedule::plan(
            &info,
            keys.primary.rotation_id,
            keys.secondary.as_ref().map(|k| k.rotation_id),
            now,
            self.retry_interval,
        )
    }

    fn wait(&self, now: SystemTime) -> Plan {
        Plan {
            step: Step::Wait,
            at: now + self.retry_interval,
        }
    }

    /// Keeps nym-api's answer for the next start (best effort: without it a restart picks
    /// the newest key until nym-api answers).
    fn save_info(&self, body: &[u8]) {
        let path = key_files::info_path(&self.maker.store);
        if std::fs::read(&path).is_ok_and(|saved| saved == body) {
            return;
        }
        if let Err(e) = crate::keys::write_private_file(&path, body) {
            warn!(path = %path.display(), "could not save nym-api's key-rotation answer: {e}");
        }
    }

    /// Takes `step` (blocking); true if the announced keys changed.
    fn take(&self, step: Step) -> anyhow::Result<bool> {
        let keys = self.ring.current();
        match step {
            Step::Wait => Ok(false),
            Step::Adopt { rotation } => self.adopt(&keys, rotation).map(|()| true),
            Step::PreAnnounce { rotation } => self.pre_announce(&keys, rotation).map(|()| true),
            Step::Swap { rotation } => self.swap(&keys, rotation).map(|()| true),
            Step::Purge => self.purge(&keys).map(|()| false),
        }
    }

    /// The static key becomes `rotation`'s key, with its replay filter (same key, same tags).
    fn adopt(&self, keys: &KeySet, rotation: u32) -> anyhow::Result<()> {
        self.files.save(rotation, &self.static_secret)?;
        let old = &keys.primary;
        let adopted = RotationKey {
            rotation_id: rotation,
            public: old.public,
            unwrapper: old.unwrapper.clone(),
            replay: old.replay.clone(),
            replay_file: super::super::replay::ReplayFile::for_rotation(
                &self.maker.store,
                rotation,
                old.public,
            ),
        };
        old.replay_file.move_to(&adopted.replay_file)?;
        self.ring.replace(KeySet::single(Arc::new(adopted)));
        info!(
            rotation,
            "the static sphinx key is now the key of rotation {rotation}"
        );
        Ok(())
    }

    /// A fresh key for `rotation`, written, then held as the secondary.
    fn pre_announce(&self, keys: &KeySet, rotation: u32) -> anyhow::Result<()> {
        let key = self.fresh_key(rotation)?;
        if let Some(replaced) = &keys.secondary {
            self.forget(replaced)?;
        }
        self.ring.replace(KeySet {
            primary: keys.primary.clone(),
            secondary: Some(key),
        });
        info!(
            rotation,
            "pre-announcing the sphinx key of rotation {rotation}"
        );
        Ok(())
    }

    /// The secondary (made now if it is not `rotation`'s) becomes the primary.
    fn swap(&self, keys: &KeySet, rotation: u32) -> anyhow::Result<()> {
        let incoming = match &keys.secondary {
            Some(s) if s.rotation_id == rotation => s.clone(),
            other => {
                warn!(rotation, held = ?other.as_ref().map(|k| k.rotation_id), "no pre-announced key for the rotation that begins; making one now");
                if let Some(other) = other {
                    self.forget(other)?;
                }
                self.fresh_key(rotation)?
            }
        };
        self.ring.replace(KeySet {
            primary: incoming,
            secondary: Some(keys.primary.clone()),
        });
        info!(
            rotation,
            previous = keys.primary.rotation_id,
            "sphinx key rotated; the previous key is kept for one epoch"
        );
        Ok(())
    }

    /// Drops the secondary key: out of use first, then its files.
    fn purge(&self, keys: &KeySet) -> anyhow::Result<()> {
        let Some(old) = &keys.secondary else {
            return Ok(());
        };
        self.ring.replace(KeySet::single(keys.primary.clone()));
        self.forget(old)?;
        info!(
            rotation = old.rotation_id,
            "the previous sphinx key and its replay filter are deleted"
        );
        Ok(())
    }

    /// Deletes `key`'s file and replay filter (the static key's file stays: it is the
    /// operator's).
    fn forget(&self, key: &RotationKey) -> anyhow::Result<()> {
        if !key.is_static() {
            self.files.remove(key.rotation_id)?;
        }
        key.replay_file.retire()?;
        Ok(())
    }

    fn fresh_key(&self, rotation: u32) -> anyhow::Result<Arc<RotationKey>> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let secret = StaticSecret::from(bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        self.files.save(rotation, &secret)?;
        // A filter left by an earlier key of this rotation id does not match this key and is
        // replaced at the first save.
        Ok(Arc::new(self.maker.make(rotation, &secret)?))
    }

    async fn refresh_described(self: &Arc<Self>) {
        let task = self.clone();
        let asked =
            tokio::task::spawn_blocking(move || task.api.refresh_described(&task.identity)).await;
        match asked {
            Ok(Ok(())) => debug!("asked nym-api to describe this node again"),
            Ok(Err(e)) => warn!("could not ask nym-api to describe this node again: {e}"),
            Err(e) => warn!("asking nym-api to describe this node failed: {e}"),
        }
    }
}
