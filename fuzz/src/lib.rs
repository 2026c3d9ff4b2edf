//! Helpers shared by the fuzz targets in `fuzz_targets/`: policies compiled
//! from TOML through the public loader (exactly as `consentry run` loads
//! them), the invariants every target asserts, and a cheap deterministic
//! way to derive "how to split this input" from the input itself, so that
//! seed files can be plain HTML, plain `Set-Cookie` lines and so on.
//!
//! A broken invariant is an `assert!`: libFuzzer records the input as a
//! crash exactly as it does for a panic inside consentry.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use consentry::body::Body;
use consentry::category::{CategoryId, CategorySet};
use consentry::config::Source;
use consentry::consent::{self, Consent, Format, State};
use consentry::cookie::CookieJar;
use consentry::decision::Decisions;
use consentry::html::{PageOptions, PageRewriter};
use consentry::response_body::{self, BodyContext};
use consentry::route::Site;
use consentry::snapshot::Snapshot;
use http::HeaderMap;
use http_body_util::{BodyExt as _, StreamBody};

/// "Now" for every time-dependent check: mid-2025, so the real vectors'
/// timestamps are in the past.
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

/// The site `www.example.com` with `[policy.default]` from `policy` (which
/// includes the `[policy.default]` header), compiled by the real loader.
pub fn site(policy: &str) -> Arc<Site> {
    let text = format!(
        "[listen]\nhttp = \"127.0.0.1:0\"\n[[site]]\nhosts = [\"www.example.com\", \"example.com\"]\n\
         origin = \"http://127.0.0.1:1\"\npolicy = \"default\"\n{policy}\n"
    );
    let source = Source { path: PathBuf::from("fuzz.toml"), text };
    let snapshot = Snapshot::compile(&source, 1).unwrap_or_else(|e| panic!("fuzz policy does not compile: {e:?}"));
    snapshot.router.route("www.example.com").expect("the site routes").clone()
}

/// A policy whose rules match nothing a fuzzer will plausibly produce, but
/// which has a resource rule of each kind (host, inline signature), so that
/// every rewriter mechanism runs: the "no rules" page policy. Unknown
/// third parties are allowed, so nothing may change.
pub const IDENTITY_POLICY: &str = r#"
[policy.default]
unknown_third_party = "allow"
[[policy.default.resource]]
match = "tracker.invalid"
category = "advertising"
[[policy.default.resource]]
match = "inline:consentry-fuzz-signature-that-never-occurs("
category = "advertising"
"#;

/// A realistic policy: presets, cookie rules of every pattern kind, host,
/// prefix and inline resource rules, caps and hardening.
pub const RULES_POLICY: &str = r#"
[policy.default]
unknown_cookies = "block"
unknown_third_party = "block"
first_party = ["example.com", "*.example.com", "cdn.example.net"]
presets = ["google-analytics", "google-tag-manager", "meta-pixel", "hotjar", "youtube", "hubspot"]
[policy.default.consent]
format = "consentry"
gpc_refuses = ["advertising"]
[policy.default.categories]
necessary = { description = "n" }
functional = { description = "f", max_cookie_days = 30 }
analytics = { description = "a", max_cookie_days = 395 }
advertising = { description = "ad" }
[[policy.default.cookie]]
name = "session"
category = "necessary"
[[policy.default.cookie]]
name = "lang*"
category = "functional"
[[policy.default.cookie]]
name = "/^_pk_(id|ses)\\./"
category = "analytics"
domain = ".example.com"
[[policy.default.resource]]
match = "tracker.example.org"
category = "advertising"
[[policy.default.resource]]
match = "https://static.example.org/pixel/"
category = "analytics"
[[policy.default.resource]]
match = "inline:fbq("
category = "advertising"
[[policy.default.resource]]
match = "inline:_paq.push"
category = "analytics"
"#;

