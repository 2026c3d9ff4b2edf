//! Where the built-in banner goes, through real sockets: only into
//! top-level documents (not iframes, fetches, htmx/XHR requests or HTML
//! fragments), the dialog only without valid consent, the preferences page
//! at `/.consentry/preferences`, and room made for it in the origin's own
//! `Content-Security-Policy`.

mod common;

use common::*;
use http::{Method, StatusCode};

const PAGE: &str = "<!doctype html><html><head><title>t</title></head><body><p>page</p></body></html>";
const FRAGMENT: &str = "<tr><td>row 1</td></tr><tr><td>row 2</td></tr>";
const STRICT_CSP: &str = "script-src 'nonce-s1te' 'strict-dynamic'; style-src 'self'; object-src 'none'";
const HOSTS_CSP: &str = "default-src https://cdn.example; img-src *";

fn html(text: &'static str) -> http::Response<consentry::body::Body> {
    http::Response::builder()
        .header("content-type", "text/html; charset=utf-8")
        .body(consentry::body::full(text))
        .unwrap()
}

fn html_with_csp(text: &'static str, csp: &'static str) -> http::Response<consentry::body::Body> {
    let mut res = html(text);
    res.headers_mut().insert("content-security-policy", http::HeaderValue::from_static(csp));
    res
}

async fn shop() -> (Origin, Proxy) {
    let origin = origin()
        .route_fn("/page", |_| async { html(PAGE) })
        .route_fn("/fragment", |_| async { html(FRAGMENT) })
        .route_fn("/no-body-end", |_| async { html("<html><body><p>cut short") })
        .route_fn("/strict", |_| async { html_with_csp(PAGE, STRICT_CSP) })
        .route_fn("/hosts", |_| async { html_with_csp(PAGE, HOSTS_CSP) })
        .run()
        .await;
    let proxy = proxy().origin(&origin).toml("[policy.test.banner]\nenabled = true\n").run().await;
    (origin, proxy)
}

async fn get(proxy: &Proxy, path: &str, headers: &[(&str, &str)]) -> TestResponse {
    let mut client = Client::http1(proxy.http, HOST).await;
    let mut request = client.request(Method::GET, path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    client.fetch(request.body(consentry::body::empty()).unwrap()).await
}

#[tokio::test]
async fn only_top_level_documents_get_the_banner() {
    within(async {
        let (_origin, proxy) = shop().await;
        let navigate = [("sec-fetch-dest", "document"), ("sec-fetch-mode", "navigate")];
        let page = get(&proxy, "/page", &navigate).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text().contains("<p>page</p><div id=\"consentry-root\""), "{}", page.text());
        assert!(page.text().contains("id=\"consentry-dialog\""));
        // The answer depends on the headers that decide it.
        let vary = page.header_all("vary").join(",").to_ascii_lowercase();
        for name in ["sec-fetch-dest", "hx-request", "x-requested-with"] {
            assert!(vary.contains(name), "Vary: {vary}");
        }
        // A request without Fetch Metadata (old browser, curl) is a document.
        assert!(get(&proxy, "/page", &[]).await.text().contains("consentry-root"));

        for headers in [
            &[("sec-fetch-dest", "iframe")][..],
            &[("sec-fetch-dest", "empty"), ("sec-fetch-mode", "cors")],
            &[("hx-request", "true")],
            &[("x-requested-with", "XMLHttpRequest")],
        ] {
            let res = get(&proxy, "/page", headers).await;
            assert_eq!(res.status, StatusCode::OK);
            assert_eq!(res.text(), PAGE, "{headers:?}: the page must pass without a banner");
        }
        // A fragment served as text/html to a plain navigation: no banner
        // appended at its end.
        let res = get(&proxy, "/fragment", &navigate).await;
        assert_eq!(res.text(), FRAGMENT);
        // A document cut short still gets it, at the end.
        let res = get(&proxy, "/no-body-end", &navigate).await;
        assert!(
            res.text().starts_with("<html><body><p>cut short<div id=\"consentry-root\""),
            "{}",
            res.text()
        );
    })
    .await;
}

