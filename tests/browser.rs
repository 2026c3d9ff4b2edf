//! The consent loop in a real browser (issue 6): headless Chromium, driven
//! over the DevTools protocol ([`cdp`]), visits the demo site through
//! consentry, and what it holds and runs is read back from the browser
//! itself.
//!
//! The set-up is what `consentry demo` serves, with the third-party tracker
//! of the docker-compose demo: the shipped `config/demo.toml` (listen
//! address, host and origin swapped for loopback ones; a receipts file and
//! the tracker's rules added), the demo origin (`consentry::demo`) on
//! `127.0.0.1:0`, and the demo tracker's script served by a second server.
//! Chromium's resolver sends `shop.test` (the site) and `tracker.test` (the
//! third party) to those loopback ports, so URLs carry no port, as in
//! production (CSP host sources depend on it), and makes every other name
//! fail at once, so the real services the demo page names (Google, Meta,
//! HubSpot...) are never contacted.
//!
//! | test | what the browser shows |
//! |---|---|
//! | [`accept_all_then_refuse_analytics`] | banner shown with focus in it; before consent the tracker did not run or even load and the jar holds no optional cookie; "Accept all" runs it in place and the next response sets analytics and advertising cookies; "Manage my cookies" → refuse analytics deletes every analytics cookie, HttpOnly included; receipts |
//! | [`refuse_all`] | Escape is no choice; "Refuse all" closes in place, focus on "Manage my cookies"; nothing optional is set or fetched afterwards |
//! | [`keyboard_only`] | Tab / Shift+Tab stay in the dialog, focus ring visible, Enter opens "Customise", Space ticks a category, Enter saves, focus returns to "Manage my cookies"; Escape and the close button close it again |
//! | [`without_javascript`] | the plain form: POST, 303 back to the page, consent cookie set; "Manage my cookies" and "Customise" are links to `/.consentry/preferences`, whose form's withdrawal sweeps the HttpOnly cookie too and returns to the page |
//! | [`with_a_content_security_policy`] | with `[policy.demo.csp]`: the banner runs by its nonce, a tracker injected later by script is refused by the browser, "Accept all" reloads under a CSP that lets it and the page's inline tags run, no violation |
//! | [`under_the_origin_s_own_strict_csp`] | the origin sends a strict nonce/`'strict-dynamic'` CSP allowing none of consentry's paths: banner.js runs, banner.css applies, Customise fetches the preferences page and "Accept all" posts, with no violation for `/.consentry/` (fails without the CSP rewrite) |
//! | [`a_new_policy_revision_asks_again`] | after the policy's `revision` is raised (hot reload), the banner asks again, nothing optional runs and the cookies allowed before are deleted; the new choice's receipt names the new revision |
//! | [`over_https`] | the same loop on HTTPS: the consent cookie is `Secure`, a `Secure; SameSite=None` analytics cookie is set and then swept |
//! | [`screenshots`] | the banner, first visit and "Customise" open, and the page after a choice, saved under `test-artifacts/browser/`: desktop 1280×900; phone 390×844 on the demo page (no `<meta name="viewport">`, so shown zoomed out), with and without JavaScript, and on the same page made for phones, in English and German; layout checked in screen pixels |
//!
//! Every test also fails on an uncaught JavaScript exception in the page.
//!
//! Each test starts its own Chromium with a fresh profile. Without
//! `/usr/bin/chromium` (or the binary `CONSENTRY_CHROMIUM` names) the tests
//! print a notice and pass: `.ci/run` installs Debian's `chromium`.

#[path = "browser/cdp.rs"]
mod cdp;
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cdp::{Cdp, Chromium, Cookie, Key, Page, WAIT};
use common::{Origin, origin, within};
use consentry::server::Running;
use serde_json::{Value, json};

/// What the tests add to `config/demo.toml` (whose receipts they move into
/// the test's directory): the tracker's host (`TRACKER`) and cookie, as `config/compose.toml` declares
/// them.
const ADDED_CONFIG: &str = r#"

[[policy.demo.resource]]
match = "TRACKER"
category = "analytics"
provider = "Demo Tracker"

[[policy.demo.cookie]]
name = "_demo_trk"
category = "analytics"
provider = "Demo Tracker"
purpose = "Counts visits (set by the demo tracker's script)"
duration = "1 year"
"#;

/// The Chromium to drive, or `None` (with a notice) when there is none.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CONSENTRY_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if path.exists() {
        Some(path)
    } else {
        // CI installs Chromium first (.ci/run) and sets this, so that a
        // failed install fails the tests instead of skipping them.
        assert!(
            std::env::var_os("CONSENTRY_REQUIRE_BROWSER").is_none_or(|v| v.is_empty() || v == "0"),
            "CONSENTRY_REQUIRE_BROWSER is set but {} does not exist",
            path.display()
        );
        eprintln!(
            "NOTICE: skipping the browser test: {} not found (apt-get install chromium, or set CONSENTRY_CHROMIUM)",
            path.display()
        );
        None
    }
}

/// The demo tracker's server, remembering every path it was asked for.
struct Tracker {
    server: Origin,
    paths: Arc<Mutex<Vec<String>>>,
}

impl Tracker {
    async fn start() -> Tracker {
        let paths: Arc<Mutex<Vec<String>>> = Arc::default();
        let hits = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = paths.clone();
        let server = origin()
            .fallback_fn(move |request| {
                seen.lock().unwrap().push(request.uri().path().to_string());
                let response = consentry::demo::respond_tracker(&request, &hits);
                async move { response }
            })
            .run()
            .await;
        Tracker { server, paths }
    }

    /// How many requests for `path` it has answered.
    fn count(&self, path: &str) -> usize {
        self.paths.lock().unwrap().iter().filter(|p| *p == path).count()
    }

