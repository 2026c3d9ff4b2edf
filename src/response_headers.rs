//! Stage 7, **response headers**: classify each `Set-Cookie` (keep, drop,
//! cap, harden), add sweep deletions for withdrawn cookies, append `Vary`,
//! add the CSP built from the granted categories, and in report-only mode a
//! `Consentry-Report` summary instead of any change.
//!
//! STUB: changes nothing; replaced by the cookie-enforcement work.

use std::time::SystemTime;

use http::{HeaderMap, StatusCode};

use crate::consent::Consent;
use crate::decision::Decisions;
use crate::policy::Policy;
use crate::request_filter::Withdrawn;

/// What the response-header stage needs to know about the request.
#[derive(Debug)]
pub struct ResponseContext<'a> {
    /// The site's policy.
    pub policy: &'a Policy,
    /// The request host (normalized): the effective domain of host-only cookies.
    pub host: &'a str,
    /// The visitor's consent.
    pub consent: &'a Consent,
    /// Cookies the request carried without consent.
    pub withdrawn: &'a [Withdrawn],
    /// Whether the client connection is HTTPS.
    pub https: bool,
    /// Now, for `Expires` arithmetic.
    pub now: SystemTime,
    /// Whether the body stage will rewrite the body (so it depends on consent).
    pub body_rewritten: bool,
}

/// Applies the stage to the origin's response headers.
pub fn filter_response(
    status: StatusCode,
    headers: &mut HeaderMap,
    cx: &ResponseContext<'_>,
    decisions: &mut Decisions,
) {
    let _ = (status, headers, cx, decisions);
}
