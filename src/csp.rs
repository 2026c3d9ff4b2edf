//! The optional `Content-Security-Policy` built from the visitor's granted
//! categories, so that trackers injected *later* by JavaScript (which no
//! HTML rewriting can see) are blocked by the browser too.
//!
//! [`header`] is a pure function the response-header stage calls when the
//! policy has `[policy.NAME.csp]`. The header is sent *in addition* to the
//! origin's own CSP: a browser enforces every policy it receives, so the
//! origin's restrictions still apply and ours can only narrow them.
//!
//! What it restricts is hosts: `script-src`, `frame-src`, `img-src` and
//! `connect-src` allow `'self'`, the site's hosts, the policy's
//! `first_party` hosts and the hosts of resource rules whose category is
//! granted (`necessary` always). It deliberately keeps `'unsafe-inline'`
//! and `'unsafe-eval'` in `script-src`, and `data:`/`blob:` for images:
//! locking down inline code is the origin's business, and without them
//! every inline script of a legacy page would break.
//!
//! A nonce, when given, is added to `script-src`. Browsers then ignore
//! `'unsafe-inline'` for script elements, so the HTML rewriter adds the
//! same nonce to every inline script it lets run (see
//! [`crate::response_body::BodyContext::csp_nonce`]); `script-src-attr
//! 'unsafe-inline'` keeps inline event handlers working in browsers that
//! support it. Use a nonce only when something consentry injects needs it.
//!
//! A policy with `unknown_third_party = "allow"` gets no header: a CSP is
//! an allowlist and cannot say "everything except the refused hosts".

use http::{HeaderName, HeaderValue};

use crate::category::{CategoryId, CategorySet};
use crate::policy::{Policy, ResourceMatch, Unknown};
use crate::route::Site;

/// Whether a host (or `*.host`) is a valid CSP host-source: letters,
/// digits, `-` and `.` only (CSP has no `_`; IPv6 literals are skipped).
fn valid_host(pattern: &str) -> bool {
    let host = pattern.strip_prefix("*.").unwrap_or(pattern);
    !host.is_empty()
        && !host.starts_with('.')
        && !host.ends_with('.')
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The hosts allowed for `granted`, in a stable order without duplicates.
pub fn allowed_hosts(policy: &Policy, site: &Site, granted: CategorySet) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    let mut add = |h: String| {
        if valid_host(&h) && !hosts.contains(&h) {
            hosts.push(h);
        }
    };
    for h in &site.hosts {
        add(h.to_ascii_lowercase());
    }
    for h in policy.first_party.patterns() {
        add(h);
    }
    for rule in policy.resources.rules() {
        if !(rule.category == CategoryId::NECESSARY || granted.contains(rule.category)) {
            continue;
        }
        match &rule.matcher {
            ResourceMatch::Host(h) => {
                add(h.clone());
                add(format!("*.{h}"));
            }
            ResourceMatch::Prefix { host, .. } => add(host.clone()),
            ResourceMatch::Inline(_) => {}
        }
    }
    hosts
}

