//! Memory per connection and per stream (issue 8), measured on the real
//! binary (its allocator, its runtime) from its RSS. Linux only (reads
//! `/proc/PID/status`); nothing is timed.
//!
//! - idle: 1,000 HTTP/1.1 connections that each made one request and stay
//!   open. The test holds issue 8's goal, 16 KB: 52 KB each before the
//!   buffers and futures were trimmed (heap profile in BENCHMARKS.md),
//!   22.5 KB after, 6.1 KB since the patched hyper (vendor/hyper) drops an
//!   idle connection's read buffer and no longer starts its head buffer at
//!   8 KB (22.5 KB again with the patch taken out).
//! - slow readers: 16, then 144 clients reading a large body slowly, over
//!   HTTP/1.1 and over HTTP/2 (prior knowledge, browser-sized windows); the
//!   tests hold issue 8's goal of 128 KB per in-flight stream (HTTP/2:
//!   about 60 KB measured). About 2 MB
//!   each at first (hyper copied body chunks into a buffer that grew to the
//!   largest chunk, origin reads of up to 400 KB), then about 300 KB (64 KiB
//!   reads, and a write queue bounded only by the 64 KiB head limit), about
//!   40 KB since the patched hyper queues at most 16 KiB to write and
//!   reads 16 KiB at most while earlier chunks are still held (a fast
//!   stream's reads grow to 64 KiB).

mod common;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 1_000;
/// Issue 8's goal; about 6 KB measured.
const MAX_KB_PER_CONNECTION: f64 = 16.0;

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One request on a new keep-alive connection; the connection is returned
/// open once the whole response is in.
async fn one_request(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", common::HOST).as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"hello") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the response: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200 "), "{}", String::from_utf8_lossy(&got));
    stream
}

#[tokio::test]
async fn an_idle_keep_alive_connection_costs_the_proxy_little_memory() {
    if rss_kb(std::process::id()).is_none() {
        println!("skipped: no /proc/PID/status on this system");
        return;
    }
    common::within(async {
        let origin = common::origin().route("/", "hello").run().await;
        let proxy = common::proxy().origin(&origin).limit("idle_timeout", "\"300s\"").limit("header_read_timeout", "\"300s\"").spawn_binary();
        let pid = proxy.pid();
        // Warm up (pools, lazily built state, allocator arenas), then settle.
        for _ in 0..50 {
            drop(one_request(proxy.http).await);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = rss_kb(pid).unwrap();
        let mut open = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            open.push(one_request(proxy.http).await);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kb(pid).unwrap();
        #[allow(clippy::cast_precision_loss)]
        let per = after.saturating_sub(before) as f64 / CONNECTIONS as f64;
        println!("proxy RSS {before} KB before, {after} KB with {CONNECTIONS} idle connections: {per:.1} KB each");
        assert!(
            per <= MAX_KB_PER_CONNECTION,
            "{per:.1} KB per idle connection ({before} KB -> {after} KB), more than {MAX_KB_PER_CONNECTION} KB"
        );
        // They are still served.
        let mut stream = open.pop().unwrap();
        stream.write_all(format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", common::HOST).as_bytes()).await.unwrap();
        let mut buf = [0u8; 4096];
        assert!(stream.read(&mut buf).await.unwrap() > 0);
    })
    .await;
}

/// Slow readers in the first wave, and in the second: 128 streams between
/// the two, so that the allocator's page-sized noise (about 1-3 MB of RSS
/// either way) moves the per-stream figure by 10-20 KB, not the 30-90 KB it
/// did across 32 streams (CI once measured 160 KB there).
const SLOW_READERS: [usize; 2] = [16, 144];
/// Issue 8's goal; about 40 KB measured (debug build), 300 KB with the
/// patched hyper's read and write-queue bounds taken out (vendor/hyper).
const MAX_KB_PER_STREAM: u64 = 128;

/// 32 MiB of zeros in 64 KiB frames, as fast as the proxy takes them.
fn big_body() -> consentry::body::Body {
    let frames = futures_util::stream::iter(
        (0..512).map(|_| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![0u8; 64 * 1024])))),
    );
    consentry::body::boxed(http_body_util::StreamBody::new(frames))
}

/// How a slow reader talks to the proxy.
#[derive(Clone, Copy, Debug)]
enum Protocol {
    Http1,
    /// Prior knowledge on the plain port, with a browser's flow-control
    /// windows (Chrome: 6 MB per stream, 15 MB per connection), so the
    /// proxy's own send buffer is what bounds what it holds.
    Http2,
}

