//! Issue 4 end to end: cookie enforcement in both directions through the
//! running proxy, over real sockets.
//!
//! A scenario origin sets a realistic cookie set (necessary, functional,
//! analytics, advertising, and one no rule names) with the Domain/Path/
//! Expires variety real sites use, and echoes the `Cookie` fields it
//! receives. For every consent state the tests assert exactly which
//! `Set-Cookie` headers reach the client (byte-identical, or capped), which
//! request cookies reach the origin (order and bytes kept), which sweep
//! deletions are sent, and `Vary` — over HTTP/1.1 and over HTTP/2 with one
//! `cookie` field per pair, for consentry's own cookie (signed, expired,
//! old revision, forged), OneTrust and IAB TCF. Then report-only (the
//! origin's bytes plus a report), `Consentry-Consent`, metrics, inventory,
//! declaration, the audit log, `Vary` corner cases, hardening, and the
//! consent loop (endpoint → cookie → enforcement) followed in a browser
//! cookie store ([`Browser`]).
//!
//! The expected outcome of each state is computed from the table below,
//! where each cookie's category is written by hand from the policy text
//! (not asked of the policy), and the expected deletions are derived from
//! the request host by [`site_sweep`] (and written out literally in
//! `none_and_all_written_out`, which checks that arithmetic).

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use consentry::consent::encode;
use http::{Method, Request, StatusCode};

/// The site's host; `shop.test` is its registrable domain.
const SHOP: &str = "www.shop.test";
const ONETRUST_HOST: &str = "ot.shop.test";
const TCF_HOST: &str = "tcf.shop.test";
const TCF_DEFAULT_HOST: &str = "tcf2.shop.test";
const REPORT_HOST: &str = "report.shop.test";

/// The `consentry` cookie's signing key.
const KEY: &str = "e2e-7c1d0b5a9f3e";
/// The policy revision consent must be given for.
const REVISION: u64 = 3;
/// What a client forges in every request.
const FORGED_HEADER: &str = "necessary,functional,analytics,advertising";

/// `[policy.test]`: three presets, site rules for the shop's own cookies.
const POLICY: &str = r#"
presets = ["google-analytics", "meta-pixel", "hubspot"]
unknown_cookies = "block"
consent_header = true
"#;

const RULES: &str = r#"
[policy.test.consent]
revision = 3
hmac_key = "e2e-7c1d0b5a9f3e"

[policy.test.categories]
necessary = { description = "Sign-in, security and your consent choice" }
functional = { description = "Language and chat" }
analytics = { description = "Audience measurement", max_cookie_days = 395 }
advertising = { description = "Advertising and retargeting" }

[[policy.test.cookie]]
name = "sessionid"
category = "necessary"
provider = "Shop"
purpose = "Keeps you signed in"
duration = "Session"

[[policy.test.cookie]]
name = "csrftoken"
category = "necessary"
provider = "Shop"
purpose = "Protects forms against cross-site request forgery"
duration = "1 year"

[[policy.test.cookie]]
name = "lang"
category = "functional"
provider = "Shop"
purpose = "Remembers the language"
duration = "1 year"
domain = ".shop.test"

[policy.onetrust]
extends = "test"
[policy.onetrust.consent]
format = "onetrust"

[policy.tcf]
extends = "test"
[policy.tcf.consent]
format = "tcf"
# The TC strings below are real ones from 2022: old enough to be expired
# under the default 180 days, which `tcf_consent_too_old_is_none` shows.
max_age_days = 3650

[policy.tcf_default]
extends = "test"
[policy.tcf_default.consent]
format = "tcf"

[policy.report]
extends = "test"
mode = "report-only"
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cat {
    Necessary,
    Functional,
    Analytics,
    Advertising,
    /// No rule names it: `unknown_cookies = "block"`.
    Unknown,
}
use Cat::*;

/// A request cookie: the pair as the browser sends it and its category.
/// When it is refused, the proxy deletes it as [`site_sweep`] says.
struct RequestCookie {
    pair: &'static str,
    cat: Cat,
}

const fn rc(pair: &'static str, cat: Cat) -> RequestCookie {
    RequestCookie { pair, cat }
}

/// What the browser sends (the consent cookie is inserted third). A
/// refused one is deleted on `/` on each of the site's domains, then
/// host-only ([`site_sweep`]): preset rules name no domain, and `lang`'s
/// site rule names `.shop.test`, which is one of them.
const REQUEST: [RequestCookie; 10] = [
    rc("sessionid=6f1ed002ab5595859014ebf0951522d9", Necessary),
    rc("_ga=GA1.1.1397352585.1732450000", Analytics),
    rc("lang=fr", Functional),
    rc("_ga_3K5XH8N2QF=GS1.1.1732450000.1.0.1732450000.0.0.0", Analytics),
    rc("csrftoken=Xm5rQ0ZVbVZ0d2V4aUlqTzRzS0pXdz09", Necessary),
    rc(
        "__hstc=37846505.d41d8cd98f00b204e9800998ecf8427e.1732450000000.1732450000000.1732450000000.1",
        Analytics,
    ),
    rc("hubspotutk=d41d8cd98f00b204e9800998ecf8427e", Analytics),
    rc("messagesUtk=5f1b2c9e0d8a4e7f9b6c3a2d1e0f9a8b", Functional),
    rc("_fbp=fb.1.1732450000000.1234567890", Advertising),
    rc("tracker_xyz=v1.8e2f", Unknown),
];

/// A `Set-Cookie` the origin sends, its category and what the client gets
/// when it is allowed.
struct OriginCookie {
    value: String,
    cat: Cat,
    /// `None`: byte-identical; `Some`: the capped value.
    capped: Option<String>,
    /// A deletion: passes whatever the consent.
    deletion: bool,
}

fn in_days(days: u64) -> String {
    httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(days * 86_400))
}

/// The origin's `Set-Cookie` headers, in the order it sends them.
fn origin_cookies() -> Vec<OriginCookie> {
    let keep = |value: String, cat| OriginCookie { value, cat, capped: None, deletion: false };
    vec![
        keep("sessionid=6f1ed002ab5595859014ebf0951522d9; Path=/; HttpOnly; Secure; SameSite=Lax".into(), Necessary),
        // Django's shape: both Expires and Max-Age, lower-case `expires`.
        keep(
            format!("csrftoken=Xm5rQ0ZVbVZ0d2V4aUlqTzRzS0pXdz09; expires={}; Max-Age=31449600; Path=/; SameSite=Lax", in_days(364)),
            Necessary,
        ),
        keep("lang=fr; Domain=.shop.test; Path=/; Max-Age=31536000".into(), Functional),
        // Two years, over the 395-day analytics cap: only Max-Age changes.
        OriginCookie {
            value: "_ga=GA1.1.1397352585.1732450000; Domain=.shop.test; Path=/; Max-Age=63072000".into(),
            cat: Analytics,
            capped: Some("_ga=GA1.1.1397352585.1732450000; Domain=.shop.test; Path=/; Max-Age=34128000".into()),
            deletion: false,
        },
        keep(
            format!("_ga_3K5XH8N2QF=GS1.1.1732450000.1.0.1732450000.0.0.0; Domain=.shop.test; Path=/; Expires={}", in_days(30)),
            Analytics,
        ),
        keep(
            "__hstc=37846505.d41d8cd98f00b204e9800998ecf8427e.1732450000000.1732450000000.1732450000000.1; Domain=.shop.test; Path=/; Max-Age=15552000".into(),
            Analytics,
        ),
        keep(
            format!("hubspotutk=d41d8cd98f00b204e9800998ecf8427e; Domain=.shop.test; Path=/; Expires={}; SameSite=Lax", in_days(180)),
            Analytics,
        ),
        keep("_fbp=fb.1.1732450000000.1234567890; Domain=.shop.test; Path=/; Max-Age=7776000; SameSite=Lax".into(), Advertising),
        keep("tracker_xyz=v1.8e2f; Path=/; Max-Age=86400".into(), Unknown),
        // analytics.js clearing an old cookie: a deletion always passes.
        OriginCookie {
            value: "_gid=; Domain=.shop.test; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT".into(),
            cat: Analytics,
            capped: None,
            deletion: true,
        },
    ]
}

