//! Stage 4, **consent**: the visitor's consent cookie → granted categories.
//!
//! Each consent manager stores consent in its own format; one adapter per
//! format turns its cookie into a [`Reading`]: the consent manager's own
//! names (OneTrust groups, Cookiebot categories, TCF purposes...) that were
//! granted, plus revision and time when the format has them. [`read`] maps
//! those names to policy categories through the policy's `map`, then applies
//! renewal (`max_age_days`), `revision` and `Sec-GPC`.
//!
//! | format | cookie | adapter | names | `revision` compares with | time |
//! |---|---|---|---|---|---|
//! | `consentry` | `consentry` | [`consentry`] | policy categories | the cookie's revision | given-at (s) |
//! | `cookieconsent` | `cc_cookie` | [`cookieconsent`] | its categories (`level` in v2) | `revision` (0 if absent) | `lastConsentTimestamp`, `expirationTime` |
//! | `klaro` | `klaro` | [`klaro`] | service names | — | — |
//! | `cookiebot` | `CookieConsent` | [`cookiebot`] | `preferences`, `statistics`, `marketing` | `ver` | `utc` (ms) |
//! | `onetrust` | `OptanonConsent` | [`onetrust`] | group ids (`C0002`) | — (`AwaitingReconsent`) | `datestamp` |
//! | `cookieyes` | `cookieyes-consent` | [`cookieyes`] | category slugs | — | — |
//! | `complianz` | `cmplz_*` | [`complianz`] | `preferences`, `statistics`, `marketing` | `cmplz_policy_id` | — |
//! | `tcf` | `euconsent-v2` | [`tcf`] | purpose numbers (`"1"`..`"24"`) | — | LastUpdated |
//!
//! Fail closed: anything missing, malformed, truncated, oversized
//! (> [`MAX_VALUE_LEN`]), expired, of an older revision or contradictory
//! (the same name granted and refused, two cookies of the consent cookie's
//! name with different values) grants `necessary` only. So does a value a
//! consent manager writes before the visitor has chosen anything (CookieYes
//! without `action:yes`, OneTrust with `interactionCount=0`): defaults are
//! not consent. No reader may panic on any input; each is a plain function
//! over the cookie text, fuzzed by the property tests below.

use std::time::{Duration, SystemTime};

pub mod complianz;
pub mod consentry;
pub mod cookiebot;
pub mod cookieconsent;
pub mod cookieyes;
mod decode;
pub mod klaro;
pub mod onetrust;
pub mod tcf;

pub use consentry::encode;

use crate::category::{CategoryId, CategorySet};
use crate::cookie::CookieJar;
use crate::policy::ConsentSettings;

/// The consent-cookie formats consentry reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// consentry's own cookie (see [`crate::consent`] module `consentry`).
    Consentry,
    /// orestbida cookieconsent v3 (and v2) `cc_cookie`.
    CookieConsent,
    /// Klaro `klaro`.
    Klaro,
    /// Cookiebot `CookieConsent`.
    Cookiebot,
    /// OneTrust `OptanonConsent`.
    OneTrust,
    /// CookieYes `cookieyes-consent`.
    CookieYes,
    /// Complianz `cmplz_*` cookies.
    Complianz,
    /// IAB TCF v2.2 `euconsent-v2`.
    Tcf,
}

impl Format {
    /// Every format, for `consentry check` messages and tests.
    pub const ALL: [Format; 8] = [
        Format::Consentry,
        Format::CookieConsent,
        Format::Klaro,
        Format::Cookiebot,
        Format::OneTrust,
        Format::CookieYes,
        Format::Complianz,
        Format::Tcf,
    ];

