//! Issue 9, HTTP/1: adversarial clients and origins against the real proxy
//! on real sockets. Each case: bad input gets a clear status or a closed
//! connection, nothing is forwarded that should not be, no panic, no hang.
//!
//! Request smuggling proper is in `tests/desync.rs`.

mod common;

use std::io::Write as _;
use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The status code at the start of a raw answer, if any.
fn status_of(answer: &str) -> Option<u16> {
    answer.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

// ---------------------------------------------------------------------------
// Bad bytes in the head

#[tokio::test]
async fn bad_bytes_in_header_lines_get_400_and_reach_nothing() {
    within(async {
        let origin = counting_origin().await;
        let proxy = common::proxy().origin(&origin.origin).run().await;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("NUL in a value", b"X-A: a\0b\r\n".to_vec()),
            ("NUL in a name", b"X-\0A: b\r\n".to_vec()),
            ("bare CR in a value", b"X-A: a\rb\r\n".to_vec()),
            ("bare CR ending a line", b"X-A: ab\rX-B: c\r\n".to_vec()),
            ("obs-fold", b"X-A: first\r\n  folded\r\n".to_vec()),
            ("obs-fold with a tab", b"X-A: first\r\n\tfolded\r\n".to_vec()),
            ("non-ASCII in a name", "X-Ä: b\r\n".as_bytes().to_vec()),
            ("obs-text byte in a name", b"X-\xa0A: b\r\n".to_vec()),
            ("empty name", b": value\r\n".to_vec()),
            ("line without a colon", b"X-No-Colon value\r\n".to_vec()),
            ("space before the colon", b"X-A : b\r\n".to_vec()),
            ("DEL in a name", b"X-\x7fA: b\r\n".to_vec()),
        ];
        for (name, line) in cases {
            let mut request = format!("GET /x HTTP/1.1\r\nHost: {HOST}\r\n").into_bytes();
            request.extend_from_slice(&line);
            request.extend_from_slice(b"Connection: close\r\n\r\n");
            let mut conn = raw(proxy.http).await;
            conn.send(&request).await;
            let answer = conn.read_to_close().await;
            assert_eq!(status_of(&answer), Some(400), "{name}: {answer:?}");
            assert_eq!(origin.bytes(), 0, "{name}: reached the origin");
        }
        // The listener is none the worse.
        let mut client = proxy.http1().await;
        assert_eq!(client.get("/ok").await.status, StatusCode::OK);
        assert_eq!(origin.heads().len(), 1);
    })
    .await;
}

// ---------------------------------------------------------------------------
// Answers the proxy gives itself, bodies that hide requests

/// A request body that is itself a request, as a smuggler would send it.
fn hidden_request() -> String {
    format!("GET /hidden HTTP/1.1\r\nHost: {HOST}\r\nX-Hidden: yes\r\n\r\n")
}

