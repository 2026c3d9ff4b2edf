//! Stage 1, **listen**, for HTTP/2: a guard on the connection's bytes that
//! ends floods of frames which cost the server work and the client nothing.
//!
//! HTTP/2 lets a client make the server work without asking for anything:
//! open a stream and reset it at once (rapid reset, CVE-2023-44487), send
//! empty DATA frames (CVE-2019-9518), endless CONTINUATION frames
//! (CVE-2024-27316 and kin), PING, SETTINGS or PRIORITY frames (CVE-2019-9512,
//! -9515, -9513), or zero WINDOW_UPDATEs. hyper and h2 bound some of these;
//! this guard bounds all of them the same way, below hyper, so it does not
//! depend on which of them a given h2 version counts.
//!
//! [`H2Guard`] wraps the (TLS-decrypted) stream hyper reads. Once the first
//! 24 bytes are the HTTP/2 client preface it reads each inbound frame
//! header as it passes (9 bytes, plus the 4-byte increment of a
//! WINDOW_UPDATE) and never holds payload: the bytes go to hyper exactly as
//! they came, and the work per frame is constant. Other connections
//! (HTTP/1) pass untouched after the preface check fails.
//!
//! Each no-work frame takes a token from a bucket of [`BURST`] tokens that
//! refills at [`REFILL_PER_SEC`]. An empty bucket trips the guard: it writes
//! `GOAWAY` with `ENHANCE_YOUR_CALM` (between two of hyper's own frames — it
//! follows the outbound frame boundaries too — naming the last stream the
//! client opened), logs, and fails the connection, so memory and CPU spent
//! on one client stay bounded however fast it sends.
//!
//! The same GOAWAY (with `FRAME_SIZE_ERROR`) ends a connection as soon as a
//! control frame *declares* a wrong size — h2 would wait for a payload that
//! may never come — and (with `STREAM_CLOSED`) one that sends DATA or
//! HEADERS on a stream the client itself ended or reset (RFC 9113 §5.1).

use std::collections::{HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// No-work frames a client may send at once.
pub const BURST: u32 = 1000;
/// No-work frames per second a client may send for ever.
pub const REFILL_PER_SEC: u32 = 100;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const GOAWAY: u8 = 0x7;
const STREAM_CLOSED: u32 = 0x5;
const FRAME_SIZE_ERROR: u32 = 0x6;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// What the guard knows of a byte stream's framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Still comparing the first bytes with the preface (this many matched).
    Preface(usize),
    /// HTTP/2: frames are parsed.
    Frames,
    /// Not HTTP/2, or no longer watched.
    Pass,
}

/// An incremental frame-header reader: header bytes gathered so far, and
/// payload bytes still to skip.
#[derive(Debug, Default)]
struct FrameReader {
    header: [u8; 9],
    have: usize,
    skip: usize,
    /// The WINDOW_UPDATE increment being gathered (bytes seen, value).
    increment: Option<(usize, u32)>,
}

/// A complete frame header.
#[derive(Debug, Clone, Copy)]
struct Header {
    len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl FrameReader {
    /// Whether the stream is between two frames.
    fn at_boundary(&self) -> bool {
        self.have == 0 && self.skip == 0 && self.increment.is_none()
    }

    /// Feeds bytes; calls `on_frame` for each completed header (and, for
    /// WINDOW_UPDATE, again with `Some(increment)` once it is known).
    fn feed(&mut self, mut bytes: &[u8], mut on_frame: impl FnMut(Header, Option<u32>)) {
        while !bytes.is_empty() {
            if let Some((seen, value)) = self.increment.as_mut() {
                while *seen < 4 && !bytes.is_empty() {
                    *value = (*value << 8) | u32::from(bytes[0]);
                    *seen += 1;
                    self.skip -= 1;
                    bytes = &bytes[1..];
                }
                if *seen == 4 {
                    let increment = *value & 0x7fff_ffff;
                    self.increment = None;
                    on_frame(self.parsed(), Some(increment));
                }
                continue;
            }
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == 9 {
                self.have = 0;
                let header = self.parsed();
                self.skip = header.len;
                if header.kind == WINDOW_UPDATE && header.len == 4 {
                    self.increment = Some((0, 0));
                }
                on_frame(header, None);
            }
        }
    }

    fn parsed(&self) -> Header {
        let h = &self.header;
        Header {
            len: (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]),
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        }
    }
}

