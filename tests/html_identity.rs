//! With no matching rule, the rewriter's output is byte-identical to its
//! input: proven on the html5lib tokenizer corpus (6,810 awkward inputs)
//! and on the inputs that make lol_html's strict mode give up, fed whole
//! and in 1-, 7- and 64-byte chunks, plain and gzip/br encoded.
//!
//! Skipped with a notice when `../shared/testdata` is absent.

mod html_common;

use bytes::Bytes;
use html_common::*;
use http::HeaderMap;

/// A policy whose rules match nothing in the corpora, but with inline
/// signatures (so inline scripts are held and searched) and a noscript
/// handler active, so every mechanism runs.
const POLICY: &str = r#"
[policy.default]
unknown_third_party = "allow"
[[policy.default.resource]]
match = "tracker.invalid"
category = "advertising"
[[policy.default.resource]]
match = "inline:consentry-test-signature-that-never-occurs("
category = "advertising"
[[policy.default.resource]]
match = "inline:fbq("
category = "advertising"
"#;

const SURROGATE: &str = "\u{1}\u{2}LONE-SURROGATE\u{2}\u{1}";

/// Replaces JSON `\uD800`-style escapes of lone surrogates (which no Rust
/// string can hold) by a marker, keeping valid surrogate pairs.
fn mark_lone_surrogates(json: &str) -> String {
    let b = json.as_bytes();
    let hex = |i: usize| -> Option<u32> {
        let s = json.get(i..i + 4)?;
        u32::from_str_radix(s, 16).ok()
    };
    let mut out = String::with_capacity(json.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) == Some(&b'u')
                && let Some(cp) = hex(i + 2)
                && (0xD800..0xE000).contains(&cp)
            {
                let paired = cp < 0xDC00
                    && b.get(i + 6) == Some(&b'\\')
                    && b.get(i + 7) == Some(&b'u')
                    && hex(i + 8).is_some_and(|lo| (0xDC00..0xE000).contains(&lo));
                if paired {
                    i += 12;
                    continue;
                }
                out.push_str(&json[last..i]);
                out.push_str("\\u0001\\u0002LONE-SURROGATE\\u0002\\u0001");
                i += 6;
                last = i;
                continue;
            }
            i += 2;
            continue;
        }
        i += 1;
    }
    out.push_str(&json[last..]);
    out
}

/// Undoes html5lib's `doubleEscaped` (`\uXXXX` written literally); None
/// when that yields a lone surrogate.
fn unescape_double(s: &str) -> Option<String> {
    let units: Vec<u16> = {
        let mut u = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find("\\u") {
            u.extend(rest[..i].encode_utf16());
            let code = u16::from_str_radix(rest.get(i + 2..i + 6)?, 16).ok()?;
            u.push(code);
            rest = &rest[i + 6..];
        }
        u.extend(rest.encode_utf16());
        u
    };
    String::from_utf16(&units).ok()
}

struct Corpus {
    inputs: Vec<String>,
    skipped: usize,
}

