//! Cost of stage 9 on the request path: `Account::record` with a typical
//! request's decisions (metrics + inventory; audit off, and audit `all`
//! into a sink that discards), and `Account::request_done`.
//!
//! `cargo bench --bench account`

use std::hint::black_box;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use consentry::account::Account;
use consentry::audit::{AuditLog, Level};
use consentry::config::Source;
use consentry::decision::{Action, Decision, Item};
use consentry::snapshot::Snapshot;
use criterion::{Criterion, Throughput, criterion_main};

fn snapshot() -> Snapshot {
    let text = r#"
[listen]
http = "127.0.0.1:0"
[[site]]
name = "shop"
hosts = ["shop.test"]
origin = "http://127.0.0.1:1"
policy = "p"
[policy.p]
[[policy.p.cookie]]
name = "_ga_*"
category = "analytics"
"#;
    Snapshot::compile(&Source { path: PathBuf::from("bench.toml"), text: text.into() }, 1).unwrap()
}

fn decisions(snap: &Snapshot) -> Vec<Decision> {
    let policy = &snap.router.sites()[0].policy;
    let analytics = policy.categories.id("analytics");
    let cookie = |item, name: &str, category, action| Decision {
        item,
        name: name.into(),
        domain: "shop.test".into(),
        category,
        action,
        rule: "bench".into(),
    };
    vec![
        cookie(Item::RequestCookie, "sessionid", None, Action::Allow),
        cookie(Item::RequestCookie, "_ga_X", analytics, Action::Block),
        cookie(Item::SetCookie, "_ga_Y", analytics, Action::Block),
        cookie(Item::Sweep, "_ga_X", analytics, Action::Sweep),
        Decision {
            item: Item::Script,
            name: "https://www.googletagmanager.com/gtag/js?id=G-1".into(),
            domain: "www.googletagmanager.com".into(),
            category: analytics,
            action: Action::Block,
            rule: "googletagmanager.com (config line 12)".into(),
        },
    ]
}

fn bench(c: &mut Criterion) {
    let snap = snapshot();
    let site = snap.router.sites()[0].clone();
    let decisions = decisions(&snap);
    let mut group = c.benchmark_group("account");
    group.throughput(Throughput::Elements(decisions.len() as u64));

    let account = Account::from_snapshot(&snap);
    account.record(&site, &site.policy, "warm", &decisions);
    group.bench_function("record/audit-off", |b| {
        b.iter(|| account.record(black_box(&site), &site.policy, "req", black_box(&decisions)));
    });

    let audited = Account::new(AuditLog::with_writer(Level::All, Box::new(io::sink()), 1024), 10_000);
    group.bench_function("record/audit-all", |b| {
        b.iter(|| audited.record(black_box(&site), &site.policy, "req", black_box(&decisions)));
    });

    group.throughput(Throughput::Elements(1));
    group.bench_function("request_done", |b| {
        b.iter(|| account.request_done(black_box(Some("shop")), 200, Duration::from_micros(1500)));
    });
    group.finish();
}

/// Private, so the generated `benches` function needs no doc.
mod harness {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(harness::benches);
