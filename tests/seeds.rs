//! The seed cookie policies (`../shared/seeds/`) written as consentry
//! configs (`config/examples/`): each compiles, and classifies the cookies
//! of the seed's own table the way the seed says.
//!
//! The tables below are copied from the seeds (name, domain, category as
//! the seed words it); the examples may only use presets and a few site
//! rules, which is the point: the built-in presets must be enough to express
//! real policies.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use consentry::category::CategorySet;
use consentry::policy::{Policy, Unknown};
use consentry::snapshot::Snapshot;

fn example(name: &str) -> Snapshot {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples").join(format!("{name}.toml"));
    match Snapshot::load(&path, 1) {
        Ok(s) => s,
        Err(errors) => panic!("{}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")),
    }
}

fn policy_for(snapshot: &Snapshot, host: &str) -> Arc<Policy> {
    snapshot.router.route(host).unwrap_or_else(|| panic!("no site for {host}")).policy.clone()
}

/// The category name a cookie gets (`-` for none), and the rule.
fn category(policy: &Policy, name: &str, domain: &str) -> (String, String) {
    let (id, basis) = policy.classify_cookie(name, domain);
    (id.map_or_else(|| "-".to_string(), |id| policy.categories.name(id).to_string()), basis.describe())
}

#[test]
fn every_example_compiles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 2);
    for path in names {
        if let Err(errors) = Snapshot::load(&path, 1) {
            panic!("{}: {errors:#?}", path.display());
        }
    }
}