fn html5lib(dir: &std::path::Path) -> Corpus {
    let mut inputs = Vec::new();
    let mut skipped = 0;
    let mut files: Vec<_> = std::fs::read_dir(dir.join("html5lib-tokenizer"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    files.sort();
    for file in files {
        let text = mark_lone_surrogates(&std::fs::read_to_string(&file).unwrap());
        let doc: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for tests in doc.as_object().unwrap().values() {
            for test in tests.as_array().unwrap() {
                let raw = test["input"].as_str().unwrap();
                let input = if test.get("doubleEscaped").and_then(|v| v.as_bool()) == Some(true) {
                    unescape_double(raw)
                } else {
                    Some(raw.to_string())
                };
                match input {
                    Some(i) if !i.contains(SURROGATE) => inputs.push(i),
                    _ => skipped += 1,
                }
            }
        }
    }
    Corpus { inputs, skipped }
}

fn bailouts(dir: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("lol-html/expected_bailouts.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc.as_object().unwrap().keys().cloned().collect()
}

fn check_plain(site: &std::sync::Arc<consentry::route::Site>, inputs: &[String]) -> usize {
    let mut runs = 0;
    for input in inputs {
        for chunk in [usize::MAX, 1, 7, 64] {
            let (out, decisions) = rewrite_with(options(site, granted(site, &[])), input.as_bytes(), chunk);
            assert!(
                out == input.as_bytes(),
                "not identical (chunk {chunk}):\n input: {input:?}\noutput: {:?}",
                String::from_utf8_lossy(&out)
            );
            assert!(
                decisions.iter().all(|d| d.action == consentry::decision::Action::Allow),
                "{input:?}: {decisions:?}"
            );
            runs += 1;
        }
    }
    runs
}

fn check_encoded(site: &std::sync::Arc<consentry::route::Site>, inputs: &[String]) -> usize {
    let mut runs = 0;
    for input in inputs {
        for (name, encode, decode) in
            [("gzip", gzip as fn(&[u8]) -> Vec<u8>, gunzip as fn(&[u8]) -> Vec<u8>), ("br", brotli, unbrotli)]
        {
            let encoded = encode(input.as_bytes());
            for chunk in [usize::MAX, 1, 7, 64] {
                let frames: Vec<Bytes> =
                    encoded.chunks(chunk.min(encoded.len().max(1))).map(Bytes::copy_from_slice).collect();
                let mut headers = HeaderMap::new();
                headers.insert("content-type", "text/html".parse().unwrap());
                headers.insert("content-encoding", name.parse().unwrap());
                let run = run_body(site, granted(site, &[]), headers, frames, None, 1 << 30);
                assert!(run.error.is_none(), "{name} {input:?}: {:?}", run.error);
                assert_eq!(run.done_calls, 1);
                let out = run.bytes();
                let decoded = if out.is_empty() { Vec::new() } else { decode(&out) };
                assert!(
                    decoded == input.as_bytes(),
                    "{name} not identical (chunk {chunk}):\n input: {input:?}\noutput: {:?}",
                    String::from_utf8_lossy(&decoded)
                );
                runs += 1;
            }
        }
    }
    runs
}

#[test]
fn html5lib_tokenizer_corpus_is_unchanged() {
    let Some(dir) = testdata() else { return };
    let corpus = html5lib(&dir);
    let site = site(POLICY);
    let runs = check_plain(&site, &corpus.inputs);
    eprintln!(
        "html5lib: {} inputs byte-identical in {runs} plain runs; {} skipped (lone surrogates, not valid UTF-8)",
        corpus.inputs.len(),
        corpus.skipped
    );
    assert!(corpus.inputs.len() > 6500, "corpus too small: {}", corpus.inputs.len());
    assert!(corpus.skipped < 100);
}

#[test]
fn html5lib_tokenizer_corpus_is_unchanged_through_gzip_and_brotli() {
    let Some(dir) = testdata() else { return };
    let corpus = html5lib(&dir);
    let site = site(POLICY);
    let runs = check_encoded(&site, &corpus.inputs);
    eprintln!("html5lib: {} inputs byte-identical in {runs} gzip/br runs", corpus.inputs.len());
}

#[test]
fn strict_mode_bailout_inputs_are_delivered_whole() {
    let Some(dir) = testdata() else { return };
    let inputs = bailouts(&dir);
    assert!(!inputs.is_empty());
    let site = site(POLICY);
    let plain = check_plain(&site, &inputs);
    let encoded = check_encoded(&site, &inputs);
    eprintln!(
        "lol-html bailouts: {} inputs byte-identical in {plain} plain and {encoded} encoded runs",
        inputs.len()
    );
}

#[test]
fn surrogate_marking() {
    assert_eq!(
        mark_lone_surrogates(r#""a\uD800b""#),
        format!("\"a{}b\"", "\\u0001\\u0002LONE-SURROGATE\\u0002\\u0001")
    );
    assert_eq!(mark_lone_surrogates(r#""\uD83D\uDE00""#), r#""\uD83D\uDE00""#);
    assert_eq!(mark_lone_surrogates(r#""\\uD800""#), r#""\\uD800""#);
    assert_eq!(unescape_double(r"x\u0041"), Some("xA".into()));
    assert_eq!(unescape_double(r"\uD800"), None);
}
