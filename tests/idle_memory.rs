//! Memory per idle keep-alive connection (issue 8), measured on the real
//! binary (its allocator, its runtime): the growth of its RSS with 1,000
//! HTTP/1.1 connections that each made one request and stay open.
//!
//! The goal is 16 KB (BENCHMARKS.md says where it stands and why); this
//! test only catches a bad regression: the connection was 52 KB before the
//! buffers and futures were trimmed (heap profile in BENCHMARKS.md), about
//! 27 KB after. Linux only (reads `/proc/PID/status`); no timing.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 1_000;
/// Generous: well above the ~27 KB measured, well below the 52 KB before.
const MAX_KB_PER_CONNECTION: f64 = 40.0;

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