/// The scenario origin: the cookies above and `Vary: Accept-Encoding`.
async fn scenario_origin() -> (CookieOrigin, Vec<OriginCookie>) {
    let cookies = origin_cookies();
    let mut headers: Vec<(String, String)> = vec![("vary".into(), "Accept-Encoding".into())];
    headers.extend(cookies.iter().map(|c| ("set-cookie".to_string(), c.value.clone())));
    (cookie_origin(headers).await, cookies)
}

fn builder(origin: &CookieOrigin) -> ProxyBuilder {
    proxy()
        .origin(&origin.origin)
        .hosts(&[SHOP, "shop.test"])
        .policy(POLICY)
        .toml(RULES)
        .site("onetrust", &[ONETRUST_HOST], "onetrust")
        .site("tcf", &[TCF_HOST], "tcf")
        .site("tcf_default", &[TCF_DEFAULT_HOST], "tcf_default")
        .site("report", &[REPORT_HOST], "report")
        .admin()
}

/// One consent state: the consent cookie pair (if any), `Sec-GPC`, and
/// what should be granted.
struct State {
    name: &'static str,
    consent: Option<String>,
    gpc: bool,
    granted: &'static [Cat],
}

fn consentry(categories: &[&str], revision: u64, given_at: SystemTime, key: Option<&[u8]>) -> Option<String> {
    Some(format!("consentry={}", encode(categories, revision, given_at, key)))
}

fn consentry_states() -> Vec<State> {
    let now = SystemTime::now();
    let key = Some(KEY.as_bytes());
    let all = ["necessary", "functional", "analytics", "advertising"];
    let day = Duration::from_secs(86_400);
    vec![
        State { name: "none", consent: None, gpc: false, granted: &[] },
        State {
            name: "necessary only",
            consent: consentry(&["necessary"], REVISION, now, key),
            gpc: false,
            granted: &[],
        },
        State {
            name: "functional",
            consent: consentry(&["necessary", "functional"], REVISION, now, key),
            gpc: false,
            granted: &[Functional],
        },
        State {
            name: "analytics",
            consent: consentry(&["necessary", "analytics"], REVISION, now, key),
            gpc: false,
            granted: &[Analytics],
        },
        State {
            name: "advertising",
            consent: consentry(&["advertising"], REVISION, now, key),
            gpc: false,
            granted: &[Advertising],
        },
        State {
            name: "all",
            consent: consentry(&all, REVISION, now, key),
            gpc: false,
            granted: &[Functional, Analytics, Advertising],
        },
        // GPC refuses advertising (the default `gpc_refuses`).
        State {
            name: "all + GPC",
            consent: consentry(&all, REVISION, now, key),
            gpc: true,
            granted: &[Functional, Analytics],
        },
        // 181 days old; `max_age_days` defaults to 180.
        State {
            name: "expired",
            consent: consentry(&all, REVISION, now - day * 181, key),
            gpc: false,
            granted: &[],
        },
        State {
            name: "old revision",
            consent: consentry(&all, REVISION - 1, now, key),
            gpc: false,
            granted: &[],
        },
        State {
            name: "forged HMAC",
            consent: consentry(&all, REVISION, now, Some(b"somebody-else")),
            gpc: false,
            granted: &[],
        },
        State { name: "unsigned", consent: consentry(&all, REVISION, now, None), gpc: false, granted: &[] },
    ]
}

fn allowed(cat: Cat, granted: &[Cat]) -> bool {
    cat == Necessary || granted.contains(&cat)
}

fn category_list(granted: &[Cat]) -> String {
    let mut names = vec!["necessary"];
    for (cat, name) in [(Functional, "functional"), (Analytics, "analytics"), (Advertising, "advertising")] {
        if granted.contains(&cat) {
            names.push(name);
        }
    }
    names.join(",")
}

/// The request's cookie pairs, the consent cookie third.
fn request_pairs(consent: Option<&str>, extra: &[&str]) -> Vec<String> {
    let mut pairs: Vec<String> = REQUEST.iter().map(|c| c.pair.to_string()).collect();
    if let Some(consent) = consent {
        pairs.insert(2, consent.to_string());
    }
    pairs.extend(extra.iter().map(|p| (*p).to_string()));
    pairs
}

/// What the origin should receive: the allowed pairs, in order, as sent.
/// `kept` are consent-manager cookies that are always necessary.
fn expected_origin_pairs(consent: Option<&str>, granted: &[Cat], extra: &[&str]) -> Vec<String> {
    let mut pairs: Vec<String> =
        REQUEST.iter().filter(|c| allowed(c.cat, granted)).map(|c| c.pair.to_string()).collect();
    if let Some(consent) = consent {
        // Everything before the consent cookie in REQUEST that is allowed.
        let before = REQUEST[..2].iter().filter(|c| allowed(c.cat, granted)).count();
        pairs.insert(before, consent.to_string());
    }
    pairs.extend(extra.iter().map(|p| (*p).to_string()));
    pairs
}

/// The `Set-Cookie` headers the client should get from `host`: the
/// origin's allowed ones (byte-identical or capped) in order, then the sweep
/// deletions for refused request cookies whose name the response does not
/// set itself (HTTPS adds `; Secure`).
fn expected_set_cookies(origin: &[OriginCookie], granted: &[Cat], host: &str, https: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut kept_names = Vec::new();
    for c in origin {
        if c.deletion || allowed(c.cat, granted) {
            out.push(c.capped.clone().unwrap_or_else(|| c.value.clone()));
            kept_names.push(c.value.split('=').next().unwrap().to_string());
        }
    }
    for c in &REQUEST {
        let name = c.pair.split('=').next().unwrap();
        if allowed(c.cat, granted) || kept_names.iter().any(|n| n == name) {
            continue;
        }
        for deletion in site_sweep(&format!("{name}="), host) {
            out.push(if https { format!("{deletion}; Secure") } else { deletion });
        }
    }
    out
}

async fn send(client: &mut Client, pairs: &[String], gpc: bool, split: bool) -> TestResponse {
    let mut request = client
        .request(Method::GET, "/account/orders?page=2")
        .header("consentry-consent", FORGED_HEADER)
        .header("accept-encoding", "gzip, br");
    if split {
        for pair in pairs {
            request = request.header("cookie", pair.as_str());
        }
    } else {
        request = request.header("cookie", pairs.join("; "));
    }
    if gpc {
        request = request.header("sec-gpc", "1");
    }
    client.fetch(request.body(consentry::body::empty()).unwrap()).await
}

