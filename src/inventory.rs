//! The inventory: every cookie (name + domain) and every third-party
//! resource host each site's origin was seen using, with counts, first and
//! last sighting and category (or `unclassified`). It is the discovery tool
//! for a legacy site nobody documented: run in report-only mode, read
//! `/inventory`, write the rules, enforce.
//!
//! Fed from the same decisions as the metrics: `Set-Cookie` headers and
//! request cookies (keyed by name and domain), third-party `<script>`,
//! `<iframe>`, pixels, links and embeds (keyed by host; first-party hosts
//! are skipped), and inline scripts a rule recognised (keyed by the matched
//! signature). Sweeps are consentry's own deletions and unparseable cookies
//! have no trustworthy name, so neither is inventoried.
//!
//! Memory is bounded: at most `[limits] max_inventory_entries` entries per
//! site (default [`DEFAULT_MAX_ENTRIES`]), names and hosts cut to
//! [`MAX_NAME_BYTES`]. Sightings of new entries beyond the cap are counted
//! (`consentry_inventory_overflow_total`), not stored.
//!
//! A sighting of a known entry costs one `DashMap` lookup and a few atomic
//! adds, without allocating: the map's key borrows as a `dyn KeyView` so a
//! lookup needs no owned key.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use serde::{Serialize, Serializer};

use crate::decision::{Action, Decision, Item};
use crate::metrics::UNCLASSIFIED;
use crate::policy::Policy;
use crate::route::Site;

/// Default cap on entries per site.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

/// Longest name or domain kept (longer ones are cut at a character
/// boundary).
pub const MAX_NAME_BYTES: usize = 256;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A cookie, by name and domain.
    Cookie,
    /// A third-party host serving scripts, frames, images, links or embeds.
    Resource,
    /// An inline script, by the signature a rule matched.
    InlineScript,
}

impl Kind {
    fn of(item: Item) -> Option<Kind> {
        match item {
            Item::RequestCookie | Item::SetCookie => Some(Kind::Cookie),
            Item::Sweep => None,
            Item::InlineScript => Some(Kind::InlineScript),
            Item::Script | Item::Iframe | Item::Image | Item::Link | Item::Embed | Item::Noscript => {
                Some(Kind::Resource)
            }
        }
    }
}

fn item_bit(item: Item) -> u16 {
    1 << item.index()
}

/// `s` cut to at most [`MAX_NAME_BYTES`] at a character boundary.
fn cut(s: &str) -> &str {
    if s.len() <= MAX_NAME_BYTES {
        return s;
    }
    let mut end = MAX_NAME_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The parts of a key, owned or borrowed. Domains compare case-insensitively
/// (stored keys hold them lower-cased), names exactly (cookie names are
/// case-sensitive).
trait KeyView {
    fn kind(&self) -> Kind;
    fn domain(&self) -> &str;
    fn name(&self) -> &str;
}

impl Hash for dyn KeyView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.kind().hash(state);
        for b in self.domain().bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
        state.write_u8(0xff);
        self.name().hash(state);
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind()
            && self.domain().eq_ignore_ascii_case(other.domain())
            && self.name() == other.name()
    }
}

impl Eq for dyn KeyView + '_ {}

#[derive(Debug)]
struct Key {
    kind: Kind,
    domain: Box<str>,
    name: Box<str>,
}

impl KeyView for Key {
    fn kind(&self) -> Kind {
        self.kind
    }
    fn domain(&self) -> &str {
        &self.domain
    }
    fn name(&self) -> &str {
        &self.name
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn KeyView).hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        (self as &dyn KeyView) == (other as &dyn KeyView)
    }
}

impl Eq for Key {}

impl<'a> Borrow<dyn KeyView + 'a> for Key {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

struct Lookup<'a> {
    kind: Kind,
    domain: &'a str,
    name: &'a str,
}

impl KeyView for Lookup<'_> {
    fn kind(&self) -> Kind {
        self.kind
    }
    fn domain(&self) -> &str {
        self.domain
    }
    fn name(&self) -> &str {
        self.name
    }
}

