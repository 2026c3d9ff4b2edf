//! A raw HTTP/2 client over TLS, for frames no well-behaved client sends.
//!
//! Frames are written byte by byte as the test says; header blocks are
//! encoded here as HPACK "literal without indexing, new name" (so any name
//! or value, however malformed, goes out as given) and the server's header
//! blocks are decoded with `loona-hpack` so the dynamic table stays in step.
//! The `expect_*` helpers accept what h2spec accepts: a connection error is
//! GOAWAY with one of the codes *or* the connection closing; a stream error
//! is RST_STREAM with one of the codes, or a connection error.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

pub const NO_ERROR: u32 = 0x0;
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const INTERNAL_ERROR: u32 = 0x2;
pub const FLOW_CONTROL_ERROR: u32 = 0x3;
pub const SETTINGS_TIMEOUT: u32 = 0x4;
pub const STREAM_CLOSED: u32 = 0x5;
pub const FRAME_SIZE_ERROR: u32 = 0x6;
pub const REFUSED_STREAM: u32 = 0x7;
pub const CANCEL: u32 = 0x8;
pub const COMPRESSION_ERROR: u32 = 0x9;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long a verdict may take to arrive.
pub const WAIT: Duration = Duration::from_secs(10);

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a GOAWAY or RST_STREAM.
    pub fn code(&self) -> Option<u32> {
        let at = match self.kind {
            GOAWAY => 4,
            RST_STREAM => 0,
            _ => return None,
        };
        self.payload.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// The bytes of a frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK integer with an `n`-bit prefix whose other bits are `first`.
pub fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// A header block of literal-without-indexing fields, names and values as
/// given (raw bytes, no Huffman).
pub fn encode(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        hpack_int(&mut out, 0, 7, name.len());
        out.extend_from_slice(name);
        hpack_int(&mut out, 0, 7, value.len());
        out.extend_from_slice(value);
    }
    out
}