/// Asserts one response and what the origin saw.
#[track_caller]
fn check(
    label: &str,
    response: &TestResponse,
    origin: &CookieOrigin,
    expect_set_cookies: &[String],
    expect_cookie: &[String],
    expect_consent: &str,
) {
    assert_eq!(response.status, StatusCode::OK, "{label}");
    assert_eq!(response.header_all("set-cookie"), expect_set_cookies, "{label}: Set-Cookie");
    let seen = cookies_seen(&response.body);
    let want = if expect_cookie.is_empty() { vec![] } else { vec![expect_cookie.join("; ")] };
    assert_eq!(seen, want, "{label}: Cookie at the origin");
    assert_eq!(origin.last_all("consentry-consent"), vec![expect_consent], "{label}: Consentry-Consent");
    assert_eq!(response.header_all("vary"), vec!["Accept-Encoding", "Cookie, Sec-GPC"], "{label}: Vary");
}

/// Every consentry consent state over HTTP/1.1, one connection.
#[tokio::test]
async fn consentry_states_over_http1() {
    within(async {
        let (origin, cookies) = scenario_origin().await;
        let proxy = builder(&origin).run().await;
        let mut client = proxy.http1_to(SHOP).await;
        for state in consentry_states() {
            let pairs = request_pairs(state.consent.as_deref(), &[]);
            let response = send(&mut client, &pairs, state.gpc, false).await;
            check(
                state.name,
                &response,
                &origin,
                &expected_set_cookies(&cookies, state.granted, SHOP, false),
                &expected_origin_pairs(state.consent.as_deref(), state.granted, &[]),
                &category_list(state.granted),
            );
        }
    })
    .await;
}

