//! Stage 7, **response headers**: classify each `Set-Cookie` (keep, drop,
//! cap, harden), add sweep deletions for withdrawn cookies, append `Vary`,
//! and in report-only mode a `Consentry-Report` summary instead of any
//! change.
//!
//! The steps, in order:
//!
//! 1. **Set-Cookie.** Each header is parsed on its own (never joined) by
//!    [`crate::set_cookie`] and classified by its name and effective domain
//!    (its `Domain` without the leading dot, else the request host):
//!    - unparseable (a browser would ignore it) → dropped, `Invalid`: fail
//!      closed, never passed on unexamined;
//!    - a deletion (`Max-Age<=0`, `Expires` past) → kept as is, whatever its
//!      category: deleting a cookie is never a consent problem, and dropping
//!      it would leave a refused cookie in the browser;
//!    - refused → dropped, `Block`;
//!    - allowed → kept byte for byte, unless its lifetime is over the
//!      policy's cap (`Cap`: only the offending `Max-Age`/`Expires` values
//!      are rewritten, both when both are present; session cookies have no
//!      lifetime to cap) or a hardening rule adds flags (`Harden`).
//! 2. **Sweep.** Deletions for the cookies the request filter withdrew, as
//!    [`crate::sweep`] plans them, except for names this response itself
//!    keeps a `Set-Cookie` for (the origin's own header for that cookie
//!    reaches the browser and must not be contradicted). A refused
//!    `Set-Cookie` that was dropped does not stop the sweep: the browser
//!    never sees it, and its old copy still has to go.
//! 3. **Vary.** A response whose headers or body depend on consent gets
//!    `Vary: Cookie` (and `Sec-GPC` when the policy honours GPC) appended
//!    to the origin's `Vary`, never replacing it, never duplicated, and
//!    `Vary: *` is left alone. It depends on consent when it carried
//!    `Set-Cookie`, when sweeps are added, when the body stage rewrites the
//!    body, and — for a 304 — when the origin's 304 carries a `Vary`
//!    (a cache replaces the stored response's `Vary` with the 304's, which
//!    would otherwise drop the `Cookie` the 200 had).
//!
//! **report-only.** Every step runs and records its decisions, but the
//! headers are left as the origin sent them. What would have been done is
//! summarised in one bounded `Consentry-Report` header, the one difference
//! from the origin's response: no `Vary` is added either, since adding
//! `Vary: Cookie` would change how every cache in front stores the
//! response (many stop caching it at all) while the operator is only
//! observing. A cached report describes the request that filled the cache
//! entry (README, "Caches"). Pages are not rewritten and get no banner.
//!
//! CSP is not built here; the body-rewriting work owns it.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use compact_str::CompactString;
use http::header::{SET_COOKIE, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::category::CategoryId;
use crate::consent::{Consent, GPC_NOTE};
use crate::cookie::utf8_lossy;
use crate::decision::{Action, Decision, Decisions, Item};
use crate::policy::{CookieBasis, Mode, Policy, shared_texts};
use crate::request_filter::Withdrawn;
use crate::set_cookie::{self, Edit, Lifetime, SetCookie};
use crate::sweep;

/// The report-only summary header.
pub const REPORT_HEADER: HeaderName = HeaderName::from_static("consentry-report");

/// What the response-header stage needs to know about the request.
#[derive(Debug)]
pub struct ResponseContext<'a> {
    /// The site's policy.
    pub policy: &'a Policy,
    /// The request host (normalized): the effective domain of host-only cookies.
    pub host: &'a str,
    /// The visitor's consent.
    pub consent: &'a Consent,
    /// Cookies the request carried without consent.
    pub withdrawn: &'a [Withdrawn],
    /// Whether the client connection is HTTPS.
    pub https: bool,
    /// Now, for `Expires` arithmetic.
    pub now: SystemTime,
    /// Whether the body stage will rewrite the body (so it depends on consent).
    pub body_rewritten: bool,
}

/// What to do with one `Set-Cookie` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Pass it unchanged.
    Keep,
    /// Remove it.
    Drop,
    /// Send this value instead.
    Replace(HeaderValue),
}

/// Unix seconds of `t` (negative before 1970).
fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// A best-effort name for a header that did not parse, for the records.
fn invalid_name(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == b'=' || b == b';').unwrap_or(raw.len()).min(128);
    String::from_utf8_lossy(&raw[..end])
        .trim()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Decides one `Set-Cookie` header. Pure: the caller applies the verdict.
pub fn judge_set_cookie(value: &HeaderValue, cx: &ResponseContext<'_>, now: i64) -> (Verdict, Decision) {
    judge(value, cx, now, &CompactString::from(cx.host))
}

