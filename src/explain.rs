//! `consentry explain`: what the policy would decide for one request, item
//! by item, and why.
//!
//! Given a host, the request's `Cookie` header, `Sec-GPC`, the origin's
//! `Set-Cookie` values and the page's resource URLs, [`explain`] prints the
//! site chosen, the consent read, and for every cookie, `Set-Cookie` and
//! resource the decision, its category and the rule (or default) that made
//! it. It uses the same compiled [`Snapshot`] and the same lookups as the
//! proxy ([`Policy::classify_cookie`], [`crate::consent::read`],
//! [`crate::policy::ResourceRules`]), so what it prints is what the proxy
//! does; it only reads, never changes anything.
//!
//! `Set-Cookie` values go through the response-header stage's own
//! [`response_headers::judge_set_cookie`] (and so the browser-exact parser
//! of [`crate::set_cookie`]): the verdict printed is the proxy's, including
//! lifetime caps, hardening and the value actually sent, not a re-derivation
//! of it. Only the wording around it (which rule, why refused, how long the
//! cookie wanted to live) is added here.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;

use crate::category::CategoryId;
use crate::consent;
use crate::cookie::CookieJar;
use crate::decision::Action;
use crate::policy::{CookieBasis, Mode, Policy, Unknown};
use crate::response_headers::{self, ResponseContext, Verdict};
use crate::route::normalize_host;
use crate::set_cookie::{Lifetime, SetCookie};
use crate::snapshot::Snapshot;

/// What to explain: one request as the proxy would see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExplainRequest {
    /// `Host` (port allowed).
    pub host: String,
    /// The request's `Cookie` header value.
    pub cookie: Option<String>,
    /// Whether the request carries `Sec-GPC: 1`.
    pub gpc: bool,
    /// `Set-Cookie` values as the origin would send them.
    pub set_cookies: Vec<String>,
    /// Resource URLs of the page (absolute, protocol-relative or relative to
    /// the host), or `inline:SCRIPT TEXT` for an inline script.
    pub resources: Vec<String>,
}

/// `consentry explain` arguments, ready for the CLI's subcommand enum.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// The configuration file.
    #[arg(long, value_name = "FILE", default_value = "config/consentry.toml")]
    pub config: PathBuf,
    /// The request's Host.
    #[arg(long)]
    pub host: String,
    /// The request's Cookie header, e.g. 'consentry=...; _ga=GA1.2.3'.
    #[arg(long)]
    pub cookie: Option<String>,
    /// The request carries Sec-GPC: 1.
    #[arg(long)]
    pub gpc: bool,
    /// A Set-Cookie value from the origin (repeatable).
    #[arg(long = "set-cookie", value_name = "SET-COOKIE")]
    pub set_cookies: Vec<String>,
    /// A resource URL of the page, or inline:SCRIPT for an inline script
    /// (repeatable).
    #[arg(long = "resource", value_name = "URL")]
    pub resources: Vec<String>,
}

impl ExplainArgs {
    /// Loads the config and explains. Errors are the config's (one
    /// `file:line:column: message` per line) or an unknown host.
    pub fn run(&self) -> Result<String, String> {
        let snapshot = Snapshot::load(&self.config, 1)
            .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))?;
        explain(&snapshot, &self.request())
    }

    /// The request these arguments describe.
    pub fn request(&self) -> ExplainRequest {
        ExplainRequest {
            host: self.host.clone(),
            cookie: self.cookie.clone(),
            gpc: self.gpc,
            set_cookies: self.set_cookies.clone(),
            resources: self.resources.clone(),
        }
    }
}

/// Explains `req` against `snapshot`, now.
pub fn explain(snapshot: &Snapshot, req: &ExplainRequest) -> Result<String, String> {
    explain_at(snapshot, req, SystemTime::now())
}

