//! A page is never truncated: when lol_html bails out (memory limit on a
//! giant tag) or rewriting stops (decoded-size limit), what was rewritten
//! stays rewritten and every remaining original byte is still delivered.

mod html_common;

use bytes::Bytes;
use consentry::html::{PARSER_MEMORY, PageRewriter};
use consentry::response_body::{Passthrough, passthrough_count};
use html_common::*;
use http::HeaderMap;

const POLICY: &str = r#"
[policy.default]
[[policy.default.resource]]
match = "connect.facebook.net"
category = "advertising"
[[policy.default.resource]]
match = "inline:fbq("
category = "advertising"
"#;

const TRACKER: &str = r#"<script src="https://connect.facebook.net/en_US/fbevents.js"></script>"#;
const INERT: &str = r#"<script type="text/plain" data-category="advertising" src="https://connect.facebook.net/en_US/fbevents.js"></script>"#;

fn same(out: &[u8], expected: &[u8], what: &str) {
    if out != expected {
        let at = out.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(out.len().min(expected.len()));
        panic!(
            "{what}: output differs at byte {at} (len {} vs expected {}): got {:?}, expected {:?}",
            out.len(),
            expected.len(),
            String::from_utf8_lossy(&out[at..(at + 80).min(out.len())]),
            String::from_utf8_lossy(&expected[at..(at + 80).min(expected.len())]),
        );
    }
}

/// A page whose middle `<img>` has a `data:` URL larger than lol_html's
/// memory limit, with a tracker before and after it.
fn giant_tag_page() -> (Vec<u8>, Vec<u8>) {
    let mut page =
        format!("<html><body><p>before</p>{TRACKER}<img alt=x src=\"data:image/png;base64,").into_bytes();
    page.extend(std::iter::repeat_n(b'A', PARSER_MEMORY + 1024 * 1024));
    let rest = format!("\"><p>after</p>{TRACKER}<script>fbq('init')</script></body></html>");
    page.extend_from_slice(rest.as_bytes());
    // Before the bail-out: rewritten; from the giant tag on: as it was.
    let s = String::from_utf8(page.clone()).unwrap();
    let expected = s.replacen(TRACKER, INERT, 1).into_bytes();
    (page, expected)
}

#[test]
fn a_memory_limit_bailout_delivers_the_rest_of_the_original_bytes() {
    let site = site(POLICY);
    let (page, expected) = giant_tag_page();
    // Only a tag split across chunks is buffered by lol_html (a whole page in
    // one chunk is parsed in place and fully rewritten).
    for chunk in [16 * 1024, 1024 * 1024] {
        let before = passthrough_count(Passthrough::RewriterMemory);
        let mut rewriter = PageRewriter::new(options(&site, granted(&site, &[])));
        let mut out = Vec::new();
        for c in page.chunks(chunk) {
            rewriter.write(c, &mut out);
        }
        rewriter.finish(&mut out);
        same(&out, &expected, &format!("chunk {chunk}"));
        assert_eq!(rewriter.fallback(), Some(Passthrough::RewriterMemory));
        assert!(passthrough_count(Passthrough::RewriterMemory) > before);
        assert_eq!(rewriter.take_decisions().len(), 1, "only the tracker before the bail-out was decided");
    }
}

#[test]
fn a_bailout_inside_a_gzip_body_still_delivers_a_complete_stream() {
    let site = site(POLICY);
    let (page, expected) = giant_tag_page();
    let encoded = gzip(&page);
    let frames: Vec<Bytes> = encoded.chunks(8 * 1024).map(Bytes::copy_from_slice).collect();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "text/html".parse().unwrap());
    headers.insert("content-encoding", "gzip".parse().unwrap());
    let run = run_body(&site, granted(&site, &[]), headers, frames, None, 1 << 30);
    assert!(run.error.is_none());
    same(&gunzip(&run.bytes()), &expected, "gzip");
    assert_eq!(run.done_calls, 1);
}

#[test]
fn stopping_releases_held_scripts_unchanged() {
    let site = site(POLICY);
    let mut rewriter = PageRewriter::new(options(&site, granted(&site, &[])));
    let mut out = Vec::new();
    rewriter.write(b"<p>x</p><script>var a = 1; /* no signature yet */", &mut out);
    assert_eq!(out, b"<p>x</p>", "the inline script is held");
    rewriter.stop(Passthrough::DecodedLimit, &mut out);
    rewriter.write(b" fbq('init');</script><p>y</p>", &mut out);
    rewriter.finish(&mut out);
    same(&out, b"<p>x</p><script>var a = 1; /* no signature yet */ fbq('init');</script><p>y</p>", "stop");
}

#[test]
fn stopping_inside_a_removed_element_keeps_its_content_inert() {
    let site = site(&POLICY.replace("[policy.default]\n", "[policy.default]\nneutralise = \"remove\"\n"));
    let mut rewriter = PageRewriter::new(options(&site, granted(&site, &[])));
    let mut out = Vec::new();
    rewriter.write(b"<p>x</p><script src=\"https://connect.facebook.net/x.js\">var dropped = 1;", &mut out);
    rewriter.stop(Passthrough::DecodedLimit, &mut out);
    rewriter.write(b" var kept = 2;</script><p>y</p>", &mut out);
    rewriter.finish(&mut out);
    // The rest of the script's text stays inside an inert script element
    // instead of showing up as page text.
    same(
        &out,
        b"<p>x</p><script type=\"text/plain\" data-category=\"advertising\"> var kept = 2;</script><p>y</p>",
        "stop in removal",
    );
}

#[test]
fn the_decoded_size_limit_stops_rewriting_but_not_the_stream() {
    let site = site(POLICY);
    let filler = "<p>lorem ipsum dolor sit amet</p>\n".repeat(40_000); // ~1.3 MB
    let page = format!("<html><body>{TRACKER}{filler}{TRACKER}{filler}</body></html>");
    let expected = page.replacen(TRACKER, INERT, 1);
    for (name, encode, decode) in [
        ("gzip", gzip as fn(&[u8]) -> Vec<u8>, gunzip as fn(&[u8]) -> Vec<u8>),
        ("br", brotli, unbrotli),
        ("zstd", zstd_encode, zstd_decode),
    ] {
        let before = passthrough_count(Passthrough::DecodedLimit);
        let encoded = encode(page.as_bytes());
        let frames: Vec<Bytes> = encoded.chunks(4096).map(Bytes::copy_from_slice).collect();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "text/html".parse().unwrap());
        headers.insert("content-encoding", name.parse().unwrap());
        let run = run_body(&site, granted(&site, &[]), headers, frames, None, 1024 * 1024);
        assert!(run.error.is_none(), "{name}");
        same(&decode(&run.bytes()), expected.as_bytes(), name);
        assert!(passthrough_count(Passthrough::DecodedLimit) > before, "{name}");
        assert_eq!(run.decisions.as_ref().map(Vec::len), Some(1), "{name}");
        assert_eq!(run.headers.get("content-encoding").unwrap(), name);
    }
}
