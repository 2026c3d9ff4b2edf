//! Stage 2, **route**: `Host` / `:authority` → the site it belongs to.
//!
//! Exact host names are a hash lookup; `*.example.com` patterns are checked
//! by walking the host's parent domains, longest first, so the most specific
//! wildcard wins. An unknown host is a clear error (421), never a guess.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use http::Uri;
use http::uri::{Authority, Scheme};

use crate::policy::Policy;

/// One fronted site: where its origin is and which policy applies.
#[derive(Debug)]
pub struct Site {
    /// Name used in logs and metrics.
    pub name: String,
    /// The host patterns it answers for, as configured.
    pub hosts: Vec<String>,
    /// Where requests are forwarded.
    pub origin: Origin,
    /// Send the client's `Host` to the origin (true) or the origin's own.
    pub preserve_host: bool,
    /// Extra CA certificates trusted for an https origin.
    pub ca_file: Option<PathBuf>,
    /// The policy enforced on this site.
    pub policy: Arc<Policy>,
    /// The site's own hosts, which are always first party.
    pub host_set: HostSet,
}

impl Site {
    /// Whether `host` is first party for this site: one of its own hosts
    /// or the policy's `first_party` list.
    pub fn is_first_party(&self, host: &str) -> bool {
        self.host_set.contains(host) || self.policy.first_party.contains(host)
    }
}

/// An origin base URL, split for request building.
#[derive(Debug, Clone)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// `host:port` to connect to.
    pub authority: Authority,
    /// Path prefix prepended to every request path (`""` or `/app`).
    pub base_path: String,
    /// The URL as configured.
    pub uri: Uri,
}

impl Origin {
    /// Parses and checks an origin URL: http or https, a host, no query.
    pub fn parse(text: &str) -> Result<Origin, String> {
        let uri: Uri = text.parse().map_err(|e| format!("bad origin URL {text:?}: {e}"))?;
        let scheme =
            uri.scheme().cloned().ok_or_else(|| format!("origin URL {text:?} needs http:// or https://"))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(format!("origin URL {text:?}: scheme must be http or https"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| format!("origin URL {text:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("origin URL {text:?}: credentials are not supported"));
        }
        if uri.query().is_some() {
            return Err(format!("origin URL {text:?} must not have a query"));
        }
        let base_path = uri.path().trim_end_matches('/').to_string();
        Ok(Origin { scheme, authority, base_path, uri })
    }
}

/// Lower-cases a host and strips a port and a trailing dot:
/// `WWW.Example.com.:8080` → `www.example.com`. IPv6 literals keep their
/// brackets.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let without_port = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
            _ => host,
        }
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

/// A set of host patterns: exact names and `*.example.com` wildcards
/// (any subdomain of example.com, not example.com itself).
///
/// The patterns are fixed when the config compiles and looked up for every
/// URL on a page (each parent domain of a host), so the keyed,
/// per-table-seeded foldhash is enough and much cheaper than SipHash.
#[derive(Debug, Clone, Default)]
pub struct HostSet {
    exact: HostNames,
    suffixes: HostNames,
    /// The same names as lists while they are few: comparing a handful of
    /// names is cheaper than hashing the host and each parent domain.
    exact_list: Vec<String>,
    suffix_list: Vec<String>,
}

/// Up to this many names, a set is searched linearly.
const LINEAR_HOSTS: usize = 8;

type HostNames = std::collections::HashSet<String, foldhash::fast::RandomState>;

impl HostSet {
    /// Adds a pattern. Returns an error for an empty or malformed one.
    pub fn insert(&mut self, pattern: &str) -> Result<(), String> {
        let pattern = pattern.trim().to_ascii_lowercase();
        let (wild, name) = match pattern.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, pattern.as_str()),
        };
        if name.is_empty() || name.contains(['*', '/', ' ', ':']) {
            return Err(format!("bad host pattern {pattern:?}"));
        }
        let (set, list) = if wild {
            (&mut self.suffixes, &mut self.suffix_list)
        } else {
            (&mut self.exact, &mut self.exact_list)
        };
        if set.insert(name.to_string()) {
            list.push(name.to_string());
        }
        Ok(())
    }

    /// Whether `host` (already normalized) matches a pattern.
    pub fn contains(&self, host: &str) -> bool {
        if self.exact.len() <= LINEAR_HOSTS {
            if self.exact_list.iter().any(|e| e == host) {
                return true;
            }
        } else if self.exact.contains(host) {
            return true;
        }
        if self.suffixes.len() <= LINEAR_HOSTS {
            // A parent domain of `host` is `s` exactly when `host` ends
            // with `.s`.
            let h = host.as_bytes();
            return self
                .suffix_list
                .iter()
                .any(|s| h.len() > s.len() && h.ends_with(s.as_bytes()) && h[h.len() - s.len() - 1] == b'.');
        }
        let mut rest = host;
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            if self.suffixes.contains(rest) {
                return true;
            }
        }
        false
    }

    /// Every pattern, exact names then `*.` wildcards, each group sorted
    /// (for the CSP header, which lists hosts).
    pub fn patterns(&self) -> Vec<String> {
        let mut exact: Vec<String> = self.exact.iter().cloned().collect();
        exact.sort();
        let mut wild: Vec<String> = self.suffixes.iter().map(|s| format!("*.{s}")).collect();
        wild.sort();
        exact.extend(wild);
        exact
    }

    /// Whether the set has no pattern.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.suffixes.is_empty()
    }
}

