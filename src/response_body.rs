//! Stage 8, **response body**: HTML (not HEAD, 1xx, 204, 205, 206, 304)
//! streams through the rewriter of [`crate::html`]; compressed bodies are
//! decoded and re-encoded in the same coding by [`crate::codec`];
//! everything else passes untouched.
//!
//! [`rewrite`] wraps the origin's body in [`RewriteBody`], an
//! [`http_body::Body`] that rewrites each frame as it arrives and sends the
//! result on as soon as the origin has nothing more ready (the encoder is
//! flushed per frame sent), so the visitor gets the first bytes before the
//! origin has finished. Frames the origin has ready at once are coalesced
//! into output frames of at least [`MIN_FRAME`] bytes: fewer, larger
//! frames and writes, never a wait for bytes not yet received.
//!
//! # Pass-through, and how it is counted
//!
//! Some HTML cannot be rewritten: an unknown or stacked `Content-Encoding`,
//! an ASCII-incompatible charset (UTF-16 by `Content-Type` or byte order
//! mark), or a rewriter that bails out mid-page. Those bodies pass through
//! untouched (from the point of failure on, for a bail-out) and each case
//! is counted in [`passthrough_count`] and logged as a `debug` event with
//! the stable field `passthrough = "<reason>"` (target
//! `consentry::response_body`), for the accounting stage to export.
//!
//! # The decoded-size cap (zip bombs)
//!
//! Beyond `max_decoded_body` decoded bytes the page stops being rewritten,
//! but it cannot simply switch to the origin's raw compressed bytes: the
//! visitor is already reading consentry's re-encoded stream, and splicing a
//! different compressed stream into it would corrupt it. So the body keeps
//! being decoded and re-encoded, only the rewriting stops (held bytes are
//! released as they were, see [`PageRewriter::stop`]). Decoding proceeds in
//! bounded steps and each poll does at most [`POLL_BUDGET`] decoded bytes
//! before yielding to the executor, so memory stays flat and a bomb cannot
//! monopolise a worker thread. In report-only mode (where the origin's bytes
//! are forwarded as they are and only inspected) decoding simply stops at
//! the cap.
//!
//! A corrupt compressed stream from the origin ends the rewritten stream
//! cleanly at the corruption (what was decoded, properly re-encoded),
//! followed by a body error, as the origin's own stream would have.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use encoding_rs::Encoding;
use http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_TYPE, ETAG};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body::{Frame, SizeHint};

use crate::body::{Body, BoxError};
use crate::codec::{self, Coding, Decoder, DeflateFraming, Encoder, Unsupported};
use crate::consent::Consent;
use crate::decision::Decisions;
use crate::html::{PageOptions, PageRewriter};
use crate::policy::Mode;
use crate::route::Site;

/// Called once when the body has been fully rewritten (or abandoned), with
/// the decisions made on the page.
pub type OnDone = Box<dyn FnOnce(Decisions) + Send>;

/// What the body stage needs to know about the request.
pub struct BodyContext {
    /// The site (its hosts are first party; its policy has the rules).
    pub site: Arc<Site>,
    /// The visitor's consent.
    pub consent: Consent,
    /// Scheme, host and path of the page, to resolve relative URLs.
    pub page_url: String,
    /// HTML inserted before `</body>` (or at the end of the document if
    /// there is none), UTF-8; None: no banner.
    pub banner: Option<Bytes>,
    /// CSP nonce, when the CSP header built by [`crate::csp::header`] carries
    /// one: added to the inline scripts that are allowed to run.
    pub csp_nonce: Option<String>,
    /// Largest decoded size of a compressed body that is rewritten.
    pub max_decoded_body: u64,
    /// Receives the page's decisions.
    pub on_done: OnDone,
}

