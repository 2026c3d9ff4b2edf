//! The cookie declaration: the table a cookie policy publishes (category,
//! name, domain, provider, purpose, legal basis, duration), built from the
//! policy's cookie rules (config and presets), the consent cookie itself,
//! and what the [inventory](crate::inventory) observed, so that a cookie the
//! origin sets but no rule describes is listed as `unclassified` instead of
//! silently missing.
//!
//! Grouped by category in the policy's order, each with its description.
//! Legal basis: `necessary` → legitimate interest, every other category →
//! consent (as in the published policies in `../shared/seeds/`).
//!
//! Three renderings: JSON (everything, including observation counts),
//! Markdown (GFM tables; `|`, `\` and Markdown punctuation escaped, newlines
//! folded, so no cell can break the table or inject markup) and an HTML
//! fragment (`<section>` with one `<table>` per category, every text
//! escaped) that a CMS page can embed.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use crate::category::CategoryId;
use crate::consent::Format as ConsentFormat;
use crate::inventory::{Kind, SiteView, rfc3339};
use crate::metrics::UNCLASSIFIED;
use crate::policy::{CookieBasis, Policy, Unknown};
use crate::route::Site;

/// How the declaration is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`.
    Json,
    /// GitHub-flavoured Markdown.
    Markdown,
    /// An HTML fragment.
    Html,
}

impl Format {
    /// Parses `json`, `md` (or `markdown`) and `html`.
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "json" => Some(Format::Json),
            "md" | "markdown" => Some(Format::Markdown),
            "html" => Some(Format::Html),
            _ => None,
        }
    }

    /// The `Content-Type` of the rendering.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Markdown => "text/markdown; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
        }
    }
}

/// The whole declaration of one site.
#[derive(Debug, Clone, Serialize)]
pub struct Declaration {
    /// The site's name.
    pub site: String,
    /// Its policy's name.
    pub policy: String,
    /// Categories in policy order; `unclassified` last when anything was
    /// observed that no rule describes.
    pub categories: Vec<Group>,
}

/// One category and its cookies.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// Category name.
    pub name: String,
    /// What it is for, as the policy describes it.
    pub description: String,
    /// `Legitimate interest` (necessary), `Consent`, or for unclassified
    /// cookies `Not classified`.
    pub legal_basis: String,
    /// Its cookies.
    pub cookies: Vec<Row>,
}

/// One cookie (or cookie name pattern).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Name or pattern as the rule writes it (`_ga_*`).
    pub name: String,
    /// Who sets it.
    pub provider: String,
    /// Why.
    pub purpose: String,
    /// Declared lifetime (`13 months`), else the lifetime cap.
    pub duration: String,
    /// The rule's domain, else the domains it was observed on, else the
    /// site's host.
    pub domain: String,
    /// Where the row comes from: `config line N`, `preset NAME`, `consent
    /// cookie` or `observed`.
    pub source: String,
    /// What the inventory saw of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observed>,
}

/// Sightings aggregated over every inventory entry a row covers.
#[derive(Debug, Clone, Serialize)]
pub struct Observed {
    /// Times seen.
    pub count: u64,
    /// First sighting.
    #[serde(serialize_with = "rfc3339")]
    pub first_seen: u64,
    /// Last sighting.
    #[serde(serialize_with = "rfc3339")]
    pub last_seen: u64,
    /// Names seen (a pattern row can cover several).
    pub names: BTreeSet<String>,
    /// Domains seen.
    pub domains: BTreeSet<String>,
}

impl Observed {
    fn add(slot: &mut Option<Observed>, name: &str, domain: &str, count: u64, first: u64, last: u64) {
        let o = slot.get_or_insert_with(|| Observed {
            count: 0,
            first_seen: first,
            last_seen: last,
            names: BTreeSet::new(),
            domains: BTreeSet::new(),
        });
        o.count += count;
        o.first_seen = o.first_seen.min(first);
        o.last_seen = o.last_seen.max(last);
        o.names.insert(name.to_string());
        o.domains.insert(domain.to_string());
    }
}

