//! Property tests for the consent stage: no reader panics or grants on
//! input that does not parse, and a signed `consentry` value cannot be
//! altered by a single byte and still grant anything.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;

use super::tests::{KEY, policy};
use super::*;
use crate::policy::Policy;

/// Compiled once: every test case runs against all of them.
fn policies() -> &'static [Policy] {
    static POLICIES: std::sync::OnceLock<Vec<Policy>> = std::sync::OnceLock::new();
    POLICIES.get_or_init(build_policies)
}

fn build_policies() -> Vec<Policy> {
    let keyed = format!("format = \"consentry\"\nhmac_key = \"{KEY}\"");
    let mut out: Vec<Policy> = Format::ALL
        .iter()
        .map(|f| policy(&format!("format = \"{}\"\nmax_age_days = 36500", f.name())))
        .collect();
    out.push(policy(&keyed));
    // Map every Klaro service of the vector so that Klaro can grant.
    out.push(policy(
        "format = \"klaro\"\nmap = { googleAnalytics = \"analytics\", youtube = \"advertising\" }",
    ));
    out
}

/// A real value per format, to mutate.
fn seeds() -> Vec<(Format, String)> {
    vec![
        (
            Format::Consentry,
            encode(&["analytics", "advertising"], 0, UNIX_EPOCH + Duration::from_secs(1_700_000_000), None),
        ),
        (Format::CookieConsent, vectors::COOKIECONSENT.to_string()),
        (Format::Klaro, vectors::KLARO.to_string()),
        (Format::Cookiebot, vectors::COOKIEBOT.to_string()),
        (Format::OneTrust, vectors::ONETRUST.to_string()),
        (Format::CookieYes, vectors::COOKIEYES.to_string()),
        (Format::Complianz, "14".to_string()),
        (Format::Tcf, vectors::TCF.to_string()),
    ]
}

const NOW: u64 = 1_750_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

/// The invariants every result must hold, whatever the input.
fn check(p: &Policy, jar: &CookieJar<'_>, gpc: bool) -> Result<Consent, TestCaseError> {
    let c = read(&p.consent, jar, gpc, now());
    prop_assert!(c.granted.contains(crate::category::CategoryId::NECESSARY));
    if c.state != State::Valid {
        prop_assert_eq!(c.granted, CategorySet::NECESSARY_ONLY);
    }
    if c.granted != CategorySet::NECESSARY_ONLY {
        // Anything beyond necessary only from input that parses, and only
        // what the policy maps the names read to.
        let reading = read_raw(&p.consent, jar);
        prop_assert!(reading.is_ok());
        prop_assert_eq!(c.state, State::Valid);
        let reading = reading.unwrap();
        let mut may = CategorySet::NECESSARY_ONLY;
        if reading.outside_region {
            may = may.union(p.consent.outside_region);
        }
        for name in &reading.granted {
            may = may.union(mapped(&p.consent, name).unwrap_or(CategorySet::EMPTY));
        }
        prop_assert!(c.granted.difference(may).is_empty(), "{:?} beyond {:?}", c.granted, may);
    }
    if gpc {
        prop_assert!(
            c.granted.intersection(p.consent.gpc_refuses).difference(CategorySet::NECESSARY_ONLY).is_empty()
        );
    }
    Ok(c)
}

