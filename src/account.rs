//! Stage 9, **account**: what happened, for the operator: [metrics]
//! (Prometheus counters), the [inventory] of observed cookies and
//! third-party hosts, and the [audit] log of decisions.
//!
//! The proxy glue holds one `Arc<Account>` for the life of the process and
//! calls, per request:
//!
//! 1. [`Account::record`] with the decisions of the header stages, and again
//!    from the body stage's `on_done` with the page's decisions;
//! 2. [`Account::origin_error`] when the origin could not be reached or
//!    broke HTTP;
//! 3. [`Account::request_done`] once the response is finished;
//!
//! and, after every successful (re)load, [`Account::apply`] so audit
//! settings, the inventory cap and the site list follow the file. None of
//! these blocks: the audit log drops (and counts) rather than waits.
//!
//! [metrics]: crate::metrics
//! [inventory]: crate::inventory
//! [audit]: crate::audit

use std::time::{Duration, SystemTime};

use crate::audit::AuditLog;
use crate::decision::Decision;
use crate::inventory::Inventory;
use crate::metrics::{self, Exposition, Metrics, OriginErrorKind};
use crate::policy::Policy;
use crate::route::Site;
use crate::snapshot::{Snapshot, Store};

/// The directory relative paths in the config are resolved against.
pub fn config_dir(snapshot: &Snapshot) -> &std::path::Path {
    snapshot.path.parent().unwrap_or(std::path::Path::new(""))
}

/// Shared accounting state (one per process, behind an `Arc`).
#[derive(Debug, Default)]
pub struct Account {
    metrics: Metrics,
    inventory: Inventory,
    audit: AuditLog,
}

impl Account {
    /// Accounting with this audit log and inventory cap per site.
    pub fn new(audit: AuditLog, max_inventory_entries: usize) -> Account {
        Account { metrics: Metrics::new(), inventory: Inventory::new(max_inventory_entries), audit }
    }

    /// Accounting as a snapshot configures it (audit sink opened lazily by
    /// its writer thread, so this cannot fail; open errors are logged and
    /// counted as dropped entries).
    pub fn from_snapshot(snapshot: &Snapshot) -> Account {
        let account = Account::default();
        account.apply(snapshot);
        account
    }

    /// Applies a (re)loaded snapshot: audit level, sink and rotation, the
    /// inventory cap, and zeroed counters for every configured site.
    pub fn apply(&self, snapshot: &Snapshot) {
        self.audit.configure(&snapshot.audit, config_dir(snapshot));
        self.inventory.set_max_entries(snapshot.limits.max_inventory_entries);
        for site in snapshot.router.sites() {
            self.metrics.prepare_site(&site.name, &site.policy);
        }
    }

    /// Records the decisions of one request (or one page body): metrics,
    /// inventory and, at the configured level, the audit log. `policy` is
    /// the policy the decisions were made under (its mode is written in
    /// the audit entries).
    pub fn record(&self, site: &Site, policy: &Policy, request_id: &str, decisions: &[Decision]) {
        if decisions.is_empty() {
            return;
        }
        let now = SystemTime::now();
        self.metrics.decisions(&site.name, policy, decisions);
        self.inventory.record(site, policy, decisions, now);
        self.audit.record(&site.name, request_id, policy, decisions, now);
    }

    /// Records a finished request. `site` is `None` when no site matched
    /// the host (421).
    pub fn request_done(&self, site: Option<&str>, status: u16, duration: Duration) {
        self.metrics.request_done(site, status, duration);
    }

    /// Records a failed request to a site's origin.
    pub fn origin_error(&self, site: &str, kind: OriginErrorKind) {
        self.metrics.origin_error(site, kind);
    }

    /// The request-path counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The inventory.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Waits (up to `timeout`) for queued audit entries to be written: call
    /// on shutdown, after the last request.
    pub fn flush_audit(&self, timeout: Duration) -> bool {
        self.audit.flush(timeout)
    }

