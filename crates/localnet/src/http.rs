//! Just enough of an HTTP/1.1 client to read the nodes' self-described API on loopback: one
//! `GET` per connection (`Connection: close`), a `Content-Length` or read-to-close body, no
//! redirects, no chunking, no compression (we ask for none). A full client library would pull in
//! features of shared dependencies that the gateway does not use, and rebuild it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The most a node's answer may hold; the self-described bodies are a few KiB.
const MAX_RESPONSE: u64 = 1 << 20;

/// The body of `GET http://<address><path>`, which must answer 200 within `timeout`.
pub async fn get(address: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<Vec<u8>> {
    tokio::time::timeout(timeout, get_inner(address, path))
        .await
        .with_context(|| format!("GET {path} from {address} timed out"))?
}

async fn get_inner(address: SocketAddr, path: &str) -> anyhow::Result<Vec<u8>> {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .with_context(|| format!("failed to connect to {address}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: application/json\r\n\
         Accept-Encoding: identity\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream
        .take(MAX_RESPONSE + 1)
        .read_to_end(&mut response)
        .await?;
    if response.len() as u64 > MAX_RESPONSE {
        bail!("GET {path} from {address}: the answer is larger than {MAX_RESPONSE} bytes");
    }
    parse_response(&response).with_context(|| format!("GET {path} from {address}"))
}

/// The body of a complete `200` response.
pub fn parse_response(response: &[u8]) -> anyhow::Result<Vec<u8>> {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("the answer has no end of header")?;
    let head = std::str::from_utf8(&response[..end]).context("the header is not UTF-8")?;
    let body = &response[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split(' ').nth(1).unwrap_or_default();
    if code != "200" {
        bail!("answered {status:?}");
    }
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && !value.eq_ignore_ascii_case("identity")
        {
            bail!("unsupported transfer encoding {value:?}");
        }
        if name.eq_ignore_ascii_case("content-encoding") && !value.eq_ignore_ascii_case("identity")
        {
            bail!("unsupported content encoding {value:?}");
        }
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().context("bad Content-Length")?);
        }
    }
    match length {
        Some(n) if body.len() < n => bail!("the body ended after {} of {n} bytes", body.len()),
        Some(n) => Ok(body[..n].to_vec()),
        None => Ok(body.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_cut_at_their_length_and_errors_are_named() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n{}{}extra";
        assert_eq!(parse_response(ok).unwrap(), b"{}{}");
        let no_length = b"HTTP/1.1 200 OK\r\n\r\n[1]";
        assert_eq!(parse_response(no_length).unwrap(), b"[1]");

        let cases: [&[u8]; 5] = [
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
            b"garbage without a header end",
        ];
        for case in cases {
            assert!(
                parse_response(case).is_err(),
                "{}",
                String::from_utf8_lossy(case)
            );
        }
    }
}
