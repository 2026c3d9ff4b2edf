//! consentry's own consent cookie: written by the consent endpoint
//! ([`encode`]), read on every request ([`parse`]).
//!
//! # Format (version 1)
//!
//! ```text
//! value      = version "." revision "." given-at "." categories [ "." signature ]
//! version    = "1"
//! revision   = 1*20DIGIT            ; policy revision consent was given for
//! given-at   = 1*20DIGIT            ; seconds since the Unix epoch
//! categories = [ name *( "~" name ) ] ; granted policy categories, may be empty
//! name       = 1*64( ALPHA / DIGIT / "-" / "_" )
//! signature  = 43base64url          ; unpadded HMAC-SHA256(key, value before the last ".")
//! ```
//!
//! For example `1.3.1718000000.analytics~functional.kQ3…` (signed) or
//! `1.3.1718000000.` (unsigned, everything refused). Numbers are canonical
//! (no leading zeros, no sign) and a category appears at most once, so one
//! choice has exactly one spelling. Every character is a cookie-octet that
//! no URL or form encoder rewrites (no `;`, `,`, space, `"`, `\`, `+`, `%`),
//! so the value survives any framework between the browser and the origin.
//!
//! # Signature
//!
//! With `hmac_key` set, an unsigned value, a signature that does not verify
//! (compared in constant time by [`hmac::Mac::verify_slice`]) or one that
//! is not canonical base64url grants nothing: the value could have been
//! written by page script rather than the consent endpoint. Without a key
//! the signature, if present, is not checked (there is nothing to check it
//! with) but must still be well-formed.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::decode::{canonical_u64, from_secs};
use super::{Reading, Refusal};

/// The format version this module writes and reads.
pub const VERSION: &str = "1";

/// Longest category name written or read.
pub const MAX_NAME_LEN: usize = 64;

/// Length of an unpadded base64url HMAC-SHA256.
const SIGNATURE_LEN: usize = 43;

type HmacSha256 = Hmac<Sha256>;

/// Whether `name` can be written into the cookie (policy category names
/// always can: the policy compiler allows letters, digits, `-` and `_`).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Encodes a consent choice as the `consentry` cookie value.
///
/// `categories` are policy category names; names that cannot be written
/// (see [`is_valid_name`]) are left out, which can only grant less, and
/// repeats are written once. With a `key`, the value is signed.
pub fn encode(categories: &[&str], revision: u64, given_at: SystemTime, key: Option<&[u8]>) -> String {
    let secs = given_at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut value = format!("{VERSION}.{revision}.{secs}.");
    let mut written: Vec<&str> = Vec::with_capacity(categories.len());
    for name in categories.iter().copied().filter(|n| is_valid_name(n)) {
        if written.contains(&name) {
            continue;
        }
        if !written.is_empty() {
            value.push('~');
        }
        value.push_str(name);
        written.push(name);
    }
    if let Some(key) = key {
        let signature = sign(key, value.as_bytes());
        value.push('.');
        value.push_str(&URL_SAFE_NO_PAD.encode(signature));
    }
    value
}

fn mac(key: &[u8], payload: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(payload);
    mac
}

/// An HMAC key together with the HMAC state that has already absorbed it
/// (the inner and outer padded key blocks): half of the four SHA-256
/// compressions that verifying a consent cookie costs, done once when the
/// policy compiles instead of on every request. Dereferences to the key's
/// bytes.
#[derive(Clone)]
pub struct HmacKey {
    bytes: Vec<u8>,
    keyed: HmacSha256,
}

impl HmacKey {
    /// Keys the HMAC with `bytes` (any length).
    pub fn new(bytes: Vec<u8>) -> HmacKey {
        let keyed = HmacSha256::new_from_slice(&bytes).expect("HMAC takes keys of any length");
        HmacKey { bytes, keyed }
    }

    /// The HMAC of `payload`, the same as [`mac`] with this key.
    fn mac(&self, payload: &[u8]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(payload);
        mac
    }
}

impl std::ops::Deref for HmacKey {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A secret: its length only, never its bytes.
        f.debug_struct("HmacKey").field("len", &self.bytes.len()).finish_non_exhaustive()
    }
}

fn sign(key: &[u8], payload: &[u8]) -> [u8; 32] {
    mac(key, payload).finalize().into_bytes().into()
}

