//! The admin API over a real socket: every endpoint, auth, the declaration
//! formats, inventory cap, audit levels and rotation, and the guarantee that
//! a stuck audit sink never blocks `Account::record`.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use consentry::account::Account;
use consentry::admin::{self, AdminState};
use consentry::audit::{AuditLog, Level, rotated};
use consentry::config::Source;
use consentry::decision::{Action, Decision, Item};
use consentry::metrics::OriginErrorKind;
use consentry::route::Site;
use consentry::snapshot::{Snapshot, Store};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const POLICY: &str = r#"
[[site]]
name = "shop"
hosts = ["shop.test", "www.shop.test"]
origin = "http://127.0.0.1:1"
policy = "p"

[policy.p]
[policy.p.categories]
necessary = { description = "Sign-in & security" }
analytics = { description = "Audience measurement" }
advertising = { description = "Ads" }

[[policy.p.cookie]]
name = "sessionid"
category = "necessary"
provider = "Shop"
purpose = "Keeps you signed in"
duration = "Session"

[[policy.p.cookie]]
name = "_ga_*"
category = "analytics"
provider = "Google Analytics 4"
purpose = "Audience measurement"
duration = "13 months"

[[policy.p.resource]]
match = "googletagmanager.com"
category = "analytics"
"#;

fn snapshot(extra: &str) -> Snapshot {
    let text = format!("[listen]\nhttp = \"127.0.0.1:0\"\n{extra}\n{POLICY}");
    Snapshot::compile(&Source { path: PathBuf::from("consentry.toml"), text }, 1).unwrap()
}

