//! The cookie header path: what consentry adds to every request.
//!
//! - `request/30_set_cookie_20_cookies`: one whole request — the request
//!   filter over 20 cookies in two `Cookie` headers, then the response stage
//!   over 30 `Set-Cookie` headers (kept, dropped, capped, a deletion),
//!   sweeps and `Vary` — reported per header (50 elements).
//! - `request/whole_decision`: everything `proxy.rs` decides for one
//!   request, as one number (issue 3's target: under 10 µs): read the
//!   `Cookie` headers into a jar, `Sec-GPC`, parse and verify the signed
//!   `consentry` cookie (HMAC-SHA256), then the two stages above — under a
//!   policy compiled from eight built-in presets plus site rules, as a real
//!   config is.
//! - `request/reference_header_copy`: the floor measured in the same run:
//!   cloning the same request and response `HeaderMap`s (one header copy,
//!   what any proxy that rebuilds headers pays).
//! - `set_cookie/*`: one `Set-Cookie` decision (parse + classify + record)
//!   for each outcome, and the parser alone.
//! - `cookie_date`: the RFC 6265 date parser alone.
//!
//! Times are the benchmark thread's **CPU time** (`CLOCK_THREAD_CPUTIME_ID`),
//! not wall time: on a shared machine wall time counts the moments the
//! thread waits for a core, which says nothing about the code.
//!
//! Run: `cargo bench --bench headers -- --warm-up-time 1 --measurement-time 3`

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::path::PathBuf;

/// The allocator the shipped binary uses (src/main.rs): what is measured is
/// what runs in production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use consentry::category::CategorySet;
use consentry::config::Source;
use consentry::consent::{self, Consent, Format, State};
use consentry::cookie::CookieJar;
use consentry::decision::Decisions;
use consentry::policy::{self, Policy};
use consentry::presets::Presets;
use consentry::request_filter::{apply_request, filter_request, judge_request};
use consentry::response_headers::{ResponseContext, filter_response, judge_set_cookie};
use consentry::set_cookie::{SetCookie, parse_cookie_date};
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue, StatusCode};

/// Criterion measurement: CPU time of the calling thread, in nanoseconds.
struct OnCpu(WallTime);

fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

impl Measurement for OnCpu {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, formatted as wall time is.
        self.0.formatter()
    }
}

const NOW: u64 = 1_700_000_000;
const HOST: &str = "www.callkom.io";

fn policy() -> Policy {
    // A realistic rule set: the site's own rules plus the shape of common
    // presets (exact names, globs and regexes), ~40 rules.
    let mut text = String::from(
        r#"
[policy.default]
[policy.default.categories]
necessary = {}
functional = { max_cookie_days = 183 }
analytics = { max_cookie_days = 395 }
advertising = {}
[[policy.default.harden]]
name = "sessionid"
secure = true
http_only = true
same_site = "Lax"
"#,
    );
    let rules: &[(&str, &str, Option<&str>)] = &[
        ("sessionid", "necessary", None),
        ("csrftoken", "necessary", None),
        ("__cf_bm", "necessary", Some(".callkom.io")),
        ("_cfuvid", "necessary", Some(".callkom.io")),
        ("AWSALB", "necessary", None),
        ("lang", "functional", None),
        ("hubspotutk", "functional", Some(".callkom.io")),
        ("calendly_*", "functional", None),
        ("intercom-*", "functional", None),
        ("_ga", "analytics", Some(".callkom.io")),
        ("_ga_*", "analytics", Some(".callkom.io")),
        ("_gid", "analytics", Some(".callkom.io")),
        ("_gat*", "analytics", Some(".callkom.io")),
        ("/^__hs/", "analytics", Some(".callkom.io")),
        ("/^_hj/", "analytics", None),
        ("ai_user", "analytics", None),
        ("ai_session", "analytics", None),
        ("_clck", "analytics", None),
        ("_clsk", "analytics", None),
        ("mp_*_mixpanel", "analytics", None),
        ("ajs_*", "analytics", None),
        ("_pk_id*", "analytics", None),
        ("_pk_ses*", "analytics", None),
        ("_fbp", "advertising", Some(".callkom.io")),
        ("_fbc", "advertising", Some(".callkom.io")),
        ("_gcl_*", "advertising", Some(".callkom.io")),
        ("IDE", "advertising", None),
        ("test_cookie", "advertising", None),
        ("_uetsid", "advertising", None),
        ("_uetvid", "advertising", None),
        ("MUID", "advertising", None),
        ("_ttp", "advertising", None),
        ("li_*", "advertising", None),
        ("bcookie", "advertising", None),
        ("_pin_unauth", "advertising", None),
        ("_rdt_uuid", "advertising", None),
        ("/^_tt_/", "advertising", None),
        ("personalization_id", "advertising", None),
        ("guest_id*", "advertising", None),
        ("/^optimizely/", "analytics", None),
    ];
    for (name, cat, domain) in rules {
        text.push_str(&format!("[[policy.default.cookie]]\nname = {name:?}\ncategory = {cat:?}\n"));
        if let Some(d) = domain {
            text.push_str(&format!("domain = {d:?}\n"));
        }
    }
    let source = Source { path: PathBuf::from("bench.toml"), text };
    let file = source.parse().unwrap();
    policy::compile("default", &source, &file.policy, &Presets::default()).unwrap()
}