/// [`judge_set_cookie`], given the decisions' domain for host-only cookies
/// (`cx.host`), built once per response rather than once per header.
fn judge(
    value: &HeaderValue,
    cx: &ResponseContext<'_>,
    now: i64,
    host: &CompactString,
) -> (Verdict, Decision) {
    let policy = cx.policy;
    let raw = value.as_bytes();
    let cookie = match SetCookie::parse(raw) {
        Ok(c) => c,
        Err(why) => {
            let name = invalid_name(raw);
            tracing::debug!(item = "set_cookie", cookie = %name, reason = why.name(), action = "invalid", "cookie decision");
            let decision = Decision {
                item: Item::SetCookie,
                name: name.into(),
                domain: host.clone(),
                category: None,
                action: Action::Invalid,
                rule: format!("unparseable: {}", why.name()).into(),
            };
            return (Verdict::Drop, decision);
        }
    };
    // Name and domain are checked on their own: one check of the whole
    // header (as the request filter does per `Cookie` header) measured
    // ~0.5 k instructions more per 30 headers than these two short ones.
    let name = utf8_lossy(cookie.name());
    // `None` for a host-only cookie, whose domain is the request host.
    let domain_attribute: Option<Cow<'_, str>> = cookie.domain().map(|d| {
        if d.iter().any(u8::is_ascii_uppercase) {
            Cow::Owned(String::from_utf8_lossy(d).to_ascii_lowercase())
        } else {
            // Lower case already nearly always: then it is borrowed, not copied.
            utf8_lossy(d)
        }
    });
    let domain = domain_attribute.as_deref().unwrap_or(cx.host);
    let (category, basis) = policy.classify_cookie(&name, domain);
    let allowed = policy.cookie_allowed(category, cx.consent.granted);
    let lifetime = cookie.lifetime(now);

    let (verdict, action, note) = if lifetime == Lifetime::Delete {
        // Deleting a cookie is never a consent problem: it always passes,
        // unchanged, even for a refused category.
        (Verdict::Keep, Action::Allow, if allowed { "" } else { "deletion always allowed; " })
    } else if !allowed {
        (Verdict::Drop, Action::Block, if cx.consent.refused_by_gpc(category) { GPC_NOTE } else { "" })
    } else {
        let edit = edit_for(policy, &name, category, &basis, lifetime, now);
        let changes = set_cookie::plan(&cookie, &edit);
        if changes.any() {
            let bytes = set_cookie::rewrite(&cookie, &edit);
            // The result is the original's bytes plus ASCII, so it is a
            // valid header value; should it somehow not be, fail closed.
            match HeaderValue::from_maybe_shared(bytes::Bytes::from(bytes)) {
                Ok(v) => (Verdict::Replace(v), if changes.capped { Action::Cap } else { Action::Harden }, ""),
                Err(_) => (Verdict::Drop, Action::Invalid, "rewrite failed; "),
            }
        } else {
            (Verdict::Keep, Action::Allow, "")
        }
    };
    let rule = match note {
        "" => basis.text(false),
        GPC_NOTE => basis.text(true),
        _ => Arc::from(format!("{note}{}", basis.describe())),
    };
    tracing::debug!(
        item = "set_cookie",
        cookie = %name,
        domain = %domain,
        category = ?category.map(CategoryId::index),
        action = action.name(),
        rule = %rule,
        "cookie decision"
    );
    let decision = Decision {
        item: Item::SetCookie,
        name: CompactString::from(name),
        domain: domain_attribute.map_or_else(|| host.clone(), CompactString::from),
        category,
        action,
        rule,
    };
    (verdict, decision)
}

/// The lifetime cap and hardening flags for an allowed cookie.
fn edit_for(
    policy: &Policy,
    name: &str,
    category: Option<CategoryId>,
    basis: &CookieBasis<'_>,
    lifetime: Lifetime,
    now: i64,
) -> Edit {
    let mut edit = Edit::default();
    let rule = match basis {
        CookieBasis::Rule(rule) => Some(*rule),
        _ => None,
    };
    // Session cookies are not capped: they have no lifetime to shorten.
    if matches!(lifetime, Lifetime::Until(_))
        && let Some(cap) = policy.max_cookie_age(category, rule)
    {
        let secs = i64::try_from(cap.as_secs()).unwrap_or(i64::MAX);
        edit.max_age = Some(secs);
        edit.expires = Some(now.saturating_add(secs));
    }
    for h in &policy.harden {
        if h.name.matches(name) {
            edit.secure |= h.secure;
            edit.http_only |= h.http_only;
            if edit.same_site.is_none() {
                edit.same_site = h.same_site.map(|s| s.as_str());
            }
        }
    }
    edit
}

/// Applies the stage to the origin's response headers.
pub fn filter_response(
    status: StatusCode,
    headers: &mut HeaderMap,
    cx: &ResponseContext<'_>,
    decisions: &mut Decisions,
) {
    let enforce = cx.policy.mode == Mode::Enforce;
    let now = unix(cx.now);
    let mut report = Report { enabled: !enforce, ..Report::default() };

    // 1. Set-Cookie.
    let had_set_cookie = headers.contains_key(SET_COOKIE);
    let first = decisions.len();
    if had_set_cookie {
        // Sized for a typical response without counting first: walking a
        // header's values is pointer chasing, as dear as growing the Vec.
        let mut verdicts = Vec::with_capacity(32);
        let host = CompactString::from(cx.host);
        for value in headers.get_all(SET_COOKIE) {
            let (verdict, decision) = judge(value, cx, now, &host);
            report.set_cookie(&decision);
            decisions.push(decision);
            verdicts.push(verdict);
        }
        if enforce && verdicts.iter().any(|v| *v != Verdict::Keep) {
            apply(headers, verdicts);
        }
    }

    // 2. Sweep.
    if report.enabled {
        for w in cx.withdrawn {
            report.request_blocked.push(&w.name);
        }
    }
    // Names whose Set-Cookie reaches (or, report-only, would reach) the
    // browser are not swept.
    let set_here = &decisions[first..];
    let sweep = sweep::plan(cx.withdrawn, cx.host, cx.https, cx.policy.sweep_budget, |name| {
        set_here.iter().any(|d| {
            d.item == Item::SetCookie
                && matches!(d.action, Action::Allow | Action::Cap | Action::Harden)
                && d.name == name
        })
    });
    for w in &sweep.swept {
        if report.enabled {
            report.swept.push(&w.name);
        }
        record_sweep(decisions, cx, w, Action::Sweep, &WITHDRAWN);
    }
    for w in &sweep.deferred {
        if report.enabled {
            report.deferred.push(&w.name);
        }
        // Not sent: the budget ran out. The browser sends the cookie again,
        // and a later response deletes it.
        record_sweep(decisions, cx, w, Action::Block, &DEFERRED);
    }
    if sweep.cut > 0 {
        tracing::debug!(cut = sweep.cut, budget = cx.policy.sweep_budget, "sweep deletions over budget");
    }
    let sweeping = !sweep.headers.is_empty();
    if enforce {
        append_all(headers, SET_COOKIE, sweep.headers);
    }

    // 3. Report (report-only) and Vary.
    let depends = if enforce {
        had_set_cookie
            || sweeping
            || cx.body_rewritten
            || (status == StatusCode::NOT_MODIFIED && headers.contains_key(VARY))
    } else {
        // Report-only: `Consentry-Report` is the one difference from the
        // origin's response. Not even `Vary`: the response does not depend
        // on consent, and adding `Vary: Cookie` would change how every
        // cache in front stores it (many stop caching it at all), which is
        // exactly what an operator trying consentry out must not see. The
        // report itself describes the request that filled a cache entry;
        // README ("Caches") says where consentry goes relative to a cache.
        if let Some(text) = report.render()
            // Rendered from escaped names, so always a valid value.
            && let Ok(value) = HeaderValue::from_str(&text)
        {
            headers.insert(REPORT_HEADER, value);
        }
        false
    };
    if depends {
        append_vary(headers, cx.policy.honours_gpc());
    }
}