impl std::fmt::Debug for BodyContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyContext")
            .field("site", &self.site.name)
            .field("page_url", &self.page_url)
            .field("banner", &self.banner.as_ref().map(Bytes::len))
            .field("max_decoded_body", &self.max_decoded_body)
            .finish_non_exhaustive()
    }
}

/// Why an HTML body (or its rest) passed through unrewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Passthrough {
    /// A `Content-Encoding` consentry does not decode.
    UnknownEncoding,
    /// More than one `Content-Encoding`.
    StackedEncoding,
    /// UTF-16 or another ASCII-incompatible charset.
    AsciiIncompatibleCharset,
    /// lol_html hit its memory limit (a giant tag): the rest passed through.
    RewriterMemory,
    /// lol_html failed otherwise: the rest passed through.
    RewriterError,
    /// lol_html panicked (a bug): the rest passed through.
    RewriterPanic,
    /// The decoded size passed `max_decoded_body`: the rest was re-encoded unrewritten.
    DecodedLimit,
    /// The origin's compressed stream was corrupt: it ended there.
    DecodeError,
}

impl Passthrough {
    /// Every reason, in counter order.
    pub const ALL: [Passthrough; 8] = [
        Passthrough::UnknownEncoding,
        Passthrough::StackedEncoding,
        Passthrough::AsciiIncompatibleCharset,
        Passthrough::RewriterMemory,
        Passthrough::RewriterError,
        Passthrough::RewriterPanic,
        Passthrough::DecodedLimit,
        Passthrough::DecodeError,
    ];

    /// Stable name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Passthrough::UnknownEncoding => "unknown-encoding",
            Passthrough::StackedEncoding => "stacked-encoding",
            Passthrough::AsciiIncompatibleCharset => "ascii-incompatible-charset",
            Passthrough::RewriterMemory => "rewriter-memory",
            Passthrough::RewriterError => "rewriter-error",
            Passthrough::RewriterPanic => "rewriter-panic",
            Passthrough::DecodedLimit => "decoded-limit",
            Passthrough::DecodeError => "decode-error",
        }
    }

    fn index(self) -> usize {
        Passthrough::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

static PASSTHROUGH: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

/// Counts (and logs) one HTML body that passed through unrewritten.
pub fn record_passthrough(reason: Passthrough) {
    PASSTHROUGH[reason.index()].fetch_add(1, Ordering::Relaxed);
    tracing::debug!(target: "consentry::response_body", passthrough = reason.name(), "html body passed through unrewritten");
}

/// How many HTML bodies passed through for `reason` since the process started.
pub fn passthrough_count(reason: Passthrough) -> u64 {
    PASSTHROUGH[reason.index()].load(Ordering::Relaxed)
}

/// Decoded bytes processed per poll before yielding to the executor.
pub const POLL_BUDGET: usize = 4 * 1024 * 1024;

/// Output smaller than this is not sent while more of the origin's body is
/// ready at once: a burst of small origin frames (or a rewriter emitting
/// little at a time) becomes fewer, larger frames and writes. Nothing is
/// ever held waiting: as soon as the origin has nothing more ready, what
/// there is goes out.
pub const MIN_FRAME: usize = 16 * 1024;

/// Decoded bytes produced per decoder step.
const DECODE_STEP: usize = 64 * 1024;

/// Narrows the request's `Accept-Encoding` to encodings this stage can
/// decode, so the origin never sends one it cannot rewrite.
pub fn narrow_accept_encoding(headers: &mut HeaderMap) {
    codec::narrow_accept_encoding(headers);
}

/// Whether a response is a page the body stage should see: HTML with a
/// body (not HEAD, 1xx, 204, 205, 206, 304). [`rewrite`] then decides
/// whether it can rewrite it, and counts what it cannot.
pub fn is_page(method: &Method, status: StatusCode, headers: &HeaderMap) -> bool {
    method != Method::HEAD
        && !status.is_informational()
        && !matches!(status.as_u16(), 204 | 205 | 206 | 304)
        && is_html(headers)
}

/// Whether `Content-Type` is HTML (`text/html`, `application/xhtml+xml`).
fn is_html(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("text/html") || essence.eq_ignore_ascii_case("application/xhtml+xml")
}

/// The charset named by `Content-Type`: `Ok(None)` when absent or unknown
/// (browsers then ignore it), `Err` when it is not ASCII-compatible.
fn header_charset(headers: &HeaderMap) -> Result<Option<&'static Encoding>, ()> {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return Ok(None) };
    for param in ct.split(';').skip(1) {
        let Some((key, value)) = param.split_once('=') else { continue };
        if !key.trim().eq_ignore_ascii_case("charset") {
            continue;
        }
        let label = value.trim().trim_matches(|c| c == '"' || c == '\'');
        return match Encoding::for_label(label.as_bytes()) {
            None => Ok(None),
            Some(enc) if lol_html::AsciiCompatibleEncoding::new(enc).is_some() => Ok(Some(enc)),
            Some(_) => Err(()),
        };
    }
    Ok(None)
}

