//! Issue 5's header rules through the running proxy: which HTML responses
//! the body stage leaves alone (HEAD, 204, 206, 304: bytes and
//! `Content-Length` as the origin sent them), what a rewritten one loses
//! (`Content-Length`, a strong `ETag`), the `Accept-Encoding` the origin
//! is asked with, and the CSP built from the granted categories: sent as
//! an additional header (the origin's own CSP stays), enforce or
//! report-only, on pages only.

mod common;

use common::*;
use http::{HeaderValue, Method, StatusCode};

const PAGE: &str = "<!DOCTYPE html><html><head>\
<script src=\"https://connect.facebook.net/en_US/fbevents.js\"></script>\
<script src=\"/app.js\"></script></head><body><p>Hello</p></body></html>";

const ORIGIN_CSP: &str = "frame-ancestors 'none'";

/// Answers every path with [`PAGE`] as `text/html`, a `Content-Length`, a
/// strong `ETag` and the origin's own CSP; `/partial` is a 206 and
/// `/not-modified` a 304, `/no-content` a 204. The `Accept-Encoding` it
/// was asked with comes back in `x-seen-accept-encoding`.
async fn page_origin() -> Origin {
    origin()
        .fallback_fn(|request| async move {
            let seen = request.headers().get("accept-encoding").cloned();
            let (status, body) = match request.uri().path() {
                "/partial" => (StatusCode::PARTIAL_CONTENT, &PAGE[..40]),
                "/not-modified" => (StatusCode::NOT_MODIFIED, ""),
                "/no-content" => (StatusCode::NO_CONTENT, ""),
                _ => (StatusCode::OK, PAGE),
            };
            let mut response = http::Response::new(consentry::body::full(body));
            *response.status_mut() = status;
            let h = response.headers_mut();
            h.insert("content-type", HeaderValue::from_static("text/html; charset=utf-8"));
            if status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED {
                h.insert("content-length", HeaderValue::from(body.len()));
            }
            if status == StatusCode::PARTIAL_CONTENT {
                h.insert(
                    "content-range",
                    HeaderValue::from_str(&format!("bytes 0-39/{}", PAGE.len())).unwrap(),
                );
            }
            h.insert("etag", HeaderValue::from_static("\"v1\""));
            h.insert("content-security-policy", HeaderValue::from_static(ORIGIN_CSP));
            h.insert("x-seen-accept-encoding", seen.unwrap_or(HeaderValue::from_static("-")));
            response
        })
        .run()
        .await
}

fn policy(csp_mode: &str) -> String {
    format!(
        "[policy.test.csp]\nmode = \"{csp_mode}\"\n\
         [[policy.test.resource]]\nmatch = \"connect.facebook.net\"\ncategory = \"advertising\"\n"
    )
}

#[tokio::test]
async fn responses_without_a_rewritable_body_pass_untouched() {
    within(async {
        let origin = page_origin().await;
        let proxy = proxy()
            .origin(&origin)
            .policy("unknown_third_party = \"block\"")
            .toml(&policy("enforce"))
            .run()
            .await;
        let mut client = proxy.http1().await;

        // A GET is rewritten: the tracker is neutralised, the length and
        // the strong ETag go.
        let page = client.get("/").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text().contains("type=\"text/plain\""), "{}", page.text());
        assert!(page.headers.get("content-length").is_none());
        assert_eq!(page.headers["etag"], "W/\"v1\"");

        // HEAD: nothing to rewrite, the origin's length and ETag stay.
        let head =
            client.fetch(client.request(Method::HEAD, "/").body(consentry::body::empty()).unwrap()).await;
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.body.is_empty());
        assert_eq!(head.headers["content-length"], PAGE.len().to_string().as_str());
        assert_eq!(head.headers["etag"], "\"v1\"");

        // 206: a byte range of the origin's representation passes as is.
        let partial = client.get("/partial").await;
        assert_eq!(partial.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(partial.text(), &PAGE[..40]);
        assert_eq!(partial.headers["content-length"], "40");
        assert_eq!(partial.headers["etag"], "\"v1\"");

        for (path, status) in
            [("/not-modified", StatusCode::NOT_MODIFIED), ("/no-content", StatusCode::NO_CONTENT)]
        {
            let r = client.get(path).await;
            assert_eq!(r.status, status);
            assert!(r.body.is_empty(), "{path}");
            assert_eq!(r.headers["etag"], "\"v1\"", "{path}");
        }
    })
    .await;
}

#[tokio::test]
async fn the_origin_is_asked_only_for_encodings_consentry_can_rewrite() {
    within(async {
        let origin = page_origin().await;
        let proxy = proxy().origin(&origin).run().await;
        let mut client = proxy.http1().await;
        let cases = [
            ("gzip, deflate, br, zstd", "gzip, deflate, br, zstd"),
            ("gzip;q=0.8, compress, x-custom, br", "gzip;q=0.8, br"),
            ("sdch, compress", "identity"),
        ];
        for (sent, seen) in cases {
            let r = client.get_with("/", &[("accept-encoding", sent)]).await;
            assert_eq!(r.headers["x-seen-accept-encoding"], seen, "{sent}");
        }
        let r = client.get("/").await;
        assert_eq!(r.headers["x-seen-accept-encoding"], "-", "no field stays no field");
    })
    .await;
}

#[tokio::test]
async fn the_csp_is_an_additional_header_on_pages() {
    within(async {
        let origin = page_origin().await;
        for (mode, header) in
            [("enforce", "content-security-policy"), ("report-only", "content-security-policy-report-only")]
        {
            let proxy = proxy()
                .origin(&origin)
                .policy("unknown_third_party = \"block\"\npresets = [\"meta-pixel\"]")
                .toml(&policy(mode))
                .run()
                .await;
            let mut client = proxy.http1().await;
            let page = client.get("/").await;
            let ours = page.header_all(header);
            let ours = ours
                .iter()
                .find(|v| v.starts_with("script-src"))
                .unwrap_or_else(|| panic!("{mode}: {:?}", page.headers));
            assert!(ours.contains("script-src 'self' "), "{ours}");
            assert!(!ours.contains("facebook"), "advertising is not granted: {ours}");
            for directive in ["frame-src", "img-src", "connect-src"] {
                assert!(ours.contains(directive), "{directive}: {ours}");
            }
            // The origin's own CSP is still there, untouched.
            assert!(page.header_all("content-security-policy").contains(&ORIGIN_CSP.to_string()), "{mode}");

            // Granting advertising lets its hosts in.
            let consent = consentry::consent::encode(&["advertising"], 0, std::time::SystemTime::now(), None);
            let page = client.get_with("/", &[("cookie", &format!("consentry={consent}"))]).await;
            let granted = page.header_all(header);
            assert!(granted.iter().any(|v| v.contains("facebook.net")), "{mode}: {granted:?}");

            // Not a page (HEAD): no CSP of ours.
            let head =
                client.fetch(client.request(Method::HEAD, "/").body(consentry::body::empty()).unwrap()).await;
            assert!(head.header_all(header).iter().all(|v| v == ORIGIN_CSP), "{mode}: {:?}", head.headers);
        }
    })
    .await;
}