/// The rule texts of sweep decisions, plain and after the GPC note.
static WITHDRAWN: LazyLock<[Arc<str>; 2]> = LazyLock::new(|| shared_texts("withdrawn"));
static DEFERRED: LazyLock<[Arc<str>; 2]> = LazyLock::new(|| shared_texts("sweep_budget exhausted, deferred"));

fn record_sweep(
    decisions: &mut Decisions,
    cx: &ResponseContext<'_>,
    w: &Withdrawn,
    action: Action,
    why: &[Arc<str>; 2],
) {
    let domain = CompactString::from(w.domain.as_deref().unwrap_or(cx.host));
    tracing::debug!(
        item = "sweep",
        cookie = %w.name,
        domain = %domain,
        category = ?w.category.map(CategoryId::index),
        action = action.name(),
        "cookie decision"
    );
    decisions.push(Decision {
        item: Item::Sweep,
        name: CompactString::from(w.name.as_str()),
        domain,
        category: w.category,
        action,
        rule: Arc::clone(&why[usize::from(cx.consent.refused_by_gpc(w.category))]),
    });
}

/// Replaces the `Set-Cookie` headers by the verdicts' outcome, in order.
fn apply(headers: &mut HeaderMap, verdicts: Vec<Verdict>) {
    let mut old: Vec<HeaderValue> = Vec::with_capacity(verdicts.len());
    match headers.entry(SET_COOKIE) {
        http::header::Entry::Occupied(entry) => old.extend(entry.remove_entry_mult().1),
        http::header::Entry::Vacant(_) => return,
    }
    let kept = old.into_iter().zip(verdicts).filter_map(|(value, verdict)| match verdict {
        Verdict::Keep => Some(value),
        Verdict::Replace(new) => Some(new),
        Verdict::Drop => None,
    });
    append_all(headers, SET_COOKIE, kept);
}

/// Appends `values` to the header `name`, in order, finding (or adding)
/// its entry once rather than hashing the name for every value.
fn append_all(headers: &mut HeaderMap, name: HeaderName, values: impl IntoIterator<Item = HeaderValue>) {
    let mut values = values.into_iter();
    match headers.entry(name) {
        http::header::Entry::Occupied(mut entry) => values.for_each(|v| entry.append(v)),
        http::header::Entry::Vacant(entry) => {
            if let Some(first) = values.next() {
                let mut entry = entry.insert_entry(first);
                values.for_each(|v| entry.append(v));
            }
        }
    }
}

/// Appends `Cookie` (and `Sec-GPC` when `gpc`) to `Vary` unless already
/// listed; leaves `Vary: *` alone. The origin's values are kept as sent.
pub fn append_vary(headers: &mut HeaderMap, gpc: bool) {
    let mut has_cookie = false;
    let mut has_gpc = !gpc;
    for value in headers.get_all(VARY) {
        for token in value.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token == b"*" {
                return;
            }
            has_cookie |= token.eq_ignore_ascii_case(b"cookie");
            has_gpc |= token.eq_ignore_ascii_case(b"sec-gpc");
        }
    }
    let add = match (has_cookie, has_gpc) {
        (true, true) => return,
        (false, true) => "Cookie",
        (true, false) => "Sec-GPC",
        (false, false) => "Cookie, Sec-GPC",
    };
    headers.append(VARY, HeaderValue::from_static(add));
}

/// Appends one more request header name to `Vary` unless it is already
/// listed (or the origin said `Vary: *`): `Accept-Language` when the page
/// carries a banner in the visitor's language.
pub fn vary_on(headers: &mut HeaderMap, name: &'static str) {
    for value in headers.get_all(VARY) {
        for token in value.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token == b"*" || token.eq_ignore_ascii_case(name.as_bytes()) {
                return;
            }
        }
    }
    headers.append(VARY, HeaderValue::from_static(name));
}