/// Whether the response has no body by its headers (`Content-Length: 0`).
fn empty_by_length(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() == "0")
}

/// Whether a response will go through the rewriter: HTML with a body that
/// consentry can decode, not to HEAD, not 1xx, 204, 205, 206 or 304.
pub fn will_rewrite(method: &Method, status: StatusCode, headers: &HeaderMap) -> bool {
    method != Method::HEAD
        && !status.is_informational()
        && !matches!(status.as_u16(), 204 | 205 | 206 | 304)
        && is_html(headers)
        && !empty_by_length(headers)
        && codec::content_coding(headers).is_ok()
        && header_charset(headers).is_ok()
}

/// Makes a strong `ETag` weak: the body may differ byte for byte, but not
/// in meaning, from the origin's.
fn weaken_etag(headers: &mut HeaderMap) {
    let Some(etag) = headers.get(ETAG) else { return };
    let bytes = etag.as_bytes();
    if bytes.starts_with(b"W/") {
        return;
    }
    let mut weak = b"W/".to_vec();
    weak.extend_from_slice(bytes);
    if let Ok(value) = HeaderValue::from_bytes(&weak) {
        headers.insert(ETAG, value);
    }
}

/// Integrity headers that would no longer match a rewritten body.
const DIGESTS: [&str; 4] = ["content-md5", "digest", "content-digest", "repr-digest"];

/// Wraps the body in the rewriter (adjusting `Content-Length`, `ETag` and
/// digests in `headers`), or returns it unchanged.
///
/// Call it for every response [`will_rewrite`] accepts; it may also be
/// called for any response (it then checks the headers itself, passes
/// non-HTML through, and counts HTML it cannot rewrite). `cx.on_done` is
/// called exactly once: at the end of the body, when it is dropped, or at
/// once when the body is not rewritten. In report-only mode without a
/// banner the origin's bytes are forwarded as they are (headers untouched)
/// and only inspected.
pub fn rewrite(headers: &mut HeaderMap, body: Body, cx: BodyContext) -> Body {
    if !is_html(headers) {
        (cx.on_done)(Vec::new());
        return body;
    }
    let coding = match codec::content_coding(headers) {
        Ok(c) => c,
        Err(why) => {
            tracing::debug!(site = %cx.site.name, encoding = ?why, "html with an encoding consentry cannot decode");
            record_passthrough(match why {
                Unsupported::Stacked => Passthrough::StackedEncoding,
                Unsupported::Unknown(_) => Passthrough::UnknownEncoding,
            });
            (cx.on_done)(Vec::new());
            return body;
        }
    };
    let Ok(charset) = header_charset(headers) else {
        record_passthrough(Passthrough::AsciiIncompatibleCharset);
        (cx.on_done)(Vec::new());
        return body;
    };
    let enforce = cx.site.policy.mode == Mode::Enforce;
    let changes = enforce || cx.banner.is_some();
    if changes {
        headers.remove(CONTENT_LENGTH);
        weaken_etag(headers);
        for name in DIGESTS {
            headers.remove(HeaderName::from_static(name));
        }
        // Byte ranges of the origin's representation do not apply to ours.
        headers.remove(ACCEPT_RANGES);
    }
    let page = PageRewriter::new(PageOptions {
        site: cx.site.clone(),
        granted: cx.consent.granted,
        gpc_refused: cx.consent.gpc_refused,
        page_url: url::Url::parse(&cx.page_url).ok(),
        banner: cx.banner,
        nonce: cx.csp_nonce,
        charset,
    });
    crate::body::boxed(RewriteBody::new(body, page, coding, !changes, cx.max_decoded_body, cx.on_done))
}