fn consent(p: &Policy, cats: &[&str]) -> Consent {
    let mut c = Consent::none(Format::Consentry, State::Valid);
    c.granted = CategorySet::NECESSARY_ONLY;
    for cat in cats {
        c.granted.insert(p.categories.id(cat).unwrap());
    }
    c
}

/// 20 request cookies, split over two headers.
fn request() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.append(
        COOKIE,
        HeaderValue::from_static(
            "consentry=v1.2.1700000000.f-a; sessionid=8f14e45fceea167a5a36dedd4bea2543; csrftoken=Zx8k2; \
             __cf_bm=Qw1.1700000000-1-AbC; lang=fr; hubspotutk=5f4dcc3b5aa765d61d8327deb882cf99; \
             _ga=GA1.2.1234567890.1700000000; _ga_ABC123DEF=GS1.1.1700000000.1.1.1700000000.0.0.0; \
             _gid=GA1.2.987654321.1700000000; __hstc=123.abc.1700000000.1700000000.1700000000.1",
        ),
    );
    h.append(
        COOKIE,
        HeaderValue::from_static(
            "__hssc=123.1.1700000000; __hssrc=1; _hjSessionUser_123=eyJpZCI6IjEifQ==; \
             _fbp=fb.1.1700000000.123456789; _gcl_au=1.1.123.1700000000; IDE=AHWqTUk; \
             _uetvid=abcdef0123456789; MUID=0123ABCD; legacy_track=x1; AWSALB=abc/def+ghi==",
        ),
    );
    h
}