    fn all(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

/// consentry running `config/demo.toml` in front of the demo origin, whose
/// home page loads the tracker from `tracker.test`.
struct Shop {
    setup: Setup,
    running: Running,
    tracker: Tracker,
    receipts: PathBuf,
    config: PathBuf,
    _origin: OriginServer,
    _cert: Option<common::TestCert>,
    _dir: tempfile::TempDir,
}

/// The origin behind a [`Shop`], kept alive as long as it.
enum OriginServer {
    Demo(tokio::task::JoinHandle<()>),
    Harness { _server: Origin },
}

impl Drop for OriginServer {
    fn drop(&mut self) {
        if let OriginServer::Demo(task) = self {
            task.abort();
        }
    }
}

/// How a [`Shop`] is set up.
#[derive(Debug, Clone, Copy)]
struct Setup {
    /// The site's host name (Chromium maps it to the proxy's port, so
    /// URLs carry no port, as in production).
    site: &'static str,
    /// The tracker's host name.
    tracker: &'static str,
    /// Serve the demo's home page made for phones (`<meta name="viewport">`),
    /// as newer sites are, instead of the demo origin.
    responsive: bool,
    /// More TOML appended to the config.
    config: &'static str,
    /// Serve the site over HTTPS (a self-signed certificate Chromium is
    /// told to accept) instead of plain HTTP.
    https: bool,
    /// The origin's own `Content-Security-Policy` on its home page.
    origin_csp: Option<&'static str>,
}

/// The demo site as `consentry demo` serves it.
const DEMO: Setup = Setup {
    site: "shop.test",
    tracker: "tracker.test",
    responsive: false,
    config: "",
    https: false,
    origin_csp: None,
};

impl Shop {
    async fn start(setup: Setup) -> Shop {
        let tracker = Tracker::start().await;
        let tracker_url = format!("http://{}/tracker.js", setup.tracker);
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (origin, server) = if setup.responsive || setup.origin_csp.is_some() {
            let mut page = consentry::demo::home_page(Some(&tracker_url)).into_owned();
            if setup.responsive {
                page = page.replacen(
                    "<meta charset=\"utf-8\">",
                    "<meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
                    1,
                );
            }
            let csp = setup.origin_csp;
            let server = origin()
                .route_fn("/", move |_| {
                    let mut response = http::Response::new(consentry::body::full(page.clone()));
                    response
                        .headers_mut()
                        .insert("content-type", "text/html; charset=utf-8".parse().unwrap());
                    if let Some(csp) = csp {
                        response.headers_mut().insert("content-security-policy", csp.parse().unwrap());
                    }
                    async move { response }
                })
                .fallback_fn(|request| async move { consentry::demo::respond(&request) })
                .run()
                .await;
            (server.addr, OriginServer::Harness { _server: server })
        } else {
            let (addr, task) = consentry::demo::spawn_origin_with(any, Some(tracker_url)).await.unwrap();
            (addr, OriginServer::Demo(task))
        };
        let mut config = consentry::demo::DEMO_CONFIG.to_string();
        let origin_line = format!("origin = \"http://{origin}\"");
        let hosts_line = format!("hosts = [\"{}\"]", setup.site);
        let cert = setup.https.then(|| common::test_cert(&[setup.site]));
        let listen = match &cert {
            Some(c) => format!(
                "http = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}",
                c.cert_path, c.key_path
            ),
            None => "http = \"127.0.0.1:0\"".to_string(),
        };
        for (from, to) in [
            ("http = \"127.0.0.1:8080\"", listen.as_str()),
            ("hosts = [\"localhost\", \"127.0.0.1\"]", hosts_line.as_str()),
            ("origin = \"http://127.0.0.1:8081\"", origin_line.as_str()),
            ("path = \"demo-receipts.jsonl\"", "path = \"receipts.jsonl\""),
        ] {
            assert!(config.contains(from), "config/demo.toml no longer has {from}");
            config = config.replacen(from, to, 1);
        }
        config.push_str(&ADDED_CONFIG.replace("TRACKER", setup.tracker));
        config.push_str(setup.config);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.toml");
        std::fs::write(&path, &config).unwrap();
        let running = consentry::server::start(&path).await.unwrap_or_else(|e| panic!("{e}\n{config}"));
        Shop {
            setup,
            running,
            tracker,
            receipts: dir.path().join("receipts.jsonl"),
            config: path,
            _origin: server,
            _cert: cert,
            _dir: dir,
        }
    }

    /// Edits the config file (`from` → `to`, once) and reloads it, as a
    /// save does under `consentry run`.
    fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        assert!(text.contains(from), "{from} not in the config");
        std::fs::write(&self.config, text.replacen(from, to, 1)).unwrap();
        consentry::reload::reload_now(&self.running.store, &self.config).unwrap();
    }

    /// `http(s)://SITE{path}`.
    fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", if self.setup.https { "https" } else { "http" }, self.setup.site)
    }

    /// `--host-resolver-rules` entries sending the site's and the tracker's
    /// names (any port) to their loopback servers.
    fn resolver_rules(&self) -> String {
        format!(
            "MAP {} {}, MAP {} {}",
            self.setup.site,
            if self.setup.https { self.running.https_addr } else { self.running.http_addr }.unwrap(),
            self.setup.tracker,
            self.tracker.server.addr
        )
    }

    /// The category the site's policy gives a cookie (`unclassified` when
    /// no rule names it).
    fn category(&self, cookie: &str) -> String {
        let snapshot = self.running.store.load();
        let site = snapshot.router.route(self.setup.site).unwrap();
        match site.policy.classify_cookie(cookie, self.setup.site).0 {
            Some(id) => site.policy.categories.name(id).to_string(),
            None => "unclassified".to_string(),
        }
    }

    /// `name (category)` of every cookie in `jar` whose category is one
    /// of `categories`.
    fn in_categories(&self, jar: &[Cookie], categories: &[&str]) -> Vec<String> {
        jar.iter()
            .map(|c| (c.name.clone(), self.category(&c.name)))
            .filter(|(_, category)| categories.contains(&category.as_str()))
            .map(|(name, category)| format!("{name} ({category})"))
            .collect()
    }

    /// The URLs among `urls` that the site's policy does not let a
    /// visitor without consent load: neither the site's own nor of a
    /// `necessary` resource rule.
    fn optional_requests(&self, urls: &[String]) -> Vec<String> {
        let snapshot = self.running.store.load();
        let site = snapshot.router.route(self.setup.site).unwrap();
        urls.iter()
            .filter(|u| {
                let url = url::Url::parse(u).unwrap();
                let host = url.host_str().unwrap_or_default();
                let necessary = site
                    .policy
                    .resources
                    .classify_url(host, url.path())
                    .is_some_and(|r| r.category == consentry::category::CategoryId::NECESSARY);
                !(site.is_first_party(host) || necessary)
            })
            .cloned()
            .collect()
    }