/// Who provides a consent manager's cookie, for the consent cookie's row.
fn consent_provider(format: ConsentFormat) -> &'static str {
    match format {
        ConsentFormat::Consentry => "consentry",
        ConsentFormat::CookieConsent => "cookieconsent",
        ConsentFormat::Klaro => "Klaro",
        ConsentFormat::Cookiebot => "Cookiebot",
        ConsentFormat::OneTrust => "OneTrust",
        ConsentFormat::CookieYes => "CookieYes",
        ConsentFormat::Complianz => "Complianz",
        ConsentFormat::Tcf => "IAB TCF consent management platform",
    }
}

fn days(secs: u64) -> String {
    let days = secs / 86_400;
    if days == 1 { "1 day".into() } else { format!("{days} days") }
}

/// Builds a site's declaration from its policy and its inventory.
pub fn build(site: &Site, observed: &SiteView) -> Declaration {
    let policy: &Policy = &site.policy;
    let host = site.hosts.first().map(|h| h.trim_start_matches("*.").to_string()).unwrap_or_default();
    let mut groups: Vec<Group> = policy
        .categories
        .iter()
        .map(|(id, c)| Group {
            name: c.name.clone(),
            description: c.description.clone(),
            legal_basis: if id == CategoryId::NECESSARY { "Legitimate interest" } else { "Consent" }.into(),
            cookies: Vec::new(),
        })
        .collect();

    // The consent cookie comes first: always necessary, whatever a rule
    // says, but a rule naming it exactly gives its text.
    let rules = policy.cookies.rules();
    let consent = &policy.consent;
    let consent_rule = rules.iter().position(|r| r.pattern == consent.cookie);
    groups[0].cookies.push(match consent_rule.map(|i| &rules[i]) {
        Some(rule) => Row {
            name: rule.pattern.clone(),
            provider: rule.provider.clone(),
            purpose: rule.purpose.clone(),
            duration: rule.duration.clone(),
            domain: rule.domain.clone().or_else(|| consent.cookie_domain.clone()).unwrap_or_default(),
            source: rule.origin.to_string(),
            observed: None,
        },
        None => Row {
            name: consent.cookie.clone(),
            provider: consent_provider(consent.format).into(),
            purpose: "Stores your cookie consent choice.".into(),
            duration: consent.max_age.map(|d| days(d.as_secs())).unwrap_or_default(),
            domain: consent.cookie_domain.clone().unwrap_or_default(),
            source: "consent cookie".into(),
            observed: None,
        },
    });
    let consent_row = (0, 0);

    // Rule rows, in precedence order; a later rule with the same pattern and
    // domain is shadowed and would only repeat the row.
    let mut rule_row: Vec<Option<(usize, usize)>> = vec![None; rules.len()];
    let mut seen = BTreeSet::new();
    for (i, rule) in rules.iter().enumerate() {
        if !seen.insert((rule.pattern.as_str(), rule.domain.as_deref())) {
            continue;
        }
        if Some(i) == consent_rule {
            rule_row[i] = Some(consent_row);
            continue;
        }
        let g = rule.category.index();
        let Some(group) = groups.get_mut(g) else { continue };
        let duration = if rule.duration.is_empty() {
            policy
                .max_cookie_age(Some(rule.category), Some(rule))
                .map(|d| format!("at most {}", days(d.as_secs())))
        } else {
            Some(rule.duration.clone())
        };
        group.cookies.push(Row {
            name: rule.pattern.clone(),
            provider: rule.provider.clone(),
            purpose: rule.purpose.clone(),
            duration: duration.unwrap_or_default(),
            domain: rule.domain.clone().unwrap_or_default(),
            source: rule.origin.to_string(),
            observed: None,
        });
        rule_row[i] = Some((g, group.cookies.len() - 1));
    }

    // Observations: attach each observed cookie to the row that classifies
    // it now; the rest are unclassified.
    let mut unclassified: Vec<Row> = Vec::new();
    for e in observed.entries.iter().filter(|e| e.kind == Kind::Cookie) {
        let (count, first, last) = (e.count, e.first_seen, e.last_seen);
        let target = match policy.classify_cookie(&e.name, &e.domain).1 {
            CookieBasis::ConsentCookie => Some(consent_row),
            CookieBasis::Rule(rule) => {
                rules.iter().position(|r| std::ptr::eq(r, rule)).and_then(|i| rule_row[i])
            }
            CookieBasis::Unknown => None,
        };
        match target {
            Some((g, r)) => {
                Observed::add(&mut groups[g].cookies[r].observed, &e.name, &e.domain, count, first, last);
            }
            None => {
                let row = match unclassified.iter_mut().find(|r| r.name == e.name) {
                    Some(row) => row,
                    None => {
                        unclassified.push(Row {
                            name: e.name.clone(),
                            provider: String::new(),
                            purpose: String::new(),
                            duration: String::new(),
                            domain: String::new(),
                            source: "observed".into(),
                            observed: None,
                        });
                        unclassified.last_mut().expect("just pushed")
                    }
                };
                Observed::add(&mut row.observed, &e.name, &e.domain, count, first, last);
            }
        }
    }
    if !unclassified.is_empty() {
        unclassified.sort_by(|a, b| a.name.cmp(&b.name));
        groups.push(Group {
            name: UNCLASSIFIED.into(),
            description: match policy.unknown_cookies {
                Unknown::Block => "Seen on this site but described by no rule: blocked until classified.",
                Unknown::Allow => {
                    "Seen on this site but described by no rule: allowed by the policy's default."
                }
            }
            .into(),
            legal_basis: "Not classified".into(),
            cookies: unclassified,
        });
    }

    for row in groups.iter_mut().flat_map(|g| g.cookies.iter_mut()) {
        if row.domain.is_empty() {
            row.domain = match &row.observed {
                Some(o) if !o.domains.is_empty() => o.domains.iter().cloned().collect::<Vec<_>>().join(", "),
                _ => host.clone(),
            };
        }
    }

    Declaration { site: site.name.clone(), policy: policy.name.clone(), categories: groups }
}