/// The no-work token bucket.
#[derive(Debug)]
struct Bucket {
    tokens: u32,
    refilled: Instant,
}

impl Bucket {
    fn new() -> Bucket {
        Bucket { tokens: BURST, refilled: Instant::now() }
    }

    /// Takes one token; false when there was none.
    fn take(&mut self) -> bool {
        if self.tokens == 0 {
            let now = Instant::now();
            let elapsed = now.duration_since(self.refilled);
            let earned = elapsed.as_millis().saturating_mul(u128::from(REFILL_PER_SEC)) / 1000;
            if earned == 0 {
                return false;
            }
            self.tokens = u32::try_from(earned).unwrap_or(BURST).min(BURST);
            self.refilled = now;
        }
        self.tokens -= 1;
        true
    }
}

/// Client streams remembered as closed (by the client's END_STREAM or
/// RST_STREAM), for the STREAM_CLOSED check.
const CLOSED_REMEMBERED: usize = 256;

/// Why the guard ends a connection: what, and the GOAWAY code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Verdict {
    why: &'static str,
    code: u32,
}

/// The inbound side's verdicts.
#[derive(Debug)]
struct Inbound {
    frames: FrameReader,
    bucket: Bucket,
    /// The highest stream the client opened (for GOAWAY).
    last_stream: u32,
    /// The stream of the last HEADERS frame, while nothing else came.
    just_opened: Option<u32>,
    /// The client streams closed most recently, oldest first, and the same
    /// as a set: O(1) per frame, bounded memory.
    closed_order: VecDeque<u32>,
    closed: HashSet<u32>,
    verdict: Option<Verdict>,
}

impl Inbound {
    fn new() -> Inbound {
        Inbound {
            frames: FrameReader::default(),
            bucket: Bucket::new(),
            last_stream: 0,
            just_opened: None,
            // Grown on demand, not reserved: every connection has a guard,
            // HTTP/1.1 ones too, and the full reservation (a 256-entry
            // deque and set, about 3.5 KB) was a tenth of an idle
            // connection's memory. They stay bounded by CLOSED_REMEMBERED.
            closed_order: VecDeque::new(),
            closed: HashSet::new(),
            verdict: None,
        }
    }

    fn close_stream(&mut self, stream: u32) {
        if stream == 0 || !self.closed.insert(stream) {
            return;
        }
        self.closed_order.push_back(stream);
        if self.closed_order.len() > CLOSED_REMEMBERED
            && let Some(old) = self.closed_order.pop_front()
        {
            self.closed.remove(&old);
        }
    }

    fn on_frame(&mut self, header: Header, increment: Option<u32>) {
        if self.verdict.is_some() {
            return;
        }
        if increment.is_none()
            && let Some(verdict) = self.violation(header)
        {
            self.verdict = Some(verdict);
            return;
        }
        let no_work = match (header.kind, increment) {
            (WINDOW_UPDATE, None) => {
                // Scored once the increment is known.
                return;
            }
            (WINDOW_UPDATE, Some(increment)) => (increment == 0).then_some("zero WINDOW_UPDATE"),
            (HEADERS, _) => {
                self.last_stream = self.last_stream.max(header.stream);
                self.just_opened = Some(header.stream);
                if header.flags & END_STREAM != 0 {
                    self.close_stream(header.stream);
                }
                return;
            }
            (RST_STREAM, _) => {
                let rapid = self.just_opened == Some(header.stream);
                self.close_stream(header.stream);
                Some(if rapid { "HEADERS + RST_STREAM" } else { "RST_STREAM" })
            }
            (DATA, _) => {
                if header.flags & END_STREAM != 0 {
                    self.close_stream(header.stream);
                }
                (header.len == 0 && header.flags & END_STREAM == 0).then_some("empty DATA")
            }
            (CONTINUATION, _) => Some("CONTINUATION"),
            (PING, _) if header.flags & ACK == 0 => Some("PING"),
            (SETTINGS, _) if header.flags & ACK == 0 => Some("SETTINGS"),
            (PRIORITY, _) => Some("PRIORITY"),
            (PING | SETTINGS | 0x5 | 0x7, _) => None,
            _ => Some("unknown frame type"),
        };
        if header.kind != CONTINUATION {
            self.just_opened = None;
        }
        if let Some(kind) = no_work
            && !self.bucket.take()
        {
            self.verdict = Some(Verdict { why: kind, code: ENHANCE_YOUR_CALM });
        }
    }

