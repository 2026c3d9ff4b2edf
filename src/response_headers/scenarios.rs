//! Scenario: one realistic site (the cookie table of the CALLKOM seed
//! policy: Cloudflare, HubSpot, Google Analytics 4, Meta, Google Ads, plus
//! one cookie nobody documented) through the request filter and the
//! response-header stage, for every consent state. Each case states,
//! literally, which request cookies reach the origin, which `Set-Cookie`
//! headers reach the browser (byte for byte), which cookies are swept, and
//! `Vary`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{COOKIE, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::{ResponseContext, filter_response};
use crate::config::Source;
use crate::consent::{self, Consent, Reading, State};
use crate::decision::{Action, Decisions, Item};
use crate::policy::Policy;
use crate::presets::Presets;
use crate::request_filter::filter_request;
use crate::set_cookie::SetCookie;

const CONFIG: &str = r#"
[policy.default]
unknown_cookies = "block"
first_party = ["callkom.io", "*.callkom.io"]

[policy.default.consent]
cookie = "consentry"
revision = 2
max_age_days = 365
gpc_refuses = ["advertising"]

[policy.default.categories]
necessary   = { description = "Sign-in, security, load balancing" }
functional  = { description = "Forms and preferences" }
analytics   = { description = "Audience measurement", max_cookie_days = 395 }
advertising = { description = "Advertising" }

[[policy.default.cookie]]
name = "sessionid"
category = "necessary"
[[policy.default.cookie]]
name = "__cf_bm"
category = "necessary"
provider = "Cloudflare"
domain = ".callkom.io"
[[policy.default.cookie]]
name = "lang"
category = "functional"
[[policy.default.cookie]]
name = "hubspotutk"
category = "functional"
provider = "HubSpot"
domain = ".callkom.io"
[[policy.default.cookie]]
name = "_ga"
category = "analytics"
domain = ".callkom.io"
[[policy.default.cookie]]
name = "_ga_*"
category = "analytics"
domain = ".callkom.io"
[[policy.default.cookie]]
name = "/^__hs/"
category = "analytics"
provider = "HubSpot"
domain = ".callkom.io"
[[policy.default.cookie]]
name = "_fbp"
category = "advertising"
domain = ".callkom.io"
[[policy.default.cookie]]
name = "_gcl_*"
category = "advertising"
domain = ".callkom.io"
"#;

/// 2023-11-14 22:13:20 UTC.
const NOW: u64 = 1_700_000_000;
const HOST: &str = "www.callkom.io";

/// What the browser sends, split over two headers as HTTP/2 does.
const REQUEST: [&str; 2] = [
    "consentry=v1.2.abc; sessionid=s1; __cf_bm=cf; lang=fr; hubspotutk=h1; _ga=GA1.2.1",
    "_ga_ABC123=GS1.1; __hstc=hs1; __hssc=hs2; _fbp=fb.1; _gcl_au=1.1; legacy_track=x",
];

/// What the origin sets.
const SET: [&str; 10] = [
    "sessionid=s2; Path=/; HttpOnly; Secure; SameSite=Lax",
    "__cf_bm=cf2; path=/; expires=Tue, 14-Nov-23 22:43:20 GMT; domain=.callkom.io; HttpOnly; Secure; SameSite=None",
    "lang=de; Path=/; Max-Age=31536000",
    "hubspotutk=h2; Domain=.callkom.io; Path=/; Expires=Tue, 14 May 2024 22:13:20 GMT",
    // GA sets two years; the analytics cap is 395 days.
    "_ga=GA1.2.2; Domain=.callkom.io; Path=/; Max-Age=63072000",
    "_ga_ABC123=GS1.1.2; Domain=.callkom.io; Path=/; Expires=Thu, 14 Nov 2024 22:13:20 GMT",
    "__hssc=hs3; Domain=.callkom.io; Path=/; Max-Age=1800",
    "_fbp=fb.1.2; Domain=.callkom.io; Path=/; Max-Age=7776000",
    "_gcl_au=1.1.2; Domain=.callkom.io; Path=/; Expires=Mon, 12 Feb 2024 22:13:20 GMT",
    "legacy_track=y; Path=/",
];

