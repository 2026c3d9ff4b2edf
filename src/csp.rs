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

/// Makes room for the banner in the origin's own `Content-Security-Policy`.
///
/// A browser enforces every CSP it receives, so the origin's can block
/// `/.consentry/banner.js`, `banner.css` and the script's `fetch`es even
/// when consentry's own allows them. For each enforced policy of the
/// origin, the directive that governs each of these (the `-elem` variant,
/// else the plain one, else `default-src`; none means unrestricted) is
/// widened *only for consentry's own elements and path*, never for the
/// site's code:
/// - a script or style list that already relies on nonces, hashes or
///   `'strict-dynamic'` gets `'nonce-NONCE'` (the banner's `<script>` and
///   `<link>` carry it; the site's inline code does not get it, so nothing
///   of the site's is allowed that was not);
/// - any other script or style list that does not already allow the
///   site's origin (`'self'`, `*`, the scheme) gets the path source
///   `ORIGIN/.consentry/` (a path, not `'self'`, so the site's other
///   scripts stay as restricted as they were; and not a nonce, which would
///   switch off an `'unsafe-inline'` the site relies on);
/// - `connect-src` and `form-action` get the same path source when they
///   do not allow the origin, so the banner can post the choice and fetch
///   its preferences page.
///
/// Lists that are exactly `'none'` are left alone: the site wants no
/// script there, and the banner still works as a plain form. Report-only
/// policies are not touched (they block nothing). Returns whether any
/// header was changed. `origin` is `scheme://host[:port]` of the page.
pub fn admit_banner(headers: &mut http::HeaderMap, nonce: &str, origin: &str) -> bool {
    let name = http::header::CONTENT_SECURITY_POLICY;
    let values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
    if values.is_empty() {
        return false;
    }
    let mut changed = false;
    let mut out = Vec::with_capacity(values.len());
    for value in values {
        let Ok(text) = value.to_str() else {
            out.push(value);
            continue;
        };
        let rewritten = admit_in_header(text, nonce, origin);
        match rewritten.and_then(|t| HeaderValue::from_str(&t).ok()) {
            Some(v) => {
                changed = true;
                out.push(v);
            }
            None => out.push(value),
        }
    }
    if changed {
        headers.remove(&name);
        for v in out {
            headers.append(name.clone(), v);
        }
        tracing::debug!(origin, "origin CSP widened for the banner's own assets");
    }
    changed
}

/// One header value (policies separated by `,`); `None` when unchanged.
fn admit_in_header(text: &str, nonce: &str, origin: &str) -> Option<String> {
    let path_source = format!("{origin}{}", crate::banner::PREFIX);
    let nonce_source = format!("'nonce-{nonce}'");
    let scheme = origin.split_once("://").map_or("", |(s, _)| s);
    let mut changed = false;
    let policies: Vec<String> = text
        .split(',')
        .map(|policy| {
            let mut directives: Vec<(String, Vec<String>)> = policy
                .split(';')
                .filter_map(|d| {
                    let mut tokens = d.split_ascii_whitespace();
                    let name = tokens.next()?.to_ascii_lowercase();
                    Some((name, tokens.map(str::to_string).collect()))
                })
                .collect();
            let find = |directives: &[(String, Vec<String>)], names: &[&str]| {
                names.iter().find_map(|n| directives.iter().position(|(d, _)| d == n))
            };
            let allows_origin = |list: &[String]| {
                let dynamic = list.iter().any(|s| s.eq_ignore_ascii_case("'strict-dynamic'"));
                !dynamic
                    && list.iter().any(|s| {
                        s.eq_ignore_ascii_case("'self'")
                            || s == "*"
                            || s.eq_ignore_ascii_case(&format!("{scheme}:"))
                            || s.eq_ignore_ascii_case(origin)
                            || s.eq_ignore_ascii_case(&path_source)
                    })
            };
            let is_none = |list: &[String]| list.len() == 1 && list[0].eq_ignore_ascii_case("'none'");
            let groups: [(&[&str], bool); 4] = [
                (&["script-src-elem", "script-src", "default-src"], true),
                (&["style-src-elem", "style-src", "default-src"], true),
                (&["connect-src", "default-src"], false),
                (&["form-action"], false),
            ];
            for (names, element) in groups {
                let Some(at) = find(&directives, names) else { continue };
                let list = &directives[at].1;
                if is_none(list) {
                    continue;
                }
                let keyed = list.iter().any(|s| {
                    let s = s.to_ascii_lowercase();
                    s.starts_with("'nonce-")
                        || s.starts_with("'sha256-")
                        || s.starts_with("'sha384-")
                        || s.starts_with("'sha512-")
                        || s == "'strict-dynamic'"
                });
                let add = if element && keyed {
                    (!list.contains(&nonce_source)).then(|| nonce_source.clone())
                } else {
                    (!allows_origin(list)).then(|| path_source.clone())
                };
                if let Some(source) = add {
                    directives[at].1.push(source);
                    changed = true;
                }
            }
            directives
                .iter()
                .map(
                    |(name, list)| {
                        if list.is_empty() { name.clone() } else { format!("{name} {}", list.join(" ")) }
                    },
                )
                .collect::<Vec<_>>()
                .join("; ")
        })
        .collect();
    changed.then(|| policies.join(", "))
}

#[cfg(test)]
mod tests {
    use super::admit_in_header;

    #[test]
    fn the_origin_csp_admits_only_the_banner() {
        let n = "N0nce";
        let o = "https://shop.test";
        let a = |csp: &str| admit_in_header(csp, n, o);
        // 'self' already allows /.consentry/: unchanged.
        assert_eq!(a("default-src 'self'"), None);
        assert_eq!(a("script-src * ; style-src https:"), None);
        assert_eq!(a("img-src data:"), None, "nothing about scripts, styles, fetches or forms");
        // Hosts only: the path, not 'self', not a nonce.
        assert_eq!(
            a("script-src https://cdn.example 'unsafe-inline'; style-src https://cdn.example").as_deref(),
            Some(
                "script-src https://cdn.example 'unsafe-inline' https://shop.test/.consentry/; style-src https://cdn.example https://shop.test/.consentry/"
            )
        );
        // Nonce- or hash-based (strict CSP): our nonce, and 'strict-dynamic'
        // ignores 'self', so even that is not enough.
        assert_eq!(
            a("script-src 'nonce-site' 'strict-dynamic' 'self'; object-src 'none'").as_deref(),
            Some("script-src 'nonce-site' 'strict-dynamic' 'self' 'nonce-N0nce'; object-src 'none'")
        );
        assert_eq!(
            a("default-src 'none'; script-src 'sha256-abc'; style-src 'nonce-x'; connect-src 'none'; form-action https://pay.example").as_deref(),
            Some("default-src 'none'; script-src 'sha256-abc' 'nonce-N0nce'; style-src 'nonce-x' 'nonce-N0nce'; connect-src 'none'; form-action https://pay.example https://shop.test/.consentry/")
        );
        // default-src governs what has no directive of its own; 'none'
        // stays 'none' (the banner then works as a plain form).
        assert_eq!(
            a("default-src https://cdn.example").as_deref(),
            Some("default-src https://cdn.example https://shop.test/.consentry/")
        );
        assert_eq!(a("default-src 'none'"), None);
        // -elem variants win over the plain directive.
        assert_eq!(a("script-src-elem 'self'; script-src https://x.example"), None,);
        // Several policies in one header: each on its own.
        assert_eq!(
            a("script-src 'self', script-src 'nonce-a'").as_deref(),
            Some("script-src 'self', script-src 'nonce-a' 'nonce-N0nce'")
        );
    }

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