    /// Errors h2 would report only once the whole frame arrived (a frame
    /// whose declared size is wrong may never complete), and DATA or
    /// HEADERS on a stream the client itself closed, which h2 answers
    /// with a stream reset although the client is past any doubt: RFC 9113
    /// §5.1 lets that be a connection error of type STREAM_CLOSED.
    fn violation(&self, header: Header) -> Option<Verdict> {
        let size = |why| Some(Verdict { why, code: FRAME_SIZE_ERROR });
        match header.kind {
            SETTINGS if !header.len.is_multiple_of(6) || (header.flags & ACK != 0 && header.len != 0) => {
                size("SETTINGS of a bad size")
            }
            PING if header.len != 8 => size("PING of a bad size"),
            WINDOW_UPDATE if header.len != 4 => size("WINDOW_UPDATE of a bad size"),
            RST_STREAM if header.len != 4 => size("RST_STREAM of a bad size"),
            GOAWAY if header.len < 8 => size("GOAWAY of a bad size"),
            DATA | HEADERS if self.closed.contains(&header.stream) => {
                Some(Verdict { why: "frame on a stream the client closed", code: STREAM_CLOSED })
            }
            _ => None,
        }
    }
}

/// The GOAWAY being written once the guard tripped.
#[derive(Debug)]
struct Goaway {
    frame: [u8; 17],
    written: usize,
}

/// An IO stream that watches HTTP/2 framing for floods (see the module).
#[derive(Debug)]
pub struct H2Guard<I> {
    inner: I,
    peer: SocketAddr,
    mode: Mode,
    inbound: Inbound,
    /// Outbound frame boundaries, so a GOAWAY goes between two frames.
    outbound: FrameReader,
    goaway: Option<Goaway>,
    /// A read waiting for the outbound frame in progress to end.
    read_waker: Option<Waker>,
}

impl<I> H2Guard<I> {
    /// Watches `inner`, the connection from `peer`.
    pub fn new(inner: I, peer: SocketAddr) -> H2Guard<I> {
        H2Guard {
            inner,
            peer,
            mode: Mode::Preface(0),
            inbound: Inbound::new(),
            outbound: FrameReader::default(),
            goaway: None,
            read_waker: None,
        }
    }

    /// Whether the guard ended the connection (a flood or a violation).
    pub fn tripped(&self) -> bool {
        self.inbound.verdict.is_some()
    }

    /// Looks at bytes just read.
    fn inspect(&mut self, mut bytes: &[u8]) {
        if let Mode::Preface(matched) = self.mode {
            let n = (PREFACE.len() - matched).min(bytes.len());
            if bytes[..n] != PREFACE[matched..matched + n] {
                self.mode = Mode::Pass;
                return;
            }
            self.mode = if matched + n == PREFACE.len() { Mode::Frames } else { Mode::Preface(matched + n) };
            bytes = &bytes[n..];
        }
        if self.mode == Mode::Frames {
            let inbound = &mut self.inbound;
            let mut frames = std::mem::take(&mut inbound.frames);
            frames.feed(bytes, |header, increment| inbound.on_frame(header, increment));
            inbound.frames = frames;
            if let Some(verdict) = inbound.verdict
                && self.goaway.is_none()
            {
                if verdict.code == ENHANCE_YOUR_CALM {
                    tracing::warn!(peer = %self.peer, flood = verdict.why, last_stream = inbound.last_stream,
                        "HTTP/2 flood; GOAWAY ENHANCE_YOUR_CALM");
                } else {
                    tracing::info!(peer = %self.peer, error = verdict.why, code = verdict.code,
                        "HTTP/2 protocol error; GOAWAY");
                }
                let mut frame = [0u8; 17];
                frame[2] = 8;
                frame[3] = GOAWAY;
                frame[9..13].copy_from_slice(&inbound.last_stream.to_be_bytes());
                frame[13..17].copy_from_slice(&verdict.code.to_be_bytes());
                self.goaway = Some(Goaway { frame, written: 0 });
            }
        }
    }
}