#[derive(Debug)]
struct Stats {
    count: AtomicU64,
    blocked: AtomicU64,
    first_seen: u64,
    last_seen: AtomicU64,
    items: AtomicU16,
    /// Category at the last sighting (`None`: unclassified).
    category: Option<Box<str>>,
    /// For resources: the first URL seen on the host.
    example: Box<str>,
}

#[derive(Debug, Default)]
struct SiteInventory {
    entries: DashMap<Key, Stats>,
    len: AtomicUsize,
    overflow: AtomicU64,
}

/// Every site's inventory.
#[derive(Debug)]
pub struct Inventory {
    sites: DashMap<Box<str>, Arc<SiteInventory>>,
    max_entries: AtomicUsize,
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory::new(DEFAULT_MAX_ENTRIES)
    }
}

/// One inventory entry, as `/inventory` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Cookie, resource host or inline script.
    pub kind: Kind,
    /// Cookie name or inline-script signature; empty for a resource host.
    pub name: String,
    /// Cookie domain (its `Domain`, else the request host) or resource host.
    pub domain: String,
    /// Category name, or `unclassified`.
    pub category: String,
    /// Times seen.
    pub count: u64,
    /// Times it was (or, in report-only mode, would have been) blocked.
    pub blocked: u64,
    /// First sighting (Unix seconds; RFC 3339 in JSON).
    #[serde(serialize_with = "rfc3339")]
    pub first_seen: u64,
    /// Last sighting.
    #[serde(serialize_with = "rfc3339")]
    pub last_seen: u64,
    /// How it was seen (`set_cookie`, `request_cookie`, `script`, `iframe`…).
    pub seen_as: Vec<&'static str>,
    /// For a resource host: the first URL seen on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

/// One site's inventory, as `/inventory` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteView {
    /// The site's name.
    pub site: String,
    /// The cap on entries.
    pub max_entries: usize,
    /// Sightings not stored because the inventory was full.
    pub overflow: u64,
    /// Entries, by kind, domain and name.
    pub entries: Vec<Entry>,
}