/// Like [`RULES_POLICY`] for `Set-Cookie`, but with no caps and no
/// hardening: whatever is kept must be the origin's bytes.
pub const PLAIN_COOKIE_POLICY: &str = r#"
[policy.default]
unknown_cookies = "block"
presets = ["google-analytics", "meta-pixel", "hotjar"]
[[policy.default.cookie]]
name = "session"
category = "necessary"
[[policy.default.cookie]]
name = "lang*"
category = "functional"
[[policy.default.cookie]]
name = "/^_pk_(id|ses)\\./"
category = "analytics"
"#;

/// [`RULES_POLICY`] plus hardening of every cookie.
pub const HARDEN_POLICY_EXTRA: &str = r#"
[[policy.default.harden]]
name = "*"
secure = true
http_only = true
same_site = "Lax"
"#;

/// Cached site per policy text (each target uses one or two).
pub fn cached_site(policy: &'static str) -> Arc<Site> {
    static SITES: OnceLock<Mutex<Vec<(&'static str, Arc<Site>)>>> = OnceLock::new();
    let sites = SITES.get_or_init(Mutex::default);
    let mut sites = sites.lock().unwrap();
    if let Some((_, s)) = sites.iter().find(|(p, _)| std::ptr::eq(*p, policy)) {
        return s.clone();
    }
    let s = site(policy);
    sites.push((policy, s.clone()));
    s
}

/// Consent from a byte: bit i grants category i (necessary always).
pub fn granted_from(site: &Site, byte: u8) -> CategorySet {
    let all = site.policy.categories.all();
    CategorySet::from_bits(u64::from(byte)).intersection(all).union(CategorySet::NECESSARY_ONLY)
}

/// A valid consent granting `granted`.
pub fn consent_granting(granted: CategorySet) -> Consent {
    let mut c = Consent::none(Format::Consentry, State::Valid);
    c.granted = granted;
    c
}

// ---------------------------------------------------------------- consent

/// The policies a consent target reads `format` under: the format's
/// defaults with a long renewal period (so real timestamps count), the same
/// with a raised revision and a short renewal period (so the age and
/// revision checks run), and per format one with every name it uses
/// mapped (HMAC key for `consentry`).
pub fn consent_sites(format: Format) -> &'static [Arc<Site>] {
    static SITES: OnceLock<(Format, Vec<Arc<Site>>)> = OnceLock::new();
    let (f, sites) = SITES.get_or_init(|| (format, build_consent_sites(format)));
    assert_eq!(*f, format, "one consent format per fuzz target");
    sites
}

fn build_consent_sites(format: Format) -> Vec<Arc<Site>> {
    let name = format.name();
    let head = format!("[policy.default]\n[policy.default.consent]\nformat = \"{name}\"\ngpc_refuses = [\"advertising\"]\n");
    let mut sites = vec![
        site(&format!("{head}max_age_days = 36500\n")),
        site(&format!("{head}max_age_days = 180\nrevision = 3\n")),
    ];
    let extra = match format {
        Format::Consentry => "max_age_days = 36500\nhmac_key = \"fuzz-key-0123456789abcdef0123456789\"\n",
        Format::Klaro => {
            "max_age_days = 36500\nmap = { googleAnalytics = \"analytics\", youtube = \"advertising\", twitter = \"advertising\", apache = \"functional\" }\n"
        }
        Format::Tcf => "max_age_days = 36500\nmap = { \"1\" = \"functional\", \"3\" = \"advertising\", \"8\" = \"analytics\" }\n",
        _ => "",
    };
    if !extra.is_empty() {
        sites.push(site(&format!("{head}{extra}")));
    }
    sites
}

