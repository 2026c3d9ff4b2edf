//! Limits and shutdown: slow clients are cut off, oversized heads get 431,
//! idle connections close, and a graceful shutdown lets in-flight responses
//! finish (and ends them when the grace period is over).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use consentry::server::Stopped;
use http::StatusCode;
use http_body_util::BodyExt as _;
use tokio::net::TcpStream;

/// An origin whose `/slow` sends `part1`, waits for a signal, then `part2`.
async fn slow_origin(release: tokio::sync::watch::Receiver<bool>) -> Origin {
    origin()
        .route_fn("/slow", move |_| {
            let mut release = release.clone();
            async move {
                let stream = async_stream(move |tx| async move {
                    let _ = tx.send(Bytes::from_static(b"part1")).await;
                    let _ = release.wait_for(|go| *go).await;
                    let _ = tx.send(Bytes::from_static(b"part2")).await;
                });
                http::Response::new(stream)
            }
        })
        .run()
        .await
}

/// A body fed by a task through a channel.
fn async_stream<F, Fut>(f: F) -> consentry::body::Body
where
    F: FnOnce(tokio::sync::mpsc::Sender<Bytes>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    tokio::spawn(f(tx));
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (Ok::<_, std::convert::Infallible>(http_body::Frame::data(bytes)), rx))
    });
    consentry::body::boxed(http_body_util::StreamBody::new(frames))
}

