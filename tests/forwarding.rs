//! Forwarding over HTTP/1.1: round trips, routing, the headers a proxy
//! adds and removes, and the errors it answers itself.

mod common;

use common::*;
use consentry::body;
use http::{Method, StatusCode};
use tokio::io::AsyncWriteExt as _;

#[tokio::test]
async fn http1_round_trip_through_the_demo_site() {
    within(async {
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).run().await;
        let mut client = proxy.http1().await;

        let page = client.get("/").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text().contains("Acme Hardware"));
        assert!(!page.header_all("set-cookie").is_empty());

        // Same connection, a second request: keep-alive works.
        let script = client.get("/static/app.js").await;
        assert_eq!(script.status, StatusCode::OK);
        assert_eq!(script.text(), consentry::demo::APP_JS);

        let echo = client.get("/echo?q=1").await.echo();
        assert_eq!(echo.method, "GET");
        assert_eq!(echo.path, "/echo");
    })
    .await;
}

#[tokio::test]
async fn request_bodies_and_methods_pass_through() {
    within(async {
        let origin = origin()
            .route_fn("/upload", |request| async move {
                let method = request.method().to_string();
                let body = http_body_util::BodyExt::collect(request.into_body()).await.unwrap().to_bytes();
                http::Response::new(body::full(format!("{method} {}", String::from_utf8_lossy(&body))))
            })
            .run()
            .await;
        let proxy = proxy().origin(&origin).run().await;
        let mut client = proxy.http1().await;
        let request = client.request(Method::PUT, "/upload").body(body::full("payload")).unwrap();
        assert_eq!(client.fetch(request).await.text(), "PUT payload");
    })
    .await;
}

#[tokio::test]
async fn unknown_host_gets_421_and_never_reaches_an_origin() {
    within(async {
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).run().await;
        let mut client = Client::http1(proxy.http, "elsewhere.test").await;
        let response = client.get("/").await;
        assert_eq!(response.status, StatusCode::MISDIRECTED_REQUEST);
        assert_eq!(response.text(), "421 Misdirected Request: no site is configured for this host\n");
        assert_eq!(response.headers["content-type"], "text/plain; charset=utf-8");
    })
    .await;
}

#[tokio::test]
async fn hosts_match_case_and_port_insensitively() {
    within(async {
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).hosts(&["demo.test", "*.demo.test"]).run().await;
        for host in ["DEMO.test:8080", "www.demo.test", "a.b.demo.test."] {
            let mut client = Client::http1(proxy.http, host).await;
            assert_eq!(client.get("/echo").await.status, StatusCode::OK, "{host}");
        }
    })
    .await;
}

#[tokio::test]
async fn reserved_prefix_is_answered_by_consentry() {
    within(async {
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).run().await;
        let mut client = proxy.http1().await;
        // The consent endpoint answers with the current decision...
        let response = client.get("/.consentry/consent").await;
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.headers["content-type"], "application/json");
        assert!(String::from_utf8_lossy(&response.body).contains(r#""state":"missing""#));
        // ...and an unknown path under the prefix is consentry's own 404,
        // not the origin's (which is HTML).
        let response = client.get("/.consentry/nothing-here").await;
        assert_eq!(response.status, StatusCode::NOT_FOUND);
        assert_eq!(response.headers["content-type"], "text/plain; charset=utf-8");
    })
    .await;
}

#[tokio::test]
async fn forwarded_headers_append_to_the_clients_chain() {
    within(async {
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).run().await;
        let mut client = proxy.http1().await;
        let request = client
            .request(Method::GET, "/echo")
            .header("x-forwarded-for", "203.0.113.9")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "spoofed.test")
            .header("via", "1.1 corporate-proxy")
            .header("x-request-id", "req-42")
            .body(body::empty())
            .unwrap();
        let echo = client.fetch(request).await.echo();
        assert_eq!(echo.one("x-forwarded-for"), "203.0.113.9, 127.0.0.1");
        assert_eq!(echo.one("x-forwarded-proto"), "http");
        assert_eq!(echo.one("x-forwarded-host"), HOST);
        assert_eq!(echo.one("via"), "1.1 corporate-proxy, 1.1 consentry");
        assert_eq!(echo.one("x-request-id"), "req-42");
        assert_eq!(echo.one("host"), HOST);

        let echo = client.get("/echo").await.echo();
        assert_eq!(echo.one("x-forwarded-for"), "127.0.0.1");
        assert_eq!(echo.one("x-request-id").len(), 32, "an id is made when the client sends none");
    })
    .await;
}