/// Reads consent from one `Cookie` header under every policy of the
/// format and checks what fail-closed means:
///
/// - `necessary` is always granted;
/// - anything but a valid reading grants `necessary` only;
/// - more than `necessary` only from a value the adapter parsed, and only
///   categories that the policy's map gives to the names read (plus the
///   outside-region grant when the reading says so);
/// - with `Sec-GPC: 1`, none of the `gpc_refuses` categories.
pub fn check_consent(format: Format, header: &str) {
    let jar = CookieJar::parse(header);
    for site in consent_sites(format) {
        let settings = &site.policy.consent;
        let raw = consent::read_raw(settings, &jar);
        for gpc in [false, true] {
            let c = consent::read(settings, &jar, gpc, now());
            assert!(c.granted.contains(CategoryId::NECESSARY), "necessary not granted: {c:?}");
            assert_eq!(
                c.granted.difference(site.policy.categories.all()),
                CategorySet::EMPTY,
                "granted a category the policy does not have"
            );
            if c.state != State::Valid {
                assert_eq!(c.granted, CategorySet::NECESSARY_ONLY, "{:?} consent granted {c:?}", c.state);
            }
            if c.granted != CategorySet::NECESSARY_ONLY {
                let reading = raw.as_ref().expect("granted more than necessary from a value that does not parse");
                assert_eq!(c.state, State::Valid);
                let mut may = CategorySet::NECESSARY_ONLY;
                if reading.outside_region {
                    may = may.union(settings.outside_region);
                }
                for name in &reading.granted {
                    if let Some(set) = consent::mapped(settings, name) {
                        may = may.union(set);
                    }
                }
                assert_eq!(c.granted.difference(may), CategorySet::EMPTY, "granted beyond what was read: {c:?}");
            }
            if gpc {
                let refused = c.granted.intersection(settings.gpc_refuses).difference(CategorySet::NECESSARY_ONLY);
                assert!(refused.is_empty(), "GPC-refused category granted: {c:?}");
            }
        }
    }
}

/// The consent target body: the input is the cookie value; it is read
/// under the format's cookie name (alone and after a decoy), and the input
/// is also read as a whole `Cookie` header (Complianz reads several
/// cookies; duplicates must be refused).
pub fn fuzz_consent(format: Format, data: &[u8]) {
    let value = String::from_utf8_lossy(data);
    let cookie = format.default_cookie();
    check_consent(format, &format!("{cookie}={value}"));
    check_consent(format, &format!("other=1; {cookie}={value}"));
    check_consent(format, &value);
}

// ------------------------------------------------------------------- HTML

/// FNV-1a: a cheap, stable hash of the input, from which targets derive
/// chunk sizes and options (so corpora are the real bytes, unprefixed).
pub fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Chunk lengths (1..=64 and a few larger) derived from `seed`, covering
/// `len` bytes.
pub fn splits(seed: u64, len: usize) -> Vec<usize> {
    let mut state = seed | 1;
    let mut out = Vec::new();
    let mut done = 0;
    while done < len {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = match state % 8 {
            0 => 1,
            1 => 2,
            2..=5 => (state >> 8) as usize % 64 + 1,
            _ => (state >> 8) as usize % 1024 + 1,
        };
        let n = n.min(len - done);
        out.push(n);
        done += n;
    }
    out
}

/// Runs `input` through a page rewriter, fed in `chunks` (None: one write).
pub fn rewrite_page(options: PageOptions, input: &[u8], chunks: Option<&[usize]>) -> Vec<u8> {
    let mut page = PageRewriter::new(options);
    let mut out = Vec::new();
    match chunks {
        None => page.write(input, &mut out),
        Some(lens) => {
            let mut at = 0;
            for &n in lens {
                page.write(&input[at..at + n], &mut out);
                at += n;
            }
        }
    }
    page.finish(&mut out);
    let _ = page.take_decisions();
    out
}

/// Page options for `site` as the proxy builds them.
pub fn page_options(site: &Arc<Site>, granted: CategorySet) -> PageOptions {
    PageOptions {
        site: site.clone(),
        granted,
        gpc_refused: CategorySet::EMPTY,
        page_url: Some(url::Url::parse("https://www.example.com/shop/page.html").unwrap()),
        banner: None,
        nonce: None,
        charset: None,
    }
}

// ---------------------------------------------------------- bodies, codecs

