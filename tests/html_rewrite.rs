//! Behaviour of the HTML rewriter: what is neutralised, how, and what is
//! left byte for byte.

mod html_common;

use consentry::decision::{Action, Item};
use consentry::html::{PageRewriter, SCRIPT_WINDOW};
use consentry::response_body::{Passthrough, passthrough_count};
use html_common::*;

const POLICY: &str = r#"
[policy.default]
first_party = ["*.example-cdn.com"]
[[policy.default.resource]]
match = "googletagmanager.com"
category = "analytics"
provider = "Google"
[[policy.default.resource]]
match = "connect.facebook.net"
category = "advertising"
[[policy.default.resource]]
match = "www.facebook.com/tr"
category = "advertising"
[[policy.default.resource]]
match = "https://www.youtube.com/embed/"
category = "advertising"
[[policy.default.resource]]
match = "inline:fbq("
category = "advertising"
[[policy.default.resource]]
match = "inline:gtag("
category = "analytics"
[[policy.default.resource]]
match = "js.stripe.com"
category = "necessary"
"#;

fn default_site() -> std::sync::Arc<consentry::route::Site> {
    site(POLICY)
}

#[test]
fn third_party_scripts_are_neutralised_by_category() {
    let s = default_site();
    let page = r#"<script src="https://www.googletagmanager.com/gtag/js?id=G-1" async></script>"#;
    let (out, d) = rewrite(&s, granted(&s, &[]), page);
    assert_eq!(
        out,
        r#"<script type="text/plain" data-category="analytics" src="https://www.googletagmanager.com/gtag/js?id=G-1" async></script>"#
    );
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].item, Item::Script);
    assert_eq!(d[0].action, Action::Block);
    assert_eq!(d[0].name, "https://www.googletagmanager.com/gtag/js", "query is left out");
    assert_eq!(d[0].domain, "www.googletagmanager.com");
    assert_eq!(d[0].category, s.policy.categories.id("analytics"));
    assert!(d[0].rule.starts_with("googletagmanager.com (config line"), "{}", d[0].rule);

    let (out, d) = rewrite(&s, granted(&s, &["analytics"]), page);
    assert_eq!(out, page);
    assert_eq!(d[0].action, Action::Allow);

    // Necessary resources always pass.
    let stripe = r#"<script src="https://js.stripe.com/v3"></script>"#;
    assert_eq!(rewrite(&s, granted(&s, &[]), stripe).0, stripe);
}