#[tokio::test]
async fn a_body_behind_a_421_or_403_never_runs_as_a_request() {
    within(async {
        let origin = counting_origin().await;
        let proxy = common::proxy().origin(&origin.origin).run().await;
        let hidden = hidden_request();
        let cases: Vec<(&str, u16, String)> = vec![
            (
                "421, Content-Length body",
                421,
                format!("POST / HTTP/1.1\r\nHost: nowhere.test\r\nContent-Length: {}\r\n\r\n{hidden}", hidden.len()),
            ),
            (
                "421, chunked body",
                421,
                format!(
                    "POST / HTTP/1.1\r\nHost: nowhere.test\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{hidden}\r\n0\r\n\r\n",
                    hidden.len()
                ),
            ),
            (
                "403, cross-site consent POST",
                403,
                format!(
                    "POST /.consentry/consent HTTP/1.1\r\nHost: {HOST}\r\nSec-Fetch-Site: cross-site\r\n\
                     Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{hidden}",
                    hidden.len()
                ),
            ),
            (
                "421, body announced but only partly sent",
                421,
                format!("POST / HTTP/1.1\r\nHost: nowhere.test\r\nContent-Length: 100000\r\n\r\n{hidden}"),
            ),
        ];
        for (name, status, request) in cases {
            let mut conn = raw(proxy.http).await;
            conn.send(request.as_bytes()).await;
            // Either the body is drained and the connection stays usable,
            // or the proxy closes it; both are fine. What is not: the
            // hidden request being parsed and run.
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            let deadline = Instant::now() + Duration::from_secs(3);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, conn.stream.read(&mut buf)).await {
                    Ok(Ok(0) | Err(_)) | Err(_) => break,
                    Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
                }
            }
            let answer = String::from_utf8_lossy(&answer).into_owned();
            assert_eq!(status_of(&answer), Some(status), "{name}: {answer}");
            assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{name}: a second response: {answer}");
            assert_eq!(origin.bytes(), 0, "{name}: the hidden request reached the origin: {:?}", origin.heads());
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// Upgrades

#[tokio::test]
async fn an_upgrade_answered_200_opens_no_tunnel() {
    within(async {
        // The origin "accepts" the WebSocket handshake with a 200 (not a
        // 101) and sends raw bytes after it, as if a tunnel were open.
        let origin = raw_origin(|mut stream| async move {
            let head = read_head(&mut stream).await;
            let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
            let body = if path == "/socket" { "ok".to_string() } else { format!("path={path} {}", head.to_ascii_lowercase().contains("\r\nvia: ")) };
            let answer = format!(
                "HTTP/1.1 200 OK\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: {}\r\n\r\n{body}RAW-ORIGIN-BYTES",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        })
        .await;
        let proxy = common::proxy().origin(&origin).run().await;
        let mut conn = raw(proxy.http).await;
        conn.send(format!(
            "GET /socket HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\
             GET /after HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
        ))
        .await;
        let answer = conn.read_to_close().await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
        assert!(!answer.contains("RAW-ORIGIN-BYTES"), "origin bytes past its response reached the client: {answer}");
        assert!(!answer.to_ascii_lowercase().contains("upgrade: websocket"), "{answer}");
        // The pipelined bytes were parsed as a request and went through the
        // pipeline (the origin saw Via), or the connection was closed.
        if answer.matches("HTTP/1.1 200 ").count() == 2 {
            assert!(answer.ends_with("path=/after true"), "{answer}");
        } else {
            assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// Slow clients, silent origins, descriptors

/// Descriptors of a process.
fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Waits (at most 20 s) until the child holds no more descriptors than
/// `baseline`; returns what it holds then.
async fn settle(pid: u32, baseline: usize) -> usize {
    let start = Instant::now();
    loop {
        let now = fds_of(pid);
        if now <= baseline || start.elapsed() > Duration::from_secs(20) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn slow_clients_and_silent_origins_time_out_without_leaking_descriptors() {
    within(async {
        // `/silent` never answers; `/big` is a large page; `/upload`
        // reads its body.
        let origin = origin()
            .route_fn("/silent", |_| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                http::Response::new(consentry::body::empty())
            })
            .route_fn("/big", |_| async { http::Response::new(pattern_body(64 * 1024 * 1024)) })
            .route_fn("/upload", |request: http::Request<hyper::body::Incoming>| async move {
                use http_body_util::BodyExt as _;
                match request.into_body().collect().await {
                    Ok(body) => http::Response::new(consentry::body::full(body.to_bytes())),
                    Err(_) => http::Response::new(consentry::body::full("aborted")),
                }
            })
            .run()
            .await;
        let binary = proxy()
            .origin(&origin)
            .limit("header_read_timeout", "\"500ms\"")
            .limit("body_read_timeout", "\"500ms\"")
            .limit("origin_response_timeout", "\"1s\"")
            .limit("send_timeout", "\"1s\"")
            .limit("origin_idle_timeout", "\"1s\"")
            .spawn_binary();
        let pid = binary.pid();
        let addr = binary.http;
        // Warm up (the pool, the runtime's threads), then count.
        let mut warm = Client::http1(addr, HOST).await;
        assert_eq!(warm.get("/echo").await.status, StatusCode::OK);
        drop(warm);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let baseline = fds_of(pid);

        // Slow headers (slowloris): 408, then closed.
        let mut slow_heads = Vec::new();
        for _ in 0..20 {
            let mut conn = raw(addr).await;
            conn.send(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: ")).await;
            slow_heads.push(conn);
        }
        for conn in &mut slow_heads {
            let answer = conn.read_to_close().await;
            assert_eq!(status_of(&answer), Some(408), "slow head: {answer}");
        }

        // Slow body: 408 and closed.
        let mut slow_bodies = Vec::new();
        for _ in 0..10 {
            let mut conn = raw(addr).await;
            conn.send(format!("POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 1000\r\n\r\nstart"))
                .await;
            slow_bodies.push(conn);
        }
        for conn in &mut slow_bodies {
            let answer = conn.read_to_close().await;
            assert_eq!(status_of(&answer), Some(408), "slow body: {answer}");
        }

        // Silent origin: 504.
        for _ in 0..5 {
            let mut conn = raw(addr).await;
            conn.send(format!("GET /silent HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n")).await;
            let answer = conn.read_to_close().await;
            assert_eq!(status_of(&answer), Some(504), "silent origin: {answer}");
        }

        // Slow reader: asks for 64 MiB and reads nothing; the proxy gives
        // up on it once nothing could be written for `send_timeout`.
        let mut readers = Vec::new();
        for _ in 0..5 {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(
                    format!("GET /big HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").as_bytes(),
                )
                .await
                .unwrap();
            readers.push(stream);
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        for mut stream in readers {
            // Drain: the stream must end (closed by the proxy) well before
            // 64 MiB arrive.
            let mut total = 0usize;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
                    Ok(Ok(0) | Err(_)) => break,
                    Ok(Ok(n)) => total += n,
                    Err(_) => panic!("the slow reader's connection is still open after {total} bytes"),
                }
            }
            assert!(total < 64 * 1024 * 1024, "the slow reader got the whole body ({total} bytes)");
        }

        drop(slow_heads);
        drop(slow_bodies);
        let after = settle(pid, baseline).await;
        assert!(after <= baseline, "descriptors: {baseline} before, {after} after");
        // And it still serves.
        let mut client = Client::http1(addr, HOST).await;
        assert_eq!(client.get("/echo").await.status, StatusCode::OK);
        println!("descriptors of the proxy: {baseline} before, {after} after");
    })
    .await;
}

// ---------------------------------------------------------------------------
// Sizes

#[tokio::test]
async fn too_many_or_too_large_headers_get_431_and_a_64k_cookie_is_not_truncated() {
    within(async {
        let origin = counting_origin().await;
        let proxy = common::proxy().origin(&origin.origin).run().await;
        let many: String = (0..101).map(|i| format!("X-F{i}: {i}\r\n")).collect();
        let huge = format!("X-Huge: {}\r\n", "h".repeat(500 * 1024));
        let cookie = format!("Cookie: big={}\r\n", "c".repeat(64 * 1024));
        for (name, fields) in [("101 fields", many), ("500 KB field", huge), ("64 KB Cookie", cookie)] {
            let mut conn = raw(proxy.http).await;
            // The write may fail once the proxy has answered and closed.
            let _ = conn
                .stream
                .write_all(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n{fields}\r\n").as_bytes())
                .await;
            let answer = conn.read_to_close().await;
            assert_eq!(status_of(&answer), Some(431), "{name}: {answer:.200}");
            assert_eq!(origin.bytes(), 0, "{name}: something reached the origin");
        }
    })
    .await;
}

#[tokio::test]
async fn a_thousand_set_cookies_from_the_origin_are_filtered_one_by_one() {
    within(async {
        let mut headers = Vec::new();
        for i in 0..500 {
            headers.push(("set-cookie".to_string(), format!("keep_{i}=v{i}; Path=/; HttpOnly")));
            headers.push(("set-cookie".to_string(), format!("track_{i}=t{i}; Path=/; Max-Age=600")));
        }
        let origin = cookie_origin(headers).await;
        let proxy = common::proxy()
            .origin(&origin.origin)
            .policy("unknown_cookies = \"block\"\n")
            .toml("[[policy.test.cookie]]\nname = \"keep_*\"\ncategory = \"necessary\"\n")
            .run()
            .await;
        // A raw client: hyper's own client stops at 100 fields.
        let mut conn = raw(proxy.http).await;
        conn.send(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n")).await;
        let answer = conn.read_to_close().await;
        assert_eq!(status_of(&answer), Some(200), "{answer:.300}");
        let head = &answer[..answer.find("\r\n\r\n").unwrap()];
        let kept: Vec<String> = head
            .split("\r\n")
            .filter_map(|line| line.strip_prefix("set-cookie: "))
            .map(str::to_string)
            .collect();
        let expected: Vec<String> = (0..500).map(|i| format!("keep_{i}=v{i}; Path=/; HttpOnly")).collect();
        assert_eq!(kept, expected);
    })
    .await;
}

/// An origin whose every response carries `set_cookie` lines as written
/// (raw bytes, so they may hold what hyper would not build).
async fn raw_set_cookie_origin(lines: Vec<Vec<u8>>) -> Origin {
    let lines = std::sync::Arc::new(lines);
    raw_origin(move |mut stream| {
        let lines = lines.clone();
        async move {
            let _ = read_head(&mut stream).await;
            let mut answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n".to_vec();
            for line in lines.iter() {
                answer.extend_from_slice(b"Set-Cookie: ");
                answer.extend_from_slice(line);
                answer.extend_from_slice(b"\r\n");
            }
            answer.extend_from_slice(b"\r\nok");
            let _ = stream.write_all(&answer).await;
            let _ = stream.shutdown().await;
        }
    })
    .await
}

#[tokio::test]
async fn hostile_set_cookie_values_are_handled() {
    within(async {
        let policy = "unknown_cookies = \"block\"\n";
        let rules = "[[policy.test.cookie]]\nname = \"ok\"\ncategory = \"necessary\"\n\
                     [[policy.test.cookie]]\nname = \"stats\"\ncategory = \"analytics\"\n\
                     [policy.test.categories]\nnecessary = { description = \"n\" }\n\
                     analytics = { description = \"a\", max_cookie_days = 30 }\n";

        // Values hyper refuses to parse (NUL, bare CR): the origin's whole
        // response is invalid, so the client gets a 502, never the bytes.
        for (name, line) in [("NUL", b"ok=a\0b".to_vec()), ("bare CR", b"ok=a\rb".to_vec())] {
            let origin = raw_set_cookie_origin(vec![line]).await;
            let proxy = common::proxy().origin(&origin).policy(policy).toml(rules).run().await;
            let mut conn = raw(proxy.http).await;
            conn.send(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n")).await;
            let answer = conn.read_to_close().await;
            assert_eq!(status_of(&answer), Some(502), "{name}: {answer:?}");
        }

        // A 1 MB value: more than the origin response head may hold (502,
        // like nginx's "upstream sent too big header"), no crash.
        let origin =
            raw_set_cookie_origin(vec![format!("ok={}", "v".repeat(1024 * 1024)).into_bytes()]).await;
        let proxy = common::proxy().origin(&origin).policy(policy).toml(rules).run().await;
        let mut client = proxy.http1().await;
        let response = client.get("/").await;
        assert_eq!(response.status, StatusCode::BAD_GATEWAY);

        // Nameless cookies and a huge Max-Age: parsed as browsers do, the
        // nameless ones (no rule names them) blocked, the huge Max-Age
        // capped to the category's 30 days, the necessary one untouched.
        let origin = raw_set_cookie_origin(vec![
            b"=nameless; Path=/".to_vec(),
            b"justavalue".to_vec(),
            b"ok=1; Max-Age=99999999999999999999999999".to_vec(),
            b"stats=1; Max-Age=99999999999999999999999999; Path=/".to_vec(),
            b"stats=2; Max-Age=-99999999999999999999999999".to_vec(),
        ])
        .await;
        let proxy = common::proxy().origin(&origin).policy(policy).toml(rules).run().await;
        let mut client = proxy.http1().await;
        let consent = consent_all_cookie();
        let response = client.get_with("/", &[("cookie", &consent)]).await;
        assert_eq!(response.status, StatusCode::OK);
        let kept = response.header_all("set-cookie");
        assert!(kept.contains(&"ok=1; Max-Age=99999999999999999999999999".to_string()), "{kept:?}");
        assert!(!kept.iter().any(|c| c.contains("nameless") || c.contains("justavalue")), "{kept:?}");
        let stats: Vec<&String> = kept.iter().filter(|c| c.starts_with("stats=1")).collect();
        assert_eq!(stats.len(), 1, "{kept:?}");
        assert!(stats[0].contains("Max-Age=2592000"), "capped to 30 days: {kept:?}");
        // And the proxy is still up.
        assert_eq!(client.get_with("/", &[("cookie", &consent)]).await.status, StatusCode::OK);
    })
    .await;
}

/// A consentry consent cookie granting every category.
fn consent_all_cookie() -> String {
    let value = consentry::consent::encode(&["analytics"], 1, std::time::SystemTime::now(), None);
    format!("consentry={value}")
}

// ---------------------------------------------------------------------------
// Compressed bodies

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// An origin serving `body` as `text/html` with these extra header lines
/// (raw, so that framing can be anything), for every request.
async fn html_origin(status: &'static str, extra: &'static str, body: Vec<u8>) -> Origin {
    let body = std::sync::Arc::new(body);
    raw_origin(move |mut stream| {
        let body = body.clone();
        async move {
            let head = read_head(&mut stream).await;
            let mut answer =
                format!("HTTP/1.1 {status}\r\nContent-Type: text/html\r\n{extra}Connection: close\r\n\r\n")
                    .into_bytes();
            if !head.starts_with("HEAD ") {
                answer.extend_from_slice(&body);
            }
            let _ = stream.write_all(&answer).await;
            let _ = stream.shutdown().await;
        }
    })
    .await
}

/// Reads a whole response from a hyper client; `Err` if the body ended
/// with an error (an aborted response).
async fn fetch_raw_body(
    proxy: &Proxy,
    method: http::Method,
    path: &str,
) -> (StatusCode, http::HeaderMap, Result<Vec<u8>, String>) {
    try_fetch_raw_body(proxy, method, path).await.expect("a response head")
}

/// [`fetch_raw_body`], `None` when the proxy closed the connection
/// without a response head (an aborted response).
async fn try_fetch_raw_body(
    proxy: &Proxy,
    method: http::Method,
    path: &str,
) -> Option<(StatusCode, http::HeaderMap, Result<Vec<u8>, String>)> {
    use http_body_util::BodyExt as _;
    let mut client = proxy.http1().await;
    let request = client
        .request(method, path)
        .header("accept-encoding", "gzip, br")
        .body(consentry::body::empty())
        .unwrap();
    let response = client.send_checked(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes().to_vec()).map_err(|e| e.to_string());
    Some((parts.status, parts.headers, body))
}

const PAGE: &str = "<html><head><title>t</title></head><body><p>hello</p></body></html>";

#[tokio::test]
async fn broken_gzip_pages_are_never_delivered_as_whole_pages() {
    within(async {
        let whole = gzip(PAGE.as_bytes());
        // Truncated: the client sees an aborted response (or the original
        // truncated bytes), never a complete-looking gzip stream.
        let truncated = whole[..whole.len() / 2].to_vec();
        let origin = html_origin("200 OK", "Content-Encoding: gzip\r\n", truncated.clone()).await;
        let proxy = common::proxy().origin(&origin).run().await;
        // No head at all (the rewriter had nothing to send before the
        // error) is an aborted response too.
        if let Some((status, _, Ok(body))) = try_fetch_raw_body(&proxy, http::Method::GET, "/").await {
            assert_eq!(status, StatusCode::OK);
            let mut out = Vec::new();
            let decoded = flate2::read::GzDecoder::new(&body[..]).read_to_end_checked(&mut out);
            assert!(
                decoded.is_err(),
                "a truncated gzip page came out as a whole one: {:?}",
                String::from_utf8_lossy(&out)
            );
        }

        // Trailing junk after a whole gzip member: ignored (as browsers do),
        // the page is delivered whole, and the junk is not passed on.
        let mut junk = whole.clone();
        junk.extend_from_slice(b"JUNK-AFTER-THE-MEMBER");
        let origin = html_origin("200 OK", "Content-Encoding: gzip\r\n", junk).await;
        let proxy = common::proxy().origin(&origin).run().await;
        let (status, _, body) = fetch_raw_body(&proxy, http::Method::GET, "/").await;
        assert_eq!(status, StatusCode::OK);
        let body = body.expect("a whole response");
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..]).read_to_end_checked(&mut out).expect("one valid gzip stream");
        let out = String::from_utf8_lossy(&out);
        assert!(
            out.starts_with("<html><head><title>t</title>") && out.contains("<p>hello</p></body></html>"),
            "{out}"
        );
        assert!(!out.contains("JUNK") && !body.windows(4).any(|w| w == b"JUNK"), "{out}");
    })
    .await;
}

trait ReadAll {
    fn read_to_end_checked(&mut self, out: &mut Vec<u8>) -> std::io::Result<usize>;
}

impl<R: std::io::Read> ReadAll for R {
    fn read_to_end_checked(&mut self, out: &mut Vec<u8>) -> std::io::Result<usize> {
        std::io::Read::read_to_end(self, out)
    }
}

#[tokio::test]
async fn a_gzip_bomb_is_capped_and_passes_through_whole() {
    within(async {
        // ~50 MB of HTML in ~50 KB of gzip.
        let filler = "a".repeat(50 * 1024 * 1024);
        let page = format!("<html><body><p>{filler}</p></body></html>");
        let bomb = gzip(page.as_bytes());
        assert!(bomb.len() < 100 * 1024, "{} bytes", bomb.len());
        let origin = html_origin("200 OK", "Content-Encoding: gzip\r\n", bomb.clone()).await;
        let proxy = common::proxy().origin(&origin).limit("max_decoded_body", "1048576").run().await;
        let (status, headers, body) = fetch_raw_body(&proxy, http::Method::GET, "/").await;
        assert_eq!(status, StatusCode::OK);
        let body = body.expect("the response is complete");
        assert_eq!(headers.get("content-encoding").unwrap(), "gzip");
        // Decode what the client got: the whole page, byte for byte.
        let mut decoder = flate2::read::GzDecoder::new(&body[..]);
        let mut out = Vec::with_capacity(page.len());
        std::io::Read::read_to_end(&mut decoder, &mut out).unwrap();
        assert_eq!(out.len(), page.len());
        assert!(out == page.as_bytes(), "the page changed");
    })
    .await;
}

#[tokio::test]
async fn stacked_encodings_and_encodings_without_a_body_pass_untouched() {
    within(async {
        // gzip, gzip: not rewritten, byte for byte.
        let twice = gzip(&gzip(PAGE.as_bytes()));
        let origin = html_origin(
            "200 OK",
            Box::leak(
                format!("Content-Encoding: gzip, gzip\r\nContent-Length: {}\r\n", twice.len())
                    .into_boxed_str(),
            ),
            twice.clone(),
        )
        .await;
        let proxy = common::proxy().origin(&origin).run().await;
        let (status, headers, body) = fetch_raw_body(&proxy, http::Method::GET, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers.get("content-encoding").unwrap(), "gzip, gzip");
        assert_eq!(body.unwrap(), twice);

        // 204 and 304 with Content-Encoding: no body, no hang, no error.
        for status_line in ["204 No Content", "304 Not Modified"] {
            let origin = html_origin(status_line, "Content-Encoding: gzip\r\n", Vec::new()).await;
            let proxy = common::proxy().origin(&origin).run().await;
            let (status, headers, body) = fetch_raw_body(&proxy, http::Method::GET, "/").await;
            assert_eq!(status.as_u16(), status_line[..3].parse::<u16>().unwrap());
            assert_eq!(headers.get("content-encoding").unwrap(), "gzip");
            assert_eq!(body.unwrap(), Vec::<u8>::new());
        }

        // HEAD of a gzip page: the head, its length untouched, no body.
        let whole = gzip(PAGE.as_bytes());
        let origin = html_origin(
            "200 OK",
            Box::leak(
                format!("Content-Encoding: gzip\r\nContent-Length: {}\r\n", whole.len()).into_boxed_str(),
            ),
            whole.clone(),
        )
        .await;
        let proxy = common::proxy().origin(&origin).run().await;
        let (status, headers, body) = fetch_raw_body(&proxy, http::Method::HEAD, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers.get("content-length").unwrap(), &whole.len().to_string());
        assert_eq!(body.unwrap(), Vec::<u8>::new());
    })
    .await;
}

// ---------------------------------------------------------------------------
// The origin going away mid-body

#[tokio::test]
async fn an_origin_closing_mid_body_aborts_the_response() {
    within(async {
        let half = "x".repeat(5000);
        let cases: Vec<(&str, &'static str, Vec<u8>)> = vec![
            (
                "passthrough, Content-Length",
                "text/plain",
                format!("Content-Length: 10000\r\n\r\n{half}").into_bytes(),
            ),
            (
                "passthrough, chunked",
                "text/plain",
                format!("Transfer-Encoding: chunked\r\n\r\n1388\r\n{half}\r\n").into_bytes(),
            ),
            (
                "rewritten page, Content-Length",
                "text/html",
                format!("Content-Length: 10000\r\n\r\n<html><body><p>{half}").into_bytes(),
            ),
            (
                "rewritten page, chunked",
                "text/html",
                format!("Transfer-Encoding: chunked\r\n\r\n1388\r\n{half}\r\n").into_bytes(),
            ),
            ("rewritten gzip page", "text/html", {
                let whole = gzip(format!("<html><body>{}</body></html>", "y".repeat(100_000)).as_bytes());
                let mut out =
                    format!("Content-Encoding: gzip\r\nContent-Length: {}\r\n\r\n", whole.len()).into_bytes();
                out.extend_from_slice(&whole[..whole.len() / 2]);
                out
            }),
        ];
        for (name, content_type, rest) in cases {
            let rest = std::sync::Arc::new(rest);
            let origin = raw_origin(move |mut stream| {
                let rest = rest.clone();
                async move {
                    let _ = read_head(&mut stream).await;
                    let mut answer =
                        format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n").into_bytes();
                    answer.extend_from_slice(&rest);
                    let _ = stream.write_all(&answer).await;
                    // Then the origin goes away.
                }
            })
            .await;
            let proxy = common::proxy().origin(&origin).run().await;

            // A raw client: the connection closes before the declared
            // length, or without the terminating chunk.
            let mut conn = raw(proxy.http).await;
            conn.send(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nAccept-Encoding: gzip\r\n\r\n")).await;
            let mut answer = Vec::new();
            let _ = conn.stream.read_to_end(&mut answer).await;
            let text = String::from_utf8_lossy(&answer).into_owned();
            assert!(text.starts_with("HTTP/1.1 200 "), "{name}: {text:.300}");
            let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let (head, body) = (text[..split].to_ascii_lowercase(), &answer[split..]);
            if let Some(len) = head.lines().find_map(|l| l.strip_prefix("content-length: ")) {
                assert!(body.len() < len.trim().parse::<usize>().unwrap(), "{name}: whole length delivered");
            } else {
                assert!(head.contains("transfer-encoding: chunked"), "{name}: {head}");
                assert!(!body.ends_with(b"0\r\n\r\n"), "{name}: a clean-looking end of a truncated body");
            }

            // A hyper client sees an error, not a short body.
            if let Some((status, _, body)) = try_fetch_raw_body(&proxy, http::Method::GET, "/").await {
                assert_eq!(status, StatusCode::OK, "{name}");
                assert!(body.is_err(), "{name}: a truncated body arrived as a whole one");
            }
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// Rules file written in place during traffic

/// The rules putting the `flip` cookie in `category`.
fn flip_rules(category: &str, marker: usize) -> String {
    format!(
        "# write {marker}\n[[policy.test.cookie]]\nname = \"sessionid\"\ncategory = \"necessary\"\n\
         [[policy.test.cookie]]\nname = \"flip\"\ncategory = \"{category}\"\n"
    )
}

/// The config with the `flip` cookie in `category`.
fn flip_config(builder: &ProxyBuilder, category: &str, marker: usize) -> String {
    builder.clone().toml(&flip_rules(category, marker)).config_text()
}

/// Which of the two policies served a response; anything else is an error.
fn flip_seen(response: &Result<TestResponse, String>) -> Result<bool, String> {
    let response = response.as_ref().map_err(Clone::clone)?;
    if response.status != StatusCode::OK {
        return Err(format!("status {}", response.status));
    }
    match response.header_all("set-cookie").iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["sessionid=s; Path=/", "flip=on; Path=/"] => Ok(true),
        ["sessionid=s; Path=/"] => Ok(false),
        ref other => Err(format!("unexpected Set-Cookie {other:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rules_file_truncated_or_half_written_in_place_never_fails_a_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    within(async {
        let origin = cookie_origin(vec![
            ("set-cookie".into(), "sessionid=s; Path=/".into()),
            ("set-cookie".into(), "flip=on; Path=/".into()),
        ])
        .await;
        let builder = common::proxy().origin(&origin.origin).policy("unknown_cookies = \"block\"\n");
        let proxy = builder.clone().toml(&flip_rules("necessary", 0)).watch().run().await;
        let path = proxy.config_path.clone();

        let stop = Arc::new(AtomicBool::new(false));
        let problems = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let served = Arc::new(std::sync::Mutex::new((0u64, 0u64)));
        let mut loaders = Vec::new();
        for _ in 0..2 {
            let (stop, problems, served, addr) = (stop.clone(), problems.clone(), served.clone(), proxy.http);
            loaders.push(tokio::spawn(async move {
                let mut client = Client::http1(addr, HOST).await;
                while !stop.load(Ordering::Relaxed) {
                    let request =
                        client.request(http::Method::GET, "/").body(consentry::body::empty()).unwrap();
                    match flip_seen(&client.try_fetch(request).await) {
                        Ok(true) => served.lock().unwrap().0 += 1,
                        Ok(false) => served.lock().unwrap().1 += 1,
                        Err(e) => {
                            problems.lock().unwrap().push(e);
                            client = Client::http1(addr, HOST).await;
                        }
                    }
                }
            }));
        }
        // Polls new requests until the policy is the one wanted.
        let until = |want: bool, what: String| {
            let addr = proxy.http;
            async move {
                let start = Instant::now();
                let mut client = Client::http1(addr, HOST).await;
                loop {
                    let request =
                        client.request(http::Method::GET, "/").body(consentry::body::empty()).unwrap();
                    if flip_seen(&client.try_fetch(request).await).unwrap_or_else(|e| panic!("{what}: {e}"))
                        == want
                    {
                        return;
                    }
                    assert!(start.elapsed() < Duration::from_secs(10), "{what}: never served");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        until(true, "the first config".into()).await;

        let mut flip_passes = true;
        for i in 1..=8 {
            let category = if flip_passes { "advertising" } else { "necessary" };
            let text = flip_config(&builder, category, i);
            // Cut inside the last rule's string: not a valid file.
            let cut = text.rfind(category).unwrap() + 3;
            let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
            if i % 2 == 0 {
                // Truncated to nothing for a while (a writer that opened the
                // file and stalled).
                file.sync_all().unwrap();
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            file.write_all(&text.as_bytes()[..cut]).unwrap();
            file.sync_all().unwrap();
            // Long enough for the watcher to read the half-written file.
            tokio::time::sleep(Duration::from_millis(400)).await;
            // The old policy still serves.
            until(flip_passes, format!("half-written write {i}")).await;
            file.write_all(&text.as_bytes()[cut..]).unwrap();
            file.sync_all().unwrap();
            drop(file);
            flip_passes = !flip_passes;
            until(flip_passes, format!("completed write {i}")).await;
        }
        stop.store(true, Ordering::Relaxed);
        for loader in loaders {
            loader.await.unwrap();
        }
        let problems = problems.lock().unwrap().clone();
        assert!(problems.is_empty(), "{} failed requests: {problems:?}", problems.len());
        let (passes, dropped) = *served.lock().unwrap();
        assert!(passes > 0 && dropped > 0, "both policies served under load: {passes}/{dropped}");
    })
    .await;
}

/// The same over HTTP/2: the stream is reset, the client sees an error
/// rather than a short body that ends cleanly.
#[tokio::test]
async fn an_origin_closing_mid_body_resets_the_h2_stream() {
    use http_body_util::BodyExt as _;
    within(async {
        for content_type in ["text/plain", "text/html"] {
            let origin = raw_origin(move |mut stream| async move {
                let _ = read_head(&mut stream).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: 10000\r\n\r\n<p>{}",
                    "z".repeat(5000)
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            })
            .await;
            let cert = test_cert(&[HOST]);
            let proxy = common::proxy().origin(&origin).https(&[&cert]).run().await;
            let mut client = proxy.h2(HOST, &[&cert]).await;
            let request = client.request(http::Method::GET, "/").body(consentry::body::empty()).unwrap();
            let response = client.send(request).await;
            assert_eq!(response.status(), StatusCode::OK, "{content_type}");
            let body = response.into_body().collect().await;
            let error = body.expect_err("a truncated body arrived as a whole one");
            println!("{content_type}: {error}");
        }
    })
    .await;
}
