//! OneTrust (`OptanonConsent`): a form-encoded string.
//!
//! `isGpcEnabled=0&datestamp=Sat+Jul+05+2025+13%3A33%3A34+GMT-0400+(Venezuela+Time)
//! &version=6.34.0&isIABGlobal=false&hosts=&landingPath=NotLandingPage
//! &groups=C0001%3A1%2CC0002%3A1%2CC0003%3A1%2CC0004%3A1&geolocation=VE%3BN
//! &AwaitingReconsent=false`
//!
//! The reading: the group ids marked `:1` in `groups` (`C0002`, `C0004`,
//! IAB stacks such as `STACK42`...), and `datestamp` — JavaScript's
//! `Date.toString()` — as the consent time when it parses (it is optional
//! and some integrations write other shapes, which then carry no time).
//!
//! No consent: `AwaitingReconsent=true` (OneTrust itself asks again after
//! the site re-published its consent); `interactionCount=0` (OneTrust wrote
//! the site's default groups, the visitor never answered the banner; where
//! the field is absent the groups are trusted); no `groups`. Invalid: a
//! group with a value other than `0`/`1`, or listed twice with different
//! values; `groups` or `AwaitingReconsent` given twice with different
//! values.

use std::borrow::Cow;

use super::decode::{granted_names, js_date};
use super::{Reading, Refusal};

/// The fields read; everything else in the value is skipped undecoded.
#[derive(Default)]
struct Fields<'a> {
    groups: Option<&'a str>,
    datestamp: Option<&'a str>,
    reconsent: Option<&'a str>,
    interactions: Option<&'a str>,
}

/// Reads an `OptanonConsent` value.
pub fn parse(value: &str) -> Result<Reading, Refusal> {
    // The keys are plain ASCII names OneTrust never encodes, so the pairs
    // are split raw and only the four values used are form-decoded.
    let mut fields = Fields::default();
    for pair in value.split('&').filter(|p| !p.is_empty()) {
        let (key, val) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "groups" => &mut fields.groups,
            "datestamp" => &mut fields.datestamp,
            "AwaitingReconsent" => &mut fields.reconsent,
            "interactionCount" => &mut fields.interactions,
            _ => continue,
        };
        match slot {
            Some(seen) if *seen != val => {
                return Err(Refusal::invalid("onetrust: field given twice with different values"));
            }
            _ => *slot = Some(val),
        }
    }
    if fields.reconsent.map(form_decode).as_deref() == Some("true") {
        return Err(Refusal::old_revision("onetrust: AwaitingReconsent"));
    }
    if fields.interactions.map(form_decode).as_deref() == Some("0") {
        return Err(Refusal::missing("onetrust: the visitor never answered (interactionCount=0)"));
    }
    let groups = form_decode(fields.groups.ok_or(Refusal::invalid("onetrust: no groups"))?);
    let mut entries: Vec<(&str, bool)> = Vec::new();
    for item in groups.split(',').filter(|i| !i.is_empty()) {
        let (id, state) = item.split_once(':').ok_or(Refusal::invalid("onetrust: group without a state"))?;
        let granted = match state {
            "1" => true,
            "0" => false,
            _ => return Err(Refusal::invalid("onetrust: group state is not 0 or 1")),
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(Refusal::invalid("onetrust: bad group id"));
        }
        entries.push((id, granted));
    }
    let granted = granted_names(entries)?;
    let given_at = fields.datestamp.and_then(|d| js_date(&form_decode(d)));
    Ok(Reading { granted, given_at, ..Reading::default() })
}

