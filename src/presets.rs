//! Built-in rule sets for well-known services (`presets = ["hubspot"]`).
//!
//! Each preset is a data file in `config/presets/NAME.toml`, written from
//! public facts (cookie names, hosts, category, provider, purpose, usual
//! lifetime) and embedded in the binary at build time by `build.rs`. A policy
//! may also name a directory of its own presets (`presets_dir`), which is
//! read from disk and watched for changes like the config itself.
//!
//! A preset file has the same `[[cookie]]` and `[[resource]]` tables as a
//! policy, plus a `provider` used when a rule names none.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_spanned::Spanned;

use crate::config::{ConfigError, CookieRule, ResourceRule, Source};

mod generated {
    include!(concat!(env!("OUT_DIR"), "/presets.rs"));
}

/// One preset file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// Who provides the service (`Google Analytics 4`).
    pub provider: String,
    /// What the service is, for the declaration.
    #[serde(default)]
    pub description: String,
    /// Public documentation the facts were taken from.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Cookie rules.
    #[serde(default)]
    pub cookie: Vec<Spanned<CookieRule>>,
    /// Resource rules.
    #[serde(default)]
    pub resource: Vec<Spanned<ResourceRule>>,
}

/// A parsed preset with the source it came from (for error locations).
#[derive(Debug, Clone)]
pub struct LoadedPreset {
    /// File stem: the name policies use.
    pub name: String,
    /// Its text and path (`<builtin>/NAME.toml` for embedded ones).
    pub source: Source,
    /// Its rules.
    pub preset: Preset,
}

/// The presets a configuration can name: the built-in ones, then those of
/// an optional directory (which may override a built-in of the same name).
#[derive(Debug, Clone, Default)]
pub struct Presets {
    by_name: BTreeMap<String, LoadedPreset>,
    /// Files read from disk, to watch for changes.
    pub files: Vec<PathBuf>,
}

