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
//! not consent. `revision` has no effect on formats that carry nothing to
//! compare it with (—), nor `max_age_days` on those without a time: the
//! cookie's own lifetime in the browser is all there is.
//!
//! No reader may panic on any input: each is a plain function over the
//! cookie text, never indexes by an unchecked position, and is fuzzed by
//! the property tests in `props.rs` (arbitrary bytes, the formats' own
//! alphabets, and mutated real values).

use std::time::{Duration, SystemTime};

pub mod complianz;
pub mod consentry;
pub mod cookiebot;
pub mod cookieconsent;
pub mod cookieyes;
mod decode;
pub mod klaro;
pub mod onetrust;
#[cfg(test)]
mod props;
pub mod tcf;
#[cfg(test)]
pub(crate) mod vectors;

pub use consentry::encode;

use crate::category::{CategoryId, CategorySet};
use crate::cookie::CookieJar;
use crate::policy::ConsentSettings;

/// The consent-cookie formats consentry reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// consentry's own cookie (see [`consentry`]).
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

/// What a decision's rule starts with when `Sec-GPC: 1` refused the item.
pub const GPC_NOTE: &str = "refused by Sec-GPC: 1; ";

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
    /// Whether `Sec-GPC: 1` is why an item of this category is refused:
    /// the visitor granted the category and GPC took it back. Decisions
    /// name it ([`GPC_NOTE`]).
    pub fn refused_by_gpc(&self, category: Option<CategoryId>) -> bool {
        category.is_some_and(|id| self.gpc_refused.contains(id))
    }

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
            return consentry::parse_keyed(value, settings.hmac_key.as_ref());
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
        && now.checked_add(Duration::from_secs(24 * 3600)).is_some_and(|limit| given > limit)
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Source;
    use crate::policy::{Policy, compile};
    use crate::presets::Presets;
    use std::path::PathBuf;
    use std::time::UNIX_EPOCH;

    const DAY: Duration = Duration::from_secs(24 * 3600);
    pub(crate) const KEY: &str = "test-key-0123456789abcdef";

    /// A policy with the four default categories and this `[consent]` table.
    pub(crate) fn policy(consent: &str) -> Policy {
        let text = format!("[policy.default]\n[policy.default.consent]\n{consent}\n");
        let source = Source { path: PathBuf::from("t.toml"), text };
        let file = source.parse().unwrap();
        compile("default", &source, &file.policy, &Presets::default()).unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn names(p: &Policy, c: &Consent) -> String {
        p.categories.names(c.granted)
    }

    fn read_at(p: &Policy, header: &str, now: SystemTime) -> Consent {
        read(&p.consent, &CookieJar::parse(header), false, now)
    }

    /// Every format reads its real accept-all value end to end, through the
    /// default map.
    #[test]
    fn every_format_end_to_end() {
        let cases: [(&str, String, SystemTime, &str); 8] = [
            (
                "format = \"consentry\"\nhmac_key = \"k\"",
                format!(
                    "consentry={}",
                    encode(&["analytics", "functional"], 0, at(1_700_000_000), Some(b"k"))
                ),
                at(1_700_000_000) + DAY,
                "necessary,functional,analytics",
            ),
            (
                "format = \"cookieconsent\"",
                format!("cc_cookie={}", vectors::COOKIECONSENT),
                at(1_744_767_171) + DAY,
                "necessary,analytics",
            ),
            (
                "format = \"klaro\"\nmap = { googleAnalytics = \"analytics\", youtube = \"advertising\" }",
                format!("klaro={}", vectors::KLARO),
                at(1_700_000_000),
                "necessary,analytics,advertising",
            ),
            (
                "format = \"cookiebot\"\nrevision = 1",
                format!("CookieConsent={}", vectors::COOKIEBOT),
                at(1_726_058_380) + DAY,
                "necessary,functional,analytics,advertising",
            ),
            (
                "format = \"onetrust\"",
                format!("OptanonConsent={}", vectors::ONETRUST),
                at(1_751_736_814) + DAY,
                "necessary,functional,analytics,advertising",
            ),
            (
                "format = \"cookieyes\"",
                format!("cookieyes-consent={}", vectors::COOKIEYES),
                at(1_700_000_000),
                "necessary,functional,analytics,advertising",
            ),
            (
                "format = \"complianz\"\nrevision = 14",
                vectors::COMPLIANZ.to_string(),
                at(1_700_000_000),
                "necessary,functional,analytics,advertising",
            ),
            (
                "format = \"tcf\"",
                format!("euconsent-v2={}", vectors::TCF),
                at(1_667_551_488) + DAY,
                "necessary,analytics,advertising",
            ),
        ];
        for (consent, header, now, want) in cases {
            let p = policy(consent);
            let c = read_at(&p, &header, now);
            assert_eq!((c.state, names(&p, &c).as_str()), (State::Valid, want), "{consent}");
            assert_eq!(c.format, p.consent.format);
            // And without the cookie: nothing.
            let none = read_at(&p, "unrelated=1", now);
            assert_eq!(
                (none.state, none.granted),
                (State::Missing, CategorySet::NECESSARY_ONLY),
                "{consent}"
            );
            // A 1 MB value under the consent cookie's name grants nothing.
            let huge = format!("{}={}", p.consent.cookie, "a".repeat(1 << 20));
            let c = read_at(&p, &huge, now);
            assert_eq!((c.state, c.granted), (State::Invalid, CategorySet::NECESSARY_ONLY), "{consent}");
        }
    }

    #[test]
    fn duplicate_consent_cookies() {
        let p = policy("format = \"cookieyes\"");
        let accept = format!("cookieyes-consent={}", vectors::COOKIEYES);
        let reject = "cookieyes-consent=consent:no,action:yes,necessary:yes,analytics:no";
        let now = at(1_700_000_000);
        // The same value twice (e.g. path / and /shop) is one choice.
        assert_eq!(read_at(&p, &format!("{accept}; {accept}"), now).state, State::Valid);
        // Two different values: which one is current is unknowable.
        let c = read_at(&p, &format!("{accept}; {reject}"), now);
        assert_eq!((c.state, c.granted), (State::Invalid, CategorySet::NECESSARY_ONLY));
        // A quoted value is read as unquoted.
        let quoted = format!("cookieyes-consent=\"{}\"", vectors::COOKIEYES);
        assert_eq!(read_at(&p, &quoted, now).state, State::Valid);
        // An empty value is no choice.
        assert_eq!(read_at(&p, "cookieyes-consent=", now).state, State::Missing);
    }

    #[test]
    fn renewal_expiry_and_future() {
        let p = policy("max_age_days = 180");
        let given = at(1_700_000_000);
        let cookie = format!("consentry={}", encode(&["analytics"], 0, given, None));
        assert_eq!(read_at(&p, &cookie, given + 179 * DAY).state, State::Valid);
        let old = read_at(&p, &cookie, given + 181 * DAY);
        assert_eq!((old.state, old.granted), (State::Expired, CategorySet::NECESSARY_ONLY));
        // Consent from the far future is forged or corrupt; a little clock
        // skew is not.
        assert_eq!(read_at(&p, &cookie, given - 2 * DAY).state, State::Invalid);
        assert_eq!(read_at(&p, &cookie, given - Duration::from_secs(60)).state, State::Valid);
        // The consent manager's own expiry (cookieconsent expirationTime).
        let p = policy("format = \"cookieconsent\"\nmax_age_days = 3650");
        let cc = format!("cc_cookie={}", vectors::COOKIECONSENT);
        let after_expiry = UNIX_EPOCH + Duration::from_millis(1_760_491_971_026);
        assert_eq!(read_at(&p, &cc, after_expiry - DAY).state, State::Valid);
        assert_eq!(read_at(&p, &cc, after_expiry).state, State::Expired);
        // Cookiebot utc: 2024-09-11; 180 days later it must be renewed.
        let p = policy("format = \"cookiebot\"\nmax_age_days = 180");
        let cb = format!("CookieConsent={}", vectors::COOKIEBOT);
        assert_eq!(read_at(&p, &cb, at(1_726_058_380) + 181 * DAY).state, State::Expired);
    }

    #[test]
    fn revisions() {
        let given = at(1_700_000_000);
        let now = given + DAY;
        let p = policy("revision = 2");
        for (rev, want) in [(1, State::OldRevision), (2, State::Valid), (3, State::Valid)] {
            let cookie = format!("consentry={}", encode(&["analytics"], rev, given, None));
            assert_eq!(read_at(&p, &cookie, now).state, want, "revision {rev}");
        }
        // cookieconsent's revision 0 against a policy at revision 1.
        let p = policy("format = \"cookieconsent\"\nrevision = 1");
        let cc = format!("cc_cookie={}", vectors::COOKIECONSENT);
        let c = read_at(&p, &cc, at(1_744_767_171) + DAY);
        assert_eq!((c.state, c.granted), (State::OldRevision, CategorySet::NECESSARY_ONLY));
        // Complianz policy id 14 against revision 15.
        let p = policy("format = \"complianz\"\nrevision = 15");
        assert_eq!(read_at(&p, vectors::COMPLIANZ, now).state, State::OldRevision);
        // Cookiebot ver 1 against revision 2.
        let p = policy("format = \"cookiebot\"\nrevision = 2");
        let cb = format!("CookieConsent={}", vectors::COOKIEBOT);
        assert_eq!(read_at(&p, &cb, at(1_726_058_380) + DAY).state, State::OldRevision);
        // OneTrust asks again itself.
        let p = policy("format = \"onetrust\"");
        let ot = format!("OptanonConsent={}", vectors::ONETRUST.replace("Reconsent=false", "Reconsent=true"));
        assert_eq!(read_at(&p, &ot, at(1_751_736_814) + DAY).state, State::OldRevision);
    }

    #[test]
    fn gpc_refuses_the_policy_categories() {
        let p = policy("");
        let cookie = format!(
            "consentry={}",
            encode(&["functional", "analytics", "advertising"], 0, at(1_700_000_000), None)
        );
        let jar = CookieJar::parse(&cookie);
        let now = at(1_700_000_000) + DAY;
        let without = read(&p.consent, &jar, false, now);
        assert_eq!(names(&p, &without), "necessary,functional,analytics,advertising");
        assert!(without.gpc_refused.is_empty());
        // Default gpc_refuses: advertising.
        let with = read(&p.consent, &jar, true, now);
        assert_eq!(names(&p, &with), "necessary,functional,analytics");
        assert_eq!(p.categories.names(with.gpc_refused), "advertising");
        assert_eq!(with.state, State::Valid);
        // necessary is never refused, even when listed.
        let p = policy("gpc_refuses = [\"necessary\", \"analytics\"]");
        let with = read(&p.consent, &jar, true, now);
        assert_eq!(names(&p, &with), "necessary,functional,advertising");
        assert_eq!(p.categories.names(with.gpc_refused), "analytics");
        // Nothing granted, nothing to refuse.
        let none = read(&p.consent, &CookieJar::default(), true, now);
        assert_eq!((none.granted, none.gpc_refused), (CategorySet::NECESSARY_ONLY, CategorySet::EMPTY));
    }

    #[test]
    fn hmac_key_required_when_set() {
        let p = policy(&format!("hmac_key = \"{KEY}\""));
        let given = at(1_700_000_000);
        let now = given + DAY;
        let good = encode(&["advertising"], 0, given, Some(KEY.as_bytes()));
        assert_eq!(read_at(&p, &format!("consentry={good}"), now).state, State::Valid);
        for bad in
            [encode(&["advertising"], 0, given, None), encode(&["advertising"], 0, given, Some(b"other"))]
        {
            let c = read_at(&p, &format!("consentry={bad}"), now);
            assert_eq!((c.state, c.granted), (State::Invalid, CategorySet::NECESSARY_ONLY), "{bad}");
        }
    }

    #[test]
    fn outside_region_and_declined() {
        let p = policy("format = \"cookiebot\"\noutside_region = [\"analytics\", \"functional\"]");
        let c = read_at(&p, "CookieConsent=-1", at(1_700_000_000));
        assert_eq!((c.state, names(&p, &c).as_str()), (State::Valid, "necessary,functional,analytics"));
        let c = read_at(&p, "CookieConsent=0", at(1_700_000_000));
        assert_eq!((c.state, c.granted), (State::Valid, CategorySet::NECESSARY_ONLY));
        // Without the setting, outside the region is necessary only.
        let p = policy("format = \"cookiebot\"");
        assert_eq!(read_at(&p, "CookieConsent=-1", at(1_700_000_000)).granted, CategorySet::NECESSARY_ONLY);
    }

    #[test]
    fn maps_decide_and_unmapped_names_grant_nothing() {
        // Klaro services absent from the map grant nothing.
        let p = policy("format = \"klaro\"");
        let c = read_at(&p, &format!("klaro={}", vectors::KLARO), at(1_700_000_000));
        assert_eq!((c.state, c.granted), (State::Valid, CategorySet::NECESSARY_ONLY));
        // The policy's map overrides the default TCF purpose map.
        let p = policy(
            "format = \"tcf\"\nmap = { \"1\" = \"functional\", \"2\" = \"functional\", \"3\" = \"functional\", \"4\" = \"functional\", \"7\" = \"functional\", \"8\" = \"functional\", \"9\" = \"functional\", \"10\" = \"functional\" }",
        );
        let c = read_at(&p, &format!("euconsent-v2={}", vectors::TCF), at(1_667_551_488) + DAY);
        assert_eq!(names(&p, &c), "necessary,functional");
        // OneTrust groups beyond the defaults map through the policy.
        let p = policy("format = \"onetrust\"\nmap = { SPD_BG = \"advertising\" }");
        let c = read_at(&p, "OptanonConsent=groups=C0001%3A1%2CSPD_BG%3A1%2CC0002%3A0", at(1_700_000_000));
        assert_eq!(names(&p, &c), "necessary,advertising");
    }

    #[test]
    fn consent_manager_cookies_are_its_own() {
        assert!(Format::Complianz.owns_cookie("cmplz_banner-status"));
        assert!(Format::OneTrust.owns_cookie("OptanonAlertBoxClosed"));
        assert!(Format::OneTrust.owns_cookie("eupubconsent-v2"));
        assert!(Format::Cookiebot.owns_cookie("CookieConsentBulkSetting-abc"));
        assert!(Format::CookieYes.owns_cookie("cookielawinfo-checkbox-analytics"));
        assert!(Format::Tcf.owns_cookie("addtl_consent"));
        assert!(!Format::Cookiebot.owns_cookie("_ga"));
        assert!(!Format::Consentry.owns_cookie("cmplz_banner-status"));
        // The compiled policy treats them as necessary.
        let p = policy("format = \"complianz\"");
        assert_eq!(
            p.classify_cookie("cmplz_marketing", "example.com").0,
            Some(crate::category::CategoryId::NECESSARY)
        );
    }

    #[test]
    fn read_raw_reports_why() {
        let p = policy("format = \"onetrust\"");
        let err = read_raw(&p.consent, &CookieJar::parse("OptanonConsent=groups=C0001%3A7")).unwrap_err();
        assert_eq!(err, Refusal::invalid("onetrust: group state is not 0 or 1"));
        let err = read_raw(&p.consent, &CookieJar::default()).unwrap_err();
        assert_eq!(err.state, State::Missing);
    }
}
