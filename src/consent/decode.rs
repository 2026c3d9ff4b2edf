//! Small decoding helpers the adapters share: finding one cookie in the jar,
//! strict percent-decoding, JSON with duplicate-key detection, and the two
//! timestamp spellings consent managers use (ISO 8601 and JavaScript's
//! `Date.prototype.toString()`).
//!
//! Everything here works on untrusted text and is written not to panic: no
//! indexing by unchecked positions, lengths capped before any work.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{Deserializer, MapAccess, Visitor};

use super::{MAX_VALUE_LEN, Refusal};
use crate::cookie::CookieJar;

/// The value of cookie `name`, if the jar has it.
///
/// Several cookies of the same name (set for different paths or domains)
/// are fine when they agree; when they disagree nobody can tell which one
/// the visitor's latest choice is, so the consent is contradictory.
pub(crate) fn single<'a>(jar: &CookieJar<'a>, name: &str) -> Result<Option<&'a str>, Refusal> {
    let mut found: Option<&'a str> = None;
    for pair in jar.pairs().iter().filter(|p| p.name == name) {
        if pair.value.len() > MAX_VALUE_LEN {
            return Err(Refusal::invalid("cookie value larger than MAX_VALUE_LEN"));
        }
        match found {
            None => found = Some(pair.value),
            Some(seen) if seen == pair.value => {}
            Some(_) => return Err(Refusal::invalid("several cookies of that name with different values")),
        }
    }
    Ok(found.map(unquote))
}

/// The value of the consent cookie `name`: present, non-empty, consistent.
pub(crate) fn required<'a>(jar: &CookieJar<'a>, name: &str) -> Result<&'a str, Refusal> {
    match single(jar, name)? {
        None => Err(Refusal::missing("no consent cookie")),
        // An empty value is what a deleted or reset cookie leaves behind.
        Some("") => Err(Refusal::missing("empty consent cookie")),
        Some(value) => Ok(value),
    }
}

/// Strips one pair of surrounding double quotes (RFC 6265 allows a quoted
/// cookie value; some servers write them).
pub(crate) fn unquote(value: &str) -> &str {
    value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value)
}

/// Percent-decodes `text` as JavaScript's `decodeURIComponent` does: a `%`
/// not followed by two hex digits, or bytes that are not UTF-8, are an
/// error (the consent manager itself would throw and show its banner
/// again). `+` stays `+`.
pub(crate) fn percent_decode(text: &str) -> Result<Cow<'_, str>, Refusal> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(offset) = bytes.get(i..).and_then(|rest| memchr::memchr(b'%', rest)) {
        let at = i + offset;
        let ok = matches!(
            (bytes.get(at + 1), bytes.get(at + 2)),
            (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit()
        );
        if !ok {
            return Err(Refusal::invalid("malformed percent-encoding"));
        }
        i = at + 3;
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map_err(|_| Refusal::invalid("percent-encoded bytes are not UTF-8"))
}

/// Decodes `text` until it no longer starts with a percent-encoded `{`
/// (values are sometimes encoded twice by server frameworks), at most
/// twice.
pub(crate) fn percent_decode_object(text: &str) -> Result<Cow<'_, str>, Refusal> {
    if !text.contains('%') {
        return Ok(Cow::Borrowed(text));
    }
    let once = percent_decode(text)?;
    if starts_with_ignore_case(&once, "%7B") {
        return Ok(Cow::Owned(percent_decode(&once)?.into_owned()));
    }
    Ok(once)
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.as_bytes().get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// Parses a cookie value holding JSON: raw (`{"level":[...]}`, as
/// cookieconsent v2 and old Klaro write it), URL-encoded (`%7B%22...`, as
/// cookieconsent v3 and current Klaro write it) or encoded twice.
pub(crate) fn json<T: serde::de::DeserializeOwned>(value: &str) -> Result<T, Refusal> {
    let value = value.trim();
    if value.starts_with('{') {
        match serde_json::from_str(value) {
            Ok(parsed) => return Ok(parsed),
            // Raw JSON with some characters encoded (`{%22a%22:true}`).
            Err(_) if value.contains('%') => {}
            Err(_) => return Err(Refusal::invalid("not JSON")),
        }
    }
    let decoded = percent_decode_object(value)?;
    serde_json::from_str(&decoded).map_err(|_| Refusal::invalid("not JSON"))
}

