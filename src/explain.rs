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
//! `Set-Cookie` values are read by [`SetCookieFacts::parse`], a deliberately
//! small reader of the name and the `Domain`, `Max-Age` and `Expires`
//! attributes (all that a decision needs), written here because the
//! response-header stage's full parser lives in another module that is
//! being written in parallel; the output says so.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::category::CategoryId;
use crate::consent;
use crate::cookie::CookieJar;
use crate::policy::{CookieBasis, Mode, Policy, Unknown};
use crate::route::normalize_host;
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
        let _ = writeln!(out, "\nset-cookie (read by explain's own minimal Set-Cookie reader)");
        for raw in &req.set_cookies {
            let Some(facts) = SetCookieFacts::parse(raw) else {
                let action = verb(false, "allow", "drop");
                let _ = writeln!(out, "  {action:<14} {raw:?}: not a cookie (no name=value)");
                continue;
            };
            let domain = facts.domain.clone().unwrap_or_else(|| host.clone());
            let (category, basis) = policy.classify_cookie(&facts.name, &domain);
            let allowed = policy.cookie_allowed(category, granted);
            let mut why = why(policy, category, &basis, policy.unknown_cookies, "unknown_cookies", allowed);
            let mut action = verb(allowed, "allow", "block");
            if allowed {
                let rule = match basis {
                    CookieBasis::Rule(rule) => Some(rule),
                    _ => None,
                };
                if let (Some(max), Some(lifetime)) =
                    (policy.max_cookie_age(category, rule), facts.lifetime(now))
                    && lifetime > max
                {
                    action = verb(false, "", "cap");
                    let source = match rule.and_then(|r| r.max_age) {
                        Some(_) => "the rule's max_days".to_string(),
                        None => format!("{} max_cookie_days", category_name(policy, category)),
                    };
                    let _ = write!(
                        why,
                        "; lifetime {} → {} ({source})",
                        humantime::format_duration(lifetime),
                        humantime::format_duration(max)
                    );
                }
                let flags = harden_flags(policy, &facts.name);
                if !flags.is_empty() {
                    let _ = write!(why, "; harden: {flags}");
                }
            }
            let shown = match &facts.domain {
                Some(d) => format!("{} (Domain={d})", facts.name),
                None => facts.name.clone(),
            };
            let _ = writeln!(out, "  {action:<14} {shown:<28} {:<13} {why}", category_name(policy, category));
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

/// What a decision needs from a `Set-Cookie` value: its name, `Domain`,
/// and lifetime (`Max-Age` wins over `Expires`, as RFC 6265 §5.3 says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCookieFacts {
    /// Cookie name (trimmed).
    pub name: String,
    /// `Domain` attribute, lower case, without its leading dot.
    pub domain: Option<String>,
    /// `Max-Age` in seconds (negative: delete now).
    pub max_age: Option<i64>,
    /// `Expires`, when it parses as an HTTP date.
    pub expires: Option<SystemTime>,
}

impl SetCookieFacts {
    /// Reads a `Set-Cookie` value; `None` without `name=` (browsers ignore
    /// such a header). Unknown or malformed attributes are skipped, as
    /// browsers do.
    pub fn parse(raw: &str) -> Option<SetCookieFacts> {
        let mut parts = raw.split(';');
        let pair = parts.next()?;
        let (name, _) = pair.split_once('=')?;
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        let mut facts = SetCookieFacts { name: name.to_string(), domain: None, max_age: None, expires: None };
        for attribute in parts {
            let (key, value) = attribute.split_once('=').unwrap_or((attribute, ""));
            let (key, value) = (key.trim(), value.trim());
            if key.eq_ignore_ascii_case("domain") {
                let domain = value.trim_start_matches('.').to_ascii_lowercase();
                if !domain.is_empty() {
                    facts.domain = Some(domain);
                }
            } else if key.eq_ignore_ascii_case("max-age") {
                if let Ok(seconds) = value.parse::<i64>() {
                    facts.max_age = Some(seconds);
                }
            } else if key.eq_ignore_ascii_case("expires") {
                facts.expires = httpdate::parse_http_date(value).ok();
            }
        }
        Some(facts)
    }

    /// How long the cookie would live from `now`; `None` for a session
    /// cookie. Already expired is zero.
    pub fn lifetime(&self, now: SystemTime) -> Option<Duration> {
        if let Some(seconds) = self.max_age {
            return Some(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)));
        }
        self.expires.map(|at| at.duration_since(now).unwrap_or(Duration::ZERO))
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

        assert!(out.contains("set-cookie (read by explain's own minimal Set-Cookie reader)"));
        let set = |item| row(&out, "set-cookie", item);
        assert_eq!(set("_ga")[..4], ["block", "_ga", "(Domain=example.com)", "analytics"]);
        assert_eq!(set("_fbp")[..3], ["block", "_fbp", "advertising"]);
        assert_eq!(set("__cf_bm")[..3], ["allow", "__cf_bm", "necessary"]);
        assert_eq!(rest(&set("sid"), 3), "sid (config line 14); harden: +Secure +HttpOnly SameSite=Lax");
        assert_eq!(set("\"garbage-without-equals\":")[0], "drop");

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
        assert!(lines[0].contains("lifetime 10days → 1day (the rule's max_days)"), "{out}");
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

    #[test]
    fn set_cookie_facts() {
        let f = SetCookieFacts::parse(" a = b ; DOMAIN=.Example.COM; max-age=10; Expires=garbage").unwrap();
        assert_eq!(f.name, "a");
        assert_eq!(f.domain.as_deref(), Some("example.com"));
        assert_eq!(f.max_age, Some(10));
        assert_eq!(f.expires, None);
        // Max-Age beats Expires; negative means gone.
        let f = SetCookieFacts::parse("a=b; Expires=Wed, 01 Jan 2025 01:00:00 GMT; Max-Age=-1").unwrap();
        assert_eq!(f.lifetime(now()), Some(Duration::ZERO));
        let f = SetCookieFacts::parse("a=b; Expires=Wed, 01 Jan 2025 01:00:00 GMT").unwrap();
        assert_eq!(f.lifetime(now()), Some(Duration::from_secs(3600)));
        assert_eq!(SetCookieFacts::parse("a=b").unwrap().lifetime(now()), None);
        assert_eq!(SetCookieFacts::parse("noequals"), None);
        assert_eq!(SetCookieFacts::parse("=value"), None);
        assert_eq!(SetCookieFacts::parse(""), None);
    }
}
