//! A loopback HTTP server for the unit tests of code that reads answers from other services
//! over HTTP: every request gets the same answer.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A server running on its own thread for the rest of the test process.
pub(crate) struct Server {
    /// Its base URL, `http://127.0.0.1:<port>/`.
    pub(crate) url: String,
    requests: Arc<AtomicUsize>,
}

impl Server {
    /// Answers every request, one connection at a time, with status 200 and `body` as JSON.
    pub(crate) fn answering(body: impl Into<String>) -> Self {
        let body = body.into();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    let header = line.to_ascii_lowercase();
                    if let Some(value) = header.strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap();
                    }
                    line.clear();
                }
                // Read the whole request first: closing with unread bytes resets the
                // connection, and the client could lose the answer.
                let _ = reader.read_exact(&mut vec![0; length]);
                // Counted before answering, so a client that has its answer sees the count.
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { url, requests }
    }

    /// Requests answered so far.
    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}