    /// The receipts written so far, after checking the file with
    /// `receipts::verify`.
    fn receipts(&self) -> Vec<Value> {
        let report = consentry::receipts::verify(&self.receipts).unwrap();
        assert!(report.is_ok(), "{report}");
        let text = std::fs::read_to_string(&self.receipts).unwrap();
        let receipts: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(report.receipts, receipts.len() as u64, "{report}");
        receipts
    }
}

/// A browser on shops of its own.
struct Visit {
    shops: Vec<Shop>,
    cdp: Cdp,
    _browser: Chromium,
}

impl Visit {
    /// Starts the shops, then a browser that reaches them by name and
    /// nothing else.
    async fn start(binary: &Path, setups: &[Setup]) -> Visit {
        let mut shops = Vec::new();
        for setup in setups {
            shops.push(Shop::start(*setup).await);
        }
        let mut rules: Vec<String> = shops.iter().map(Shop::resolver_rules).collect();
        rules.push("MAP * ~NOTFOUND".into());
        let browser = Chromium::launch(binary, &rules.join(", "));
        let cdp = Cdp::connect(&browser.ws_url).await;
        Visit { shops, cdp, _browser: browser }
    }

    /// The first shop.
    fn shop(&self) -> &Shop {
        &self.shops[0]
    }

    async fn jar(&self) -> Vec<Cookie> {
        self.cdp.cookies().await
    }

    /// The jar, once `condition` holds of it (read again until then).
    async fn jar_once(&self, what: &str, condition: impl Fn(&[Cookie]) -> bool) -> Vec<Cookie> {
        let deadline = Instant::now() + WAIT;
        loop {
            let jar = self.jar().await;
            if condition(&jar) {
                return jar;
            }
            assert!(Instant::now() < deadline, "waited {WAIT:?} for {what}: {jar:#?}");
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }
}

fn names(jar: &[Cookie]) -> Vec<&str> {
    jar.iter().map(|c| c.name.as_str()).collect()
}

fn cookie<'j>(jar: &'j [Cookie], name: &str) -> Option<&'j Cookie> {
    jar.iter().find(|c| c.name == name)
}

/// Waits (in the test, not the page) until `condition` holds.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "waited {WAIT:?} for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

const DIALOG_SHOWN: &str = "document.getElementById('consentry-dialog').checkVisibility()";
/// Hidden, or not in the page at all (with valid consent only "Manage my
/// cookies" is injected).
const DIALOG_HIDDEN: &str = "!document.getElementById('consentry-dialog')?.checkVisibility()";
const DIALOG_ABSENT: &str = "document.getElementById('consentry-dialog') === null";
const TRACKER_RAN: &str = "document.getElementById('demo-tracker-ran') !== null";
const TRACKER_SCRIPT_TYPE: &str = "document.querySelector('script[src*=\"tracker.test\"]').type";

