//! A mix-node-like TCP connection to the gateway's mix port: frames back to back, plain TCP.

use anyhow::Context;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct MixConnection {
    stream: TcpStream,
}

impl MixConnection {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .with_context(|| format!("connecting to the mix port {addr} timed out"))?
            .with_context(|| format!("connecting to the mix port {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(MixConnection { stream })
    }

    pub async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        tokio::time::timeout(Duration::from_secs(10), self.stream.write_all(bytes))
            .await
            .context("writing to the mix port timed out")?
            .context("writing to the mix port")?;
        Ok(())
    }

    /// Whether the gateway closed (or reset) the connection within `limit`. The gateway never
    /// writes on this connection, so any read result other than a timeout means closed.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        let mut buf = [0u8; 64];
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                // unexpected bytes from the gateway: keep waiting for the close
                Ok(Ok(_)) => continue,
            }
        }
    }

    /// Whether the connection is still open: nothing to read and no close within `probe`.
    pub async fn still_open(&mut self, probe: Duration) -> bool {
        !self.closed_within(probe).await
    }
}