/// `_ga` as it reaches the browser when analytics is granted.
const GA_CAPPED: &str = "_ga=GA1.2.2; Domain=.callkom.io; Path=/; Max-Age=34128000";

fn policy() -> Policy {
    let source = Source { path: PathBuf::from("scenario.toml"), text: CONFIG.to_string() };
    let file = source.parse().unwrap();
    crate::policy::compile("default", &source, &file.policy, &Presets::default()).unwrap()
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn reading(categories: &[&str]) -> Reading {
    Reading {
        granted: categories.iter().map(|c| (*c).to_string()).collect(),
        revision: Some(2),
        given_at: Some(now() - Duration::from_secs(86_400)),
        ..Reading::default()
    }
}

fn valid(p: &Policy, categories: &[&str]) -> Consent {
    let c = consent::evaluate(&p.consent, &reading(categories), now());
    assert_eq!(c.state, State::Valid);
    c
}

/// As `consent::read` applies `Sec-GPC: 1`.
fn with_gpc(p: &Policy, mut c: Consent) -> Consent {
    let refused = c.granted.intersection(p.consent.gpc_refuses);
    c.granted = c.granted.difference(refused);
    c.gpc_refused = refused;
    c
}

struct Outcome {
    request: Vec<String>,
    set_cookie: Vec<String>,
    swept: Vec<String>,
    vary: Vec<String>,
    decisions: Decisions,
    /// Every Set-Cookie sent, in order.
    raw: Vec<String>,
    report: Option<String>,
}

fn run(p: &Policy, c: &Consent) -> Outcome {
    let mut req = HeaderMap::new();
    for v in REQUEST {
        req.append(COOKIE, HeaderValue::from_static(v));
    }
    let mut decisions = Decisions::new();
    let withdrawn = filter_request(&mut req, p, HOST, c, &mut decisions);

    let mut resp = HeaderMap::new();
    for v in SET {
        resp.append(SET_COOKIE, HeaderValue::from_static(v));
    }
    resp.append(VARY, HeaderValue::from_static("Accept-Encoding"));
    let cx = ResponseContext {
        policy: p,
        host: HOST,
        consent: c,
        withdrawn: &withdrawn,
        https: true,
        now: now(),
        body_rewritten: false,
    };
    filter_response(StatusCode::OK, &mut resp, &cx, &mut decisions);

    let request = req
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split("; ").map(str::to_string).collect::<Vec<_>>())
        .collect();
    let mut set_cookie = Vec::new();
    let mut swept = Vec::new();
    let raw = resp.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let report = resp.get(super::REPORT_HEADER).map(|v| v.to_str().unwrap().to_string());
    for v in resp.get_all(SET_COOKIE) {
        let text = v.to_str().unwrap().to_string();
        let parsed = SetCookie::parse(v.as_bytes()).unwrap();
        if SET.contains(&text.as_str()) || !parsed.is_deletion(NOW as i64) {
            set_cookie.push(text);
        } else {
            // A sweep deletion: always Max-Age=0, Secure on HTTPS.
            assert!(text.contains("; Max-Age=0; ") && text.ends_with("; Secure"), "{text}");
            let name = String::from_utf8(parsed.name().to_vec()).unwrap();
            if !swept.contains(&name) {
                swept.push(name);
            }
        }
    }
    let vary = resp.get_all(VARY).iter().map(|v| v.to_str().unwrap().to_string()).collect();
    Outcome { request, set_cookie, swept, vary, decisions, raw, report }
}

/// The origin's header at `i`, unchanged.
fn set(i: usize) -> String {
    SET[i].to_string()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_string()).collect()
}