#[tokio::test]
async fn host_goes_to_the_origin_as_configured() {
    within(async {
        let origin = demo_origin().await;
        let preserving = proxy().origin(&origin).run().await;
        let echo = preserving.http1().await.get("/echo").await.echo();
        assert_eq!(echo.one("host"), HOST);

        let rewriting = proxy().origin(&origin).preserve_host(false).run().await;
        let echo = rewriting.http1().await.get("/echo").await.echo();
        assert_eq!(echo.one("host"), origin.addr.to_string());
        assert_eq!(echo.one("x-forwarded-host"), HOST);
    })
    .await;
}

#[tokio::test]
async fn absolute_form_targets_route_by_their_authority() {
    within(async {
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).run().await;
        let mut conn = raw(proxy.http).await;
        conn.send(format!(
            "GET http://{HOST}/echo?x=1 HTTP/1.1\r\nHost: elsewhere.test\r\nConnection: close\r\n\r\n"
        ))
        .await;
        let response = conn.read_to_close().await;
        assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
        let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
        let echo = Echo::parse(body.as_bytes());
        assert_eq!(echo.path, "/echo");
        assert_eq!(echo.one("host"), HOST);
    })
    .await;
}

#[tokio::test]
async fn hop_by_hop_request_headers_are_stripped_including_every_connection_field() {
    within(async {
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).run().await;
        let mut conn = raw(proxy.http).await;
        conn.send(format!(
            "GET /echo HTTP/1.1\r\nHost: {HOST}\r\n\
             Connection: keep-alive, X-Drop-One\r\n\
             Connection: x-drop-two\r\n\
             X-Drop-One: 1\r\nX-Drop-Two: 2\r\nX-Keep: 3\r\n\
             Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-Checksum\r\n\
             Upgrade: h2c\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\n\r\n\
             GET /echo HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
        ))
        .await;
        let both = conn.read_to_close().await;
        let second_at = both[10..].find("HTTP/1.1 200").map(|i| i + 10).expect("two responses");
        let first = &both[..second_at];
        let body = &first[first.find("\r\n\r\n").unwrap() + 4..];
        let echo = Echo::parse(body.as_bytes());
        for name in [
            "connection",
            "x-drop-one",
            "x-drop-two",
            "keep-alive",
            "te",
            "trailer",
            "upgrade",
            "proxy-authorization",
            "proxy-connection",
            "transfer-encoding",
        ] {
            assert!(!echo.has(name), "{name} reached the origin: {:?}", echo.headers);
        }
        assert_eq!(echo.one("x-keep"), "3");
    })
    .await;
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_stripped() {
    within(async {
        let origin = raw_origin(|mut stream| async move {
            let _ = read_head(&mut stream).await;
            let response = "HTTP/1.1 200 OK\r\n\
                Content-Length: 2\r\n\
                Connection: keep-alive, X-Secret-One\r\n\
                Connection: x-secret-two\r\n\
                X-Secret-One: 1\r\nX-Secret-Two: 2\r\n\
                Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic realm=x\r\n\
                Trailer: X-Checksum\r\nUpgrade: h2c\r\nX-Visible: yes\r\n\r\nok";
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.flush().await;
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        })
        .await;
        let proxy = proxy().origin(&origin).run().await;
        let response = proxy.http1().await.get("/").await;
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.text(), "ok");
        for name in ["x-secret-one", "x-secret-two", "keep-alive", "proxy-authenticate", "trailer", "upgrade"]
        {
            assert!(
                !response.headers.contains_key(name),
                "{name} reached the client: {:?}",
                response.headers
            );
        }
        assert!(response.header_all("connection").iter().all(|v| !v.to_ascii_lowercase().contains("secret")));
        assert_eq!(response.headers["x-visible"], "yes");
    })
    .await;
}

