//! Part of stage 1, **listen**: which HTTP a client speaks, and the hyper
//! connection that serves it.
//!
//! hyper-util's auto builder does the same job (read the first bytes, compare
//! them with the HTTP/2 preface, rewind, serve) but costs an idle HTTP/1.1
//! keep-alive connection about 30 KB more than it needs (heap profile in
//! BENCHMARKS.md):
//! - its rewind hands hyper the sniffed bytes alone, so hyper's first read
//!   returns only those, its 8 KiB read buffer is then "too small" for the
//!   next read and `BytesMut` doubles it to 16 KiB, for the connection's
//!   whole life. [`Prefixed`] gives the sniffed bytes back *together with*
//!   whatever else the socket already holds, in one read;
//! - its connection future holds the HTTP/1 and HTTP/2 states inline, so
//!   every connection task is as large as an HTTP/2 one (h2's codec, hpack
//!   tables, settings). [`Connection`] boxes the one that is used.
//!
//! Behaviour is that of the auto builder with upgrades: HTTP/2 when the
//! first 24 bytes are the preface (prior knowledge, or after ALPN `h2`),
//! else HTTP/1.1 with upgrades; the same builders and limits.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.x (with upgrades).
    Http1,
    /// HTTP/2.
    Http2,
}

/// The HTTP/1 and HTTP/2 builders of one connection's limits.
#[derive(Debug, Clone)]
pub struct Builders {
    /// Used when the client does not open with the HTTP/2 preface.
    pub http1: http1::Builder,
    /// Used when it does.
    pub http2: http2::Builder<TokioExecutor>,
}

impl Default for Builders {
    fn default() -> Builders {
        Builders { http1: http1::Builder::new(), http2: http2::Builder::new(TokioExecutor::new()) }
    }
}

/// Reads the client's first bytes until they differ from the HTTP/2 preface
/// (HTTP/1) or are all of it (HTTP/2). The bytes read are not lost: the
/// returned stream gives them back first. A client that closes before
/// saying anything counts as HTTP/1 (hyper then sees the end of stream).
pub async fn sniff<I: AsyncRead + Unpin>(mut io: I) -> io::Result<(Protocol, Prefixed<I>)> {
    let mut prefix = [0u8; 24];
    let mut len = 0;
    let protocol = loop {
        let n = io.read(&mut prefix[len..]).await?;
        if n == 0 || prefix[len..len + n] != PREFACE[len..len + n] {
            len += n;
            break Protocol::Http1;
        }
        len += n;
        if len == PREFACE.len() {
            break Protocol::Http2;
        }
    };
    Ok((protocol, Prefixed { io, prefix, pos: 0, len: u8::try_from(len).unwrap_or(24), error: None }))
}

/// A stream that first gives back the bytes [`sniff`] read.
///
/// Unlike a plain rewind, the read that returns them also takes what the
/// socket already has (without waiting for more), so the reader sees the
/// request as it arrived, not cut after the first bytes.
#[derive(Debug)]
pub struct Prefixed<I> {
    io: I,
    prefix: [u8; 24],
    pos: u8,
    len: u8,
    /// An error of the read that followed the prefix, reported next.
    error: Option<io::Error>,
}

impl<I> Prefixed<I> {
    /// The wrapped stream.
    pub fn get_ref(&self) -> &I {
        &self.io
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(error) = this.error.take() {
            return Poll::Ready(Err(error));
        }
        if this.pos == this.len {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let rest = &this.prefix[usize::from(this.pos)..usize::from(this.len)];
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        // n <= 24.
        this.pos += u8::try_from(n).unwrap_or(24);
        if this.pos == this.len && buf.remaining() > 0 {
            // Whatever else already arrived, in the same read; nothing
            // arrived (Pending) is fine, the prefix is this read's result.
            if let Poll::Ready(Err(e)) = Pin::new(&mut this.io).poll_read(cx, buf) {
                this.error = Some(e);
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// `impl AsyncWrite for $ty<I>` that hands every call to its `$field`:
/// for the stream wrappers that only change reading ([`Prefixed`],
/// [`crate::head_timeout::HeadTimeout`]).
macro_rules! forward_async_write {
    ($ty:ident, $field:ident) => {
        impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $ty<I> {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().$field).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().$field).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.$field.is_write_vectored()
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().$field).poll_flush(cx)
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().$field).poll_shutdown(cx)
            }
        }
    };
}
pub(crate) use forward_async_write;

