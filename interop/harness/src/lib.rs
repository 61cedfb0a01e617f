//! What the two interop workspaces share: `interop/` (the published Nym 2.0.0 crates) and
//! `interop/sdk/` (nym-sdk 1.21.6) pin Nym trees that cannot meet in one lockfile, so the pieces
//! both need live here, with no Nym dependency.
//!
//! * [`ChildGuard`] — a spawned process (nym-localnet) that gets SIGTERM if a test drops it,
//!   and a [`stop`](ChildGuard::stop) that requires a clean exit.
//! * [`http_request`], [`http_get`], [`http_post`] — plain HTTP/1.1 over loopback, one
//!   connection per request.
//! * [`LocalnetProcess`] — nym-localnet started in a fresh directory: the nym-api URL it
//!   announces, its output and the nodes' logs for failure reports, and a clean stop.

mod http;
mod localnet;
mod process;

pub use http::{http_get, http_post, http_request};
pub use localnet::LocalnetProcess;
pub use process::ChildGuard;