/// Serializes Unix seconds as RFC 3339.
pub fn rfc3339<S: Serializer>(secs: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(*secs)))
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Inventory {
    /// An empty inventory keeping at most `max_entries` entries per site.
    pub fn new(max_entries: usize) -> Inventory {
        Inventory { sites: DashMap::new(), max_entries: AtomicUsize::new(max_entries) }
    }

    /// Changes the cap (after a reload). Lowering it keeps what is stored
    /// and stops new entries until the count is under the new cap.
    pub fn set_max_entries(&self, max_entries: usize) {
        self.max_entries.store(max_entries, Ordering::Relaxed);
    }

    /// The cap on entries per site.
    pub fn max_entries(&self) -> usize {
        self.max_entries.load(Ordering::Relaxed)
    }

    fn site(&self, name: &str) -> Arc<SiteInventory> {
        if let Some(s) = self.sites.get(name) {
            return s.clone();
        }
        self.sites.entry(name.into()).or_default().clone()
    }

    /// Records the items of one request's decisions.
    pub fn record(&self, site: &Site, policy: &Policy, decisions: &[Decision], now: SystemTime) {
        let mut inv: Option<Arc<SiteInventory>> = None;
        let now = unix_secs(now);
        for d in decisions {
            let Some(kind) = Kind::of(d.item) else { continue };
            if d.action == Action::Invalid {
                continue;
            }
            let domain = cut(d.domain.trim_start_matches('.'));
            let name = match kind {
                Kind::Cookie | Kind::InlineScript => cut(&d.name),
                Kind::Resource => {
                    if domain.is_empty() || site.is_first_party(domain) {
                        continue;
                    }
                    ""
                }
            };
            let category =
                d.category.filter(|c| c.index() < policy.categories.len()).map(|c| policy.categories.name(c));
            let inv = inv.get_or_insert_with(|| self.site(&site.name));
            self.sight(inv, Lookup { kind, domain, name }, d, category, now);
        }
    }

    fn sight(&self, inv: &SiteInventory, key: Lookup<'_>, d: &Decision, category: Option<&str>, now: u64) {
        let blocked = u64::from(d.action == Action::Block);
        let bit = item_bit(d.item);
        let view: &dyn KeyView = &key;
        if let Some(stats) = inv.entries.get(view) {
            stats.count.fetch_add(1, Ordering::Relaxed);
            stats.blocked.fetch_add(blocked, Ordering::Relaxed);
            stats.last_seen.fetch_max(now, Ordering::Relaxed);
            stats.items.fetch_or(bit, Ordering::Relaxed);
            if stats.category.as_deref() == category {
                return;
            }
            drop(stats);
            // The classification changed (a reload): rare, so the write lock
            // and the allocation are fine here.
            if let Some(mut stats) = inv.entries.get_mut(view) {
                stats.category = category.map(Into::into);
            }
            return;
        }
        if inv.len.load(Ordering::Relaxed) >= self.max_entries() {
            inv.overflow.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let owned =
            Key { kind: key.kind, domain: key.domain.to_ascii_lowercase().into(), name: key.name.into() };
        match inv.entries.entry(owned) {
            dashmap::Entry::Occupied(e) => {
                // Another request inserted it meanwhile.
                let stats = e.get();
                stats.count.fetch_add(1, Ordering::Relaxed);
                stats.blocked.fetch_add(blocked, Ordering::Relaxed);
                stats.last_seen.fetch_max(now, Ordering::Relaxed);
                stats.items.fetch_or(bit, Ordering::Relaxed);
            }
            dashmap::Entry::Vacant(v) => {
                if inv.len.fetch_add(1, Ordering::Relaxed) >= self.max_entries() {
                    inv.len.fetch_sub(1, Ordering::Relaxed);
                    inv.overflow.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                v.insert(Stats {
                    count: AtomicU64::new(1),
                    blocked: AtomicU64::new(blocked),
                    first_seen: now,
                    last_seen: AtomicU64::new(now),
                    items: AtomicU16::new(bit),
                    category: category.map(Into::into),
                    example: if key.kind == Kind::Resource { cut(&d.name).into() } else { "".into() },
                });
            }
        }
    }

    /// Names of every site with an inventory, sorted.
    pub fn site_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.sites.iter().map(|e| e.key().to_string()).collect();
        names.sort();
        names
    }

    /// Entries stored for a site.
    pub fn len(&self, site: &str) -> usize {
        self.sites.get(site).map_or(0, |s| s.len.load(Ordering::Relaxed))
    }

    /// Sightings of a site not stored because its inventory was full.
    pub fn overflow(&self, site: &str) -> u64 {
        self.sites.get(site).map_or(0, |s| s.overflow.load(Ordering::Relaxed))
    }

    /// A site's inventory. With `policy`, each entry's category is what the
    /// current rules say (so a rule added since the last sighting shows at
    /// once); without, the category at the last sighting.
    pub fn view(&self, site: &str, policy: Option<&Policy>) -> SiteView {
        let mut entries = Vec::new();
        let (overflow, stored) = match self.sites.get(site) {
            None => (0, None),
            Some(s) => (s.overflow.load(Ordering::Relaxed), Some(s.clone())),
        };
        for e in stored.iter().flat_map(|s| s.entries.iter()) {
            let (key, stats) = (e.key(), e.value());
            let items = stats.items.load(Ordering::Relaxed);
            let category = match policy {
                Some(p) => classify(p, key, &stats.example).map(str::to_string),
                None => stats.category.as_deref().map(str::to_string),
            };
            entries.push(Entry {
                kind: key.kind,
                name: key.name.to_string(),
                domain: key.domain.to_string(),
                category: category.unwrap_or_else(|| UNCLASSIFIED.to_string()),
                count: stats.count.load(Ordering::Relaxed),
                blocked: stats.blocked.load(Ordering::Relaxed),
                first_seen: stats.first_seen,
                last_seen: stats.last_seen.load(Ordering::Relaxed),
                seen_as: Item::ALL
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| items & (1 << i) != 0)
                    .map(|(_, item)| item.name())
                    .collect(),
                example: (!stats.example.is_empty()).then(|| stats.example.to_string()),
            });
        }
        entries.sort_by(|a, b| (a.kind, &a.domain, &a.name).cmp(&(b.kind, &b.domain, &b.name)));
        SiteView { site: site.to_string(), max_entries: self.max_entries(), overflow, entries }
    }
}