/// Adds the Content-Security-Policy built from the granted categories
/// ([`crate::csp`]) to an HTML response of an enforcing policy that asks
/// for one. It is an additional header: the origin's own CSP still applies,
/// and a browser enforces both.
pub fn add_csp(
    headers: &mut HeaderMap,
    site: &crate::route::Site,
    granted: crate::category::CategorySet,
    nonce: Option<&str>,
) {
    if site.policy.mode != Mode::Enforce {
        return;
    }
    if let Some((name, value)) = crate::csp::header(&site.policy, site, granted, nonce) {
        headers.append(name, value);
    }
}

/// The report-only summary, bounded in size. Collects nothing unless
/// `enabled` (enforce mode pays nothing for it).
#[derive(Debug, Default)]
struct Report {
    enabled: bool,
    blocked: NameList,
    capped: NameList,
    hardened: NameList,
    invalid: usize,
    request_blocked: NameList,
    swept: NameList,
    deferred: NameList,
}

/// Names shown per list; the rest are counted (`+3`).
const REPORT_NAMES: usize = 8;
/// Bytes of one name shown; longer names are cut (`...`).
const REPORT_NAME_BYTES: usize = 48;

#[derive(Debug, Default)]
struct NameList {
    names: Vec<String>,
    more: usize,
}

impl NameList {
    fn push(&mut self, name: &str) {
        if self.names.iter().any(|n| n == name) {
            return;
        }
        if self.names.len() < REPORT_NAMES {
            self.names.push(name.to_string());
        } else {
            self.more += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    fn render(&self, key: &str, out: &mut String) {
        if self.is_empty() {
            return;
        }
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(key);
        out.push('=');
        for (i, name) in self.names.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            escape_name(name, out);
        }
        if self.more > 0 {
            let _ = write!(out, ",+{}", self.more);
        }
    }
}

/// Writes a cookie name so the report stays parseable and a valid header:
/// token characters as they are, anything else `%XX`, at most
/// [`REPORT_NAME_BYTES`] bytes; an empty name as `(nameless)`.
fn escape_name(name: &str, out: &mut String) {
    if name.is_empty() {
        out.push_str("(nameless)");
        return;
    }
    let start = out.len();
    for b in name.bytes() {
        if out.len() - start >= REPORT_NAME_BYTES {
            out.push_str("...");
            return;
        }
        if b.is_ascii_alphanumeric() || b"!#$&'*+-.^_`|~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

impl Report {
    fn set_cookie(&mut self, decision: &Decision) {
        if !self.enabled {
            return;
        }
        match decision.action {
            Action::Block => self.blocked.push(&decision.name),
            Action::Cap => self.capped.push(&decision.name),
            Action::Harden => self.hardened.push(&decision.name),
            Action::Invalid => self.invalid += 1,
            Action::Allow | Action::Sweep => {}
        }
    }

    /// The header value, or `None` when nothing would have changed.
    fn render(&self) -> Option<String> {
        let mut out = String::new();
        self.blocked.render("set-cookie-blocked", &mut out);
        self.capped.render("set-cookie-capped", &mut out);
        self.hardened.render("set-cookie-hardened", &mut out);
        if self.invalid > 0 {
            if !out.is_empty() {
                out.push_str("; ");
            }
            let _ = write!(out, "set-cookie-invalid={}", self.invalid);
        }
        self.request_blocked.render("request-cookie-blocked", &mut out);
        self.swept.render("sweep", &mut out);
        self.deferred.render("sweep-deferred", &mut out);
        (!out.is_empty()).then_some(out)
    }
}

#[cfg(test)]
mod scenarios;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_filter::tests::{consent, policy};

    /// 2023-11-14 22:13:20 UTC.
    const NOW: u64 = 1_700_000_000;

    fn cx<'a>(p: &'a Policy, c: &'a Consent, withdrawn: &'a [Withdrawn]) -> ResponseContext<'a> {
        ResponseContext {
            policy: p,
            host: "www.example.com",
            consent: c,
            withdrawn,
            https: false,
            now: UNIX_EPOCH + std::time::Duration::from_secs(NOW),
            body_rewritten: false,
        }
    }