forward_async_write!(Prefixed, io);

/// One client connection served by hyper, HTTP/1 (with upgrades) or
/// HTTP/2, boxed so the task that owns it holds a pointer, not the larger
/// of the two states.
pub enum Connection<I, S>
where
    S: HttpService<Incoming>,
{
    /// HTTP/1.x.
    Http1(Pin<Box<http1::UpgradeableConnection<TokioIo<I>, S>>>),
    /// HTTP/2.
    Http2(Pin<Box<http2::Connection<TokioIo<I>, S, TokioExecutor>>>),
}

impl<I, S, B> Connection<I, S>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = B> + Send,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Serves `io`, which speaks `protocol`, with `service`.
    pub fn new(builders: &Builders, protocol: Protocol, io: I, service: S) -> Connection<I, S> {
        let io = TokioIo::new(io);
        match protocol {
            Protocol::Http1 => {
                Connection::Http1(Box::pin(builders.http1.serve_connection(io, service).with_upgrades()))
            }
            Protocol::Http2 => Connection::Http2(Box::pin(builders.http2.serve_connection(io, service))),
        }
    }

    /// Stops taking new requests; the future ends once those in flight are
    /// done.
    pub fn graceful_shutdown(&mut self) {
        match self {
            Connection::Http1(conn) => conn.as_mut().graceful_shutdown(),
            Connection::Http2(conn) => conn.as_mut().graceful_shutdown(),
        }
    }
}

impl<I, S, B> Future for Connection<I, S>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = B> + Send,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Output = Result<(), hyper::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Connection::Http1(conn) => conn.as_mut().poll(cx),
            Connection::Http2(conn) => conn.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    async fn sniffed(chunks: &[&[u8]]) -> (Protocol, Vec<u8>) {
        let (mut near, far) = tokio::io::duplex(1024);
        for chunk in chunks {
            near.write_all(chunk).await.unwrap();
        }
        drop(near);
        let (protocol, mut io) = sniff(far).await.unwrap();
        let mut all = Vec::new();
        io.read_to_end(&mut all).await.unwrap();
        (protocol, all)
    }

    #[tokio::test]
    async fn http1_and_http2_are_told_apart_and_no_byte_is_lost() {
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(sniffed(&[get]).await, (Protocol::Http1, get.to_vec()));
        let mut h2 = PREFACE.to_vec();
        h2.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        assert_eq!(sniffed(&[&h2]).await, (Protocol::Http2, h2.clone()));
        // The preface in pieces, then the rest.
        assert_eq!(sniffed(&[&h2[..3], &h2[3..20], &h2[20..]]).await, (Protocol::Http2, h2.clone()));
        // Starts like the preface, then is not it.
        let almost = b"PRI * HTTP/1.1\r\n\r\n";
        assert_eq!(sniffed(&[almost]).await, (Protocol::Http1, almost.to_vec()));
        // Nothing at all.
        assert_eq!(sniffed(&[]).await, (Protocol::Http1, Vec::new()));
    }

    /// The read that returns the sniffed bytes also returns what followed
    /// them, so hyper's first read sees the whole request head.
    #[tokio::test]
    async fn the_first_read_returns_the_prefix_and_what_followed() {
        let (mut near, far) = tokio::io::duplex(4096);
        let get = b"GET /a-longer-path HTTP/1.1\r\nHost: example.com\r\n\r\n";
        near.write_all(get).await.unwrap();
        let (protocol, mut io) = sniff(far).await.unwrap();
        assert_eq!(protocol, Protocol::Http1);
        let mut buf = [0u8; 8192];
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], get);
        // A small reader gets the prefix over several reads.
        near.write_all(get).await.unwrap();
        let (_, mut io) = sniff(io).await.unwrap();
        let mut small = [0u8; 5];
        let n = io.read(&mut small).await.unwrap();
        assert_eq!(&small[..n], &get[..5]);
    }
}