enum State {
    Streaming,
    Trailers(HeaderMap),
    Failed(BoxError),
    Done,
}

/// The body adapter: the origin's body in, the rewritten body out.
pub struct RewriteBody {
    inner: Body,
    page: PageRewriter,
    coding: Coding,
    decoder: Option<Decoder>,
    encoder: Option<Encoder>,
    /// Forward the origin's bytes; only inspect (report-only).
    inspect: bool,
    max_decoded: u64,
    decoded: u64,
    /// Stopped rewriting (limit) or inspecting (limit, corrupt input).
    stopped: bool,
    /// Input received but not processed yet (per-poll budget).
    pending: Bytes,
    state: State,
    on_done: Option<OnDone>,
    scratch: Vec<u8>,
    /// Output not sent yet: coalesced while more input is ready at once.
    out: Vec<u8>,
    /// HTML written to the encoder since its last flush.
    unflushed: usize,
}

impl std::fmt::Debug for RewriteBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RewriteBody")
            .field("coding", &self.coding)
            .field("inspect", &self.inspect)
            .field("decoded", &self.decoded)
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

impl RewriteBody {
    /// Wraps `inner`. `inspect`: forward the original bytes and only collect
    /// decisions.
    pub fn new(
        inner: Body,
        page: PageRewriter,
        coding: Coding,
        inspect: bool,
        max_decoded: u64,
        on_done: OnDone,
    ) -> RewriteBody {
        let decoder = match Decoder::new(coding) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot create a decoder; body inspected only");
                None
            }
        };
        let inspect = inspect || (coding != Coding::Identity && decoder.is_none());
        RewriteBody {
            inner,
            page,
            coding,
            decoder,
            encoder: None,
            inspect,
            max_decoded,
            decoded: 0,
            stopped: false,
            pending: Bytes::new(),
            state: State::Streaming,
            on_done: Some(on_done),
            scratch: Vec::new(),
            out: Vec::new(),
            unflushed: 0,
        }
    }

    /// Output ready to go (flushed through the encoder), counting what the
    /// encoder holds since its last flush.
    fn ready_len(&self) -> usize {
        self.out.len() + self.unflushed
    }

    /// The coalesced output as one frame (the encoder flushed first, so
    /// everything rewritten so far is decodable by the visitor).
    fn take_frame(&mut self) -> Result<Bytes, BoxError> {
        if self.unflushed > 0
            && let Some(enc) = self.encoder.as_mut()
        {
            enc.flush(&mut self.out)?;
        }
        self.unflushed = 0;
        Ok(Bytes::from(std::mem::take(&mut self.out)))
    }

    fn report(&mut self) {
        if let Some(on_done) = self.on_done.take() {
            on_done(self.page.take_decisions());
        }
    }

    fn encoder(&mut self) -> Result<&mut Encoder, BoxError> {
        if self.encoder.is_none() {
            let framing =
                self.decoder.as_ref().and_then(Decoder::deflate_framing).unwrap_or(DeflateFraming::Zlib);
            self.encoder = Encoder::new(self.coding, framing)?;
        }
        self.encoder.as_mut().ok_or_else(|| "no encoder for identity".into())
    }

    /// Processes pending input within `budget` decoded bytes, appending
    /// what can be sent to `self.out` (compressed output stays in the
    /// encoder until [`RewriteBody::take_frame`] flushes it); returns the
    /// budget used.
    fn process(&mut self, budget: usize) -> Result<usize, BoxError> {
        if self.decoder.is_none() {
            let input = std::mem::take(&mut self.pending);
            let used = input.len().max(1);
            if self.inspect {
                self.page.write_bytes(input.clone(), &mut self.scratch);
                self.scratch.clear();
                self.out.extend_from_slice(&input);
            } else {
                if self.out.capacity() == 0 {
                    // Room for this frame and small edits; no regrowth.
                    self.out.reserve(input.len() + input.len() / 8);
                }
                self.page.write_bytes(input, &mut self.out);
            }
            return Ok(used);
        }
        let start_budget = budget;
        let mut budget = budget;
        let mut out = std::mem::take(&mut self.out);
        let mut html = Vec::new();
        while (!self.pending.is_empty() || self.decoder.as_ref().is_some_and(Decoder::has_pending))
            && budget > 0
        {
            if self.inspect && self.stopped {
                out.extend_from_slice(&self.pending);
                self.pending.clear();
                break;
            }
            let mut decoded = std::mem::take(&mut self.scratch);
            decoded.clear();
            let step = match self.decoder.as_mut() {
                Some(d) => d.decode(&self.pending, &mut decoded, DECODE_STEP),
                None => Ok(self.pending.len()),
            };
            let consumed = match step {
                Ok(n) => n,
                Err(e) => {
                    self.scratch = decoded;
                    self.out = self.corrupt(e, out)?;
                    return Ok(start_budget - budget);
                }
            };
            if self.inspect {
                out.extend_from_slice(&self.pending[..consumed]);
            }
            self.pending = self.pending.slice(consumed..);
            budget = budget.saturating_sub(decoded.len().max(1));
            self.decoded += decoded.len() as u64;
            if self.inspect {
                self.page.write(&decoded, &mut html);
                html.clear();
            } else {
                self.page.write(&decoded, &mut html);
            }
            if !self.stopped && self.decoded > self.max_decoded {
                self.stopped = true;
                tracing::debug!(
                    decoded = self.decoded,
                    limit = self.max_decoded,
                    "decoded-size limit reached"
                );
                if self.inspect {
                    self.page.stop(crate::response_body::Passthrough::DecodedLimit, &mut html);
                    html.clear();
                } else {
                    self.page.stop(Passthrough::DecodedLimit, &mut html);
                }
            }
            if !self.inspect && !html.is_empty() {
                self.encoder()?.write(&html)?;
                self.unflushed += html.len();
                html.clear();
            }
            self.scratch = decoded;
        }
        self.out = out;
        Ok(start_budget - budget)
    }

    /// The origin's compressed stream is corrupt.
    fn corrupt(&mut self, e: std::io::Error, mut out: Vec<u8>) -> Result<Vec<u8>, BoxError> {
        tracing::warn!(coding = self.coding.name(), error = %e, "corrupt compressed body from the origin");
        if self.inspect {
            // Forward the origin's bytes as they are; stop inspecting.
            self.stopped = true;
            out.extend_from_slice(&self.pending);
            self.pending.clear();
            return Ok(out);
        }
        record_passthrough(Passthrough::DecodeError);
        self.pending.clear();
        let mut html = Vec::new();
        self.page.finish(&mut html);
        if !html.is_empty() || self.encoder.is_some() {
            self.encoder()?.write(&html)?;
        }
        self.unflushed = 0;
        if let Some(enc) = self.encoder.take() {
            enc.finish(&mut out)?;
        }
        self.state = State::Failed(Box::new(e));
        self.report();
        Ok(out)
    }

    /// End of the origin's body: returns the last bytes.
    fn finish(&mut self) -> Result<Vec<u8>, BoxError> {
        let mut out = Vec::new();
        if self.inspect {
            if !self.stopped {
                let mut decoded = Vec::new();
                if let Some(d) = self.decoder.as_mut() {
                    let _ = d.finish(&mut decoded);
                }
                self.page.write(&decoded, &mut self.scratch);
                self.page.finish(&mut self.scratch);
                self.scratch.clear();
            }
            self.report();
            return Ok(out);
        }
        let mut html = Vec::new();
        if let Some(d) = self.decoder.as_mut() {
            let mut decoded = Vec::new();
            if let Err(e) = d.finish(&mut decoded) {
                return self.corrupt(e, out);
            }
            self.page.write(&decoded, &mut html);
        }
        self.page.finish(&mut html);
        if self.decoder.is_none() {
            out = html;
        } else {
            if !html.is_empty() || self.encoder.is_some() {
                self.encoder()?.write(&html)?;
            }
            self.unflushed = 0;
            if let Some(enc) = self.encoder.take() {
                enc.finish(&mut out)?;
            }
        }
        self.report();
        Ok(out)
    }
}

