//! A connection after its Noise handshake: bytes written are sealed into data frames, frames
//! read are opened and handed out as bytes, so the mix framing above runs unchanged.
//!
//! Each `poll_write` seals what it is given (up to one frame's worth) into a buffer and
//! starts writing it; the buffer is written out before the next frame is sealed, and by
//! `poll_flush`. Writers must flush after their last write, as they would a buffered writer.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frame::{Header, Kind, HEADER_LEN, MAX_PAYLOAD};

/// AES-GCM's tag, carried by every data frame.
pub const TAG_LEN: usize = 16;
/// Most plaintext one data frame carries.
const MAX_PLAINTEXT: usize = MAX_PAYLOAD - TAG_LEN;
/// Bytes asked of the socket per read: several sealed mix frames.
const READ_CHUNK: usize = 16 * 1024;

/// An established Noise connection over `S`.
pub struct NoiseStream<S> {
    inner: S,
    transport: snow::TransportState,
    /// Bytes read from `inner` that do not yet make a whole frame.
    sealed_in: Vec<u8>,
    /// Opened bytes not yet handed to the reader, from `plain_at`.
    plain: Vec<u8>,
    plain_at: usize,
    /// Sealed frames not yet written to `inner`, from `sealed_out_at`.
    sealed_out: Vec<u8>,
    sealed_out_at: usize,
    /// `inner` reached its end.
    eof: bool,
}

impl<S> NoiseStream<S> {
    /// `inner` after a completed handshake that produced `transport`.
    pub(super) fn new(inner: S, transport: snow::TransportState) -> Self {
        Self {
            inner,
            transport,
            sealed_in: Vec::new(),
            plain: Vec::new(),
            plain_at: 0,
            sealed_out: Vec::new(),
            sealed_out_at: 0,
            eof: false,
        }
    }

    /// The peer's static Noise key, as learned in the handshake.
    pub fn remote_static(&self) -> Option<&[u8]> {
        self.transport.get_remote_static()
    }

    /// The underlying connection.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The underlying connection, dropping the Noise state (and anything buffered).
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Opens the first whole frame of `sealed_in` into `plain`; false if none is whole yet.
    fn open_frame(&mut self) -> io::Result<bool> {
        let Some(header) = self.sealed_in.first_chunk::<HEADER_LEN>() else {
            return Ok(false);
        };
        let header = Header::decode(header).map_err(invalid)?;
        if header.kind != Kind::Data {
            return Err(invalid("a handshake message after the handshake"));
        }
        let len = usize::from(header.len);
        if len < TAG_LEN {
            return Err(invalid("a data frame shorter than its tag"));
        }
        let Some(sealed) = self.sealed_in.get(HEADER_LEN..HEADER_LEN + len) else {
            return Ok(false);
        };
        self.plain.clear();
        self.plain.resize(len - TAG_LEN, 0);
        self.plain_at = 0;
        let opened = self
            .transport
            .read_message(sealed, &mut self.plain)
            .map_err(|_| invalid("a data frame that does not decrypt"))?;
        self.plain.truncate(opened);
        self.sealed_in.drain(..HEADER_LEN + len);
        Ok(true)
    }
}

impl<S: AsyncWrite + Unpin> NoiseStream<S> {
    /// Writes out every sealed byte held.
    fn poll_write_sealed(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sealed_out_at < self.sealed_out.len() {
            let rest = &self.sealed_out[self.sealed_out_at..];
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sealed_out_at += written;
        }
        self.sealed_out.clear();
        self.sealed_out_at = 0;
        Poll::Ready(Ok(()))
    }
}

fn invalid(reason: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.to_string())
}

impl<S: AsyncRead + Unpin> AsyncRead for NoiseStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.plain_at < this.plain.len() {
                let n = buf.remaining().min(this.plain.len() - this.plain_at);
                buf.put_slice(&this.plain[this.plain_at..this.plain_at + n]);
                this.plain_at += n;
                return Poll::Ready(Ok(()));
            }
            if this.open_frame()? {
                continue;
            }
            if this.eof {
                return Poll::Ready(if this.sealed_in.is_empty() {
                    Ok(())
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                });
            }
            let start = this.sealed_in.len();
            this.sealed_in.resize(start + READ_CHUNK, 0);
            let mut read = ReadBuf::new(&mut this.sealed_in[start..]);
            let polled = Pin::new(&mut this.inner).poll_read(cx, &mut read);
            let filled = read.filled().len();
            this.sealed_in.truncate(start + filled);
            ready!(polled)?;
            if filled == 0 {
                this.eof = true;
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for NoiseStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_write_sealed(cx))?;
        let n = data.len().min(MAX_PLAINTEXT);
        this.sealed_out.resize(HEADER_LEN + n + TAG_LEN, 0);
        let sealed = this
            .transport
            .write_message(&data[..n], &mut this.sealed_out[HEADER_LEN..])
            .map_err(|e| io::Error::other(format!("sealing a Noise frame: {e}")))?;
        // `sealed` is n + TAG_LEN, at most MAX_PAYLOAD.
        let len = u16::try_from(sealed).map_err(|_| invalid("an oversized Noise frame"))?;
        this.sealed_out[..HEADER_LEN].copy_from_slice(&Header::new(Kind::Data, len).encode());
        this.sealed_out.truncate(HEADER_LEN + sealed);
        // Start writing now; what the socket does not take yet goes out on the next write or
        // flush. A pending write here leaves a wake-up that only re-polls the writer.
        if let Poll::Ready(Err(e)) = this.poll_write_sealed(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_sealed(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_sealed(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