/// A body of these frames.
pub fn frames_body(frames: Vec<Bytes>) -> Body {
    let stream = futures_util::stream::iter(
        frames.into_iter().map(|b| Ok::<_, std::convert::Infallible>(http_body::Frame::data(b))),
    );
    consentry::body::boxed(StreamBody::new(stream))
}

/// The output of [`run_body`].
pub struct BodyRun {
    /// Response headers after the body stage adjusted them.
    pub headers: HeaderMap,
    /// The body bytes, concatenated.
    pub bytes: Vec<u8>,
    /// The body's error, if it ended with one.
    pub error: Option<String>,
    /// How many times `on_done` ran (must be exactly once).
    pub done_calls: usize,
}

/// Runs `frames` through [`response_body::rewrite`] and collects the
/// output. Every frame is ready, so no executor is needed; a body that
/// never ends shows up as a libFuzzer timeout.
pub fn run_body(
    site: &Arc<Site>,
    granted: CategorySet,
    mut headers: HeaderMap,
    frames: Vec<Bytes>,
    max_decoded: u64,
) -> BodyRun {
    use futures_util::FutureExt as _;
    let done: Arc<Mutex<usize>> = Arc::default();
    let d2 = done.clone();
    let cx = BodyContext {
        site: site.clone(),
        consent: consent_granting(granted),
        page_url: "https://www.example.com/shop/page.html".into(),
        banner: None,
        csp_nonce: None,
        max_decoded_body: max_decoded,
        on_done: Box::new(move |_d: Decisions| *d2.lock().unwrap() += 1),
    };
    let mut body = response_body::rewrite(&mut headers, frames_body(frames), cx);
    let mut bytes = Vec::new();
    let mut error = None;
    loop {
        // The rewriter yields (Pending) after its per-poll budget even when
        // input is ready; poll again.
        let frame = loop {
            if let Some(f) = body.frame().now_or_never() {
                break f;
            }
        };
        match frame {
            None => break,
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    drop(body);
    let done_calls = *done.lock().unwrap();
    BodyRun { headers, bytes, error, done_calls }
}

/// A content coding with a reference encoder and decoder (not consentry's).
#[derive(Debug, Clone, Copy)]
pub enum Codec {
    /// `gzip`
    Gzip,
    /// `deflate`, zlib-framed as RFC 9110 says.
    Deflate,
    /// `br`
    Brotli,
    /// `zstd`
    Zstd,
}

impl Codec {
    /// All of them.
    pub const ALL: [Codec; 4] = [Codec::Gzip, Codec::Deflate, Codec::Brotli, Codec::Zstd];

    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Deflate => "deflate",
            Codec::Brotli => "br",
            Codec::Zstd => "zstd",
        }
    }

    /// Encodes with the reference implementation.
    pub fn encode(self, data: &[u8]) -> Vec<u8> {
        match self {
            Codec::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Codec::Deflate => {
                let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Codec::Brotli => {
                let mut out = Vec::new();
                let params = brotli::enc::BrotliEncoderParams { quality: 1, ..Default::default() };
                brotli::BrotliCompress(&mut &data[..], &mut out, &params).unwrap();
                out
            }
            Codec::Zstd => zstd::encode_all(data, 1).unwrap(),
        }
    }

    /// Decodes with the reference implementation; None if it is not a
    /// complete, valid stream.
    pub fn decode(self, data: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        match self {
            Codec::Gzip => flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out).ok()?,
            Codec::Deflate => {
                // consentry keeps the origin's framing (zlib or raw).
                if flate2::read::ZlibDecoder::new(data).read_to_end(&mut out).is_err() {
                    out.clear();
                    flate2::read::DeflateDecoder::new(data).read_to_end(&mut out).ok()?
                } else {
                    0
                }
            }
            Codec::Brotli => {
                brotli::BrotliDecompress(&mut &data[..], &mut out).ok()?;
                0
            }
            Codec::Zstd => {
                out = zstd::decode_all(data).ok()?;
                0
            }
        };
        Some(out)
    }
}