/// `application/x-www-form-urlencoded` decoding of one value, as the
/// browser's `URLSearchParams` that OneTrust writes with: `+` is a space,
/// `%XX` a byte; lenient about malformed escapes (left as they are), lossy
/// about bytes that are not UTF-8.
fn form_decode(raw: &str) -> Cow<'_, str> {
    if !raw.contains(['+', '%']) {
        return Cow::Borrowed(raw);
    }
    let spaced = raw.replace('+', " ");
    Cow::Owned(percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    // Accept all, www.workana.com: a Playwright cookie export in a public
    // GitHub repository (corpus file id 9224072988).
    const ACCEPT: &str = "isGpcEnabled=0&datestamp=Sat+Jul+05+2025+13%3A33%3A34+GMT-0400+(Venezuela+Time)&version=6.34.0&isIABGlobal=false&hosts=&landingPath=NotLandingPage&groups=C0001%3A1%2CC0002%3A1%2CC0003%3A1%2CC0004%3A1&geolocation=VE%3BN&AwaitingReconsent=false";
    // Reject all with GPC, www.vinted.it: a browser cookie export in a public
    // GitHub repository (corpus file id 2407996060).
    const REJECT: &str = "isGpcEnabled=1&datestamp=Fri+Feb+13+2026+22%3A25%3A29+GMT%2B0100+(hora+est%C3%A1ndar+de+Europa+central)&version=202512.1.0&browserGpcFlag=1&isIABGlobal=false&consentId=3134823156&isAnonUser=0&interactionCount=2&intType=2&hosts=&landingPath=NotLandingPage&groups=C0001%3A1%2CC0002%3A0%2CC0003%3A0%2CC0004%3A0%2CC0005%3A0%2CV2STACK42%3A0%2CC0035%3A0%2CC0038%3A0&genVendors=V2%3A0%2CV1%3A0%2C&crTime=1770283241677&geolocation=IT%3B25&AwaitingReconsent=false";
    // Partial, groups only (out of order, with an IAB stack): uBlockOrigin/
    // uBOL-home, firefox/rulesets/scripting/scriptlet/annoyances-cookies.trusted-set-cookie.js.
    const PARTIAL: &str = "groups=C0004%3A0%2CC0003%3A1%2CC0002%3A0%2CC0001%3A1%2CSTACK42%3A0";
    // Hand-written by a Playwright script for caesars.com (corpus id
    // 56235828857): unencoded separators, a datestamp that is not a JS date.
    const UNENCODED: &str = "isGpcEnabled=0&datestamp=2026-01-01&version=202301.2.0&isIABGlobal=false&hosts=&consentId=x&interactionCount=1&landingPath=NotLandingPage&groups=C0001:1,C0002:1,C0003:1,C0004:1";

    #[test]
    fn real_values() {
        let r = parse(ACCEPT).unwrap();
        assert_eq!(r.granted, vec!["C0001", "C0002", "C0003", "C0004"]);
        // 13:33:34 at GMT-0400 is 17:33:34Z.
        assert_eq!(r.given_at, Some(UNIX_EPOCH + Duration::from_secs(1_751_736_814)));

        let r = parse(REJECT).unwrap();
        assert_eq!(r.granted, vec!["C0001"]);
        // 22:25:29 at GMT+0100 is 21:25:29Z.
        assert_eq!(r.given_at, Some(UNIX_EPOCH + Duration::from_secs(1_771_017_929)));

        assert_eq!(parse(PARTIAL).unwrap().granted, vec!["C0003", "C0001"]);
        let r = parse(UNENCODED).unwrap();
        assert_eq!(r.granted, vec!["C0001", "C0002", "C0003", "C0004"]);
        assert_eq!(r.given_at, None, "2026-01-01 is not a JS date string: no time");
    }

    #[test]
    fn no_consent() {
        let reconsent = ACCEPT.replace("AwaitingReconsent=false", "AwaitingReconsent=true");
        assert_eq!(parse(&reconsent).unwrap_err().state, crate::consent::State::OldRevision);
        let untouched = REJECT.replace("interactionCount=2", "interactionCount=0");
        assert_eq!(parse(&untouched).unwrap_err().state, crate::consent::State::Missing);
        assert!(parse("isGpcEnabled=0&version=6.34.0").is_err(), "no groups");
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "groups=C0001%3A2",
            "groups=C0001",
            "groups=%3A1",
            "groups=C0002%3A1%2CC0002%3A0",
            "groups=C0002%3A1&groups=C0002%3A0",
            "groups=C0002%3A1&AwaitingReconsent=false&AwaitingReconsent=true",
            "groups=C0002%3Atrue",
            "groups=C0002 %3A1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        // Truncated in the middle of the groups.
        let cut = &ACCEPT[..ACCEPT.find("C0003").unwrap() + 3];
        assert!(parse(cut).is_err());
        // Keys are case-sensitive and never encoded.
        assert!(parse("Groups=C0002%3A1").is_err());
        assert!(parse("group%73=C0002%3A1").is_err());
        // A group repeated with the same state, and trailing commas, are fine.
        assert_eq!(parse("groups=C0002%3A1%2CC0002%3A1%2C").unwrap().granted, vec!["C0002"]);
    }
}
