//! What tests that run a node inside their own process share: a loopback config with every
//! port left to the kernel, and a plain HTTP client for the node's API.

use std::net::SocketAddr;
use std::path::Path;

use nym_gateway::config::Config;
use nym_gateway::network::Network;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A config for node `id` under `root` on loopback, every port 0 (chosen at bind), with its
/// storage directory created.
pub fn loopback_config(id: &str, root: &Path, network: &Network) -> Config {
    let mut config = Config::new(id, root, network);
    config.gateway.listening_address = [127, 0, 0, 1].into();
    config.gateway.mix_port = 0;
    config.gateway.clients_port = 0;
    config.gateway.http_api_address = SocketAddr::from(([127, 0, 0, 1], 0));
    std::fs::create_dir_all(config.gateway.persistent_storage.parent().unwrap()).unwrap();
    config
}

/// Status line and body of a plain HTTP/1.0 GET.
pub async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_default();
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}
