//! IAB TCF v2.2 (`euconsent-v2`): the TC string's core segment.
//!
//! A TC string is `core[.segment]*`, each segment base64url without
//! padding. Only the core segment matters here; its fields (IAB Tech Lab,
//! "Consent string and vendor list formats v2", core string) are read by
//! bit offset:
//!
//! | bits | field |
//! |---|---|
//! | 0–5 | Version, must be 2 |
//! | 6–41 | Created, deciseconds since the epoch |
//! | 42–77 | LastUpdated, deciseconds since the epoch |
//! | 152–175 | PurposesConsent, bit *n*−1 = purpose *n* |
//! | 200 | PurposeOneTreatment |
//! | 213– | vendor consents (MaxVendorId 16 bits, IsRangeEncoding 1 bit, ...) |
//!
//! The reading: the purposes consented to, as `"1"`..`"24"`, and
//! LastUpdated as the consent time. Purpose 1 (store and access information
//! on a device) is the legal basis for any cookie at all: without it no
//! purpose is granted, unless PurposeOneTreatment says purpose 1 was not
//! asked (publishers outside the EU may do so).
//!
//! The bit reader is a dozen lines written here rather than a TCF crate:
//! the crates on crates.io decode the whole string (vendor lists, publisher
//! segments) into allocations this stage never looks at. Strings shorter
//! than the fixed part of the core segment (29 bytes, through
//! IsRangeEncoding) are truncated and refused.

use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use std::time::{Duration, UNIX_EPOCH};

use super::{Reading, Refusal};

/// base64url as CMPs write it: no padding (some add it anyway), trailing
/// bits not necessarily zero.
const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Bytes through IsRangeEncoding (bit 229).
const MIN_CORE_BYTES: usize = 29;

/// Longest core segment decoded (a core segment listing every GVL vendor
/// in a bit field is ~1.5 KB of base64).
const MAX_CORE_CHARS: usize = 4096;

const PURPOSES_AT: usize = 152;
const PURPOSE_COUNT: usize = 24;
const PURPOSE_ONE_TREATMENT_AT: usize = 200;

/// Big-endian bit reader over the decoded core segment.
struct Bits<'a>(&'a [u8]);

impl Bits<'_> {
    fn bit(&self, at: usize) -> Option<bool> {
        let byte = self.0.get(at / 8)?;
        Some(byte & (0x80 >> (at % 8)) != 0)
    }

    /// `len` (≤ 64) bits from bit `at`, most significant first.
    fn uint(&self, at: usize, len: usize) -> Option<u64> {
        (at..at + len).try_fold(0u64, |acc, i| Some(acc << 1 | u64::from(self.bit(i)?)))
    }
}

