//! Sphinx key rotation, as today's Nym network runs it: nym-api says how long a rotation
//! lasts (`validity_epochs`) and which epoch it is; the gateway holds the current rotation's
//! key, pre-announces the next one an epoch ahead, swaps at the boundary, keeps the old key
//! one more epoch for packets still on their way, then deletes it (forward secrecy: a key
//! taken later cannot open traffic recorded before its deletion).
//!
//! - [`schedule`]: nym-api's answer and the next step, pure.
//! - [`key_ring`]: the keys in use, each with its own replay filter; what unwrapping reads.
//! - [`key_files`]: one file per rotation key, and nym-api's last answer.
//! - [`nym_api`]: the requests to nym-api.
//! - [`controller`]: the task that asks nym-api and takes each step at its time.
//!
//! With no nym-api to follow ([`followed_apis`]: `nym_api_urls = []`, or a local gateway
//! without `nym_api_urls`), the gateway keeps its static key (the seed's
//! `private_sphinx.pem`), announced as rotation [`LEGACY_ROTATION_ID`], as before.
//! With one configured, the static key becomes the first rotation's key when nym-api first
//! answers, so what clients already know keeps working; later rotations get fresh keys.

pub mod controller;
pub mod key_files;
pub mod key_ring;
pub mod nym_api;
pub mod schedule;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tracing::{info, warn};
use x25519_dalek::{PublicKey, StaticSecret};

use self::key_files::KeyFiles;
use self::key_ring::{KeyRing, KeySet, RotationKey};
use self::schedule::RotationInfo;
use super::replay::{ReplayFile, ReplaySettings};
use super::unwrapper::Unwrapper;
use crate::config::{Config, FinalHopImplementation};

/// nym-node's `rotation_id` for a static, never-rotated sphinx key.
pub const LEGACY_ROTATION_ID: u32 = u32::MAX;

/// How to build a [`RotationKey`]: the unwrap implementation, the replay filter's settings,
/// and where filters are saved.
#[derive(Debug, Clone)]
pub struct KeyMaker {
    /// Fast or reference unwrapping.
    pub implementation: FinalHopImplementation,
    /// Each key's replay filter.
    pub replay: ReplaySettings,
    /// The store file; filters are saved beside it.
    pub store: std::path::PathBuf,
}

impl KeyMaker {
    /// From the config.
    pub fn from_config(config: &Config) -> Self {
        Self {
            implementation: config.debug.final_hop_implementation,
            replay: ReplaySettings::from_config(&config.debug),
            store: config.gateway.persistent_storage.clone(),
        }
    }

    /// The key of `rotation_id` with `secret`, and its replay filter loaded from its file if
    /// one was saved for this key (blocking).
    pub fn make(&self, rotation_id: u32, secret: &StaticSecret) -> anyhow::Result<RotationKey> {
        let public = PublicKey::from(secret).to_bytes();
        let replay_file = if rotation_id == LEGACY_ROTATION_ID {
            ReplayFile::beside_store(&self.store, public)
        } else {
            ReplayFile::for_rotation(&self.store, rotation_id, public)
        };
        let replay = replay_file.load_or_new(self.replay);
        Ok(RotationKey {
            rotation_id,
            public,
            unwrapper: Arc::new(Unwrapper::new(secret.to_bytes(), self.implementation)?),
            replay: Arc::new(Mutex::new(replay)),
            replay_file,
        })
    }
}

/// The keys to start with (blocking): the static key alone without a nym-api or without a
/// saved answer from one; else the rotation keys on disk, the one current by nym-api's last
/// answer (advanced by the clock) as the primary, the next or previous rotation's as the
/// secondary. Keys of rotations that are over are deleted; a key from a rotation further
/// ahead is left unused (a clock set back, or a copied directory) and warned about.
pub fn initial_keys(
    config: &Config,
    static_secret: &StaticSecret,
    maker: &KeyMaker,
) -> anyhow::Result<KeyRing> {
    let static_key = || maker.make(LEGACY_ROTATION_ID, static_secret).map(Arc::new);
    if followed_apis(config).is_empty() {
        return Ok(KeyRing::new(KeySet::single(static_key()?)));
    }
    let files = KeyFiles::in_dir(key_dir(config));
    let Some(current) = saved_info(&config.gateway.persistent_storage)
        .map(|info| info.rotation_at(SystemTime::now()))
    else {
        // Without nym-api's answer no held key can be judged current (first start, or the
        // answer's file was removed): the static key serves until nym-api answers.
        info!("no key-rotation information saved yet: the static sphinx key serves until nym-api answers");
        return Ok(KeyRing::new(KeySet::single(static_key()?)));
    };
    let mut held = files.load_all();
    held.retain(|(id, _)| {
        let over = id.saturating_add(1) < current;
        let ahead = *id > current.saturating_add(1);
        if over {
            info!(rotation = id, "deleting the key of a rotation that is over");
            let _ = files.remove(*id);
            let store = &config.gateway.persistent_storage;
            let _ = std::fs::remove_file(ReplayFile::rotation_path(store, *id));
        } else if ahead {
            warn!(
                rotation = id,
                current,
                "a sphinx key file for a rotation still ahead is not used; is the clock right?"
            );
        }
        !over && !ahead
    });
    // The primary: the current rotation's key, else the newest held.
    let primary_at = held
        .iter()
        .position(|(id, _)| *id == current)
        .or_else(|| held.len().checked_sub(1));
    let Some(primary_at) = primary_at else {
        info!("no rotation key held: the static sphinx key serves until nym-api answers");
        return Ok(KeyRing::new(KeySet::single(static_key()?)));
    };
    let (primary_id, primary_secret) = held.remove(primary_at);
    let primary = Arc::new(maker.make(primary_id, &primary_secret)?);
    // The other key nearest the primary's rotation, if any.
    let secondary = held
        .iter()
        .min_by_key(|(id, _)| id.abs_diff(primary_id))
        .map(|(id, secret)| maker.make(*id, secret).map(Arc::new))
        .transpose()?;
    info!(
        primary = primary_id,
        secondary = ?secondary.as_ref().map(|k| k.rotation_id),
        "sphinx rotation keys loaded"
    );
    Ok(KeyRing::new(KeySet { primary, secondary }))
}

/// The nym-apis whose rotation the keys follow: `nym_api_urls` when set; else the validator
/// APIs, unless the gateway announces a local address (such a gateway is in no network's
/// directory, so the seed's offline demo keeps its one key and asks nobody, as the
/// duplicate-host check skips it too).
pub fn followed_apis(config: &Config) -> &[String] {
    let g = &config.gateway;
    match &g.nym_api_urls {
        Some(urls) => urls,
        None if super::validator_check::is_local_host(&g.announce_address) => &[],
        None => &g.validator_api_urls,
    }
}

/// The directory rotation keys live in: the sphinx key file's.
pub fn key_dir(config: &Config) -> &Path {
    config
        .gateway
        .private_sphinx_key_file
        .parent()
        .unwrap_or(Path::new("."))
}

/// nym-api's last answer, as saved beside `store`, if there is a readable one.
fn saved_info(store: &Path) -> Option<RotationInfo> {
    let body = std::fs::read(key_files::info_path(store)).ok()?;
    RotationInfo::parse(&body).ok()
}
