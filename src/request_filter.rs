//! Stage 5, **request filter**: drop refused cookies from the request's
//! `Cookie` header(s) before the origin sees them, and remember them so the
//! response can delete them in the browser (the sweep).
//!
//! Each pair is classified by its name and the request host (a request
//! cookie carries no `Domain`; a rule restricted to a domain applies when
//! the host is that domain or below it, which is exactly when a browser
//! sends such a cookie). Refused pairs — and unclassified ones when the
//! policy blocks unknown cookies — are removed; the others keep their order
//! and bytes. A header is rebuilt (pairs joined with `; `) only when
//! something was removed from it; several `Cookie` headers (HTTP/2 sends one
//! per pair) stay several, and a header left empty is removed.
//!
//! The consent cookie is always necessary ([`Policy::classify_cookie`]).
//! A nameless pair (`Cookie: abc`) is classified by its empty name, so it is
//! an unknown cookie unless a rule says otherwise.
//!
//! `Consentry-Consent` is consentry's header: one sent by the client is
//! always removed, whatever the mode or setting, so an origin that trusts it
//! can never be fed a forged one. With `consent_header = true` the proxy
//! sets it to the granted categories (`necessary,analytics`) in enforce
//! mode. In report-only mode nothing else is changed: the origin sees the
//! request as the visitor sent it, and would-be removals are only recorded.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use compact_str::CompactString;

use http::header::COOKIE;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::category::CategoryId;
use crate::consent::Consent;
use crate::cookie::{CookieJar, RawAt, utf8_part};
use crate::decision::{Action, Decision, Decisions, Item};
use crate::policy::{CookieBasis, Mode, Policy};

/// The request header telling the origin what the visitor granted.
pub const CONSENT_HEADER: HeaderName = HeaderName::from_static("consentry-consent");

/// `/`, where cookies without a rule are deleted.
static ROOT_PATH: LazyLock<Arc<[String]>> = LazyLock::new(|| Arc::new(["/".to_string()]));

/// A cookie the visitor sent but has not consented to: removed from the
/// request and deleted in the browser by the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawn {
    /// Cookie name.
    pub name: CompactString,
    /// Its category (`None`: unclassified and blocked by default).
    pub category: Option<CategoryId>,
    /// The rule's `Domain` (the sweep deletes on the site's own domains and
    /// host-only whatever it is, and on this one too when it is not among
    /// them).
    pub domain: Option<String>,
    /// Paths to delete it on (the rule's, shared).
    pub paths: Arc<[String]>,
}

/// Filters every `Cookie` header in place (unless the policy is
/// report-only) and returns the refused cookies: [`judge_request`] over a
/// jar of the headers, then [`apply_request`]. The proxy, which has the
/// jar already (the consent stage read it), calls the two itself.
pub fn filter_request(
    headers: &mut HeaderMap,
    policy: &Policy,
    host: &str,
    consent: &Consent,
    decisions: &mut Decisions,
) -> Vec<Withdrawn> {
    let verdict = judge_request(&CookieJar::from_headers(headers), policy, host, consent, decisions);
    apply_request(headers, policy, consent, verdict)
}

/// What [`judge_request`] found: the refused cookies, and what
/// [`apply_request`] needs to rebuild the headers without them.
#[derive(Debug)]
pub struct RequestVerdict {
    withdrawn: Vec<Withdrawn>,
    /// Every pair's header, place in it and verdict, in order, so a
    /// rebuild neither splits nor classifies again.
    pairs: Vec<PairVerdict>,
}

