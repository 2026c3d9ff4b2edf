//! The sweep: deleting withdrawn cookies in the browser.
//!
//! When a request carries cookies the visitor has not consented to (they
//! withdrew consent, or the cookies predate consentry), removing them from
//! the request is not enough: the browser keeps them and a script could
//! still read them. The response therefore tells the browser to delete
//! them. A cookie is identified by (name, domain, host-only flag, path), and
//! the request does not say which it was set with, so one deletion is sent
//! per combination it may have, for every path of the rule: the rule's
//! `Domain` when it names one that is not among the site's domains below;
//! the site's domains, widest first: each parent of the request host with
//! at least two labels, then the host itself (tracking scripts such as
//! gtag.js, the Meta Pixel and HubSpot set their cookies on the widest
//! domain they can, `Domain=example.com` seen from `www.example.com`, and
//! preset rules cannot know the site's domain); then host-only. This clears
//! HttpOnly cookies too, which no client-side consent manager can.
//!
//! Each deletion is `NAME=; Max-Age=0; Path=P; Expires=Thu, 01 Jan 1970
//! 00:00:00 GMT` (`Expires` for browsers that predate `Max-Age`), plus
//! `Domain=D` for the domain variant and `Secure` on HTTPS (required to
//! touch `__Secure-`/`__Host-` cookies, and harmless otherwise). A
//! `__Host-` cookie can only exist host-only on `/`, so only that deletion
//! is sent for one. A nameless cookie is deleted with `=deleted`: a
//! Set-Cookie with an empty name *and* value is ignored by browsers.
//!
//! The number of deletions per response is capped by the policy's
//! `sweep_budget`; what does not fit is deferred (the browser sends the
//! cookie again and the next response continues).

use std::cell::RefCell;
use std::hash::BuildHasher as _;
use std::sync::Arc;

use compact_str::CompactString;
use http::HeaderValue;

use crate::category::CategoryId;
use crate::request_filter::Withdrawn;

/// `Expires` of every deletion: the Unix epoch.
pub const EPOCH: &str = "Thu, 01 Jan 1970 00:00:00 GMT";

/// What to send for a set of withdrawn cookies.
#[derive(Debug, Default)]
pub struct Sweep<'w> {
    /// The deletion `Set-Cookie` values, in order.
    pub headers: Vec<HeaderValue>,
    /// Cookies that got at least one deletion.
    pub swept: Vec<&'w Withdrawn>,
    /// Cookies that got none because the budget ran out.
    pub deferred: Vec<&'w Withdrawn>,
    /// Deletions left out because of the budget.
    pub cut: usize,
}

/// Whether `s` can go into a `Set-Cookie` attribute value unchanged: no
/// `;` (it would start another attribute) and only visible ASCII.
fn attribute_safe(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic() && b != b';')
}

