//! Where a gateway's files live: `$HOME/.nym/gateways/<id>/{config,data}/`.

use std::path::{Path, PathBuf};

use crate::keys::KeyPaths;

/// `$HOME/.nym/gateways`, or `None` when `HOME` is not set.
pub fn nym_root_directory() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".nym").join("gateways"))
}

/// `<root>/<id>`
pub fn gateway_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// `<root>/<id>/config/config.toml`
pub fn config_path(root: &Path, id: &str) -> PathBuf {
    GatewayPaths::new(root, id).config_file()
}

/// The default file layout of one gateway.
#[derive(Debug, Clone)]
pub struct GatewayPaths {
    dir: PathBuf,
}

impl GatewayPaths {
    /// The layout of gateway `id` under `root`.
    pub fn new(root: &Path, id: &str) -> Self {
        Self {
            dir: gateway_dir(root, id),
        }
    }

    /// `config/config.toml`
    pub fn config_file(&self) -> PathBuf {
        self.dir.join("config").join("config.toml")
    }

    /// `data/`
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `data/db.sqlite`
    pub fn default_datastore(&self) -> PathBuf {
        self.data_dir().join("db.sqlite")
    }

    /// The four key files in `data/`.
    pub fn keys(&self) -> KeyPaths {
        KeyPaths::in_dir(&self.data_dir())
    }
}