/// Host → site.
#[derive(Debug, Default)]
pub struct Router {
    exact: HashMap<String, Arc<Site>>,
    wildcard: HashMap<String, Arc<Site>>,
    sites: Vec<Arc<Site>>,
}

impl Router {
    /// Adds a site. Returns the host pattern that is already taken, if any.
    pub fn add(&mut self, site: Arc<Site>) -> Result<(), String> {
        for pattern in &site.hosts {
            let pattern = pattern.trim().to_ascii_lowercase();
            let (table, key) = match pattern.strip_prefix("*.") {
                Some(rest) => (&mut self.wildcard, rest.to_string()),
                None => (&mut self.exact, normalize_host(&pattern)),
            };
            if table.contains_key(&key) {
                return Err(pattern);
            }
            table.insert(key, site.clone());
        }
        self.sites.push(site);
        Ok(())
    }

    /// The site for a `Host` header value or `:authority` (port ignored).
    pub fn route(&self, host: &str) -> Option<&Arc<Site>> {
        let host = normalize_host(host);
        if let Some(site) = self.exact.get(&host) {
            return Some(site);
        }
        let mut rest = host.as_str();
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            if let Some(site) = self.wildcard.get(rest) {
                return Some(site);
            }
        }
        None
    }

    /// Every site, in configuration order.
    pub fn sites(&self) -> &[Arc<Site>] {
        &self.sites
    }
}

/// Test helper: a site for `www.example.com` whose policy is
/// `[policy.default]` in `toml` (compiled without presets).
#[cfg(test)]
pub(crate) fn test_site(toml: &str) -> Site {
    use crate::config::Source;
    let source = Source { path: PathBuf::from("t.toml"), text: toml.to_string() };
    let file = source.parse().expect("test policy parses");
    let policy =
        crate::policy::compile("default", &source, &file.policy, &crate::presets::Presets::default())
            .expect("test policy compiles");
    let mut host_set = HostSet::default();
    host_set.insert("www.example.com").expect("valid host");
    Site {
        name: "example".into(),
        hosts: vec!["www.example.com".into()],
        origin: Origin::parse("http://127.0.0.1:1").expect("valid origin"),
        preserve_host: true,
        ca_file: None,
        policy: Arc::new(policy),
        host_set,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_normalize() {
        assert_eq!(normalize_host("WWW.Example.com.:8080"), "www.example.com");
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("example.com"), "example.com");
    }

    #[test]
    fn host_sets_match_wildcards_not_apex() {
        let mut set = HostSet::default();
        set.insert("*.example.com").unwrap();
        set.insert("cdn.other.org").unwrap();
        assert!(set.contains("www.example.com"));
        assert!(set.contains("a.b.example.com"));
        assert!(!set.contains("example.com"));
        assert!(!set.contains("badexample.com"));
        assert!(set.contains("cdn.other.org"));
        assert!(set.insert("*").is_err());
        assert!(set.insert("a/b").is_err());
    }

    #[test]
    fn host_sets_answer_the_same_small_or_large() {
        let patterns = ["*.example.com", "cdn.other.org", "*.b.c", "a.b.c", "*.x.y.z"];
        let hosts = [
            "example.com",
            "www.example.com",
            ".example.com",
            "a..example.com",
            "xexample.com",
            "cdn.other.org",
            "other.org",
            "b.c",
            "a.b.c",
            "q.a.b.c",
            "x.y.z",
            "w.x.y.z",
            "",
            ".",
            "c",
        ];
        let mut small = HostSet::default();
        let mut large = HostSet::default();
        for p in patterns {
            small.insert(p).unwrap();
            large.insert(p).unwrap();
        }
        // Enough other names that both halves of `large` are hashed.
        for i in 0..=LINEAR_HOSTS {
            large.insert(&format!("filler{i}.test")).unwrap();
            large.insert(&format!("*.filler{i}.test")).unwrap();
        }
        assert!(small.exact.len() <= LINEAR_HOSTS && small.suffixes.len() <= LINEAR_HOSTS);
        assert!(large.exact.len() > LINEAR_HOSTS && large.suffixes.len() > LINEAR_HOSTS);
        for h in hosts {
            assert_eq!(small.contains(h), large.contains(h), "{h:?}");
        }
        // Inserting a name twice keeps one copy.
        small.insert("cdn.other.org").unwrap();
        assert_eq!(small.exact_list.iter().filter(|e| *e == "cdn.other.org").count(), 1);
    }
    #[test]
    fn origins_parse() {
        let o = Origin::parse("http://127.0.0.1:3000").unwrap();
        assert_eq!(o.authority.as_str(), "127.0.0.1:3000");
        assert_eq!(o.base_path, "");
        let o = Origin::parse("https://legacy.internal/app/").unwrap();
        assert_eq!(o.scheme, Scheme::HTTPS);
        assert_eq!(o.base_path, "/app");
        assert!(Origin::parse("ftp://x").is_err());
        assert!(Origin::parse("127.0.0.1:3000").is_err());
        assert!(Origin::parse("http://u:p@x/").is_err());
    }
}
