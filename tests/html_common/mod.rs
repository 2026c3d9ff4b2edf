//! Shared helpers for the HTML rewriting tests: a site from TOML, and
//! drivers for the page rewriter and the body adapter.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use consentry::body::Body;
use consentry::category::CategorySet;
use consentry::config::Source;
use consentry::consent::{Consent, Format, State};
use consentry::decision::Decisions;
use consentry::html::{PageOptions, PageRewriter};
use consentry::response_body::{self, BodyContext};
use consentry::route::Site;
use consentry::snapshot::Snapshot;
use http::HeaderMap;
use http_body_util::{BodyExt, StreamBody};

/// A site for `www.example.com` / `example.com` with `[policy.default]`
/// given as TOML (the `[policy.default]` header included).
pub fn site(policy: &str) -> Arc<Site> {
    let text = format!(
        "[listen]\nhttp = \"127.0.0.1:0\"\n[[site]]\nhosts = [\"www.example.com\", \"example.com\"]\norigin = \"http://127.0.0.1:1\"\npolicy = \"default\"\n{policy}\n"
    );
    let source = Source { path: PathBuf::from("test.toml"), text };
    let snapshot = Snapshot::compile(&source, 1).unwrap_or_else(|e| panic!("config: {e:?}"));
    snapshot.router.route("www.example.com").unwrap().clone()
}

/// The categories named, plus necessary.
pub fn granted(site: &Site, names: &[&str]) -> CategorySet {
    let mut set = CategorySet::NECESSARY_ONLY;
    for n in names {
        set.insert(site.policy.categories.id(n).unwrap_or_else(|| panic!("no category {n}")));
    }
    set
}

pub fn options(site: &Arc<Site>, granted: CategorySet) -> PageOptions {
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

/// Runs a page through the rewriter in chunks of `chunk` bytes.
pub fn rewrite_with(options: PageOptions, input: &[u8], chunk: usize) -> (Vec<u8>, Decisions) {
    let mut page = PageRewriter::new(options);
    let mut out = Vec::new();
    for c in input.chunks(chunk.max(1)) {
        page.write(c, &mut out);
    }
    page.finish(&mut out);
    let decisions = page.take_decisions();
    (out, decisions)
}

pub fn rewrite(site: &Arc<Site>, granted: CategorySet, input: &str) -> (String, Decisions) {
    let (out, d) = rewrite_with(options(site, granted), input.as_bytes(), usize::MAX);
    (String::from_utf8(out).expect("utf-8 output"), d)
}

pub fn consent(granted: CategorySet) -> Consent {
    let mut c = Consent::none(Format::Consentry, State::Valid);
    c.granted = granted;
    c
}

/// A body of these frames.
pub fn frames_body(frames: Vec<Bytes>) -> Body {
    let stream = futures_util::stream::iter(
        frames.into_iter().map(|b| Ok::<_, std::convert::Infallible>(http_body::Frame::data(b))),
    );
    consentry::body::boxed(StreamBody::new(stream))
}

pub struct BodyRun {
    pub headers: HeaderMap,
    pub frames: Vec<Bytes>,
    pub decisions: Option<Decisions>,
    pub done_calls: usize,
    pub error: Option<String>,
}

impl BodyRun {
    pub fn bytes(&self) -> Vec<u8> {
        self.frames.iter().flat_map(|b| b.iter().copied()).collect()
    }
}

/// Runs `frames` through `response_body::rewrite` and collects the output.
pub fn run_body(
    site: &Arc<Site>,
    granted: CategorySet,
    mut headers: HeaderMap,
    frames: Vec<Bytes>,
    banner: Option<&str>,
    max_decoded: u64,
) -> BodyRun {
    let done: Arc<Mutex<(usize, Option<Decisions>)>> = Arc::default();
    let d2 = done.clone();
    let cx = BodyContext {
        site: site.clone(),
        consent: consent(granted),
        page_url: "https://www.example.com/shop/page.html".into(),
        banner: banner.map(|b| Bytes::copy_from_slice(b.as_bytes())),
        csp_nonce: None,
        max_decoded_body: max_decoded,
        on_done: Box::new(move |d| {
            let mut g = d2.lock().unwrap();
            g.0 += 1;
            g.1 = Some(d);
        }),
    };
    let body = response_body::rewrite(&mut headers, frames_body(frames), cx);
    let (out, error) = drain_ready(body);
    let g = done.lock().unwrap();
    BodyRun { headers, frames: out, decisions: g.1.clone(), done_calls: g.0, error }
}

/// Collects a body whose frames are all ready (no executor needed).
pub fn drain_ready(mut body: Body) -> (Vec<Bytes>, Option<String>) {
    use futures_util::FutureExt;
    let mut out = Vec::new();
    loop {
        let frame = loop {
            // The rewriter yields (Pending) after its per-poll budget even
            // when input is ready; poll again.
            if let Some(f) = body.frame().now_or_never() {
                break f;
            }
        };
        match frame {
            None => return (out, None),
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    out.push(data);
                }
            }
            Some(Err(e)) => return (out, Some(e.to_string())),
        }
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn gunzip(data: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out).unwrap();
    out
}

pub fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams { quality: 5, ..Default::default() };
    brotli::BrotliCompress(&mut &data[..], &mut out, &params).unwrap();
    out
}

pub fn unbrotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliDecompress(&mut &data[..], &mut out).unwrap();
    out
}

pub fn zstd_encode(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

pub fn zstd_decode(data: &[u8]) -> Vec<u8> {
    zstd::decode_all(data).unwrap()
}

/// `../shared/testdata` relative to the crate root, if present.
pub fn testdata() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("NOTICE: {} is absent; conformance test skipped", dir.display());
        None
    }
}