/// Judges every cookie of the request (the jar of its `Cookie` headers)
/// and records a decision for each.
pub fn judge_request(
    jar: &CookieJar<'_>,
    policy: &Policy,
    host: &str,
    consent: &Consent,
    decisions: &mut Decisions,
) -> RequestVerdict {
    let mut withdrawn: Vec<Withdrawn> = Vec::new();
    let mut pairs: Vec<PairVerdict> = Vec::with_capacity(jar.raw().len());
    // Every decision's domain: built once, cloned (inline, a copy) per pair.
    let domain = CompactString::from(host);
    for RawAt { pair, header, at } in jar.raw() {
        // The header was checked once, not each name in it.
        let whole = jar.headers().get(*header).copied().flatten();
        let name = utf8_part(whole, pair.name);
        let (category, basis) = policy.classify_cookie(&name, host);
        let allowed = policy.cookie_allowed(category, consent.granted);
        pairs.push(PairVerdict { header: *header, at: at.clone(), allowed });
        let gpc = !allowed && consent.refused_by_gpc(category);
        record(decisions, &name, &domain, category, allowed, gpc, &basis);
        if allowed {
            continue;
        }
        // A non-UTF-8 name cannot be written faithfully into a deletion;
        // it is still removed from the request.
        if matches!(name, Cow::Borrowed(_))
            && category != Some(CategoryId::NECESSARY)
            && !withdrawn.iter().any(|w| w.name == name)
        {
            let (domain, paths) = match basis {
                CookieBasis::Rule(rule) => (rule.domain.clone(), rule.paths.clone()),
                CookieBasis::ConsentCookie | CookieBasis::Unknown => (None, Arc::clone(&ROOT_PATH)),
            };
            withdrawn.push(Withdrawn { name: CompactString::from(name), category, domain, paths });
        }
    }
    RequestVerdict { withdrawn, pairs }
}

/// Removes a client's `Consentry-Consent` (always, first), then, in
/// enforce mode, the refused cookies ([`judge_request`]'s verdict on these
/// same headers) and sets `Consentry-Consent` when the policy asks for it.
/// Returns the refused cookies.
pub fn apply_request(
    headers: &mut HeaderMap,
    policy: &Policy,
    consent: &Consent,
    verdict: RequestVerdict,
) -> Vec<Withdrawn> {
    // First, so a forged value never survives, whatever follows.
    headers.remove(CONSENT_HEADER);
    let RequestVerdict { withdrawn, pairs } = verdict;
    if policy.mode != Mode::Enforce {
        return withdrawn;
    }
    if pairs.iter().any(|p| !p.allowed) {
        rebuild(headers, &pairs);
    }
    if policy.consent_header {
        let names = policy.categories.names(consent.granted);
        // Category names are letters, digits, `-` and `_` (checked when the
        // policy compiles), so this cannot fail; `necessary` is the fallback.
        // The value takes the string's buffer rather than a copy.
        let value = HeaderValue::from_maybe_shared(bytes::Bytes::from(names.into_bytes()))
            .unwrap_or(HeaderValue::from_static("necessary"));
        headers.insert(CONSENT_HEADER, value);
    }
    withdrawn
}

fn record(
    decisions: &mut Decisions,
    name: &str,
    host: &CompactString,
    category: Option<CategoryId>,
    allowed: bool,
    gpc: bool,
    basis: &CookieBasis<'_>,
) {
    let action = if allowed { Action::Allow } else { Action::Block };
    let rule = basis.text(gpc);
    tracing::debug!(
        item = "request_cookie",
        cookie = %name,
        host = %host,
        category = ?category.map(CategoryId::index),
        action = action.name(),
        rule = %rule,
        "cookie decision"
    );
    decisions.push(Decision {
        item: Item::RequestCookie,
        name: name.into(),
        domain: host.clone(),
        category,
        action,
        rule,
    });
}