/// 30 Set-Cookie headers as a heavy page sets them.
fn set_cookies() -> Vec<HeaderValue> {
    let v = [
        "sessionid=8f14e45fceea167a5a36dedd4bea2543; Path=/; HttpOnly; Secure; SameSite=Lax",
        "csrftoken=Zx8k2; Path=/; Max-Age=31449600; SameSite=Lax",
        "__cf_bm=Qw1.1700000000-1-AbC; path=/; expires=Tue, 14-Nov-23 22:43:20 GMT; domain=.callkom.io; HttpOnly; Secure; SameSite=None",
        "_cfuvid=abc.1700000000; path=/; domain=.callkom.io; HttpOnly; Secure; SameSite=None",
        "AWSALB=abc/def+ghi==; Expires=Tue, 21 Nov 2023 22:13:20 GMT; Path=/",
        "lang=fr; Path=/; Max-Age=31536000",
        "hubspotutk=5f4dcc3b5aa765d61d8327deb882cf99; Domain=.callkom.io; Path=/; Expires=Tue, 14 May 2024 22:13:20 GMT",
        "calendly_session=xyz; Path=/; Secure; HttpOnly",
        "_ga=GA1.2.1234567890.1700000000; Domain=.callkom.io; Path=/; Max-Age=63072000",
        "_ga_ABC123DEF=GS1.1.1700000000.1.1.1700000000.0.0.0; Domain=.callkom.io; Path=/; Expires=Thu, 14 Nov 2024 22:13:20 GMT",
        "_gid=GA1.2.987654321.1700000000; Domain=.callkom.io; Path=/; Max-Age=86400",
        "_gat_UA-1=1; Domain=.callkom.io; Path=/; Max-Age=60",
        "__hstc=123.abc.1700000000.1700000000.1700000000.1; Domain=.callkom.io; Path=/; Expires=Sun, 12 May 2024 22:13:20 GMT",
        "__hssc=123.1.1700000000; Domain=.callkom.io; Path=/; Max-Age=1800",
        "__hssrc=1; Domain=.callkom.io; Path=/",
        "_hjSessionUser_123=eyJpZCI6IjEifQ==; Path=/; Expires=Thu, 14 Nov 2024 22:13:20 GMT; SameSite=Lax",
        "ai_user=abc|2023-11-14T22:13:20.000Z; Path=/; Max-Age=31536000; Secure; SameSite=None",
        "_clck=1abc|2|fgt|0|1; Domain=.callkom.io; Path=/; Expires=Thu, 14 Nov 2024 22:13:20 GMT",
        "_fbp=fb.1.1700000000.123456789; Domain=.callkom.io; Path=/; Max-Age=7776000",
        "_gcl_au=1.1.123.1700000000; Domain=.callkom.io; Path=/; Expires=Mon, 12 Feb 2024 22:13:20 GMT",
        "IDE=AHWqTUk; expires=Wednesday, 13-Nov-24 22:13:20 GMT; path=/; domain=.doubleclick.net; Secure; HttpOnly; SameSite=none",
        "_uetsid=abc; Path=/; Max-Age=86400",
        "_uetvid=abcdef0123456789; Path=/; Max-Age=33696000",
        "MUID=0123ABCD; domain=.callkom.io; expires=Tue, 10-Dec-2024 22:13:20 GMT; path=/; SameSite=None; Secure",
        "_ttp=abc; Domain=.callkom.io; Path=/; Max-Age=33696000",
        "li_sugr=xyz; Domain=.callkom.io; Path=/; Max-Age=7776000; SameSite=None; Secure",
        "legacy_track=x1; Path=/",
        "legacy_ab=variant-b; Path=/; Max-Age=2592000",
        "_ga=; Domain=.callkom.io; Path=/; Max-Age=0",
        "optimizelyEndUserId=oeu1700000000r0.1; Path=/; Expires=Wed Jun  9 10:18:14 2027",
    ];
    v.iter().map(|s| HeaderValue::from_static(s)).collect()
}

fn whole_request(c: &mut Criterion<OnCpu>) {
    let p = policy();
    let consent = consent(&p, &["functional", "analytics"]);
    let sets = set_cookies();
    assert_eq!(sets.len(), 30);
    let mut group = c.benchmark_group("request");
    group.throughput(Throughput::Elements(50));
    group.bench_function("30_set_cookie_20_cookies", |b| {
        b.iter_batched(
            || {
                let mut resp = HeaderMap::new();
                for v in &sets {
                    resp.append(SET_COOKIE, v.clone());
                }
                (request(), resp, Decisions::with_capacity(64))
            },
            |(mut req, mut resp, mut decisions)| {
                let withdrawn = filter_request(&mut req, &p, HOST, &consent, &mut decisions);
                let cx = ResponseContext {
                    policy: &p,
                    host: HOST,
                    consent: &consent,
                    withdrawn: &withdrawn,
                    https: true,
                    now: UNIX_EPOCH + Duration::from_secs(NOW),
                    body_rewritten: true,
                };
                filter_response(StatusCode::OK, &mut resp, &cx, &mut decisions);
                (req, resp, decisions)
            },
            BatchSize::SmallInput,
        );
    });
    let mut resp = HeaderMap::new();
    for v in &sets {
        resp.append(SET_COOKIE, v.clone());
    }
    let req = request();
    group.bench_function("reference_header_copy", |b| {
        b.iter(|| (std::hint::black_box(&req).clone(), std::hint::black_box(&resp).clone()))
    });
    group.finish();
}