/// One random edit: replace, insert or delete a byte.
fn mutate(value: &str, edits: &[(usize, u8, u8)]) -> String {
    let mut bytes = value.as_bytes().to_vec();
    for &(pos, op, byte) in edits {
        let at = if bytes.is_empty() { 0 } else { pos % (bytes.len() + 1) };
        match op % 3 {
            0 if at < bytes.len() => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            _ if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => bytes.push(byte),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary bytes under every consent manager's cookie names, for every
    /// format: no panic, and the invariants hold.
    #[test]
    fn arbitrary_bytes_never_panic_nor_grant_unparsed(
        value in proptest::collection::vec(any::<u8>(), 0..600),
        other in proptest::collection::vec(any::<u8>(), 0..64),
        gpc in any::<bool>(),
    ) {
        let value = String::from_utf8_lossy(&value);
        let other = String::from_utf8_lossy(&other);
        for p in policies() {
            let header = format!(
                "{}={value}; cmplz_statistics={other}; cmplz_policy_id={other}; {}={other}",
                p.consent.cookie, p.consent.cookie
            );
            check(p, &CookieJar::parse(&header), gpc)?;
            check(p, &CookieJar::parse(&value), gpc)?;
        }
    }

    /// Structured-looking garbage: strings from the characters the formats
    /// use, which reach much deeper into each parser than random bytes.
    #[test]
    fn format_alphabet_never_panics(value in "[{}\\[\\]:,'\"%0-9A-Fa-f._~=&+ -/a-z]{0,200}", gpc in any::<bool>()) {
        for p in policies() {
            let header = format!("{}={value}", p.consent.cookie);
            check(p, &CookieJar::parse(&header), gpc)?;
        }
    }

    /// Real values with a few random edits: truncations, insertions and
    /// replacements anywhere.
    #[test]
    fn mutated_real_values(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4),
        cut in any::<usize>(),
        gpc in any::<bool>(),
    ) {
        for (format, seed) in seeds() {
            let p = policies().iter().find(|p| p.consent.format == format).unwrap();
            let mutated = mutate(&seed, &edits);
            let truncated: String = seed.chars().take(cut % (seed.len() + 1)).collect();
            for value in [mutated, truncated] {
                let header = if format == Format::Complianz {
                    format!("cmplz_policy_id={value}; cmplz_statistics=allow")
                } else {
                    format!("{}={value}", p.consent.cookie)
                };
                check(p, &CookieJar::parse(&header), gpc)?;
            }
        }
    }

    /// Any single-byte change to a signed consentry value grants nothing.
    #[test]
    fn hmac_single_byte_change_grants_nothing(
        cats in proptest::sample::subsequence(vec!["functional", "analytics", "advertising"], 0..=3),
        revision in 0u64..1_000_000,
        secs in 1_600_000_000u64..1_750_000_000,
        pos in any::<usize>(),
        byte in any::<u8>(),
    ) {
        let p = policy(&format!("hmac_key = \"{KEY}\"\nmax_age_days = 36500"));
        let given = UNIX_EPOCH + Duration::from_secs(secs);
        let value = encode(&cats, revision, given, Some(KEY.as_bytes()));
        // The untouched value is valid...
        let c = read(&p.consent, &CookieJar::parse(&format!("consentry={value}")), false, now());
        prop_assert_eq!(c.state, State::Valid);
        // ...and no single changed byte is.
        let mut bytes = value.clone().into_bytes();
        let at = pos % bytes.len();
        prop_assume!(bytes[at] != byte);
        bytes[at] = byte;
        let changed = String::from_utf8_lossy(&bytes).into_owned();
        prop_assert!(consentry::parse(&changed, Some(KEY.as_bytes())).is_err(), "{} verified", changed);
        let c = read(&p.consent, &CookieJar::parse(&format!("consentry={changed}")), false, now());
        prop_assert_eq!(c.granted, CategorySet::NECESSARY_ONLY);
        prop_assert_ne!(c.state, State::Valid);
    }

    /// What the encoder writes, the reader reads back.
    #[test]
    fn consentry_round_trip(
        cats in proptest::collection::vec("[a-z_-]{1,12}", 0..6),
        revision in any::<u64>(),
        secs in 0u64..4_000_000_000,
        signed in any::<bool>(),
    ) {
        let names: Vec<&str> = cats.iter().map(String::as_str).collect();
        let key = signed.then_some(KEY.as_bytes());
        let value = encode(&names, revision, UNIX_EPOCH + Duration::from_secs(secs), key);
        prop_assert!(!value.contains([';', ',', ' ', '"', '\\', '%', '+']));
        let reading = consentry::parse(&value, key).unwrap();
        let mut want: Vec<String> = Vec::new();
        for n in &cats {
            if !want.contains(n) {
                want.push(n.clone());
            }
        }
        prop_assert_eq!(reading.granted, want);
        prop_assert_eq!(reading.revision, Some(revision));
        prop_assert_eq!(reading.given_at, Some(UNIX_EPOCH + Duration::from_secs(secs)));
    }
}
