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