/// A JSON object of `name → true/false`, entries kept in order, duplicate
/// keys kept (serde_json's maps silently keep the last one, which would
/// hide a contradiction).
#[derive(Debug, Default)]
pub(crate) struct BoolEntries(pub Vec<(String, bool)>);

impl<'de> serde::Deserialize<'de> for BoolEntries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = BoolEntries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of booleans")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BoolEntries, A::Error> {
                let mut out = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, bool>()? {
                    out.push((key, value));
                }
                Ok(BoolEntries(out))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// The names granted by `entries` (`name → granted?`). The same name with
/// two different values is contradictory; repeated identical entries are
/// harmless.
pub(crate) fn granted_names<'a, I>(entries: I) -> Result<Vec<String>, Refusal>
where
    I: IntoIterator<Item = (&'a str, bool)>,
{
    let mut seen: Vec<(&'a str, bool)> = Vec::new();
    for (name, value) in entries {
        match seen.iter().find(|(n, _)| *n == name) {
            Some((_, v)) if *v != value => {
                return Err(Refusal::invalid("same name with two different values"));
            }
            Some(_) => {}
            None => seen.push((name, value)),
        }
    }
    Ok(seen.into_iter().filter(|(_, v)| *v).map(|(n, _)| n.to_string()).collect())
}

/// Milliseconds since the Unix epoch, as JavaScript's `Date.now()`.
pub(crate) fn from_millis(ms: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// Seconds since the Unix epoch.
pub(crate) fn from_secs(secs: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// An ISO 8601 / RFC 3339 UTC timestamp as `Date.prototype.toISOString()`
/// writes it (`2024-05-28T06:43:23.433Z`).
pub(crate) fn iso8601(text: &str) -> Option<SystemTime> {
    // humantime parses the exact shape browsers produce; cap the length
    // first so that a long fraction costs nothing.
    if text.len() > 40 || !text.is_ascii() {
        return None;
    }
    humantime::parse_rfc3339(text).ok()
}

/// A date as JavaScript's `Date.prototype.toString()` writes it, which is
/// what OneTrust stores in `datestamp`:
/// `Sat Jul 05 2025 13:33:34 GMT-0400 (Venezuela Time)`. The trailing time
/// zone name is free text and ignored; the numeric offset is applied.
pub(crate) fn js_date(text: &str) -> Option<SystemTime> {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    if text.len() > 200 {
        return None;
    }
    let mut words = text.split_ascii_whitespace();
    let _weekday = words.next().filter(|w| w.len() == 3)?;
    let month_word = words.next()?;
    let month = u32::try_from(MONTHS.iter().position(|m| *m == month_word)? + 1).ok()?;
    let day: u32 = digits(words.next()?, 1, 2)?;
    let year: u32 = digits(words.next()?, 4, 4)?;
    let mut hms = words.next()?.split(':');
    let hour: u32 = digits(hms.next()?, 2, 2)?;
    let minute: u32 = digits(hms.next()?, 2, 2)?;
    let second: u32 = digits(hms.next()?, 2, 2)?;
    if hms.next().is_some() {
        return None;
    }
    let zone = words.next()?.strip_prefix("GMT")?;
    let (sign, offset) = match zone.as_bytes().first() {
        Some(b'+') => (1i64, zone.get(1..)?),
        Some(b'-') => (-1i64, zone.get(1..)?),
        _ => return None,
    };
    let offset_hours: i64 = digits(offset.get(..2)?, 2, 2)?;
    let offset_minutes: i64 = digits(offset.get(2..)?, 2, 2)?;
    if offset_hours > 14 || offset_minutes > 59 {
        return None;
    }
    if !(1..=days_in_month(year, month)).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    let local = u64::from(hour) * 3600 + u64::from(minute) * 60 + u64::from(second);
    let local = i64::try_from(days.checked_mul(86_400)?.checked_add(local)?).ok()?;
    let utc = local.checked_sub(sign * (offset_hours * 3600 + offset_minutes * 60))?;
    from_secs(u64::try_from(utc).ok()?)
}

fn is_leap(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar in
/// 1970 or later (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: u32, month: u32, day: u32) -> Option<u64> {
    if year < 1970 || !(1..=12).contains(&month) {
        return None;
    }
    let y = u64::from(if month <= 2 { year - 1 } else { year });
    let era = y / 400;
    let yoe = y - era * 400;
    let m = u64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + u64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

/// A decimal number of `min..=max` ASCII digits.
fn digits<T: std::str::FromStr>(text: &str, min: usize, max: usize) -> Option<T> {
    if text.len() < min || text.len() > max || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A non-negative integer written canonically (`0`, `17`; not `017`,
/// `+1`, `1.0`), as the formats that store counters write them.
pub(crate) fn canonical_u64(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if text.len() > 1 && text.starts_with('0') {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn percent_decoding_is_strict() {
        assert_eq!(percent_decode("%7B%22a%22%3Atrue%7d").unwrap(), "{\"a\":true}");
        assert_eq!(percent_decode("a+b").unwrap(), "a+b");
        assert!(percent_decode("%").is_err());
        assert!(percent_decode("%4").is_err());
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%FF%FE").is_err(), "not UTF-8");
        assert_eq!(percent_decode("%C3%A1").unwrap(), "á");
        assert_eq!(percent_decode_object("%257B%2522a%2522%253A1%257D").unwrap(), "{\"a\":1}");
    }

    #[test]
    fn json_raw_encoded_and_partly_encoded() {
        let raw: BoolEntries = json(r#"{"a":true,"b":false}"#).unwrap();
        let enc: BoolEntries = json("%7B%22a%22%3Atrue%2C%22b%22%3Afalse%7D").unwrap();
        let partly: BoolEntries = json("{%22a%22:true%2C%22b%22:false}").unwrap();
        for parsed in [raw, enc, partly] {
            assert_eq!(parsed.0, vec![("a".to_string(), true), ("b".to_string(), false)]);
        }
        assert!(json::<BoolEntries>(r#"{"a":1}"#).is_err());
        assert!(json::<BoolEntries>("{").is_err());
    }

    #[test]
    fn granted_names_detects_contradictions() {
        assert_eq!(granted_names([("a", true), ("b", false), ("a", true)]).unwrap(), vec!["a"]);
        assert!(granted_names([("a", true), ("a", false)]).is_err());
    }

    #[test]
    fn timestamps() {
        // 2024-05-28T06:43:23.433Z = 1716878603.433 s.
        assert_eq!(iso8601("2024-05-28T06:43:23.433Z"), Some(at(1_716_878_603) + Duration::from_millis(433)));
        assert_eq!(iso8601("1970-00-00T00:00:00.000Z"), None);
        assert_eq!(iso8601("$currentISODate$"), None);
        assert_eq!(iso8601("2024-05-28T06:43:23.433Zé"), None);
        // Sat Jul 05 2025 13:33:34 GMT-0400 = 2025-07-05T17:33:34Z.
        assert_eq!(js_date("Sat Jul 05 2025 13:33:34 GMT-0400 (Venezuela Time)"), Some(at(1_751_736_814)));
        // Fri Feb 13 2026 22:25:29 GMT+0100 = 2026-02-13T21:25:29Z.
        assert_eq!(
            js_date("Fri Feb 13 2026 22:25:29 GMT+0100 (hora estándar de Europa central)"),
            Some(at(1_771_017_929))
        );
        assert_eq!(js_date("2026-01-01"), None);
        assert_eq!(js_date("Fri Feb 30 2026 22:25:29 GMT+0100"), None);
        assert_eq!(js_date("Fri Feb 13 2026 22:25:29 GMT+01"), None);
        assert_eq!(js_date("Fri Feb 13 2026 22:25 GMT+0100"), None);
        assert_eq!(js_date("Thu Feb 29 2024 00:00:00 GMT+0000"), Some(at(1_709_164_800)));
        assert_eq!(js_date("Thu Feb 29 2023 00:00:00 GMT+0000"), None, "not a leap year");
        assert_eq!(js_date("Thu Jan 01 1970 00:30:00 GMT+0100"), None, "before the epoch");
        assert_eq!(js_date("Thu Dec 31 2099 23:59:59 GMT-1400"), Some(at(4_102_495_199)));
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2000, 3, 1), Some(11_017));
        assert_eq!(canonical_u64("0"), Some(0));
        assert_eq!(canonical_u64("017"), None);
        assert_eq!(canonical_u64("99999999999999999999"), None, "overflows u64");
    }
}