const NECESSARY_REQUEST: [&str; 3] = ["consentry=v1.2.abc", "sessionid=s1", "__cf_bm=cf"];

fn check(label: &str, o: &Outcome, request: &[&str], set_cookie: Vec<String>, swept: &[&str]) {
    assert_eq!(o.request, names(request), "{label}: request cookies");
    assert_eq!(o.set_cookie, set_cookie, "{label}: Set-Cookie");
    assert_eq!(o.swept, names(swept), "{label}: swept");
    assert_eq!(o.vary, names(&["Accept-Encoding", "Cookie, Sec-GPC"]), "{label}: Vary");
    // One decision per request cookie and per Set-Cookie, one per sweep.
    let count = |item| o.decisions.iter().filter(|d| d.item == item).count();
    assert_eq!(count(Item::RequestCookie), 12, "{label}");
    assert_eq!(count(Item::SetCookie), SET.len(), "{label}");
    assert_eq!(count(Item::Sweep), swept.len(), "{label}");
    assert!(o.decisions.iter().filter(|d| d.item == Item::Sweep).all(|d| d.action == Action::Sweep));
}

#[test]
fn no_consent_and_necessary_only() {
    let p = policy();
    let everything_else =
        ["lang", "hubspotutk", "_ga", "_ga_ABC123", "__hstc", "__hssc", "_fbp", "_gcl_au", "legacy_track"];
    for (label, c) in [
        ("missing", Consent::none(p.consent.format, State::Missing)),
        ("necessary only", valid(&p, &[])),
        (
            "expired",
            consent::evaluate(
                &p.consent,
                &Reading {
                    given_at: Some(now() - Duration::from_secs(400 * 86_400)),
                    ..reading(&["analytics", "functional", "advertising"])
                },
                now(),
            ),
        ),
        (
            "old revision",
            consent::evaluate(
                &p.consent,
                &Reading { revision: Some(1), ..reading(&["analytics", "functional", "advertising"]) },
                now(),
            ),
        ),
    ] {
        let o = run(&p, &c);
        check(label, &o, &NECESSARY_REQUEST, vec![set(0), set(1)], &everything_else);
    }
    // The sweep headers themselves, for one cookie with a rule domain and
    // the unknown one: each also on the site's own domains, where tracking
    // scripts set their cookies.
    let o = run(&p, &valid(&p, &[]));
    let all: Vec<&str> = o.raw.iter().map(String::as_str).collect();
    assert!(all.contains(
        &"_ga=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=callkom.io; Secure"
    ));
    assert!(all.contains(&"_ga=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure"));
    assert!(all.contains(&"legacy_track=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure"));
    assert!(all.contains(
        &"legacy_track=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=callkom.io; Secure"
    ));
    assert!(o.report.is_none());
    // 9 withdrawn cookies × (callkom.io, www.callkom.io, host-only) — the
    // rules' `.callkom.io` is one of the site's domains, not sent twice —
    // within the budget of 32, after the 2 kept Set-Cookie.
    assert_eq!(all.len(), 2 + 9 * 3);
}

#[test]
fn functional_only() {
    let p = policy();
    let o = run(&p, &valid(&p, &["functional"]));
    check(
        "functional",
        &o,
        &["consentry=v1.2.abc", "sessionid=s1", "__cf_bm=cf", "lang=fr", "hubspotutk=h1"],
        vec![set(0), set(1), set(2), set(3)],
        &["_ga", "_ga_ABC123", "__hstc", "__hssc", "_fbp", "_gcl_au", "legacy_track"],
    );
}