    /// Every metric, in the Prometheus text format.
    pub fn render_metrics(&self, store: &Store) -> String {
        let mut out = Exposition::new();
        self.metrics.render(&mut out);
        metrics::render_config(store, &mut out);

        out.family("consentry_audit_entries_written_total", "Audit entries written to the sink.", "counter");
        out.sample("consentry_audit_entries_written_total", &[], self.audit.written());
        out.family(
            "consentry_audit_entries_dropped_total",
            "Audit entries lost because the sink could not keep up or failed.",
            "counter",
        );
        out.sample("consentry_audit_entries_dropped_total", &[], self.audit.dropped());

        let sites = self.inventory.site_names();
        out.family("consentry_inventory_entries", "Inventory entries stored, by site.", "gauge");
        for site in &sites {
            out.sample("consentry_inventory_entries", &[("site", site)], self.inventory.len(site));
        }
        out.family(
            "consentry_inventory_overflow_total",
            "Sightings not stored because the site's inventory was full.",
            "counter",
        );
        for site in &sites {
            out.sample(
                "consentry_inventory_overflow_total",
                &[("site", site)],
                self.inventory.overflow(site),
            );
        }
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Level;
    use crate::config::Source;
    use crate::decision::{Action, Item};
    use std::io::{self, Write};
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn snapshot(extra: &str) -> Snapshot {
        let text = format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[[site]]\nname = \"shop\"\nhosts = [\"shop.test\"]\norigin = \"http://127.0.0.1:1\"\npolicy = \"p\"\n[policy.p]\nmode = \"report-only\"\n{extra}"
        );
        Snapshot::compile(&Source { path: PathBuf::from("t.toml"), text }, 1).unwrap()
    }

    #[test]
    fn record_feeds_metrics_inventory_and_audit() {
        let snap = snapshot("");
        let buf = Buf::default();
        let account = Account::new(AuditLog::with_writer(Level::Blocked, Box::new(buf.clone()), 16), 100);
        let site = snap.router.sites()[0].clone();
        let analytics = site.policy.categories.id("analytics");
        let decisions = [
            Decision {
                item: Item::SetCookie,
                name: "_ga".into(),
                domain: "shop.test".into(),
                category: analytics,
                action: Action::Block,
                rule: "_ga (config line 3)".into(),
            },
            Decision {
                item: Item::RequestCookie,
                name: "sid".into(),
                domain: "shop.test".into(),
                category: None,
                action: Action::Allow,
                rule: "unknown_cookies default".into(),
            },
        ];
        account.record(&site, &site.policy, "req-9", &decisions);
        account.request_done(Some("shop"), 200, Duration::from_millis(1));
        assert!(account.flush_audit(Duration::from_secs(5)));

        let text = account.render_metrics(&Store::new(snapshot("")));
        assert!(
            text.contains("consentry_decisions_total{site=\"shop\",category=\"analytics\",action=\"block\",item=\"set_cookie\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("consentry_requests_total{site=\"shop\",status=\"200\"} 1\n"), "{text}");
        assert!(text.contains("consentry_inventory_entries{site=\"shop\"} 2\n"), "{text}");
        assert!(text.contains("consentry_audit_entries_written_total 1\n"), "{text}");
        assert!(text.contains("consentry_config_generation 1\n"), "{text}");

        let audit = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(audit.lines().count(), 1, "{audit}");
        let line: serde_json::Value = serde_json::from_str(audit.trim()).unwrap();
        assert_eq!(line["mode"], "report-only");
        assert_eq!(line["request_id"], "req-9");
        assert_eq!(account.inventory().view("shop", None).entries.len(), 2);
    }

    #[test]
    fn apply_follows_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let snap = snapshot(&format!(
            "[audit]\nlevel = \"all\"\npath = {:?}\n[limits]\nmax_inventory_entries = 7\n",
            path.display().to_string()
        ));
        let account = Account::from_snapshot(&snap);
        assert_eq!(account.inventory().max_entries(), 7);
        assert_eq!(account.audit().level(), Level::All);
        let site = snap.router.sites()[0].clone();
        let d = Decision {
            item: Item::SetCookie,
            name: "x".into(),
            domain: "shop.test".into(),
            category: None,
            action: Action::Allow,
            rule: "".into(),
        };
        account.record(&site, &site.policy, "r", &[d]);
        assert!(account.flush_audit(Duration::from_secs(5)));
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.contains("\"name\":\"x\""), "{written}");
        // A prepared site shows in the metrics before any request.
        let text = account.render_metrics(&Store::new(snapshot("")));
        assert!(text.contains("consentry_sweeps_total{site=\"shop\"} 0\n"), "{text}");
    }
}