/// The category the policy gives an entry now.
fn classify<'p>(policy: &'p Policy, key: &Key, example: &str) -> Option<&'p str> {
    let id = match key.kind {
        Kind::Cookie => policy.classify_cookie(&key.name, &key.domain).0,
        Kind::InlineScript => policy.resources.classify_inline(&key.name).map(|r| r.category),
        Kind::Resource => {
            let path = url::Url::parse(example).map(|u| u.path().to_string()).unwrap_or_else(|_| "/".into());
            policy.resources.classify_url(&key.domain, &path).map(|r| r.category)
        }
    };
    id.filter(|c| c.index() < policy.categories.len()).map(|c| policy.categories.name(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::CategoryId;
    use crate::config::Source;
    use crate::snapshot::Snapshot;
    use std::path::PathBuf;

    const CONFIG: &str = r#"
[listen]
http = "127.0.0.1:0"
[[site]]
name = "shop"
hosts = ["shop.test", "www.shop.test"]
origin = "http://127.0.0.1:1"
policy = "p"
[policy.p]
first_party = ["cdn.shop.test"]
[[policy.p.cookie]]
name = "_ga"
category = "analytics"
[[policy.p.resource]]
match = "googletagmanager.com"
category = "analytics"
"#;

    fn site() -> Arc<Site> {
        let snap = Snapshot::compile(&Source { path: PathBuf::from("t.toml"), text: CONFIG.to_string() }, 1)
            .unwrap();
        snap.router.sites()[0].clone()
    }

    fn d(item: Item, name: &str, domain: &str, category: Option<CategoryId>, action: Action) -> Decision {
        Decision { item, name: name.into(), domain: domain.into(), category, action, rule: "".into() }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn cookies_by_name_and_domain_with_counts() {
        let site = site();
        let p = &site.policy;
        let ga = p.categories.id("analytics");
        let inv = Inventory::new(100);
        inv.record(&site, p, &[d(Item::SetCookie, "_ga", ".Shop.test", ga, Action::Block)], at(10));
        inv.record(&site, p, &[d(Item::RequestCookie, "_ga", "shop.test", ga, Action::Allow)], at(20));
        inv.record(&site, p, &[d(Item::RequestCookie, "_GA", "shop.test", None, Action::Block)], at(30));
        let view = inv.view("shop", None);
        assert_eq!(view.entries.len(), 2, "{view:?}");
        let ga_entry = view.entries.iter().find(|e| e.name == "_ga").unwrap();
        assert_eq!(ga_entry.domain, "shop.test");
        assert_eq!((ga_entry.count, ga_entry.blocked), (2, 1));
        assert_eq!((ga_entry.first_seen, ga_entry.last_seen), (10, 20));
        assert_eq!(ga_entry.category, "analytics");
        assert_eq!(ga_entry.seen_as, vec!["request_cookie", "set_cookie"]);
        let upper = view.entries.iter().find(|e| e.name == "_GA").unwrap();
        assert_eq!(upper.category, "unclassified");
    }

    #[test]
    fn resources_by_third_party_host_only() {
        let site = site();
        let p = &site.policy;
        let inv = Inventory::new(100);
        inv.record(
            &site,
            p,
            &[
                d(
                    Item::Script,
                    "https://www.googletagmanager.com/gtag/js?id=1",
                    "www.googletagmanager.com",
                    p.categories.id("analytics"),
                    Action::Block,
                ),
                d(
                    Item::Iframe,
                    "https://www.googletagmanager.com/ns.html",
                    "www.googletagmanager.com",
                    None,
                    Action::Block,
                ),
                d(Item::Script, "https://shop.test/app.js", "shop.test", None, Action::Allow),
                d(Item::Image, "https://cdn.shop.test/x.png", "cdn.shop.test", None, Action::Allow),
                d(Item::Sweep, "_ga", "shop.test", None, Action::Sweep),
                d(Item::SetCookie, "bad\u{1}", "shop.test", None, Action::Invalid),
            ],
            at(5),
        );
        let view = inv.view("shop", None);
        assert_eq!(view.entries.len(), 1, "{view:?}");
        let e = &view.entries[0];
        assert_eq!(
            (e.kind, e.name.as_str(), e.domain.as_str()),
            (Kind::Resource, "", "www.googletagmanager.com")
        );
        assert_eq!(e.count, 2);
        assert_eq!(e.seen_as, vec!["script", "iframe"]);
        assert_eq!(e.example.as_deref(), Some("https://www.googletagmanager.com/gtag/js?id=1"));
        // The category at the last sighting was none; the current rules say analytics.
        assert_eq!(e.category, "unclassified");
        assert_eq!(inv.view("shop", Some(p)).entries[0].category, "analytics");
    }

    #[test]
    fn cap_counts_overflow_and_keeps_updating_known_entries() {
        let site = site();
        let p = &site.policy;
        let inv = Inventory::new(2);
        for name in ["a", "b", "c", "d", "a", "c"] {
            inv.record(&site, p, &[d(Item::SetCookie, name, "shop.test", None, Action::Block)], at(1));
        }
        assert_eq!(inv.len("shop"), 2);
        assert_eq!(inv.overflow("shop"), 3);
        let view = inv.view("shop", None);
        assert_eq!(
            view.entries.iter().map(|e| (e.name.as_str(), e.count)).collect::<Vec<_>>(),
            [("a", 2), ("b", 1)]
        );
        inv.set_max_entries(3);
        inv.record(&site, p, &[d(Item::SetCookie, "c", "shop.test", None, Action::Block)], at(1));
        assert_eq!(inv.len("shop"), 3);
    }

    #[test]
    fn long_names_are_cut_at_char_boundaries() {
        let site = site();
        let long = "é".repeat(200);
        let inv = Inventory::new(10);
        inv.record(
            &site,
            &site.policy,
            &[d(Item::SetCookie, &long, "shop.test", None, Action::Block)],
            at(1),
        );
        inv.record(
            &site,
            &site.policy,
            &[d(Item::SetCookie, &long, "shop.test", None, Action::Block)],
            at(1),
        );
        let view = inv.view("shop", None);
        assert_eq!(view.entries.len(), 1);
        assert_eq!(view.entries[0].name.len(), MAX_NAME_BYTES);
        assert_eq!(view.entries[0].count, 2);
    }

    #[test]
    fn category_follows_the_last_sighting() {
        let site = site();
        let p = &site.policy;
        let inv = Inventory::new(10);
        inv.record(&site, p, &[d(Item::SetCookie, "x", "shop.test", None, Action::Block)], at(1));
        inv.record(
            &site,
            p,
            &[d(Item::SetCookie, "x", "shop.test", p.categories.id("functional"), Action::Allow)],
            at(2),
        );
        assert_eq!(inv.view("shop", None).entries[0].category, "functional");
    }

    #[test]
    fn json_times_are_rfc3339() {
        let site = site();
        let inv = Inventory::new(10);
        inv.record(
            &site,
            &site.policy,
            &[d(Item::SetCookie, "x", "shop.test", None, Action::Block)],
            at(86_400),
        );
        let json = serde_json::to_value(inv.view("shop", None)).unwrap();
        assert_eq!(json["entries"][0]["first_seen"], "1970-01-02T00:00:00Z");
        assert_eq!(json["entries"][0]["kind"], "cookie");
        assert!(json["entries"][0].get("example").is_none());
    }
}
