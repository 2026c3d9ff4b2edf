//! Consent parsing per format, with real-world cookie values (the same ones
//! the unit tests cite).
//!
//! - `parse/FORMAT`: the adapter alone on the cookie value;
//! - `request/FORMAT`: the per-request work of stage 4 — parse a realistic
//!   `Cookie` header (the consent cookie among a dozen analytics, session
//!   and CDN cookies), then `consent::read` (lookup, parse, map, renewal,
//!   revision, GPC);
//! - `encode`: the signed `consentry` value the consent endpoint writes;
//! - `reference/FORMAT`: the floor measured in the same run: splitting the
//!   same `Cookie` header into a jar, nothing else (`request/FORMAT` minus
//!   this is what reading consent adds).
//!
//! Run: `cargo bench --bench consent -- --warm-up-time 1 --measurement-time 3`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use consentry::config::Source;
use consentry::consent::{self, Format};
use consentry::cookie::CookieJar;
use consentry::policy::{Policy, compile};
use consentry::presets::Presets;

const KEY: &[u8] = b"bench-key-0123456789abcdef012345";
/// [`KEY`] prepared once, as a compiled policy keeps it.
static KEYED: std::sync::LazyLock<consent::consentry::HmacKey> =
    std::sync::LazyLock::new(|| consent::consentry::HmacKey::new(KEY.to_vec()));

const COOKIECONSENT: &str = "%7B%22categories%22%3A%5B%22necessary%22%2C%22analytics%22%5D%2C%22revision%22%3A0%2C%22data%22%3Anull%2C%22consentTimestamp%22%3A%222025-04-16T01%3A32%3A51.025Z%22%2C%22consentId%22%3A%2224ef8464-ff47-4934-8ba7-5ae0c50c8ff8%22%2C%22services%22%3A%7B%22necessary%22%3A%5B%5D%2C%22analytics%22%3A%5B%5D%7D%2C%22languageCode%22%3A%22en%22%2C%22lastConsentTimestamp%22%3A%222025-04-16T01%3A32%3A51.025Z%22%2C%22expirationTime%22%3A1760491971026%7D";
const KLARO: &str = "%7B%22klaro%22%3Atrue%2C%22apache%22%3Atrue%2C%22friendlyCaptcha%22%3Atrue%2C%22googleAnalytics%22%3Atrue%2C%22youtube%22%3Atrue%2C%22twitter%22%3Atrue%2C%22googleMaps%22%3Atrue%7D";
const COOKIEBOT: &str = "{stamp:%27O8sg2Z8T5kWdRPjoxOG20WioVeH3Eb7Q7Bxauy/Aak8ikxT/6pNcHQ==%27%2Cnecessary:true%2Cpreferences:true%2Cstatistics:true%2Cmarketing:true%2Cmethod:%27explicit%27%2Cver:1%2Cutc:1726058380450%2Cregion:%27sk%27}";
const ONETRUST: &str = "isGpcEnabled=1&datestamp=Fri+Feb+13+2026+22%3A25%3A29+GMT%2B0100+(hora+est%C3%A1ndar+de+Europa+central)&version=202512.1.0&browserGpcFlag=1&isIABGlobal=false&consentId=3134823156&isAnonUser=0&interactionCount=2&intType=2&hosts=&landingPath=NotLandingPage&groups=C0001%3A1%2CC0002%3A0%2CC0003%3A0%2CC0004%3A0%2CC0005%3A0%2CV2STACK42%3A0%2CC0035%3A0%2CC0038%3A0&genVendors=V2%3A0%2CV1%3A0%2C&crTime=1770283241677&geolocation=IT%3B25&AwaitingReconsent=false";
const COOKIEYES: &str = "consentid:bzFQbnc3TUdrbTBTcWt0aG5lR2xsUXA4NE5IMFFEOWg,consent:yes,action:yes,necessary:yes,functional:yes,analytics:yes,performance:yes,advertisement:yes,other:yes";
const COMPLIANZ: &str = "cmplz_consented_services=; cmplz_policy_id=14; cmplz_marketing=allow; cmplz_statistics=allow; cmplz_preferences=allow; cmplz_functional=allow; cmplz_banner-status=dismissed";
// A long, real TC string (vendor bit field and a publisher segment).
const TCF: &str = "CPh7_cXPh7_cXKMAAAENCZCAAKqAAAAAAAAAAAAAAAAA.II7Nd_X__bX9n-_7_6ft0eY1f9_r37uQzDhfNs-8F3L_W_LwX32E7NF36tq4KmR4ku1bBIQNtHMnUDUmxaolVrzHsak2cpyNKJ_JkknsZe2dYGF9Pn9lD-YKZ7_5_9_f52T_9_9_-39z3_9f___dv_-__-vjf_599n_v9fV_78_Kf9______-____________8A";

