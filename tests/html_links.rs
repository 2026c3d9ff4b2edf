//! Resource hints of issue 5 not exercised by `tests/html_rewrite.rs`:
//! `<link rel=prefetch>` and `<link rel=dns-prefetch>` (protocol-relative,
//! as sites write them) of a refused category are neutralised (`href` →
//! `data-href`, `data-category`), kept when granted, and left alone for a
//! stylesheet.

mod html_common;

use consentry::decision::{Action, Item};
use html_common::*;

const POLICY: &str = r#"
[policy.default]
[[policy.default.resource]]
match = "connect.facebook.net"
category = "advertising"
"#;

#[test]
fn prefetch_and_dns_prefetch_hints_are_neutralised_by_category() {
    let s = site(POLICY);
    for (page, want) in [
        (
            r#"<link rel="dns-prefetch" href="//connect.facebook.net">"#,
            r#"<link data-category="advertising" rel="dns-prefetch" data-href="//connect.facebook.net">"#,
        ),
        (
            r#"<link rel=prefetch href="https://connect.facebook.net/en_US/fbevents.js">"#,
            r#"<link data-category="advertising" rel=prefetch data-href="https://connect.facebook.net/en_US/fbevents.js">"#,
        ),
        (
            r#"<LINK REL="DNS-Prefetch" HREF="https://connect.facebook.net/">"#,
            r#"<LINK data-category="advertising" REL="DNS-Prefetch" data-HREF="https://connect.facebook.net/">"#,
        ),
    ] {
        let (out, d) = rewrite(&s, granted(&s, &[]), page);
        assert_eq!(out, want, "{page}");
        assert_eq!(d.len(), 1, "{page}: {d:?}");
        assert_eq!((d[0].item, d[0].action), (Item::Link, Action::Block), "{page}");
        assert_eq!(d[0].domain, "connect.facebook.net");

        let (out, d) = rewrite(&s, granted(&s, &["advertising"]), page);
        assert_eq!(out, page, "granted: byte for byte");
        assert_eq!(d[0].action, Action::Allow);
    }
    // A stylesheet is never a tracker hint, whatever its host.
    let css = r#"<link rel="stylesheet" href="https://connect.facebook.net/x.css">"#;
    assert_eq!(rewrite(&s, granted(&s, &[]), css).0, css);
}
