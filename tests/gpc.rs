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
