//! Stage 5, **request filter**: drop refused cookies from the request's
//! `Cookie` header(s) before the origin sees them, and remember them so the
//! response can delete them in the browser (the sweep).
//!
//! STUB: passes every cookie; replaced by the cookie-enforcement work.

use http::HeaderMap;

use crate::category::CategoryId;
use crate::consent::Consent;
use crate::decision::Decisions;
use crate::policy::Policy;

/// A cookie the visitor sent but has not consented to: removed from the
/// request and deleted in the browser by the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawn {
    /// Cookie name.
    pub name: String,
    /// Its category (`None`: unclassified and blocked by default).
    pub category: Option<CategoryId>,
    /// The rule's `Domain`, to delete a domain cookie (host-only is always
    /// deleted too).
    pub domain: Option<String>,
    /// Paths to delete it on.
    pub paths: Vec<String>,
}

/// Filters every `Cookie` header in place (unless the policy is
/// report-only) and returns the refused cookies.
pub fn filter_request(
    headers: &mut HeaderMap,
    policy: &Policy,
    host: &str,
    consent: &Consent,
    decisions: &mut Decisions,
) -> Vec<Withdrawn> {
    let _ = (headers, policy, host, consent, decisions);
    Vec::new()
}
