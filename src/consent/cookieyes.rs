//! CookieYes (`cookieyes-consent`): `key:value` pairs separated by commas.
//!
//! `consentid:d2Jn…,consent:yes,action:yes,necessary:yes,functional:yes,
//! analytics:yes,performance:yes,advertisement:yes,other:yes`
//!
//! The reading: every category slug whose value is `yes` (the standard
//! ones and any custom category a site adds). The summary `consent:` flag
//! is not trusted: it says "something was accepted", not what.
//!
//! CookieYes writes this cookie before the visitor answers too, holding the
//! banner's defaults with `action:` empty (`consent:,action:,necessary:,…`
//! or with pre-set values). Only `action:yes` records an answer; without it
//! nothing beyond `necessary` is granted (defaults are not consent).
//! Invalid: an item without `:`, a category that is not `yes`/`no`/empty,
//! a key given twice with different values.

use std::borrow::Cow;

use super::decode::{granted_names, percent_decode};
use super::{Reading, Refusal};

/// Keys that describe the consent rather than grant a category.
const META: [&str; 4] = ["consentid", "consent", "action", "lastRenewedDate"];

/// Reads a `cookieyes-consent` value.
pub fn parse(value: &str) -> Result<Reading, Refusal> {
    // Some servers hand the value over percent-encoded (`%2C`, `%3A`).
    let text: Cow<'_, str> = if value.contains('%') { percent_decode(value)? } else { Cow::Borrowed(value) };
    let mut items: Vec<(&str, &str)> = Vec::new();
    for item in text.split(',') {
        let (key, val) = item.split_once(':').ok_or(Refusal::invalid("cookieyes: item without ':'"))?;
        if key.is_empty() {
            return Err(Refusal::invalid("cookieyes: empty key"));
        }
        if let Some((_, seen)) = items.iter().find(|(k, _)| *k == key) {
            if *seen != val {
                return Err(Refusal::invalid("cookieyes: key given twice with different values"));
            }
            continue;
        }
        items.push((key, val));
    }
    let action = items.iter().find(|(k, _)| *k == "action").map(|(_, v)| *v);
    if action != Some("yes") {
        return Err(Refusal::missing("cookieyes: no answer recorded (action is not yes)"));
    }
    let mut categories: Vec<(&str, bool)> = Vec::new();
    for &(key, val) in items.iter().filter(|(k, _)| !META.contains(k)) {
        let granted = match val {
            "yes" => true,
            "no" | "" => false,
            _ => return Err(Refusal::invalid("cookieyes: category is not yes or no")),
        };
        categories.push((key, granted));
    }
    let granted = granted_names(categories)?;
    Ok(Reading { granted, ..Reading::default() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::State;

    // Accept all: a Cookie header in a public scraper on GitHub (corpus file
    // id 57032739207).
    const ACCEPT: &str = "consentid:bzFQbnc3TUdrbTBTcWt0aG5lR2xsUXA4NE5IMFFEOWg,consent:yes,action:yes,necessary:yes,functional:yes,analytics:yes,performance:yes,advertisement:yes,other:yes";
    // Reject all: uBlockOrigin/uBOL-home, firefox/rulesets/scripting/
    // scriptlet/annoyances-cookies.trusted-set-cookie.js (ilovefreegle.org).
    const REJECT: &str = "consent:no,action:yes,necessary:yes,functional:no,analytics:no,performance:no,advertisement:no,other:no";
    // Before any answer: defaults, empty action (corpus id 70762370022, fut.gg).
    const UNANSWERED: &str = "consentid:YjZOOUV4T2h6UkFoTUwzM2ZpWGE0SFFpZXZaUXFhMk8,consent:,action:,necessary:,functional:,analytics:,performance:,advertisement:,other:";
    // Pre-set defaults, no answer yet (corpus id 7354764477, follovery.com).
    const DEFAULTS: &str = "consentid:a0luUlByM3NGTFp2dkMyQkJXdHoxdHFVeHI2TEM5Yms,consent:no,action:,necessary:yes,functional:yes,analytics:no,performance:no,advertisement:no";
    // An older shape without `other` (corpus id 44067085092, ippocrateorg.org).
    const NO_OTHER: &str = "consentid:M1E3dFBSU2hGMkExTTlUMnVNU0dJYlR5M0VORGFPZXY,consent:yes,action:yes,necessary:yes,functional:yes,analytics:yes,performance:yes,advertisement:yes";

    #[test]
    fn real_values() {
        assert_eq!(
            parse(ACCEPT).unwrap().granted,
            vec!["necessary", "functional", "analytics", "performance", "advertisement", "other"]
        );
        assert_eq!(parse(REJECT).unwrap().granted, vec!["necessary"]);
        assert_eq!(parse(NO_OTHER).unwrap().granted.len(), 5);
        assert_eq!(parse(UNANSWERED).unwrap_err().state, State::Missing);
        assert_eq!(parse(DEFAULTS).unwrap_err().state, State::Missing);
    }

    #[test]
    fn consent_flag_is_not_trusted() {
        // Partial choice: the summary flag says yes, the categories decide.
        let partial = "consentid:x,consent:yes,action:yes,necessary:yes,functional:no,analytics:yes,performance:no,advertisement:no,other:no";
        assert_eq!(parse(partial).unwrap().granted, vec!["necessary", "analytics"]);
        let lying = "consent:no,action:yes,analytics:yes";
        assert_eq!(parse(lying).unwrap().granted, vec!["analytics"]);
        let no_action = ACCEPT.replace("action:yes", "action:no");
        assert_eq!(parse(&no_action).unwrap_err().state, State::Missing);
    }

    #[test]
    fn encoding_variants() {
        let encoded = ACCEPT.replace(',', "%2C").replace(':', "%3A");
        assert_eq!(parse(&encoded).unwrap(), parse(ACCEPT).unwrap());
        let custom = format!("{REJECT},chat-widget:yes");
        assert_eq!(parse(&custom).unwrap().granted, vec!["necessary", "chat-widget"]);
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "garbage",
            "action:yes,analytics:maybe",
            "action:yes,analytics:yes,analytics:no",
            "action:yes,action:no",
            "action:yes,:yes",
            "action:yes,analytics:yes,",
            "action:yes%2",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        // Truncated mid-item.
        assert!(parse(&ACCEPT[..ACCEPT.len() - 5]).is_err());
    }
}
