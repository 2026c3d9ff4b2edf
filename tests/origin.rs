//! The origin side of forwarding (issue 2): connections to the origin are
//! pooled and reused, `origin_connect_timeout` turns an origin that never
//! accepts into a 502, and `origin_response_timeout` is the time the origin
//! takes to answer, not the time the client takes to upload: it runs from
//! the last request-body frame handed to the origin.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use consentry::body;
use http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

/// A request body of `chunks` KiB-sized frames, one every `gap`.
fn trickle(chunks: usize, gap: Duration) -> body::Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    tokio::spawn(async move {
        for _ in 0..chunks {
            tokio::time::sleep(gap).await;
            if tx.send(Bytes::from(vec![b'x'; 1024])).await.is_err() {
                return;
            }
        }
    });
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (Ok::<_, std::convert::Infallible>(http_body::Frame::data(bytes)), rx))
    });
    body::boxed(http_body_util::StreamBody::new(frames))
}

/// An origin that reads the whole request body, then answers with its size.
async fn counting_upload_origin() -> Origin {
    origin()
        .route_fn("/upload", |request| async move {
            let body = request.into_body().collect().await.unwrap().to_bytes();
            http::Response::new(body::full(format!("{} bytes", body.len())))
        })
        .run()
        .await
}

/// An upload that takes longer than `origin_response_timeout` (six frames
/// 500 ms apart against a 2 s limit) reaches the origin whole, and its
/// answer reaches the client: the origin was never late.
#[tokio::test]
async fn a_slow_upload_is_not_an_origin_timeout() {
    within(async {
        let origin = counting_upload_origin().await;
        let proxy = proxy().origin(&origin).limit("origin_response_timeout", "\"2s\"").run().await;
        let mut client = proxy.http1().await;
        let request = client
            .request(Method::POST, "/upload")
            .header("content-length", "6144")
            .body(trickle(6, Duration::from_millis(500)))
            .unwrap();
        let response = client.fetch(request).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        assert_eq!(response.text(), "6144 bytes");

        // Chunked (no Content-Length), the same.
        let request =
            client.request(Method::POST, "/upload").body(trickle(6, Duration::from_millis(500))).unwrap();
        let response = client.fetch(request).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        assert_eq!(response.text(), "6144 bytes");
    })
    .await;
}

