//! A client transport whose read buffer exists only while the client is sending.
//!
//! Most connected clients are idle most of the time, and every byte a connection holds while
//! idle is multiplied by the number of clients. tungstenite allocates its read buffer up
//! front (`read_buffer_size`) and zero-fills it on the first read, so that buffer is resident
//! for the connection's whole life; it also reads at most `read_buffer_size` bytes per read.
//! The websocket is therefore given a small buffer, and this wrapper does the large reads:
//! it reads up to [`CHUNK`] bytes from the socket into a buffer of its own and hands them to
//! tungstenite in small pieces (memory copies, no system calls). The buffer is freed as soon
//! as the socket has nothing more to read, which is where an idle client's connection waits.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::BoxedTransport;

/// Bytes read from the socket at most per read: a few forward requests (~2.5 KB each, the
/// largest frames a client sends in normal use) in one system call.
pub(super) const CHUNK: usize = 8 * 1024;

/// The client's transport, reads buffered through a buffer allocated only while data arrives.
pub(super) struct IdleReleasingReader {
    inner: BoxedTransport,
    /// Empty (no allocation) while idle; [`CHUNK`] bytes while reading.
    buffer: Vec<u8>,
    /// The bytes of `buffer` read from the socket and not yet handed on: `start..end`.
    start: usize,
    end: usize,
}

impl IdleReleasingReader {
    pub(super) fn new(inner: BoxedTransport) -> Self {
        Self {
            inner,
            buffer: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    /// Bytes of read buffer this connection holds now (0 while idle).
    #[cfg(test)]
    pub(super) fn buffer_capacity(&self) -> usize {
        self.buffer.capacity()
    }

    /// Drops the buffer; it is allocated again when data arrives.
    fn release(&mut self) {
        self.buffer = Vec::new();
        self.start = 0;
        self.end = 0;
    }
}

impl AsyncRead for IdleReleasingReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.start == this.end {
            if out.remaining() >= CHUNK {
                // A large read (not tungstenite's, which asks for little) needs no copy.
                return Pin::new(&mut this.inner).poll_read(cx, out);
            }
            if this.buffer.is_empty() {
                this.buffer = vec![0; CHUNK];
            }
            let mut read = ReadBuf::new(&mut this.buffer);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let filled = read.filled().len();
                    if filled == 0 {
                        // End of stream.
                        this.release();
                        return Poll::Ready(Ok(()));
                    }
                    this.start = 0;
                    this.end = filled;
                }
                // Nothing to read: the client is (for now) idle, so the buffer goes.
                Poll::Pending => {
                    this.release();
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => {
                    this.release();
                    return Poll::Ready(Err(e));
                }
            }
        }
        let n = out.remaining().min(this.end - this.start);
        out.put_slice(&this.buffer[this.start..this.start + n]);
        this.start += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for IdleReleasingReader {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn hands_on_every_byte_in_small_reads_and_frees_the_buffer_when_idle() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut reader = IdleReleasingReader::new(Box::new(server));
        let sent: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        client.write_all(&sent).await.unwrap();
        let mut received = Vec::new();
        let mut piece = [0u8; 100];
        while received.len() < sent.len() {
            let n = reader.read(&mut piece).await.unwrap();
            assert!(n > 0);
            received.extend_from_slice(&piece[..n]);
        }
        assert_eq!(received, sent);
        assert!(reader.buffer_capacity() > 0);
        // Nothing more to read: the next read waits, and the buffer is gone meanwhile.
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            reader.read(&mut piece),
        )
        .await;
        assert!(waiting.is_err());
        assert_eq!(reader.buffer_capacity(), 0);
        // Data after the idle time still arrives, then the end of the stream.
        client.write_all(b"later").await.unwrap();
        drop(client);
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"later");
        assert_eq!(reader.buffer_capacity(), 0);
    }
}