impl http_body::Body for RewriteBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        // Input processed in this poll: coalescing never runs past one
        // poll's budget.
        let mut spent = 0usize;
        loop {
            if !matches!(this.state, State::Streaming) {
                // What was produced before the end (or the failure) goes first.
                if this.ready_len() > 0 {
                    return match this.take_frame() {
                        Ok(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                        Err(e) => {
                            this.state = State::Done;
                            Poll::Ready(Some(Err(e)))
                        }
                    };
                }
                match std::mem::replace(&mut this.state, State::Done) {
                    State::Streaming | State::Done => return Poll::Ready(None),
                    State::Trailers(t) => return Poll::Ready(Some(Ok(Frame::trailers(t)))),
                    State::Failed(e) => return Poll::Ready(Some(Err(e))),
                }
            }
            if !this.pending.is_empty() || this.decoder.as_ref().is_some_and(Decoder::has_pending) {
                match this.process(POLL_BUDGET.saturating_sub(spent).max(1)) {
                    Ok(used) => spent += used,
                    Err(e) => {
                        this.state = State::Failed(e);
                        this.report();
                        continue;
                    }
                }
                if !matches!(this.state, State::Streaming) {
                    continue;
                }
                let budget_spent = spent >= POLL_BUDGET;
                if this.ready_len() >= MIN_FRAME || (budget_spent && this.ready_len() > 0) {
                    return match this.take_frame() {
                        Ok(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                        Err(e) => {
                            this.state = State::Failed(e);
                            this.report();
                            continue;
                        }
                    };
                }
                if budget_spent {
                    // Budget spent without output: let others run first.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                continue;
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => {
                    // Nothing more ready now: send what there is rather
                    // than wait for it to grow.
                    if this.ready_len() > 0 {
                        return match this.take_frame() {
                            Ok(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                            Err(e) => {
                                this.state = State::Failed(e);
                                this.report();
                                continue;
                            }
                        };
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.pending = data,
                    Err(frame) => {
                        let out = this.finish();
                        if let Ok(trailers) = frame.into_trailers() {
                            if matches!(this.state, State::Streaming) {
                                this.state = State::Trailers(trailers);
                            }
                        } else if matches!(this.state, State::Streaming) {
                            this.state = State::Done;
                        }
                        match out {
                            Ok(mut out) => this.out.append(&mut out),
                            Err(e) => this.state = State::Failed(e),
                        }
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    this.state = State::Failed(e);
                    this.report();
                }
                Poll::Ready(None) => {
                    let out = this.finish();
                    if matches!(this.state, State::Streaming) {
                        this.state = State::Done;
                    }
                    match out {
                        Ok(mut out) => this.out.append(&mut out),
                        Err(e) => this.state = State::Failed(e),
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done) && self.ready_len() == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.inspect { self.inner.size_hint() } else { SizeHint::default() }
    }
}

impl Drop for RewriteBody {
    fn drop(&mut self) {
        // Abandoned (client gone, origin error): the decisions made so far
        // are still reported, once.
        self.report();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn which_responses_are_rewritten() {
        let html = headers(&[("content-type", "text/html; charset=utf-8")]);
        assert!(will_rewrite(&Method::GET, StatusCode::OK, &html));
        assert!(will_rewrite(&Method::POST, StatusCode::NOT_FOUND, &html));
        assert!(will_rewrite(
            &Method::GET,
            StatusCode::OK,
            &headers(&[("content-type", "Application/XHTML+XML")])
        ));
        for status in [100, 101, 204, 205, 206, 304] {
            assert!(!will_rewrite(&Method::GET, StatusCode::from_u16(status).unwrap(), &html), "{status}");
        }
        assert!(!will_rewrite(&Method::HEAD, StatusCode::OK, &html));
        for ct in ["text/plain", "application/json", "text/htmlx", "image/svg+xml"] {
            assert!(!will_rewrite(&Method::GET, StatusCode::OK, &headers(&[("content-type", ct)])), "{ct}");
        }
        assert!(!will_rewrite(&Method::GET, StatusCode::OK, &HeaderMap::new()));
        assert!(!will_rewrite(
            &Method::GET,
            StatusCode::OK,
            &headers(&[("content-type", "text/html"), ("content-length", "0")])
        ));
        for enc in ["gzip", "deflate", "br", "zstd", "identity"] {
            assert!(will_rewrite(
                &Method::GET,
                StatusCode::OK,
                &headers(&[("content-type", "text/html"), ("content-encoding", enc)])
            ));
        }
        for enc in ["compress", "gzip, br", "dcb"] {
            assert!(!will_rewrite(
                &Method::GET,
                StatusCode::OK,
                &headers(&[("content-type", "text/html"), ("content-encoding", enc)])
            ));
        }
        assert!(!will_rewrite(
            &Method::GET,
            StatusCode::OK,
            &headers(&[("content-type", "text/html; charset=UTF-16LE")])
        ));
        assert!(will_rewrite(
            &Method::GET,
            StatusCode::OK,
            &headers(&[("content-type", "text/html; charset=\"latin1\"")])
        ));
    }

    #[test]
    fn charsets() {
        let cs = |v: &str| header_charset(&headers(&[("content-type", v)]));
        assert_eq!(cs("text/html"), Ok(None));
        assert_eq!(cs("text/html; charset=nonsense"), Ok(None));
        assert_eq!(cs("text/html;Charset=ISO-8859-1").unwrap().map(Encoding::name), Some("windows-1252"));
        assert_eq!(cs("text/html; charset='shift_jis'").unwrap().map(Encoding::name), Some("Shift_JIS"));
        assert!(cs("text/html; charset=utf-16").is_err());
        assert!(cs("text/html; charset=iso-2022-jp").is_err());
    }

    #[test]
    fn etags_are_weakened_once() {
        let mut h = headers(&[("etag", "\"abc\"")]);
        weaken_etag(&mut h);
        assert_eq!(h.get(ETAG).unwrap(), "W/\"abc\"");
        weaken_etag(&mut h);
        assert_eq!(h.get(ETAG).unwrap(), "W/\"abc\"");
    }

    #[test]
    fn passthrough_names_are_stable_and_distinct() {
        let names: std::collections::HashSet<_> = Passthrough::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(names.len(), Passthrough::ALL.len());
        let before = passthrough_count(Passthrough::DecodeError);
        record_passthrough(Passthrough::DecodeError);
        assert!(passthrough_count(Passthrough::DecodeError) > before);
    }
}
