//! Cookiebot (`CookieConsent`).
//!
//! The value is a JavaScript object literal, not JSON: unquoted keys,
//! single-quoted strings, and commas (sometimes quotes too) percent-encoded:
//! `{stamp:%27O8sg…/Aak8ikxT/6pNcHQ==%27%2Cnecessary:true%2Cpreferences:true%2C
//! statistics:true%2Cmarketing:true%2Cmethod:%27explicit%27%2Cver:1%2C
//! utc:1726058380450%2Cregion:%27sk%27}`. Two special values stand alone:
//! `0` (the visitor declined) and `-1` (the visitor is outside any region
//! that requires consent; the policy's `outside_region` set is granted).
//!
//! Cookiebot's own server-side sample turns the literal into JSON with
//! three regular expressions; that breaks on a `stamp` holding `+ / =` next
//! to a `:` and silently accepts garbage. A literal this small is safer to
//! parse directly, so this module has a tolerant parser of its own: keys
//! bare or quoted, values as single- or double-quoted strings, `true`,
//! `false`, `null` or numbers, whitespace anywhere; nothing nested.
//!
//! The reading: every key whose value is `true` (`necessary`,
//! `preferences`, `statistics`, `marketing`), `ver` as the revision (it
//! counts the site owner's "renew consent" resets) and `utc` (ms) as the
//! consent time. A key given twice with different values is contradictory.

use super::decode::{canonical_u64, from_millis, granted_names, percent_decode_object};
use super::{Reading, Refusal};