/// The limit still applies once the upload is done: an origin that reads
/// the whole body and then says nothing gets 504.
#[tokio::test]
async fn an_origin_silent_after_the_upload_is_504() {
    within(async {
        let origin = origin()
            .route_fn("/upload", |request| async move {
                let _ = request.into_body().collect().await;
                tokio::time::sleep(Duration::from_secs(30)).await;
                http::Response::new(body::full("too late"))
            })
            .run()
            .await;
        let proxy = proxy().origin(&origin).limit("origin_response_timeout", "\"500ms\"").run().await;
        let mut client = proxy.http1().await;
        let request =
            client.request(Method::POST, "/upload").body(trickle(3, Duration::from_millis(300))).unwrap();
        let response = client.fetch(request).await;
        assert_eq!(response.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(response.text(), "504 Gateway Timeout: the site's server did not answer in time\n");
    })
    .await;
}

/// An origin that stops reading the upload (and never answers) is cut off
/// too: no frame moves for longer than the limit.
#[tokio::test]
async fn an_origin_that_stops_reading_the_upload_is_504() {
    within(async {
        let origin = raw_origin(|mut stream| async move {
            let _ = read_head(&mut stream).await;
            // Hold the connection, read nothing more.
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(stream);
        })
        .await;
        let proxy = proxy().origin(&origin).limit("origin_response_timeout", "\"500ms\"").run().await;
        let mut client = proxy.http1().await;
        // 64 MiB cannot fit in the socket buffers: the upload stalls.
        let request = client.request(Method::POST, "/upload").body(pattern_body(64 * 1024 * 1024)).unwrap();
        let response = client.fetch(request).await;
        assert_eq!(response.status, StatusCode::GATEWAY_TIMEOUT);
    })
    .await;
}

/// An HTTP/1.1 origin on a raw listener that counts its connections.
async fn connection_counting_origin() -> (Origin, Arc<AtomicUsize>) {
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let origin = raw_origin(move |stream| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            let service = service_fn(|_request| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(body::full("pooled")))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
    (origin, connections)
}

/// Sequential requests, from one client connection and from several, all
/// travel over one kept-alive origin connection.
#[tokio::test]
async fn origin_connections_are_pooled_and_reused() {
    within(async {
        let (origin, connections) = connection_counting_origin().await;
        let proxy = proxy().origin(&origin).run().await;
        for _ in 0..3 {
            let mut client = proxy.http1().await;
            for _ in 0..5 {
                let response = client.get("/").await;
                assert_eq!((response.status, response.text().as_str()), (StatusCode::OK, "pooled"));
            }
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1, "15 requests, one origin connection");
    })
    .await;
}

/// A listener whose accept queue is full and never drained: the kernel
/// drops further SYNs, so a connect to it hangs until the caller gives up.
async fn unaccepting_origin() -> (socket2::Socket, Vec<tokio::net::TcpStream>, SocketAddr) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut held = Vec::new();
    // Fill the accept queue; the connects that hang are the proof it is full.
    for _ in 0..8 {
        match tokio::time::timeout(Duration::from_millis(300), tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => held.push(stream),
            _ => break,
        }
    }
    (socket, held, addr)
}

/// `origin_connect_timeout` bounds the connect: the visitor gets 502 (the
/// origin cannot be reached), not a wait for `origin_response_timeout`.
#[tokio::test]
async fn an_origin_that_never_accepts_is_502_after_the_connect_timeout() {
    within(async {
        let (_socket, _held, addr) = unaccepting_origin().await;
        let proxy = proxy()
            .origin_url(format!("http://{addr}"))
            .limit("origin_connect_timeout", "\"300ms\"")
            .limit("origin_response_timeout", "\"40s\"")
            .run()
            .await;
        let response = proxy.http1().await.get("/").await;
        assert_eq!(response.status, StatusCode::BAD_GATEWAY, "{}", response.text());
        assert_eq!(response.text(), "502 Bad Gateway: the site's server cannot be reached\n");
    })
    .await;
}

/// 502 and 504 tell the visitor nothing about the origin; the log line of
/// the same request has the whole story (origin URL, what failed).
#[tokio::test]
async fn origin_errors_are_detailed_in_the_log_only() {
    within(async {
        let port = closed_port().await;
        let proxy = proxy().origin_url(format!("http://{port}")).spawn_binary();
        let mut client = Client::http1(proxy.http, HOST).await;
        let response = client.get("/").await;
        assert_eq!(response.status, StatusCode::BAD_GATEWAY);
        assert!(!response.text().contains(&port.to_string()));
        let request_id = response.headers.get("x-request-id").map(|v| v.to_str().unwrap().to_string());
        let line = loop {
            let found = proxy
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|j| j["message"] == "request failed");
            if let Some(line) = found {
                break line;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(line["level"], "WARN", "{line}");
        assert_eq!(line["status"], 502, "{line}");
        let error = line["error"].as_str().unwrap();
        assert!(error.contains(&format!("http://{port}")), "the origin is named: {error}");
        assert!(error.contains("cannot connect"), "{error}");
        if let Some(id) = request_id {
            assert_eq!(line["request_id"], id.as_str());
        }
    })
    .await;
}

/// An origin may answer before it has read the request body (a 413 for a
/// too-large upload, a redirect, an endpoint that ignores the body) and
/// close: the visitor gets that answer, as they do without consentry, not
/// a 502 (hyper's client alone fails the request on the body-write error
/// before reading the answer; `forward::Lenient` keeps reading).
#[tokio::test]
async fn an_early_answer_to_an_upload_reaches_the_client() {
    within(async {
        let origin = origin()
            .route_fn("/too-large", |_request| async move {
                let mut response = http::Response::new(body::full("too large\n"));
                *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
                response
            })
            .run()
            .await;
        let proxy = proxy().origin(&origin).run().await;
        let mut failures = Vec::new();
        for size in [20 * 1024, 400 * 1024, 4 * 1024 * 1024] {
            for _ in 0..5 {
                let mut client = proxy.http1().await;
                let request = client
                    .request(Method::POST, "/too-large")
                    .header("content-length", size.to_string())
                    .body(pattern_body(size))
                    .unwrap();
                match client.try_fetch(request).await {
                    Ok(r) if r.status == StatusCode::PAYLOAD_TOO_LARGE => {}
                    Ok(r) => failures.push(format!("{size}: {} {}", r.status, r.text().trim())),
                    Err(e) => failures.push(format!("{size}: {e}")),
                }
            }
        }
        assert!(failures.is_empty(), "{failures:?}");
        // The pool is fine afterwards: ordinary requests keep working.
        let mut client = proxy.http1().await;
        for _ in 0..5 {
            assert_eq!(client.get("/echo").await.status, StatusCode::OK);
        }
    })
    .await;
}

/// An origin that closes in the middle of an upload without answering is
/// still a 502, promptly (the dropped rest of the body does not hang it).
#[tokio::test]
async fn an_origin_that_closes_mid_upload_without_answering_is_502() {
    within(async {
        let origin = raw_origin(|mut stream| async move {
            let _ = read_head(&mut stream).await;
            drop(stream);
        })
        .await;
        let proxy = proxy().origin(&origin).limit("origin_response_timeout", "\"30s\"").run().await;
        for _ in 0..3 {
            let mut client = proxy.http1().await;
            let request =
                client.request(Method::POST, "/upload").body(pattern_body(4 * 1024 * 1024)).unwrap();
            let response = client.fetch(request).await;
            assert_eq!(response.status, StatusCode::BAD_GATEWAY, "{}", response.text());
        }
    })
    .await;
}