struct Admin {
    addr: SocketAddr,
    state: AdminState,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Admin {
    async fn start(snapshot: Snapshot, account: Account) -> Admin {
        account.apply(&snapshot);
        let state = AdminState::new(Arc::new(Store::new(snapshot)), Arc::new(account));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(admin::serve(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        Admin { addr, state, stop: Some(stop), task }
    }

    fn site(&self) -> Arc<Site> {
        self.state.store.load().router.sites()[0].clone()
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let stream = TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder().method(method).uri(path).header("host", "admin");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = sender.send_request(req.body(Empty::<Bytes>::new()).unwrap()).await.unwrap();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (parts.status, parts.headers, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn get(&self, path: &str) -> (StatusCode, HeaderMap, String) {
        self.call(Method::GET, path, &[]).await
    }

    async fn json(&self, path: &str) -> serde_json::Value {
        let (status, headers, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(headers["content-type"], "application/json");
        serde_json::from_str(&body).unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
    }
}

fn decision(
    item: Item,
    name: &str,
    domain: &str,
    site: &Site,
    category: Option<&str>,
    action: Action,
) -> Decision {
    Decision {
        item,
        name: name.into(),
        domain: domain.into(),
        category: category.and_then(|c| site.policy.categories.id(c)),
        action,
        rule: "test rule".into(),
    }
}

/// A metric's value in an exposition, by its full series name.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn probes_and_readiness() {
    let admin = Admin::start(snapshot(""), Account::default()).await;
    let (status, _, body) = admin.get("/healthz").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
    assert_eq!(admin.get("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    admin.state.set_ready(true);
    assert_eq!(admin.get("/readyz").await.0, StatusCode::OK);
    admin.stop().await;
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let admin = Admin::start(snapshot(""), Account::default()).await;
    assert_eq!(admin.get("/nope").await.0, StatusCode::NOT_FOUND);
    for path in ["/metrics", "/config", "/inventory", "/declaration", "/healthz"] {
        let (status, headers, _) = admin.call(Method::POST, path, &[]).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(headers["allow"], "GET, HEAD");
    }
    let (status, headers, body) = admin.call(Method::HEAD, "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    assert!(body.is_empty());
    admin.stop().await;
}

#[tokio::test]
async fn bearer_token() {
    let admin = Admin::start(snapshot("[admin]\ntoken = \"hunter2\""), Account::default()).await;
    for path in ["/metrics", "/config", "/inventory", "/declaration", "/nope"] {
        let (status, headers, _) = admin.get(path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(headers["www-authenticate"], "Bearer realm=\"consentry\"");
    }
    let (status, headers, _) =
        admin.call(Method::GET, "/metrics", &[("authorization", "Bearer hunter")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers["www-authenticate"].to_str().unwrap().contains("error=\"invalid_token\""));
    let (status, _, _) = admin.call(Method::GET, "/metrics", &[("authorization", "Bearer hunter2")]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = admin.call(Method::GET, "/config", &[("authorization", "Bearer hunter2")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("hunter2"), "the token must not be shown: {body}");
    // Probes need no token.
    assert_eq!(admin.get("/healthz").await.0, StatusCode::OK);
    admin.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_decisions_errors_and_reloads() {
    let admin = Admin::start(snapshot(""), Account::default()).await;
    let site = admin.site();
    let account = &admin.state.account;
    account.record(
        &site,
        &site.policy,
        "r1",
        &[
            decision(Item::SetCookie, "_ga_1", "shop.test", &site, Some("analytics"), Action::Block),
            decision(Item::Sweep, "_ga_2", "shop.test", &site, Some("analytics"), Action::Sweep),
            decision(Item::SetCookie, "", "shop.test", &site, None, Action::Invalid),
        ],
    );
    account.request_done(Some("shop"), 200, Duration::from_millis(30));
    account.request_done(Some("shop"), 200, Duration::from_millis(2));
    account.request_done(None, 421, Duration::from_millis(1));
    account.origin_error("shop", OriginErrorKind::Connect);
    admin.state.store.fail("bad.toml:1:1: nope".into());
    admin.state.store.swap(snapshot(""));
    admin.state.store.fail("bad.toml:2:1: nope".into());

    let (status, headers, text) = admin.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let has = |series: &str, value: f64| {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    };
    has("consentry_requests_total{site=\"shop\",status=\"200\"}", 2.0);
    has("consentry_requests_total{site=\"\",status=\"421\"}", 1.0);
    has("consentry_request_duration_seconds_bucket{site=\"shop\",le=\"0.005\"}", 1.0);
    has("consentry_request_duration_seconds_bucket{site=\"shop\",le=\"0.05\"}", 2.0);
    has("consentry_request_duration_seconds_count{site=\"shop\"}", 2.0);
    has("consentry_request_duration_seconds_sum{site=\"shop\"}", 0.032);
    has(
        "consentry_decisions_total{site=\"shop\",category=\"analytics\",action=\"block\",item=\"set_cookie\"}",
        1.0,
    );
    has("consentry_sweeps_total{site=\"shop\"}", 1.0);
    has("consentry_invalid_cookies_total{site=\"shop\"}", 1.0);
    has("consentry_origin_errors_total{site=\"shop\",kind=\"connect\"}", 1.0);
    has("consentry_config_generation", 1.0);
    has("consentry_config_reloads_total{result=\"ok\"}", 1.0);
    has("consentry_config_reloads_total{result=\"failed\"}", 2.0);
    has("consentry_config_last_reload_failed", 1.0);
    has("consentry_audit_entries_dropped_total", 0.0);
    has("consentry_inventory_overflow_total{site=\"shop\"}", 0.0);
    // Every family is declared once, before its samples.
    for family in
        ["consentry_requests_total", "consentry_request_duration_seconds", "consentry_decisions_total"]
    {
        assert_eq!(text.matches(&format!("# TYPE {family} ")).count(), 1, "{family}");
    }
    admin.stop().await;
}

#[tokio::test]
async fn config_shows_generation_sites_policies_and_last_error() {
    let admin = Admin::start(snapshot(""), Account::default()).await;
    let config = admin.json("/config").await;
    assert_eq!(config["generation"], 1);
    assert_eq!(config["path"], "consentry.toml");
    assert!(config["loaded_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(config["last_reload_error"], serde_json::Value::Null);
    assert_eq!(config["sites"][0]["name"], "shop");
    assert_eq!(config["sites"][0]["hosts"][1], "www.shop.test");
    assert_eq!(config["sites"][0]["policy"], "p");
    assert_eq!(config["policies"][0]["mode"], "enforce");
    assert_eq!(config["policies"][0]["cookie_rules"], 2);
    assert_eq!(config["policies"][0]["categories"][1]["name"], "analytics");
    admin.state.store.fail("consentry.toml:3:1: unknown field".into());
    let config = admin.json("/config").await;
    assert_eq!(config["last_reload_error"], "consentry.toml:3:1: unknown field");
    assert_eq!(config["reloads"]["failed"], 1);
    assert_eq!(config["restart_needed"], serde_json::Value::Null);
    admin.state.store.set_restart_needed(Some("http 127.0.0.1:80 → 127.0.0.1:81".into()));
    assert_eq!(admin.json("/config").await["restart_needed"], "http 127.0.0.1:80 → 127.0.0.1:81");
    admin.stop().await;
}

#[tokio::test]
async fn inventory_lists_what_was_seen_and_counts_overflow() {
    let admin = Admin::start(snapshot("[limits]\nmax_inventory_entries = 3"), Account::default()).await;
    let site = admin.site();
    let account = &admin.state.account;
    let seen = [
        decision(Item::SetCookie, "_ga_1", "shop.test", &site, Some("analytics"), Action::Block),
        decision(
            Item::Script,
            "https://www.googletagmanager.com/gtag/js",
            "www.googletagmanager.com",
            &site,
            Some("analytics"),
            Action::Block,
        ),
        decision(Item::Script, "https://shop.test/app.js", "shop.test", &site, None, Action::Allow),
        decision(Item::RequestCookie, "legacy_tracker", "shop.test", &site, None, Action::Block),
        decision(Item::RequestCookie, "one_too_many", "shop.test", &site, None, Action::Block),
        decision(Item::RequestCookie, "two_too_many", "shop.test", &site, None, Action::Block),
    ];
    account.record(&site, &site.policy, "r1", &seen);
    account.record(&site, &site.policy, "r2", &seen[..1]);

    let inv = admin.json("/inventory?site=shop").await;
    assert_eq!(inv["site"], "shop");
    assert_eq!(inv["max_entries"], 3);
    assert_eq!(inv["overflow"], 2);
    let entries = inv["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{inv}");
    let ga = entries.iter().find(|e| e["name"] == "_ga_1").unwrap();
    assert_eq!(
        (ga["kind"].as_str(), ga["count"].as_u64(), ga["category"].as_str()),
        (Some("cookie"), Some(2), Some("analytics"))
    );
    let gtm = entries.iter().find(|e| e["kind"] == "resource").unwrap();
    assert_eq!(gtm["domain"], "www.googletagmanager.com");
    assert_eq!(gtm["category"], "analytics");
    let legacy = entries.iter().find(|e| e["name"] == "legacy_tracker").unwrap();
    assert_eq!(legacy["category"], "unclassified");
    assert!(legacy["first_seen"].as_str().unwrap().ends_with('Z'));

    let all = admin.json("/inventory").await;
    assert_eq!(all["sites"][0]["site"], "shop");
    assert_eq!(admin.get("/inventory?site=unknown").await.0, StatusCode::NOT_FOUND);

    let (_, _, text) = admin.get("/metrics").await;
    assert_eq!(sample(&text, "consentry_inventory_overflow_total{site=\"shop\"}"), Some(2.0));
    assert_eq!(sample(&text, "consentry_inventory_entries{site=\"shop\"}"), Some(3.0));
    admin.stop().await;
}

#[tokio::test]
async fn declaration_in_three_formats_escaped() {
    let admin = Admin::start(snapshot(""), Account::default()).await;
    let site = admin.site();
    admin.state.account.record(
        &site,
        &site.policy,
        "r1",
        &[
            decision(Item::SetCookie, "_ga_ABC", "shop.test", &site, Some("analytics"), Action::Allow),
            decision(
                Item::SetCookie,
                "<img src=x onerror=alert(1)>|x",
                "shop.test",
                &site,
                None,
                Action::Block,
            ),
        ],
    );

    let json = admin.json("/declaration?site=shop&format=json").await;
    let cats: Vec<&str> =
        json["categories"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(cats, ["necessary", "analytics", "advertising", "unclassified"]);
    assert_eq!(json["categories"][0]["legal_basis"], "Legitimate interest");
    assert_eq!(json["categories"][1]["legal_basis"], "Consent");
    assert_eq!(json["categories"][1]["cookies"][0]["name"], "_ga_*");
    assert_eq!(json["categories"][1]["cookies"][0]["duration"], "13 months");
    assert_eq!(json["categories"][1]["cookies"][0]["observed"]["count"], 1);
    assert_eq!(json["categories"][3]["cookies"][0]["name"], "<img src=x onerror=alert(1)>|x");
    // The default format is JSON and the only site is the default site.
    assert_eq!(admin.json("/declaration").await, json);

    let (status, headers, md) = admin.get("/declaration?site=shop&format=md").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/markdown; charset=utf-8");
    assert!(md.contains("| Cookie Name | Domain | Provider | Purpose | Legal Basis | Duration |"), "{md}");
    assert!(
        md.contains("| sessionid | shop.test | Shop | Keeps you signed in | Legitimate interest | Session |"),
        "{md}"
    );
    assert!(md.contains("\\<img src=x onerror=alert(1)\\>\\|x"), "{md}");
    assert!(md.match_indices('<').all(|(i, _)| md[..i].ends_with('\\')), "every < is escaped: {md}");

    let (status, headers, html) = admin.get("/declaration?site=shop&format=html").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(html.contains("<td>&lt;img src=x onerror=alert(1)&gt;|x</td>"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(html.contains("<p>Sign-in &amp; security</p>"), "{html}");

    assert_eq!(admin.get("/declaration?site=shop&format=pdf").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(admin.get("/declaration?site=nope").await.0, StatusCode::NOT_FOUND);
    admin.stop().await;
}

fn audit_lines(path: &Path) -> Vec<serde_json::Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn audit_levels() {
    for (level, expected) in
        [("off", vec![]), ("blocked", vec!["blocked"]), ("all", vec!["allowed", "blocked"])]
    {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let snap =
            snapshot(&format!("[audit]\nlevel = \"{level}\"\npath = {:?}", path.display().to_string()));
        let admin = Admin::start(snap, Account::default()).await;
        let site = admin.site();
        let account = &admin.state.account;
        account.record(
            &site,
            &site.policy,
            "req-1",
            &[
                decision(
                    Item::RequestCookie,
                    "allowed",
                    "shop.test",
                    &site,
                    Some("necessary"),
                    Action::Allow,
                ),
                decision(Item::SetCookie, "blocked", "shop.test", &site, Some("analytics"), Action::Block),
            ],
        );
        assert!(account.flush_audit(Duration::from_secs(10)));
        let lines = audit_lines(&path);
        let names: Vec<&str> = lines.iter().map(|l| l["name"].as_str().unwrap()).collect();
        assert_eq!(names, expected, "level {level}");
        if level == "off" {
            assert!(!path.exists(), "level off writes nothing");
        }
        if let Some(blocked) = lines.iter().find(|l| l["name"] == "blocked") {
            assert_eq!(blocked["site"], "shop");
            assert_eq!(blocked["request_id"], "req-1");
            assert_eq!(blocked["category"], "analytics");
            assert_eq!(blocked["action"], "block");
            assert_eq!(blocked["mode"], "enforce");
            assert_eq!(blocked["kind"], "cookie");
        }
        admin.stop().await;
    }
}

#[tokio::test]
async fn audit_report_only_mode_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let text = format!(
        "[listen]\nhttp = \"127.0.0.1:0\"\n[audit]\nlevel = \"all\"\npath = {:?}\n{}",
        path.display().to_string(),
        POLICY.replace("[policy.p]\n", "[policy.p]\nmode = \"report-only\"\n")
    );
    let snap = Snapshot::compile(&Source { path: PathBuf::from("c.toml"), text }, 1).unwrap();
    let admin = Admin::start(snap, Account::default()).await;
    let site = admin.site();
    admin.state.account.record(
        &site,
        &site.policy,
        "r",
        &[decision(Item::SetCookie, "_ga_1", "shop.test", &site, Some("analytics"), Action::Block)],
    );
    assert!(admin.state.account.flush_audit(Duration::from_secs(10)));
    let lines = audit_lines(&path);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["mode"], "report-only");
    assert_eq!(lines[0]["action"], "block");
    admin.stop().await;
}

#[tokio::test]
async fn audit_rotation_keeps_n_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let snap = snapshot(&format!(
        "[audit]\nlevel = \"all\"\npath = {:?}\nmax_bytes = 1000\nkeep = 2",
        path.display().to_string()
    ));
    let admin = Admin::start(snap, Account::default()).await;
    let site = admin.site();
    let account = &admin.state.account;
    for i in 0..60 {
        account.record(
            &site,
            &site.policy,
            &format!("req-{i}"),
            &[decision(Item::SetCookie, "_ga_1", "shop.test", &site, Some("analytics"), Action::Block)],
        );
        // Keep the backlog small so nothing is dropped and every file fills.
        assert!(account.flush_audit(Duration::from_secs(10)));
    }
    assert_eq!(account.audit().dropped(), 0);
    assert_eq!(account.audit().written(), 60);
    let files = [path.clone(), rotated(&path, 1), rotated(&path, 2)];
    let mut ids = Vec::new();
    for file in &files {
        let size = std::fs::metadata(file).unwrap().len();
        assert!(size <= 1000, "{} is {size} bytes", file.display());
        for line in audit_lines(file) {
            ids.push(line["request_id"].as_str().unwrap().trim_start_matches("req-").parse::<u32>().unwrap());
        }
    }
    assert!(!rotated(&path, 3).exists(), "only `keep` old files");
    // The three files hold the newest entries, contiguous and in order.
    let mut sorted_files: Vec<u32> = Vec::new();
    for file in files.iter().rev() {
        sorted_files.extend(
            audit_lines(file).iter().map(|l| {
                l["request_id"].as_str().unwrap().trim_start_matches("req-").parse::<u32>().unwrap()
            }),
        );
    }
    let newest: Vec<u32> = ((60 - sorted_files.len() as u32)..60).collect();
    assert_eq!(sorted_files, newest);
    assert!(ids.len() < 60, "old entries were rotated away");
    admin.stop().await;
}

/// A sink that blocks every write until the gate opens: a disk or pipe that
/// cannot keep up.
#[derive(Clone, Default)]
struct Gate {
    state: Arc<(Mutex<GateState>, Condvar)>,
}

/// Whether writes may proceed, and what was written.
type GateState = (bool, Vec<u8>);

impl Gate {
    fn open(&self) {
        let (lock, cvar) = &*self.state;
        lock.lock().unwrap().0 = true;
        cvar.notify_all();
    }

    fn text(&self) -> String {
        String::from_utf8(self.state.0.lock().unwrap().1.clone()).unwrap()
    }
}

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (lock, cvar) = &*self.state;
        let mut state = cvar.wait_while(lock.lock().unwrap(), |(open, _)| !*open).unwrap();
        state.1.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_stuck_audit_sink_drops_and_never_blocks_record() {
    const REQUESTS: u64 = 2_000;
    const CAPACITY: usize = 8;
    let gate = Gate::default();
    let account = Account::new(AuditLog::with_writer(Level::All, Box::new(gate.clone()), CAPACITY), 100);
    // `with_writer` keeps its sink; the snapshot's `[audit]` (level off)
    // would otherwise turn it off.
    let admin = Admin::start(snapshot("[audit]\nlevel = \"all\""), account).await;
    let site = admin.site();
    let state = admin.state.clone();

    // Record from a plain thread; if `record` ever blocked on the stuck sink
    // this thread would never report back.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for i in 0..REQUESTS {
            state.account.record(
                &site,
                &site.policy,
                &format!("req-{i}"),
                &[
                    decision(Item::SetCookie, "_ga_1", "shop.test", &site, Some("analytics"), Action::Block),
                    decision(
                        Item::RequestCookie,
                        "sid",
                        "shop.test",
                        &site,
                        Some("necessary"),
                        Action::Allow,
                    ),
                ],
            );
        }
        done_tx.send(()).unwrap();
    });
    done_rx.recv_timeout(Duration::from_secs(120)).expect("record blocked on a stuck audit sink");

    let account = &admin.state.account;
    let dropped = account.audit().dropped();
    // At most the backlog plus the batch stuck in the writer got through.
    assert!(dropped >= 2 * (REQUESTS - CAPACITY as u64 - 1), "dropped {dropped}");
    assert_eq!(account.audit().written(), 0);
    let (_, _, text) = admin.get("/metrics").await;
    assert_eq!(sample(&text, "consentry_audit_entries_dropped_total"), Some(dropped as f64));

    // Once the sink recovers, what was queued is written and accounted for.
    gate.open();
    assert!(account.flush_audit(Duration::from_secs(30)));
    let written = account.audit().written();
    assert_eq!(written + dropped, 2 * REQUESTS);
    assert_eq!(gate.text().lines().count() as u64, written);
    admin.stop().await;
}

#[tokio::test]
async fn serve_stops_on_shutdown() {
    let admin = Admin::start(snapshot(""), Account::default()).await;
    let addr = admin.addr;
    admin.stop().await;
    assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed after shutdown");
}