/// The two ends of the table written out by hand, so that the table's
/// arithmetic itself is checked against plain bytes.
#[tokio::test]
async fn none_and_all_written_out() {
    within(async {
        let (origin, cookies) = scenario_origin().await;
        let proxy = builder(&origin).run().await;
        let mut client = proxy.http1_to(SHOP).await;

        let response = send(&mut client, &request_pairs(None, &[]), false, false).await;
        let got = response.header_all("set-cookie");
        // The two necessary cookies and the origin's own deletion, then 8
        // refused cookies × (shop.test, www.shop.test, host-only).
        assert_eq!(got.len(), 3 + 8 * 3, "{got:#?}");
        assert_eq!(got[0], cookies[0].value);
        assert_eq!(got[1], cookies[1].value);
        assert_eq!(got[2], "_gid=; Domain=.shop.test; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            got[3..],
            [
                "_ga=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=shop.test",
                "_ga=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=www.shop.test",
                "_ga=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                "lang=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=shop.test",
                "lang=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=www.shop.test",
                "lang=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                "_ga_3K5XH8N2QF=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=shop.test",
                "_ga_3K5XH8N2QF=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=www.shop.test",
                "_ga_3K5XH8N2QF=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                "__hstc=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=shop.test",
                "__hstc=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=www.shop.test",
                "__hstc=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                "hubspotutk=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=shop.test",
                "hubspotutk=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=www.shop.test",
                "hubspotutk=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                "messagesUtk=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=shop.test",
                "messagesUtk=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=www.shop.test",
                "messagesUtk=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                "_fbp=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=shop.test",
                "_fbp=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=www.shop.test",
                "_fbp=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                "tracker_xyz=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=shop.test",
                "tracker_xyz=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=www.shop.test",
                "tracker_xyz=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            ]
        );
        assert_eq!(
            cookies_seen(&response.body),
            ["sessionid=6f1ed002ab5595859014ebf0951522d9; csrftoken=Xm5rQ0ZVbVZ0d2V4aUlqTzRzS0pXdz09"]
        );
        assert_eq!(origin.last_all("consentry-consent"), ["necessary"]);

        let consent = format!(
            "consentry={}",
            encode(
                &["necessary", "functional", "analytics", "advertising"],
                REVISION,
                SystemTime::now(),
                Some(KEY.as_bytes())
            )
        );
        let response = send(&mut client, &request_pairs(Some(&consent), &[]), false, false).await;
        let got = response.header_all("set-cookie");
        let mut want: Vec<String> = cookies.iter().map(|c| c.value.clone()).collect();
        want[3] = "_ga=GA1.1.1397352585.1732450000; Domain=.shop.test; Path=/; Max-Age=34128000".into();
        want.remove(8); // tracker_xyz: no rule, blocked whatever the consent
        want.extend([
            "tracker_xyz=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=shop.test".into(),
            "tracker_xyz=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=www.shop.test".into(),
            "tracker_xyz=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT".into(),
        ]);
        assert_eq!(got, want);
        let mut pairs = request_pairs(Some(&consent), &[]);
        pairs.pop();
        assert_eq!(cookies_seen(&response.body), [pairs.join("; ")]);
        assert_eq!(origin.last_all("consentry-consent"), ["necessary,functional,analytics,advertising"]);
    })
    .await;
}

/// HTTP/2 over TLS with one `cookie` field per pair (as browsers send
/// them): the origin gets one joined field of the allowed pairs, and the
/// deletions carry `Secure`.
#[tokio::test]
async fn consentry_states_over_h2_with_split_cookies() {
    within(async {
        let cert = test_cert(&[SHOP]);
        let (origin, cookies) = scenario_origin().await;
        let proxy = builder(&origin).https(&[&cert]).run().await;
        let mut client = proxy.h2(SHOP, &[&cert]).await;
        for state in consentry_states() {
            let pairs = request_pairs(state.consent.as_deref(), &[]);
            let response = send(&mut client, &pairs, state.gpc, true).await;
            check(
                state.name,
                &response,
                &origin,
                &expected_set_cookies(&cookies, state.granted, SHOP, true),
                &expected_origin_pairs(state.consent.as_deref(), state.granted, &[]),
                &category_list(state.granted),
            );
        }
    })
    .await;
}

/// `Date.prototype.toString()` as OneTrust writes it in `datestamp`,
/// form-encoded: `Tue+Nov+24+2026+19%3A16%3A13+GMT%2B0000+(Coordinated+Universal+Time)`.
fn onetrust_datestamp(at: SystemTime) -> String {
    // "Tue, 24 Nov 2026 19:16:13 GMT"
    let http = httpdate::fmt_http_date(at);
    let w: Vec<&str> = http.split(' ').collect();
    let js =
        format!("{} {} {} {} {} GMT+0000 (Coordinated Universal Time)", &w[0][..3], w[2], w[1], w[3], w[4]);
    js.replace('+', "%2B").replace(':', "%3A").replace(' ', "+")
}

fn optanon(groups: &str, reconsent: bool) -> String {
    format!(
        "OptanonConsent=isGpcEnabled=0&datestamp={}&version=202409.1.0&browserGpcFlag=0&isIABGlobal=false\
         &hosts=&consentId=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0&interactionCount=1&isAnonUser=1\
         &landingPath=NotLandingPage&groups={}&AwaitingReconsent={reconsent}&geolocation=FR%3BIDF",
        onetrust_datestamp(SystemTime::now()),
        groups.replace(':', "%3A").replace(',', "%2C"),
    )
}

/// OneTrust: the groups map to categories (C0002 analytics, C0003
/// functional, C0004 advertising); its own cookies are necessary and reach
/// the origin; `AwaitingReconsent=true` is no consent.
#[tokio::test]
async fn onetrust_consent() {
    within(async {
        let (origin, cookies) = scenario_origin().await;
        let proxy = builder(&origin).run().await;
        let mut client = proxy.http1_to(ONETRUST_HOST).await;
        let closed = "OptanonAlertBoxClosed=2026-11-24T12:00:00.000Z";
        let cases: [(&str, String, &[Cat]); 3] = [
            ("analytics only", optanon("C0001:1,C0002:1,C0003:0,C0004:0", false), &[Analytics]),
            (
                "all groups",
                optanon("C0001:1,C0002:1,C0003:1,C0004:1", false),
                &[Functional, Analytics, Advertising],
            ),
            ("awaiting reconsent", optanon("C0001:1,C0002:1,C0003:1,C0004:1", true), &[]),
        ];
        for (label, consent, granted) in cases {
            let pairs = request_pairs(Some(&consent), &[closed]);
            let response = send(&mut client, &pairs, false, false).await;
            check(
                label,
                &response,
                &origin,
                &expected_set_cookies(&cookies, granted, ONETRUST_HOST, false),
                &expected_origin_pairs(Some(&consent), granted, &[closed]),
                &category_list(granted),
            );
        }
    })
    .await;
}

/// IAB TCF v2.2 with real TC strings: purposes 1, 3, 5, 7, 9 (1 and 7–9
/// are analytics, 3 advertising); a reject-all string grants nothing; the
/// Additional Consent string travels with it as necessary.
#[tokio::test]
async fn tcf_consent() {
    within(async {
        let (origin, cookies) = scenario_origin().await;
        let proxy = builder(&origin).run().await;
        let mut client = proxy.http1_to(TCF_HOST).await;
        let odd = "euconsent-v2=CPh7_cXPh7_cXKMAAAENCZCAAKqAAAAAAAAAAAAAAAAA.II7Nd_X__bX9n-_7_6ft0eY1f9_r37uQzDhfNs-8F3L_W_LwX32E7NF36tq4KmR4ku1bBIQNtHMnUDUmxaolVrzHsak2cpyNKJ_JkknsZe2dYGF9Pn9lD-YKZ7_5_9_f52T_9_9_-39z3_9f___dv_-__-vjf_599n_v9fV_78_Kf9______-____________8A";
        let reject = "euconsent-v2=CPt3fQAPt3fQACNAFAENDLCgAAAAAAAAACiQAAAOCgDAB-AIsAZ8A6QDBAHBAAAA.YAAAAAAAAAAA";
        let ac = "addtl_consent=1~39.4.55";
        let cases: [(&str, &str, &[Cat]); 2] =
            [("purposes 1,3,5,7,9", odd, &[Analytics, Advertising]), ("reject all", reject, &[])];
        for (label, consent, granted) in cases {
            let pairs = request_pairs(Some(consent), &[ac]);
            let response = send(&mut client, &pairs, false, false).await;
            check(
                label,
                &response,
                &origin,
                &expected_set_cookies(&cookies, granted, TCF_HOST, false),
                &expected_origin_pairs(Some(consent), granted, &[ac]),
                &category_list(granted),
            );
        }
    })
    .await;
}

/// The same 2022 TC string under the default `max_age_days` (180): expired,
/// so necessary only.
#[tokio::test]
async fn tcf_consent_too_old_is_none() {
    within(async {
        let (origin, cookies) = scenario_origin().await;
        let proxy = builder(&origin).run().await;
        let mut client = proxy.http1_to(TCF_DEFAULT_HOST).await;
        let all = "euconsent-v2=CPh8CoIPh8CoINYAAAENCZCAAP_AAAAAAAAAAAAAAAAA";
        let response = send(&mut client, &request_pairs(Some(all), &[]), false, false).await;
        check(
            "expired TC string",
            &response,
            &origin,
            &expected_set_cookies(&cookies, &[], TCF_DEFAULT_HOST, false),
            &expected_origin_pairs(Some(all), &[], &[]),
            "necessary",
        );
    })
    .await;
}

/// report-only: the client gets the origin's response byte for byte plus
/// `Consentry-Report` (no `Vary`, nothing else); the origin gets
/// the cookies unfiltered (only the forged `Consentry-Consent` is removed).
#[tokio::test]
async fn report_only_changes_nothing_but_reports() {
    within(async {
        let (origin, _) = scenario_origin().await;
        let proxy = builder(&origin).run().await;
        let all = consentry(&["necessary", "functional", "analytics", "advertising"], REVISION, SystemTime::now(), Some(KEY.as_bytes()));
        let cases = [
            (
                None,
                "set-cookie-blocked=lang,_ga,_ga_3K5XH8N2QF,__hstc,hubspotutk,_fbp,tracker_xyz; \
                 request-cookie-blocked=_ga,lang,_ga_3K5XH8N2QF,__hstc,hubspotutk,messagesUtk,_fbp,tracker_xyz; \
                 sweep=_ga,lang,_ga_3K5XH8N2QF,__hstc,hubspotutk,messagesUtk,_fbp,tracker_xyz",
            ),
            (
                all.clone(),
                "set-cookie-blocked=tracker_xyz; set-cookie-capped=_ga; request-cookie-blocked=tracker_xyz; \
                 sweep=tracker_xyz",
            ),
        ];
        for (consent, report) in cases {
            let pairs = request_pairs(consent.as_deref(), &[]);
            // The reference: the same request straight to the origin.
            let mut direct = Client::http1(origin.origin.addr, REPORT_HOST).await;
            let want = send(&mut direct, &pairs, false, false).await;
            let mut client = proxy.http1_to(REPORT_HOST).await;
            let got = send(&mut client, &pairs, false, false).await;

            assert_eq!(got.status, want.status);
            assert_eq!(got.body, want.body, "the body, and so the Cookie the origin saw, is unchanged");
            assert_eq!(cookies_seen(&got.body), [pairs.join("; ")]);
            assert!(origin.last_all("consentry-consent").is_empty(), "a forged header never reaches the origin");

            let mut got_headers = got.headers.clone();
            let got_report = got_headers.remove("consentry-report").expect("a report");
            assert_eq!(got_report, report);
            // Not even a `Vary` is added: caches in front see the origin's.
            assert_eq!(got.header_all("vary"), want.header_all("vary"));
            assert_eq!(got_headers, want.headers, "every other header byte for byte, in order");
            let got_sc = got.header_all("set-cookie");
            assert_eq!(got_sc, want.header_all("set-cookie"));
        }
    })
    .await;
}

/// Counters after a known sequence: one request without consent, one with
/// everything granted.
#[tokio::test]
async fn metrics_inventory_and_declaration_count_what_happened() {
    within(async {
        let (origin, _) = scenario_origin().await;
        let proxy = builder(&origin).run().await;
        let mut client = proxy.http1_to(SHOP).await;
        send(&mut client, &request_pairs(None, &[]), false, false).await;
        let all = consentry(
            &["necessary", "functional", "analytics", "advertising"],
            REVISION,
            SystemTime::now(),
            Some(KEY.as_bytes()),
        );
        send(&mut client, &request_pairs(all.as_deref(), &[]), false, false).await;

        let text = proxy.metrics().await;
        let site = ("site", "test");
        let decision = |category: &str, action: &str, item: &str| {
            metric(
                &text,
                "consentry_decisions_total",
                &[site, ("category", category), ("action", action), ("item", item)],
            )
            .unwrap_or(0.0)
        };
        assert_eq!(
            metric(&text, "consentry_requests_total", &[site, ("status", "200")]),
            Some(2.0),
            "{text}"
        );
        // Set-Cookie: request 1 blocks lang, 4 analytics, _fbp and the
        // unknown one, allows the two necessary and the _gid deletion;
        // request 2 blocks the unknown one, caps _ga, allows the rest.
        assert_eq!(decision("necessary", "allow", "set_cookie"), 4.0);
        assert_eq!(decision("functional", "block", "set_cookie"), 1.0);
        assert_eq!(decision("functional", "allow", "set_cookie"), 1.0);
        assert_eq!(decision("analytics", "block", "set_cookie"), 4.0);
        assert_eq!(decision("analytics", "allow", "set_cookie"), 1.0 + 4.0);
        assert_eq!(decision("analytics", "cap", "set_cookie"), 1.0);
        assert_eq!(decision("advertising", "block", "set_cookie"), 1.0);
        assert_eq!(decision("advertising", "allow", "set_cookie"), 1.0);
        assert_eq!(decision("unclassified", "block", "set_cookie"), 2.0);
        // Request cookies: the consent cookie only in request 2.
        assert_eq!(decision("necessary", "allow", "request_cookie"), 2.0 + 3.0);
        assert_eq!(decision("analytics", "block", "request_cookie"), 4.0);
        assert_eq!(decision("analytics", "allow", "request_cookie"), 4.0);
        assert_eq!(decision("functional", "block", "request_cookie"), 2.0);
        assert_eq!(decision("advertising", "block", "request_cookie"), 1.0);
        assert_eq!(decision("unclassified", "block", "request_cookie"), 2.0);
        // Sweeps: 8 cookies, then tracker_xyz again.
        assert_eq!(decision("analytics", "sweep", "sweep"), 4.0);
        assert_eq!(decision("unclassified", "sweep", "sweep"), 2.0);
        assert_eq!(metric(&text, "consentry_sweeps_total", &[site]), Some(9.0));
        assert_eq!(metric(&text, "consentry_invalid_cookies_total", &[site]), Some(0.0));
        // Nothing went to the other sites.
        assert_eq!(metric(&text, "consentry_requests_total", &[("site", "report"), ("status", "200")]), None);

        let inventory = proxy.admin("/inventory?site=test").await;
        assert_eq!(inventory.status, StatusCode::OK, "{}", inventory.text());
        let json: serde_json::Value = serde_json::from_slice(&inventory.body).unwrap();
        assert_eq!(json["site"], "test");
        let entries = json["entries"].as_array().unwrap();
        let entry = |name: &str, domain: &str| {
            entries
                .iter()
                .find(|e| e["name"] == name && e["domain"] == domain)
                .unwrap_or_else(|| panic!("no {name} on {domain} in {json:#}"))
        };
        // `_fbp` set with Domain=.shop.test twice, blocked once.
        let fbp = entry("_fbp", "shop.test");
        assert_eq!(
            (fbp["category"].as_str(), fbp["count"].as_u64(), fbp["blocked"].as_u64()),
            (Some("advertising"), Some(2), Some(1))
        );
        assert_eq!(fbp["seen_as"], serde_json::json!(["set_cookie"]));
        // The unknown cookie: host-only Set-Cookie and request cookie, both blocked each time.
        let unknown = entry("tracker_xyz", SHOP);
        assert_eq!(
            (unknown["category"].as_str(), unknown["count"].as_u64(), unknown["blocked"].as_u64()),
            (Some("unclassified"), Some(4), Some(4))
        );
        // `messagesUtk` only ever came from the browser.
        let chat = entry("messagesUtk", SHOP);
        assert_eq!(
            (chat["category"].as_str(), chat["count"].as_u64(), chat["blocked"].as_u64()),
            (Some("functional"), Some(2), Some(1))
        );
        assert_eq!(chat["seen_as"], serde_json::json!(["request_cookie"]));

        let declaration = proxy.admin("/declaration?site=test&format=md").await;
        assert_eq!(declaration.status, StatusCode::OK, "{}", declaration.text());
        let md = declaration.text();
        for (name, provider) in [
            ("sessionid", "Shop"),
            ("csrftoken", "Shop"),
            ("lang", "Shop"),
            ("\\_ga", "Google Analytics 4"),
            ("\\_fbp", "Meta Pixel"),
            ("hubspotutk", "HubSpot"),
            ("tracker\\_xyz", ""),
        ] {
            let row = md
                .lines()
                .find(|l| l.starts_with('|') && l.split('|').nth(1).is_some_and(|c| c.trim() == name))
                .unwrap_or_else(|| panic!("no row for {name} in\n{md}"));
            assert!(row.contains(provider), "{row}");
        }
    })
    .await;
}

/// The audit log at level `blocked`: one JSON line per refused, capped or
/// swept item, naming the site, the request id the origin saw, category,
/// action, rule and mode.
#[tokio::test]
async fn audit_log_names_what_was_refused() {
    within(async {
        let (origin, _) = scenario_origin().await;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let proxy = builder(&origin).head(&format!("[audit]\nlevel = \"blocked\"\npath = {:?}\n", log)).run().await;

        // Enforce, analytics granted, no request id from the client.
        let analytics = consentry(&["necessary", "analytics"], REVISION, SystemTime::now(), Some(KEY.as_bytes()));
        let mut client = proxy.http1_to(SHOP).await;
        send(&mut client, &request_pairs(analytics.as_deref(), &[]), false, false).await;
        let first_id = origin.last_all("x-request-id");
        assert_eq!(first_id.len(), 1);
        let first_id = first_id[0].clone();
        // report-only, no consent, the client's own request id.
        let mut client = proxy.http1_to(REPORT_HOST).await;
        let request = client
            .request(Method::GET, "/")
            .header("x-request-id", "client-chosen-42")
            .header("cookie", "sessionid=1; _fbp=fb.1.2.3")
            .body(consentry::body::empty())
            .unwrap();
        client.fetch(request).await;
        assert_eq!(origin.last_all("x-request-id"), ["client-chosen-42"]);

        assert!(proxy.running().shared.account.flush_audit(Duration::from_secs(10)), "audit flushed");
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        for line in &lines {
            assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");
            assert_eq!(line["kind"], "cookie", "{line}");
        }
        let summary = |id: &str| {
            let mut rows: Vec<String> = lines
                .iter()
                .filter(|l| l["request_id"] == id)
                .map(|l| {
                    format!(
                        "{} {} {} {} {} {} | {} | {}",
                        l["site"].as_str().unwrap(),
                        l["mode"].as_str().unwrap(),
                        l["item"].as_str().unwrap(),
                        l["name"].as_str().unwrap(),
                        l["category"].as_str().unwrap(),
                        l["action"].as_str().unwrap(),
                        l["rule"].as_str().unwrap(),
                        l["domain"].as_str().unwrap(),
                    )
                })
                .collect();
            rows.sort();
            rows
        };
        let lang_rule = {
            let config = std::fs::read_to_string(&proxy.config_path).unwrap();
            // A rule is located at its `[[policy.test.cookie]]` line, the
            // one before its `name` (numbered from 1, so the index of `name`).
            let name_at = config.lines().position(|l| l == "name = \"lang\"").unwrap();
            assert_eq!(config.lines().nth(name_at - 1), Some("[[policy.test.cookie]]"));
            format!("lang (config line {name_at})")
        };
        let want = [
            "test enforce request_cookie _fbp advertising block | _fbp (preset meta-pixel) | www.shop.test".to_string(),
            format!("test enforce request_cookie lang functional block | {lang_rule} | www.shop.test"),
            "test enforce request_cookie messagesUtk functional block | messagesUtk (preset hubspot) | www.shop.test".into(),
            "test enforce request_cookie tracker_xyz unclassified block | unknown_cookies default | www.shop.test".into(),
            "test enforce set_cookie _fbp advertising block | _fbp (preset meta-pixel) | shop.test".into(),
            "test enforce set_cookie _ga analytics cap | _ga (preset google-analytics) | shop.test".into(),
            format!("test enforce set_cookie lang functional block | {lang_rule} | shop.test"),
            "test enforce set_cookie tracker_xyz unclassified block | unknown_cookies default | www.shop.test".into(),
            "test enforce sweep _fbp advertising sweep | withdrawn | www.shop.test".into(),
            "test enforce sweep lang functional sweep | withdrawn | shop.test".into(),
            "test enforce sweep messagesUtk functional sweep | withdrawn | www.shop.test".into(),
            "test enforce sweep tracker_xyz unclassified sweep | withdrawn | www.shop.test".into(),
        ];
        let mut want = want.to_vec();
        want.sort();
        assert_eq!(summary(&first_id), want, "{text}");

        let mut want = vec![
            "report report-only request_cookie _fbp advertising block | _fbp (preset meta-pixel) | report.shop.test",
            "report report-only set_cookie _fbp advertising block | _fbp (preset meta-pixel) | shop.test",
            "report report-only set_cookie _ga analytics block | _ga (preset google-analytics) | shop.test",
            "report report-only set_cookie _ga_3K5XH8N2QF analytics block | _ga_* (preset google-analytics) | shop.test",
            "report report-only set_cookie __hstc analytics block | __hstc (preset hubspot) | shop.test",
            "report report-only set_cookie hubspotutk analytics block | hubspotutk (preset hubspot) | shop.test",
            "report report-only set_cookie lang functional block | LANG | shop.test",
            "report report-only set_cookie tracker_xyz unclassified block | unknown_cookies default | report.shop.test",
            "report report-only sweep _fbp advertising sweep | withdrawn | report.shop.test",
        ]
        .into_iter()
        .map(|s| s.replace("LANG", &lang_rule))
        .collect::<Vec<_>>();
        want.sort();
        assert_eq!(summary("client-chosen-42"), want, "{text}");
        assert_eq!(lines.len(), 12 + 9, "nothing else is written at level blocked:\n{text}");
    })
    .await;
}

/// `Vary` as caches need it, through the proxy: appended to the origin's,
/// never duplicated, `Vary: *` left alone, a 304 keeps `Cookie` in the
/// cached variant's key, and a response that does not depend on consent is
/// passed exactly as the origin sent it.
#[tokio::test]
async fn vary_through_the_proxy() {
    within(async {
        let with = |vary: &'static str, status: StatusCode, set_cookie: bool| {
            move |_| async move {
                let mut r = http::Response::new(consentry::body::full("x"));
                *r.status_mut() = status;
                r.headers_mut().insert("date", http::HeaderValue::from_static(FIXED_DATE));
                if !vary.is_empty() {
                    r.headers_mut().insert("vary", http::HeaderValue::from_static(vary));
                }
                if set_cookie {
                    r.headers_mut()
                        .insert("set-cookie", http::HeaderValue::from_static("sessionid=1; Path=/"));
                }
                r
            }
        };
        let origin = origin()
            .route_fn("/cookie-vary", with("Cookie", StatusCode::OK, true))
            .route_fn("/star", with("*", StatusCode::OK, true))
            .route_fn("/not-modified", with("Accept-Encoding", StatusCode::NOT_MODIFIED, false))
            .route_fn("/plain", with("", StatusCode::OK, false))
            .run()
            .await;
        let proxy = proxy()
            .origin(&origin)
            .hosts(&[SHOP])
            .policy(POLICY)
            .toml(RULES)
            .site("nogpc", &["nogpc.shop.test"], "nogpc")
            .toml("[policy.nogpc]\nextends = \"test\"\n[policy.nogpc.consent]\ngpc_refuses = []\n")
            .run()
            .await;
        let mut client = proxy.http1_to(SHOP).await;
        let r = client.get_with("/cookie-vary", &[("cookie", "sessionid=1")]).await;
        assert_eq!(r.header_all("vary"), ["Cookie", "Sec-GPC"]);
        let r = client.get_with("/star", &[("cookie", "sessionid=1")]).await;
        assert_eq!(r.header_all("vary"), ["*"]);
        let r = client.get_with("/not-modified", &[("cookie", "sessionid=1")]).await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED);
        assert_eq!(r.header_all("vary"), ["Accept-Encoding", "Cookie, Sec-GPC"]);
        // Nothing consent-dependent: exactly the origin's headers.
        let r = client.get_with("/plain", &[("cookie", "sessionid=1")]).await;
        let mut direct = Client::http1(origin.addr, SHOP).await;
        let d =
            direct.fetch(direct.request(Method::GET, "/plain").body(consentry::body::empty()).unwrap()).await;
        assert_eq!(r.headers, d.headers);
        assert!(r.header_all("vary").is_empty());
        // The same page with a refused cookie: swept, so consent-dependent.
        let r = client.get_with("/plain", &[("cookie", "sessionid=1; _fbp=fb.1.2.3")]).await;
        assert_eq!(
            r.header_all("set-cookie"),
            [
                "_fbp=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=shop.test",
                "_fbp=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=www.shop.test",
                "_fbp=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
            ]
        );
        assert_eq!(r.header_all("vary"), ["Cookie, Sec-GPC"]);
        // A policy that does not honour GPC does not vary on it.
        let mut client = proxy.http1_to("nogpc.shop.test").await;
        let r =
            client.fetch(client.request(Method::GET, "/star").body(consentry::body::empty()).unwrap()).await;
        assert_eq!(r.header_all("vary"), ["*"]);
        let r = client.get("/not-modified").await;
        assert_eq!(r.header_all("vary"), ["Accept-Encoding", "Cookie"]);
    })
    .await;
}