/// [`explain`] at a given time (consent age and `Expires` depend on it).
pub fn explain_at(snapshot: &Snapshot, req: &ExplainRequest, now: SystemTime) -> Result<String, String> {
    let host = normalize_host(&req.host);
    let Some(site) = snapshot.router.route(&host) else {
        let known: Vec<&str> =
            snapshot.router.sites().iter().flat_map(|s| s.hosts.iter().map(String::as_str)).collect();
        return Err(format!(
            "no site for host {host:?} (the proxy answers 421); sites: {}",
            known.join(", ")
        ));
    };
    let policy = &site.policy;
    let report_only = policy.mode == Mode::ReportOnly;
    let mut out = String::new();

    let mode =
        if report_only { "report-only: nothing is changed, decisions are recorded" } else { "enforce" };
    let _ = writeln!(
        out,
        "site     {host} → {:?} (origin {}, policy {:?}, {mode})",
        site.name, site.origin.uri, policy.name
    );

    // Consent, exactly as the proxy reads it.
    let jar = CookieJar::parse(req.cookie.as_deref().unwrap_or(""));
    let consent = consent::read(&policy.consent, &jar, req.gpc, now);
    let _ = writeln!(
        out,
        "consent  format {}, cookie {:?}: {} → granted: {}",
        consent.format.name(),
        policy.consent.cookie,
        consent.state.name(),
        policy.categories.names(consent.granted)
    );
    if req.gpc {
        if consent.gpc_refused.is_empty() {
            let _ = writeln!(out, "         Sec-GPC: 1 (refuses nothing that was granted)");
        } else {
            let _ =
                writeln!(out, "         Sec-GPC: 1 refused {}", policy.categories.names(consent.gpc_refused));
        }
    }
    let granted = consent.granted;

    let verb = |allowed: bool, yes: &'static str, no: &'static str| -> String {
        match (allowed, report_only) {
            (true, _) => yes.to_string(),
            (false, false) => no.to_string(),
            (false, true) => format!("would {no}"),
        }
    };

    if !jar.is_empty() {
        let _ = writeln!(out, "\nrequest cookies (domain {host})");
        for pair in jar.pairs() {
            let (category, basis) = policy.classify_cookie(pair.name, &host);
            let allowed = policy.cookie_allowed(category, granted);
            let action = verb(allowed, "keep", "remove");
            let why = why(policy, category, &basis, policy.unknown_cookies, "unknown_cookies", allowed);
            let name = if pair.name.is_empty() { "(no name)" } else { pair.name };
            let _ = writeln!(out, "  {action:<14} {name:<28} {:<13} {why}", category_name(policy, category));
        }
    }

    if !req.set_cookies.is_empty() {
        let _ = writeln!(out, "\nset-cookie");
        let cx = ResponseContext {
            policy,
            host: &host,
            consent: &consent,
            withdrawn: &[],
            https: false,
            now,
            body_rewritten: false,
        };
        for raw in &req.set_cookies {
            let _ = writeln!(out, "  {}", explain_set_cookie(policy, &cx, raw, report_only));
        }
    }

    if !req.resources.is_empty() {
        let _ = writeln!(out, "\nresources");
        let base =
            url::Url::parse(&format!("https://{host}/")).map_err(|e| format!("bad host {host:?}: {e}"))?;
        for resource in &req.resources {
            let _ = writeln!(out, "  {}", explain_resource(policy, site, &base, resource, granted, &verb));
        }
    }
    Ok(out)
}