/// A fresh nonce for one response: 128 bits from the operating system's
/// CSPRNG (a predictable nonce would let injected scripts run), base64.
pub fn nonce() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: fall back to a weaker but still unique value
        // rather than failing the page.
        bytes = fastrand::u128(..).to_le_bytes();
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The CSP header for this policy and consent, or None when the policy has
/// no `csp` section (or cannot express its rules as a CSP).
pub fn header(
    policy: &Policy,
    site: &Site,
    granted: CategorySet,
    nonce: Option<&str>,
) -> Option<(HeaderName, HeaderValue)> {
    let settings = policy.csp.as_ref()?;
    if policy.unknown_third_party == Unknown::Allow {
        tracing::debug!(policy = %policy.name, "csp skipped: unknown_third_party = allow cannot be an allowlist");
        return None;
    }
    let hosts = allowed_hosts(policy, site, granted).join(" ");
    let sources = |extra: &str| {
        let mut s = String::from("'self'");
        if !hosts.is_empty() {
            s.push(' ');
            s.push_str(&hosts);
        }
        if !extra.is_empty() {
            s.push(' ');
            s.push_str(extra);
        }
        s
    };
    let nonce = nonce.filter(|n| {
        !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'))
    });
    let script_extra = match nonce {
        Some(n) => format!("'unsafe-inline' 'unsafe-eval' blob: 'nonce-{n}'"),
        None => "'unsafe-inline' 'unsafe-eval' blob:".to_string(),
    };
    let mut value = format!(
        "script-src {}; frame-src {}; img-src {}; connect-src {}",
        sources(&script_extra),
        sources(""),
        sources("data: blob:"),
        sources(""),
    );
    if nonce.is_some() {
        value.push_str("; script-src-attr 'unsafe-inline'");
    }
    if let Some(uri) = &settings.report_uri
        && !uri.is_empty()
        && !uri.contains([';', ',', ' '])
    {
        value.push_str("; report-uri ");
        value.push_str(uri);
    }
    let name = if settings.report_only {
        HeaderName::from_static("content-security-policy-report-only")
    } else {
        http::header::CONTENT_SECURITY_POLICY
    };
    match HeaderValue::from_str(&value) {
        Ok(v) => Some((name, v)),
        Err(_) => {
            tracing::warn!(policy = %policy.name, "csp value is not a valid header value; not sent");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(toml: &str) -> Site {
        crate::route::test_site(toml)
    }

    const POLICY: &str = r#"
[policy.default]
first_party = ["*.example-cdn.com", "static.example.net"]
[policy.default.csp]
mode = "enforce"
report_uri = "/csp-report"
[[policy.default.resource]]
match = "googletagmanager.com"
category = "analytics"
[[policy.default.resource]]
match = "https://www.youtube.com/embed/"
category = "advertising"
[[policy.default.resource]]
match = "inline:fbq("
category = "advertising"
[[policy.default.resource]]
match = "js.stripe.com"
category = "necessary"
[[policy.default.resource]]
match = "bad_host.example"
category = "necessary"
"#;

    #[test]
    fn hosts_follow_granted_categories() {
        let site = site(POLICY);
        let p = &site.policy;
        let analytics = p.categories.id("analytics").unwrap();
        let none = header(p, &site, CategorySet::NECESSARY_ONLY, None).unwrap();
        assert_eq!(none.0, http::header::CONTENT_SECURITY_POLICY);
        let v = none.1.to_str().unwrap();
        assert!(v.starts_with("script-src 'self' www.example.com static.example.net *.example-cdn.com js.stripe.com *.js.stripe.com 'unsafe-inline'"), "{v}");
        assert!(!v.contains("googletagmanager"), "{v}");
        assert!(!v.contains("youtube"), "{v}");
        assert!(!v.contains("bad_host"), "{v}");
        assert!(v.contains("img-src 'self' www.example.com static.example.net *.example-cdn.com js.stripe.com *.js.stripe.com data: blob:"), "{v}");
        assert!(v.ends_with("; report-uri /csp-report"), "{v}");
        assert!(!v.contains("nonce"), "{v}");

        let granted = CategorySet::NECESSARY_ONLY.union(CategorySet::only(analytics));
        let v = header(p, &site, granted, None).unwrap().1.to_str().unwrap().to_string();
        assert!(v.contains("googletagmanager.com *.googletagmanager.com"), "{v}");
        let all = p.categories.all();
        let v = header(p, &site, all, Some("abc123")).unwrap().1.to_str().unwrap().to_string();
        assert!(v.contains(" www.youtube.com "), "{v}");
        assert!(!v.contains("*.www.youtube.com"), "{v}");
        assert!(v.contains("'nonce-abc123'"), "{v}");
        assert!(v.contains("script-src-attr 'unsafe-inline'"), "{v}");
        // A nonce that would break the header is ignored.
        let v = header(p, &site, all, Some("a;b")).unwrap().1.to_str().unwrap().to_string();
        assert!(!v.contains("nonce"), "{v}");
    }

    #[test]
    fn report_only_and_absent() {
        let s = site(&POLICY.replace("mode = \"enforce\"", "mode = \"report-only\""));
        let (name, _) = header(&s.policy, &s, CategorySet::NECESSARY_ONLY, None).unwrap();
        assert_eq!(name.as_str(), "content-security-policy-report-only");
        let s = site("[policy.default]\n");
        assert!(header(&s.policy, &s, CategorySet::NECESSARY_ONLY, None).is_none());
        let s = site(
            &POLICY.replace("[policy.default]\n", "[policy.default]\nunknown_third_party = \"allow\"\n"),
        );
        assert!(header(&s.policy, &s, CategorySet::NECESSARY_ONLY, None).is_none());
    }

    #[test]
    fn host_validation() {
        assert!(valid_host("example.com"));
        assert!(valid_host("*.example.com"));
        assert!(!valid_host("bad_host.com"));
        assert!(!valid_host("[::1]"));
        assert!(valid_host("127.0.0.1"));
        assert!(!valid_host("*."));
    }
}
