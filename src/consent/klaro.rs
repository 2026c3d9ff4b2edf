//! Klaro (`klaro`): a JSON object of service name → consent.
//!
//! Klaro 0.7+ stores `encodeURIComponent(JSON.stringify(consents))`
//! (klaro-org/klaro-js, `src/consent-manager.js`, `saveConsents`); older
//! releases stored the JSON unencoded. Both are read. The names are the
//! site's own services (`google-analytics`, `matomo`, `youtube`), so the
//! policy's `map` says which category each belongs to; unmapped services
//! grant nothing. Klaro keeps no timestamp or revision in the cookie.

use super::decode::{BoolEntries, granted_names, json};
use super::{Reading, Refusal};

/// Reads a `klaro` cookie value.
pub fn parse(value: &str) -> Result<Reading, Refusal> {
    let entries: BoolEntries = json(value)?;
    let granted = granted_names(entries.0.iter().map(|(name, v)| (name.as_str(), *v)))?;
    Ok(Reading { granted, ..Reading::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Partial: www.mrw.es Cookie header in a public scraper on GitHub
    // (corpus file id 52630225918).
    const MRW: &str = "%7B%22necessary-cookies%22%3Atrue%2C%22preferences%22%3Afalse%2C%22google-analytics%22%3Afalse%2C%22google-ads%22%3Afalse%7D";
    // Accept all: www.ilb.de Cookie header in a public scraper (corpus id 38988947044).
    const ILB: &str = "%7B%22klaro%22%3Atrue%2C%22apache%22%3Atrue%2C%22friendlyCaptcha%22%3Atrue%2C%22googleAnalytics%22%3Atrue%2C%22youtube%22%3Atrue%2C%22twitter%22%3Atrue%2C%22googleMaps%22%3Atrue%7D";
    // Reject optional services: creopard.de, from a public cookie-banner
    // bypass list (corpus id 2641193318).
    const CREOPARD: &str = "%7B%22klaro%22%3Atrue%2C%22cms%22%3Atrue%2C%22adsense%22%3Afalse%2C%22youtube%22%3Afalse%2C%22twitter%22%3Afalse%2C%22matomo%22%3Afalse%7D";

    #[test]
    fn real_values() {
        assert_eq!(parse(MRW).unwrap().granted, vec!["necessary-cookies"]);
        assert_eq!(
            parse(ILB).unwrap().granted,
            vec!["klaro", "apache", "friendlyCaptcha", "googleAnalytics", "youtube", "twitter", "googleMaps"]
        );
        assert_eq!(parse(CREOPARD).unwrap().granted, vec!["klaro", "cms"]);
        let r = parse(ILB).unwrap();
        assert_eq!((r.revision, r.given_at, r.expires_at), (None, None, None));
    }

    #[test]
    fn unencoded_and_empty() {
        // Klaro < 0.7 wrote raw JSON.
        assert_eq!(parse(r#"{"matomo":true,"youtube":false}"#).unwrap().granted, vec!["matomo"]);
        assert!(parse("{}").unwrap().granted.is_empty());
    }

    #[test]
    fn refused() {
        assert!(parse(r#"{"matomo":true,"matomo":false}"#).is_err(), "contradictory");
        assert!(parse(r#"{"matomo":"true"}"#).is_err());
        assert!(parse(r#"{"matomo":1}"#).is_err());
        assert!(parse(r#"["matomo"]"#).is_err());
        assert!(parse(&MRW[..40]).is_err());
        assert!(parse("true").is_err());
        assert!(parse("%7B%22matomo%22%3Atrue%7").is_err());
    }
}