#[test]
fn analytics_only() {
    let p = policy();
    let o = run(&p, &valid(&p, &["analytics"]));
    check(
        "analytics",
        &o,
        &[
            "consentry=v1.2.abc",
            "sessionid=s1",
            "__cf_bm=cf",
            "_ga=GA1.2.1",
            "_ga_ABC123=GS1.1",
            "__hstc=hs1",
            "__hssc=hs2",
        ],
        vec![set(0), set(1), GA_CAPPED.to_string(), set(5), set(6)],
        &["lang", "hubspotutk", "_fbp", "_gcl_au", "legacy_track"],
    );
    let ga = o.decisions.iter().find(|d| d.item == Item::SetCookie && d.name == "_ga").unwrap();
    assert_eq!(ga.action, Action::Cap);
    assert_eq!(ga.domain, "callkom.io");
}

#[test]
fn advertising_only() {
    let p = policy();
    let o = run(&p, &valid(&p, &["advertising"]));
    check(
        "advertising",
        &o,
        &["consentry=v1.2.abc", "sessionid=s1", "__cf_bm=cf", "_fbp=fb.1", "_gcl_au=1.1"],
        vec![set(0), set(1), set(7), set(8)],
        &["lang", "hubspotutk", "_ga", "_ga_ABC123", "__hstc", "__hssc", "legacy_track"],
    );
}

#[test]
fn all_granted() {
    let p = policy();
    let o = run(&p, &valid(&p, &["functional", "analytics", "advertising"]));
    let mut request: Vec<&str> = REQUEST.iter().flat_map(|h| h.split("; ")).collect();
    request.retain(|c| !c.starts_with("legacy_track"));
    check(
        "all",
        &o,
        &request,
        vec![set(0), set(1), set(2), set(3), GA_CAPPED.to_string(), set(5), set(6), set(7), set(8)],
        &["legacy_track"],
    );
}

#[test]
fn all_granted_with_gpc() {
    let p = policy();
    let c = with_gpc(&p, valid(&p, &["functional", "analytics", "advertising"]));
    let o = run(&p, &c);
    check(
        "all + GPC",
        &o,
        &[
            "consentry=v1.2.abc",
            "sessionid=s1",
            "__cf_bm=cf",
            "lang=fr",
            "hubspotutk=h1",
            "_ga=GA1.2.1",
            "_ga_ABC123=GS1.1",
            "__hstc=hs1",
            "__hssc=hs2",
        ],
        vec![set(0), set(1), set(2), set(3), GA_CAPPED.to_string(), set(5), set(6)],
        &["_fbp", "_gcl_au", "legacy_track"],
    );
}

#[test]
fn report_only_leaves_request_and_response_identical() {
    let text =
        CONFIG.replace("unknown_cookies = \"block\"", "unknown_cookies = \"block\"\nmode = \"report-only\"");
    let source = Source { path: PathBuf::from("scenario.toml"), text };
    let file = source.parse().unwrap();
    let p = crate::policy::compile("default", &source, &file.policy, &Presets::default()).unwrap();
    let c = valid(&p, &["analytics"]);
    let o = run(&p, &c);
    let request: Vec<&str> = REQUEST.iter().flat_map(|h| h.split("; ")).collect();
    assert_eq!(o.request, names(&request));
    assert_eq!(o.set_cookie, SET.iter().map(|s| (*s).to_string()).collect::<Vec<_>>());
    assert!(o.swept.is_empty());
    assert_eq!(
        o.report.as_deref(),
        Some(
            "set-cookie-blocked=lang,hubspotutk,_fbp,_gcl_au,legacy_track; set-cookie-capped=_ga; \
             request-cookie-blocked=lang,hubspotutk,_fbp,_gcl_au,legacy_track; \
             sweep=lang,hubspotutk,_fbp,_gcl_au,legacy_track"
        )
    );
    // No Vary is added: only the report differs from the origin's headers.
    assert_eq!(o.vary, names(&["Accept-Encoding"]));
    // Would-be actions are recorded just as in enforce mode.
    let enforce = run(&policy(), &c);
    let actions = |d: &Decisions| d.iter().map(|d| (d.item, d.name.clone(), d.action)).collect::<Vec<_>>();
    assert_eq!(actions(&o.decisions), actions(&enforce.decisions));
}