#[tokio::test]
async fn unreachable_origin_is_502_without_detail() {
    within(async {
        let port = closed_port().await;
        let proxy = proxy().origin_url(format!("http://{port}")).run().await;
        let response = proxy.http1().await.get("/").await;
        assert_eq!(response.status, StatusCode::BAD_GATEWAY);
        assert_eq!(response.text(), "502 Bad Gateway: the site's server cannot be reached\n");
        assert!(!response.text().contains(&port.port().to_string()));
    })
    .await;
}

#[tokio::test]
async fn origin_speaking_garbage_is_502() {
    within(async {
        let origin = raw_origin(|mut stream| async move {
            let _ = read_head(&mut stream).await;
            let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await;
        })
        .await;
        let proxy = proxy().origin(&origin).run().await;
        let response = proxy.http1().await.get("/").await;
        assert_eq!(response.status, StatusCode::BAD_GATEWAY);
        assert_eq!(response.text(), "502 Bad Gateway: the site's server sent no valid response\n");
    })
    .await;
}

#[tokio::test]
async fn silent_origin_is_504() {
    within(async {
        let origin = raw_origin(|mut stream| async move {
            let _ = read_head(&mut stream).await;
            // Never answer; hold the connection open.
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            drop(stream);
        })
        .await;
        let proxy = proxy().origin(&origin).limit("origin_response_timeout", "\"300ms\"").run().await;
        let response = proxy.http1().await.get("/").await;
        assert_eq!(response.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(response.text(), "504 Gateway Timeout: the site's server did not answer in time\n");
    })
    .await;
}

#[tokio::test]
async fn connect_is_not_forwarded() {
    within(async {
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).run().await;
        let mut conn = raw(proxy.http).await;
        conn.send(format!("CONNECT {HOST}:443 HTTP/1.1\r\nHost: {HOST}:443\r\nConnection: close\r\n\r\n"))
            .await;
        let response = conn.read_to_close().await;
        assert!(response.starts_with("HTTP/1.1 405 "), "{response}");
    })
    .await;
}

/// Behind a TLS-terminating load balancer listed in `trusted_proxies`, the
/// visitor's HTTPS (from `X-Forwarded-Proto`) makes the consent cookie
/// `Secure` and is what the origin is told; from anyone else the header is
/// not believed.
#[tokio::test]
async fn trusted_proxies_decide_https_and_the_client() {
    within(async {
        let origin = demo_origin().await;
        let post = |proxy: &Proxy| {
            let addr = proxy.http;
            async move {
                let mut client = Client::http1(addr, HOST).await;
                let request = client
                    .request(http::Method::POST, "/.consentry/consent")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("x-forwarded-proto", "https")
                    .header("x-forwarded-for", "203.0.113.9")
                    .body(body::full("choice=accept-all"))
                    .unwrap();
                let response = client.fetch(request).await;
                assert_eq!(response.status, StatusCode::SEE_OTHER, "{}", response.text());
                response.header_all("set-cookie")[0].clone()
            }
        };
        let trusting = proxy().origin(&origin).listen("trusted_proxies = [\"127.0.0.0/8\"]").run().await;
        assert!(post(&trusting).await.ends_with("; Secure"));
        let mut client = trusting.http1().await;
        let request = client
            .request(Method::GET, "/echo")
            .header("x-forwarded-proto", "https")
            .body(body::empty())
            .unwrap();
        let echo = Echo::parse(&client.fetch(request).await.body);
        assert_eq!(echo.one("x-forwarded-proto"), "https");

        let wary = proxy().origin(&origin).run().await;
        assert!(!post(&wary).await.contains("Secure"));
    })
    .await;
}
