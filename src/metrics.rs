//! Request-path counters and their Prometheus text exposition.
//!
//! Every request updates a few atomics here, so the layout is chosen for the
//! hot path: one [`DashMap`] lookup by site name per call (the site's
//! counters are created once, the first time the site is seen), then plain
//! `fetch_add`s into fixed arrays indexed by status code, [`Item`],
//! [`Action`] and [`OriginErrorKind`]. Decision counters are kept per
//! category *name* (names survive a reload that reorders categories), and a
//! small per-site table maps the current policy's [`CategoryId`]s to them so
//! that the common case allocates nothing and hashes nothing per decision.
//!
//! The exposition format (text 0.0.4) is written by hand with
//! [`Exposition`]: it is a few lines of `name{label="value"} number`, and a
//! metrics registry crate would bring a global registry, its own dependency
//! tree and per-label-set allocation on the hot path for no gain here.
//!
//! Families (all prefixed `consentry_`):
//!
//! | family | type | labels |
//! |---|---|---|
//! | `requests_total` | counter | `site`, `status` |
//! | `request_duration_seconds` | histogram | `site` |
//! | `decisions_total` | counter | `site`, `category`, `action`, `item` |
//! | `sweeps_total` | counter | `site` |
//! | `invalid_cookies_total` | counter | `site` |
//! | `origin_errors_total` | counter | `site`, `kind` |
//! | `config_generation`, `config_loaded_timestamp_seconds`, `config_last_reload_failed` | gauge | |
//! | `config_reloads_total` | counter | `result` (`ok`, `failed`) |
//!
//! The audit and inventory families are added by [`crate::account`].
//! Requests that matched no site (421) are counted under `site=""`.

use std::fmt::{Display, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use dashmap::DashMap;

use crate::category::CategoryId;
use crate::decision::{Action, Decision, Item};
use crate::policy::Policy;
use crate::snapshot::Store;

/// Upper bounds of the request-duration histogram buckets, in microseconds
/// (5 ms … 10 s, the usual Prometheus defaults); `+Inf` follows.
pub const DURATION_BUCKETS_US: [u64; 11] =
    [5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000];

/// Label of decisions about items no rule classifies.
pub const UNCLASSIFIED: &str = "unclassified";

/// Why a request to the origin failed, for `origin_errors_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OriginErrorKind {
    /// The TCP connection was refused or failed.
    Connect,
    /// Connecting took longer than `origin_connect_timeout`.
    ConnectTimeout,
    /// The response headers took longer than `origin_response_timeout`.
    ResponseTimeout,
    /// The TLS handshake with an https origin failed.
    Tls,
    /// The origin broke HTTP (malformed response, reset mid-stream).
    Protocol,
    /// Anything else.
    Other,
}

impl OriginErrorKind {
    /// Every kind, in label order.
    pub const ALL: [OriginErrorKind; 6] = [
        OriginErrorKind::Connect,
        OriginErrorKind::ConnectTimeout,
        OriginErrorKind::ResponseTimeout,
        OriginErrorKind::Tls,
        OriginErrorKind::Protocol,
        OriginErrorKind::Other,
    ];

    /// The `kind` label.
    pub fn name(self) -> &'static str {
        match self {
            OriginErrorKind::Connect => "connect",
            OriginErrorKind::ConnectTimeout => "connect_timeout",
            OriginErrorKind::ResponseTimeout => "response_timeout",
            OriginErrorKind::Tls => "tls",
            OriginErrorKind::Protocol => "protocol",
            OriginErrorKind::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters of one category on one site: `[action][item]`.
#[derive(Debug)]
struct DecisionCounters([AtomicU64; Action::ALL.len() * Item::ALL.len()]);

impl DecisionCounters {
    fn new() -> Arc<DecisionCounters> {
        Arc::new(DecisionCounters(std::array::from_fn(|_| AtomicU64::new(0))))
    }

    fn add(&self, action: Action, item: Item) {
        self.0[action.index() * Item::ALL.len() + item.index()].fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self, action: Action, item: Item) -> u64 {
        self.0[action.index() * Item::ALL.len() + item.index()].load(Ordering::Relaxed)
    }
}

/// The current policy's category ids → their counters, checked by name on
/// every use so a reload (or a request still on an old policy) can never
/// count under the wrong label.
#[derive(Debug)]
struct CategoryTable {
    names: Vec<Box<str>>,
    slots: Vec<Arc<DecisionCounters>>,
    unclassified: Arc<DecisionCounters>,
}

impl CategoryTable {
    fn matches(&self, policy: &Policy) -> bool {
        self.names.len() == policy.categories.len()
            && self.names.iter().zip(policy.categories.iter()).all(|(n, (_, c))| **n == *c.name)
    }

    fn counters(&self, category: Option<CategoryId>) -> &DecisionCounters {
        category.and_then(|c| self.slots.get(c.index())).unwrap_or(&self.unclassified)
    }
}

/// Status codes 100..=599 get their own slot; anything else shares one.
const STATUS_SLOTS: usize = 501;

fn status_slot(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status - 100),
        _ => STATUS_SLOTS - 1,
    }
}

