//! The streaming HTML rewriter (`src/html.rs`) on arbitrary bytes.
//!
//! Invariants:
//! - nothing panics (a panic lol_html raises is caught by the rewriter,
//!   but libFuzzer's panic hook still reports it);
//! - with no matching rule, the output is the input, byte for byte, fed
//!   whole or in arbitrary chunks;
//! - with real rules (presets, host, prefix and inline rules; a consent
//!   and an encoding derived from the input, and sometimes a banner),
//!   arbitrary chunk splits give the same output as one chunk.
//!
//! The chunk sizes are derived from a hash of the input, so that corpus
//! files are plain HTML.
#![no_main]

use bytes::Bytes;
use consentry::category::CategorySet;
use consentry_fuzz::{IDENTITY_POLICY, RULES_POLICY, cached_site, fnv, granted_from, page_options, rewrite_page, splits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let seed = fnv(data);
    let chunks = splits(seed, data.len());

    // No matching rule: identity.
    let site = cached_site(IDENTITY_POLICY);
    let options = page_options(&site, CategorySet::NECESSARY_ONLY);
    let whole = rewrite_page(options.clone(), data, None);
    assert!(whole == data, "no rule, but the page changed (one chunk)");
    let split = rewrite_page(options, data, Some(&chunks));
    assert!(split == data, "no rule, but the page changed (chunks {chunks:?})");

    // Real rules: chunking does not matter.
    let site = cached_site(RULES_POLICY);
    let mut options = page_options(&site, granted_from(&site, (seed >> 8) as u8));
    options.charset = match (seed >> 16) % 4 {
        0 => None,
        1 => Some(encoding_rs::UTF_8),
        2 => Some(encoding_rs::WINDOWS_1252),
        _ => Some(encoding_rs::SHIFT_JIS),
    };
    if (seed >> 20) & 1 == 1 {
        options.banner = Some(Bytes::from_static(b"<div id=\"consentry-banner\">Cookies? \xc3\xa9</div>"));
    }
    if (seed >> 21) & 1 == 1 {
        options.nonce = Some("fuzzNonce123".into());
    }
    if (seed >> 22) & 1 == 1 {
        options.page_url = None;
    }
    let whole = rewrite_page(options.clone(), data, None);
    let split = rewrite_page(options, data, Some(&chunks));
    assert!(whole == split, "chunk splits changed the output (chunks {chunks:?})");
});