impl Presets {
    /// The built-in presets only. They are parsed once per process (they
    /// are part of the binary and cannot change) and cloned from then on.
    pub fn builtin() -> Result<Presets, ConfigError> {
        static BUILTIN: OnceLock<Result<Presets, ConfigError>> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                let mut presets = Presets::default();
                for (name, text) in generated::BUILTIN {
                    let source = Source {
                        path: PathBuf::from(format!("<builtin>/config/presets/{name}.toml")),
                        text: (*text).to_string(),
                    };
                    presets.add(name, source)?;
                }
                Ok(presets)
            })
            .clone()
    }

    /// The built-in presets plus every `*.toml` file in `dir`.
    pub fn with_dir(dir: &Path) -> Result<Presets, ConfigError> {
        let mut presets = Presets::builtin()?;
        let entries = std::fs::read_dir(dir).map_err(|e| ConfigError {
            file: dir.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read presets directory: {e}"),
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let source = Source::read(&path)?;
            presets.add(&name, source)?;
            presets.files.push(path);
        }
        Ok(presets)
    }

    fn add(&mut self, name: &str, source: Source) -> Result<(), ConfigError> {
        let preset: Preset = toml::from_str(&source.text).map_err(|e| {
            let message = e.message().trim().to_string();
            match e.span() {
                Some(span) => source.error_at(span, message),
                None => source.error(message),
            }
        })?;
        self.by_name.insert(name.to_string(), LoadedPreset { name: name.to_string(), source, preset });
        Ok(())
    }

    /// The preset with this name.
    pub fn get(&self, name: &str) -> Option<&LoadedPreset> {
        self.by_name.get(name)
    }

    /// Every preset, by name.
    pub fn iter(&self) -> impl Iterator<Item = &LoadedPreset> {
        self.by_name.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::CategoryId;
    use crate::policy::{self, NamePattern, Policy, ResourceMatch};
    use std::collections::BTreeMap;

    /// The services the issue and the other stages rely on, by exact name.
    const REQUIRED: &[&str] = &[
        "google-analytics",
        "google-tag-manager",
        "google-ads",
        "meta-pixel",
        "hubspot",
        "hotjar",
        "microsoft-clarity",
        "application-insights",
        "linkedin-insight",
        "tiktok-pixel",
        "twitter-pixel",
        "pinterest",
        "bing-uet",
        "criteo",
        "youtube",
        "vimeo",
        "calendly",
        "intercom",
        "zendesk",
        "drift",
        "segment",
        "mixpanel",
        "amplitude",
        "matomo",
        "stripe",
        "cloudflare",
        "recaptcha",
        "adobe-analytics",
        "optimizely",
        "sentry",
    ];

    const CATEGORIES: [&str; 4] = ["necessary", "functional", "analytics", "advertising"];

    fn everything() -> Policy {
        let presets = Presets::builtin().unwrap();
        let names: Vec<String> = presets.iter().map(|p| format!("{:?}", p.name)).collect();
        let text = format!("[policy.default]\npresets = [{}]\n", names.join(", "));
        let source = Source { path: PathBuf::from("all.toml"), text };
        let file = source.parse().unwrap();
        policy::compile("default", &source, &file.policy, &presets).unwrap()
    }

    #[test]
    fn every_required_preset_exists_and_is_documented() {
        let presets = Presets::builtin().unwrap();
        for name in REQUIRED {
            assert!(presets.get(name).is_some(), "missing preset {name}");
        }
        assert!(presets.iter().count() >= 30);
        for p in presets.iter() {
            let preset = &p.preset;
            assert!(!preset.provider.is_empty(), "{} has no provider", p.name);
            assert!(!preset.description.is_empty(), "{} has no description", p.name);
            assert!(!preset.sources.is_empty(), "{} names no source", p.name);
            for s in &preset.sources {
                assert!(s.starts_with("https://"), "{}: source {s:?} is not a URL", p.name);
            }
            assert!(!preset.cookie.is_empty() || !preset.resource.is_empty(), "{} is empty", p.name);
            for c in &preset.cookie {
                let c = c.get_ref();
                assert!(CATEGORIES.contains(&c.category.get_ref().as_str()), "{}: {:?}", p.name, c.category);
                assert!(!c.purpose.is_empty(), "{}: cookie {} has no purpose", p.name, c.name.get_ref());
                assert!(!c.duration.is_empty(), "{}: cookie {} has no duration", p.name, c.name.get_ref());
            }
            for r in &preset.resource {
                let r = r.get_ref();
                assert!(CATEGORIES.contains(&r.category.get_ref().as_str()), "{}: {:?}", p.name, r.category);
            }
        }
    }

    #[test]
    fn a_user_preset_replaces_the_builtin_of_the_same_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("hotjar.toml"),
            "provider = \"Hotjar (self-reviewed)\"\n[[cookie]]\nname = \"_hjid\"\ncategory = \"functional\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a preset").unwrap();
        let presets = Presets::with_dir(dir.path()).unwrap();
        let hotjar = presets.get("hotjar").unwrap();
        assert_eq!(hotjar.preset.provider, "Hotjar (self-reviewed)");
        assert_eq!(hotjar.source.path, dir.path().join("hotjar.toml"));
        assert_eq!(presets.files, vec![dir.path().join("hotjar.toml")]);
        assert!(presets.get("google-analytics").is_some(), "the other built-ins stay");

        std::fs::write(dir.path().join("broken.toml"), "provider = 1\n").unwrap();
        let err = Presets::with_dir(dir.path()).unwrap_err();
        assert_eq!(
            (err.file.clone(), err.line, err.column),
            (dir.path().join("broken.toml"), 1, 12),
            "{err}"
        );
    }

    #[test]
    fn all_presets_compile_together() {
        let policy = everything();
        assert!(policy.cookies.rules().len() > 150, "{}", policy.cookies.rules().len());
        assert!(policy.resources.rules().len() > 100, "{}", policy.resources.rules().len());
    }

    /// Built-in presets never disagree about a cookie or a resource: when
    /// two name the same thing (`__cf_bm`, `MUID`...), or a glob of one
    /// covers an exact name of another, the category is the same. That is
    /// what makes the order of `presets = [...]` irrelevant to decisions.
    #[test]
    fn presets_agree_with_each_other() {
        let presets = Presets::builtin().unwrap();
        let mut cookies: Vec<(String, String, Option<String>, String)> = Vec::new();
        let mut resources: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut problems = Vec::new();
        for p in presets.iter() {
            for c in &p.preset.cookie {
                let c = c.get_ref();
                cookies.push((
                    p.name.clone(),
                    c.name.get_ref().clone(),
                    c.domain.clone(),
                    c.category.get_ref().clone(),
                ));
            }
            for r in &p.preset.resource {
                let r = r.get_ref();
                let key = format!("{:?}", ResourceMatch::parse(r.matches.get_ref()).unwrap());
                let cat = r.category.get_ref().clone();
                if let Some((other, other_cat)) = resources.get(&key)
                    && *other_cat != cat
                    && *other != p.name
                {
                    problems.push(format!("{key}: {other} says {other_cat}, {} says {cat}", p.name));
                }
                resources.insert(key, (p.name.clone(), cat));
            }
        }
        for (pa, name_a, _, cat_a) in &cookies {
            let pattern = NamePattern::compile(name_a).unwrap();
            for (pb, name_b, _, cat_b) in &cookies {
                if pa == pb || cat_a == cat_b {
                    continue;
                }
                // Same pattern, or a pattern of one covering an exact name
                // of the other.
                let exact_b = !name_b.contains(['*', '?', '[', '{', '/']);
                if name_a == name_b || (exact_b && pattern.matches(name_b)) {
                    problems.push(format!("{name_b}: {pa} ({name_a}) says {cat_a}, {pb} says {cat_b}"));
                }
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }

    fn category_of(policy: &Policy, script: &str) -> Option<String> {
        policy
            .resources
            .classify_inline(script)
            .map(|r| format!("{} ({})", policy.categories.name(r.category), r.origin))
    }

    /// Inline signatures catch the real snippets each service documents...
    #[test]
    fn inline_signatures_match_the_real_snippets() {
        let policy = everything();
        let snippets: &[(&str, &str)] = &[
            (
                "window.dataLayer = window.dataLayer || [];\n  function gtag(){dataLayer.push(arguments);}\n  gtag('js', new Date());\n  gtag('config', 'G-XXXXXXX');",
                "preset google-analytics",
            ),
            (
                "(function(w,d,s,l,i){w[l]=w[l]||[];w[l].push({'gtm.start':new Date().getTime(),event:'gtm.js'});var f=d.getElementsByTagName(s)[0],j=d.createElement(s),dl=l!='dataLayer'?'&l='+l:'';j.async=true;j.src='https://www.googletagmanager.com/gtm.js?id='+i+dl;f.parentNode.insertBefore(j,f);})(window,document,'script','dataLayer','GTM-XXXX');",
                "preset google-tag-manager",
            ),
            (
                "!function(f,b,e,v,n,t,s){if(f.fbq)return;n=f.fbq=function(){n.callMethod?n.callMethod.apply(n,arguments):n.queue.push(arguments)};t.src=v;}(window, document,'script','https://connect.facebook.net/en_US/fbevents.js');\nfbq('init', '123');\nfbq('track', 'PageView');",
                "preset meta-pixel",
            ),
            ("var _hsq = window._hsq = window._hsq || [];\n_hsq.push(['setPath', '/']);", "preset hubspot"),
            (
                "(function(h,o,t,j,a,r){h.hj=h.hj||function(){(h.hj.q=h.hj.q||[]).push(arguments)};h._hjSettings={hjid:1234,hjsv:6};a=o.getElementsByTagName('head')[0];r=o.createElement('script');r.async=1;r.src=t+h._hjSettings.hjid+j+h._hjSettings.hjsv;a.appendChild(r);})(window,document,'https://static.hotjar.com/c/hotjar-','.js?sv=');",
                "preset hotjar",
            ),
            (
                "(function(c,l,a,r,i,t,y){c[a]=c[a]||function(){(c[a].q=c[a].q||[]).push(arguments)};t=l.createElement(r);t.async=1;t.src=\"https://www.clarity.ms/tag/\"+i;y=l.getElementsByTagName(r)[0];y.parentNode.insertBefore(t,y);})(window, document, \"clarity\", \"script\", \"abcdef1234\");",
                "preset microsoft-clarity",
            ),
            (
                "_linkedin_partner_id = \"123456\"; window._linkedin_data_partner_ids = window._linkedin_data_partner_ids || []; window._linkedin_data_partner_ids.push(_linkedin_partner_id);",
                "preset linkedin-insight",
            ),
            (
                "!function (w, d, t) { w.TiktokAnalyticsObject=t; var ttq=w[t]=w[t]||[]; ttq.load('C123'); ttq.page(); }(window, document, 'ttq');",
                "preset tiktok-pixel",
            ),
            (
                "!function(e,t,n,s,u,a){e.twq||(s=e.twq=function(){s.exe?s.exe.apply(s,arguments):s.queue.push(arguments);},s.version='1.1',s.queue=[],u=t.createElement(n),u.async=!0,u.src='https://static.ads-twitter.com/uwt.js',a=t.getElementsByTagName(n)[0],a.parentNode.insertBefore(u,a))}(window,document,'script');\ntwq('config','abc');",
                "preset twitter-pixel",
            ),
            (
                "!function(e){if(!window.pintrk){window.pintrk = function () {window.pintrk.queue.push(Array.prototype.slice.call(arguments))};var n=window.pintrk;n.queue=[],n.version=\"3.0\";var t=document.createElement(\"script\");t.async=!0,t.src=e;}}(\"https://s.pinimg.com/ct/core.js\"); pintrk('load', '123');",
                "preset pinterest",
            ),
            (
                "(function(w,d,t,r,u){var f,n,i;w[u]=w[u]||[],f=function(){var o={ti:\"123\"};o.q=w[u],w[u]=new UET(o),w[u].push(\"pageLoad\")},n=d.createElement(t),n.src=r,n.async=1;})(window,document,\"script\",\"//bat.bing.com/bat.js\",\"uetq\");",
                "preset bing-uet",
            ),
            (
                "window.criteo_q = window.criteo_q || []; window.criteo_q.push({ event: \"setAccount\", account: 123 });",
                "preset criteo",
            ),
            (
                "!function(){var analytics=window.analytics=window.analytics||[];if(!analytics.initialize)if(analytics.invoked)window.console&&console.error&&console.error(\"Segment snippet included twice.\");else{analytics.load=function(t,e){var n=document.createElement(\"script\");n.src=\"https://cdn.segment.com/analytics.js/v1/\"+t+\"/analytics.min.js\";}}}();",
                "preset segment",
            ),
            ("mixpanel.init(\"YOUR_TOKEN\", {debug: true, track_pageview: true});", "preset mixpanel"),
            ("amplitude.init('a2dbce0e18dfe5f8e', {defaultTracking: true});", "preset amplitude"),
            (
                "var _paq = window._paq = window._paq || [];\n_paq.push(['trackPageView']);\n_paq.push(['enableLinkTracking']);",
                "preset matomo",
            ),
            (
                "window.intercomSettings = { api_base: \"https://api-iam.intercom.io\", app_id: \"abc\" };",
                "preset intercom",
            ),
            ("Calendly.initPopupWidget({url: 'https://calendly.com/acme'});", "preset calendly"),
            ("Sentry.init({ dsn: 'https://key@o1.ingest.sentry.io/1' });", "preset sentry"),
        ];
        for (snippet, expected) in snippets {
            let got = category_of(&policy, snippet);
            assert!(
                got.as_deref().is_some_and(|g| g.ends_with(&format!("({expected})"))),
                "{expected}: got {got:?} for {snippet}"
            );
        }
    }

    /// ... and nothing in ordinary scripts that merely mention the same
    /// words ("clarity", "analytics", "segment", a Consent Mode default).
    #[test]
    fn inline_signatures_do_not_hit_unrelated_scripts() {
        let policy = everything();
        let benign = [
            "document.addEventListener('DOMContentLoaded', function () { initSlider(); });",
            "window.dataLayer = window.dataLayer || [];\nfunction gtag(){dataLayer.push(arguments);}\ngtag('consent', 'default', {'ad_storage': 'denied', 'analytics_storage': 'denied'});",
            "var clarity = measureClarity(image); // the clarity of the picture",
            "const segments = location.pathname.split('/'); analytics.track('nav', { segments });",
            "$(function(){ $('.carousel').slick({ dots: true }); });",
            "{\"@context\":\"https://schema.org\",\"@type\":\"Organization\",\"url\":\"https://www.example.com\",\"sameAs\":[\"https://www.facebook.com/example\",\"https://www.linkedin.com/company/example\",\"https://twitter.com/example\",\"https://www.youtube.com/@example\",\"https://www.pinterest.com/example\"]}",
            "new Swiper('.swiper', { loop: true, autoplay: { delay: 5000 } });",
            "function resizE(){} resizE(); clockDrift.load(); mySentry.initialize();",
            "fetch('/api/segments').then(function (r) { return r.json(); }).then(render);",
            "CookieConsent.run({ categories: { necessary: { readOnly: true }, analytics: {}, ads: {} } });",
            "window.stripeKey = 'pk_live_123'; var hubspotPortal = 42; var hotjarEnabled = false;",
            "if (window.matchMedia('(prefers-reduced-motion)').matches) { document.body.classList.add('still'); }",
        ];
        for script in benign {
            assert_eq!(category_of(&policy, script), None, "{script}");
        }
    }

    #[test]
    fn well_known_cookies_get_their_category() {
        let policy = everything();
        let cat = |name: &str, domain: &str| {
            let (id, basis) = policy.classify_cookie(name, domain);
            (id.map(|id| policy.categories.name(id).to_string()), basis.describe())
        };
        let name = |n: &str| Some(n.to_string());
        assert_eq!(cat("_ga", "example.com").0, name("analytics"));
        assert_eq!(cat("_ga_4B3XZ2QK7L", "example.com").0, name("analytics"));
        assert_eq!(cat("_gac_UA-1", "example.com").0, name("advertising"));
        assert_eq!(cat("_gcl_au", "example.com").0, name("advertising"));
        assert_eq!(cat("_fbp", "example.com").0, name("advertising"));
        assert_eq!(cat("__cf_bm", "example.com").0, name("necessary"));
        assert_eq!(cat("_cfuvid", "example.com").0, name("necessary"));
        assert_eq!(cat("intercom-session-abc123", "example.com").0, name("functional"));
        assert_eq!(cat("_pk_id.1.1fff", "example.com").0, name("analytics"));
        assert_eq!(cat("mtm_consent", "example.com").0, name("necessary"));
        assert_eq!(cat("optimizelyOptOut", "example.com").0, name("necessary"));
        assert_eq!(cat("optimizelyBuckets", "example.com").0, name("analytics"));
        assert_eq!(cat("m", "m.stripe.com").0, name("necessary"));
        assert_eq!(cat("m", "example.com").0, None, "a bare `m` on the site is not Stripe's");
        assert_eq!(cat("fr", "example.com").0, None, "a bare `fr` on the site is not Meta's");
        assert_eq!(cat("random_session", "example.com").0, None);
        // An exact name wins over another preset's glob: AMP_TOKEN is GA's,
        // even though Amplitude's AMP_* covers it too.
        assert_eq!(cat("AMP_TOKEN", "example.com").1, "AMP_TOKEN (preset google-analytics)");
        assert_eq!(cat("AMP_a2dbce0e18", "example.com").1, "AMP_* (preset amplitude)");
        assert_eq!(policy.classify_cookie("consentry", "example.com").0, Some(CategoryId::NECESSARY));
    }

    #[test]
    fn well_known_resources_get_their_category() {
        let policy = everything();
        let url = |host: &str, path: &str| {
            policy.resources.classify_url(host, path).map(|r| policy.categories.name(r.category).to_string())
        };
        assert_eq!(url("www.google-analytics.com", "/analytics.js").as_deref(), Some("analytics"));
        assert_eq!(url("www.googletagmanager.com", "/gtag/js").as_deref(), Some("analytics"));
        assert_eq!(url("challenges.cloudflare.com", "/turnstile/v0/api.js").as_deref(), Some("necessary"));
        assert_eq!(url("static.cloudflareinsights.com", "/beacon.min.js").as_deref(), Some("analytics"));
        assert_eq!(url("www.google.com", "/recaptcha/api.js").as_deref(), Some("necessary"));
        assert_eq!(url("www.google.com", "/pagead/1p-conversion/1/").as_deref(), Some("advertising"));
        assert_eq!(url("www.google.com", "/search").as_deref(), None);
        assert_eq!(url("js.stripe.com", "/v3/").as_deref(), Some("necessary"));
        assert_eq!(url("www.youtube-nocookie.com", "/embed/x").as_deref(), Some("advertising"));
        assert_eq!(url("player.vimeo.com", "/video/1").as_deref(), Some("analytics"));
        assert_eq!(url("assets.calendly.com", "/assets/external/widget.js").as_deref(), Some("functional"));
        assert_eq!(url("o123.ingest.sentry.io", "/api/1/envelope/").as_deref(), Some("analytics"));
        assert_eq!(url("cdn.example.net", "/app.js"), None);
    }
}
