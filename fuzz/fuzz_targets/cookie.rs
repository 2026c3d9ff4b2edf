//! The request `Cookie` parser (`src/cookie.rs`) and the request filter
//! that uses it (`src/request_filter.rs`).
//!
//! The input is a `Cookie` header value; split at `\n` it is several
//! `Cookie` headers (HTTP/2 sends one per cookie). Invariants:
//! - nothing panics; the jar and the raw pair iterator agree on the pairs;
//! - the filtered pairs are input pairs, byte for byte, in order (⊆);
//! - nothing the consent refuses is left;
//! - filtering twice = filtering once, and the second pass refuses nothing.
#![no_main]

use consentry::cookie::{CookieJar, raw_pairs};
use consentry::request_filter::filter_request;
use consentry_fuzz::{RULES_POLICY, cached_site, consent_granting, fnv, granted_from};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fn pairs(h: &HeaderMap) -> Vec<Vec<u8>> {
    h.get_all(COOKIE).iter().flat_map(|v| raw_pairs(v.as_bytes()).map(|p| p.raw.to_vec()).collect::<Vec<_>>()).collect()
}

fn is_subsequence(small: &[Vec<u8>], big: &[Vec<u8>]) -> bool {
    let mut it = big.iter();
    small.iter().all(|s| it.any(|b| b == s))
}

fuzz_target!(|data: &[u8]| {
    let _ = raw_pairs(data).count();
    if let Ok(text) = std::str::from_utf8(data) {
        let jar = CookieJar::parse(text);
        let raw: Vec<_> = raw_pairs(data).collect();
        assert_eq!(jar.len(), raw.len(), "jar and raw pairs disagree on {text:?}");
        for (p, r) in jar.pairs().iter().zip(&raw) {
            assert_eq!(p.raw.as_bytes(), r.raw);
            assert_eq!(p.name.as_bytes(), r.name);
            assert_eq!(p.value.as_bytes(), r.value);
            // Pairs are substrings of the header, name and value inside the pair.
            assert!(text.contains(p.raw));
            let _ = jar.get(p.name);
        }
    }

    let mut h = HeaderMap::new();
    for v in data.split(|&b| b == b'\n').take(64) {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            h.append(COOKIE, v);
        }
    }
    let site = cached_site(RULES_POLICY);
    let policy = &site.policy;
    let consent = consent_granting(granted_from(&site, (fnv(data) & 0xff) as u8));
    let input = pairs(&h);
    // The jar skips only pairs that are not UTF-8.
    let utf8 = input.iter().filter(|p| std::str::from_utf8(p).is_ok()).count();
    assert_eq!(CookieJar::from_headers(&h).len(), utf8);
    let mut decisions = Vec::new();
    let withdrawn = filter_request(&mut h, policy, "www.example.com", &consent, &mut decisions);
    let output = pairs(&h);
    assert!(is_subsequence(&output, &input), "filtered cookies are not a subsequence of the input");
    assert_eq!(decisions.len(), input.len());
    for pair in h.get_all(COOKIE).iter().flat_map(|v| raw_pairs(v.as_bytes()).collect::<Vec<_>>()) {
        let name = String::from_utf8_lossy(pair.name);
        let (category, _) = policy.classify_cookie(&name, "www.example.com");
        assert!(policy.cookie_allowed(category, consent.granted), "refused cookie {name:?} left in the request");
    }
    for w in &withdrawn {
        assert!(w.category != Some(consentry::category::CategoryId::NECESSARY));
    }
    let once = h.clone();
    let again = filter_request(&mut h, policy, "www.example.com", &consent, &mut Vec::new());
    assert_eq!(h, once, "filtering twice differs from once");
    assert!(again.is_empty());
});
