//! orestbida cookieconsent (`cc_cookie`), versions 3 and 2.
//!
//! v3 writes `encodeURIComponent(JSON.stringify(cookie))`:
//! `{"categories":["necessary","analytics"],"revision":0,"data":null,
//! "consentTimestamp":"2025-04-16T01:32:51.025Z","consentId":"…",
//! "services":{…},"lastConsentTimestamp":"…","expirationTime":1760491971026}`.
//! v2 writes the JSON unencoded, with the granted categories in `level`
//! (v2.9 writes `categories` and `level` both) and `consent_date` /
//! `last_consent_update`.
//!
//! The reading: the granted category names, `revision` (cookieconsent's own
//! default 0 when absent, so that a policy at revision 1 or later asks
//! again), the last consent time and `expirationTime` (ms). `categories`
//! and `level` that disagree are contradictory; a timestamp that is present
//! but not a time is malformed.

use serde::Deserialize;

use super::decode::{from_millis, iso8601, json};
use super::{Reading, Refusal};

#[derive(Deserialize)]
struct Cookie {
    categories: Option<Vec<String>>,
    level: Option<Vec<String>>,
    revision: Option<u64>,
    #[serde(rename = "expirationTime")]
    expiration_time: Option<u64>,
    #[serde(rename = "consentTimestamp")]
    consent_timestamp: Option<String>,
    #[serde(rename = "lastConsentTimestamp")]
    last_consent_timestamp: Option<String>,
    consent_date: Option<String>,
    last_consent_update: Option<String>,
}

