//! Stage 8, **response body**: HTML (not HEAD, 204, 304, 206) streams
//! through the lol_html rewriter; compressed bodies are decoded and
//! re-encoded; everything else passes untouched.
//!
//! STUB: passes every body; replaced by the HTML-rewriting work.

use std::sync::Arc;

use http::{HeaderMap, Method, StatusCode};

use crate::body::Body;
use crate::consent::Consent;
use crate::decision::Decisions;
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
    /// Inject the consent banner before `</body>`.
    pub inject_banner: bool,
    /// CSP nonce for injected elements, when a CSP is sent.
    pub csp_nonce: Option<String>,
    /// Largest decoded size of a compressed body that is rewritten.
    pub max_decoded_body: u64,
    /// Receives the page's decisions.
    pub on_done: OnDone,
}

/// Narrows the request's `Accept-Encoding` to encodings this stage can
/// decode, so the origin never sends one it cannot rewrite.
pub fn narrow_accept_encoding(headers: &mut HeaderMap) {
    let _ = headers;
}

/// Whether a response will go through the rewriter.
pub fn will_rewrite(method: &Method, status: StatusCode, headers: &HeaderMap) -> bool {
    let _ = (method, status, headers);
    false
}

/// Wraps the body in the rewriter (adjusting `Content-Length`, `ETag` and
/// `Content-Encoding` in `headers`), or returns it unchanged.
pub fn rewrite(headers: &mut HeaderMap, body: Body, cx: BodyContext) -> Body {
    let _ = headers;
    (cx.on_done)(Vec::new());
    body
}