/// Replaces every `Cookie` header that lost a pair by one holding only its
/// allowed pairs (original bytes, `; ` between them); headers without a
/// refused pair are put back untouched, in their original order. `pairs`
/// is the header, place and verdict of every pair, in order.
fn rebuild(headers: &mut HeaderMap, pairs: &[PairVerdict]) {
    let old: Vec<HeaderValue> = match headers.entry(COOKIE) {
        http::header::Entry::Occupied(entry) => entry.remove_entry_mult().1.collect(),
        http::header::Entry::Vacant(_) => return,
    };
    let mut rest = pairs;
    for (header, value) in old.into_iter().enumerate() {
        let (mine, later) = rest.split_at(rest.iter().take_while(|p| p.header == header).count());
        rest = later;
        if mine.iter().all(|p| p.allowed) {
            headers.append(COOKIE, value);
            continue;
        }
        let bytes = value.as_bytes();
        let mut out: Vec<u8> = Vec::with_capacity(value.len());
        // (A place outside the header cannot be; the pair is dropped then.)
        for raw in mine.iter().filter(|p| p.allowed).filter_map(|p| bytes.get(p.at.clone())) {
            if !out.is_empty() {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(raw);
        }
        if out.is_empty() {
            continue;
        }
        // The pairs come from a valid header value, so the result is one.
        if let Ok(v) = HeaderValue::from_bytes(&out) {
            headers.append(COOKIE, v);
        }
    }
}

/// Where one request cookie pair is: which `Cookie` header, where in it;
/// and whether it stays.
#[derive(Debug)]
struct PairVerdict {
    header: usize,
    at: std::ops::Range<usize>,
    allowed: bool,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::category::CategorySet;
    use crate::config::Source;
    use crate::consent::{Format, State};
    use crate::presets::Presets;
    use std::path::PathBuf;

    pub(crate) fn policy(extra: &str) -> Policy {
        let text = format!(
            r#"
[policy.default]
{extra}
[[policy.default.cookie]]
name = "sessionid"
category = "necessary"
[[policy.default.cookie]]
name = "lang"
category = "functional"
[[policy.default.cookie]]
name = "_ga"
category = "analytics"
domain = ".example.com"
paths = ["/", "/shop"]
[[policy.default.cookie]]
name = "_ga_*"
category = "analytics"
[[policy.default.cookie]]
name = "_fbp"
category = "advertising"
"#
        );
        let source = Source { path: PathBuf::from("t.toml"), text };
        let file = source.parse().unwrap();
        crate::policy::compile("default", &source, &file.policy, &Presets::default()).unwrap()
    }

    pub(crate) fn consent(p: &Policy, cats: &[&str]) -> Consent {
        let mut c = Consent::none(Format::Consentry, State::Valid);
        for cat in cats {
            c.granted.insert(p.categories.id(cat).unwrap());
        }
        c
    }

    fn cookies(h: &HeaderMap) -> Vec<&str> {
        h.get_all(COOKIE).iter().map(|v| v.to_str().unwrap()).collect()
    }

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(COOKIE, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    /// A cookie refused because `Sec-GPC: 1` took its category back says
    /// so in its decision; one refused for want of consent does not.
    #[test]
    fn gpc_refusals_are_named_in_decisions() {
        let p = policy("");
        let now = std::time::SystemTime::now();
        let value = crate::consent::encode(&["analytics", "advertising"], 0, now, None);
        let header = format!("consentry={value}");
        let jar = crate::cookie::CookieJar::parse(&header);
        let c = crate::consent::read(&p.consent, &jar, true, now);
        assert_eq!(p.categories.names(c.gpc_refused), "advertising");
        let mut h = headers(&[b"_fbp=fb.1; lang=en; _ga=GA1.2.3"]);
        let mut d = Decisions::new();
        filter_request(&mut h, &p, "www.example.com", &c, &mut d);
        assert_eq!(cookies(&h), vec!["_ga=GA1.2.3"]);
        let rules: Vec<(&str, Action, &str)> =
            d.iter().map(|d| (d.name.as_str(), d.action, &*d.rule)).collect();
        assert_eq!(rules[0].0, "_fbp");
        assert_eq!(rules[0].1, Action::Block);
        assert!(rules[0].2.starts_with(crate::consent::GPC_NOTE), "{rules:?}");
        assert_eq!(rules[1].0, "lang");
        assert_eq!(rules[1].1, Action::Block);
        assert!(!rules[1].2.contains("GPC"), "not granted at all, GPC is not why: {rules:?}");
        assert_eq!((rules[2].0, rules[2].1), ("_ga", Action::Allow));
        assert!(!rules[2].2.contains("GPC"));
    }

    #[test]
    fn removes_refused_keeps_order_and_bytes() {
        let p = policy("");
        let c = consent(&p, &["functional"]);
        let mut h =
            headers(&[b"sessionid=abc;  lang = en ;_ga=GA1.2.3; consentry=v1.x; _ga_XYZ=GS1; other=1"]);
        let mut d = Decisions::new();
        let w = filter_request(&mut h, &p, "www.example.com", &c, &mut d);
        assert_eq!(cookies(&h), vec!["sessionid=abc; lang = en; consentry=v1.x"]);
        let names: Vec<_> = w.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, vec!["_ga", "_ga_XYZ", "other"]);
        assert_eq!(w[0].domain.as_deref(), Some("example.com"));
        assert_eq!(*w[0].paths, ["/", "/shop"]);
        assert_eq!(w[2].category, None);
        assert_eq!(*w[2].paths, ["/"]);
        let actions: Vec<_> = d.iter().map(|d| (d.name.as_str(), d.action)).collect();
        assert_eq!(
            actions,
            vec![
                ("sessionid", Action::Allow),
                ("lang", Action::Allow),
                ("_ga", Action::Block),
                ("consentry", Action::Allow),
                ("_ga_XYZ", Action::Block),
                ("other", Action::Block),
            ]
        );
        assert!(d.iter().all(|d| d.item == Item::RequestCookie && d.domain == "www.example.com"));
        assert_eq!(&*d[3].rule, "consent cookie");
        assert_eq!(&*d[5].rule, "unknown_cookies default");
    }

    #[test]
    fn untouched_when_nothing_refused() {
        let p = policy("");
        let c = consent(&p, &["functional", "analytics", "advertising"]);
        // Odd spacing and empty pairs survive when nothing is removed.
        let raw: &[u8] = b"sessionid=abc;;  _ga=1 ;";
        let mut h = headers(&[raw]);
        let w = filter_request(&mut h, &p, "example.com", &c, &mut Decisions::new());
        assert!(w.is_empty());
        assert_eq!(h.get(COOKIE).unwrap().as_bytes(), raw);
    }

    #[test]
    fn several_headers_rebuilt_one_by_one() {
        let p = policy("");
        let c = consent(&p, &[]);
        let mut h = headers(&[b"sessionid=1", b"_ga=2", b"lang=fr; consentry=x", b"_fbp=3;;sessionid=4"]);
        let w = filter_request(&mut h, &p, "example.com", &c, &mut Decisions::new());
        // The `_ga` header disappears, the others keep their order.
        assert_eq!(cookies(&h), vec!["sessionid=1", "consentry=x", "sessionid=4"]);
        assert_eq!(w.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), vec!["_ga", "lang", "_fbp"]);
    }

    #[test]
    fn duplicates_nameless_and_non_utf8() {
        let p = policy("");
        let c = consent(&p, &["analytics"]);
        let mut h = headers(&[b"_ga=1; _ga=2; nameless; sessionid=x; \xffbad=1; =v"]);
        let mut d = Decisions::new();
        let w = filter_request(&mut h, &p, "shop.example.com", &c, &mut d);
        // Both `_ga` allowed (analytics granted), the nameless pairs and the
        // non-UTF-8 name are unknown → removed.
        assert_eq!(cookies(&h), vec!["_ga=1; _ga=2; sessionid=x"]);
        // One withdrawal for the nameless cookies; none for the non-UTF-8 one.
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].name, "");
        assert_eq!(d.len(), 6);
        assert_eq!(d.iter().filter(|d| d.action == Action::Block).count(), 3);
    }

    #[test]
    fn domain_rule_applies_only_under_its_domain() {
        let p = policy("");
        let c = consent(&p, &[]);
        // `_ga` is an analytics rule for example.com: elsewhere it is unknown.
        let mut h = headers(&[b"_ga=1"]);
        let w = filter_request(&mut h, &p, "other.org", &c, &mut Decisions::new());
        assert_eq!(w[0].category, None);
        assert_eq!(w[0].domain, None);
    }

    #[test]
    fn unknown_allowed_by_policy() {
        let p = policy("unknown_cookies = \"allow\"");
        let c = consent(&p, &[]);
        let mut h = headers(&[b"legacy=1; _fbp=2; nameless"]);
        let w = filter_request(&mut h, &p, "example.com", &c, &mut Decisions::new());
        assert_eq!(cookies(&h), vec!["legacy=1; nameless"]);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn all_refused_removes_the_header() {
        let p = policy("");
        let c = consent(&p, &[]);
        let mut h = headers(&[b"_ga=1; _fbp=2"]);
        filter_request(&mut h, &p, "example.com", &c, &mut Decisions::new());
        assert!(h.get(COOKIE).is_none());
    }

    #[test]
    fn consent_header_set_and_never_forged() {
        let p = policy("consent_header = true");
        let c = consent(&p, &["analytics"]);
        let mut h = headers(&[b"sessionid=1"]);
        h.insert(CONSENT_HEADER, HeaderValue::from_static("necessary,advertising"));
        h.append(CONSENT_HEADER, HeaderValue::from_static("advertising"));
        filter_request(&mut h, &p, "example.com", &c, &mut Decisions::new());
        let got: Vec<_> = h.get_all(CONSENT_HEADER).iter().collect();
        assert_eq!(got, vec!["necessary,analytics"]);

        // Feature off: the forged header is still removed, none is added.
        let p = policy("");
        let mut h = HeaderMap::new();
        h.insert(CONSENT_HEADER, HeaderValue::from_static("necessary,advertising"));
        filter_request(&mut h, &p, "example.com", &c, &mut Decisions::new());
        assert!(h.get(CONSENT_HEADER).is_none());
    }

    #[test]
    fn report_only_changes_nothing_but_records() {
        let p = policy("mode = \"report-only\"\nconsent_header = true");
        let c = consent(&p, &[]);
        let mut h = headers(&[b"sessionid=1; _ga=2", b"_fbp=3"]);
        let before = h.clone();
        let mut d = Decisions::new();
        let w = filter_request(&mut h, &p, "example.com", &c, &mut d);
        assert_eq!(h, before);
        assert_eq!(w.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), vec!["_ga", "_fbp"]);
        assert_eq!(d.iter().filter(|d| d.action == Action::Block).count(), 2);
    }

    #[test]
    fn necessary_is_never_withdrawn() {
        let p = policy("");
        let mut c = consent(&p, &[]);
        // Even an empty grant (not even necessary) keeps necessary cookies.
        c.granted = CategorySet::EMPTY;
        let mut h = headers(&[b"sessionid=1; consentry=2"]);
        let w = filter_request(&mut h, &p, "example.com", &c, &mut Decisions::new());
        assert!(w.is_empty());
        assert_eq!(cookies(&h), vec!["sessionid=1; consentry=2"]);
    }
}