/// Reads a `cc_cookie` value (v3 or v2).
pub fn parse(value: &str) -> Result<Reading, Refusal> {
    let cookie: Cookie = json(value)?;
    let granted = match (cookie.categories, cookie.level) {
        (None, None) => return Err(Refusal::invalid("cookieconsent: neither categories nor level")),
        (Some(c), None) | (None, Some(c)) => c,
        (Some(c), Some(l)) => {
            let same = c.iter().all(|x| l.contains(x)) && l.iter().all(|x| c.contains(x));
            if !same {
                return Err(Refusal::invalid("cookieconsent: categories and level disagree"));
            }
            c
        }
    };
    // The latest choice counts for renewal; v3 names first, then v2.
    let stamp = cookie
        .last_consent_timestamp
        .or(cookie.consent_timestamp)
        .or(cookie.last_consent_update)
        .or(cookie.consent_date);
    let given_at = match stamp {
        None => None,
        Some(text) => Some(iso8601(&text).ok_or(Refusal::invalid("cookieconsent: bad consent timestamp"))?),
    };
    let expires_at = match cookie.expiration_time {
        None => None,
        Some(ms) => Some(from_millis(ms).ok_or(Refusal::invalid("cookieconsent: bad expirationTime"))?),
    };
    Ok(Reading {
        granted,
        revision: Some(cookie.revision.unwrap_or(0)),
        given_at,
        expires_at,
        outside_region: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    // v3, analytics accepted: Cookie header captured in a public GitHub
    // markdown file (a curl request to a Stirling-PDF instance; corpus file
    // id 13777500520).
    const V3_PARTIAL: &str = "%7B%22categories%22%3A%5B%22necessary%22%2C%22analytics%22%5D%2C%22revision%22%3A0%2C%22data%22%3Anull%2C%22consentTimestamp%22%3A%222025-04-16T01%3A32%3A51.025Z%22%2C%22consentId%22%3A%2224ef8464-ff47-4934-8ba7-5ae0c50c8ff8%22%2C%22services%22%3A%7B%22necessary%22%3A%5B%5D%2C%22analytics%22%3A%5B%5D%7D%2C%22languageCode%22%3A%22en%22%2C%22lastConsentTimestamp%22%3A%222025-04-16T01%3A32%3A51.025Z%22%2C%22expirationTime%22%3A1760491971026%7D";

    // v3, necessary only, revision 1: chat.mistral.ai Cookie header in a
    // public Python client on GitHub (corpus file id 1499082197).
    const V3_REJECT: &str = "%7B%22categories%22%3A%5B%22necessary%22%5D%2C%22revision%22%3A1%2C%22data%22%3Anull%2C%22consentTimestamp%22%3A%222024-11-20T19%3A02%3A36.823Z%22%2C%22consentId%22%3A%2212fd04af-4af6-48a3-8531-b7cf317849d1%22%2C%22services%22%3A%7B%22necessary%22%3A%5B%5D%2C%22analytics%22%3A%5B%5D%2C%22support%22%3A%5B%5D%7D%2C%22lastConsentTimestamp%22%3A%222024-11-20T19%3A02%3A36.823Z%22%2C%22expirationTime%22%3A1747854156824%7D";

    // v2.9 shape (both categories and level), accept all: designingbuildings
    // Cookie header in a public scrapy settings file (corpus id 32382525270).
    const V2_ACCEPT: &str = "%7B%22categories%22%3A%5B%22necessary%22%2C%22analytics%22%2C%22targeting%22%5D%2C%22level%22%3A%5B%22necessary%22%2C%22analytics%22%2C%22targeting%22%5D%2C%22revision%22%3A1%2C%22data%22%3Anull%2C%22rfc_cookie%22%3Atrue%2C%22consent_date%22%3A%222023-06-17T15%3A02%3A36.705Z%22%2C%22consent_uuid%22%3A%226862a419-6289-44a4-9e8a-7a92ddcffe6d%22%2C%22last_consent_update%22%3A%222023-06-17T15%3A02%3A36.705Z%22%7D";

    // v2, unencoded JSON: uBlock Origin Lite's annoyances-cookies ruleset
    // (uBlockOrigin/uBOL-home, firefox/rulesets/scripting/scriptlet/
    // annoyances-cookies.trusted-set-cookie.js).
    const V2_RAW_REJECT: &str = r#"{"level":["necessary"],"revision":0,"data":null,"rfc_cookie":false}"#;

    #[test]
    fn v3_partial() {
        let r = parse(V3_PARTIAL).unwrap();
        assert_eq!(r.granted, vec!["necessary", "analytics"]);
        assert_eq!(r.revision, Some(0));
        // 2025-04-16T01:32:51.025Z
        assert_eq!(r.given_at, Some(UNIX_EPOCH + Duration::from_millis(1_744_767_171_025)));
        assert_eq!(r.expires_at, Some(UNIX_EPOCH + Duration::from_millis(1_760_491_971_026)));
    }

    #[test]
    fn v3_reject_all() {
        let r = parse(V3_REJECT).unwrap();
        assert_eq!(r.granted, vec!["necessary"]);
        assert_eq!(r.revision, Some(1));
    }

    #[test]
    fn v2_shapes() {
        let r = parse(V2_ACCEPT).unwrap();
        assert_eq!(r.granted, vec!["necessary", "analytics", "targeting"]);
        assert_eq!(r.given_at, Some(UNIX_EPOCH + Duration::from_millis(1_687_014_156_705)));
        let r = parse(V2_RAW_REJECT).unwrap();
        assert_eq!(r.granted, vec!["necessary"]);
        assert_eq!(r.given_at, None);
        assert_eq!(r.revision, Some(0));
    }

    #[test]
    fn encoding_variants() {
        let raw = percent_encoding::percent_decode_str(V3_PARTIAL).decode_utf8().unwrap().into_owned();
        let lower = V3_PARTIAL.replace("%7B", "%7b").replace("%2C", "%2c").replace("%5D", "%5d");
        let twice = V3_PARTIAL.replace('%', "%25");
        let quoted = format!("\"{V3_PARTIAL}\"");
        for variant in [raw.as_str(), &lower, &twice] {
            assert_eq!(parse(variant).unwrap(), parse(V3_PARTIAL).unwrap(), "{variant}");
        }
        // Quotes are stripped by the jar helper, not here.
        assert!(parse(&quoted).is_err());
    }

    #[test]
    fn refused() {
        // level and categories disagree.
        assert!(parse(r#"{"categories":["necessary","analytics"],"level":["necessary"]}"#).is_err());
        // Neither.
        assert!(parse(r#"{"revision":0}"#).is_err());
        // Present but not a time (uBO's fake v2 cookie has "consent_date":"1").
        assert!(parse(r#"{"categories":["necessary"],"level":["necessary"],"revision":1,"data":null,"rfc_cookie":true,"consent_date":"1","consent_uuid":"1","last_consent_update":"1"}"#).is_err());
        // Wrong types, duplicate keys, truncation, garbage.
        assert!(parse(r#"{"categories":"analytics"}"#).is_err());
        assert!(parse(r#"{"categories":[1]}"#).is_err());
        assert!(parse(r#"{"categories":["a"],"categories":["b"]}"#).is_err());
        assert!(parse(r#"{"categories":["a"],"revision":-1}"#).is_err());
        assert!(parse(&V3_PARTIAL[..V3_PARTIAL.len() / 2]).is_err());
        assert!(parse(&V3_PARTIAL[..V3_PARTIAL.len() - 1]).is_err());
        assert!(parse("null").is_err());
        assert!(parse("%E0%A4%A").is_err());
    }
}