fn has_prefix_ci(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len() && name.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// One deletion header. `None` when the name, domain or path cannot be
/// written into a header safely (it then cannot name a real cookie either).
pub fn deletion(name: &str, domain: Option<&str>, path: &str, secure: bool) -> Option<HeaderValue> {
    if name.bytes().any(|b| b == b';' || b == b'=' || b.is_ascii_control())
        || !path.starts_with('/')
        || !attribute_safe(path)
        || domain.is_some_and(|d| d.is_empty() || !attribute_safe(d))
    {
        return None;
    }
    const MAX_AGE: &[u8] = b"; Max-Age=0; Path=";
    const EXPIRES: &[u8] = b"; Expires=";
    const DOMAIN: &[u8] = b"; Domain=";
    const SECURE: &[u8] = b"; Secure";
    let equals: &[u8] = if name.is_empty() { b"=deleted" } else { b"=" };
    let len = name.len()
        + equals.len()
        + MAX_AGE.len()
        + path.len()
        + EXPIRES.len()
        + EPOCH.len()
        + domain.map_or(0, |d| DOMAIN.len() + d.len())
        + if secure { SECURE.len() } else { 0 };
    // Sized exactly: no growing, and a full buffer becomes the header
    // value's without a separate shared-state allocation (`bytes`).
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(equals);
    out.extend_from_slice(MAX_AGE);
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(EXPIRES);
    out.extend_from_slice(EPOCH.as_bytes());
    if let Some(domain) = domain {
        out.extend_from_slice(DOMAIN);
        out.extend_from_slice(domain.as_bytes());
    }
    if secure {
        out.extend_from_slice(SECURE);
    }
    debug_assert_eq!(out.len(), len);
    // Handed over, not copied: the header value takes the buffer.
    HeaderValue::from_maybe_shared(bytes::Bytes::from(out)).ok()
}

/// The domains a cookie seen on `host` may have been set with: the host
/// itself and each parent with at least two labels (`www.shop.example` →
/// `www.shop.example`, `shop.example`), widest first, since that is where
/// tracking scripts put their cookies. None for IP addresses and one-label
/// hosts (`localhost`), which only have host-only cookies.
pub fn site_domains(host: &str) -> Vec<&str> {
    let host = host.trim_end_matches('.');
    if host.is_empty()
        || !host.contains('.')
        || host.starts_with('[')
        || host.parse::<std::net::IpAddr>().is_ok()
    {
        return Vec::new();
    }
    let mut out = vec![host];
    let mut rest = host;
    while let Some(dot) = rest.find('.') {
        rest = &rest[dot + 1..];
        if !rest.contains('.') {
            break;
        }
        out.push(rest);
    }
    out.reverse();
    out
}

/// The deletions for one cookie, in the order they are sent: for each path,
/// the rule's domain when it is not one of the site's, then the site's
/// domains widest first, then host-only. A rule naming one of the site's
/// domains changes nothing, so every cookie of a site is deleted the same
/// way whichever of its domains the rule names.
fn targets<'a>(w: &'a Withdrawn, domains: &'a [&'a str]) -> impl Iterator<Item = (Option<&'a str>, &'a str)> {
    let host_prefix = has_prefix_ci(&w.name, "__Host-");
    let paths: &[String] = if host_prefix { &[] } else { &w.paths };
    let rule_domain = if host_prefix { None } else { w.domain.as_deref() };
    let other_domain = rule_domain.filter(|r| !domains.iter().any(|d| d.eq_ignore_ascii_case(r)));
    let host_only_root = host_prefix.then_some((None, "/"));
    paths
        .iter()
        .flat_map(move |p| {
            other_domain
                .into_iter()
                .chain(domains.iter().copied())
                .map(Some)
                .chain([None])
                .map(move |d| (d, p.as_str()))
        })
        .chain(host_only_root)
}

/// Sets of the per-thread memo of deletions, two cookies each (the one used
/// last first): with one slot per hash, two of a request's cookies sharing
/// one (~8 % of processes for 7 cookies, by the seed) evicted each other on
/// every request.
const MEMO_SETS: usize = 128;
/// Deletions of one cookie longer than this in all are not memoized (bounds
/// the memo: at most `2 × MEMO_SETS` × this, plus keys, per thread).
const MEMO_MAX_BYTES: usize = 2048;

/// The deletions built for one withdrawn cookie seen on one host, with
/// what they were built from. [`targets`] and [`deletion`] are pure
/// functions of exactly these fields, so a memo that matches them holds
/// the very values that building again would give.
struct Memo {
    https: bool,
    host: CompactString,
    name: CompactString,
    domain: Option<String>,
    paths: Arc<[String]>,
    values: Box<[HeaderValue]>,
}

impl Memo {
    fn is_for(&self, w: &Withdrawn, host: &str, https: bool) -> bool {
        self.https == https
            && self.name == w.name
            && self.host == host
            && self.domain == w.domain
            && (Arc::ptr_eq(&self.paths, &w.paths) || self.paths == w.paths)
    }
}

