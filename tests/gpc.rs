//! `Sec-GPC: 1` through the proxy (issue 3): it refuses the categories the
//! policy names even when the consent cookie grants them, and the refusal
//! surfaces in the decisions: the audit log names it as the reason.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use consentry::consent::{GPC_NOTE, encode};
use http::Method;

#[tokio::test]
async fn gpc_refusals_are_named_in_the_audit_log() {
    within(async {
        let origin = cookie_origin(vec![
            ("set-cookie".into(), "_fbp=fb.1.1732450000000.1; Path=/; Max-Age=7776000".into()),
            ("set-cookie".into(), "_ga=GA1.1.1.1; Path=/; Max-Age=3600".into()),
        ])
        .await;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let proxy = proxy()
            .origin(&origin.origin)
            .policy("presets = [\"google-analytics\", \"meta-pixel\"]\n")
            .head(&format!("[audit]\nlevel = \"blocked\"\npath = {log:?}\n"))
            .run()
            .await;
        let consent = encode(&["analytics", "advertising"], 0, SystemTime::now(), None);
        let mut client = proxy.http1().await;
        let request = client
            .request(Method::GET, "/")
            .header("cookie", format!("consentry={consent}; _fbp=fb.1.1732450000000.1; _ga=GA1.1.1.1"))
            .header("sec-gpc", "1")
            .body(consentry::body::empty())
            .unwrap();
        let response = client.fetch(request).await;
        // advertising is refused by GPC, analytics passes.
        let set_cookies = response.header_all("set-cookie");
        assert!(set_cookies.iter().any(|c| c.starts_with("_ga=")), "{set_cookies:?}");
        assert!(set_cookies.iter().all(|c| !c.starts_with("_fbp=fb")), "{set_cookies:?}");
        assert!(set_cookies.iter().any(|c| c.starts_with("_fbp=;")), "swept: {set_cookies:?}");
        assert_eq!(cookies_seen(&response.body), vec![format!("consentry={consent}; _ga=GA1.1.1.1")]);

        assert!(proxy.running().shared.account.flush_audit(Duration::from_secs(10)), "audit flushed");
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let fbp: Vec<(&str, &str, &str)> = lines
            .iter()
            .filter(|l| l["name"] == "_fbp")
            .map(|l| {
                (l["item"].as_str().unwrap(), l["action"].as_str().unwrap(), l["rule"].as_str().unwrap())
            })
            .collect();
        assert_eq!(
            fbp,
            vec![
                ("request_cookie", "block", format!("{GPC_NOTE}_fbp (preset meta-pixel)").as_str()),
                ("set_cookie", "block", format!("{GPC_NOTE}_fbp (preset meta-pixel)").as_str()),
                ("sweep", "sweep", format!("{GPC_NOTE}withdrawn").as_str()),
            ],
            "{text}"
        );
        assert!(lines.iter().all(|l| l["name"] != "_ga"), "allowed, so not at level blocked: {text}");
    })
    .await;
}

/// HTML resources too (issue 5): a tracker script, inline snippet and
/// noscript pixel blocked only because `Sec-GPC: 1` took their category
/// back say so in the audit log, as the cookies do; the analytics script
/// the visitor granted runs; without the header the same page is
/// blocked for want of consent alone, and nothing names GPC.
#[tokio::test]
async fn gpc_refusals_are_named_in_html_decisions() {
    const PAGE: &str = "<!doctype html><html><head>\
        <script src=\"https://connect.facebook.net/en_US/fbevents.js\"></script>\
        <script>fbq('init', '1'); fbq('track', 'PageView');</script>\
        <script src=\"https://www.googletagmanager.com/gtag/js?id=G-1\"></script>\
        </head><body><noscript><img height=\"1\" width=\"1\" src=\"https://www.facebook.com/tr?id=1&amp;ev=PageView\"></noscript>\
        <p>hello</p></body></html>";
    within(async {
        let origin = origin()
            .route_fn("/", |_| async {
                let mut r = http::Response::new(consentry::body::full(PAGE));
                r.headers_mut().insert("content-type", "text/html; charset=utf-8".parse().unwrap());
                r
            })
            .run()
            .await;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let proxy = proxy()
            .origin(&origin)
            .policy("presets = [\"google-analytics\", \"meta-pixel\"]\n")
            .head(&format!("[audit]\nlevel = \"all\"\npath = {log:?}\n"))
            .run()
            .await;
        let consent = encode(&["analytics", "advertising"], 0, SystemTime::now(), None);
        let fetch = |gpc: bool| {
            let proxy = &proxy;
            let consent = consent.clone();
            async move {
                let mut client = proxy.http1().await;
                let mut request = client.request(Method::GET, "/").header("cookie", format!("consentry={consent}"));
                if gpc {
                    request = request.header("sec-gpc", "1");
                }
                client.fetch(request.body(consentry::body::empty()).unwrap()).await
            }
        };
        let response = fetch(true).await;
        let body = response.text();
        // The page is rewritten on the wire: advertising neutralised,
        // analytics (granted, not named by gpc_refuses) left to run.
        assert!(
            body.contains("<script type=\"text/plain\" data-category=\"advertising\" src=\"https://connect.facebook.net/"),
            "{body}"
        );
        assert!(body.contains("<script type=\"text/plain\" data-category=\"advertising\">fbq("), "{body}");
        assert!(body.contains("data-src=\"https://www.facebook.com/tr?"), "{body}");
        assert!(body.contains("<script src=\"https://www.googletagmanager.com/gtag/js?id=G-1\"></script>"), "{body}");

        assert!(proxy.running().shared.account.flush_audit(Duration::from_secs(10)), "audit flushed");
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let html: Vec<(&str, &str, &str)> = lines
            .iter()
            .filter(|l| !matches!(l["item"].as_str(), Some("request_cookie" | "set_cookie" | "sweep")))
            .map(|l| (l["item"].as_str().unwrap(), l["action"].as_str().unwrap(), l["rule"].as_str().unwrap()))
            .collect();
        let blocked: Vec<_> = html.iter().filter(|(_, a, _)| *a == "block").collect();
        assert_eq!(
            blocked.iter().map(|(i, _, _)| *i).collect::<Vec<_>>(),
            vec!["script", "inline_script", "noscript"],
            "{text}"
        );
        for (_, _, rule) in &blocked {
            assert!(rule.starts_with(GPC_NOTE), "{text}");
            assert!(rule.contains("preset meta-pixel"), "the rule is still named: {text}");
        }
        let allowed: Vec<_> = html.iter().filter(|(_, a, _)| *a == "allow").collect();
        assert_eq!(allowed.len(), 1, "{text}");
        assert_eq!(allowed[0].0, "script");
        assert!(!allowed[0].2.contains("GPC"), "{text}");

        // Without Sec-GPC the visitor granted advertising: nothing blocked.
        let before = lines.len();
        let response = fetch(false).await;
        assert!(!response.text().contains("text/plain"), "{}", response.text());
        assert!(proxy.running().shared.account.flush_audit(Duration::from_secs(10)), "audit flushed");
        let text = std::fs::read_to_string(&log).unwrap();
        let later: Vec<serde_json::Value> =
            text.lines().skip(before).map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(!later.is_empty(), "{text}");
        assert!(later.iter().all(|l| l["action"] == "allow" && !l["rule"].as_str().unwrap().contains("GPC")), "{text}");
    })
    .await;
}