/// One `Set-Cookie` line: the proxy's own verdict
/// ([`response_headers::judge_set_cookie`] over [`SetCookie::parse`]), its
/// category and rule, and for a changed cookie what is sent instead.
fn explain_set_cookie(policy: &Policy, cx: &ResponseContext<'_>, raw: &str, report_only: bool) -> String {
    // A value that is not a valid header value never reaches the proxy
    // (the HTTP parser refuses it); say so rather than guess.
    let Ok(value) = HeaderValue::from_str(raw) else {
        return format!("{:<14} {raw:?}: not a valid header value (control character)", "drop");
    };
    let now = unix(cx.now);
    let (verdict, decision) = response_headers::judge_set_cookie(&value, cx, now);
    let action = match (decision.action, report_only) {
        (Action::Allow, _) => "allow".to_string(),
        (Action::Invalid, false) => "drop".to_string(),
        (Action::Invalid, true) => "would drop".to_string(),
        (other, false) => other.name().to_string(),
        (other, true) => format!("would {}", other.name()),
    };
    let Ok(cookie) = SetCookie::parse(value.as_bytes()) else {
        // The judge dropped it as unparseable; its rule says why.
        return format!("{action:<14} {raw:?}: not a cookie a browser would keep ({})", decision.rule);
    };
    let name = if decision.name.is_empty() { "(no name)" } else { decision.name.as_str() };
    let shown = match cookie.domain() {
        Some(_) => format!("{name} (Domain={})", decision.domain),
        None => name.to_string(),
    };
    let category = decision.category;
    let (_, basis) = policy.classify_cookie(&decision.name, &decision.domain);
    let allowed = decision.action != Action::Block;
    let mut why = why(policy, category, &basis, policy.unknown_cookies, "unknown_cookies", allowed);
    if decision.rule.starts_with("deletion always allowed") {
        why.push_str(" — a deletion always passes");
    }
    if decision.action == Action::Cap {
        let rule = match basis {
            CookieBasis::Rule(rule) => Some(rule),
            _ => None,
        };
        if let Some(max) = policy.max_cookie_age(category, rule) {
            let source = match rule.and_then(|r| r.max_age) {
                Some(_) => "the rule's max_days".to_string(),
                None => format!("{} max_cookie_days", category_name(policy, category)),
            };
            let lifetime = match cookie.lifetime(now) {
                Lifetime::Until(until) => {
                    Some(Duration::from_secs(u64::try_from(until.saturating_sub(now)).unwrap_or(0)))
                }
                Lifetime::Session | Lifetime::Delete => None,
            };
            let max_text = humantime::format_duration(max);
            match lifetime {
                Some(lifetime) if lifetime > max => {
                    let _ = write!(
                        why,
                        "; lifetime {} → {max_text} ({source})",
                        humantime::format_duration(lifetime)
                    );
                }
                // The effective value is under the cap but another (ignored
                // by this browser, maybe not by the next) is over it: the
                // stage rewrites every lifetime attribute over the cap.
                _ => {
                    let _ = write!(why, "; a Max-Age or Expires over {max_text} ({source}) is rewritten");
                }
            }
        }
    }
    if decision.action == Action::Harden {
        let _ = write!(why, "; harden: {}", harden_flags(policy, &decision.name));
    }
    if let Verdict::Replace(new) = verdict {
        let _ = write!(why, "; sent as {:?}", String::from_utf8_lossy(new.as_bytes()));
    }
    format!("{action:<14} {shown:<28} {:<13} {why}", category_name(policy, category))
}

/// Unix seconds of `t` (negative before 1970), as the response stage counts.
fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// One resource line.
fn explain_resource(
    policy: &Policy,
    site: &crate::route::Site,
    base: &url::Url,
    resource: &str,
    granted: crate::category::CategorySet,
    verb: &dyn Fn(bool, &'static str, &'static str) -> String,
) -> String {
    if let Some(script) = resource.strip_prefix("inline:") {
        let shown = format!("inline script {:?}", truncate(script, 40));
        return match policy.resources.classify_inline(script) {
            Some(rule) => {
                let allowed = policy.resource_allowed(Some(rule.category), granted);
                let action = verb(allowed, "allow", "block");
                let why = format!("signature {:?} ({})", rule.pattern, rule.origin);
                let not = if allowed { String::new() } else { " — not granted".to_string() };
                format!("{action:<14} {shown} {} {why}{not}", policy.categories.name(rule.category))
            }
            None => format!("{:<14} {shown}: no signature matches (inline scripts are first party)", "allow"),
        };
    }
    let url = match base.join(resource) {
        Ok(u) => u,
        Err(e) => return format!("{:<14} {resource}: not a URL ({e})", "?"),
    };
    let Some(host) = url.host_str().map(normalize_host) else {
        return format!("{:<14} {resource}: no host", "?");
    };
    if site.is_first_party(&host) {
        return format!("{:<14} {url} (first party: {host})", "first-party");
    }
    let rule = policy.resources.classify_url(&host, url.path());
    let category = rule.map(|r| r.category);
    let allowed = policy.resource_allowed(category, granted);
    let action = verb(allowed, "allow", "block");
    let why = match rule {
        Some(rule) => {
            let not = if allowed { "" } else { " — not granted" };
            format!("{} ({}){not}", rule.pattern, rule.origin)
        }
        None => format!("unknown_third_party = {}", unknown_name(policy.unknown_third_party)),
    };
    format!("{action:<14} {url} {} {why}", category_name(policy, category))
}