/// Reads a `consentry` cookie value. With `key`, only values signed with
/// it are accepted. Keys the HMAC on every call: the proxy keeps the key
/// prepared and reads with [`parse_keyed`].
pub fn parse(value: &str, key: Option<&[u8]>) -> Result<Reading, Refusal> {
    parse_keyed(value, key.map(|key| HmacKey::new(key.to_vec())).as_ref())
}

/// [`parse`] with a key whose HMAC state is prepared ([`HmacKey`]), as the
/// policy keeps it.
pub fn parse_keyed(value: &str, key: Option<&HmacKey>) -> Result<Reading, Refusal> {
    let mut fields = value.split('.');
    let (Some(version), Some(revision), Some(given_at), Some(categories)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(Refusal::invalid("consentry: fewer than four fields"));
    };
    let signature = fields.next();
    if fields.next().is_some() {
        return Err(Refusal::invalid("consentry: too many fields"));
    }
    if version != VERSION {
        return Err(Refusal::invalid("consentry: unknown format version"));
    }

    // Check the signature before trusting anything else in the value.
    match (key, signature) {
        (Some(_), None) => return Err(Refusal::invalid("consentry: unsigned value, a key is configured")),
        (_, Some(sig)) => {
            let bytes = decode_signature(sig)?;
            if let Some(key) = key {
                // Everything before the last '.' is what was signed.
                let payload = value.get(..value.len() - sig.len() - 1).unwrap_or("");
                key.mac(payload.as_bytes())
                    .verify_slice(&bytes)
                    .map_err(|_| Refusal::invalid("consentry: signature does not verify"))?;
            }
        }
        (None, None) => {}
    }

    let revision = canonical_u64(revision).ok_or(Refusal::invalid("consentry: bad revision"))?;
    let secs = canonical_u64(given_at).ok_or(Refusal::invalid("consentry: bad timestamp"))?;
    let given_at = from_secs(secs).ok_or(Refusal::invalid("consentry: timestamp out of range"))?;
    let mut granted: Vec<String> = Vec::new();
    if !categories.is_empty() {
        for name in categories.split('~') {
            if !is_valid_name(name) {
                return Err(Refusal::invalid("consentry: bad category name"));
            }
            if granted.iter().any(|g| g == name) {
                return Err(Refusal::invalid("consentry: category listed twice"));
            }
            granted.push(name.to_string());
        }
    }
    Ok(Reading { granted, revision: Some(revision), given_at: Some(given_at), ..Reading::default() })
}