/// The memo: a request withdrawing the same cookies as the previous ones
/// (the common case: a visitor who refused keeps sending them until they
/// are deleted, and trackers' names are few) clones its deletions
/// (a reference count each) instead of writing and validating ≈ 90 bytes
/// per deletion again. Per thread, so no lock; it holds no policy state
/// (the key is the deletion's whole input), so a reloaded policy cannot
/// meet a stale entry. Its sets are chosen by a per-thread seeded hash,
/// so which names evict which is not predictable from outside; an
/// eviction only costs a rebuild.
struct Memos {
    hasher: foldhash::fast::RandomState,
    sets: Vec<[Option<Memo>; 2]>,
}

thread_local! {
    static MEMOS: RefCell<Memos> =
        RefCell::new(Memos { hasher: foldhash::fast::RandomState::default(), sets: Vec::new() });
}

/// Adds one deletion of the cookie whose deletions start at `first`
/// unless it is already there or the budget is spent.
fn offer(sweep: &mut Sweep<'_>, first: usize, budget: usize, value: &HeaderValue, sent: &mut usize) {
    // Two paths can give the same target; send it once.
    if sweep.headers[first..].contains(value) {
        return;
    }
    if sweep.headers.len() >= budget {
        sweep.cut += 1;
        return;
    }
    sweep.headers.push(value.clone());
    *sent += 1;
}