/// An HTTP/1.1 request for the big body, closing after it.
fn get_big() -> String {
    format!("GET /big HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", common::HOST)
}

/// One slow download of /big: 16 KiB every 10 ms, far slower than the
/// origin sends it, until the body ends or the task is aborted.
async fn slow_download(proxy: std::net::SocketAddr, protocol: Protocol) {
    let tcp = TcpStream::connect(proxy).await.unwrap();
    match protocol {
        Protocol::Http1 => {
            let mut stream = tcp;
            stream.write_all(get_big().as_bytes()).await.unwrap();
            let mut buf = vec![0u8; 16 * 1024];
            let n = stream.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200 "), "{}", String::from_utf8_lossy(&buf[..n]));
            while let Ok(1..) = stream.read(&mut buf).await {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Protocol::Http2 => {
            let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .initial_stream_window_size(6 * 1024 * 1024)
                .initial_connection_window_size(15 * 1024 * 1024)
                .handshake(TokioIo::new(tcp))
                .await
                .unwrap();
            tokio::spawn(conn);
            let request = Request::get(format!("http://{}/big", common::HOST))
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let mut body = response.into_body();
            while let Some(Ok(_)) = body.frame().await {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// The proxy's peak RSS over 3 s while `readers` clients each download the
/// big body slowly.
async fn peak_rss_with_slow_readers(proxy: &common::Binary, readers: usize, protocol: Protocol) -> u64 {
    let tasks: Vec<_> = (0..readers).map(|_| tokio::spawn(slow_download(proxy.http, protocol))).collect();
    let mut peak = 0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        peak = peak.max(rss_kb(proxy.pid()).unwrap());
    }
    for task in &tasks {
        task.abort();
    }
    peak
}

/// Per stream is the slope between two waves of slow readers (16, then
/// 144), not the first wave's peak over the RSS before it: memory the
/// allocator kept from earlier streams is reused by the first readers of
/// each wave, which made "peak minus before" depend on what ran before.
#[tokio::test]
async fn a_slow_http1_reader_costs_the_proxy_a_bounded_amount_of_memory() {
    slow_readers_cost_a_bounded_amount_of_memory(Protocol::Http1).await;
}

#[tokio::test]
async fn a_slow_http2_reader_costs_the_proxy_a_bounded_amount_of_memory() {
    slow_readers_cost_a_bounded_amount_of_memory(Protocol::Http2).await;
}

async fn slow_readers_cost_a_bounded_amount_of_memory(protocol: Protocol) {
    if rss_kb(std::process::id()).is_none() {
        println!("skipped: no /proc/PID/status on this system");
        return;
    }
    common::within(async {
        let origin = common::origin()
            .route_fn("/big", |_| async {
                let mut response = Response::new(big_body());
                response.headers_mut().insert("content-type", "application/octet-stream".parse().unwrap());
                response
            })
            .run()
            .await;
        // One worker: one allocator heap, as in the benchmark (and less
        // room for the figure to wander between runs).
        let (dir, path) = common::proxy().origin(&origin).write();
        let proxy =
            common::Binary::start(&["--workers", "1", "run", "--config", path.to_str().unwrap()], dir);
        // Warm up with one download at full speed.
        let mut stream = TcpStream::connect(proxy.http).await.unwrap();
        stream.write_all(get_big().as_bytes()).await.unwrap();
        let mut all = Vec::new();
        stream.read_to_end(&mut all).await.unwrap();
        assert!(all.len() > 32 * 1024 * 1024, "the whole body came through: {} bytes", all.len());
        drop(all);
        let [few, many] = SLOW_READERS;
        let first = peak_rss_with_slow_readers(&proxy, few, protocol).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let second = peak_rss_with_slow_readers(&proxy, many, protocol).await;
        let per = second.saturating_sub(first) / (many - few) as u64;
        println!(
            "{protocol:?}: proxy RSS peak {first} KB with {few} slow readers, {second} KB with {many}: {per} KB each"
        );
        assert!(
            per <= MAX_KB_PER_STREAM,
            "{protocol:?}: {per} KB per slow stream ({first} KB with {few} readers, {second} KB with {many}), more than {MAX_KB_PER_STREAM} KB"
        );
    })
    .await;
}
