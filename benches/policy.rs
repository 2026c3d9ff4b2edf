//! Policy lookups on the request path: cookie classification (exact names,
//! globs, regexes, unknown names, the consent cookie) and resource
//! classification (hosts, URL prefixes, inline-script signatures) over a
//! realistic policy of 30 presets plus site rules. Also what a reload
//! costs: compiling that policy.
//!
//! `reference_hashset_50_names` is the floor measured in the same run: the
//! same 50 names looked up in a `HashSet` of exact names (what a classifier
//! with no globs, regexes or domains could at best do).
//!
//! `cargo bench --bench policy -- --warm-up-time 1 --measurement-time 3`

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::PathBuf;

use consentry::config::Source;
use consentry::policy::{self, Policy};
use consentry::presets::Presets;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const PRESETS: &[&str] = &[
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

fn config() -> String {
    let presets: Vec<String> = PRESETS.iter().map(|p| format!("{p:?}")).collect();
    format!(
        r#"
[policy.default]
first_party = ["*.example.com"]
presets = [{}]
[[policy.default.cookie]]
name = "session_id"
category = "necessary"
[[policy.default.cookie]]
name = "csrftoken"
category = "necessary"
[[policy.default.cookie]]
name = "/^cart_[0-9a-f]{{16}}$/"
category = "necessary"
[[policy.default.cookie]]
name = "pref_*"
category = "functional"
[[policy.default.cookie]]
name = "lang"
category = "functional"
domain = "example.com"
[[policy.default.resource]]
match = "cdn.example-static.net"
category = "necessary"
"#,
        presets.join(", ")
    )
}

fn compile() -> Policy {
    let source = Source { path: PathBuf::from("bench.toml"), text: config() };
    let file = source.parse().unwrap();
    policy::compile("default", &source, &file.policy, &Presets::builtin().unwrap()).unwrap()
}

/// 30 Set-Cookie names and 20 request cookie names as a busy marketing
/// site sends them: exact preset names, glob-matched names, site rules,
/// and names no rule knows.
const COOKIES: [&str; 50] = [
    // Set-Cookie (30)
    "_ga",
    "_ga_4B3XZ2QK7L",
    "_gid",
    "_gcl_au",
    "_fbp",
    "__hstc",
    "hubspotutk",
    "__hssc",
    "__hssrc",
    "_hjSessionUser_3123456",
    "_hjSession_3123456",
    "_clck",
    "_clsk",
    "ai_user",
    "ai_session",
    "li_fat_id",
    "_ttp",
    "_uetsid",
    "_uetvid",
    "cto_bundle",
    "intercom-id-abc123",
    "ajs_anonymous_id",
    "mp_0123456789abcdef_mixpanel",
    "AMP_a2dbce0e18",
    "_pk_id.1.1fff",
    "__stripe_mid",
    "__cf_bm",
    "optimizelyEndUserId",
    "session_id",
    "cart_0123456789abcdef",
    // request cookies (20)
    "consentry",
    "csrftoken",
    "pref_theme",
    "lang",
    "_ga",
    "_fbp",
    "__hstc",
    "s_cc",
    "AMCV_ABC%40AdobeOrg",
    "wp-wpml_current_language",
    "PHPSESSID",
    "JSESSIONID",
    "ab_test_variant",
    "newsletter_popup_seen",
    "utm_source",
    "_cfuvid",
    "tracking_id",
    "x-feature-flags",
    "returning_visitor",
    "__utmz",
];

const URLS: [(&str, &str); 20] = [
    ("www.googletagmanager.com", "/gtag/js"),
    ("www.google-analytics.com", "/g/collect"),
    ("connect.facebook.net", "/en_US/fbevents.js"),
    ("www.facebook.com", "/tr"),
    ("js.hs-scripts.com", "/123.js"),
    ("static.hotjar.com", "/c/hotjar-1.js"),
    ("www.clarity.ms", "/tag/abc"),
    ("snap.licdn.com", "/li.lms-analytics/insight.min.js"),
    ("www.youtube-nocookie.com", "/embed/abc"),
    ("player.vimeo.com", "/video/1"),
    ("js.stripe.com", "/v3/"),
    ("challenges.cloudflare.com", "/turnstile/v0/api.js"),
    ("www.google.com", "/recaptcha/api.js"),
    ("www.google.com", "/maps/embed"),
    ("cdn.example-static.net", "/app.js"),
    ("cdn.jsdelivr.net", "/npm/bootstrap.js"),
    ("unpkg.com", "/react.js"),
    ("fonts.googleapis.com", "/css2"),
    ("assets.calendly.com", "/assets/external/widget.js"),
    ("a.b.c.d.unknown-tracker.io", "/p.gif"),
];

fn inline_scripts() -> Vec<String> {
    let filler =
        "document.querySelectorAll('.card').forEach(function (el) { el.classList.add('ready'); });\n";
    vec![
        // 1 KB of ordinary code, no signature.
        filler.repeat(12),
        // A GA4 snippet at the end of 1 KB.
        format!("{}gtag('config', 'G-XXXX');", filler.repeat(11)),
        // A Meta pixel near the start.
        format!("!function(f,b,e,v){{fbq('init','1')}};{}", filler.repeat(11)),
    ]
}

fn cookies(c: &mut Criterion) {
    let policy = compile();
    let mut group = c.benchmark_group("cookies");
    group.throughput(Throughput::Elements(COOKIES.len() as u64));
    group.bench_function("classify_50_names", |b| {
        b.iter(|| {
            let mut known = 0usize;
            for name in COOKIES {
                if policy.classify_cookie(black_box(name), black_box("www.example.com")).0.is_some() {
                    known += 1;
                }
            }
            known
        })
    });
    let exact: std::collections::HashSet<&str> = COOKIES.iter().step_by(2).copied().collect();
    group.bench_function("reference_hashset_50_names", |b| {
        b.iter(|| COOKIES.iter().filter(|name| exact.contains(black_box(*name))).count())
    });
    group.throughput(Throughput::Elements(1));
    for (label, name) in [
        ("exact", "__hstc"),
        ("glob", "_hjSessionUser_3123456"),
        ("regex", "cart_0123456789abcdef"),
        ("unknown", "returning_visitor"),
    ] {
        group.bench_function(format!("classify_one_{label}"), |b| {
            b.iter(|| policy.classify_cookie(black_box(name), black_box("www.example.com")).0)
        });
    }
    group.finish();
}

fn resources(c: &mut Criterion) {
    let policy = compile();
    let mut group = c.benchmark_group("resources");
    group.throughput(Throughput::Elements(URLS.len() as u64));
    group.bench_function("classify_20_urls", |b| {
        b.iter(|| {
            URLS.iter()
                .filter(|(host, path)| {
                    policy.resources.classify_url(black_box(host), black_box(path)).is_some()
                })
                .count()
        })
    });
    let scripts = inline_scripts();
    let bytes: usize = scripts.iter().map(String::len).sum();
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("classify_3_inline_scripts_1k", |b| {
        b.iter(|| scripts.iter().filter(|s| policy.resources.classify_inline(black_box(s)).is_some()).count())
    });
    group.finish();
}

fn compile_cost(c: &mut Criterion) {
    // Built-in presets are parsed once per process; this is what each
    // reload pays on top: merge, validate, build the maps and automata.
    let _ = Presets::builtin();
    c.bench_function("compile_policy_30_presets", |b| b.iter(compile));
}

criterion_group!(benches, cookies, resources, compile_cost);
criterion_main!(benches);