/// "rule (origin)", "consent cookie" or "unknown_cookies = block", plus
/// why a classified item was refused.
fn why(
    policy: &Policy,
    category: Option<CategoryId>,
    basis: &CookieBasis<'_>,
    unknown: Unknown,
    key: &str,
    allowed: bool,
) -> String {
    match basis {
        CookieBasis::Unknown => format!("no rule: {key} = {}", unknown_name(unknown)),
        CookieBasis::ConsentCookie => "the consent cookie (always necessary)".to_string(),
        CookieBasis::Rule(_) => {
            let mut text = basis.describe();
            if !allowed {
                let _ = write!(text, " — {} not granted", category_name(policy, category));
            }
            text
        }
    }
}

fn category_name(policy: &Policy, category: Option<CategoryId>) -> &str {
    category.map_or("unclassified", |c| policy.categories.name(c))
}

fn unknown_name(unknown: Unknown) -> &'static str {
    match unknown {
        Unknown::Block => "block",
        Unknown::Allow => "allow",
    }
}

/// `+Secure +HttpOnly SameSite=Lax` for the hardening rules matching `name`.
fn harden_flags(policy: &Policy, name: &str) -> String {
    let mut flags = Vec::new();
    for rule in policy.harden.iter().filter(|r| r.name.matches(name)) {
        if rule.secure {
            flags.push("+Secure".to_string());
        }
        if rule.http_only {
            flags.push("+HttpOnly".to_string());
        }
        if let Some(s) = rule.same_site {
            flags.push(format!("SameSite={}", s.as_str()));
        }
    }
    flags.dedup();
    flags.join(" ")
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;

    fn snapshot(policy_extra: &str) -> Snapshot {
        let text = format!(
            r#"
[listen]
http = "127.0.0.1:0"

[[site]]
name = "shop"
hosts = ["www.example.com", "example.com"]
origin = "http://127.0.0.1:3000"
policy = "default"

[policy.default]
first_party = ["*.example.com"]
presets = ["google-analytics", "meta-pixel", "cloudflare", "stripe"]
{policy_extra}
[policy.default.categories]
necessary = {{}}
functional = {{}}
analytics = {{ max_cookie_days = 395 }}
advertising = {{}}

[[policy.default.cookie]]
name = "lang"
category = "functional"

[[policy.default.harden]]
name = "sid"
secure = true
http_only = true
same_site = "Lax"
"#
        );
        let source = Source { path: PathBuf::from("e.toml"), text };
        Snapshot::compile(&source, 1).unwrap()
    }

    fn now() -> SystemTime {
        httpdate::parse_http_date("Wed, 01 Jan 2025 00:00:00 GMT").unwrap()
    }

    fn request() -> ExplainRequest {
        ExplainRequest {
            host: "WWW.Example.com:443".into(),
            cookie: Some("consentry=abc; _ga=GA1.2.3; __cf_bm=x; lang=fr; tracker=1".into()),
            gpc: true,
            set_cookies: vec![
                "_ga=GA1.2.3; Domain=.example.com; Max-Age=63072000; Path=/".into(),
                "_fbp=fb.1.2; Max-Age=7776000".into(),
                "__cf_bm=abc; Path=/; Expires=Wed, 01 Jan 2025 00:30:00 GMT; HttpOnly".into(),
                "sid=1; Path=/".into(),
                "garbage-without-equals".into(),
            ],
            resources: vec![
                "/assets/app.js".into(),
                "https://cdn.example.com/x.js".into(),
                "https://www.googletagmanager.com/gtag/js?id=G-1".into(),
                "//connect.facebook.net/en_US/fbevents.js".into(),
                "https://js.stripe.com/v3/".into(),
                "https://unknown-cdn.net/lib.js".into(),
                "inline:fbq('init', '1'); fbq('track', 'PageView');".into(),
                "inline:console.log('hi')".into(),
            ],
        }
    }

    /// The words of the line of `section` whose second word is `item`.
    fn row(out: &str, section: &str, item: &str) -> Vec<String> {
        let lines = out
            .lines()
            .skip_while(|l| !l.starts_with(section))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>());
        lines
            .clone()
            .find(|w| w.get(1).is_some_and(|w| w == item))
            .unwrap_or_else(|| panic!("no {item:?} in {section:?} of\n{out}"))
    }

    fn rest(words: &[String], from: usize) -> String {
        words[from..].join(" ")
    }

    /// With a valid consentry cookie granting analytics, analytics cookies
    /// and scripts are kept; advertising still is not.
    #[test]
    fn valid_consent_changes_the_decisions() {
        let value = crate::consent::encode(&["necessary", "analytics"], 0, now(), None);
        let mut req = request();
        req.gpc = false;
        req.cookie = Some(format!("consentry={value}; _ga=GA1.2.3"));
        let out = explain_at(&snapshot(""), &req, now()).unwrap();
        let consent = out.lines().find(|l| l.starts_with("consent")).unwrap();
        assert!(consent.ends_with("valid → granted: necessary,analytics"), "{out}");
        assert_eq!(row(&out, "request cookies", "_ga")[..3], ["keep", "_ga", "analytics"]);
        assert_eq!(row(&out, "set-cookie", "_fbp")[0], "block");
        assert_eq!(row(&out, "resources", "https://www.googletagmanager.com/gtag/js?id=G-1")[0], "allow");
    }

    /// Without valid consent (`consentry=abc` is not a consentry cookie, so
    /// it reads as invalid), only necessary passes; each line names its rule
    /// or default.
    #[test]
    fn explains_every_item_with_its_rule() {
        let extra = "[[policy.default.cookie]]\nname = \"sid\"\ncategory = \"necessary\"\n";
        let out = explain_at(&snapshot(extra), &request(), now()).unwrap();
        let first = |prefix: &str| out.lines().find(|l| l.starts_with(prefix)).unwrap().to_string();
        assert_eq!(
            first("site"),
            "site     www.example.com → \"shop\" (origin http://127.0.0.1:3000/, policy \"default\", enforce)"
        );
        assert_eq!(
            first("consent"),
            "consent  format consentry, cookie \"consentry\": invalid → granted: necessary"
        );
        assert!(out.contains("Sec-GPC: 1 (refuses nothing that was granted)"), "{out}");

        let req = |item| row(&out, "request cookies", item);
        assert_eq!(req("consentry")[..3], ["keep", "consentry", "necessary"]);
        assert_eq!(rest(&req("consentry"), 3), "the consent cookie (always necessary)");
        assert_eq!(req("_ga")[..3], ["remove", "_ga", "analytics"]);
        assert_eq!(rest(&req("_ga"), 3), "_ga (preset google-analytics) — analytics not granted");
        assert_eq!(req("__cf_bm")[..3], ["keep", "__cf_bm", "necessary"]);
        assert_eq!(rest(&req("__cf_bm"), 3), "__cf_bm (preset cloudflare)");
        assert_eq!(req("lang")[..3], ["remove", "lang", "functional"]);
        assert!(rest(&req("lang"), 3).starts_with("lang (config line "), "{out}");
        assert_eq!(req("tracker")[..3], ["remove", "tracker", "unclassified"]);
        assert_eq!(rest(&req("tracker"), 3), "no rule: unknown_cookies = block");

        assert!(out.lines().any(|l| l == "set-cookie"), "{out}");
        let set = |item| row(&out, "set-cookie", item);
        assert_eq!(set("_ga")[..4], ["block", "_ga", "(Domain=example.com)", "analytics"]);
        assert_eq!(set("_fbp")[..3], ["block", "_fbp", "advertising"]);
        assert_eq!(set("__cf_bm")[..3], ["allow", "__cf_bm", "necessary"]);
        assert_eq!(set("sid")[..3], ["harden", "sid", "necessary"]);
        assert_eq!(
            rest(&set("sid"), 3),
            "sid (config line 14); harden: +Secure +HttpOnly SameSite=Lax; \
             sent as \"sid=1; Path=/; Secure; HttpOnly; SameSite=Lax\""
        );
        // Browsers keep a pair without `=` as a nameless cookie (RFC 6265bis
        // §5.6): no rule names it, so it is blocked, not "not a cookie".
        assert_eq!(rest(&set("(no"), 0), "block (no name) unclassified no rule: unknown_cookies = block");

        let res = |item| row(&out, "resources", item);
        assert_eq!(res("https://www.example.com/assets/app.js")[0], "first-party");
        assert_eq!(res("https://cdn.example.com/x.js")[0], "first-party");
        let gtag = res("https://www.googletagmanager.com/gtag/js?id=G-1");
        assert_eq!(gtag[0], "block");
        assert_eq!(
            rest(&gtag, 2),
            "analytics https://www.googletagmanager.com/gtag/js (preset google-analytics) — not granted"
        );
        let fb = res("https://connect.facebook.net/en_US/fbevents.js");
        assert_eq!(
            rest(&fb, 0),
            "block https://connect.facebook.net/en_US/fbevents.js advertising facebook.net (preset meta-pixel) — not granted"
        );
        assert_eq!(
            rest(&res("https://js.stripe.com/v3/"), 0),
            "allow https://js.stripe.com/v3/ necessary stripe.com (preset stripe)"
        );
        assert_eq!(
            rest(&res("https://unknown-cdn.net/lib.js"), 2),
            "unclassified unknown_third_party = block"
        );
        let inline = res("inline");
        assert_eq!(inline[0], "block");
        assert!(
            rest(&inline, 0)
                .ends_with("advertising signature \"inline:fbq(\" (preset meta-pixel) — not granted")
        );
        assert!(
            out.contains("allow          inline script \"console.log('hi')\": no signature matches"),
            "{out}"
        );
    }

    /// An allowed cookie whose lifetime exceeds its cap is capped (here a
    /// necessary cookie with `max_days = 1`: necessary is granted without
    /// consent); report-only mode says "would" and changes nothing.
    #[test]
    fn caps_and_report_only() {
        let extra =
            "[[policy.default.cookie]]\nname = \"remember\"\ncategory = \"necessary\"\nmax_days = 1\n";
        let req = ExplainRequest {
            host: "example.com".into(),
            set_cookies: vec!["remember=1; Max-Age=864000".into(), "remember=1; Max-Age=3600".into()],
            ..ExplainRequest::default()
        };
        let out = explain_at(&snapshot(extra), &req, now()).unwrap();
        let lines: Vec<&str> = out.lines().filter(|l| l.contains("remember")).collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].trim_start().starts_with("cap "), "{out}");
        assert!(
            lines[0].ends_with(
                "lifetime 10days → 1day (the rule's max_days); sent as \"remember=1; Max-Age=86400\""
            ),
            "{out}"
        );
        assert!(lines[1].trim_start().starts_with("allow "), "{out}");

        let report = explain_at(&snapshot("mode = \"report-only\"\n"), &request(), now()).unwrap();
        assert!(report.contains("report-only"), "{report}");
        assert!(report.lines().any(|l| l.trim_start().starts_with("would remove")), "{report}");
        assert!(report.lines().any(|l| l.trim_start().starts_with("would block")), "{report}");
    }

    /// The clap arguments, as the CLI will parse them, against a real
    /// example config.
    #[test]
    fn args_parse_and_run_against_an_example() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            explain: ExplainArgs,
        }
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples/callkom.toml");
        let cli = Cli::try_parse_from([
            "consentry",
            "--config",
            config,
            "--host",
            "www.callkom.io",
            "--cookie",
            "hubspotutk=1; __hstc=2",
            "--gpc",
            "--set-cookie",
            "__cf_bm=x; Domain=.callkom.io",
            "--set-cookie",
            "hubspotutk=1; Max-Age=15552000",
            "--resource",
            "https://assets.calendly.com/assets/external/widget.js",
        ])
        .unwrap();
        assert_eq!(cli.explain.request().set_cookies.len(), 2);
        assert!(cli.explain.request().gpc);
        let out = cli.explain.run().unwrap();
        assert_eq!(row(&out, "request cookies", "hubspotutk")[..3], ["remove", "hubspotutk", "functional"]);
        assert_eq!(row(&out, "request cookies", "__hstc")[..3], ["remove", "__hstc", "analytics"]);
        assert_eq!(
            row(&out, "set-cookie", "__cf_bm")[..4],
            ["allow", "__cf_bm", "(Domain=callkom.io)", "necessary"]
        );
        let calendly = row(&out, "resources", "https://assets.calendly.com/assets/external/widget.js");
        assert_eq!(rest(&calendly, 2), "functional calendly.com (preset calendly) — not granted");

        let broken = ExplainArgs { config: PathBuf::from("/nonexistent/consentry.toml"), ..cli.explain };
        assert!(broken.run().unwrap_err().contains("cannot read"));
    }

    #[test]
    fn unknown_hosts_are_an_error_naming_the_sites() {
        let req = ExplainRequest { host: "other.org".into(), ..ExplainRequest::default() };
        let err = explain_at(&snapshot(""), &req, now()).unwrap_err();
        assert!(err.contains("no site for host \"other.org\""), "{err}");
        assert!(err.contains("www.example.com"), "{err}");
    }

    /// Where explain's old minimal reader and the proxy disagreed, explain
    /// now says what the proxy does: every `Expires` format browsers accept
    /// is capped, the last `Max-Age` wins, a deletion of a refused cookie
    /// passes, an unparseable header is dropped, a harden rule that has
    /// nothing to add leaves the cookie alone.
    #[test]
    fn set_cookies_are_decided_as_the_proxy_decides() {
        let value = crate::consent::encode(&["necessary", "analytics", "functional"], 0, now(), None);
        let req = ExplainRequest {
            host: "www.example.com".into(),
            cookie: Some(format!("consentry={value}")),
            set_cookies: vec![
                // Netscape date with a two-digit year: 2038, over the 395-day cap.
                "_ga=GA1.2.3; expires=Fri, 31-Dec-38 23:59:59 GMT; path=/".into(),
                // The last valid Max-Age wins (one hour), but the earlier one
                // is over the cap too and is rewritten all the same.
                "_gid=GA1.2.4; Max-Age=99999999; Max-Age=3600".into(),
                // A refused cookie being deleted passes.
                "_fbp=; Max-Age=0; Path=/".into(),
                // Neither name nor value: browsers ignore it; the proxy drops it.
                " = ; Path=/".into(),
                // Already Secure, HttpOnly, SameSite=Lax: nothing to add.
                "sid=2; Secure; HttpOnly; SameSite=Lax".into(),
            ],
            ..ExplainRequest::default()
        };
        let extra = "[[policy.default.cookie]]\nname = \"sid\"\ncategory = \"necessary\"\n";
        let out = explain_at(&snapshot(extra), &req, now()).unwrap();
        let set = |item| row(&out, "set-cookie", item);
        assert_eq!(set("_ga")[..3], ["cap", "_ga", "analytics"]);
        assert!(
            rest(&set("_ga"), 3).ends_with(
                "max_cookie_days); sent as \"_ga=GA1.2.3; expires=Sat, 31 Jan 2026 00:00:00 GMT; path=/\""
            ),
            "{out}"
        );
        assert_eq!(
            rest(&set("_gid"), 0),
            "cap _gid analytics _gid (preset google-analytics); a Max-Age or Expires over 1year 29days 18h \
             (analytics max_cookie_days) is rewritten; sent as \"_gid=GA1.2.4; Max-Age=34128000; Max-Age=3600\""
        );
        assert_eq!(
            rest(&set("_fbp"), 0),
            "allow _fbp advertising _fbp (preset meta-pixel) — a deletion always passes"
        );
        assert!(out.contains("drop           \" = ; Path=/\": not a cookie a browser would keep (unparseable: empty name and value)"), "{out}");
        assert!(rest(&set("sid"), 0).starts_with("allow sid necessary sid (config line "), "{out}");
        assert!(!rest(&set("sid"), 0).contains("harden"), "{out}");
    }
}
