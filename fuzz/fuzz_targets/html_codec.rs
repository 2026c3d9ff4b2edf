//! The body stage (`src/response_body.rs`) with compressed HTML
//! (`src/codec.rs`): decode, rewrite, re-encode, streamed frame by frame.
//!
//! The input is used two ways, with the coding and frame sizes derived
//! from its hash:
//! - as a page, compressed by a reference encoder: with no matching rule
//!   the decoded output is the page, byte for byte, and `on_done` runs
//!   exactly once;
//! - as the compressed body itself (garbage, truncated or hostile
//!   streams): no panic, no endless body (a libFuzzer timeout), the decoded
//!   size cap holds and `on_done` runs exactly once.
#![no_main]

use bytes::Bytes;
use consentry::category::CategorySet;
use consentry_fuzz::{Codec, IDENTITY_POLICY, RULES_POLICY, cached_site, fnv, granted_from, run_body, splits};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;

fn frames(data: &[u8], lens: &[usize]) -> Vec<Bytes> {
    let mut at = 0;
    lens.iter()
        .map(|&n| {
            let b = Bytes::copy_from_slice(&data[at..at + n]);
            at += n;
            b
        })
        .collect()
}

fn headers(codec: Codec) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", "text/html".parse().unwrap());
    h.insert("content-encoding", codec.token().parse().unwrap());
    h
}

fuzz_target!(|data: &[u8]| {
    let seed = fnv(data);
    let codec = Codec::ALL[(seed % 4) as usize];

    // A real compressed page, no matching rule: identity after decoding.
    let site = cached_site(IDENTITY_POLICY);
    let encoded = codec.encode(data);
    let run = run_body(&site, CategorySet::NECESSARY_ONLY, headers(codec), frames(&encoded, &splits(seed, encoded.len())), 1 << 24);
    assert!(run.error.is_none(), "{codec:?}: a valid stream failed: {:?}", run.error);
    assert_eq!(run.done_calls, 1);
    let decoded = if run.bytes.is_empty() { Vec::new() } else { codec.decode(&run.bytes).expect("output decodes") };
    assert!(decoded == data, "{codec:?}: no rule, but the page changed");

    // The input as the compressed stream itself, under real rules and a
    // small decoded-size cap.
    let site = cached_site(RULES_POLICY);
    let granted = granted_from(&site, (seed >> 8) as u8);
    let cap = [64u64, 4096, 1 << 20][((seed >> 16) % 3) as usize];
    let run = run_body(&site, granted, headers(codec), frames(data, &splits(seed >> 3, data.len())), cap);
    assert_eq!(run.done_calls, 1, "on_done must run exactly once");
    let _ = run.headers;
});