#[test]
fn first_party_scripts_pass_without_decisions() {
    let s = default_site();
    let page = concat!(
        r#"<script src="/js/app.js"></script><script src="app2.js"></script>"#,
        r#"<script src="https://www.example.com/x.js"></script><script src="//example.com/y.js"></script>"#,
        r#"<script src="https://assets.example-cdn.com/z.js"></script><script src="data:text/javascript,1"></script>"#,
        r#"<script src=""></script><script src="HTTPS://EXAMPLE.COM./w.js"></script>"#
    );
    let (out, d) = rewrite(&s, granted(&s, &[]), page);
    assert_eq!(out, page);
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn unknown_third_party_follows_the_policy_default() {
    let s = default_site();
    let page = r#"<script src="https://cdn.unknown-tracker.io/t.js"></script>"#;
    let (out, d) = rewrite(&s, granted(&s, &["analytics", "advertising", "functional"]), page);
    assert_eq!(
        out,
        r#"<script type="text/plain" data-category="unclassified" src="https://cdn.unknown-tracker.io/t.js"></script>"#
    );
    assert_eq!(d[0].category, None);
    assert_eq!(&*d[0].rule, "unknown_third_party default");
    let allow =
        site(&POLICY.replace("[policy.default]\n", "[policy.default]\nunknown_third_party = \"allow\"\n"));
    let (out, d) = rewrite(&allow, granted(&allow, &[]), page);
    assert_eq!(out, page);
    assert_eq!(d[0].action, Action::Allow);
}

#[test]
fn protocol_relative_and_base_href_resolve() {
    let s = default_site();
    let none = granted(&s, &[]);
    let (out, _) = rewrite(&s, none, r#"<script src="//connect.facebook.net/en_US/fbevents.js"></script>"#);
    assert!(out.contains(r#"data-category="advertising""#), "{out}");
    // Backslashes count as slashes in URLs.
    let (out, _) = rewrite(&s, none, r#"<script src="\\connect.facebook.net/en_US/fbevents.js"></script>"#);
    assert!(out.contains(r#"data-category="advertising""#), "{out}");
    let (out, _) = rewrite(&s, none, "<script src=\"/\t/connect.facebook.net/x.js\"></script>");
    assert!(out.contains(r#"data-category="advertising""#), "{out}");

    let page = r#"<script src="a.js"></script><base href="https://connect.facebook.net/en_US/"><script src="fbevents.js"></script><base href="/"><script src="b.js"></script>"#;
    let (out, d) = rewrite(&s, none, page);
    assert_eq!(
        out,
        r#"<script src="a.js"></script><base href="https://connect.facebook.net/en_US/"><script type="text/plain" data-category="advertising" src="fbevents.js"></script><base href="/"><script type="text/plain" data-category="advertising" src="b.js"></script>"#,
        "first <base> wins for every later URL"
    );
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].name, "https://connect.facebook.net/en_US/fbevents.js");
    // A first-party base keeps relative URLs first party.
    let page = r#"<base href="https://static.example-cdn.com/"><script src="x.js"></script>"#;
    assert_eq!(rewrite(&s, none, page).0, page);
}

#[test]
fn uppercase_and_unquoted_attributes() {
    let s = default_site();
    let page = "<SCRIPT SRC=https://www.googletagmanager.com/gtm.js TYPE=text/javascript defer></SCRIPT>";
    let (out, _) = rewrite(&s, granted(&s, &[]), page);
    assert_eq!(
        out,
        r#"<SCRIPT type="text/plain" data-category="analytics" SRC=https://www.googletagmanager.com/gtm.js data-TYPE=text/javascript defer></SCRIPT>"#
    );
    let page = "<script\nsrc='https://connect.facebook.net/x.js'\ntype='module'/>";
    let (out, _) = rewrite(&s, granted(&s, &[]), page);
    assert_eq!(
        out,
        "<script type=\"text/plain\" data-category=\"advertising\"\nsrc='https://connect.facebook.net/x.js'\ndata-type='module'/>"
    );
}

const FBQ: &str = "<script>!function(f,b,e,v,n,t,s){if(f.fbq)return;n=f.fbq=function(){}}(window);\nfbq('init', '1234');fbq('track', 'PageView');</script>";

#[test]
fn inline_scripts_are_classified_by_signature() {
    let s = default_site();
    let none = granted(&s, &[]);
    let (out, d) = rewrite(&s, none, FBQ);
    assert_eq!(out, FBQ.replacen("<script>", r#"<script type="text/plain" data-category="advertising">"#, 1));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].item, Item::InlineScript);
    assert_eq!(d[0].name, "fbq(");
    assert_eq!(d[0].domain, "www.example.com");
    assert_eq!(d[0].action, Action::Block);

    let gtag = "<script type=\"text/javascript\">window.dataLayer=[];function gtag(){dataLayer.push(arguments)}gtag('js',new Date());</script>";
    let (out, d) = rewrite(&s, granted(&s, &["analytics"]), gtag);
    assert_eq!(out, gtag);
    assert_eq!(d[0].action, Action::Allow);
    let (out, _) = rewrite(&s, none, gtag);
    assert_eq!(
        out,
        gtag.replacen(
            "<script type=",
            r#"<script type="text/plain" data-category="analytics" data-type="#,
            1
        )
    );

    // Several signatures: blocked if any is refused.
    let both = "<script>gtag('js'); fbq('init');</script>";
    let (out, d) = rewrite(&s, granted(&s, &["analytics"]), both);
    assert!(out.starts_with(r#"<script type="text/plain" data-category="advertising">"#), "{out}");
    assert_eq!(d[0].name, "fbq(");

    // No signature: first-party code, untouched and unrecorded.
    let app = "<script>console.log('fbq');</script>";
    let (out, d) = rewrite(&s, none, app);
    assert_eq!(out, app);
    assert!(d.is_empty());
}

#[test]
fn non_javascript_and_already_neutralised_markup_is_left_alone() {
    let s = default_site();
    let page = concat!(
        r#"<script type="application/ld+json">{"fbq(": "gtag("}</script>"#,
        r#"<script type="text/plain" data-category="analytics" src="https://www.googletagmanager.com/gtag/js"></script>"#,
        r#"<script type="text/plain" data-category="advertising">fbq('init')</script>"#,
        r#"<script type="text/x-consent">fbq('init')</script>"#,
        r#"<script type="importmap">{"imports":{"a":"https://connect.facebook.net/a.js"}}</script>"#,
        r#"<script language="vbscript">fbq(</script>"#,
        r#"<iframe data-src="https://www.youtube.com/embed/x" data-category="advertising"></iframe>"#,
        r#"<iframe src="about:blank" data-cookieblock-src="https://www.youtube.com/embed/x"></iframe>"#,
        r#"<img data-src="https://www.facebook.com/tr?id=1" width=1 height=1>"#,
        r#"<link rel="stylesheet" href="https://www.googletagmanager.com/x.css">"#,
    );
    let (out, d) = rewrite(&s, granted(&s, &[]), page);
    assert_eq!(out, page);
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn scripts_inside_comments_and_script_text_are_not_elements() {
    let s = default_site();
    let page = concat!(
        "<!-- <script src=\"https://www.googletagmanager.com/gtm.js\"></script> -->",
        "<script>document.write('<script src=\"https://connect.facebook.net/x.js\"><\\/script>');</script>",
        "<script><!--<script>x</script>--></script>",
        "<p>after</p>"
    );
    let (out, d) = rewrite(&s, granted(&s, &[]), page);
    assert_eq!(out, page);
    assert!(d.is_empty(), "{d:?}");
    // A signature inside another script's text classifies that script.
    let page = "<script>document.write('<script>fbq(\"init\")<\\/script>');</script>";
    let (out, d) = rewrite(&s, granted(&s, &[]), page);
    assert!(
        out.starts_with(r#"<script type="text/plain" data-category="advertising">document.write"#),
        "{out}"
    );
    assert_eq!(d.len(), 1);
}

#[test]
fn a_signature_split_across_any_chunk_boundary_is_found() {
    let s = default_site();
    let page = format!("<html><body><p>x</p>{FBQ}<p>y</p></body></html>");
    let whole = rewrite_with(options(&s, granted(&s, &[])), page.as_bytes(), usize::MAX);
    assert!(String::from_utf8_lossy(&whole.0).contains("data-category=\"advertising\""));
    for chunk in 1..page.len() {
        let got = rewrite_with(options(&s, granted(&s, &[])), page.as_bytes(), chunk);
        assert_eq!(got.0, whole.0, "chunk size {chunk}");
        assert_eq!(got.1, whole.1, "chunk size {chunk}");
    }
}

#[test]
fn a_tag_split_at_every_offset_gives_the_same_output() {
    let s = default_site();
    let page = concat!(
        "<!doctype html><html><head><base href=\"https://www.example.com/\">",
        "<script SRC=\"https://www.googletagmanager.com/gtag/js?id=1\" async></script>",
        "<link rel=\"preconnect\" href=\"https://connect.facebook.net\">",
        "<script>fbq('init', '1');</script></head><body>",
        "<iframe src=\"https://www.youtube.com/embed/abc\" allowfullscreen></iframe>",
        "<noscript><img height=\"1\" width=\"1\" src=\"https://www.facebook.com/tr?id=1&amp;ev=PageView\"/></noscript>",
        "<img src=/logo.png srcset=\"/a.png 1x, https://www.facebook.com/tr?id=2 2x\">",
        "</body></html>"
    );
    let none = granted(&s, &[]);
    let (whole, decisions) = rewrite_with(options(&s, none), page.as_bytes(), usize::MAX);
    assert_eq!(decisions.len(), 6, "{decisions:?}");
    for split in 0..=page.len() {
        let mut p = PageRewriter::new(options(&s, none));
        let mut out = Vec::new();
        p.write(&page.as_bytes()[..split], &mut out);
        p.write(&page.as_bytes()[split..], &mut out);
        p.finish(&mut out);
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&whole), "split at {split}");
        assert_eq!(p.take_decisions(), decisions, "split at {split}");
    }
}

#[test]
fn iframes_images_links_embeds_and_noscript() {
    let s = default_site();
    let none = granted(&s, &[]);
    let cases = [
        (
            r#"<iframe src="https://www.youtube.com/embed/xyz" width=560></iframe>"#,
            r#"<iframe data-category="advertising" data-src="https://www.youtube.com/embed/xyz" width=560></iframe>"#,
            Item::Iframe,
        ),
        (
            r#"<img src="https://www.facebook.com/tr?id=1" srcset="https://www.facebook.com/tr?id=1&x=2 2x" alt="">"#,
            r#"<img data-category="advertising" data-src="https://www.facebook.com/tr?id=1" data-srcset="https://www.facebook.com/tr?id=1&x=2 2x" alt="">"#,
            Item::Image,
        ),
        (
            r#"<img src="https://pixel.unknown.io/p.gif" width="1" height="1">"#,
            r#"<img data-category="unclassified" data-src="https://pixel.unknown.io/p.gif" width="1" height="1">"#,
            Item::Image,
        ),
        (
            r#"<link rel="preconnect" href="https://www.googletagmanager.com">"#,
            r#"<link data-category="analytics" rel="preconnect" data-href="https://www.googletagmanager.com">"#,
            Item::Link,
        ),
        (
            r#"<link rel=modulepreload href="https://cdn.unknown.io/m.js">"#,
            r#"<link data-category="unclassified" rel=modulepreload data-href="https://cdn.unknown.io/m.js">"#,
            Item::Link,
        ),
        (
            r#"<embed src="https://www.youtube.com/embed/v" type="video/mp4">"#,
            r#"<embed data-category="advertising" data-src="https://www.youtube.com/embed/v" type="video/mp4">"#,
            Item::Embed,
        ),
        (
            r#"<object data="https://cdn.unknown.io/x.swf"><p>fallback</p></object>"#,
            r#"<object data-category="unclassified" data-data="https://cdn.unknown.io/x.swf"><p>fallback</p></object>"#,
            Item::Embed,
        ),
        (
            r#"<noscript><img height="1" width="1" style="display:none" src="https://www.facebook.com/tr?id=1&ev=PageView&noscript=1"/></noscript>"#,
            r#"<noscript><img data-category="advertising" height="1" width="1" style="display:none" data-src="https://www.facebook.com/tr?id=1&ev=PageView&noscript=1"/></noscript>"#,
            Item::Noscript,
        ),
        (
            r#"<noscript><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-1" height="0" width="0"></iframe></noscript>"#,
            r#"<noscript><iframe data-category="analytics" data-src="https://www.googletagmanager.com/ns.html?id=GTM-1" height="0" width="0"></iframe></noscript>"#,
            Item::Noscript,
        ),
    ];
    for (input, expected, item) in cases {
        let (out, d) = rewrite(&s, none, input);
        assert_eq!(out, expected);
        assert_eq!(d.len(), 1, "{input}: {d:?}");
        assert_eq!(d[0].item, item, "{input}");
        assert_eq!(d[0].action, Action::Block, "{input}");
    }
    // Content passes: unknown images and hints, stylesheets, first party.
    let page = concat!(
        r#"<img src="https://images.unknown-cdn.io/hero.jpg" width="800">"#,
        r#"<link rel="preconnect" href="https://fonts.unknown.io">"#,
        r#"<link rel="preload stylesheet" href="https://www.googletagmanager.com/x.css">"#,
        r#"<noscript><img src="/pixel.gif"></noscript><noscript></noscript>"#,
        r#"<iframe src="/embed"></iframe><iframe srcdoc="<p>x</p>"></iframe>"#,
    );
    let (out, d) = rewrite(&s, none, page);
    assert_eq!(out, page);
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn removal_mode() {
    let s = site(&POLICY.replace("[policy.default]\n", "[policy.default]\nneutralise = \"remove\"\n"));
    let none = granted(&s, &[]);
    let page = concat!(
        "<p>a</p><script src=\"https://www.googletagmanager.com/gtm.js\"></script>",
        "<p>b</p>",
        "<script>var x=1; fbq('init');</script>",
        "<p>c</p><iframe src=\"https://www.youtube.com/embed/x\">no frames</iframe>",
        "<img src=\"https://www.facebook.com/tr?id=1\"><link rel=preconnect href=https://connect.facebook.net>",
        "<object data=\"https://cdn.unknown.io/x.swf\"><p>fallback</p></object>",
        "<noscript><img src=\"https://www.facebook.com/tr?id=2\"></noscript><p>d</p>"
    );
    for chunk in [1, 3, 7, 64, usize::MAX] {
        let (out, d) = rewrite_with(options(&s, none), page.as_bytes(), chunk);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<p>a</p><p>b</p><p>c</p><p>fallback</p><noscript></noscript><p>d</p>",
            "chunk {chunk}"
        );
        assert_eq!(d.len(), 7, "{d:?}");
        assert!(d.iter().all(|d| d.action == Action::Block));
    }
}

#[test]
fn report_only_changes_nothing_but_records() {
    let s = site(&POLICY.replace("[policy.default]\n", "[policy.default]\nmode = \"report-only\"\n"));
    let page = format!(
        "{FBQ}<script src=\"https://www.googletagmanager.com/gtm.js\"></script><noscript><img src=\"https://www.facebook.com/tr?id=2\"></noscript>"
    );
    for chunk in [1, 5, usize::MAX] {
        let (out, d) = rewrite_with(options(&s, granted(&s, &[])), page.as_bytes(), chunk);
        assert_eq!(out, page.as_bytes());
        assert_eq!(d.len(), 3);
        assert!(d.iter().all(|d| d.action == Action::Block), "{d:?}");
    }
}

#[test]
fn latin1_pages_keep_their_bytes_and_get_an_encoded_banner() {
    let s = default_site();
    // "café" in windows-1252, a refused script, then the body end.
    let mut page: Vec<u8> =
        b"<html><head><title>caf\xe9</title></head><body><p title=\"\xe9t\xe9\">\xe0 bient\xf4t</p>".to_vec();
    page.extend_from_slice(
        b"<script src=\"https://connect.facebook.net/fr_FR/fbevents.js\"></script></BODY></html>",
    );
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "text/html; charset=ISO-8859-1".parse().unwrap());
    let run = run_body(
        &s,
        granted(&s, &[]),
        headers,
        vec![page.clone().into()],
        Some("<div>Cookies? \u{e9}\u{20ac}\u{1f36a}</div>"),
        1 << 30,
    );
    let out = run.bytes();
    let mut expected = page.clone();
    let at = expected.windows(7).position(|w| w == b"<script").unwrap() + 7;
    expected.splice(at..at, b" type=\"text/plain\" data-category=\"advertising\"".iter().copied());
    let body_end = expected.windows(7).position(|w| w == b"</BODY>").unwrap();
    expected.splice(body_end..body_end, b"<div>Cookies? \xe9\x80&#127850;</div>".iter().copied());
    assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&expected));
    assert_eq!(out, expected);

    // The same page declaring its charset in <meta> only.
    let mut page2 = b"<meta charset=\"windows-1252\">".to_vec();
    page2.extend_from_slice(&page);
    let (out, _) = rewrite_with(
        consentry::html::PageOptions { banner: Some("\u{e9}".into()), ..options(&s, granted(&s, &[])) },
        &page2,
        7,
    );
    assert!(out.windows(8).any(|w| w == b"\xe9</BODY>"), "{}", String::from_utf8_lossy(&out));
}

#[test]
fn utf16_pages_pass_through_and_are_counted() {
    let s = default_site();
    let text = "<script src=\"https://connect.facebook.net/x.js\"></script>";
    let mut page = vec![0xff, 0xfe];
    for u in text.encode_utf16() {
        page.extend_from_slice(&u.to_le_bytes());
    }
    let before = passthrough_count(Passthrough::AsciiIncompatibleCharset);
    let (out, d) = rewrite_with(options(&s, granted(&s, &[])), &page, 5);
    assert_eq!(out, page);
    assert!(d.is_empty());
    assert!(passthrough_count(Passthrough::AsciiIncompatibleCharset) > before);

    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "text/html; charset=utf-16le".parse().unwrap());
    let before = passthrough_count(Passthrough::AsciiIncompatibleCharset);
    let run = run_body(&s, granted(&s, &[]), headers, vec![page[2..].to_vec().into()], None, 1 << 30);
    assert_eq!(run.bytes(), page[2..]);
    assert_eq!(run.done_calls, 1);
    assert!(passthrough_count(Passthrough::AsciiIncompatibleCharset) > before);
}

#[test]
fn the_banner_goes_before_the_first_body_end_or_at_the_end_of_a_document() {
    let s = default_site();
    let with = |page: &str, chunk: usize| {
        let o = consentry::html::PageOptions {
            banner: Some("<div id=cb></div>".into()),
            ..options(&s, granted(&s, &[]))
        };
        String::from_utf8(rewrite_with(o, page.as_bytes(), chunk).0).unwrap()
    };
    for chunk in [1, 4, usize::MAX] {
        assert_eq!(
            with("<html><body><p>x</p></body></html>", chunk),
            "<html><body><p>x</p><div id=cb></div></body></html>"
        );
        // A document whose </body> (or whole body) is missing: at the end.
        assert_eq!(with("<html><p>no body end", chunk), "<html><p>no body end<div id=cb></div>");
        assert_eq!(with("<body><p>cut short", chunk), "<body><p>cut short<div id=cb></div>");
        assert_eq!(
            with("<body>a</body><body>b</body>", chunk),
            "<body>a<div id=cb></div></body><body>b</body>"
        );
        // Neither <html> nor <body>: a fragment (htmx, XHR, an include
        // served as text/html), never given a banner.
        assert_eq!(with("<p>no body</p>", chunk), "<p>no body</p>");
        assert_eq!(with("<tr><td>row</td></tr>", chunk), "<tr><td>row</td></tr>");
        assert_eq!(with("<!-- <html> --><div>x</div>", chunk), "<!-- <html> --><div>x</div>");
        assert_eq!(with("", chunk), "");
    }
}

#[test]
fn allowed_inline_scripts_get_the_csp_nonce() {
    let s = default_site();
    let o = consentry::html::PageOptions {
        nonce: Some("n0nce".into()),
        ..options(&s, granted(&s, &["analytics"]))
    };
    let page = "<script>gtag('js')</script><script>fbq('x')</script><script nonce=\"own\">a()</script><script src=\"/app.js\"></script>";
    let (out, _) = rewrite_with(o, page.as_bytes(), 3);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "<script nonce=\"n0nce\">gtag('js')</script><script type=\"text/plain\" data-category=\"advertising\">fbq('x')</script><script nonce=\"own\">a()</script><script src=\"/app.js\"></script>"
    );
    // Without signatures in the policy, every inline script gets it at once.
    let plain = site("[policy.default]\n");
    let o =
        consentry::html::PageOptions { nonce: Some("n0nce".into()), ..options(&plain, granted(&plain, &[])) };
    let (out, _) = rewrite_with(o, b"<script>a()</script>", 1);
    assert_eq!(out, b"<script nonce=\"n0nce\">a()</script>");
}

#[test]
fn huge_inline_scripts_are_released_after_the_window() {
    let s = default_site();
    let filler = "x".repeat(SCRIPT_WINDOW + 100_000);
    let page = format!("<script>{filler}fbq('init')</script><p>after</p>");
    for chunk in [4096, 100_000] {
        let (out, d) = rewrite_with(options(&s, granted(&s, &[])), page.as_bytes(), chunk);
        assert!(out == page.as_bytes(), "released unchanged (chunk {chunk})");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].action, Action::Allow, "not neutralised, and recorded as such");
        assert!(d[0].rule.contains("after the classification window"), "{}", d[0].rule);
    }
    // Early in a big script: neutralised as soon as seen.
    let page = format!("<script>fbq('init'){filler}</script>");
    let (out, d) = rewrite_with(options(&s, granted(&s, &[])), page.as_bytes(), 4096);
    assert!(out.starts_with(b"<script type=\"text/plain\" data-category=\"advertising\">fbq"));
    assert_eq!(out.len(), page.len() + " type=\"text/plain\" data-category=\"advertising\"".len());
    assert_eq!(d[0].action, Action::Block);
}

#[test]
fn unclosed_elements_at_the_end_of_input() {
    let s = default_site();
    let none = granted(&s, &[]);
    let (out, d) = rewrite(&s, none, "<p>x</p><script>fbq('init')");
    assert_eq!(out, "<p>x</p><script type=\"text/plain\" data-category=\"advertising\">fbq('init')");
    assert_eq!(d.len(), 1);
    // The rest of the document is the noscript's content: rewritten.
    let (out, _) = rewrite(&s, none, "<noscript><img src=\"https://www.facebook.com/tr\">");
    assert_eq!(out, "<noscript><img data-category=\"advertising\" data-src=\"https://www.facebook.com/tr\">");
    let (out, _) = rewrite(&s, none, "<script src=\"https://connect.facebook.net/x.js\"");
    assert_eq!(out, "<script src=\"https://connect.facebook.net/x.js\"");
}

/// A held script is searched once per `write` (not per piece lol_html
/// hands over), but still released as soon as the write that brings its
/// refused signature ends: the page keeps streaming while the rest of a
/// long tracker script is still on its way. A signature split between
/// two writes is found too.
#[test]
fn held_scripts_are_released_at_the_end_of_the_write_that_decides_them() {
    let s = default_site();
    let head = "<p>before</p><script>var a = 1; fb";
    let sig = "q('init', '1');";
    let rest = "x".repeat(20_000);
    let mut page = PageRewriter::new(options(&s, granted(&s, &[])));
    let mut out = Vec::new();
    page.write(head.as_bytes(), &mut out);
    assert_eq!(out, b"<p>before</p>", "the script is held while undecided");
    out.clear();
    page.write(sig.as_bytes(), &mut out);
    let text = String::from_utf8(out.clone()).unwrap();
    assert_eq!(
        text, "<script type=\"text/plain\" data-category=\"advertising\">var a = 1; fbq('init', '1');",
        "released, neutralised, at the end of the write that completed the signature"
    );
    out.clear();
    page.write(rest.as_bytes(), &mut out);
    assert_eq!(out.len(), rest.len(), "the rest of the script streams through");
    out.clear();
    page.write(b"</script><p>after</p>", &mut out);
    page.finish(&mut out);
    assert_eq!(out, b"</script><p>after</p>");
    let d = page.take_decisions();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].item, d[0].action), (Item::InlineScript, Action::Block));

    // An allowed script with no signature is held to its end tag, then
    // released unchanged: same bytes at every chunk size.
    let plain = "<script>var a = 1;</script><script>fbq('x')</script><p>x</p>";
    for chunk in [1, 2, 3, 7, 64, usize::MAX] {
        let (out, d) = rewrite_with(options(&s, granted(&s, &[])), plain.as_bytes(), chunk);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<script>var a = 1;</script><script type=\"text/plain\" data-category=\"advertising\">fbq('x')</script><p>x</p>",
            "chunk {chunk}"
        );
        assert_eq!(d.len(), 1, "chunk {chunk}: {d:?}");
    }
}