/// CALLKOM's table: Category | Cookie Name | Domain / Provider | ...
#[test]
fn callkom_classifies_its_table() {
    let snapshot = example("callkom");
    let policy = policy_for(&snapshot, "www.callkom.io");
    // (cookie, domain it lives on, the seed's category → ours)
    let table = [
        ("__cf_bm", "callkom.io", "necessary"),
        ("__cf_bm", "hubspot.com", "necessary"),
        ("__cf_bm", "calendly.com", "necessary"),
        ("m", "m.stripe.com", "necessary"),
        ("hubspotutk", "callkom.io", "functional"),
        ("_cfuvid", "calendly.com", "functional"),
        ("_cfuvid", "hubspot.com", "functional"),
        ("_cfuvid", "hsforms.com", "functional"),
        ("wp-wpml_current_language", "callkom.io", "functional"),
        ("ai_user", "app.callkom.io", "analytics"),
        ("ai_session", "app.callkom.io", "analytics"),
        ("ai_session", "integration.callkom.io", "analytics"),
        ("__hstc", "callkom.io", "analytics"),
        ("__hssc", "callkom.io", "analytics"),
        ("__hssrc", "callkom.io", "analytics"),
        ("_ga", "callkom.io", "analytics"),
        ("_ga_2ZQ8KX1TRW", "callkom.io", "analytics"),
    ];
    let mut wrong = Vec::new();
    for (name, domain, want) in table {
        let (got, rule) = category(&policy, name, domain);
        if got != want {
            wrong.push(format!("{name} on {domain}: {got} by {rule}, seed says {want}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");

    // Cloudflare's own _cfuvid in front of callkom.io stays necessary; the
    // functional ones are the third-party widgets'.
    assert_eq!(category(&policy, "_cfuvid", "callkom.io").0, "necessary");
    // The site rule for hubspotutk beats the hubspot preset's analytics.
    let text = std::fs::read_to_string(&snapshot.path).unwrap();
    let rule_line = text.lines().position(|l| l == "name = \"hubspotutk\"").unwrap(); // 0-based: the line above
    assert_eq!(
        category(&policy, "hubspotutk", "callkom.io").1,
        format!("hubspotutk (config line {rule_line})")
    );
    // The consent cookie is necessary; anything unnamed is blocked.
    assert_eq!(category(&policy, "consentry", "callkom.io").0, "necessary");
    assert_eq!(category(&policy, "_fbp", "callkom.io").0, "-");
    assert_eq!(policy.unknown_cookies, Unknown::Block);
    // "_ga, _ga_* ... up to 13 months": GA's 2-year cookies are capped.
    let (id, _) = policy.classify_cookie("_ga", "callkom.io");
    assert_eq!(policy.max_cookie_age(id, None), Some(Duration::from_secs(395 * 24 * 3600)));
    // Renewal every 6 months, and a revision for "significant change".
    assert_eq!(policy.consent.max_age, Some(Duration::from_secs(180 * 24 * 3600)));
    assert_eq!(policy.consent.revision, 1);

    // "Without Functional: Calendly is not loaded"; HubSpot forms are
    // functional too; GA needs Performance (analytics).
    let resource = |host: &str, path: &str| {
        policy.resources.classify_url(host, path).map(|r| policy.categories.name(r.category).to_string())
    };
    assert_eq!(resource("assets.calendly.com", "/assets/external/widget.js").as_deref(), Some("functional"));
    assert_eq!(resource("js.hsforms.net", "/forms/embed/v2.js").as_deref(), Some("functional"));
    assert_eq!(resource("www.googletagmanager.com", "/gtag/js").as_deref(), Some("analytics"));
    assert_eq!(resource("js.stripe.com", "/v3/").as_deref(), Some("necessary"));
    // Every subdomain is first party.
    let site = snapshot.router.route("app.callkom.io").unwrap();
    assert!(site.is_first_party("cdn.callkom.io"));
}

/// Koecall's tables: Technical/Necessary and Preference cookies, Azure,
/// Stripe; no analytics, no advertising.
#[test]
fn koecall_classifies_its_table() {
    let snapshot = example("koecall");
    let policy = policy_for(&snapshot, "koecall.ai");
    let table = [
        ("Koecall.Auth", "necessary"),
        (".AspNetCore.Session", "necessary"),
        ("__RequestVerificationToken", "necessary"),
        ("koecall_cookie_consent", "necessary"),
        ("Koecall.Lang", "functional"),
        ("ARRAffinity", "necessary"),
        ("ARRAffinitySameSite", "necessary"),
        ("__stripe_mid", "necessary"),
        ("__stripe_sid", "necessary"),
    ];
    let mut wrong = Vec::new();
    for (name, want) in table {
        let (got, rule) = category(&policy, name, "koecall.ai");
        if got != want {
            wrong.push(format!("{name}: {got} by {rule}, seed says {want}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(policy.categories.names(policy.categories.all()), "necessary,functional");
    // The consent cookie is the site's own.
    assert_eq!(policy.consent.cookie, "koecall_cookie_consent");
    assert_eq!(category(&policy, "koecall_cookie_consent", "koecall.ai").1, "consent cookie");
    // "Koecall.ai does not use advertising profiling cookies": any such
    // cookie is unknown here, so it is refused even when every declared
    // category is granted.
    let everything = policy.categories.all();
    for tracker in ["_ga", "_fbp", "_gcl_au", "__hstc"] {
        let (id, _) = policy.classify_cookie(tracker, "koecall.ai");
        assert!(!policy.cookie_allowed(id, everything), "{tracker} must never pass");
    }
    assert!(!policy.resource_allowed(None, everything));
    assert!(!policy.honours_gpc());
}

#[test]
fn calilio_refuses_advertising_on_gpc() {
    let snapshot = example("calilio");
    let policy = policy_for(&snapshot, "www.calilio.com");
    let advertising = policy.categories.id("advertising").unwrap();
    assert_eq!(policy.consent.gpc_refuses, CategorySet::only(advertising));
    assert!(policy.honours_gpc());
    assert_eq!(category(&policy, "_ga", "calilio.com").0, "analytics");
    assert_eq!(category(&policy, "_fbp", "calilio.com").0, "advertising");
}

#[test]
fn callora_has_no_advertising_and_keeps_consent_a_year() {
    let snapshot = example("callora");
    let policy = policy_for(&snapshot, "callora.cc");
    assert!(policy.categories.id("advertising").is_none());
    assert_eq!(policy.consent.max_age, Some(Duration::from_secs(365 * 24 * 3600)));
    assert!(!policy.honours_gpc());
    let fonts = policy.resources.classify_url("fonts.googleapis.com", "/css2").unwrap();
    assert_eq!(policy.categories.name(fonts.category), "functional");
}

#[test]
fn kaleyra_caps_every_optional_cookie_at_a_year() {
    let snapshot = example("kaleyra");
    let policy = policy_for(&snapshot, "www.kaleyra.com");
    let year = Some(Duration::from_secs(365 * 24 * 3600));
    for (name, cat) in [("__hstc", "analytics"), ("li_fat_id", "advertising"), ("messagesUtk", "functional")]
    {
        let (id, basis) = policy.classify_cookie(name, "kaleyra.com");
        assert_eq!(id.map(|id| policy.categories.name(id)), Some(cat), "{name}");
        let rule = match basis {
            consentry::policy::CookieBasis::Rule(r) => Some(r),
            _ => None,
        };
        assert_eq!(policy.max_cookie_age(id, rule), year, "{name}");
    }
    let (id, _) = policy.classify_cookie("__hs_opt_out", "kaleyra.com");
    assert_eq!(policy.max_cookie_age(id, None), None, "strictly necessary cookies are not capped");
}
