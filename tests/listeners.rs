//! The listeners' protocol choice (issue 2), besides the HTTP/2-over-TLS
//! round trip of `tests/tls.rs`: HTTPS clients that offer only
//! `http/1.1`, or no ALPN at all, get HTTP/1.1; the plain listener also
//! speaks HTTP/2 with prior knowledge (hyper-util's auto builder).

mod common;

use common::*;
use http::{Method, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};

async fn h1_over_tls(
    https: std::net::SocketAddr,
    cert: &TestCert,
    alpn: &[&[u8]],
) -> (Option<Vec<u8>>, Echo) {
    let tls = tls_connect(https, HOST, &[cert], alpn).await;
    let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let request = http::Request::builder()
        .method(Method::GET)
        .uri("/echo")
        .header("host", HOST)
        .body(consentry::body::empty())
        .unwrap();
    let response = read(sender.send_request(request).await.unwrap()).await;
    assert_eq!(response.status, StatusCode::OK);
    (negotiated, response.echo())
}

#[tokio::test]
async fn https_serves_http1_by_alpn_and_without_alpn() {
    within(async {
        let cert = test_cert(&[HOST]);
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).https(&[&cert]).run().await;
        let https = proxy.https.unwrap();

        let (negotiated, echo) = h1_over_tls(https, &cert, &[b"http/1.1"]).await;
        assert_eq!(negotiated.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(echo.one("host"), HOST);
        assert_eq!(echo.one("x-forwarded-proto"), "https");
        assert_eq!(echo.one("via"), "1.1 consentry");

        let (negotiated, echo) = h1_over_tls(https, &cert, &[]).await;
        assert_eq!(negotiated, None, "no ALPN offered, none chosen");
        assert_eq!(echo.one("x-forwarded-proto"), "https");
    })
    .await;
}

#[tokio::test]
async fn plain_http_speaks_h2_with_prior_knowledge() {
    within(async {
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).run().await;
        let stream = tokio::net::TcpStream::connect(proxy.http).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        let request = http::Request::builder()
            .method(Method::GET)
            .version(http::Version::HTTP_2)
            .uri(format!("http://{HOST}/echo"))
            .body(consentry::body::empty())
            .unwrap();
        let response = read(sender.send_request(request).await.unwrap()).await;
        assert_eq!(response.status, StatusCode::OK);
        let echo = response.echo();
        assert_eq!(echo.one("host"), HOST, ":authority becomes Host");
        assert_eq!(echo.one("via"), "2 consentry");
        assert_eq!(echo.one("x-forwarded-proto"), "http");
    })
    .await;
}

/// `[listen] h2_max_concurrent_streams` reaches the wire: with a limit of
/// 2, four concurrent requests on one HTTP/2 connection never have more
/// than two streams at the origin at once (the client queues the rest, as
/// the SETTINGS frame tells it to), and all four complete. Beyond the
/// limit the server refuses streams (`REFUSED_STREAM`), which is how a
/// client that ignores SETTINGS is held to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_max_concurrent_streams_is_advertised() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    within(async {
        let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (n, p) = (now.clone(), peak.clone());
        let origin = origin()
            .route_fn("/slow", move |_| {
                let (n, p) = (n.clone(), p.clone());
                async move {
                    let current = n.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(current, Ordering::SeqCst);
                    // Stay until a second stream is here too (or a while
                    // has passed), so the peak does not depend on timing;
                    // then a moment more, for any third one to show up.
                    let start = std::time::Instant::now();
                    while n.load(Ordering::SeqCst) < 2 && start.elapsed() < std::time::Duration::from_secs(10)
                    {
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    n.fetch_sub(1, Ordering::SeqCst);
                    http::Response::new(consentry::body::full("done"))
                }
            })
            .run()
            .await;
        let cert = test_cert(&[HOST]);
        let proxy =
            proxy().origin(&origin).https(&[&cert]).listen("h2_max_concurrent_streams = 2").run().await;
        let tls = tls_connect(proxy.https.unwrap(), HOST, &[&cert], &[b"h2"]).await;
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn);
        // One request first, so the client has the server's SETTINGS (until
        // then it may open streams beyond the limit, which the server
        // refuses with REFUSED_STREAM).
        let mut first = sender.clone();
        first.ready().await.unwrap();
        let request = http::Request::builder()
            .version(http::Version::HTTP_2)
            .uri(format!("https://{HOST}/echo"))
            .body(consentry::body::empty())
            .unwrap();
        assert_eq!(read(first.send_request(request).await.unwrap()).await.status, StatusCode::OK);
        let requests: Vec<_> = (0..4)
            .map(|_| {
                let mut sender = sender.clone();
                tokio::spawn(async move {
                    let request = http::Request::builder()
                        .version(http::Version::HTTP_2)
                        .uri(format!("https://{HOST}/slow"))
                        .body(consentry::body::empty())
                        .unwrap();
                    sender.ready().await.unwrap();
                    read(sender.send_request(request).await.unwrap()).await
                })
            })
            .collect();
        for request in requests {
            let response = request.await.unwrap();
            assert_eq!((response.status, response.text().as_str()), (StatusCode::OK, "done"));
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2, "at most the advertised two streams at once");
    })
    .await;
}

/// ALPN `h2` settles the protocol: a client that then sends something
/// other than the HTTP/2 preface gets HTTP/2's answer (SETTINGS, maybe
/// GOAWAY PROTOCOL_ERROR, then a close), never an HTTP/1 response on a
/// connection both sides agreed is HTTP/2 (h2spec 3.5/2).
#[tokio::test]
async fn alpn_h2_with_a_bad_preface_gets_no_http1_answer() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    within(async {
        let cert = test_cert(&[HOST]);
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).https(&[&cert]).run().await;
        let https = proxy.https.unwrap();

        let mut tls = tls_connect(https, HOST, &[&cert], &[b"h2"]).await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        tls.write_all(b"INVALID CONNECTION PREFACE\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        // Read to the close (an error after close_notify is a close too).
        let _ = tls.read_to_end(&mut answer).await;
        assert!(!answer.starts_with(b"HTTP/"), "HTTP/1 answer on h2: {:?}", String::from_utf8_lossy(&answer));
        // What came are HTTP/2 frames: the first is the server's SETTINGS.
        assert!(answer.len() >= 9, "{answer:?}");
        assert_eq!(answer[3], 0x4, "first frame type is SETTINGS: {answer:?}");
        // The same client with a proper preface is served over HTTP/2.
        let (mut client, _) = Client::h2_tls(https, HOST, &[&cert]).await;
        assert_eq!(client.get("/").await.status, StatusCode::OK);
    })
    .await;
}