    /// The name used in the config (`format = "onetrust"`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Consentry => "consentry",
            Format::CookieConsent => "cookieconsent",
            Format::Klaro => "klaro",
            Format::Cookiebot => "cookiebot",
            Format::OneTrust => "onetrust",
            Format::CookieYes => "cookieyes",
            Format::Complianz => "complianz",
            Format::Tcf => "tcf",
        }
    }

    /// The format with this config name.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The cookie the consent manager stores consent in by default.
    pub fn default_cookie(self) -> &'static str {
        match self {
            Format::Consentry => "consentry",
            Format::CookieConsent => "cc_cookie",
            Format::Klaro => "klaro",
            Format::Cookiebot => "CookieConsent",
            Format::OneTrust => "OptanonConsent",
            Format::CookieYes => "cookieyes-consent",
            Format::Complianz => "cmplz_policy_id",
            Format::Tcf => "euconsent-v2",
        }
    }

    /// Whether `name` is one of the cookies this consent manager keeps its
    /// state in (besides the configured consent cookie): always necessary,
    /// never stripped or swept, or the banner would come back on every page.
    pub fn owns_cookie(self, name: &str) -> bool {
        match self {
            Format::Consentry | Format::CookieConsent | Format::Klaro => false,
            // Cross-domain ("bulk") consent.
            Format::Cookiebot => {
                name == "CookieConsent"
                    || name == "CookieConsentBulkTicket"
                    || name.starts_with("CookieConsentBulkSetting-")
            }
            // OneTrust with the IAB TCF integration also keeps a TC string
            // and Google's Additional Consent string.
            Format::OneTrust => matches!(
                name,
                "OptanonConsent" | "OptanonAlertBoxClosed" | "OTAdditionalConsentString" | "eupubconsent-v2"
            ),
            // The WordPress plugin behind CookieYes ("GDPR Cookie Consent")
            // keeps its older cookies alongside.
            Format::CookieYes => {
                name == "cookieyes-consent"
                    || name == "viewed_cookie_policy"
                    || name == "CookieLawInfoConsent"
                    || name.starts_with("cookielawinfo-checkbox-")
            }
            Format::Complianz => name.starts_with("cmplz_") || name.starts_with("complianz_"),
            // Google's Additional Consent Mode string travels with the TC string.
            Format::Tcf => name == "euconsent-v2" || name == "addtl_consent",
        }
    }

    /// The consent manager's own names → the usual policy category names,
    /// used unless the policy's `map` says otherwise. Entries naming a
    /// category the policy does not declare are ignored.
    pub fn default_map(self) -> &'static [(&'static str, &'static str)] {
        match self {
            // Policy category names map to themselves; Klaro services are
            // the site's own and need an explicit `map`.
            Format::Consentry | Format::Klaro => &[],
            // cookieconsent categories are the site's own too; these are
            // the names its documentation and examples use.
            Format::CookieConsent => &[
                ("functionality", "functional"),
                ("preferences", "functional"),
                ("marketing", "advertising"),
                ("targeting", "advertising"),
            ],
            Format::Cookiebot => &[
                ("necessary", "necessary"),
                ("preferences", "functional"),
                ("statistics", "analytics"),
                ("marketing", "advertising"),
            ],
            Format::OneTrust => &[
                ("C0001", "necessary"),
                ("C0002", "analytics"),
                ("C0003", "functional"),
                ("C0004", "advertising"),
                ("C0005", "advertising"),
            ],
            Format::CookieYes => &[
                ("necessary", "necessary"),
                ("functional", "functional"),
                ("analytics", "analytics"),
                ("performance", "analytics"),
                ("advertisement", "advertising"),
            ],
            Format::Complianz => &[
                ("functional", "necessary"),
                ("preferences", "functional"),
                ("statistics", "analytics"),
                ("marketing", "advertising"),
            ],
            Format::Tcf => &[
                ("1", "analytics"),
                ("2", "advertising"),
                ("3", "advertising"),
                ("4", "advertising"),
                ("7", "analytics"),
                ("8", "analytics"),
                ("9", "analytics"),
                ("10", "analytics"),
            ],
        }
    }
}

/// Why a visitor has no valid consent (and so is granted `necessary` only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Valid consent was read.
    Valid,
    /// No consent cookie.
    Missing,
    /// The cookie did not parse, was oversized, forged or contradictory.
    Invalid,
    /// Older than `max_age_days`, or past its own expiry.
    Expired,
    /// Given for an older `revision` of the policy.
    OldRevision,
}

impl State {
    /// Lower-case name for logs, metrics and headers.
    pub fn name(self) -> &'static str {
        match self {
            State::Valid => "valid",
            State::Missing => "missing",
            State::Invalid => "invalid",
            State::Expired => "expired",
            State::OldRevision => "old-revision",
        }
    }
}

/// What one adapter read from a cookie, before mapping and checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    /// The consent manager's names that were granted (`C0002`, `statistics`,
    /// `7`...), or policy category names for formats that use them directly.
    pub granted: Vec<String>,
    /// Policy revision the consent was given for, when the format has one.
    pub revision: Option<u64>,
    /// When consent was given, when the format says.
    pub given_at: Option<SystemTime>,
    /// When the consent manager itself considers it expired.
    pub expires_at: Option<SystemTime>,
    /// Grant the policy's `outside_region` set instead (Cookiebot `-1`).
    pub outside_region: bool,
}

/// The result of the consent stage for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consent {
    /// What is granted: always includes `necessary`.
    pub granted: CategorySet,
    /// Whether consent was valid, and if not why.
    pub state: State,
    /// The format read.
    pub format: Format,
    /// Revision of valid consent.
    pub revision: Option<u64>,
    /// When valid consent was given.
    pub given_at: Option<SystemTime>,
    /// Categories removed because the browser sent `Sec-GPC: 1`.
    pub gpc_refused: CategorySet,
}

impl Consent {
    /// Necessary only, for the given reason.
    pub fn none(format: Format, state: State) -> Consent {
        Consent {
            granted: CategorySet::NECESSARY_ONLY,
            state,
            format,
            revision: None,
            given_at: None,
            gpc_refused: CategorySet::EMPTY,
        }
    }

    /// Whether the visitor has made a valid choice (the banner is not shown).
    pub fn is_valid(&self) -> bool {
        self.state == State::Valid
    }
}