/// `Cookie` headers as clients really send them: two fields over HTTP/1.1,
/// a cookie sent twice (two paths), a nameless pair, an empty pair. The
/// allowed pairs reach the origin in order and byte for byte; each refused
/// name is swept once; a nameless cookie is deleted with `=deleted` (a
/// `Set-Cookie` with an empty name and value would be ignored).
#[tokio::test]
async fn odd_cookie_headers() {
    within(async {
        let origin = cookie_origin(vec![]).await;
        let proxy = builder(&origin)
            .site("noheader", &["noheader.shop.test"], "noheader")
            .toml("[policy.noheader]\nextends = \"test\"\nconsent_header = false\n")
            .run()
            .await;
        let mut client = proxy.http1_to(SHOP).await;
        let request = client
            .request(Method::GET, "/")
            .header("consentry-consent", FORGED_HEADER)
            .header("cookie", "_fbp=a; sessionid=1;  ; nameless; _fbp=b; csrftoken=x")
            .header("cookie", "lang=fr; sessionid=2")
            .body(consentry::body::empty())
            .unwrap();
        let r = client.fetch(request).await;
        assert_eq!(cookies_seen(&r.body), ["sessionid=1; csrftoken=x; sessionid=2"]);
        assert_eq!(
            r.header_all("set-cookie"),
            [
                "_fbp=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=shop.test",
                "_fbp=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=www.shop.test",
                "_fbp=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                "=deleted; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=shop.test",
                "=deleted; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=www.shop.test",
                "=deleted; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                "lang=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=shop.test",
                "lang=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=www.shop.test",
                "lang=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            ]
        );
        assert_eq!(origin.last_all("consentry-consent"), ["necessary"]);

        // Without `consent_header`, a forged header is removed and none set.
        let mut client = proxy.http1_to("noheader.shop.test").await;
        let request = client
            .request(Method::GET, "/")
            .header("consentry-consent", FORGED_HEADER)
            .body(consentry::body::empty())
            .unwrap();
        assert_eq!(client.fetch(request).await.status, StatusCode::OK);
        assert!(origin.last_all("consentry-consent").is_empty());
    })
    .await;
}

/// Hardening and fail-closed parsing through the proxy: a hardened cookie
/// gains the flags it lacks and the rule's `SameSite` (as nginx's
/// `proxy_cookie_flags`), an
/// unparseable `Set-Cookie` (over 4096 bytes, which browsers ignore) is
/// dropped and counted, never passed on unexamined.
#[tokio::test]
async fn hardening_and_unparseable_set_cookie() {
    within(async {
        let big = format!("blob={}; Path=/", "x".repeat(5000));
        let origin = cookie_origin(vec![
            ("set-cookie".into(), "sessionid=6f1ed0; Path=/".into()),
            ("set-cookie".into(), "csrftoken=Xm5r; Path=/; Secure; SameSite=Strict".into()),
            ("set-cookie".into(), big),
            ("set-cookie".into(), "lang=fr; Path=/".into()),
        ])
        .await;
        let harden = "[[policy.test.harden]]\nname = \"sessionid\"\nsecure = true\nhttp_only = true\nsame_site = \"Lax\"\n\
                      [[policy.test.harden]]\nname = \"csrftoken\"\nsecure = true\nsame_site = \"Lax\"\n";
        let proxy = proxy()
            .origin(&origin.origin)
            .hosts(&[SHOP])
            .policy(&format!("{POLICY}\nunknown_cookies = \"allow\"\n").replace("unknown_cookies = \"block\"\n", ""))
            .toml(RULES)
            .toml(harden)
            .admin()
            .run()
            .await;
        let consent = consentry(&["functional"], REVISION, SystemTime::now(), Some(KEY.as_bytes())).unwrap();
        let r = proxy.http1_to(SHOP).await.get_with("/", &[("cookie", &consent)]).await;
        assert_eq!(
            r.header_all("set-cookie"),
            [
                "sessionid=6f1ed0; Path=/; Secure; HttpOnly; SameSite=Lax",
                // Already Secure; SameSite is set to the rule's value even
                // over a stricter one, as nginx's `samesite=lax` does.
                "csrftoken=Xm5r; Path=/; Secure; SameSite=Lax",
                "lang=fr; Path=/",
            ]
        );
        let text = proxy.metrics().await;
        assert_eq!(metric(&text, "consentry_invalid_cookies_total", &[("site", "test")]), Some(1.0));
        let decisions = |category: &str, action: &str| {
            metric(
                &text,
                "consentry_decisions_total",
                &[("site", "test"), ("category", category), ("action", action), ("item", "set_cookie")],
            )
        };
        assert_eq!(decisions("necessary", "harden"), Some(2.0));
        assert_eq!(decisions("unclassified", "invalid"), Some(1.0));
    })
    .await;
}

/// The whole consent loop through the proxy: a choice posted to the
/// consent endpoint sets a signed `consentry` cookie for the current
/// revision (and deletes what the new choice refuses); the next request
/// carrying that cookie is enforced with exactly that choice. Then
/// withdrawing it sweeps what was granted.
#[tokio::test]
async fn consent_endpoint_cookie_is_enforced_on_the_next_request() {
    within(async {
        let (origin, cookies) = scenario_origin().await;
        let proxy = builder(&origin).run().await;
        let mut client = proxy.http1_to(SHOP).await;
        let post = |body: &'static str| {
            Request::post("/.consentry/consent")
                .header("host", SHOP)
                .header("content-type", "application/json")
                .header("cookie", request_pairs(None, &[]).join("; "))
                .body(consentry::body::full(body))
                .unwrap()
        };
        let r = client.fetch(post(r#"{"choice":"custom","categories":["analytics"]}"#)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
        let set = r.header_all("set-cookie");
        let consent = set[0].split(';').next().unwrap().to_string();
        assert!(consent.starts_with("consentry=1.3."), "{set:?}");
        assert!(consent.contains(".necessary~analytics."), "{consent}");
        // The refused cookies the browser holds are deleted with the choice.
        let sweep = |names: &[&str]| -> Vec<String> {
            names.iter().flat_map(|name| site_sweep(&format!("{name}="), SHOP)).collect()
        };
        assert_eq!(set[1..], sweep(&["lang", "messagesUtk", "_fbp", "tracker_xyz"]), "{set:#?}");

        let pairs = request_pairs(Some(&consent), &[]);
        let response = send(&mut client, &pairs, false, false).await;
        check(
            "after the endpoint",
            &response,
            &origin,
            &expected_set_cookies(&cookies, &[Analytics], SHOP, false),
            &expected_origin_pairs(Some(&consent), &[Analytics], &[]),
            "necessary,analytics",
        );

        // Refuse everything: the analytics cookies go too.
        let r = client
            .fetch(
                Request::post("/.consentry/consent")
                    .header("host", SHOP)
                    .header("content-type", "application/json")
                    .header("cookie", pairs.join("; "))
                    .body(consentry::body::full(r#"{"choice":"refuse-all"}"#))
                    .unwrap(),
            )
            .await;
        let set = r.header_all("set-cookie");
        assert!(set[0].starts_with("consentry=1.3."), "{set:?}");
        assert_eq!(
            set[1..],
            sweep(&[
                "_ga",
                "lang",
                "_ga_3K5XH8N2QF",
                "__hstc",
                "hubspotutk",
                "messagesUtk",
                "_fbp",
                "tracker_xyz"
            ]),
            "{set:#?}"
        );
    })
    .await;
}

/// A site that starts setting its consent cookie on the registrable domain
/// (`cookie_domain`) while visitors still hold the host-only cookie of an
/// earlier choice: the next choice must leave the browser with one consent
/// cookie, or it sends two different values, which read as contradictory
/// (necessary only, banner again) for as long as the old one lives.
#[tokio::test]
async fn a_new_choice_replaces_a_host_only_consent_cookie() {
    within(async {
        let (origin, _) = scenario_origin().await;
        let rules = RULES.replace(
            "hmac_key = \"e2e-7c1d0b5a9f3e\"\n",
            "hmac_key = \"e2e-7c1d0b5a9f3e\"\ncookie_domain = \".shop.test\"\n",
        );
        let proxy = proxy()
            .origin(&origin.origin)
            .hosts(&[SHOP, "shop.test"])
            .policy(POLICY)
            .toml(&rules)
            .run()
            .await;
        let mut browser = Browser::new();
        // Refused everything last month, before `cookie_domain` was set.
        let old = encode(
            &["necessary"],
            REVISION,
            SystemTime::now() - Duration::from_secs(30 * 86_400),
            Some(KEY.as_bytes()),
        );
        browser.set(SHOP, &format!("consentry={old}; Path=/; Max-Age=15552000; SameSite=Lax"));

        let mut client = proxy.http1_to(SHOP).await;
        let mut post = Request::post("/.consentry/consent")
            .header("host", SHOP)
            .header("content-type", "application/json");
        if let Some(cookie) = browser.cookie_header(SHOP, "/") {
            post = post.header("cookie", cookie);
        }
        let r = client.fetch(post.body(consentry::body::full(r#"{"choice":"accept-all"}"#)).unwrap()).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        browser.receive(SHOP, &r);
        assert_eq!(
            browser.held(),
            ["consentry@shop.test"],
            "one consent cookie left: {:?}",
            r.header_all("set-cookie")
        );

        let cookie = browser.cookie_header(SHOP, "/").unwrap();
        let r = client.get_with("/", &[("cookie", &cookie)]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(origin.last_all("consentry-consent"), ["necessary,functional,analytics,advertising"]);
    })
    .await;
}

/// What the sweep promises, followed in a browser's cookie store: after the
/// visitor withdraws consent, the cookies of refused categories are gone
/// from the browser, and the sweep ends there.
///
/// gtag.js, the Meta Pixel and HubSpot set `_ga`/`_fbp`/`__hstc` on the
/// registrable domain (`Domain=.shop.test`) while their preset rules name no
/// domain (it differs per site): the sweep reaches them because it deletes
/// on the site's own domains too, not only host-only.
#[tokio::test]
async fn withdrawn_cookies_leave_the_browser() {
    within(async {
        let (origin, cookies) = scenario_origin().await;
        let proxy = builder(&origin).run().await;
        let mut client = proxy.http1_to(SHOP).await;
        let mut browser = Browser::new();
        let all = encode(
            &["functional", "analytics", "advertising"],
            REVISION,
            SystemTime::now(),
            Some(KEY.as_bytes()),
        );
        browser.set(SHOP, &format!("consentry={all}; Path=/"));
        let r = client.get_with("/", &[("cookie", &browser.cookie_header(SHOP, "/").unwrap())]).await;
        browser.receive(SHOP, &r);
        for held in ["_ga@shop.test", "lang@shop.test", "_fbp@shop.test", "hubspotutk@shop.test"] {
            assert!(browser.held().contains(&held.to_string()), "{held}: {:?}", browser.held());
        }

        let none = encode(&[], REVISION, SystemTime::now(), Some(KEY.as_bytes()));
        browser.set(SHOP, &format!("consentry={none}; Path=/"));
        let r = client.get_with("/", &[("cookie", &browser.cookie_header(SHOP, "/").unwrap())]).await;
        browser.receive(SHOP, &r);
        // Creation order: the consent cookie came first.
        let left = [
            "consentry@host-only:www.shop.test",
            "sessionid@host-only:www.shop.test",
            "csrftoken@host-only:www.shop.test",
        ];
        assert_eq!(browser.held(), left);

        // Nothing refused is left to send, so nothing more is deleted: the
        // next response carries only the origin's allowed Set-Cookie.
        let r = client.get_with("/", &[("cookie", &browser.cookie_header(SHOP, "/").unwrap())]).await;
        let origin_only: Vec<String> =
            cookies.iter().filter(|c| c.deletion || c.cat == Necessary).map(|c| c.value.clone()).collect();
        assert_eq!(r.header_all("set-cookie"), origin_only);
        browser.receive(SHOP, &r);
        assert_eq!(browser.held(), left);
    })
    .await;
}

/// More refused cookies than one response may delete (`sweep_budget`):
/// the rest are deferred, the browser sends them again, and the next
/// response goes on, until the browser holds none.
#[tokio::test]
async fn sweeps_over_budget_finish_over_several_responses() {
    within(async {
        let origin = cookie_origin(vec![]).await;
        let policy = "sweep_budget = 16\nunknown_cookies = \"block\"\n\
                      [[policy.test.cookie]]\nname = \"sessionid\"\ncategory = \"necessary\"\n";
        let proxy = proxy().origin(&origin.origin).hosts(&[SHOP]).policy(policy).run().await;
        let mut browser = Browser::new();
        browser.set(SHOP, "sessionid=1; Path=/");
        for i in 0..40 {
            // Left by scripts of an old tag manager: no rule knows them.
            browser.set(SHOP, &format!("_legacy_{i}=x; Path=/"));
        }
        let mut client = proxy.http1_to(SHOP).await;
        let mut deletions = Vec::new();
        for round in 0..9 {
            let cookie = browser.cookie_header(SHOP, "/").unwrap();
            let r = client.get_with("/", &[("cookie", &cookie)]).await;
            assert_eq!(cookies_seen(&r.body), ["sessionid=1"], "the origin never sees them");
            let set = r.header_all("set-cookie");
            if round == 0 {
                // Three deletions per cookie (shop.test, www.shop.test,
                // host-only): five cookies, and the first deletion of a
                // sixth, which misses its host-only copy, so the browser
                // sends it again and the next response starts with it.
                let mut want: Vec<String> =
                    (0..5).flat_map(|i| site_sweep(&format!("_legacy_{i}="), SHOP)).collect();
                want.push(site_sweep("_legacy_5=", SHOP).remove(0));
                assert_eq!(set, want);
            }
            deletions.push(set.len());
            browser.receive(SHOP, &r);
        }
        // Five cookies leave per response: 40 take eight, the last one
        // needing only 15 deletions, and the ninth has nothing left to do.
        assert_eq!(deletions, [16, 16, 16, 16, 16, 16, 16, 15, 0]);
        assert_eq!(browser.held(), ["sessionid@host-only:www.shop.test"]);
    })
    .await;
}

/// The deletions the sweep sends over plain HTTP for a refused cookie
/// (`prefix` is `NAME=`) seen on `host`, one label below `shop.test`, whose
/// rule names no domain or `.shop.test`: on `/`, on each of the site's
/// domains widest first (the registrable domain, where tracking scripts set
/// their cookies, then the host itself), then host-only.
fn site_sweep(prefix: &str, host: &str) -> Vec<String> {
    assert!(
        host.strip_suffix(".shop.test").is_some_and(|label| !label.contains('.')),
        "site_sweep knows the domains of X.shop.test only, not {host}"
    );
    let base = format!("{prefix}; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
    vec![format!("{base}; Domain=shop.test"), format!("{base}; Domain={host}"), base]
}