/// The 32 signature bytes, from exactly 43 canonical base64url characters
/// (the strict decoder rejects set padding bits, so each signature has one
/// spelling and a changed last character cannot still verify).
fn decode_signature(sig: &str) -> Result<[u8; 32], Refusal> {
    if sig.len() != SIGNATURE_LEN {
        return Err(Refusal::invalid("consentry: signature has the wrong length"));
    }
    let mut out = [0u8; 32];
    match URL_SAFE_NO_PAD.decode_slice(sig, &mut out) {
        Ok(32) => Ok(out),
        _ => Err(Refusal::invalid("consentry: signature is not base64url")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn round_trip_signed() {
        let value = encode(&["analytics", "functional"], 3, at(1_718_000_000), Some(KEY));
        assert!(value.starts_with("1.3.1718000000.analytics~functional."), "{value}");
        assert_eq!(value.len(), "1.3.1718000000.analytics~functional.".len() + SIGNATURE_LEN);
        let reading = parse(&value, Some(KEY)).unwrap();
        assert_eq!(reading.granted, vec!["analytics", "functional"]);
        assert_eq!(reading.revision, Some(3));
        assert_eq!(reading.given_at, Some(at(1_718_000_000)));
        // Without a key, a signed value is read too (its signature unchecked).
        assert_eq!(parse(&value, None).unwrap(), reading);
    }

    #[test]
    fn cookie_safe_characters_only() {
        let value = encode(&["necessary", "a-b_c"], u64::MAX, at(u64::from(u32::MAX)), Some(KEY));
        assert!(
            value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'~' | b'-' | b'_')),
            "{value}"
        );
    }

    /// The prepared key reads every value as the plain key does.
    #[test]
    fn prepared_key_reads_as_the_plain_key() {
        let key = HmacKey::new(KEY.to_vec());
        assert_eq!(&*key, KEY);
        let signed = encode(&["analytics"], 3, at(1_718_000_000), Some(KEY));
        let other = encode(&["analytics"], 3, at(1_718_000_000), Some(b"another key"));
        let mut forged = signed.clone();
        forged.replace_range(2..3, "4");
        let unsigned = encode(&["analytics"], 3, at(1_718_000_000), None);
        for value in [&signed, &other, &forged, &unsigned, &"1.3.x.".to_string()] {
            assert_eq!(parse_keyed(value, Some(&key)), parse(value, Some(KEY)), "{value}");
            assert_eq!(parse_keyed(value, None), parse(value, None), "{value}");
        }
        assert!(parse_keyed(&signed, Some(&key)).is_ok());
        assert!(parse_keyed(&other, Some(&key)).is_err());
        assert!(parse_keyed(&forged, Some(&key)).is_err());
    }

    #[test]
    fn reject_all_and_unsigned() {
        let value = encode(&[], 0, at(1_700_000_000), None);
        assert_eq!(value, "1.0.1700000000.");
        let reading = parse(&value, None).unwrap();
        assert!(reading.granted.is_empty());
        assert_eq!(
            parse(&value, Some(KEY)).unwrap_err().reason,
            "consentry: unsigned value, a key is configured"
        );
    }

    #[test]
    fn encoder_drops_unwritable_and_repeated_names() {
        let value = encode(&["analytics", "bad name", "a;b", "", "analytics", "x,y"], 1, at(5), None);
        assert_eq!(value, "1.1.5.analytics");
        // Before the epoch: written as 0 rather than failing.
        assert_eq!(encode(&[], 1, UNIX_EPOCH - Duration::from_secs(9), None), "1.1.0.");
    }

    #[test]
    fn forged_and_wrong_key() {
        let value = encode(&["analytics"], 1, at(1_700_000_000), Some(KEY));
        assert!(parse(&value, Some(b"another key")).is_err());
        // Granting more by editing the categories breaks the signature.
        let forged = value.replacen("analytics", "advertising", 1);
        assert_eq!(parse(&forged, Some(KEY)).unwrap_err().reason, "consentry: signature does not verify");
        // A signature from another value does not transfer.
        let other = encode(&["advertising"], 1, at(1_700_000_000), Some(KEY));
        let sig = other.rsplit('.').next().unwrap();
        let spliced = format!("1.1.1700000000.analytics.{sig}");
        assert!(parse(&spliced, Some(KEY)).is_err());
    }

    #[test]
    fn malformed() {
        let sig = "A".repeat(SIGNATURE_LEN);
        for bad in [
            "",
            "1",
            "1.2.3",
            "2.1.1700000000.analytics",
            "v1.1.1700000000.analytics",
            "1.01.1700000000.analytics",
            "1.-1.1700000000.analytics",
            "1.1.+1700000000.analytics",
            "1.1.1700000000.analytics~analytics",
            "1.1.1700000000.analytics~",
            "1.1.1700000000.~analytics",
            "1.1.1700000000.ana lytics",
            "1.1.99999999999999999999.analytics",
            "1.1.1700000000.analytics.short",
            "1.1.1700000000.analytics.sig.extra",
            &format!("1.1.1700000000.{}", "a".repeat(MAX_NAME_LEN + 1)),
            &format!("1.1.1700000000.analytics.{}", &sig[..SIGNATURE_LEN - 1]),
            &format!("1.1.1700000000.analytics.{}=", &sig[..SIGNATURE_LEN - 1]),
            &format!("1.1.1700000000.analytics.{}", "*".repeat(SIGNATURE_LEN)),
        ] {
            assert!(parse(bad, None).is_err(), "{bad:?} parsed");
        }
        // u64::MAX seconds does not fit a SystemTime on Linux: refused, not a panic.
        assert!(parse("1.1.18446744073709551615.", None).is_err());
    }

    #[test]
    fn non_canonical_last_signature_character_is_refused() {
        let value = encode(&["analytics"], 1, at(1_700_000_000), Some(KEY));
        let (head, last) = value.split_at(value.len() - 1);
        // The last of 43 characters carries 4 data bits and 2 zero bits;
        // flipping a zero bit must not yield the same signature.
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let pos = alphabet.iter().position(|&c| c == last.as_bytes()[0]).unwrap();
        let twin = alphabet[pos ^ 1] as char;
        assert!(parse(&format!("{head}{twin}"), Some(KEY)).is_err());
    }
}