#[tokio::test]
async fn valid_consent_gets_only_the_manage_control() {
    within(async {
        let (_origin, proxy) = shop().await;
        let mut client = Client::http1(proxy.http, HOST).await;
        let post = client
            .request(Method::POST, "/.consentry/consent")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(consentry::body::full("choice=custom&category=analytics&return_to=%2Fpage"))
            .unwrap();
        let res = client.fetch(post).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER);
        let cookie = res
            .header_all("set-cookie")
            .into_iter()
            .find(|c| c.starts_with("consentry="))
            .expect("consent cookie");
        let cookie = cookie.split(';').next().unwrap().to_string();

        let page = get(&proxy, "/page", &[("cookie", &cookie)]).await;
        let text = page.text();
        assert!(text.contains("id=\"consentry-manage\""), "{text}");
        for id in ["consentry-banner", "consentry-dialog", "consentry-form", "consentry-accept-all"] {
            assert!(!text.contains(id), "{id} injected with valid consent: {text}");
        }
        let injected = text.len() - PAGE.len();
        assert!(injected < 600, "{injected} bytes injected with valid consent");

        // Its link leads to the full dialog, switches showing the choice.
        let prefs = get(&proxy, "/.consentry/preferences?return_to=%2Fpage", &[("cookie", &cookie)]).await;
        assert_eq!(prefs.status, StatusCode::OK);
        assert_eq!(prefs.header_all("content-type"), ["text/html; charset=utf-8"]);
        assert_eq!(prefs.header_all("cache-control"), ["no-store"]);
        assert!(prefs.header_all("content-security-policy")[0].starts_with("default-src 'none'"));
        let html = prefs.text();
        assert!(html.contains("<details open id=\"consentry-prefs\""), "{html}");
        let analytics = &html[html.find("id=\"consentry-cat-analytics-box\"").unwrap()..];
        assert!(analytics[..analytics.find('>').unwrap()].contains(" checked"), "{analytics}");
        assert!(html.contains("name=\"return_to\" value=\"/page\""));
        // Without consent: nothing ticked; in French when asked.
        let prefs = get(&proxy, "/.consentry/preferences", &[("accept-language", "fr")]).await;
        assert!(prefs.text().contains(">Tout refuser</button>") && !prefs.text().contains(" checked aria"));
        let post = get(&proxy, "/.consentry/preferences", &[]).await;
        assert_eq!(post.status, StatusCode::OK);
    })
    .await;
}

/// The nonce attribute of the banner's `<script>`.
fn script_nonce(html: &str) -> String {
    let at = html.find("<script src=\"/.consentry/banner.js").expect("banner script");
    let tag = &html[at..at + html[at..].find('>').unwrap()];
    let n = tag.find("nonce=\"").expect("nonce on the banner script") + 7;
    tag[n..n + tag[n..].find('"').unwrap()].to_string()
}

#[tokio::test]
async fn the_origin_csp_lets_the_banner_in_and_nothing_else() {
    within(async {
        let (_origin, proxy) = shop().await;
        // A strict, nonce-based CSP: the banner's elements get a nonce of
        // their own, added to the origin's list; the site's own nonce and
        // everything else are untouched.
        let res = get(&proxy, "/strict", &[]).await;
        let csp = res.header_all("content-security-policy");
        assert_eq!(csp.len(), 1, "{csp:?}");
        let nonce = script_nonce(&res.text());
        assert_ne!(nonce, "s1te");
        assert_eq!(
            csp[0],
            format!("script-src 'nonce-s1te' 'strict-dynamic' 'nonce-{nonce}'; style-src 'self'; object-src 'none'")
        );
        assert!(res.text().contains("<link rel=\"stylesheet\" href=\"/.consentry/banner.css?v="));
        assert_eq!(res.text().matches(&format!("nonce=\"{nonce}\"")).count(), 2, "script and stylesheet");
        // A host allowlist: the banner's path only, not 'self'.
        let res = get(&proxy, "/hosts", &[]).await;
        let csp = res.header_all("content-security-policy");
        assert_eq!(
            csp,
            [format!("default-src https://cdn.example http://{HOST}/.consentry/; img-src *")],
            "{csp:?}"
        );
        // No origin CSP: nothing added (no consentry CSP in this policy).
        let res = get(&proxy, "/page", &[]).await;
        assert!(res.header_all("content-security-policy").is_empty());
        assert!(!res.text().contains("nonce="));
    })
    .await;
}

/// report-only changes no byte of a page, so a banner-enabled policy in
/// report-only mode shows no banner: the page, `Content-Length` and `Vary`
/// are the origin's (and `consentry check` says the banner has no effect).
#[tokio::test]
async fn report_only_shows_no_banner() {
    within(async {
        let origin = origin().route_fn("/page", |_| async { html(PAGE) }).run().await;
        let reporting = proxy()
            .origin(&origin)
            .policy("mode = \"report-only\"")
            .toml("[policy.test.banner]\nenabled = true\n")
            .run()
            .await;
        let navigate = [("sec-fetch-dest", "document"), ("sec-fetch-mode", "navigate")];
        let page = get(&reporting, "/page", &navigate).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.text(), PAGE, "the origin's page, byte for byte");
        assert_eq!(
            page.headers.get("content-length").map(|v| v.to_str().unwrap()),
            Some(&*PAGE.len().to_string())
        );
        assert!(page.headers.get("vary").is_none(), "{:?}", page.headers);
        assert!(page.headers.get("content-security-policy").is_none());

        // The same policy in enforce mode does show it (the test can fail).
        let enforcing = proxy().origin(&origin).toml("[policy.test.banner]\nenabled = true\n").run().await;
        let page = get(&enforcing, "/page", &navigate).await;
        assert!(page.text().contains("id=\"consentry-dialog\""), "{}", page.text());
    })
    .await;
}