/// Every counter of one site.
#[derive(Debug)]
struct SiteMetrics {
    status: Box<[AtomicU64]>,
    /// Non-cumulative bucket counts; the last is `+Inf`.
    duration_buckets: [AtomicU64; DURATION_BUCKETS_US.len() + 1],
    duration_sum_us: AtomicU64,
    /// Decision counters by category name (`unclassified` for none).
    decisions: DashMap<Box<str>, Arc<DecisionCounters>>,
    table: ArcSwapOption<CategoryTable>,
    sweeps: AtomicU64,
    invalid: AtomicU64,
    origin_errors: [AtomicU64; OriginErrorKind::ALL.len()],
}

impl SiteMetrics {
    fn new() -> SiteMetrics {
        SiteMetrics {
            status: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            duration_buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            duration_sum_us: AtomicU64::new(0),
            decisions: DashMap::new(),
            table: ArcSwapOption::empty(),
            sweeps: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            origin_errors: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn counters_for(&self, name: &str) -> Arc<DecisionCounters> {
        if let Some(c) = self.decisions.get(name) {
            return c.clone();
        }
        self.decisions.entry(name.into()).or_insert_with(DecisionCounters::new).clone()
    }

    /// The category table for `policy`, rebuilt only when the policy's
    /// categories differ from the cached ones (after a reload).
    fn table(&self, policy: &Policy) -> Arc<CategoryTable> {
        if let Some(table) = self.table.load_full()
            && table.matches(policy)
        {
            return table;
        }
        let table = Arc::new(CategoryTable {
            names: policy.categories.iter().map(|(_, c)| c.name.as_str().into()).collect(),
            slots: policy.categories.iter().map(|(_, c)| self.counters_for(&c.name)).collect(),
            unclassified: self.counters_for(UNCLASSIFIED),
        });
        self.table.store(Some(table.clone()));
        table
    }

    fn requests(&self) -> u64 {
        self.duration_buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }
}

/// The request-path counters of every site.
#[derive(Debug, Default)]
pub struct Metrics {
    sites: DashMap<Box<str>, Arc<SiteMetrics>>,
}

impl Metrics {
    /// No counters yet.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    fn site(&self, name: &str) -> Arc<SiteMetrics> {
        if let Some(site) = self.sites.get(name) {
            return site.clone();
        }
        self.sites.entry(name.into()).or_insert_with(|| Arc::new(SiteMetrics::new())).clone()
    }

    /// Creates a site's counters ahead of its first request, so it shows
    /// in `/metrics` (with zeros) as soon as it is configured.
    pub fn prepare_site(&self, site: &str, policy: &Policy) {
        self.site(site).table(policy);
    }

    /// Counts a finished request: its status and how long it took.
    /// `site` is `None` when the request matched no site.
    pub fn request_done(&self, site: Option<&str>, status: u16, duration: Duration) {
        let site = self.site(site.unwrap_or(""));
        site.status[status_slot(status)].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let bucket = DURATION_BUCKETS_US.iter().position(|&b| us <= b).unwrap_or(DURATION_BUCKETS_US.len());
        site.duration_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        site.duration_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Counts one request's decisions.
    pub fn decisions(&self, site: &str, policy: &Policy, decisions: &[Decision]) {
        if decisions.is_empty() {
            return;
        }
        let site = self.site(site);
        let table = site.table(policy);
        for d in decisions {
            table.counters(d.category).add(d.action, d.item);
            match d.action {
                Action::Sweep => {
                    site.sweeps.fetch_add(1, Ordering::Relaxed);
                }
                Action::Invalid => {
                    site.invalid.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    }

    /// Counts a failed origin request.
    pub fn origin_error(&self, site: &str, kind: OriginErrorKind) {
        self.site(site).origin_errors[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Sites in name order, for deterministic output.
    fn sorted(&self) -> Vec<(String, Arc<SiteMetrics>)> {
        let mut sites: Vec<_> = self.sites.iter().map(|e| (e.key().to_string(), e.value().clone())).collect();
        sites.sort_by(|a, b| a.0.cmp(&b.0));
        sites
    }

    /// Writes every request-path family.
    pub fn render(&self, out: &mut Exposition) {
        let sites = self.sorted();

        out.family("consentry_requests_total", "Requests answered, by site and status code.", "counter");
        for (name, site) in &sites {
            for (slot, count) in site.status.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count == 0 {
                    continue;
                }
                let status =
                    if slot == STATUS_SLOTS - 1 { "other".to_string() } else { (slot + 100).to_string() };
                out.sample("consentry_requests_total", &[("site", name), ("status", &status)], count);
            }
        }

        out.family(
            "consentry_request_duration_seconds",
            "Time from request received to response body finished, by site.",
            "histogram",
        );
        for (name, site) in &sites {
            let mut cumulative = 0;
            for (i, bucket) in site.duration_buckets.iter().enumerate() {
                cumulative += bucket.load(Ordering::Relaxed);
                let le = match DURATION_BUCKETS_US.get(i) {
                    Some(&us) => seconds(us),
                    None => "+Inf".to_string(),
                };
                out.sample(
                    "consentry_request_duration_seconds_bucket",
                    &[("site", name), ("le", &le)],
                    cumulative,
                );
            }
            out.sample(
                "consentry_request_duration_seconds_sum",
                &[("site", name)],
                seconds(site.duration_sum_us.load(Ordering::Relaxed)),
            );
            out.sample("consentry_request_duration_seconds_count", &[("site", name)], site.requests());
        }

        out.family(
            "consentry_decisions_total",
            "Consent decisions (in report-only mode: would-be decisions), by site, category, action and item kind.",
            "counter",
        );
        for (name, site) in &sites {
            let mut categories: Vec<_> =
                site.decisions.iter().map(|e| (e.key().to_string(), e.value().clone())).collect();
            categories.sort_by(|a, b| a.0.cmp(&b.0));
            for (category, counters) in &categories {
                for action in Action::ALL {
                    for item in Item::ALL {
                        let count = counters.get(action, item);
                        if count == 0 {
                            continue;
                        }
                        out.sample(
                            "consentry_decisions_total",
                            &[
                                ("site", name),
                                ("category", category),
                                ("action", action.name()),
                                ("item", item.name()),
                            ],
                            count,
                        );
                    }
                }
            }
        }

        out.family(
            "consentry_sweeps_total",
            "Cookies deleted in the browser because consent was withdrawn, by site.",
            "counter",
        );
        for (name, site) in &sites {
            out.sample("consentry_sweeps_total", &[("site", name)], site.sweeps.load(Ordering::Relaxed));
        }

        out.family(
            "consentry_invalid_cookies_total",
            "Unparseable cookies dropped (fail closed), by site.",
            "counter",
        );
        for (name, site) in &sites {
            out.sample(
                "consentry_invalid_cookies_total",
                &[("site", name)],
                site.invalid.load(Ordering::Relaxed),
            );
        }

        out.family("consentry_origin_errors_total", "Failed origin requests, by site and kind.", "counter");
        for (name, site) in &sites {
            for kind in OriginErrorKind::ALL {
                let count = site.origin_errors[kind.index()].load(Ordering::Relaxed);
                if count > 0 {
                    out.sample(
                        "consentry_origin_errors_total",
                        &[("site", name), ("kind", kind.name())],
                        count,
                    );
                }
            }
        }
    }
}

/// Writes the configuration families from the snapshot store.
pub fn render_config(store: &Store, out: &mut Exposition) {
    let snapshot = store.load();
    out.family("consentry_config_generation", "Generation of the configuration in use.", "gauge");
    out.sample("consentry_config_generation", &[], snapshot.generation);
    out.family(
        "consentry_config_loaded_timestamp_seconds",
        "When the configuration in use was compiled (Unix time).",
        "gauge",
    );
    let loaded = snapshot.loaded_at.duration_since(UNIX_EPOCH).unwrap_or_default();
    out.sample("consentry_config_loaded_timestamp_seconds", &[], loaded.as_secs());
    out.family("consentry_config_reloads_total", "Configuration reloads, by result.", "counter");
    out.sample("consentry_config_reloads_total", &[("result", "ok")], store.reloads_ok());
    out.sample("consentry_config_reloads_total", &[("result", "failed")], store.reloads_failed());
    out.family(
        "consentry_config_last_reload_failed",
        "1 when the last reload failed and an older configuration keeps serving.",
        "gauge",
    );
    out.sample("consentry_config_last_reload_failed", &[], u8::from(store.last_error().is_some()));
}

/// Microseconds as a decimal number of seconds (`5000` → `0.005`).
fn seconds(us: u64) -> String {
    let whole = us / 1_000_000;
    let frac = us % 1_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A Prometheus text-format (0.0.4) writer.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// The `Content-Type` of the text format.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, help: &str, kind: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample line. Label values are escaped as the format requires.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(key);
                self.out.push_str("=\"");
                for c in value.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;
    use crate::snapshot::Snapshot;
    use std::path::PathBuf;

    fn policy(categories: &str) -> Arc<Policy> {
        let text = format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[[site]]\nhosts = [\"a.test\"]\norigin = \"http://127.0.0.1:1\"\npolicy = \"p\"\n[policy.p]\n{categories}"
        );
        let snap = Snapshot::compile(&Source { path: PathBuf::from("t.toml"), text }, 1).unwrap();
        snap.policies["p"].clone()
    }

    fn decision(item: Item, category: Option<CategoryId>, action: Action) -> Decision {
        Decision { item, name: "x".into(), domain: "a.test".into(), category, action, rule: "".into() }
    }

    fn text(m: &Metrics) -> String {
        let mut out = Exposition::new();
        m.render(&mut out);
        out.finish()
    }

    #[test]
    fn seconds_format() {
        assert_eq!(seconds(5_000), "0.005");
        assert_eq!(seconds(1_000_000), "1");
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(1_000_001), "1.000001");
    }

    #[test]
    fn statuses_and_histogram() {
        let m = Metrics::new();
        m.request_done(Some("s"), 200, Duration::from_millis(3));
        m.request_done(Some("s"), 200, Duration::from_millis(7));
        m.request_done(Some("s"), 502, Duration::from_secs(20));
        m.request_done(None, 421, Duration::ZERO);
        m.request_done(Some("s"), 1000, Duration::ZERO);
        let t = text(&m);
        assert!(t.contains("consentry_requests_total{site=\"s\",status=\"200\"} 2\n"), "{t}");
        assert!(t.contains("consentry_requests_total{site=\"s\",status=\"502\"} 1\n"), "{t}");
        assert!(t.contains("consentry_requests_total{site=\"s\",status=\"other\"} 1\n"), "{t}");
        assert!(t.contains("consentry_requests_total{site=\"\",status=\"421\"} 1\n"), "{t}");
        // 3 ms and 0 → ≤ 5 ms; 7 ms → ≤ 10 ms; 20 s → +Inf only.
        assert!(t.contains("consentry_request_duration_seconds_bucket{site=\"s\",le=\"0.005\"} 2\n"), "{t}");
        assert!(t.contains("consentry_request_duration_seconds_bucket{site=\"s\",le=\"0.01\"} 3\n"), "{t}");
        assert!(t.contains("consentry_request_duration_seconds_bucket{site=\"s\",le=\"10\"} 3\n"), "{t}");
        assert!(t.contains("consentry_request_duration_seconds_bucket{site=\"s\",le=\"+Inf\"} 4\n"), "{t}");
        assert!(t.contains("consentry_request_duration_seconds_count{site=\"s\"} 4\n"), "{t}");
        assert!(t.contains("consentry_request_duration_seconds_sum{site=\"s\"} 20.01\n"), "{t}");
    }

    #[test]
    fn decisions_by_category_action_item() {
        let m = Metrics::new();
        let p = policy("");
        let analytics = p.categories.id("analytics");
        m.decisions(
            "s",
            &p,
            &[
                decision(Item::SetCookie, analytics, Action::Block),
                decision(Item::SetCookie, analytics, Action::Block),
                decision(Item::Sweep, analytics, Action::Sweep),
                decision(Item::SetCookie, None, Action::Invalid),
                decision(Item::Script, None, Action::Allow),
            ],
        );
        let t = text(&m);
        assert!(
            t.contains(
                "consentry_decisions_total{site=\"s\",category=\"analytics\",action=\"block\",item=\"set_cookie\"} 2\n"
            ),
            "{t}"
        );
        assert!(t.contains("category=\"analytics\",action=\"sweep\",item=\"sweep\"} 1\n"), "{t}");
        assert!(t.contains("category=\"unclassified\",action=\"invalid\",item=\"set_cookie\"} 1\n"), "{t}");
        assert!(t.contains("category=\"unclassified\",action=\"allow\",item=\"script\"} 1\n"), "{t}");
        assert!(t.contains("consentry_sweeps_total{site=\"s\"} 1\n"), "{t}");
        assert!(t.contains("consentry_invalid_cookies_total{site=\"s\"} 1\n"), "{t}");
    }

    #[test]
    fn reordered_categories_keep_their_labels() {
        let m = Metrics::new();
        let before = policy("[policy.p.categories]\nnecessary = {}\nanalytics = {}\nadvertising = {}\n");
        let after = policy("[policy.p.categories]\nnecessary = {}\nadvertising = {}\nanalytics = {}\n");
        m.decisions(
            "s",
            &before,
            &[decision(Item::SetCookie, before.categories.id("analytics"), Action::Block)],
        );
        m.decisions(
            "s",
            &after,
            &[decision(Item::SetCookie, after.categories.id("analytics"), Action::Block)],
        );
        m.decisions(
            "s",
            &before,
            &[decision(Item::SetCookie, before.categories.id("analytics"), Action::Block)],
        );
        let t = text(&m);
        assert!(t.contains("category=\"analytics\",action=\"block\",item=\"set_cookie\"} 3\n"), "{t}");
        assert!(!t.contains("category=\"advertising\",action=\"block\""), "{t}");
    }

    #[test]
    fn origin_errors_by_kind() {
        let m = Metrics::new();
        m.origin_error("s", OriginErrorKind::ConnectTimeout);
        m.origin_error("s", OriginErrorKind::ConnectTimeout);
        m.origin_error("s", OriginErrorKind::Tls);
        let t = text(&m);
        assert!(t.contains("consentry_origin_errors_total{site=\"s\",kind=\"connect_timeout\"} 2\n"), "{t}");
        assert!(t.contains("consentry_origin_errors_total{site=\"s\",kind=\"tls\"} 1\n"), "{t}");
        assert!(!t.contains("kind=\"connect\""), "{t}");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = Exposition::new();
        out.family("x", "line\none \\ two", "gauge");
        out.sample("x", &[("site", "a\"b\\c\nd")], 1);
        assert_eq!(
            out.finish(),
            "# HELP x line\\none \\\\ two\n# TYPE x gauge\nx{site=\"a\\\"b\\\\c\\nd\"} 1\n"
        );
    }

    #[test]
    fn prepared_sites_show_zeros() {
        let m = Metrics::new();
        m.prepare_site("quiet", &policy(""));
        let t = text(&m);
        assert!(t.contains("consentry_sweeps_total{site=\"quiet\"} 0\n"), "{t}");
        assert!(t.contains("consentry_request_duration_seconds_count{site=\"quiet\"} 0\n"), "{t}");
    }
}