/// `analytics` → `Analytics`.
fn title(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Escapes text for a GFM table cell: backslash-escapes the characters that
/// could end the cell or start markup, and folds line breaks to spaces.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '~' | '&' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

const COLUMNS: [&str; 6] = ["Cookie Name", "Domain", "Provider", "Purpose", "Legal Basis", "Duration"];

fn cells<'a>(group: &'a Group, row: &'a Row) -> [&'a str; 6] {
    [&row.name, &row.domain, &row.provider, &row.purpose, &group.legal_basis, &row.duration]
}

impl Declaration {
    /// Renders in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => self.to_json(),
            Format::Markdown => self.to_markdown(),
            Format::Html => self.to_html(),
        }
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Markdown: a heading, description and table per category.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Cookie declaration: {}\n", escape_markdown(&self.site));
        for group in &self.categories {
            let _ = writeln!(out, "## {}\n", escape_markdown(&title(&group.name)));
            if !group.description.is_empty() {
                let _ = writeln!(out, "{}\n", escape_markdown(&group.description));
            }
            if group.cookies.is_empty() {
                out.push_str("No cookies in this category.\n\n");
                continue;
            }
            let _ = writeln!(out, "| {} |", COLUMNS.join(" | "));
            let _ = writeln!(out, "|{}", "---|".repeat(COLUMNS.len()));
            for row in &group.cookies {
                out.push('|');
                for cell in cells(group, row) {
                    let _ = write!(out, " {} |", escape_markdown(cell));
                }
                out.push('\n');
            }
            out.push('\n');
        }
        out
    }

    /// An HTML fragment: one `<section>` with a heading, description and
    /// table per category.
    pub fn to_html(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "<section class=\"consentry-declaration\" data-site=\"{}\">",
            crate::html::escape(&self.site)
        );
        for group in &self.categories {
            let _ = writeln!(
                out,
                "<h2 id=\"category-{}\">{}</h2>",
                crate::html::escape(&group.name),
                crate::html::escape(&title(&group.name))
            );
            if !group.description.is_empty() {
                let _ = writeln!(out, "<p>{}</p>", crate::html::escape(&group.description));
            }
            if group.cookies.is_empty() {
                out.push_str("<p>No cookies in this category.</p>\n");
                continue;
            }
            out.push_str("<table>\n<thead><tr>");
            for c in COLUMNS {
                let _ = write!(out, "<th scope=\"col\">{c}</th>");
            }
            out.push_str("</tr></thead>\n<tbody>\n");
            for row in &group.cookies {
                out.push_str("<tr>");
                for cell in cells(group, row) {
                    let _ = write!(out, "<td>{}</td>", crate::html::escape(cell));
                }
                out.push_str("</tr>\n");
            }
            out.push_str("</tbody>\n</table>\n");
        }
        out.push_str("</section>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;
    use crate::decision::{Action, Decision, Item};
    use crate::inventory::Inventory;
    use crate::snapshot::Snapshot;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    fn site(policy: &str) -> Arc<Site> {
        let text = format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[[site]]\nname = \"shop\"\nhosts = [\"shop.test\"]\norigin = \"http://127.0.0.1:1\"\npolicy = \"p\"\n{policy}"
        );
        let snap = Snapshot::compile(&Source { path: PathBuf::from("t.toml"), text }, 1).unwrap();
        snap.router.sites()[0].clone()
    }

    const POLICY: &str = r#"