/// Plans the deletions for `withdrawn` seen on `host` (normalized), at
/// most `budget` of them. `https` adds `Secure`. `skip` names cookies not
/// to delete (those the response itself sets); necessary cookies are never
/// deleted.
pub fn plan<'w>(
    withdrawn: &'w [Withdrawn],
    host: &str,
    https: bool,
    budget: usize,
    skip: impl Fn(&str) -> bool,
) -> Sweep<'w> {
    let mut sweep = Sweep { headers: Vec::with_capacity(budget.min(32)), ..Sweep::default() };
    // Only needed when a cookie's deletions are not memoized.
    let mut domains: Option<Vec<&str>> = None;
    MEMOS.with_borrow_mut(|memos| {
        for (i, w) in withdrawn.iter().enumerate() {
            if w.category == Some(CategoryId::NECESSARY) || skip(&w.name) {
                continue;
            }
            let mut sent = 0;
            // Deletions of another name differ (each starts with its name and
            // `=`, and names hold no `=`): only this name's are compared.
            let first = if withdrawn[..i].iter().any(|o| o.name == w.name) { 0 } else { sweep.headers.len() };
            let set = memos.hasher.hash_one((host, w.name.as_str(), w.domain.as_deref(), https)) as usize % MEMO_SETS;
            let way = memos.sets.get(set).and_then(|ways| {
                ways.iter().position(|m| m.as_ref().is_some_and(|m| m.is_for(w, host, https)))
            });
            if let Some(way) = way {
                let ways = &mut memos.sets[set];
                // The one used last goes first: a miss evicts the other.
                if way == 1 {
                    ways.swap(0, 1);
                }
                for value in ways[0].iter().flat_map(|m| m.values.iter()) {
                    offer(&mut sweep, first, budget, value, &mut sent);
                }
            } else {
                let domains = domains.get_or_insert_with(|| site_domains(host));
                let mut values = Vec::new();
                let mut writable = true;
                for (domain, path) in targets(w, domains) {
                    let Some(value) = deletion(&w.name, domain, path, https) else {
                        tracing::debug!(cookie = %w.name, ?domain, path, "sweep target cannot be written; skipped");
                        writable = false;
                        continue;
                    };
                    offer(&mut sweep, first, budget, &value, &mut sent);
                    values.push(value);
                }
                // Only what building gives in full is memoized, so a hit
                // sends (and logs) exactly what a rebuild would.
                if writable && values.iter().map(HeaderValue::len).sum::<usize>() <= MEMO_MAX_BYTES {
                    if memos.sets.is_empty() {
                        memos.sets.resize_with(MEMO_SETS, || [None, None]);
                    }
                    let ways = &mut memos.sets[set];
                    ways.swap(0, 1);
                    ways[0] = Some(Memo {
                        https,
                        host: CompactString::from(host),
                        name: w.name.clone(),
                        domain: w.domain.clone(),
                        paths: Arc::clone(&w.paths),
                        values: values.into_boxed_slice(),
                    });
                }
            }
            if sent > 0 {
                sweep.swept.push(w);
            } else if sweep.cut > 0 {
                sweep.deferred.push(w);
            }
        }
    });
    sweep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(name: &str, domain: Option<&str>, paths: &[&str]) -> Withdrawn {
        Withdrawn {
            name: name.into(),
            category: CategoryId::new(2),
            domain: domain.map(str::to_string),
            paths: paths.iter().map(|p| (*p).to_string()).collect::<Vec<_>>().into(),
        }
    }

    fn texts(s: &Sweep<'_>) -> Vec<String> {
        s.headers.iter().map(|h| h.to_str().unwrap().to_string()).collect()
    }

    #[test]
    fn host_only_and_domain_for_every_path() {
        let list = [w("_ga", Some("example.com"), &["/", "/shop"])];
        let s = plan(&list, "", false, 32, |_| false);
        assert_eq!(
            texts(&s),
            vec![
                "_ga=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=example.com",
                "_ga=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                "_ga=; Max-Age=0; Path=/shop; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=example.com",
                "_ga=; Max-Age=0; Path=/shop; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            ]
        );
        assert_eq!(s.swept.len(), 1);
        assert_eq!((s.cut, s.deferred.len()), (0, 0));
    }

    #[test]
    fn secure_on_https_and_host_prefix() {
        let list = [w("__Host-id", Some("example.com"), &["/a", "/b"]), w("__Secure-x", None, &["/"])];
        let s = plan(&list, "", true, 32, |_| false);
        assert_eq!(
            texts(&s),
            vec![
                "__Host-id=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure",
                "__Secure-x=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure",
            ]
        );
        // The prefix check is case-insensitive, as in current browsers.
        let list = [w("__HOST-id", Some("example.com"), &["/a"])];
        assert_eq!(plan(&list, "", true, 32, |_| false).headers.len(), 1);
    }

    #[test]
    fn budget_cuts_and_defers() {
        let list = [w("a", Some("example.com"), &["/"]), w("b", None, &["/", "/x"]), w("c", None, &["/"])];
        let s = plan(&list, "", false, 3, |_| false);
        assert_eq!(s.headers.len(), 3);
        // `a` took two, `b` got one of its two, `c` none.
        assert_eq!(s.swept.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(s.deferred.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), vec!["c"]);
        assert_eq!(s.cut, 2);
        assert!(plan(&list, "", false, 0, |_| false).headers.is_empty());
    }

    #[test]
    fn never_necessary_never_skipped_names() {
        let mut n = w("sessionid", None, &["/"]);
        n.category = Some(CategoryId::NECESSARY);
        let list = [n, w("_ga", None, &["/"]), w("_fbp", None, &["/"])];
        let s = plan(&list, "", false, 32, |name| name == "_fbp");
        assert_eq!(s.swept.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), vec!["_ga"]);
        assert_eq!(s.headers.len(), 1);
    }

    #[test]
    fn nameless_and_unsafe_targets() {
        let list = [w("", None, &["/"])];
        assert_eq!(
            texts(&plan(&list, "", false, 32, |_| false)),
            vec!["=deleted; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT"]
        );
        assert!(deletion("a", None, "/x;Domain=evil.com", false).is_none());
        assert!(deletion("a", None, "relative", false).is_none());
        assert!(deletion("a", Some("evil.com; Secure"), "/", false).is_none());
        assert!(deletion("a", Some(""), "/", false).is_none());
        assert!(deletion("a\tb", None, "/", false).is_none());
        // Unsafe paths are skipped, the rest still sent.
        let list = [w("a", None, &["/ok", "/bad;x"])];
        assert_eq!(plan(&list, "", false, 32, |_| false).headers.len(), 1);
    }

    #[test]
    fn site_domains_cover_where_trackers_set_cookies() {
        assert_eq!(site_domains("www.shop.example"), vec!["shop.example", "www.shop.example"]);
        assert_eq!(site_domains("a.b.example.com"), vec!["example.com", "b.example.com", "a.b.example.com"]);
        assert_eq!(site_domains("example.com"), vec!["example.com"]);
        assert!(site_domains("localhost").is_empty());
        assert!(site_domains("127.0.0.1").is_empty());
        assert!(site_domains("[::1]").is_empty());
        // gtag.js on www.shop.example sets _ga with Domain=shop.example: the
        // sweep reaches it, and the rule's own domain is not sent twice.
        let list = [w("_ga", Some("shop.example"), &["/"])];
        assert_eq!(
            texts(&plan(&list, "www.shop.example", false, 32, |_| false)),
            vec![
                "_ga=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=shop.example",
                "_ga=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=www.shop.example",
                "_ga=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            ]
        );
        // A rule naming a narrower site domain does not change the order.
        let list = [w("_ga", Some("WWW.shop.example"), &["/"])];
        assert_eq!(
            texts(&plan(&list, "www.shop.example", false, 32, |_| false)),
            vec![
                "_ga=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=shop.example",
                "_ga=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=www.shop.example",
                "_ga=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            ]
        );
        // A rule domain that is not one of the site's (an IP or one-label
        // host has none) comes first, for every path.
        let list = [w("_ga", Some("example.com"), &["/", "/a"])];
        assert_eq!(
            texts(&plan(&list, "localhost", false, 32, |_| false)),
            vec![
                "_ga=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=example.com",
                "_ga=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                "_ga=; Max-Age=0; Path=/a; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=example.com",
                "_ga=; Max-Age=0; Path=/a; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            ]
        );
        // __Host- cookies stay host-only whatever the host.
        let list = [w("__Host-x", None, &["/"])];
        assert_eq!(plan(&list, "www.shop.example", true, 32, |_| false).headers.len(), 1);
    }

    #[test]
    fn memoized_deletions_are_the_built_ones() {
        let list = [w("_ga", Some("example.com"), &["/", "/shop"]), w("b", None, &["/"])];
        let built = texts(&plan(&list, "www.example.com", true, 32, |_| false));
        // Hits now: the same values, the same budget accounting.
        assert_eq!(texts(&plan(&list, "www.example.com", true, 32, |_| false)), built);
        let cut = plan(&list, "www.example.com", true, 4, |_| false);
        assert_eq!(texts(&cut), built[..4]);
        assert_eq!((cut.cut, cut.swept.len(), cut.deferred.len()), (5, 1, 1));
        // Any other input is another key.
        assert!(
            texts(&plan(&list, "www.example.com", false, 32, |_| false))
                .iter()
                .all(|t| !t.ends_with("Secure"))
        );
        assert!(
            texts(&plan(&list, "shop.example", true, 32, |_| false))
                .iter()
                .all(|t| !t.contains("www.example.com"))
        );
        let other = [w("_ga", Some("example.com"), &["/"]), w("b", None, &["/"])];
        assert_eq!(plan(&other, "www.example.com", true, 32, |_| false).headers.len(), 6);
        let other = [w("_ga", None, &["/", "/shop"]), w("b", None, &["/"])];
        assert_eq!(texts(&plan(&other, "www.example.com", true, 32, |_| false)), built);
        let other = [w("_ga", Some("other.example"), &["/"])];
        assert_eq!(plan(&other, "www.example.com", true, 32, |_| false).headers.len(), 4);
    }

    #[test]
    fn deletions_parse_as_deletions() {
        let list = [w("_ga", Some("example.com"), &["/"])];
        for h in plan(&list, "", true, 32, |_| false).headers {
            let c = crate::set_cookie::SetCookie::parse(h.as_bytes()).unwrap();
            assert_eq!(c.name(), b"_ga");
            assert!(c.is_deletion(1_700_000_000));
            assert!(c.secure());
        }
    }
}
