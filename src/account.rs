//! Stage 9, **account**: metrics, the inventory of observed cookies and
//! third-party resources, and the audit log of decisions.
//!
//! STUB: records nothing; replaced by the accounting work.

use std::time::Duration;

use crate::decision::Decision;
use crate::policy::Policy;
use crate::route::Site;

/// Shared accounting state (cheap to clone behind an `Arc`).
#[derive(Debug, Default)]
pub struct Account {}

impl Account {
    /// Records the decisions of one request (or one page body).
    pub fn record(&self, site: &Site, policy: &Policy, request_id: &str, decisions: &[Decision]) {
        let _ = (site, policy, request_id, decisions);
    }

    /// Records a finished request.
    pub fn request_done(&self, site: Option<&str>, status: u16, duration: Duration) {
        let _ = (site, status, duration);
    }
}