[policy.p.categories]
necessary = { description = "Sign-in & security" }
analytics = { description = "Audience measurement", max_cookie_days = 395 }
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
purpose = "Audience | measurement <b>"
domain = ".shop.test"
"#;

    fn observe(site: &Site, names: &[(&str, &str)]) -> SiteView {
        let inv = Inventory::new(100);
        for (i, (name, domain)) in names.iter().enumerate() {
            let (category, _) = site.policy.classify_cookie(name, domain);
            inv.record(
                site,
                &site.policy,
                &[Decision {
                    item: Item::SetCookie,
                    name: (*name).into(),
                    domain: (*domain).into(),
                    category,
                    action: Action::Allow,
                    rule: "".into(),
                }],
                UNIX_EPOCH + Duration::from_secs(100 + i as u64),
            );
        }
        inv.view(&site.name, None)
    }

    #[test]
    fn groups_rules_consent_cookie_and_observations() {
        let site = site(POLICY);
        let view =
            observe(&site, &[("_ga_X1", "shop.test"), ("_ga_X2", "www.shop.test"), ("mystery", "shop.test")]);
        let d = build(&site, &view);
        let names: Vec<&str> = d.categories.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["necessary", "analytics", "advertising", "unclassified"]);
        let necessary = &d.categories[0];
        assert_eq!(necessary.legal_basis, "Legitimate interest");
        assert_eq!(necessary.cookies[0].name, "consentry");
        assert_eq!(necessary.cookies[0].source, "consent cookie");
        assert_eq!(necessary.cookies[0].duration, "180 days");
        assert_eq!(necessary.cookies[0].domain, "shop.test");
        assert_eq!(necessary.cookies[1].name, "sessionid");
        assert_eq!(necessary.cookies[1].domain, "shop.test");
        let analytics = &d.categories[1];
        assert_eq!(analytics.legal_basis, "Consent");
        assert_eq!(analytics.cookies.len(), 1, "the shadowed duplicate rule is not repeated");
        let ga = &analytics.cookies[0];
        assert_eq!(ga.duration, "at most 395 days");
        assert_eq!(ga.domain, "shop.test");
        let seen = ga.observed.as_ref().unwrap();
        assert_eq!(seen.count, 2);
        assert_eq!(seen.names.iter().map(String::as_str).collect::<Vec<_>>(), ["_ga_X1", "_ga_X2"]);
        assert_eq!((seen.first_seen, seen.last_seen), (100, 101));
        assert!(d.categories[2].cookies.is_empty());
        let unclassified = &d.categories[3];
        assert_eq!(unclassified.cookies[0].name, "mystery");
        assert_eq!(unclassified.cookies[0].source, "observed");
        assert_eq!(unclassified.cookies[0].domain, "shop.test");
        assert_eq!(unclassified.legal_basis, "Not classified");
    }

    #[test]
    fn a_rule_for_the_consent_cookie_describes_it() {
        let site = site(
            "[policy.p]\n[[policy.p.cookie]]\nname = \"consentry\"\ncategory = \"functional\"\nprovider = \"Us\"\npurpose = \"Your choice\"\n[[policy.p.cookie]]\nname = \"lang\"\ncategory = \"functional\"\n",
        );
        let view = observe(&site, &[("consentry", "shop.test"), ("lang", "shop.test")]);
        let d = build(&site, &view);
        let first = &d.categories[0].cookies[0];
        assert_eq!((first.name.as_str(), first.provider.as_str()), ("consentry", "Us"));
        assert_eq!(first.observed.as_ref().unwrap().count, 1);
        assert_eq!(d.categories[0].cookies.len(), 1);
        let functional = d.categories.iter().find(|g| g.name == "functional").unwrap();
        assert_eq!(functional.cookies.len(), 1);
        assert_eq!(functional.cookies[0].name, "lang");
        assert_eq!(functional.cookies[0].observed.as_ref().unwrap().count, 1);
    }

    #[test]
    fn markdown_escapes_cells() {
        assert_eq!(escape_markdown("a|b\\c\nd <x> *y* _z_"), "a\\|b\\\\c d \\<x\\> \\*y\\* \\_z\\_");
        let site = site(POLICY);
        let md = build(&site, &observe(&site, &[])).to_markdown();
        assert!(md.contains("| \\_ga\\_\\* | shop.test | Google Analytics 4 | Audience \\| measurement \\<b\\> | Consent | at most 395 days |"), "{md}");
        assert!(md.contains("## Analytics\n\nAudience measurement\n"), "{md}");
        assert!(md.contains("Sign-in \\& security"), "{md}");
        // Every table row has exactly the column count of pipes that are not escaped.
        for line in md.lines().filter(|l| l.starts_with('|')) {
            let unescaped =
                line.char_indices().filter(|&(i, c)| c == '|' && !line[..i].ends_with('\\')).count();
            assert_eq!(unescaped, COLUMNS.len() + 1, "{line}");
        }
    }

    #[test]
    fn html_escapes_text() {
        assert_eq!(
            crate::html::escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let site = site(POLICY);
        let html = build(&site, &observe(&site, &[("<script>alert(1)</script>", "shop.test")])).to_html();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(html.contains("<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>"), "{html}");
        assert!(html.contains("<td>Audience | measurement &lt;b&gt;</td>"), "{html}");
        assert!(html.contains("<p>Sign-in &amp; security</p>"), "{html}");
        assert!(html.starts_with("<section class=\"consentry-declaration\" data-site=\"shop\">"));
    }

    #[test]
    fn json_has_every_field() {
        let site = site(POLICY);
        let json: serde_json::Value =
            serde_json::from_str(&build(&site, &observe(&site, &[("_ga_1", "shop.test")])).to_json())
                .unwrap();
        assert_eq!(json["site"], "shop");
        assert_eq!(json["policy"], "p");
        let ga = &json["categories"][1]["cookies"][0];
        assert_eq!(ga["provider"], "Google Analytics 4");
        assert_eq!(ga["source"], "config line 19");
        assert_eq!(ga["observed"]["count"], 1);
        assert_eq!(ga["observed"]["first_seen"], "1970-01-01T00:01:40Z");
        assert!(json["categories"][0]["cookies"][1].get("observed").is_none());
    }

    #[test]
    fn formats_parse() {
        assert_eq!(Format::parse("md"), Some(Format::Markdown));
        assert_eq!(Format::parse("markdown"), Some(Format::Markdown));
        assert_eq!(Format::parse("xml"), None);
        assert_eq!(Format::Html.content_type(), "text/html; charset=utf-8");
    }
}