fn flood() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "HTTP/2 guard sent GOAWAY")
}

impl<I: AsyncWrite + Unpin> H2Guard<I> {
    /// Writes the pending GOAWAY once hyper is between frames. Ready(Ok)
    /// when it is written and flushed.
    fn poll_goaway(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(goaway) = self.goaway.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        if goaway.written < goaway.frame.len() && !self.outbound.at_boundary() {
            // hyper is mid-frame: its next write finishes it and wakes us.
            self.read_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        while goaway.written < goaway.frame.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &goaway.frame[goaway.written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => goaway.written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncRead for H2Guard<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.goaway.is_some() {
            return this.poll_goaway(cx).map(|_| Err(flood()));
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll
            && this.mode != Mode::Pass
        {
            let filled = &buf.filled()[before..];
            if !filled.is_empty() {
                this.inspect(filled);
            }
            if this.goaway.is_some() {
                // Nothing past the flood reaches hyper.
                buf.set_filled(before);
                return this.poll_goaway(cx).map(|_| Err(flood()));
            }
        }
        poll
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for H2Guard<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.goaway.is_some() {
            if this.outbound.at_boundary() {
                return this.poll_goaway(cx).map(|_| Err(flood()));
            }
            // Finish hyper's frame in progress, no further.
            let rest = this.outbound.skip.max(1).min(buf.len());
            let poll = Pin::new(&mut this.inner).poll_write(cx, &buf[..rest]);
            if let Poll::Ready(Ok(n)) = poll {
                this.outbound.feed(&buf[..n], |_, _| {});
                if this.outbound.at_boundary()
                    && let Some(waker) = this.read_waker.take()
                {
                    waker.wake();
                }
            }
            return poll;
        }
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            match this.mode {
                Mode::Frames => this.outbound.feed(&buf[..n], |_, _| {}),
                // Bytes out before the preface was seen: not HTTP/2 as we
                // know it; stop watching.
                Mode::Preface(_) => this.mode = Mode::Pass,
                Mode::Pass => {}
            }
        }
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.mode == Mode::Pass {
            // Not HTTP/2: no frame to keep whole, no GOAWAY to place.
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        // Through poll_write, so every byte out is framed.
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &**b);
        Pin::new(this).poll_write(cx, first)
    }

    /// Vectored once the connection is known not to be HTTP/2. hyper's
    /// HTTP/1 asks once, when it builds the connection, which is after the
    /// first bytes were read (so the mode is known): without vectored
    /// writes it copies every body chunk into one buffer of its own, which
    /// grows to the largest chunk (from an HTTP/2 origin, or another
    /// body, as large as it sends them) and keeps that size for the
    /// connection's life.
    fn is_write_vectored(&self) -> bool {
        self.mode == Mode::Pass && self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    /// Feeds `bytes` in `chunk`-sized reads through a guard; returns what
    /// hyper would have read and whether the guard tripped.
    async fn through(bytes: Vec<u8>, chunk: usize) -> (Vec<u8>, bool, Vec<u8>) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let writer = tokio::spawn(async move {
            for piece in bytes.chunks(chunk) {
                if client_write.write_all(piece).await.is_err() {
                    break;
                }
            }
            let _ = client_write.shutdown().await;
        });
        let mut guard = H2Guard::new(server, peer());
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match guard.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        let tripped = guard.tripped();
        drop(guard);
        writer.abort();
        let mut back = Vec::new();
        let _ = client_read.read_to_end(&mut back).await;
        (seen, tripped, back)
    }

    fn h2_with(frames: impl IntoIterator<Item = Vec<u8>>) -> Vec<u8> {
        let mut out = PREFACE.to_vec();
        out.extend(frame(SETTINGS, 0, 0, &[]));
        for f in frames {
            out.extend(f);
        }
        out
    }

    #[tokio::test]
    async fn ordinary_traffic_passes_byte_for_byte() {
        let mut frames = vec![frame(HEADERS, 0x4, 1, b"hpack"), frame(DATA, END_STREAM, 1, b"body")];
        frames.push(frame(PING, 0, 0, &[0; 8]));
        frames.push(frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]));
        let bytes = h2_with(frames);
        for chunk in [1, 3, 9, 4096] {
            let (seen, tripped, back) = through(bytes.clone(), chunk).await;
            assert_eq!(seen, bytes, "chunk {chunk}");
            assert!(!tripped && back.is_empty());
        }
    }

