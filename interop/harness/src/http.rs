//! Plain HTTP/1.1 over loopback, one connection per request: enough for nym-api's and the
//! nodes' JSON and metrics. Every request says `Connection: close`, so the response ends where
//! the peer closes the connection.

use anyhow::{ensure, Context as _};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// For the whole exchange: connecting, sending and reading the response.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// `method path` on `address`, with `json_body` as an `application/json` body when given: the
/// status code and the response body, whatever the status.
pub async fn http_request(
    address: SocketAddr,
    method: &str,
    path: &str,
    json_body: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    if let Some(body) = json_body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(json_body.unwrap_or_default());
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(HTTP_TIMEOUT, exchange)
        .await
        .with_context(|| {
            format!("{method} {path} on {address}: no answer within {HTTP_TIMEOUT:?}")
        })?
        .with_context(|| format!("{method} {path} on {address}"))?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .with_context(|| format!("{method} {path} on {address}: no end of the HTTP header"))?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("{method} {path} on {address}: no HTTP status"))?;
    let mut body = response[split + 4..].to_vec();
    // HTTP/1.1 lets a server send a body of unannounced length in chunks (axum does for
    // streamed answers such as metrics).
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    if chunked {
        body = dechunk(&body)
            .with_context(|| format!("{method} {path} on {address}: a bad chunked body"))?;
    }
    let body = String::from_utf8(body)
        .with_context(|| format!("{method} {path} on {address}: the body is not UTF-8"))?;
    Ok((status, body))
}

/// The data of a chunked body: each chunk is its size in hex (maybe with extensions after a
/// `;`), CRLF, the data, CRLF; a chunk of size 0 ends it.
fn dechunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("a chunk size without its CRLF")?;
        let size_text =
            std::str::from_utf8(&data[..line_end]).context("a chunk size not in text")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("a bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        ensure!(data.len() >= size + 2, "the body ends inside a chunk");
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// The body of `GET path` on `address`, which must answer 200.
pub async fn http_get(address: SocketAddr, path: &str) -> anyhow::Result<String> {
    let (status, body) = http_request(address, "GET", path, None).await?;
    ensure!(
        status == 200,
        "GET {path} on {address}: status {status}: {body}"
    );
    Ok(body)
}

/// The body of `POST path` on `address` with the JSON `body`, which must answer 200.
pub async fn http_post(address: SocketAddr, path: &str, body: &str) -> anyhow::Result<String> {
    let (status, answer) = http_request(address, "POST", path, Some(body)).await?;
    ensure!(
        status == 200,
        "POST {path} on {address}: status {status}: {answer}"
    );
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    /// A server for one connection: it reads the request until the client's body is complete
    /// (by its Content-Length), answers `response` and closes; the task yields the request.
    async fn answer_once(response: &'static str) -> (SocketAddr, JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            let mut buf = [0; 1024];
            while !request_complete(&request) {
                let n = stream.read(&mut buf).await.expect("read");
                assert!(n > 0, "the client closed before its request was complete");
                request.extend_from_slice(&buf[..n]);
            }
            stream.write_all(response.as_bytes()).await.expect("write");
            String::from_utf8(request).expect("a text request")
        });
        (address, server)
    }

    fn request_complete(request: &[u8]) -> bool {
        let text = String::from_utf8_lossy(request);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("Content-Length: "))
            .map_or(0, |n| n.parse().expect("a length"));
        body.len() >= length
    }

    #[tokio::test]
    async fn post_sends_the_json_body_and_returns_the_answer() {
        let (address, server) = answer_once("HTTP/1.1 200 OK\r\n\r\n{\"ok\":true}").await;
        let answer = http_post(address, "/v1/x", "{\"a\":1}").await.expect("200");
        assert_eq!(answer, "{\"ok\":true}");
        let request = server.await.expect("server");
        assert!(request.starts_with("POST /v1/x HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("Content-Type: application/json\r\n"));
        assert!(
            request.ends_with("Content-Length: 7\r\n\r\n{\"a\":1}"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn request_returns_any_status_and_get_requires_200() {
        let (address, _server) = answer_once("HTTP/1.1 404 Not Found\r\n\r\nno such path").await;
        let (status, body) = http_request(address, "GET", "/nope", None)
            .await
            .expect("an answer");
        assert_eq!((status, body.as_str()), (404, "no such path"));

        let (address, server) = answer_once("HTTP/1.1 404 Not Found\r\n\r\nno such path").await;
        let err = http_get(address, "/nope").await.expect_err("not a 200");
        assert!(
            err.to_string().contains("status 404: no such path"),
            "{err:#}"
        );
        let request = server.await.expect("server");
        assert!(!request.contains("Content-Length"), "{request}");
    }

    #[tokio::test]
    async fn a_chunked_body_is_joined_and_a_truncated_one_is_an_error() {
        let (address, _server) = answer_once(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
             5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(http_get(address, "/m").await.expect("200"), "hello, world");

        let (address, _server) =
            answer_once("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\na\r\nhello").await;
        let err = http_get(address, "/m").await.expect_err("truncated");
        assert!(
            format!("{err:#}").contains("the body ends inside a chunk"),
            "{err:#}"
        );
    }
}