/// Reads a TC string (the `euconsent-v2` value).
pub fn parse(value: &str) -> Result<Reading, Refusal> {
    let core = value.split('.').next().unwrap_or("");
    if core.len() > MAX_CORE_CHARS {
        return Err(Refusal::invalid("tcf: core segment too long"));
    }
    let bytes = ENGINE.decode(core).map_err(|_| Refusal::invalid("tcf: core segment is not base64url"))?;
    if bytes.len() < MIN_CORE_BYTES {
        return Err(Refusal::invalid("tcf: core segment truncated"));
    }
    let bits = Bits(&bytes);
    let truncated = Refusal::invalid("tcf: core segment truncated");
    if bits.uint(0, 6).ok_or(truncated)? != 2 {
        return Err(Refusal::invalid("tcf: not a version 2 TC string"));
    }
    let updated = bits.uint(42, 36).ok_or(truncated)?;
    if updated == 0 {
        return Err(Refusal::invalid("tcf: LastUpdated not set"));
    }
    let given_at = UNIX_EPOCH.checked_add(Duration::from_millis(updated * 100));
    let purpose_one_treatment = bits.bit(PURPOSE_ONE_TREATMENT_AT).ok_or(truncated)?;
    let mut granted = Vec::new();
    for i in 0..PURPOSE_COUNT {
        if bits.bit(PURPOSES_AT + i).ok_or(truncated)? {
            granted.push((i + 1).to_string());
        }
    }
    if !purpose_one_treatment && !granted.iter().any(|p| p == "1") {
        // No consent to store anything on the device: no cookie of any
        // purpose may be set.
        granted.clear();
    }
    Ok(Reading { granted, given_at, ..Reading::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purposes(value: &str) -> Vec<String> {
        parse(value).unwrap().granted
    }

    // Vectors from a public JavaScript test suite for `isPurposeConsentSet`
    // (tcfUtils spec; corpus file id 12280262781), which lists the expected
    // purpose consents for purposes 1–10 of each string. Checked here
    // independently of that suite's decoder.
    const ODD: &str = "CPh7_cXPh7_cXKMAAAENCZCAAKqAAAAAAAAAAAAAAAAA.II7Nd_X__bX9n-_7_6ft0eY1f9_r37uQzDhfNs-8F3L_W_LwX32E7NF36tq4KmR4ku1bBIQNtHMnUDUmxaolVrzHsak2cpyNKJ_JkknsZe2dYGF9Pn9lD-YKZ7_5_9_f52T_9_9_-39z3_9f___dv_-__-vjf_599n_v9fV_78_Kf9______-____________8A";
    const EVEN: &str = "CPh8CeXPh8CeXMgAAAENCZCAAFVAAAAAAAAAAAAAAAAA";
    const ALL_TEN: &str = "CPh8CoIPh8CoINYAAAENCZCAAP_AAAAAAAAAAAAAAAAA";
    const NONE: &str = "CPh8CjOPh8CjOEZAAAENCZCAAAAAAAAAAAAAAAAAAAAA";
    // Reject-all strings as uBlock Origin Lite sets them (uBlockOrigin/
    // uBOL-home, firefox/rulesets/scripting/scriptlet/
    // annoyances-cookies.trusted-set-cookie.js).
    const UBO_REJECT: &str = "CPt3fQAPt3fQACNAFAENDLCgAAAAAAAAACiQAAAOCgDAB-AIsAZ8A6QDBAHBAAAA.YAAAAAAAAAAA";
    const UBO_SHORT: &str = "CPzEX8APzEX8ADtACBESAUEgAAAAAAAAAAiQAAAAAAAA";
    // IAB's own decoder test (InteractiveAdvertisingBureau/iabtcf-java,
    // CoreStringDecoderTest): purposes 2 and 10 with PurposeOneTreatment set.
    const IAB: &str = "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA";

    #[test]
    fn purposes_from_real_strings() {
        assert_eq!(purposes(ODD), vec!["1", "3", "5", "7", "9"]);
        assert_eq!(purposes(ALL_TEN), vec!["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]);
        assert!(purposes(NONE).is_empty());
        assert!(purposes(UBO_REJECT).is_empty());
        assert!(purposes(UBO_SHORT).is_empty());
        // Purposes 2, 4, 6, 8, 10 without purpose 1: nothing may be stored.
        assert!(purposes(EVEN).is_empty());
        // Purpose 1 not asked (PurposeOneTreatment): the others count.
        assert_eq!(purposes(IAB), vec!["2", "10"]);
    }

    #[test]
    fn last_updated_is_the_consent_time() {
        // CPh7_cXPh7_cX...: LastUpdated 2022-11-04T08:23:04.7Z.
        let r = parse(ODD).unwrap();
        assert_eq!(r.given_at, Some(UNIX_EPOCH + Duration::from_millis(1_667_550_184_700)));
        // iabtcf-java asserts Created 2020-01-26T17:01Z, LastUpdated 2021-02-02T17:01Z.
        assert_eq!(parse(IAB).unwrap().given_at, Some(UNIX_EPOCH + Duration::from_secs(1_612_285_260)));
    }

    #[test]
    fn purpose_one_treatment() {
        // Set bit 200 (PurposeOneTreatment) in EVEN: purposes count without purpose 1.
        let mut bytes = ENGINE.decode(EVEN).unwrap();
        bytes[25] |= 0x80;
        let treated = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(purposes(&treated), vec!["2", "4", "6", "8", "10"]);
    }

    #[test]
    fn encoding_variants() {
        // With and without padding (a core segment of 34 bytes needs "==").
        let mut bytes = ENGINE.decode(ALL_TEN).unwrap();
        bytes.push(0);
        let unpadded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
        let padded = base64::engine::general_purpose::URL_SAFE.encode(&bytes);
        assert!(padded.ends_with("=="));
        assert_eq!(parse(&padded).unwrap(), parse(&unpadded).unwrap());
        assert_eq!(parse(&unpadded).unwrap(), parse(ALL_TEN).unwrap());
        assert_eq!(parse(&format!("{ALL_TEN}.YAAAAAAAAAAA")).unwrap(), parse(ALL_TEN).unwrap());
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "CPh7_cXPh7",
            // Invalid character, as the tcfUtils suite checks.
            "CPh7_cXPh7_cXKMAAAENCZCA??????????AAAAAAAAAAAAAAA.II7Nd_X__bX9n",
            // Version 1 string (starts with B).
            "BPh8CjOPh8CjOEZAAAENCZCAAAAAAAAAAAAAAAAAAAAA",
            // Standard base64 alphabet is not base64url.
            "CPh8CoIPh8CoINYAAAENCZCAAP/AAAAAAAAAAAAAAAAA",
            // Version 2, LastUpdated zero.
            "CAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        // Truncated below the fixed core fields.
        assert!(parse(&ALL_TEN[..37]).is_err());
        assert!(parse(&"C".repeat(MAX_CORE_CHARS + 4)).is_err());
    }
}