    #[tokio::test]
    async fn http1_is_not_watched() {
        let mut bytes = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        // Looks like a flood of RST_STREAMs if it were parsed as frames.
        for _ in 0..5000 {
            bytes.extend(frame(RST_STREAM, 0, 1, &[0, 0, 0, 8]));
        }
        let (seen, tripped, _) = through(bytes.clone(), 4096).await;
        assert_eq!(seen, bytes);
        assert!(!tripped);
    }

    /// hyper's HTTP/1 copies every body chunk into a buffer of its own
    /// (which grows to the largest chunk and stays) unless the stream is
    /// vectored: once the first bytes are not the preface the guard must
    /// say it is, and pass vectored writes through; for HTTP/2 it must not.
    #[tokio::test]
    async fn http1_gets_vectored_writes_http2_does_not() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for (first, vectored) in [(&b"GET / HTTP/1.1\r\n\r\n"[..], true), (&PREFACE[..], false)] {
            let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (server, peer) = listener.accept().await.unwrap();
            let mut guard = H2Guard::new(server, peer);
            assert!(!guard.is_write_vectored(), "not known yet");
            client.write_all(first).await.unwrap();
            let mut buf = vec![0u8; first.len()];
            guard.read_exact(&mut buf).await.unwrap();
            assert_eq!(guard.is_write_vectored(), vectored, "{:?}", String::from_utf8_lossy(first));
            let parts = [std::io::IoSlice::new(b"HTTP/1.1 200 OK\r\n"), std::io::IoSlice::new(b"\r\n")];
            let n = guard.write_vectored(&parts).await.unwrap();
            // Vectored: both parts in one write; not: the first only.
            assert_eq!(n, if vectored { 19 } else { 17 });
            drop(guard);
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            assert_eq!(back.len(), n);
        }
    }

    async fn assert_trips(flood: impl Fn(u32) -> Vec<Vec<u8>>, what: &str) {
        let mut frames = Vec::new();
        for i in 0..(BURST + 500) {
            frames.extend(flood(i));
        }
        let (seen, tripped, back) = through(h2_with(frames), 1000).await;
        assert!(tripped, "{what}");
        assert!(seen.len() < 200_000, "{what}: hyper read {} bytes before the trip", seen.len());
        // The client gets GOAWAY ENHANCE_YOUR_CALM.
        assert_eq!(back.len(), 17, "{what}: {back:?}");
        assert_eq!(back[3], 0x7);
        assert_eq!(u32::from_be_bytes([back[13], back[14], back[15], back[16]]), ENHANCE_YOUR_CALM);
    }

    #[tokio::test]
    async fn floods_trip_the_guard() {
        tokio::time::pause();
        assert_trips(
            |i| {
                let id = 2 * i + 1;
                vec![frame(HEADERS, 0x4, id, b"x"), frame(RST_STREAM, 0, id, &[0, 0, 0, 8])]
            },
            "rapid reset",
        )
        .await;
        assert_trips(|_| vec![frame(DATA, 0, 1, &[])], "empty DATA").await;
        assert_trips(|_| vec![frame(CONTINUATION, 0, 1, b"x")], "CONTINUATION").await;
        assert_trips(|_| vec![frame(PING, 0, 0, &[0; 8])], "PING").await;
        assert_trips(|_| vec![frame(SETTINGS, 0, 0, &[])], "SETTINGS").await;
        assert_trips(|_| vec![frame(WINDOW_UPDATE, 0, 0, &[0; 4])], "zero WINDOW_UPDATE").await;
        assert_trips(|_| vec![frame(PRIORITY, 0, 3, &[0, 0, 0, 1, 16])], "PRIORITY").await;
    }

    #[tokio::test]
    async fn goaway_names_the_last_stream_opened() {
        tokio::time::pause();
        let mut frames = vec![frame(HEADERS, 0x4, 7, b"x")];
        frames.extend((0..=BURST).map(|_| frame(PING, 0, 0, &[0; 8])));
        let (_, tripped, back) = through(h2_with(frames), 4096).await;
        assert!(tripped);
        assert_eq!(u32::from_be_bytes([back[9], back[10], back[11], back[12]]), 7);
    }

    #[tokio::test]
    async fn a_steady_trickle_is_not_a_flood() {
        tokio::time::pause();
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut guard = H2Guard::new(server, peer());
        let (_, mut write) = tokio::io::split(client);
        let mut bytes = h2_with([]);
        write.write_all(&bytes).await.unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let _ = guard.read(&mut buf).await.unwrap();
        // 3 × BURST pings, at half the refill rate.
        for _ in 0..(3 * BURST) {
            bytes = frame(PING, 0, 0, &[0; 8]);
            write.write_all(&bytes).await.unwrap();
            let _ = guard.read(&mut buf).await.unwrap();
            tokio::time::advance(std::time::Duration::from_millis(u64::from(2000 / REFILL_PER_SEC))).await;
        }
        assert!(!guard.tripped());
    }

    /// The GOAWAY code the guard sent, if any.
    fn goaway_code(back: &[u8]) -> Option<u32> {
        (back.len() == 17 && back[3] == GOAWAY)
            .then(|| u32::from_be_bytes([back[13], back[14], back[15], back[16]]))
    }

    #[tokio::test]
    async fn a_control_frame_of_a_bad_size_is_refused_before_its_payload() {
        // Declared 9 bytes of SETTINGS, 8 sent: h2 would wait for the ninth.
        let mut bytes = h2_with([]);
        bytes.extend_from_slice(&[0, 0, 9, SETTINGS, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[0; 8]);
        let (_, tripped, back) = through(bytes, 4096).await;
        assert!(tripped);
        assert_eq!(goaway_code(&back), Some(FRAME_SIZE_ERROR));
        for bad in
            [frame(PING, 0, 0, &[0; 6]), frame(WINDOW_UPDATE, 0, 0, &[0; 3]), frame(SETTINGS, ACK, 0, &[0])]
        {
            let (_, _, back) = through(h2_with([bad.clone()]), 4096).await;
            assert_eq!(goaway_code(&back), Some(FRAME_SIZE_ERROR), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn frames_on_a_stream_the_client_ended_are_a_connection_error() {
        for after in [frame(DATA, END_STREAM, 1, b"late"), frame(HEADERS, 0x5, 1, b"x")] {
            let frames = [frame(HEADERS, 0x5, 1, b"x"), after.clone()];
            let (_, _, back) = through(h2_with(frames), 4096).await;
            assert_eq!(goaway_code(&back), Some(STREAM_CLOSED), "{after:?}");
        }
        // After the client's own reset too; WINDOW_UPDATE and PRIORITY stay
        // allowed, and so are trailers on a stream still open.
        let frames =
            [frame(HEADERS, 0x4, 1, b"x"), frame(RST_STREAM, 0, 1, &[0, 0, 0, 8]), frame(DATA, 0, 1, b"x")];
        let (_, _, back) = through(h2_with(frames), 4096).await;
        assert_eq!(goaway_code(&back), Some(STREAM_CLOSED));
        let fine = [
            frame(HEADERS, 0x4, 1, b"x"),
            frame(DATA, 0, 1, b"body"),
            frame(HEADERS, 0x5, 1, b"trailers"),
            frame(WINDOW_UPDATE, 0, 1, &[0, 0, 1, 0]),
            frame(PRIORITY, 0, 1, &[0, 0, 0, 0, 16]),
        ];
        let (_, tripped, back) = through(h2_with(fine), 4096).await;
        assert!(!tripped && back.is_empty());
    }

    #[test]
    fn frame_reader_finds_headers_split_anywhere() {
        let bytes = [frame(DATA, 0, 1, b"hello"), frame(WINDOW_UPDATE, 0, 3, &[0x80, 0, 1, 2])].concat();
        let mut reader = FrameReader::default();
        let mut seen = Vec::new();
        for b in &bytes {
            reader.feed(std::slice::from_ref(b), |h, inc| seen.push((h.kind, h.stream, h.len, inc)));
        }
        assert_eq!(
            seen,
            vec![(DATA, 1, 5, None), (WINDOW_UPDATE, 3, 4, None), (WINDOW_UPDATE, 3, 4, Some(0x102))]
        );
        assert!(reader.at_boundary());
    }
}