/// One value of the literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value<'a> {
    Str(&'a str),
    Bool(bool),
    Num(&'a str),
    Null,
}

/// Reads a `CookieConsent` value.
pub fn parse(value: &str) -> Result<Reading, Refusal> {
    match value.trim() {
        "0" => return Ok(Reading::default()),
        "-1" => return Ok(Reading { outside_region: true, ..Reading::default() }),
        _ => {}
    }
    let text = percent_decode_object(value.trim())?;
    let entries = object(&text)?;

    let mut utc: Option<&str> = None;
    let mut ver: Option<&str> = None;
    let mut flags: Vec<(&str, bool)> = Vec::new();
    for &(key, value) in &entries {
        match (key, value) {
            (_, Value::Bool(b)) => flags.push((key, b)),
            ("necessary" | "preferences" | "statistics" | "marketing", _) => {
                return Err(Refusal::invalid("cookiebot: category is not true or false"));
            }
            ("utc", Value::Num(n)) => once(&mut utc, n)?,
            ("ver", Value::Num(n)) => once(&mut ver, n)?,
            ("utc" | "ver", _) => return Err(Refusal::invalid("cookiebot: utc or ver is not a number")),
            // stamp, method, region, iab2, gacm... describe the consent, not its content.
            _ => {}
        }
    }
    let granted = granted_names(flags)?;
    let given_at = match utc {
        None => None,
        Some(n) => Some(
            canonical_u64(n).and_then(from_millis).ok_or(Refusal::invalid("cookiebot: bad utc timestamp"))?,
        ),
    };
    let revision = match ver {
        None => None,
        Some(n) => Some(canonical_u64(n).ok_or(Refusal::invalid("cookiebot: bad ver"))?),
    };
    Ok(Reading { granted, revision, given_at, ..Reading::default() })
}

/// Records `value` for a key that must not disagree with itself.
fn once<'a>(slot: &mut Option<&'a str>, value: &'a str) -> Result<(), Refusal> {
    match slot {
        Some(seen) if *seen != value => {
            Err(Refusal::invalid("cookiebot: key given twice with different values"))
        }
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// A flat object literal: `{ key: value, ... }`.
fn object(text: &str) -> Result<Vec<(&str, Value<'_>)>, Refusal> {
    let bad = Refusal::invalid("cookiebot: not an object literal");
    let mut p = Parser { text, at: 0 };
    p.space();
    if !p.eat(b'{') {
        return Err(bad);
    }
    let mut entries = Vec::new();
    p.space();
    if p.eat(b'}') {
        return p.end(entries);
    }
    loop {
        p.space();
        let key = p.key().ok_or(bad)?;
        p.space();
        if !p.eat(b':') {
            return Err(bad);
        }
        p.space();
        let value = p.value().ok_or(bad)?;
        entries.push((key, value));
        p.space();
        if p.eat(b',') {
            continue;
        }
        if p.eat(b'}') {
            return p.end(entries);
        }
        return Err(bad);
    }
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.at += 1;
        }
    }

    fn end<T>(mut self, entries: T) -> Result<T, Refusal> {
        self.space();
        if self.at == self.text.len() {
            Ok(entries)
        } else {
            Err(Refusal::invalid("cookiebot: text after the object"))
        }
    }

    /// `[A-Za-z0-9_$]+` starting here.
    fn word(&mut self) -> Option<&'a str> {
        let start = self.at;
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b == b'_' || b == b'$') {
            self.at += 1;
        }
        if self.at == start { None } else { self.text.get(start..self.at) }
    }

    fn key(&mut self) -> Option<&'a str> {
        match self.peek()? {
            q @ (b'\'' | b'"') => self.string(q),
            _ => self.word(),
        }
    }

    /// A string quoted with `quote`; a backslash skips the next byte. Both
    /// ends of the returned slice are at ASCII quotes, so always on a
    /// character boundary.
    fn string(&mut self, quote: u8) -> Option<&'a str> {
        self.at += 1;
        let start = self.at;
        loop {
            match self.peek()? {
                b'\\' => self.at += 2,
                b if b == quote => {
                    let s = self.text.get(start..self.at)?;
                    self.at += 1;
                    return Some(s);
                }
                _ => self.at += 1,
            }
        }
    }

    fn value(&mut self) -> Option<Value<'a>> {
        match self.peek()? {
            q @ (b'\'' | b'"') => self.string(q).map(Value::Str),
            b'-' | b'0'..=b'9' => {
                let start = self.at;
                self.eat(b'-');
                self.digits()?;
                if self.eat(b'.') {
                    self.digits()?;
                }
                self.text.get(start..self.at).map(Value::Num)
            }
            _ => match self.word()? {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                "null" => Some(Value::Null),
                _ => None,
            },
        }
    }

    fn digits(&mut self) -> Option<()> {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        (self.at > start).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    // Accept all, drmax.sk: a public Cypress test on GitHub sets this
    // (corpus file id 42528526919).
    const ACCEPT: &str = "{stamp:%27O8sg2Z8T5kWdRPjoxOG20WioVeH3Eb7Q7Bxauy/Aak8ikxT/6pNcHQ==%27%2Cnecessary:true%2Cpreferences:true%2Cstatistics:true%2Cmarketing:true%2Cmethod:%27explicit%27%2Cver:1%2Cutc:1726058380450%2Cregion:%27sk%27}";
    // Partial (preferences only), stamp holding `+` and `/`: Cookie set by a
    // public Java scraper on GitHub (corpus file id 10227030771).
    const PARTIAL: &str = "{stamp:%27SqXSt1E7eHBPJW7AecHOv9p23YL0bJSSvBY6nkzl+rmW3Vw/tPuw5Q==%27%2Cnecessary:true%2Cpreferences:true%2Cstatistics:false%2Cmarketing:false%2Cver:1%2Cutc:1625054610721%2Cregion:%27pl%27}";
    // Reject all: uBlockOrigin/uBOL-home, firefox/rulesets/scripting/
    // scriptlet/annoyances-cookies.trusted-set-cookie.js.
    const REJECT: &str = "{stamp:%27BvqlZ34xqOpzSOaxY1VgwOy5CZ1lfC4Xs2JNiDqz9M4rNuyyAY56Jg==%27%2Cnecessary:true%2Cpreferences:false%2Cstatistics:false%2Cmarketing:false%2Cmethod:%27explicit%27%2Cver:1%2Cutc:1697932000537}";
    // Same ruleset: no stamp, no time.
    const BARE: &str = "{necessary:true%2Cpreferences:false%2Cstatistics:false%2Cmarketing:false}";

    #[test]
    fn real_values() {
        let r = parse(ACCEPT).unwrap();
        assert_eq!(r.granted, vec!["necessary", "preferences", "statistics", "marketing"]);
        assert_eq!(r.revision, Some(1));
        assert_eq!(r.given_at, Some(UNIX_EPOCH + Duration::from_millis(1_726_058_380_450)));
        assert!(!r.outside_region);

        let r = parse(PARTIAL).unwrap();
        assert_eq!(r.granted, vec!["necessary", "preferences"]);
        assert_eq!(r.given_at, Some(UNIX_EPOCH + Duration::from_millis(1_625_054_610_721)));

        assert_eq!(parse(REJECT).unwrap().granted, vec!["necessary"]);
        let r = parse(BARE).unwrap();
        assert_eq!((r.granted, r.given_at, r.revision), (vec!["necessary".to_string()], None, None));
    }

    #[test]
    fn special_values() {
        let declined = parse("0").unwrap();
        assert!(declined.granted.is_empty() && !declined.outside_region);
        let outside = parse("-1").unwrap();
        assert!(outside.granted.is_empty() && outside.outside_region);
    }

    #[test]
    fn encoding_variants() {
        let expect = parse(ACCEPT).unwrap();
        // Fully decoded (as a framework that decodes cookies hands it over).
        let plain = percent_encoding::percent_decode_str(ACCEPT).decode_utf8().unwrap().into_owned();
        assert!(plain.contains("stamp:'O8sg") && plain.contains(",necessary:true"));
        // Fully encoded, lower-case hex, double quotes, spaces, quoted keys.
        let full = ACCEPT.replace('{', "%7B").replace('}', "%7D").replace(':', "%3A");
        let lower = ACCEPT.replace("%2C", "%2c");
        let spaced = plain.replace(',', ", ").replace(':', ": ").replace('\'', "\"");
        let quoted_keys = plain.replace("necessary:", "'necessary':").replace("utc:", "\"utc\":");
        for variant in [plain.as_str(), &full, &lower, &spaced, &quoted_keys] {
            assert_eq!(parse(variant).unwrap(), expect, "{variant}");
        }
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "1",
            "-2",
            "{",
            "{necessary:true",
            "{necessary:true,}",
            "{necessary:true}x",
            "necessary:true",
            "{necessary:'true'}",
            "{necessary:1}",
            "{marketing:true,marketing:false}",
            "{utc:1,utc:2}",
            "{utc:'1726058380450'}",
            "{utc:-5}",
            "{utc:1.5}",
            "{ver:01}",
            "{stamp:'unterminated}",
            "{stamp:'a\\'}",
            "{a:{b:true}}",
            "{a:[true]}",
            "{:true}",
            "{%2Cnecessary:true}",
            "{necessary:true%2",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse(&ACCEPT[..ACCEPT.len() - 1]).is_err(), "truncated");
        assert!(parse(&ACCEPT[..60]).is_err(), "truncated");
        // Repeating a key with the same value is harmless.
        assert_eq!(parse("{statistics:true,statistics:true}").unwrap().granted, vec!["statistics"]);
        // Escaped quote inside a string, non-ASCII in a string.
        assert_eq!(parse("{stamp:'a\\'b',region:'ü',statistics:true}").unwrap().granted, vec!["statistics"]);
    }
}