/// Why an adapter gave no consent: the state to report and a short reason
/// for the debug log and `explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// `Missing`, `Invalid`, `Expired` or `OldRevision`.
    pub state: State,
    /// What was wrong, for humans.
    pub reason: &'static str,
}

impl Refusal {
    /// The value did not parse, was oversized, forged or contradictory.
    pub const fn invalid(reason: &'static str) -> Refusal {
        Refusal { state: State::Invalid, reason }
    }

    /// There is no choice to read (no cookie, or only the consent
    /// manager's defaults).
    pub const fn missing(reason: &'static str) -> Refusal {
        Refusal { state: State::Missing, reason }
    }

    /// The consent manager itself asks for consent again.
    pub const fn old_revision(reason: &'static str) -> Refusal {
        Refusal { state: State::OldRevision, reason }
    }
}

/// Largest consent cookie value read; anything longer is invalid. Real
/// values are under 4 KB (browsers cap a cookie at 4096 bytes).
pub const MAX_VALUE_LEN: usize = 8 * 1024;

/// Reads the visitor's consent from the request's cookies.
///
/// `gpc` is whether the request carried `Sec-GPC: 1`: the policy's
/// `gpc_refuses` categories are then removed whatever the cookie says
/// (and reported in [`Consent::gpc_refused`]).
pub fn read(settings: &ConsentSettings, jar: &CookieJar<'_>, gpc: bool, now: SystemTime) -> Consent {
    let mut consent = match read_raw(settings, jar) {
        Err(refusal) => {
            tracing::debug!(
                format = settings.format.name(),
                cookie = %settings.cookie,
                state = refusal.state.name(),
                reason = refusal.reason,
                "consent refused"
            );
            Consent::none(settings.format, refusal.state)
        }
        Ok(reading) => evaluate(settings, &reading, now),
    };
    if gpc {
        let refused = consent.granted.intersection(settings.gpc_refuses);
        let refused = refused.difference(CategorySet::NECESSARY_ONLY);
        consent.granted = consent.granted.difference(refused);
        consent.gpc_refused = refused;
    }
    tracing::debug!(
        format = settings.format.name(),
        state = consent.state.name(),
        granted = consent.granted.bits(),
        gpc_refused = consent.gpc_refused.bits(),
        "consent read"
    );
    consent
}

/// Runs the adapter for the policy's format over the request's cookies:
/// the consent manager's own reading, before mapping, renewal and revision
/// checks ([`evaluate`]). Used by [`read`] and by `explain`.
pub fn read_raw(settings: &ConsentSettings, jar: &CookieJar<'_>) -> Result<Reading, Refusal> {
    let parse: fn(&str) -> Result<Reading, Refusal> = match settings.format {
        // Complianz spreads its state over several cookies.
        Format::Complianz => return complianz::read(jar, &settings.cookie),
        Format::Consentry => {
            let value = decode::required(jar, &settings.cookie)?;
            return consentry::parse(value, settings.hmac_key.as_deref());
        }
        Format::CookieConsent => cookieconsent::parse,
        Format::Klaro => klaro::parse,
        Format::Cookiebot => cookiebot::parse,
        Format::OneTrust => onetrust::parse,
        Format::CookieYes => cookieyes::parse,
        Format::Tcf => tcf::parse,
    };
    parse(decode::required(jar, &settings.cookie)?)
}

/// Applies the policy to a reading: maps names, checks revision and age.
pub fn evaluate(settings: &ConsentSettings, reading: &Reading, now: SystemTime) -> Consent {
    let format = settings.format;
    if let Some(expires) = reading.expires_at
        && expires <= now
    {
        return Consent::none(format, State::Expired);
    }
    // A format without a timestamp cannot prove freshness; the consent
    // manager's own expiry (checked above) is all there is.
    if let (Some(max_age), Some(given)) = (settings.max_age, reading.given_at)
        && now.duration_since(given).unwrap_or(Duration::ZERO) > max_age
    {
        return Consent::none(format, State::Expired);
    }
    if let Some(given) = reading.given_at
        && given > now + Duration::from_secs(24 * 3600)
    {
        // A timestamp far in the future is forged or corrupt.
        return Consent::none(format, State::Invalid);
    }
    if let Some(revision) = reading.revision
        && revision < settings.revision
    {
        return Consent::none(format, State::OldRevision);
    }
    let mut granted = CategorySet::NECESSARY_ONLY;
    if reading.outside_region {
        granted = granted.union(settings.outside_region);
    }
    for name in &reading.granted {
        if let Some(set) = settings.map.get(name.as_str()) {
            granted = granted.union(*set);
        }
    }
    Consent {
        granted,
        state: State::Valid,
        format,
        revision: reading.revision,
        given_at: reading.given_at,
        gpc_refused: CategorySet::EMPTY,
    }
}

/// The category a consent-manager name maps to, for tests and `explain`.
pub fn mapped(settings: &ConsentSettings, name: &str) -> Option<CategorySet> {
    settings.map.get(name).copied()
}

/// Convenience for adapters: a category id's bit set.
pub fn set_of(id: CategoryId) -> CategorySet {
    CategorySet::only(id)
}