/// The cookies the demo origin sets, by category (the first-party cookie
/// the tracker's script sets is added where it applies).
const ANALYTICS: &[&str] = &["_ga", "_ga_DEMO1234", "__hstc", "hubspotutk", "visitor_stats"];
const ADVERTISING: &[&str] = &["_fbp", "_gcl_au"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_all_then_refuse_analytics() {
    let Some(binary) = chromium() else { return };
    within(async {
        let visit = Visit::start(&binary, &[DEMO]).await;
        let shop = visit.shop();
        let page = visit.cdp.new_page().await;
        page.record_network().await;
        page.goto(&shop.url("/")).await;

        // 1. The banner shows, as a modal dialog with focus inside.
        page.wait_for("the banner to show", DIALOG_SHOWN).await;
        let dialog = page
            .eval(
                "(() => { const d = document.getElementById('consentry-dialog'); \
                 return [d.getAttribute('role'), d.getAttribute('aria-modal'), d.contains(document.activeElement)]; })()",
            )
            .await;
        assert_eq!(dialog, json!(["dialog", "true", true]), "role, aria-modal, focus inside");

        // 2. Before consent: the tracker's script is inert and was not even
        // fetched (the load event has fired, so an async script would have
        // run), and the jar holds no optional cookie, HttpOnly included.
        assert_eq!(page.eval(TRACKER_RAN).await, json!(false));
        assert_eq!(page.eval(TRACKER_SCRIPT_TYPE).await, json!("text/plain"));
        assert_eq!(shop.tracker.all(), Vec::<String>::new(), "the tracker was contacted before consent");
        // Nor was any other optional third party (Google, Meta, HubSpot,
        // YouTube): only the site and necessary services (Stripe).
        let requested = page.requested();
        assert!(requested.iter().any(|u| u.starts_with("https://js.stripe.com/")), "{requested:#?}");
        assert_eq!(shop.optional_requests(&requested), Vec::<String>::new(), "requested before consent");
        let jar = visit.jar().await;
        assert_eq!(
            shop.in_categories(&jar, &["functional", "analytics", "advertising", "unclassified"]),
            Vec::<String>::new(),
            "optional cookies before consent: {jar:#?}"
        );
        // The jar is really read, HttpOnly cookies included.
        assert!(cookie(&jar, "sessionid").is_some_and(|c| c.http_only), "{jar:#?}");

        // 3. Accept all: the tracker runs in place (no reload; the page has
        // no CSP) and reports home; the next response sets the cookies.
        let before = page.mark_document().await;
        page.click("#consentry-accept-all").await;
        page.wait_for("the tracker to run", TRACKER_RAN).await;
        page.wait_for("the banner to close", DIALOG_HIDDEN).await;
        assert_eq!(
            page.eval(&format!("document.documentElement.dataset.cdpMark === '{before}'")).await,
            json!(true),
            "Accept all revives in place, without a reload"
        );
        eventually("the tracker's beacon", || shop.tracker.count("/collect") == 1).await;
        // The other tags were revived too (their hosts do not resolve here).
        let optional = shop.optional_requests(&page.requested());
        for tag in ["http://tracker.test/tracker.js", "https://www.googletagmanager.com/gtag/js?id=G-DEMO1234"] {
            assert!(optional.iter().any(|u| u == tag), "{tag} not requested after Accept all: {optional:#?}");
        }
        // The tracker sets its cookie from script (see `jar_once`).
        let jar = visit
            .jar_once("the tracker's cookie", |jar| cookie(jar, consentry::demo::TRACKER_COOKIE).is_some())
            .await;
        assert!(cookie(&jar, "consentry").is_some(), "no consent cookie: {jar:#?}");
        page.reload().await;
        let jar = visit.jar().await;
        for name in ANALYTICS.iter().chain(ADVERTISING).chain(&["lang", consentry::demo::TRACKER_COOKIE]) {
            assert!(cookie(&jar, name).is_some(), "{name} not set after Accept all: {:?}", names(&jar));
        }
        assert!(cookie(&jar, "visitor_stats").unwrap().http_only, "visitor_stats is HttpOnly");
        assert_eq!(cookie(&jar, "legacy_visitor"), None, "an undeclared cookie stays blocked");
        // With consent the page is served as it is: no dialog injected,
        // only the "Manage my cookies" control, the tracker runs on load.
        assert_eq!(page.eval(DIALOG_ABSENT).await, json!(true), "the dialog is injected with valid consent");
        assert_eq!(page.eval("document.getElementById('consentry-manage').checkVisibility()").await, json!(true));
        assert_eq!(page.eval(TRACKER_RAN).await, json!(true));
        assert_eq!(page.eval(TRACKER_SCRIPT_TYPE).await, json!(""));

        // gtag.js sets its cookies on the site's domain, not host-only.
        page.eval("document.cookie = '_gid=GA1.1.42.42; domain=shop.test; path=/; max-age=86400'").await;
        // The renderer hands a `document.cookie` write to the cookie store
        // without waiting, so the browser's jar may not hold it yet.
        let jar = visit.jar_once("_gid to reach the jar", |jar| cookie(jar, "_gid").is_some()).await;
        assert_eq!(cookie(&jar, "_gid").map(|c| c.domain.as_str()), Some(".shop.test"), "{jar:#?}");

        // 4. Manage my cookies → Customise → analytics off → Save: the page
        // reloads and every analytics cookie is gone, HttpOnly and domain
        // ones included (deleted by the consent response's sweep: no
        // script can delete an HttpOnly cookie).
        page.click("#consentry-manage").await;
        page.wait_for("the dialog to reopen", DIALOG_SHOWN).await;
        page.click("#consentry-customise").await;
        page.wait_for("Customise to open", "document.getElementById('consentry-prefs').open").await;
        let analytics = "document.getElementById('consentry-cat-analytics-box')";
        assert_eq!(page.eval(&format!("{analytics}.checked")).await, json!(true), "the switch shows the choice");
        page.click("#consentry-cat-analytics-box").await;
        assert_eq!(page.eval(&format!("{analytics}.checked")).await, json!(false));
        let scripts_before = shop.tracker.count("/tracker.js");
        let token = page.mark_document().await;
        page.click("#consentry-save").await;
        page.wait_for_new_document(&token).await;
        let jar = visit.jar().await;
        assert_eq!(
            shop.in_categories(&jar, &["analytics"]),
            Vec::<String>::new(),
            "analytics cookies left after refusing analytics"
        );
        for name in ADVERTISING.iter().chain(&["lang", "sessionid", "consentry"]) {
            assert!(cookie(&jar, name).is_some(), "{name} should stay: {:?}", names(&jar));
        }
        assert_eq!(page.eval(TRACKER_RAN).await, json!(false), "the tracker is blocked again");
        assert_eq!(page.eval(TRACKER_SCRIPT_TYPE).await, json!("text/plain"));
        assert_eq!(shop.tracker.count("/tracker.js"), scripts_before, "the tracker was fetched after refusal");

        // 7. One receipt per choice, and the file verifies.
        let receipts = shop.receipts();
        assert_eq!(receipts.len(), 2, "{receipts:#?}");
        assert_eq!(receipts[0]["choice"], "accept-all");
        assert_eq!(receipts[0]["granted"], json!(["necessary", "functional", "analytics", "advertising"]));
        assert_eq!(receipts[1]["choice"], "custom");
        assert_eq!(receipts[1]["granted"], json!(["necessary", "functional", "advertising"]));
        assert_eq!(receipts[1]["refused"], json!(["analytics"]));
        for r in &receipts {
            assert_eq!(r["method"], "banner");
            assert_eq!(r["site"], "demo");
            assert!(r["user_agent"].as_str().is_some_and(|ua| ua.contains("Chrome")), "{r}");
            assert_eq!(r["ip"], "127.0.0.0/24");
        }
        assert_eq!(page.exceptions(), Vec::<String>::new(), "uncaught exceptions in the page");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_all() {
    let Some(binary) = chromium() else { return };
    within(async {
        let visit = Visit::start(&binary, &[DEMO]).await;
        let shop = visit.shop();
        let page = visit.cdp.new_page().await;
        page.record_network().await;
        page.goto(&shop.url("/")).await;
        page.wait_for("the banner to show", DIALOG_SHOWN).await;
        // The banner adds one global to the page, `consentry` (a blank
        // frame's globals are the browser's own; numbered ones are the
        // page's frames).
        let globals = page
            .eval(
                "(() => { const f = document.createElement('iframe'); document.body.appendChild(f); \
                 const own = new Set(Object.getOwnPropertyNames(f.contentWindow)); f.remove(); \
                 return Object.getOwnPropertyNames(window).filter(k => !own.has(k) && !/^\\d+$/.test(k)); })()",
            )
            .await;
        assert_eq!(globals, json!(["consentry"]), "globals the page gained");
        // Escape is not a choice: the dialog stays until one is made.
        page.press(Key::Escape).await;
        assert_eq!(page.eval(DIALOG_SHOWN).await, json!(true), "Escape closed the dialog before a choice");

        let before = page.mark_document().await;
        page.click("#consentry-refuse-all").await;
        page.wait_for("the banner to close", DIALOG_HIDDEN).await;
        page.wait_for("focus on Manage my cookies", "document.activeElement.id === 'consentry-manage'").await;
        assert_eq!(
            page.eval(&format!("document.documentElement.dataset.cdpMark === '{before}'")).await,
            json!(true),
            "refusing on a first visit needs no reload"
        );
        page.reload().await;
        assert_eq!(page.eval(DIALOG_ABSENT).await, json!(true), "the banner does not ask again");
        let jar = visit.jar().await;
        assert!(cookie(&jar, "consentry").is_some(), "{:?}", names(&jar));
        assert_eq!(
            shop.in_categories(&jar, &["functional", "analytics", "advertising", "unclassified"]),
            Vec::<String>::new()
        );
        assert_eq!(page.eval(TRACKER_RAN).await, json!(false));
        assert_eq!(shop.tracker.all(), Vec::<String>::new(), "the tracker was contacted after Refuse all");
        assert_eq!(
            shop.optional_requests(&page.requested()),
            Vec::<String>::new(),
            "requested after Refuse all"
        );
        let receipts = shop.receipts();
        assert_eq!(receipts.len(), 1);
        assert_eq!(receipts[0]["choice"], "refuse-all");
        assert_eq!(receipts[0]["granted"], json!(["necessary"]));
        assert_eq!(receipts[0]["refused"], json!(["functional", "analytics", "advertising"]));
        assert_eq!(page.exceptions(), Vec::<String>::new(), "uncaught exceptions in the page");
    })
    .await;
}

/// Tabs until `id` has focus (at most `limit` presses), returning the ids
/// focused on the way.
async fn tab_to(page: &Page<'_>, id: &str, limit: usize) -> Vec<String> {
    let mut path = Vec::new();
    for _ in 0..limit {
        page.press(Key::Tab).await;
        let at = page.focused().await;
        path.push(at.clone());
        if at == id {
            return path;
        }
    }
    panic!("{id} not reached with Tab; focus went {path:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_only() {
    let Some(binary) = chromium() else { return };
    within(async {
        let visit = Visit::start(&binary, &[DEMO]).await;
        let shop = visit.shop();
        let page = visit.cdp.new_page().await;
        page.goto(&shop.url("/")).await;
        page.wait_for("the banner to show", DIALOG_SHOWN).await;
        assert_eq!(page.focused().await, "consentry-dialog", "focus moves into the dialog");

        // Tab walks the dialog's controls in order and wraps around: the
        // page behind the modal is out of reach.
        let first_round = tab_to(&page, "consentry-customise", 6).await;
        assert_eq!(
            first_round[1..],
            ["consentry-refuse-all", "consentry-accept-all", "consentry-customise"],
            "{first_round:?}"
        );
        page.press(Key::Tab).await;
        let first = page.focused().await;
        assert_eq!(first, first_round[0], "Tab from the last control wraps to the first");
        assert_eq!(
            page.eval("document.activeElement.getAttribute('href')").await,
            json!("/privacy"),
            "the first control is the cookie policy link"
        );
        page.press(Key::ShiftTab).await;
        assert_eq!(page.focused().await, "consentry-customise", "Shift+Tab from the first wraps to the last");
        // Focus is visible: the banner's own 3px ring, whatever the page's
        // stylesheet says.
        let ring = page
            .eval(
                "(() => { const a = document.activeElement, s = getComputedStyle(a); \
                 return [a.matches(':focus-visible'), s.outlineStyle, s.outlineWidth]; })()",
            )
            .await;
        assert_eq!(ring, json!([true, "solid", "3px"]));

        // Enter opens Customise; Space ticks analytics; Enter on Save.
        page.press(Key::Enter).await;
        page.wait_for("Customise to open", "document.getElementById('consentry-prefs').open").await;
        tab_to(&page, "consentry-cat-analytics-box", 12).await;
        page.press(Key::Space).await;
        let analytics = "document.getElementById('consentry-cat-analytics-box').checked";
        assert_eq!(page.eval(analytics).await, json!(true), "Space ticks the switch");
        tab_to(&page, "consentry-save", 12).await;
        page.press(Key::Enter).await;

        // Saved: analytics revived in place, the dialog closed, focus back
        // on the control that reopens it.
        page.wait_for("the tracker to run", TRACKER_RAN).await;
        page.wait_for("the banner to close", DIALOG_HIDDEN).await;
        page.wait_for("focus to return", "document.activeElement.id === 'consentry-manage'").await;
        let receipts = shop.receipts();
        assert_eq!(receipts.len(), 1, "{receipts:#?}");
        assert_eq!(receipts[0]["choice"], "custom");
        assert_eq!(receipts[0]["granted"], json!(["necessary", "analytics"]));

        // Enter on "Manage my cookies" reopens it with focus inside, the
        // switch showing the choice; Escape closes without a new choice.
        page.press(Key::Enter).await;
        page.wait_for("the dialog to reopen", DIALOG_SHOWN).await;
        page.wait_for(
            "focus in the dialog",
            "document.getElementById('consentry-dialog').contains(document.activeElement)",
        )
        .await;
        assert_eq!(page.eval(analytics).await, json!(true));
        page.press(Key::Escape).await;
        page.wait_for("Escape to close", DIALOG_HIDDEN).await;
        assert_eq!(page.focused().await, "consentry-manage");

        // Once more, leaving through the close button with Space.
        page.press(Key::Enter).await;
        page.wait_for("the dialog to reopen", DIALOG_SHOWN).await;
        page.press(Key::ShiftTab).await;
        assert_eq!(page.focused().await, "consentry-close", "the close button is the last control");
        page.press(Key::Space).await;
        page.wait_for("the close button to close", DIALOG_HIDDEN).await;
        assert_eq!(page.focused().await, "consentry-manage");
        assert_eq!(shop.receipts().len(), 1, "closing is not a choice");

        // The choice holds on the next page: analytics cookies, no
        // advertising ones.
        page.reload().await;
        let jar = visit.jar().await;
        assert!(cookie(&jar, "visitor_stats").is_some(), "{:?}", names(&jar));
        assert_eq!(shop.in_categories(&jar, &["advertising", "functional"]), Vec::<String>::new());
        assert_eq!(page.exceptions(), Vec::<String>::new(), "uncaught exceptions in the page");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript() {
    let Some(binary) = chromium() else { return };
    within(async {
        let visit = Visit::start(&binary, &[DEMO]).await;
        let shop = visit.shop();
        let page = visit.cdp.new_page().await;
        page.javascript(false).await;
        page.record_network().await;
        page.goto(&shop.url("/")).await;
        page.wait_for("the banner to show", DIALOG_SHOWN).await;
        assert_eq!(
            page.eval("document.getElementById('consentry-root').classList.contains('consentry-js')").await,
            json!(false),
            "banner.js did not run"
        );

        // The <noscript> Meta pixel, shown without JavaScript, was
        // neutralised too: nothing optional was requested.
        assert_eq!(
            shop.optional_requests(&page.requested()),
            Vec::<String>::new(),
            "requested before consent"
        );

        // Accept all posts the form; the answer is 303 back to the page,
        // with the consent cookie.
        let token = page.mark_document().await;
        page.click("#consentry-accept-all").await;
        page.wait_for_new_document(&token).await;
        let consent_url = shop.url("/.consentry/consent");
        let post = page
            .wait_event("Network.requestWillBeSent", |p| {
                p["request"]["url"] == consent_url.as_str() && p["request"]["method"] == "POST"
            })
            .await;
        let body = post["request"]["postData"].as_str().unwrap_or_default().to_string();
        assert!(body.contains("choice=accept-all") && body.contains("return_to=%2F"), "{body}");
        let home = shop.url("/");
        let redirected = page
            .wait_event("Network.requestWillBeSent", |p| {
                p["request"]["url"] == home.as_str() && p["redirectResponse"]["status"] == 303
            })
            .await;
        assert_eq!(redirected["redirectResponse"]["url"], consent_url.as_str());
        let jar = visit.jar().await;
        assert!(cookie(&jar, "consentry").is_some(), "{:?}", names(&jar));
        for name in ANALYTICS.iter().chain(ADVERTISING) {
            assert!(cookie(&jar, name).is_some(), "{name} not set after Accept all: {:?}", names(&jar));
        }
        assert_eq!(page.eval(DIALOG_ABSENT).await, json!(true));
        assert_eq!(page.eval(TRACKER_SCRIPT_TYPE).await, json!(""), "served as it is now");

        // "Manage my cookies" is a link to the preferences page, which has
        // the whole dialog with Customise open; Save posts the switches and
        // the answer returns to the page.
        let token = page.mark_document().await;
        page.click("#consentry-manage").await;
        page.wait_for_new_document(&token).await;
        assert_eq!(page.eval("location.pathname").await, json!("/.consentry/preferences"));
        page.wait_for("the dialog to open without JavaScript", DIALOG_SHOWN).await;
        page.wait_for("Customise to be open", "document.getElementById('consentry-prefs').open").await;
        let analytics = "document.getElementById('consentry-cat-analytics-box').checked";
        assert_eq!(page.eval(analytics).await, json!(true), "the switch shows the choice");
        page.click("#consentry-cat-analytics-box").await;
        let token = page.mark_document().await;
        page.click("#consentry-save").await;
        page.wait_for_new_document(&token).await;
        assert_eq!(page.eval("location.pathname").await, json!("/"), "back on the page");
        let jar = visit.jar().await;
        assert_eq!(shop.in_categories(&jar, &["analytics"]), Vec::<String>::new(), "{:?}", names(&jar));
        assert!(cookie(&jar, "_fbp").is_some(), "{:?}", names(&jar));

        let receipts = shop.receipts();
        let choices: Vec<&Value> = receipts.iter().map(|r| &r["choice"]).collect();
        assert_eq!(choices, [&json!("accept-all"), &json!("custom")]);
        assert_eq!(receipts[1]["refused"], json!(["analytics"]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots() {
    let Some(binary) = chromium() else { return };
    within(async {
        let responsive =
            Setup { site: "mobile.test", tracker: "tracker.mobile.test", responsive: true, ..DEMO };
        let visit = Visit::start(&binary, &[DEMO, responsive]).await;
        let page = visit.cdp.new_page().await;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts/browser");
        // name, viewport, phone, JavaScript, Accept-Language, shop.
        let shots = [
            ("desktop", (1280, 900), false, true, "en-GB,en", &visit.shops[0]),
            // The demo page has no <meta name="viewport">, as legacy sites
            // do: a phone lays it out 980px wide and shows it zoomed out.
            ("mobile-legacy", (390, 844), true, true, "en-GB,en", &visit.shops[0]),
            ("mobile-legacy-nojs", (390, 844), true, false, "en-GB,en", &visit.shops[0]),
            ("mobile", (390, 844), true, true, "en-GB,en", &visit.shops[1]),
            // The longest built-in texts.
            ("mobile-de", (390, 844), true, true, "de-DE,de;q=0.9", &visit.shops[1]),
        ];
        page.record_network().await;
        for (name, (width, height), mobile, javascript, language, shop) in shots {
            page.viewport(width, height, mobile).await;
            page.javascript(javascript).await;
            page.call("Network.setExtraHTTPHeaders", json!({ "headers": { "Accept-Language": language } }))
                .await;
            page.goto(&shop.url("/")).await;
            page.wait_for("the banner to show", DIALOG_SHOWN).await;
            let lang = language.get(..2).unwrap();
            assert_eq!(page.eval("document.getElementById('consentry-root').lang").await, json!(lang));
            check_layout(&page, name, width).await;
            page.screenshot(&dir.join(format!("banner-{name}-first-visit.png"))).await;
            page.click("#consentry-customise").await;
            page.wait_for("Customise to open", "document.getElementById('consentry-prefs').open").await;
            check_layout(&page, name, width).await;
            page.screenshot(&dir.join(format!("banner-{name}-customise.png"))).await;
        }
        // After a choice, only "Manage my cookies" shows: as readable on
        // the zoomed-out legacy page as elsewhere.
        page.call("Network.setExtraHTTPHeaders", json!({ "headers": { "Accept-Language": "en-GB,en" } }))
            .await;
        for (name, (width, height), mobile) in
            [("desktop", (1280, 900), false), ("mobile-legacy", (390, 844), true)]
        {
            page.viewport(width, height, mobile).await;
            page.goto(&visit.shops[0].url("/")).await;
            page.wait_for("the banner to show", DIALOG_SHOWN).await;
            page.click("#consentry-refuse-all").await;
            page.wait_for("the banner to close", DIALOG_HIDDEN).await;
            page.screenshot(&dir.join(format!("banner-{name}-after-choice.png"))).await;
            let height = page
                .eval(
                    "Math.round(document.getElementById('consentry-manage').getBoundingClientRect().height \
                     * visualViewport.scale)",
                )
                .await;
            assert!(height.as_i64().unwrap() >= 30, "{name}: Manage my cookies is {height} screen px tall");
            // The next one starts from a first visit again.
            visit.cdp.call(None, "Storage.clearCookies", json!({})).await.unwrap();
        }
        assert_eq!(page.exceptions(), Vec::<String>::new(), "uncaught exceptions in the page");
        eprintln!("screenshots in {}", dir.display());
    })
    .await;
}

/// What a screenshot cannot be trusted to show on every run, measured in
/// screen pixels (a page without `<meta name="viewport">` is laid out
/// 980 px wide and shown zoomed out on a phone): the dialog lies inside
/// the visible area, its title is readable, its buttons are large enough
/// to tap, and "Accept all" and "Refuse all" have the same size.
async fn check_layout(page: &Page<'_>, name: &str, screen_width: u32) {
    // A phone fits a legacy page's 980 px layout to the screen only after
    // laying it out: measured before that, the zoom is applied to a layout
    // viewport still as narrow as the screen (CI once saw 155 of 390 px).
    page.wait_for(
        "the page to be fitted to the screen",
        &format!("Math.abs(visualViewport.scale * innerWidth - {screen_width}) < 2"),
    )
    .await;
    let layout = page
        .eval(
            "(() => { const v = visualViewport, k = v.scale; \
             const r = id => { const b = document.getElementById(id).getBoundingClientRect(); \
             return [b.left, b.top, b.right, b.bottom].map(x => Math.round(x * k)); }; \
             return { vw: Math.round(v.width * k), vh: Math.round(v.height * k), dialog: r('consentry-dialog'), \
             title: r('consentry-title'), accept: r('consentry-accept-all'), refuse: r('consentry-refuse-all') }; })()",
        )
        .await;
    let rect =
        |k: &str| -> Vec<i64> { layout[k].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect() };
    let (vw, vh) = (layout["vw"].as_i64().unwrap(), layout["vh"].as_i64().unwrap());
    let d = rect("dialog");
    assert!(
        d[0] >= 0 && d[1] >= 0 && d[2] <= vw && d[3] <= vh,
        "{name}: dialog {d:?} outside {vw}x{vh}: {layout}"
    );
    assert!(
        d[2] - d[0] >= vw.min(600) * 9 / 10,
        "{name}: dialog {d:?} is narrow on a {vw}px screen: {layout}"
    );
    let (accept, refuse, title) = (rect("accept"), rect("refuse"), rect("title"));
    let size = |r: &[i64]| (r[2] - r[0], r[3] - r[1]);
    let (a, r) = (size(&accept), size(&refuse));
    // Rounded screen pixels of fractional layout boxes: one apart at most.
    assert!(
        (a.0 - r.0).abs() <= 1 && (a.1 - r.1).abs() <= 1,
        "{name}: Accept all {a:?} and Refuse all {r:?} differ in size"
    );
    assert!(size(&accept).1 >= 44, "{name}: buttons {accept:?} are under 44 screen px tall: {layout}");
    assert!(size(&title).1 >= 24, "{name}: the title is {title:?}, too small to read: {layout}");
}

/// The `Content-Security-Policy` of the `n`th document response (0-based)
/// this tab received.
async fn document_csp(page: &Page<'_>, n: usize) -> String {
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let response = page
        .wait_event("Network.responseReceived", |p| {
            p["type"] == "Document" && seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == n
        })
        .await;
    let headers = response["response"]["headers"].as_object().cloned().unwrap_or_default();
    headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-security-policy"))
        .and_then(|(_, v)| v.as_str())
        .unwrap_or_default()
        .to_string()
}

/// Adds a script element loading `url`, as a tag manager does after the
/// page has loaded (which no HTML rewriting can see).
fn inject_script(url: &str) -> String {
    format!(
        "(() => {{ const s = document.createElement('script'); s.src = {url:?}; \
         document.head.appendChild(s); return true; }})()"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_content_security_policy() {
    let Some(binary) = chromium() else { return };
    within(async {
        const CSP: Setup = Setup { config: "\n[policy.demo.csp]\nmode = \"enforce\"\n", ..DEMO };
        let visit = Visit::start(&binary, &[CSP]).await;
        let shop = visit.shop();
        let page = visit.cdp.new_page().await;
        page.init_script(
            "window.__violations = []; document.addEventListener('securitypolicyviolation', \
             e => window.__violations.push(e.effectiveDirective + ' ' + e.blockedURI));",
        )
        .await;
        page.record_network().await;
        page.goto(&shop.url("/")).await;

        // The banner works under the CSP: its script runs by its nonce.
        page.wait_for("the banner to show", DIALOG_SHOWN).await;
        let csp = document_csp(&page, 0).await;
        assert!(csp.contains("'nonce-") && !csp.contains("tracker.test"), "{csp}");
        assert_eq!(page.focused().await, "consentry-dialog", "banner.js ran");
        assert_eq!(page.eval("window.__violations").await, json!([]));

        // A tracker added later by script is refused by the browser.
        let tracker = "http://tracker.test/tracker.js";
        page.eval(&inject_script(tracker)).await;
        page.wait_for(
            "the CSP to refuse the injected tracker",
            &format!("window.__violations.includes('script-src-elem {tracker}')"),
        )
        .await;
        assert_eq!(page.eval(TRACKER_RAN).await, json!(false));
        assert_eq!(shop.tracker.all(), Vec::<String>::new());

        // Accept all reloads the page (reviving in place would run into the
        // old CSP); the new one lets the tracker and the page's inline
        // tags (which carry the nonce) run, and nothing is refused.
        let token = page.mark_document().await;
        page.click("#consentry-accept-all").await;
        page.wait_for_new_document(&token).await;
        let csp = document_csp(&page, 1).await;
        assert!(csp.contains(" tracker.test "), "{csp}");
        page.wait_for("the tracker to run", TRACKER_RAN).await;
        assert_eq!(
            page.eval("[typeof window.dataLayer, typeof window.fbq]").await,
            json!(["object", "function"]),
            "the inline gtag and Meta snippets ran"
        );
        assert_eq!(page.eval("window.__violations").await, json!([]));
        assert_eq!(page.exceptions(), Vec::<String>::new(), "uncaught exceptions in the page");
        assert_eq!(shop.receipts().len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_origin_s_own_strict_csp() {
    let Some(binary) = chromium() else { return };
    within(async {
        // A strict, nonce-based policy of the site's own that allows none of
        // consentry's paths: no 'self', styles, fetches and forms elsewhere.
        const STRICT: Setup = Setup {
            origin_csp: Some(
                "script-src 'nonce-s1te' 'strict-dynamic'; style-src https://cdn.example; \
                 connect-src https://api.example; form-action https://pay.example; object-src 'none'",
            ),
            ..DEMO
        };
        let visit = Visit::start(&binary, &[STRICT]).await;
        let shop = visit.shop();
        let page = visit.cdp.new_page().await;
        page.init_script(
            "window.__violations = []; document.addEventListener('securitypolicyviolation', \
             e => window.__violations.push(e.effectiveDirective + ' ' + e.blockedURI));",
        )
        .await;
        page.record_network().await;
        page.goto(&shop.url("/")).await;
        page.wait_for("the banner to show", DIALOG_SHOWN).await;
        let csp = document_csp(&page, 0).await;
        assert!(csp.starts_with("script-src 'nonce-s1te' 'strict-dynamic' 'nonce-"), "{csp}");
        // banner.js ran (its nonce) and banner.css applies (its path).
        assert_eq!(page.focused().await, "consentry-dialog", "banner.js ran: {csp}");
        assert_eq!(
            page.eval("getComputedStyle(document.getElementById('consentry-banner')).position").await,
            json!("fixed"),
            "banner.css applied"
        );
        // Customise fetches the preferences page in place (connect-src).
        page.click("#consentry-customise").await;
        page.wait_for("Customise to open", "document.getElementById('consentry-prefs')?.open").await;
        assert_eq!(page.eval("location.pathname").await, json!("/"), "fetched, not followed");
        let ours = "window.__violations.filter(v => v.includes('/.consentry/'))";
        assert_eq!(page.eval(ours).await, json!([]), "consentry's own requests refused");
        assert_ne!(page.eval("window.__violations.length").await, json!(0), "the site's CSP is enforced");
        // Accept all posts with fetch; the page reloads under the new consent.
        let token = page.mark_document().await;
        page.click("#consentry-accept-all").await;
        page.wait_for_new_document(&token).await;
        assert_eq!(shop.receipts().len(), 1);
        assert!(cookie(&visit.jar().await, "consentry").is_some());
        // The site's own inline tags (no nonce) stay blocked by its policy;
        // nothing of consentry's was refused.
        let violations = page.eval("window.__violations").await;
        let ours: Vec<&Value> = violations
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v.as_str().unwrap_or("").contains("/.consentry/"))
            .collect();
        assert!(ours.is_empty(), "consentry's own requests refused: {violations}");
        assert_eq!(page.exceptions(), Vec::<String>::new(), "uncaught exceptions in the page");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_policy_revision_asks_again() {
    let Some(binary) = chromium() else { return };
    within(async {
        let visit = Visit::start(&binary, &[DEMO]).await;
        let shop = visit.shop();
        let page = visit.cdp.new_page().await;
        page.goto(&shop.url("/")).await;
        page.wait_for("the banner to show", DIALOG_SHOWN).await;
        page.click("#consentry-accept-all").await;
        page.wait_for("the tracker to run", TRACKER_RAN).await;
        page.reload().await;
        assert!(cookie(&visit.jar().await, "visitor_stats").is_some());

        // The site changes its policy significantly: revision 2. Consent
        // given for revision 1 no longer counts, so the next page asks
        // again, runs nothing optional, and deletes what was allowed.
        shop.edit_config("revision = 1", "revision = 2");
        page.reload().await;
        page.wait_for("the banner to ask again", DIALOG_SHOWN).await;
        assert_eq!(page.eval(TRACKER_RAN).await, json!(false));
        assert_eq!(page.eval(TRACKER_SCRIPT_TYPE).await, json!("text/plain"));
        let jar = visit.jar().await;
        assert_eq!(
            shop.in_categories(&jar, &["functional", "analytics", "advertising", "unclassified"]),
            Vec::<String>::new(),
            "{:?}",
            names(&jar)
        );

        page.click("#consentry-accept-all").await;
        page.wait_for("the tracker to run", TRACKER_RAN).await;
        let revisions: Vec<Value> = shop.receipts().iter().map(|r| r["revision"].clone()).collect();
        assert_eq!(revisions, [json!(1), json!(2)]);
        assert_eq!(page.exceptions(), Vec::<String>::new(), "uncaught exceptions in the page");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https() {
    let Some(binary) = chromium() else { return };
    within(async {
        const HTTPS: Setup = Setup { https: true, ..DEMO };
        let visit = Visit::start(&binary, &[HTTPS]).await;
        let shop = visit.shop();
        let page = visit.cdp.new_page().await;
        page.goto(&shop.url("/")).await;
        page.wait_for("the banner to show", DIALOG_SHOWN).await;
        page.click("#consentry-accept-all").await;
        page.wait_for("the banner to close", DIALOG_HIDDEN).await;
        page.reload().await;
        // The consent cookie is Secure over HTTPS, and so is Application
        // Insights' ai_user (SameSite=None), which only HTTPS can set.
        let jar = visit.jar().await;
        assert!(cookie(&jar, "consentry").is_some_and(|c| c.secure), "{jar:#?}");
        assert!(cookie(&jar, "ai_user").is_some_and(|c| c.secure), "{jar:#?}");
        page.click("#consentry-manage").await;
        page.wait_for("the dialog to reopen", DIALOG_SHOWN).await;
        page.click("#consentry-customise").await;
        page.wait_for("Customise to open", "document.getElementById('consentry-prefs').open").await;
        page.click("#consentry-cat-analytics-box").await;
        let token = page.mark_document().await;
        page.click("#consentry-save").await;
        page.wait_for_new_document(&token).await;
        let jar = visit.jar().await;
        assert_eq!(shop.in_categories(&jar, &["analytics"]), Vec::<String>::new(), "{:?}", names(&jar));
        assert!(cookie(&jar, "_fbp").is_some() && cookie(&jar, "consentry").is_some_and(|c| c.secure));
        let receipts = shop.receipts();
        assert_eq!(receipts.len(), 2, "{receipts:#?}");
        assert_eq!(receipts[1]["refused"], json!(["analytics"]));
        assert_eq!(page.exceptions(), Vec::<String>::new(), "uncaught exceptions in the page");
    })
    .await;
}