#[cfg(test)]
mod props {
    use super::tests::{consent, policy};
    use super::*;
    use crate::cookie::raw_pairs;
    use proptest::prelude::*;

    /// `Cookie` header values: rule names, unknown, nameless and odd pairs
    /// with random spacing and empty pairs.
    fn cookie_value() -> impl Strategy<Value = String> {
        let pair = prop_oneof![
            Just("sessionid=1".to_string()),
            Just("consentry=v1".to_string()),
            Just("lang=fr".to_string()),
            Just("_ga=GA1.2".to_string()),
            Just("_ga_X=1".to_string()),
            Just("_fbp=fb".to_string()),
            Just("legacy=1".to_string()),
            Just("nameless".to_string()),
            Just("=v".to_string()),
            Just("".to_string()),
            "[!#-+\\--:<-~]{1,8}(=[!#-+\\--:<-~ ]{0,8})?",
        ];
        let sep = prop_oneof![Just(";"), Just("; "), Just(" ;  "), Just(";\t")];
        proptest::collection::vec((pair, sep), 0..10)
            .prop_map(|v| v.into_iter().map(|(p, s)| format!("{p}{s}")).collect::<String>())
    }

    fn grants() -> impl Strategy<Value = Vec<&'static str>> {
        proptest::sample::subsequence(vec!["functional", "analytics", "advertising"], 0..=3)
    }

    fn pairs(h: &HeaderMap) -> Vec<Vec<u8>> {
        h.get_all(COOKIE)
            .iter()
            .flat_map(|v| raw_pairs(v.as_bytes()).map(|p| p.raw.to_vec()).collect::<Vec<_>>())
            .collect()
    }

    fn is_subsequence(small: &[Vec<u8>], big: &[Vec<u8>]) -> bool {
        let mut it = big.iter();
        small.iter().all(|s| it.any(|b| b == s))
    }

    proptest! {
        #[test]
        fn filtered_is_subset_idempotent_and_clean(
            values in proptest::collection::vec(cookie_value(), 0..4),
            granted in grants(),
            allow_unknown in any::<bool>(),
        ) {
            let p = policy(if allow_unknown { "unknown_cookies = \"allow\"" } else { "" });
            let c = consent(&p, &granted);
            let mut h = HeaderMap::new();
            for v in &values {
                h.append(COOKIE, HeaderValue::from_str(v).unwrap());
            }
            let input = pairs(&h);
            let mut d = Decisions::new();
            let withdrawn = filter_request(&mut h, &p, "www.example.com", &c, &mut d);
            let output = pairs(&h);
            // Output pairs are input pairs, byte for byte, in order.
            prop_assert!(is_subsequence(&output, &input));
            // One decision per input pair; the removed ones are exactly the blocked ones.
            prop_assert_eq!(d.len(), input.len());
            prop_assert_eq!(input.len() - output.len(), d.iter().filter(|d| d.action == Action::Block).count());
            // Nothing refused is left.
            for pair in h.get_all(COOKIE).iter().flat_map(|v| raw_pairs(v.as_bytes()).collect::<Vec<_>>()) {
                let name = crate::cookie::utf8_lossy(pair.name);
                let (category, _) = p.classify_cookie(&name, "www.example.com");
                prop_assert!(p.cookie_allowed(category, c.granted));
            }
            for w in &withdrawn {
                prop_assert!(w.category != Some(CategoryId::NECESSARY));
            }
            // Headers are never added; one that lost every pair is removed.
            prop_assert!(h.get_all(COOKIE).iter().count() <= values.len());
            // Filtering twice = filtering once.
            let once = h.clone();
            let again = filter_request(&mut h, &p, "www.example.com", &c, &mut Decisions::new());
            prop_assert_eq!(&h, &once);
            prop_assert!(again.is_empty());
        }

        /// Any header bytes a client can send (obs-text, controls, quotes,
        /// several `Cookie` headers), not only well-formed pairs: the output
        /// is still the input's pairs, byte for byte and in order, and a
        /// second pass changes nothing.
        #[test]
        fn arbitrary_bytes_filter_to_a_subset_idempotently(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 0..5),
            granted in grants(),
        ) {
            let p = policy("");
            let c = consent(&p, &granted);
            let mut h = HeaderMap::new();
            for v in &values {
                if let Ok(v) = HeaderValue::from_bytes(v) {
                    h.append(COOKIE, v);
                }
            }
            let input = pairs(&h);
            let mut d = Decisions::new();
            filter_request(&mut h, &p, "www.example.com", &c, &mut d);
            let output = pairs(&h);
            prop_assert!(is_subsequence(&output, &input));
            prop_assert_eq!(d.len(), input.len());
            let once = h.clone();
            let again = filter_request(&mut h, &p, "www.example.com", &c, &mut Decisions::new());
            prop_assert_eq!(&h, &once);
            prop_assert!(again.is_empty());
        }

        /// Report-only changes no `Cookie` header (it only reports).
        #[test]
        fn report_only_leaves_cookies_alone(
            values in proptest::collection::vec(cookie_value(), 0..4),
            granted in grants(),
        ) {
            let p = policy("mode = \"report-only\"");
            let c = consent(&p, &granted);
            let mut h = HeaderMap::new();
            for v in &values {
                h.append(COOKIE, HeaderValue::from_str(v).unwrap());
            }
            let before = h.clone();
            filter_request(&mut h, &p, "www.example.com", &c, &mut Decisions::new());
            prop_assert_eq!(h, before);
        }
    }
}