/// The pseudo-headers of a request, then `extra`.
pub fn request<'a>(
    method: &'a str,
    authority: &'a str,
    path: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<u8> {
    let mut fields: Vec<(&[u8], &[u8])> = vec![
        (b":method", method.as_bytes()),
        (b":scheme", b"https"),
        (b":authority", authority.as_bytes()),
        (b":path", path.as_bytes()),
    ];
    fields.extend(extra.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
    encode(&fields)
}

/// How a connection ended, or what arrived.
#[derive(Debug)]
pub enum Event {
    Frame(Frame),
    Closed,
    Timeout,
}

/// A raw HTTP/2 connection over TLS.
pub struct Conn {
    pub tls: TlsStream<TcpStream>,
    buf: Vec<u8>,
    decoder: loona_hpack::Decoder<'static>,
    /// The server's header block in progress (HEADERS + CONTINUATION).
    block: Option<(u32, Vec<u8>)>,
    /// The decoded fields of the last complete header block the server sent.
    pub last_headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The server's SETTINGS_MAX_FRAME_SIZE.
    pub max_frame_size: usize,
    /// The settings the server sent first.
    pub settings: Vec<(u16, u32)>,
}

impl Conn {
    /// TLS with ALPN h2, nothing HTTP/2 sent yet.
    pub async fn tls(
        addr: SocketAddr,
        server_name: &str,
        trust: &rustls_pki_types::CertificateDer<'static>,
    ) -> Conn {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(trust.clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(consentry::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let name = rustls_pki_types::ServerName::try_from(server_name.to_string()).unwrap();
        let tls = connector.connect(name, stream).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        Conn {
            tls,
            buf: Vec::new(),
            decoder: loona_hpack::Decoder::new(),
            block: None,
            last_headers: Vec::new(),
            max_frame_size: 16_384,
            settings: Vec::new(),
        }
    }

    /// TLS, preface, empty SETTINGS; waits for the server's SETTINGS (which
    /// it acknowledges) and the ACK of ours, as h2spec's handshake does.
    pub async fn open(
        addr: SocketAddr,
        server_name: &str,
        trust: &rustls_pki_types::CertificateDer<'static>,
    ) -> Conn {
        let mut conn = Conn::tls(addr, server_name, trust).await;
        conn.send(PREFACE).await;
        conn.send(&frame(SETTINGS, 0, 0, &[])).await;
        let (mut theirs, mut acked) = (false, false);
        while !(theirs && acked) {
            match conn.next(WAIT).await {
                Event::Frame(f) if f.kind == SETTINGS && f.flags & ACK == 0 => {
                    for s in f.payload.chunks(6).filter(|s| s.len() == 6) {
                        let (id, value) =
                            (u16::from_be_bytes([s[0], s[1]]), u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
                        if id == 5 {
                            conn.max_frame_size = value as usize;
                        }
                        conn.settings.push((id, value));
                    }
                    conn.send(&frame(SETTINGS, ACK, 0, &[])).await;
                    theirs = true;
                }
                Event::Frame(f) if f.kind == SETTINGS => acked = true,
                Event::Frame(_) => {}
                other => panic!("handshake: {other:?}"),
            }
        }
        conn
    }

    /// Writes bytes (errors ignored: the server may already have closed).
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.tls.write_all(bytes).await;
        let _ = self.tls.flush().await;
    }

    /// Writes one frame.
    pub async fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        self.send(&frame(kind, flags, stream, payload)).await;
    }

    /// HEADERS (END_HEADERS) with this block, `END_STREAM` if `end`.
    pub async fn headers(&mut self, stream: u32, block: &[u8], end: bool) {
        let flags = END_HEADERS | if end { END_STREAM } else { 0 };
        self.frame(HEADERS, flags, stream, block).await;
    }

    /// A GET of `/` on `authority`, ending the stream.
    pub async fn get(&mut self, stream: u32, authority: &str) {
        self.headers(stream, &request("GET", authority, "/", &[]), true).await;
    }

    /// The next frame, or how the connection ended, within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Event {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if self.buf.len() >= 9 {
                let len = (usize::from(self.buf[0]) << 16)
                    | (usize::from(self.buf[1]) << 8)
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let f = Frame {
                        kind: self.buf[3],
                        flags: self.buf[4],
                        stream: u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]])
                            & 0x7fff_ffff,
                        payload: self.buf[9..9 + len].to_vec(),
                    };
                    self.buf.drain(..9 + len);
                    self.track(&f);
                    return Event::Frame(f);
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline, self.tls.read(&mut chunk)).await {
                Err(_) => return Event::Timeout,
                Ok(Ok(0) | Err(_)) => return Event::Closed,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Keeps the HPACK decoder in step with the server's header blocks.
    fn track(&mut self, f: &Frame) {
        let fragment = match f.kind {
            HEADERS => {
                let mut p = &f.payload[..];
                let mut pad = 0;
                if f.flags & PADDED != 0 && !p.is_empty() {
                    pad = usize::from(p[0]);
                    p = &p[1..];
                }
                if f.flags & PRIORITY_FLAG != 0 && p.len() >= 5 {
                    p = &p[5..];
                }
                let p = &p[..p.len().saturating_sub(pad)];
                self.block = Some((f.stream, Vec::new()));
                p.to_vec()
            }
            CONTINUATION => f.payload.clone(),
            _ => return,
        };
        if let Some((_, block)) = self.block.as_mut() {
            block.extend_from_slice(&fragment);
        }
        if f.flags & END_HEADERS != 0
            && let Some((_, block)) = self.block.take()
        {
            self.last_headers = self.decoder.decode(&block).unwrap_or_default();
        }
    }

    /// The `:status` of the last header block the server sent.
    pub fn last_status(&self) -> Option<String> {
        self.last_headers
            .iter()
            .find(|(n, _)| n == b":status")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// Waits for a connection error: GOAWAY with one of `codes`, or close.
    /// `Err` says what came instead.
    pub async fn connection_error(&mut self, codes: &[u32]) -> Result<(), String> {
        loop {
            match self.next(WAIT).await {
                Event::Closed => return Ok(()),
                Event::Timeout => return Err("timeout".into()),
                Event::Frame(f) if f.kind == GOAWAY => {
                    return match f.code() {
                        Some(c) if codes.contains(&c) => Ok(()),
                        c => Err(format!("GOAWAY {c:?}")),
                    };
                }
                Event::Frame(_) => {}
            }
        }
    }

    /// Waits for a stream error on `stream`: RST_STREAM with one of
    /// `codes`, or a connection error with one of them (or a close).
    /// `Ok` says which it was.
    pub async fn stream_error(&mut self, stream: u32, codes: &[u32]) -> Result<String, String> {
        loop {
            match self.next(WAIT).await {
                Event::Closed => return Ok("connection closed".into()),
                Event::Timeout => return Err("timeout".into()),
                Event::Frame(f) if f.kind == GOAWAY || (f.kind == RST_STREAM && f.stream == stream) => {
                    let what = if f.kind == GOAWAY { "GOAWAY" } else { "RST_STREAM" };
                    return match f.code() {
                        Some(c) if codes.contains(&c) => Ok(format!("{what} 0x{c:x}")),
                        c => Err(format!("{what} code {c:?}")),
                    };
                }
                Event::Frame(f) if f.kind == HEADERS && f.stream == stream => {
                    return Err(format!("a response ({:?})", self.last_status()));
                }
                Event::Frame(_) => {}
            }
        }
    }

    /// Waits for a frame `accept` likes; `Err` on close, timeout or GOAWAY.
    pub async fn frame_where(&mut self, mut accept: impl FnMut(&Frame) -> bool) -> Result<Frame, String> {
        loop {
            match self.next(WAIT).await {
                Event::Frame(f) if accept(&f) => return Ok(f),
                Event::Frame(f) if f.kind == GOAWAY => return Err(format!("GOAWAY {:?}", f.code())),
                Event::Frame(_) => {}
                other => return Err(format!("{other:?}")),
            }
        }
    }

    /// Waits for the response HEADERS on `stream`.
    pub async fn response(&mut self, stream: u32) -> Result<String, String> {
        self.frame_where(|f| f.kind == HEADERS && f.stream == stream).await?;
        Ok(self.last_status().unwrap_or_default())
    }

    /// Waits for `stream` to end (END_STREAM on DATA or HEADERS).
    pub async fn stream_end(&mut self, stream: u32) -> Result<(), String> {
        self.frame_where(|f| {
            f.stream == stream && matches!(f.kind, DATA | HEADERS) && f.flags & END_STREAM != 0
        })
        .await
        .map(|_| ())
    }

    /// Waits for the PING ACK carrying `data`.
    pub async fn ping_ack(&mut self, data: &[u8; 8]) -> Result<(), String> {
        self.frame_where(|f| f.kind == PING && f.flags & ACK != 0 && f.payload == data).await.map(|_| ())
    }

    /// Whether the connection still answers: a PING is acknowledged.
    pub async fn alive(&mut self) -> bool {
        self.frame(PING, 0, 0, b"alive?!!").await;
        self.ping_ack(b"alive?!!").await.is_ok()
    }
}

/// An origin that counts the requests it receives (and answers 200 "ok").
pub struct Counting {
    pub origin: super::common::Origin,
    pub count: Arc<AtomicUsize>,
    /// The bodies it read, whole.
    pub bodies: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl Counting {
    pub fn seen(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

/// Starts a [`Counting`] origin.
pub async fn h2_counting_origin() -> Counting {
    use http_body_util::BodyExt as _;
    let count = Arc::new(AtomicUsize::new(0));
    let bodies: Arc<std::sync::Mutex<Vec<Vec<u8>>>> = Arc::default();
    let (c, b) = (count.clone(), bodies.clone());
    let origin = super::common::origin()
        .fallback_fn(move |request| {
            let (c, b) = (c.clone(), b.clone());
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                // Only a body that ended cleanly counts as received.
                if let Ok(body) = request.into_body().collect().await {
                    b.lock().unwrap().push(body.to_bytes().to_vec());
                }
                http::Response::new(consentry::body::full("ok"))
            }
        })
        .run()
        .await;
    Counting { origin, count, bodies }
}