    fn response(set_cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        for v in set_cookies {
            h.append(SET_COOKIE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn set_cookies(h: &HeaderMap) -> Vec<&str> {
        h.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap()).collect()
    }

    fn vary(h: &HeaderMap) -> Vec<&str> {
        h.get_all(VARY).iter().map(|v| v.to_str().unwrap()).collect()
    }

    fn run(p: &Policy, c: &Consent, withdrawn: &[Withdrawn], h: &mut HeaderMap) -> Decisions {
        let mut d = Decisions::new();
        filter_response(StatusCode::OK, h, &cx(p, c, withdrawn), &mut d);
        d
    }

    /// `Set-Cookie` and sweep decisions name `Sec-GPC: 1` when it is why
    /// the cookie is refused.
    #[test]
    fn gpc_refusals_are_named_in_decisions() {
        let p = policy("");
        let mut c = consent(&p, &["functional", "analytics"]);
        c.gpc_refused = crate::category::CategorySet::only(p.categories.id("advertising").unwrap());
        let w = [Withdrawn {
            name: "_fbp".into(),
            category: p.categories.id("advertising"),
            domain: None,
            paths: Arc::new(["/".into()]),
        }];
        let mut h = response(&["_fbp=fb.1; Path=/; Max-Age=3600", "tracker=1", "lang=fr"]);
        let d = run(&p, &c, &w, &mut h);
        assert_eq!(set_cookies(&h)[0], "lang=fr");
        let find = |item: Item, name: &str| {
            d.iter().find(|d| d.item == item && d.name == name).unwrap_or_else(|| panic!("{d:?}")).clone()
        };
        let fbp = find(Item::SetCookie, "_fbp");
        assert_eq!(fbp.action, Action::Block);
        assert!(fbp.rule.starts_with(GPC_NOTE), "{fbp:?}");
        let tracker = find(Item::SetCookie, "tracker");
        assert!(!tracker.rule.contains("GPC"), "{tracker:?}");
        let sweep = find(Item::Sweep, "_fbp");
        assert_eq!(sweep.action, Action::Sweep);
        assert_eq!(&*sweep.rule, format!("{GPC_NOTE}withdrawn"));
    }

    #[test]
    fn keeps_allowed_byte_for_byte_drops_refused() {
        let p = policy("");
        let c = consent(&p, &["functional"]);
        let mut h = response(&[
            "sessionid=abc;path=/;  HttpOnly ;secure",
            "_ga=GA1.2.3; Domain=.example.com; Path=/; Max-Age=63072000",
            "lang=fr; Expires=Wed, 09-Jun-2021 10:18:14 GMT",
            "lang=de",
            "tracker=1",
        ]);
        let d = run(&p, &c, &[], &mut h);
        assert_eq!(
            set_cookies(&h),
            vec![
                "sessionid=abc;path=/;  HttpOnly ;secure",
                "lang=fr; Expires=Wed, 09-Jun-2021 10:18:14 GMT",
                "lang=de"
            ]
        );
        let got: Vec<_> = d.iter().map(|d| (d.name.as_str(), d.domain.as_str(), d.action)).collect();
        assert_eq!(
            got,
            vec![
                ("sessionid", "www.example.com", Action::Allow),
                ("_ga", "example.com", Action::Block),
                // A deletion (Expires in the past) of an allowed cookie.
                ("lang", "www.example.com", Action::Allow),
                ("lang", "www.example.com", Action::Allow),
                ("tracker", "www.example.com", Action::Block),
            ]
        );
        assert!(d.iter().all(|d| d.item == Item::SetCookie));
        assert_eq!(vary(&h), vec!["Cookie, Sec-GPC"]);
    }

    #[test]
    fn deletions_always_pass_unchanged() {
        let p = policy("");
        let c = consent(&p, &[]);
        let del = [
            "_ga=; Domain=.example.com; Max-Age=0",
            "_fbp=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            "tracker=; max-age=-1; Expires=Fri, 31 Dec 9999 23:59:59 GMT",
        ];
        let mut h = response(&del);
        let d = run(&p, &c, &[], &mut h);
        assert_eq!(set_cookies(&h), del.to_vec());
        assert!(d.iter().all(|d| d.action == Action::Allow));
        assert!(d[0].rule.starts_with("deletion always allowed; _ga"));
        // Max-Age wins: a future Expires with Max-Age=0 is a deletion, a
        // past Expires with a positive Max-Age is not.
        let mut h = response(&["_fbp=x; Max-Age=10; Expires=Thu, 01 Jan 1970 00:00:00 GMT"]);
        run(&p, &c, &[], &mut h);
        assert!(set_cookies(&h).is_empty());
    }

    #[test]
    fn invalid_is_dropped_and_recorded() {
        let p = policy("unknown_cookies = \"allow\"");
        let c = consent(&p, &[]);
        let long = format!("big={}", "x".repeat(5000));
        let mut h = response(&["", "=", " ; Path=/", &long, "ok=1"]);
        let d = run(&p, &c, &[], &mut h);
        assert_eq!(set_cookies(&h), vec!["ok=1"]);
        let invalid: Vec<_> =
            d.iter().filter(|d| d.action == Action::Invalid).map(|d| d.name.as_str()).collect();
        assert_eq!(invalid, vec!["", "", "", "big"]);
        assert!(d[3].rule.contains("4096"));
    }

    #[test]
    fn lifetime_capped_to_category_and_rule() {
        let p = policy(
            r#"
[policy.default.categories]
necessary = {}
functional = { max_cookie_days = 30 }
analytics = { max_cookie_days = 395 }
advertising = {}
[[policy.default.cookie]]
name = "short"
category = "advertising"
max_days = 1
"#,
        );
        let c = consent(&p, &["functional", "analytics", "advertising"]);
        let mut h = response(&[
            // Max-Age over the 30-day cap.
            "lang=fr; Max-Age=31536000; Path=/",
            // Under the cap: untouched.
            "lang=de; Max-Age=86400",
            // Expires over the cap (Netscape two-digit-year form).
            "_ga_X=1; expires=Fri, 31-Dec-38 23:59:59 GMT; path=/",
            // Both, Max-Age under but Expires over: only Expires changes.
            "_ga_Y=1; Max-Age=3600; Expires=Fri, 31 Dec 9999 23:59:59 GMT",
            // Rule cap beats the (absent) category cap.
            "short=1; Max-Age=999999999999999999999999",
            // Session cookies are not capped.
            "lang=it",
            // No cap for advertising without a rule cap.
            "_fbp=1; Max-Age=99999999",
        ]);
        let d = run(&p, &c, &[], &mut h);
        assert_eq!(
            set_cookies(&h),
            vec![
                "lang=fr; Max-Age=2592000; Path=/",
                "lang=de; Max-Age=86400",
                "_ga_X=1; expires=Fri, 13 Dec 2024 22:13:20 GMT; path=/",
                "_ga_Y=1; Max-Age=3600; Expires=Fri, 13 Dec 2024 22:13:20 GMT",
                "short=1; Max-Age=86400",
                "lang=it",
                "_fbp=1; Max-Age=99999999",
            ]
        );
        let actions: Vec<_> = d.iter().map(|d| d.action).collect();
        use Action::*;
        assert_eq!(actions, vec![Cap, Allow, Cap, Cap, Cap, Allow, Allow]);
    }

    #[test]
    fn hardening_adds_missing_flags_only() {
        let p = policy(
            r#"
[[policy.default.harden]]
name = "sessionid"
secure = true
http_only = true
same_site = "Lax"
[[policy.default.harden]]
name = "lang"
same_site = "strict"
"#,
        );
        let c = consent(&p, &["functional"]);
        let mut h = response(&[
            "sessionid=1; Path=/",
            "sessionid=2; Secure; HttpOnly; SameSite=lax",
            "lang=fr; SameSite=None",
            "_fbp=1",
        ]);
        let d = run(&p, &c, &[], &mut h);
        assert_eq!(
            set_cookies(&h),
            vec![
                "sessionid=1; Path=/; Secure; HttpOnly; SameSite=Lax",
                "sessionid=2; Secure; HttpOnly; SameSite=lax",
                "lang=fr; SameSite=Strict",
            ]
        );
        let actions: Vec<_> = d.iter().map(|d| d.action).collect();
        assert_eq!(actions, vec![Action::Harden, Action::Allow, Action::Harden, Action::Block]);
    }

    #[test]
    fn domain_attribute_decides_the_rule() {
        let p = policy("");
        let c = consent(&p, &["analytics"]);
        // `_ga` is an analytics rule for example.com; on another domain it is unknown.
        let mut h = response(&["_ga=1; Domain=.EXAMPLE.com", "_ga=2; Domain=other.org", "_ga=3"]);
        let d = run(&p, &c, &[], &mut h);
        assert_eq!(set_cookies(&h), vec!["_ga=1; Domain=.EXAMPLE.com", "_ga=3"]);
        assert_eq!(d[1].domain, "other.org");
        assert_eq!(d[1].category, None);
    }

    fn withdrawn(name: &str, domain: Option<&str>) -> Withdrawn {
        Withdrawn {
            name: name.into(),
            category: CategoryId::new(2),
            domain: domain.map(str::to_string),
            paths: Arc::new(["/".to_string()]),
        }
    }

    #[test]
    fn sweeps_withdrawn_except_what_the_response_keeps() {
        let p = policy("");
        let c = consent(&p, &["advertising"]);
        let w = [withdrawn("_ga", Some("example.com")), withdrawn("_fbp", None), withdrawn("old", None)];
        // The origin sets `_fbp` (kept: advertising granted) and `old`
        // (refused, dropped): `_fbp` is not swept, `old` is.
        let mut h = response(&["_fbp=new; Max-Age=60", "old=1"]);
        let mut cxt = cx(&p, &c, &w);
        cxt.https = true;
        let mut d = Decisions::new();
        filter_response(StatusCode::OK, &mut h, &cxt, &mut d);
        assert_eq!(
            set_cookies(&h),
            vec![
                "_fbp=new; Max-Age=60",
                "_ga=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=example.com; Secure",
                "_ga=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=www.example.com; Secure",
                "_ga=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure",
                "old=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=example.com; Secure",
                "old=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=www.example.com; Secure",
                "old=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure",
            ]
        );
        let sweeps: Vec<_> =
            d.iter().filter(|d| d.item == Item::Sweep).map(|d| (d.name.as_str(), d.action)).collect();
        assert_eq!(sweeps, vec![("_ga", Action::Sweep), ("old", Action::Sweep)]);
        assert_eq!(d.iter().find(|d| d.item == Item::Sweep).unwrap().domain, "example.com");
    }

    #[test]
    fn sweep_budget_defers_and_records() {
        let p = policy("sweep_budget = 1");
        let c = consent(&p, &[]);
        let w = [withdrawn("a", None), withdrawn("b", None)];
        let mut h = HeaderMap::new();
        let d = run(&p, &c, &w, &mut h);
        assert_eq!(set_cookies(&h).len(), 1);
        let sweeps: Vec<_> = d.iter().map(|d| (d.name.as_str(), d.action)).collect();
        assert_eq!(sweeps, vec![("a", Action::Sweep), ("b", Action::Block)]);
        // A sweep alone makes the response consent-dependent.
        assert_eq!(vary(&h), vec!["Cookie, Sec-GPC"]);
    }

    #[test]
    fn vary_appended_not_duplicated() {
        let mut h = HeaderMap::new();
        h.append(VARY, HeaderValue::from_static("Accept-Encoding"));
        append_vary(&mut h, false);
        assert_eq!(vary(&h), vec!["Accept-Encoding", "Cookie"]);
        append_vary(&mut h, false);
        assert_eq!(vary(&h), vec!["Accept-Encoding", "Cookie"]);
        append_vary(&mut h, true);
        assert_eq!(vary(&h), vec!["Accept-Encoding", "Cookie", "Sec-GPC"]);
        let mut h = HeaderMap::new();
        h.append(VARY, HeaderValue::from_static("accept-encoding, COOKIE"));
        append_vary(&mut h, true);
        assert_eq!(vary(&h), vec!["accept-encoding, COOKIE", "Sec-GPC"]);
        let mut h = HeaderMap::new();
        h.append(VARY, HeaderValue::from_static("Accept, *"));
        append_vary(&mut h, true);
        assert_eq!(vary(&h), vec!["Accept, *"]);
    }

    #[test]
    fn vary_only_when_consent_matters() {
        // No GPC honoured: `gpc_refuses = []`.
        let p = policy("[policy.default.consent]\ngpc_refuses = []");
        let c = consent(&p, &[]);
        // Nothing consent-dependent: untouched.
        let mut h = response(&[]);
        let before = h.clone();
        run(&p, &c, &[], &mut h);
        assert_eq!(h, before);
        // Body rewritten.
        let mut h = response(&[]);
        let mut d = Decisions::new();
        let mut cxt = cx(&p, &c, &[]);
        cxt.body_rewritten = true;
        filter_response(StatusCode::OK, &mut h, &cxt, &mut d);
        assert_eq!(vary(&h), vec!["Cookie"]);
        // A 304 whose Vary would replace the stored one.
        let mut h = HeaderMap::new();
        h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        filter_response(StatusCode::NOT_MODIFIED, &mut h, &cx(&p, &c, &[]), &mut d);
        assert_eq!(vary(&h), vec!["Accept-Encoding", "Cookie"]);
        let mut h = HeaderMap::new();
        filter_response(StatusCode::NOT_MODIFIED, &mut h, &cx(&p, &c, &[]), &mut d);
        assert!(h.is_empty());
        // Any Set-Cookie, even an allowed one.
        let mut h = response(&["sessionid=1"]);
        run(&p, &c, &[], &mut h);
        assert_eq!(vary(&h), vec!["Cookie"]);
    }

    #[test]
    fn report_only_leaves_bytes_and_reports() {
        let p = policy(
            r#"mode = "report-only"
[policy.default.categories]
necessary = {}
functional = { max_cookie_days = 1 }
analytics = {}
advertising = {}
[[policy.default.harden]]
name = "sessionid"
http_only = true
"#,
        );
        let c = consent(&p, &["functional"]);
        let w = [withdrawn("_ga", Some("example.com")), withdrawn("_fbp", None)];
        let mut h =
            response(&["_ga=1; Max-Age=100", "_fbp=2", "lang=fr; Max-Age=99999", "sessionid=1", "=", "ok=1"]);
        h.append(VARY, HeaderValue::from_static("Accept-Encoding"));
        let before = h.clone();
        let d = run(&p, &c, &w, &mut h);
        let report = h.remove(REPORT_HEADER).unwrap();
        assert_eq!(
            report.to_str().unwrap(),
            "set-cookie-blocked=_ga,_fbp,ok; set-cookie-capped=lang; set-cookie-hardened=sessionid; \
             set-cookie-invalid=1; request-cookie-blocked=_ga,_fbp; sweep=_ga,_fbp"
        );
        // Nothing but the report was added, not even Vary.
        assert_eq!(h, before);
        // Decisions are recorded as in enforce mode.
        let sweeps = d.iter().filter(|d| d.action == Action::Sweep).count();
        assert_eq!(sweeps, 2);
        assert_eq!(d.iter().filter(|d| d.action == Action::Block).count(), 3);

        // Nothing would change: no report, no Vary, identical bytes.
        let mut h = response(&["sessionid=1; HttpOnly"]);
        let before = h.clone();
        run(&p, &c, &[], &mut h);
        assert_eq!(h, before);
    }

    #[test]
    fn report_is_bounded_and_escaped() {
        let p = policy("mode = \"report-only\"");
        let c = consent(&p, &[]);
        let long = format!("{}=1", "n".repeat(300));
        let mut values: Vec<String> = (0..40).map(|i| format!("t{i}=1")).collect();
        values.push(long);
        values.push("a%b=1".to_string());
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let w: Vec<_> = (0..100).map(|i| withdrawn(&format!("w{i}"), None)).collect();
        let mut h = response(&refs);
        run(&p, &c, &w, &mut h);
        let report = h.get(REPORT_HEADER).unwrap().to_str().unwrap();
        assert!(report.len() < 1024, "{} bytes", report.len());
        assert!(report.starts_with("set-cookie-blocked=t0,t1,t2,t3,t4,t5,t6,t7,+34;"), "{report}");
        assert!(report.contains("sweep=w0,"));
        // Three deletions each (example.com, www.example.com, host-only):
        // w0..w10 fit in the budget of 32, w11 on is deferred.
        assert!(report.contains("sweep-deferred=w11,"), "{report}");
        // Escaping keeps separators out of names.
        let mut out = String::new();
        escape_name("a;b,c=d e", &mut out);
        assert_eq!(out, "a%3Bb%2Cc%3Dd%20e");
        let mut out = String::new();
        escape_name(&"x".repeat(100), &mut out);
        assert_eq!(out.len(), REPORT_NAME_BYTES + 3);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::request_filter::tests::{consent, policy};
    use crate::set_cookie::props::set_cookie_value;
    use proptest::prelude::*;

    const NOW: u64 = 1_700_000_000;

    fn grants() -> impl Strategy<Value = Vec<&'static str>> {
        proptest::sample::subsequence(vec!["functional", "analytics", "advertising"], 0..=3)
    }

    fn run(p: &Policy, c: &Consent, h: &mut HeaderMap) -> Decisions {
        let cx = ResponseContext {
            policy: p,
            host: "www.example.com",
            consent: c,
            withdrawn: &[],
            https: true,
            now: UNIX_EPOCH + std::time::Duration::from_secs(NOW),
            body_rewritten: false,
        };
        let mut d = Decisions::new();
        filter_response(StatusCode::OK, h, &cx, &mut d);
        d
    }

    fn values(h: &HeaderMap) -> Vec<Vec<u8>> {
        h.get_all(SET_COOKIE).iter().map(|v| v.as_bytes().to_vec()).collect()
    }

    proptest! {
        #[test]
        fn kept_set_cookies_are_byte_identical(
            input in proptest::collection::vec(set_cookie_value(), 0..8),
            granted in grants(),
        ) {
            // No caps, no hardening: every output is an input, unchanged, in order.
            let p = policy("");
            let c = consent(&p, &granted);
            let mut h = HeaderMap::new();
            for v in &input {
                h.append(SET_COOKIE, HeaderValue::from_str(v).unwrap());
            }
            let d = run(&p, &c, &mut h);
            let out = values(&h);
            let mut it = input.iter();
            for o in &out {
                prop_assert!(it.any(|i| i.as_bytes() == o.as_slice()), "{}", String::from_utf8_lossy(o));
            }
            prop_assert_eq!(d.len(), input.len());
            prop_assert_eq!(out.len(), d.iter().filter(|d| d.action == Action::Allow).count());
            // No refused, live cookie got through.
            for o in &out {
                let sc = SetCookie::parse(o).unwrap();
                if !sc.is_deletion(NOW as i64) {
                    let name = String::from_utf8_lossy(sc.name());
                    let domain = sc.domain().map_or("www.example.com".into(), |d| String::from_utf8_lossy(d).to_ascii_lowercase());
                    let (cat, _) = p.classify_cookie(&name, &domain);
                    prop_assert!(p.cookie_allowed(cat, c.granted));
                }
            }
        }

        #[test]
        fn filtering_is_idempotent_with_caps_and_hardening(
            input in proptest::collection::vec(set_cookie_value(), 0..8),
            granted in grants(),
        ) {
            let p = policy(
                "[policy.default.categories]\nnecessary = {}\nfunctional = { max_cookie_days = 1 }\n\
                 analytics = { max_cookie_days = 30 }\nadvertising = {}\n\
                 [[policy.default.harden]]\nname = \"*\"\nsecure = true\nsame_site = \"Lax\"\n",
            );
            let c = consent(&p, &granted);
            let mut h = HeaderMap::new();
            for v in &input {
                h.append(SET_COOKIE, HeaderValue::from_str(v).unwrap());
            }
            let d = run(&p, &c, &mut h);
            let once = h.clone();
            let d2 = run(&p, &c, &mut h);
            prop_assert_eq!(&h, &once);
            prop_assert!(d2.iter().all(|d| d.action == Action::Allow));
            // Every kept cookie (allowed, capped or hardened) is sent, once.
            let kept: Vec<_> = d.iter().filter(|d| d.action != Action::Block && d.action != Action::Invalid).collect();
            prop_assert_eq!(kept.len(), values(&h).len());
        }

        /// Arbitrary header bytes from the origin (nameless, control
        /// characters, junk attributes), with withdrawn cookies to sweep:
        /// the origin's headers that are kept come first, byte-identical and
        /// in order; what follows are consentry's own deletions, each for a
        /// withdrawn name.
        #[test]
        fn kept_set_cookies_stay_byte_identical_on_arbitrary_bytes(
            input in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..8),
            granted in grants(),
            swept in proptest::sample::subsequence(vec!["_ga", "_fbp", "legacy", "lang"], 0..=4),
        ) {
            let p = policy("");
            let c = consent(&p, &granted);
            let mut h = HeaderMap::new();
            let mut origin = Vec::new();
            for v in &input {
                if let Ok(v) = HeaderValue::from_bytes(v) {
                    origin.push(v.as_bytes().to_vec());
                    h.append(SET_COOKIE, v);
                }
            }
            let withdrawn: Vec<Withdrawn> = swept
                .iter()
                .map(|n| Withdrawn { name: (*n).into(), category: None, domain: None, paths: Arc::new(["/".into()]) })
                .collect();
            let cx = ResponseContext {
                policy: &p,
                host: "www.example.com",
                consent: &c,
                withdrawn: &withdrawn,
                https: true,
                now: UNIX_EPOCH + std::time::Duration::from_secs(NOW),
                body_rewritten: false,
            };
            let mut d = Decisions::new();
            filter_response(StatusCode::OK, &mut h, &cx, &mut d);
            let out = values(&h);
            let allowed = d.iter().filter(|d| d.item == Item::SetCookie && d.action == Action::Allow).count();
            prop_assert!(allowed <= out.len());
            let (kept, added) = out.split_at(allowed);
            let mut it = origin.iter();
            for o in kept {
                prop_assert!(it.any(|i| i == o), "{}", String::from_utf8_lossy(o));
            }
            for a in added {
                let sc = SetCookie::parse(a).unwrap();
                prop_assert!(sc.is_deletion(NOW as i64));
                prop_assert!(swept.iter().any(|n| n.as_bytes() == sc.name()), "{}", String::from_utf8_lossy(a));
            }
        }

        /// Report-only never changes a `Set-Cookie`.
        #[test]
        fn report_only_leaves_set_cookies_alone(
            input in proptest::collection::vec(set_cookie_value(), 0..8),
            granted in grants(),
        ) {
            let p = policy("mode = \"report-only\"\n[[policy.default.harden]]\nname = \"*\"\nsecure = true\n");
            let c = consent(&p, &granted);
            let mut h = HeaderMap::new();
            for v in &input {
                h.append(SET_COOKIE, HeaderValue::from_str(v).unwrap());
            }
            let before = values(&h);
            run(&p, &c, &mut h);
            prop_assert_eq!(values(&h), before);
        }
    }
}
