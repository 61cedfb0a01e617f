//! Opening the gateway's SQLite store with the limits from the config.

use gateway_store::{Store, StoreConfig};

use crate::config::Config;

/// The store settings a config describes.
pub fn store_config(config: &Config) -> StoreConfig {
    let d = &config.debug;
    let mut store = StoreConfig::new(config.gateway.persistent_storage.clone());
    store.queue_capacity = d.store_queue_capacity.get();
    store.max_batch = d.store_max_batch.get();
    store.max_messages_per_client = d.max_stored_messages_per_client;
    store.max_bytes_per_client = d.max_stored_bytes_per_client;
    store.synchronous_full = d.store_synchronous_full;
    store.writer_cache_kib = d.store_cache_kib.get();
    store.background_checkpoints = d.store_background_checkpoints;
    store.checkpoint_pages = d.store_checkpoint_pages.get();
    store.wal_restart_pages = d.store_wal_restart_pages.get();
    store.legacy_backup_label = backup_label(&config.gateway.version);
    store
}

/// The version a 1.0.x store's backup is named after (`db.sqlite.<version>.bak`): the one
/// the config records, which is the version that wrote the data unless the operator already
/// edited it; anything that is not a plain version string gives `1.0.x`.
fn backup_label(config_version: &str) -> String {
    let plain = !config_version.is_empty()
        && config_version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'));
    if plain {
        config_version.to_owned()
    } else {
        "1.0.x".to_owned()
    }
}

/// Opens the store (creating and migrating it, importing a 1.0.x store).
pub fn open(config: &Config) -> Result<Store, gateway_store::OpenError> {
    Store::open(store_config(config))
}

/// Creates and migrates the store, then closes it (what `init` does, outside any runtime).
pub fn initialise(config: &Config) -> anyhow::Result<()> {
    let store = open(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(store.close())?;
    Ok(())
}