fn per_header(c: &mut Criterion<OnCpu>) {
    let p = policy();
    let consent = consent(&p, &["functional", "analytics"]);
    let cx = ResponseContext {
        policy: &p,
        host: HOST,
        consent: &consent,
        withdrawn: &[],
        https: true,
        now: UNIX_EPOCH + Duration::from_secs(NOW),
        body_rewritten: false,
    };
    let now = NOW as i64;
    let mut group = c.benchmark_group("set_cookie");
    let cases = [
        (
            "keep",
            "hubspotutk=5f4dcc3b5aa765d61d8327deb882cf99; Domain=.callkom.io; Path=/; Expires=Tue, 14 May 2024 22:13:20 GMT",
        ),
        ("block", "_fbp=fb.1.1700000000.123456789; Domain=.callkom.io; Path=/; Max-Age=7776000"),
        ("cap", "_ga=GA1.2.1234567890.1700000000; Domain=.callkom.io; Path=/; Max-Age=63072000"),
        ("harden", "sessionid=8f14e45fceea167a5a36dedd4bea2543; Path=/"),
        ("unknown", "legacy_track=x1; Path=/"),
    ];
    for (label, value) in cases {
        let value = HeaderValue::from_static(value);
        group.bench_function(format!("decide_{label}"), |b| b.iter(|| judge_set_cookie(&value, &cx, now)));
    }
    let value = HeaderValue::from_static(cases[0].1);
    group.bench_function("parse_only", |b| {
        b.iter(|| SetCookie::parse(value.as_bytes()).map(|c| c.lifetime(now)))
    });
    group.finish();

    c.bench_function("cookie_date", |b| b.iter(|| parse_cookie_date(b"Wednesday, 09-Jun-21 10:18:14 GMT")));
}

const KEY: &str = "bench-hmac-key-0123456789abcdef";

/// A site's real policy: built-in presets for the services the request
/// below uses, the site's own rules, a signed consent cookie, lifetime caps
/// and one hardening rule.
fn preset_policy() -> Policy {
    let text = format!(
        r#"
[policy.default]
presets = ["cloudflare", "google-analytics", "google-ads", "hubspot", "hotjar", "meta-pixel", "microsoft-clarity", "bing-uet"]
consent_header = true
[policy.default.consent]
revision = 2
hmac_key = "{KEY}"
[policy.default.categories]
necessary = {{}}
functional = {{ max_cookie_days = 183 }}
analytics = {{ max_cookie_days = 395 }}
advertising = {{}}
[[policy.default.cookie]]
name = "sessionid"
category = "necessary"
[[policy.default.cookie]]
name = "csrftoken"
category = "necessary"
[[policy.default.cookie]]
name = "AWSALB"
category = "necessary"
[[policy.default.cookie]]
name = "lang"
category = "functional"
domain = ".callkom.io"
[[policy.default.cookie]]
name = "calendly_*"
category = "functional"
[[policy.default.harden]]
name = "sessionid"
secure = true
http_only = true
same_site = "Lax"
"#
    );
    let source = Source { path: PathBuf::from("bench.toml"), text };
    let file = source.parse().unwrap();
    policy::compile("default", &source, &file.policy, &Presets::builtin().unwrap()).unwrap()
}

/// The 20 cookies of [`request`], the first being a real signed `consentry`
/// cookie (functional and analytics, given a day before [`NOW`]), and
/// `Sec-GPC: 1`.
fn signed_request() -> HeaderMap {
    let given = UNIX_EPOCH + Duration::from_secs(NOW - 86_400);
    let value = consent::encode(&["necessary", "functional", "analytics"], 2, given, Some(KEY.as_bytes()));
    let mut h = request();
    let first = h.get(COOKIE).unwrap().to_str().unwrap();
    let rest = first.split_once("; ").unwrap().1;
    let first = HeaderValue::from_str(&format!("consentry={value}; {rest}")).unwrap();
    let second = h.get_all(COOKIE).iter().nth(1).unwrap().clone();
    h.remove(COOKIE);
    h.append(COOKIE, first);
    h.append(COOKIE, second);
    h.insert("sec-gpc", HeaderValue::from_static("1"));
    h
}