/// Checks the 408 a slow head gets: the whole answer, then the close.
fn assert_408(answer: &str) {
    assert!(answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answer}");
    let head = answer.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(head.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(head.contains("\r\ncontent-type: text/plain; charset=utf-8\r\n"), "{answer}");
    assert!(answer.ends_with("408 Request Timeout: the request head did not arrive in time\n"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
}

#[tokio::test]
async fn a_slow_header_client_gets_408_then_a_close() {
    within(async {
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).limit("header_read_timeout", "\"300ms\"").run().await;
        let mut conn = raw(proxy.http).await;
        let started = std::time::Instant::now();
        // Half a request head, then nothing (slowloris).
        conn.send(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: ")).await;
        // Returns only because the proxy closes the connection.
        let answer = conn.read_to_close().await;
        let took = started.elapsed();
        assert_408(&answer);
        assert!(took >= Duration::from_millis(290), "answered after {took:?}");
        assert!(took < Duration::from_millis(1300), "hyper's backstop, not the 408, ended it: {took:?}");
    })
    .await;
}

#[tokio::test]
async fn a_slow_second_head_on_a_keep_alive_connection_gets_408() {
    within(async {
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).limit("header_read_timeout", "\"300ms\"").run().await;
        let mut conn = raw(proxy.http).await;
        conn.send(format!("GET /echo HTTP/1.1\r\nHost: {HOST}\r\n\r\n")).await;
        let first = conn.read_response().await;
        assert!(first.starts_with("HTTP/1.1 200 "), "{first}");
        // Idle for most of the limit: the next head's deadline starts after
        // the response, and a blank line starts no head.
        tokio::time::sleep(Duration::from_millis(150)).await;
        conn.send(format!("\r\nGET /echo HTTP/1.1\r\nHost: {HOST}\r\n")).await;
        let answer = conn.read_to_close().await;
        assert_408(&answer);
    })
    .await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_without_a_word() {
    within(async {
        let origin = demo_origin().await;
        let proxy = proxy()
            .origin(&origin)
            .limit("header_read_timeout", "\"300ms\"")
            .limit("idle_timeout", "\"120s\"")
            .run()
            .await;
        // A connection that never says anything.
        let mut silent = raw(proxy.http).await;
        assert_eq!(silent.read_to_close().await, "");
        // One that made a request, then went quiet.
        let mut conn = raw(proxy.http).await;
        conn.send(format!("GET /echo HTTP/1.1\r\nHost: {HOST}\r\n\r\n")).await;
        let first = conn.read_response().await;
        assert!(first.starts_with("HTTP/1.1 200 "), "{first}");
        let started = std::time::Instant::now();
        assert_eq!(conn.read_to_close().await, "");
        assert!(started.elapsed() < Duration::from_millis(1300), "closed after {:?}", started.elapsed());
    })
    .await;
}

#[tokio::test]
async fn a_slow_head_that_completes_in_time_is_served() {
    within(async {
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).limit("header_read_timeout", "\"2s\"").run().await;
        let mut conn = raw(proxy.http).await;
        for piece in ["GET /echo HTTP/1.1\r\n", &format!("Host: {HOST}\r\n"), "X-Slow: 1\r\n", "\r\n"] {
            conn.send(piece).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let first = conn.read_response().await;
        assert!(first.starts_with("HTTP/1.1 200 "), "{first}");
        // The same again on the kept-alive connection: a fresh deadline.
        for piece in ["GET /echo HTTP/1.1\r\n", &format!("Host: {HOST}\r\n"), "Connection: close\r\n", "\r\n"]
        {
            conn.send(piece).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let second = conn.read_to_close().await;
        assert!(second.starts_with("HTTP/1.1 200 "), "{second}");
    })
    .await;
}

#[tokio::test]
async fn a_slow_header_client_over_tls_gets_408_then_a_close() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    within(async {
        let cert = test_cert(&[HOST]);
        let origin = demo_origin().await;
        let proxy =
            proxy().origin(&origin).https(&[&cert]).limit("header_read_timeout", "\"300ms\"").run().await;
        let mut tls = tls_connect(proxy.https.unwrap(), HOST, &[&cert], &[b"http/1.1"]).await;
        tls.write_all(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: ").as_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        let mut out = Vec::new();
        // The proxy ends with close_notify: a clean end of stream.
        tls.read_to_end(&mut out).await.unwrap();
        assert_408(&String::from_utf8_lossy(&out));
    })
    .await;
}

#[tokio::test]
async fn a_silent_tls_client_is_cut_off() {
    within(async {
        let cert = test_cert(&[HOST]);
        let origin = demo_origin().await;
        let proxy =
            proxy().origin(&origin).https(&[&cert]).limit("header_read_timeout", "\"300ms\"").run().await;
        // Connects and never starts the handshake.
        let conn = raw(proxy.https.unwrap()).await;
        let mut conn = conn;
        assert_eq!(conn.read_to_close().await, "");
    })
    .await;
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    within(async {
        let origin = demo_origin().await;
        let proxy = proxy()
            .origin(&origin)
            .limit("idle_timeout", "\"200ms\"")
            .limit("header_read_timeout", "\"120s\"")
            .run()
            .await;
        let mut conn = raw(proxy.http).await;
        conn.send(format!("GET /echo HTTP/1.1\r\nHost: {HOST}\r\n\r\n")).await;
        // One response, then the keep-alive connection idles out.
        let answer = conn.read_to_close().await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
        assert_eq!(answer.matches("HTTP/1.1 200").count(), 1);
    })
    .await;
}

#[tokio::test]
async fn an_oversized_header_section_gets_431() {
    within(async {
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).limit("max_header_bytes", "8192").run().await;
        let mut conn = raw(proxy.http).await;
        let big = "x".repeat(10_000);
        conn.send(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {big}\r\n\r\n")).await;
        let answer = conn.read_to_close().await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");

        // Just under the limit is fine.
        let mut client = proxy.http1().await;
        let fits = "y".repeat(6_000);
        let request = client
            .request(http::Method::GET, "/echo")
            .header("x-fits", &fits)
            .body(consentry::body::empty())
            .unwrap();
        assert_eq!(client.fetch(request).await.echo().one("x-fits"), fits);
    })
    .await;
}

#[tokio::test]
async fn too_many_header_fields_get_431() {
    within(async {
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).limit("max_headers", "20").run().await;
        let mut conn = raw(proxy.http).await;
        let fields: String = (0..30).map(|i| format!("X-Field-{i}: {i}\r\n")).collect();
        conn.send(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n{fields}\r\n")).await;
        let answer = conn.read_to_close().await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");

        let mut conn = raw(proxy.http).await;
        let fields: String = (0..10).map(|i| format!("X-Field-{i}: {i}\r\n")).collect();
        conn.send(format!("GET /echo HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n{fields}\r\n")).await;
        assert!(conn.read_to_close().await.starts_with("HTTP/1.1 200 "));
    })
    .await;
}

#[tokio::test]
async fn graceful_shutdown_lets_a_slow_response_finish() {
    within(async {
        let (release, released) = tokio::sync::watch::channel(false);
        let origin = slow_origin(released).await;
        let mut proxy = proxy().origin(&origin).limit("shutdown_grace", "\"30s\"").run().await;
        let http = proxy.http;
        let mut client = proxy.http1().await;
        let request = client.request(http::Method::GET, "/slow").body(consentry::body::empty()).unwrap();
        let response = client.send(request).await;
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "part1");

        // Shutdown starts while the response is half sent...
        let running = proxy.running.take().unwrap();
        let shutdown = tokio::spawn(running.shutdown());
        // ...the listener closes (new clients are refused)...
        loop {
            if TcpStream::connect(http).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!shutdown.is_finished(), "shutdown waits for the in-flight response");
        // ...and the in-flight response still completes.
        release.send(true).unwrap();
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(rest, "part2");
        assert_eq!(shutdown.await.unwrap(), Stopped::Drained);
    })
    .await;
}

#[tokio::test]
async fn shutdown_closes_what_is_left_when_the_grace_period_ends() {
    within(async {
        let (_release, released) = tokio::sync::watch::channel(false);
        let origin = slow_origin(released).await;
        let mut proxy = proxy().origin(&origin).run().await;
        let mut client = proxy.http1().await;
        let request = client.request(http::Method::GET, "/slow").body(consentry::body::empty()).unwrap();
        let mut body = client.send(request).await.into_body();
        assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "part1");
        let running = proxy.running.take().unwrap();
        assert_eq!(running.shutdown_within(Duration::from_millis(200)).await, Stopped::GraceExpired);
        // The stuck response is cut, not left hanging.
        assert!(body.collect().await.is_err());
    })
    .await;
}

#[tokio::test]
async fn idle_keep_alive_connections_do_not_hold_up_shutdown() {
    within(async {
        let origin = demo_origin().await;
        let mut proxy = proxy().origin(&origin).limit("shutdown_grace", "\"30s\"").run().await;
        let mut client = proxy.http1().await;
        assert_eq!(client.get("/echo").await.status, StatusCode::OK);
        // The connection stays open and idle; draining closes it at once.
        assert_eq!(proxy.shutdown().await, Stopped::Drained);
    })
    .await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    within(async {
        let arrived = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = arrived.clone();
        let origin = origin()
            .route_fn("/probe", move |_| {
                seen.store(true, std::sync::atomic::Ordering::SeqCst);
                async { http::Response::new(consentry::body::full("probe")) }
            })
            .run()
            .await;
        let proxy = proxy().origin(&origin).limit("max_connections", "1").run().await;
        let mut first = proxy.http1().await;
        assert_eq!(first.get("/echo").await.status, StatusCode::OK);

        // A second client: the kernel accepts its connection, the proxy does not.
        let mut second = raw(proxy.http).await;
        second.send(format!("GET /probe HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n")).await;
        for _ in 0..3 {
            assert_eq!(first.get("/echo").await.status, StatusCode::OK);
        }
        assert!(!arrived.load(std::sync::atomic::Ordering::SeqCst), "served beyond max_connections");

        // The first client leaves; the second is served.
        drop(first);
        let answer = second.read_to_close().await;
        assert!(answer.starts_with("HTTP/1.1 200 ") && answer.ends_with("probe"), "{answer}");
    })
    .await;
}