/// What else a typical request carries besides consent.
const OTHER_COOKIES: &str = "_ga=GA1.1.1773205121.1740399663; _ga_59B60VWWYG=GS1.1.1740399662.1.0.1740399662.0.0.1057425111; _gcl_au=1.1.1127129083.1740399661; _fbp=fb.2.1740399662778.157652016478123277; __stripe_mid=f435ef71-f199-4863-9e2b-f51dd02b4b2731905d; PHPSESSID=cd739f35ec715fbeecf2fe5687c8ef77; __cf_bm=tYGL6a4UNQIIzY_kkQCTlEsGbbu8V4PRxK8K553eGXc-1740399658-1.0.1.1; _hjSessionUser_1197791=eyJpZCI6IjAxNTE2MzU4In0=; lang=en; cart=3";

fn policy(consent: &str) -> Policy {
    let text = format!("[policy.default]\n[policy.default.consent]\n{consent}\nmax_age_days = 36500\n");
    let source = Source { path: PathBuf::from("bench.toml"), text };
    let file = source.parse().expect("bench config parses");
    compile("default", &source, &file.policy, &Presets::default()).expect("bench policy compiles")
}

struct Case {
    format: Format,
    policy: Policy,
    /// The consent cookie's value (Complianz: the whole header of its cookies).
    value: String,
    header: String,
    /// A day after the consent was given, so that it is valid.
    now: SystemTime,
}

fn cases() -> Vec<Case> {
    let consentry = consent::encode(
        &["functional", "analytics"],
        3,
        UNIX_EPOCH + Duration::from_secs(1_740_000_000),
        Some(KEY),
    );
    let key = String::from_utf8_lossy(KEY).into_owned();
    let list: Vec<(Format, String, String)> = vec![
        (Format::Consentry, format!("hmac_key = \"{key}\"\nrevision = 3"), consentry),
        (Format::CookieConsent, String::new(), COOKIECONSENT.into()),
        (
            Format::Klaro,
            "map = { googleAnalytics = \"analytics\", youtube = \"advertising\" }".into(),
            KLARO.into(),
        ),
        (Format::Cookiebot, String::new(), COOKIEBOT.into()),
        (Format::OneTrust, String::new(), ONETRUST.into()),
        (Format::CookieYes, String::new(), COOKIEYES.into()),
        (Format::Complianz, String::new(), COMPLIANZ.into()),
        (Format::Tcf, String::new(), TCF.into()),
    ];
    list.into_iter()
        .map(|(format, extra, value)| {
            let policy = policy(&format!("format = \"{}\"\n{extra}", format.name()));
            let consent_part = if format == Format::Complianz {
                value.clone()
            } else {
                format!("{}={value}", policy.consent.cookie)
            };
            // The consent cookie in the middle, as browsers order by age.
            let (a, b) = OTHER_COOKIES.split_at(OTHER_COOKIES.find("PHPSESSID").unwrap_or(0));
            let header = format!("{a}{consent_part}; {b}");
            let given = consent::read_raw(&policy.consent, &CookieJar::parse(&header))
                .ok()
                .and_then(|r| r.given_at)
                .unwrap_or(UNIX_EPOCH + Duration::from_secs(1_740_000_000));
            let now = given + Duration::from_secs(24 * 3600);
            Case { format, policy, value, header, now }
        })
        .collect()
}

fn parse_only(format: Format, value: &str) -> bool {
    let jar;
    let result = match format {
        Format::Consentry => consent::consentry::parse_keyed(value, Some(&KEYED)),
        Format::CookieConsent => consent::cookieconsent::parse(value),
        Format::Klaro => consent::klaro::parse(value),
        Format::Cookiebot => consent::cookiebot::parse(value),
        Format::OneTrust => consent::onetrust::parse(value),
        Format::CookieYes => consent::cookieyes::parse(value),
        Format::Complianz => {
            jar = CookieJar::parse(value);
            consent::complianz::read(&jar, "cmplz_policy_id")
        }
        Format::Tcf => consent::tcf::parse(value),
    };
    result.is_ok()
}

fn bench(c: &mut Criterion) {
    let cases = cases();
    for case in &cases {
        // Benchmarks of a failing parse would measure the wrong thing.
        assert!(parse_only(case.format, &case.value), "{} vector parses", case.format.name());
        let jar = CookieJar::parse(&case.header);
        let read = consent::read(&case.policy.consent, &jar, false, case.now);
        assert!(read.is_valid(), "{} reads valid: {:?}", case.format.name(), read.state);
    }

    let mut group = c.benchmark_group("consent/parse");
    for case in &cases {
        group.throughput(Throughput::Bytes(case.value.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(case.format.name()), case, |b, case| {
            b.iter(|| parse_only(case.format, black_box(&case.value)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("consent/request");
    for case in &cases {
        group.throughput(Throughput::Bytes(case.header.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(case.format.name()), case, |b, case| {
            b.iter(|| {
                let jar = CookieJar::parse(black_box(&case.header));
                consent::read(&case.policy.consent, &jar, true, case.now)
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("consent/reference");
    for case in &cases {
        group.throughput(Throughput::Bytes(case.header.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(case.format.name()), case, |b, case| {
            b.iter(|| CookieJar::parse(black_box(&case.header)))
        });
    }
    group.finish();

    let now = UNIX_EPOCH + Duration::from_secs(1_760_000_000);
    c.bench_function("consent/encode", |b| {
        b.iter(|| consent::encode(black_box(&["functional", "analytics"]), 3, now, Some(KEY)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