/// What the proxy decides for one request, in proxy.rs's order.
fn decide(
    p: &Policy,
    now: SystemTime,
    req: &mut HeaderMap,
    resp: &mut HeaderMap,
    decisions: &mut Decisions,
) -> Consent {
    // As proxy.rs: one jar for the consent read and the request filter.
    let (consent, verdict) = {
        let jar = CookieJar::from_headers(req);
        let gpc = req.get("sec-gpc").is_some_and(|v| v.as_bytes().trim_ascii() == b"1");
        let consent = consent::read(&p.consent, &jar, gpc, now);
        let verdict = judge_request(&jar, p, HOST, &consent, decisions);
        (consent, verdict)
    };
    let withdrawn = apply_request(req, p, &consent, verdict);
    let cx = ResponseContext {
        policy: p,
        host: HOST,
        consent: &consent,
        withdrawn: &withdrawn,
        https: true,
        now,
        body_rewritten: true,
    };
    filter_response(StatusCode::OK, resp, &cx, decisions);
    consent
}

/// A request and response as [`decide`] takes them.
fn whole_decision_input(sets: &[HeaderValue]) -> (HeaderMap, HeaderMap, Decisions) {
    let mut resp = HeaderMap::new();
    for v in sets {
        resp.append(SET_COOKIE, v.clone());
    }
    (signed_request(), resp, Decisions::with_capacity(64))
}

/// `HEADERS_BENCH_COUNT=N`: run [`decide`] `N` times in `count_once` and
/// exit, for
/// `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*count_once*'`
/// (instruction counts; see BENCHMARKS.md).
fn count_mode() -> bool {
    let Ok(n) = std::env::var("HEADERS_BENCH_COUNT") else { return false };
    let n: usize = n.parse().expect("HEADERS_BENCH_COUNT=N, a number");
    let p = preset_policy();
    let sets = set_cookies();
    let now = UNIX_EPOCH + Duration::from_secs(NOW);
    let inputs: Vec<_> = (0..n + 1).map(|_| whole_decision_input(&sets)).collect();
    let mut inputs = inputs.into_iter();
    // One warm-up run outside the counted function (lazy statics, allocator).
    let (mut req, mut resp, mut decisions) = inputs.next().unwrap();
    black_box(decide(&p, now, &mut req, &mut resp, &mut decisions));
    let outputs = count_once(&p, now, inputs.collect());
    println!("whole_decision x{n}: {} decisions", outputs.iter().map(|o| o.2.len()).sum::<usize>());
    true
}

#[inline(never)]
fn count_once(
    p: &Policy,
    now: SystemTime,
    inputs: Vec<(HeaderMap, HeaderMap, Decisions)>,
) -> Vec<(HeaderMap, HeaderMap, Decisions)> {
    let mut outputs = Vec::with_capacity(inputs.len());
    for (mut req, mut resp, mut decisions) in inputs {
        black_box(decide(p, now, &mut req, &mut resp, &mut decisions));
        outputs.push((req, resp, decisions));
    }
    outputs
}

fn whole_decision(c: &mut Criterion<OnCpu>) {
    let p = preset_policy();
    let sets = set_cookies();
    let now = UNIX_EPOCH + Duration::from_secs(NOW);
    let decide = |req: &mut HeaderMap, resp: &mut HeaderMap, decisions: &mut Decisions| {
        decide(&p, now, req, resp, decisions)
    };
    let setup = || whole_decision_input(&sets);
    // The bench measures the real thing: valid signed consent, GPC honoured,
    // cookies removed, capped, hardened and swept.
    let (mut req, mut resp, mut decisions) = setup();
    let consent = decide(&mut req, &mut resp, &mut decisions);
    assert_eq!(consent.state, State::Valid);
    assert_eq!(p.categories.names(consent.granted), "necessary,functional,analytics");
    assert_eq!(req.get_all(COOKIE).iter().count(), 2);
    let actions: Vec<&str> = decisions.iter().map(|d| d.action.name()).collect();
    for action in ["allow", "block", "cap", "sweep"] {
        assert!(actions.contains(&action), "no {action} in {actions:?}");
    }
    assert_eq!(req.get("consentry-consent").unwrap(), "necessary,functional,analytics");

    let mut group = c.benchmark_group("request");
    group.bench_function("whole_decision", |b| {
        b.iter_batched(
            setup,
            |(mut req, mut resp, mut decisions)| {
                decide(&mut req, &mut resp, &mut decisions);
                (req, resp, decisions)
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(OnCpu(WallTime));
    targets = whole_request, whole_decision, per_header
}

fn main() {
    if count_mode() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
