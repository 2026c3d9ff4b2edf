//! The `Set-Cookie` parser and editor (`src/set_cookie.rs`) and the
//! response-header stage that applies them (`src/response_headers.rs`).
//!
//! The input is one header value; split at `\n` it is also a list of
//! `Set-Cookie` headers from the origin. Invariants:
//! - nothing panics;
//! - the editor changes bytes exactly when `plan` says it will, an empty
//!   edit is the identity, and an edited cookie parses again as the same
//!   cookie with nothing left to change (idempotent), within the cap;
//! - with no caps and no hardening, every `Set-Cookie` the stage keeps is
//!   one of the origin's, byte for byte and in order;
//! - with caps and hardening, running the stage twice = running it once.
#![no_main]

use consentry::response_headers::{ResponseContext, filter_response};
use consentry::set_cookie::{
    Edit, Lifetime, SetCookie, attributes, parse_cookie_date, parse_max_age, plan, rewrite,
};
use consentry_fuzz::{HARDEN_POLICY_EXTRA, PLAIN_COOKIE_POLICY, RULES_POLICY};
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_750_000_000;

fn edits() -> [Edit; 4] {
    [
        Edit::default(),
        Edit { max_age: Some(86_400), expires: Some(NOW + 86_400), ..Edit::default() },
        Edit { secure: true, http_only: true, same_site: Some("Lax"), ..Edit::default() },
        Edit { max_age: Some(0), expires: Some(0), secure: true, http_only: false, same_site: Some("None") },
    ]
}

fn check_one(raw: &[u8]) {
    let _ = parse_cookie_date(raw);
    let _ = parse_max_age(raw);
    let _ = attributes(raw).count();
    let Ok(c) = SetCookie::parse(raw) else { return };
    let _ = (c.name(), c.value(), c.domain(), c.path(), c.max_age(), c.expires(), c.same_site());
    for now in [0, NOW, i64::MAX, i64::MIN] {
        let _ = c.lifetime(now);
        let _ = c.is_deletion(now);
    }
    for edit in edits() {
        let changes = plan(&c, &edit);
        let out = rewrite(&c, &edit);
        assert_eq!(changes.any(), out != c.raw(), "plan and rewrite disagree on {:?} with {edit:?}", String::from_utf8_lossy(raw));
        if edit == Edit::default() {
            assert_eq!(out, c.raw());
        }
        let again = SetCookie::parse(&out).expect("an edited cookie parses");
        assert_eq!(again.name(), c.name());
        assert_eq!(again.value(), c.value());
        assert_eq!(again.domain(), c.domain());
        assert_eq!(again.path(), c.path());
        assert!(!plan(&again, &edit).any(), "editing twice changes more: {:?}", String::from_utf8_lossy(&out));
        if let (Some(cap), Lifetime::Until(t)) = (edit.max_age, again.lifetime(NOW)) {
            assert!(t <= NOW + cap, "lifetime over the cap after capping: {:?}", String::from_utf8_lossy(&out));
        }
    }
}

fn headers(values: &[HeaderValue]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        h.append(SET_COOKIE, v.clone());
    }
    h
}

fn run(policy: &'static str, granted_byte: u8, h: &mut HeaderMap) {
    let site = consentry_fuzz::cached_site(policy);
    let consent = consentry_fuzz::consent_granting(consentry_fuzz::granted_from(&site, granted_byte));
    let cx = ResponseContext {
        policy: &site.policy,
        host: "www.example.com",
        consent: &consent,
        withdrawn: &[],
        https: granted_byte & 0x80 != 0,
        now: consentry_fuzz::now(),
        body_rewritten: false,
    };
    filter_response(StatusCode::OK, h, &cx, &mut Vec::new());
}

fn set_cookies(h: &HeaderMap) -> Vec<Vec<u8>> {
    h.get_all(SET_COOKIE).iter().map(|v| v.as_bytes().to_vec()).collect()
}

static HARDEN_POLICY: std::sync::LazyLock<&'static str> =
    std::sync::LazyLock::new(|| Box::leak(format!("{RULES_POLICY}{HARDEN_POLICY_EXTRA}").into_boxed_str()));

fuzz_target!(|data: &[u8]| {
    check_one(data);
    let values: Vec<HeaderValue> =
        data.split(|&b| b == b'\n').take(64).filter_map(|v| HeaderValue::from_bytes(v).ok()).collect();
    for v in &values {
        check_one(v.as_bytes());
    }
    let byte = (consentry_fuzz::fnv(data) & 0xff) as u8;

    // No caps, no hardening: kept = the origin's bytes, in order.
    let mut h = headers(&values);
    run(PLAIN_COOKIE_POLICY, byte, &mut h);
    let mut input = values.iter();
    for out in set_cookies(&h) {
        assert!(input.any(|i| i.as_bytes() == out.as_slice()), "kept Set-Cookie not byte-identical: {:?}", String::from_utf8_lossy(&out));
    }

    // Caps and hardening: once = twice.
    let mut h = headers(&values);
    run(*HARDEN_POLICY, byte, &mut h);
    let once = set_cookies(&h);
    run(*HARDEN_POLICY, byte, &mut h);
    assert_eq!(set_cookies(&h), once, "filtering Set-Cookie twice differs from once");
});
