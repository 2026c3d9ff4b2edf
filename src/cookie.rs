//! The request `Cookie` header as browsers send it: `name=value` pairs
//! separated by `;`, possibly split over several header fields (HTTP/2
//! sends one `cookie` field per pair).
//!
//! Parsing borrows from the header bytes; nothing is copied. Browsers are
//! lenient, so this is too: a pair without `=` is a cookie with an empty
//! name (RFC 6265bis §5.6 and Chromium), empty pairs are skipped, and
//! duplicates are kept in order (the origin decides which one wins).
//!
//! [`raw_pairs`] is the same split over bytes, for the request filter: it
//! must keep (or drop) every pair as received, including pairs that are not
//! UTF-8, which [`CookieJar`] skips.

use std::borrow::Cow;

use http::HeaderMap;
use http::header::COOKIE;

/// [`String::from_utf8_lossy`], through `str::from_utf8`'s faster ASCII
/// path first: cookie names and domains are nearly always valid (a
/// tenth of the per-request decision's instructions went to the std
/// function's byte-at-a-time check; callgrind, benches/headers.rs).
pub fn utf8_lossy(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// `part` (a subslice of the bytes `whole` was checked from) as text:
/// borrowed from `whole` when that is UTF-8, since a part cut at ASCII
/// bytes of a valid text is one; else [`utf8_lossy`] on the part alone.
/// Callers check a header once instead of each name and domain in it.
pub fn utf8_part<'a>(whole: Option<&'a str>, part: &'a [u8]) -> Cow<'a, str> {
    match whole.and_then(|w| part_of(w, part)) {
        Some(text) => Cow::Borrowed(text),
        None => utf8_lossy(part),
    }
}

/// One `name=value` pair as it appeared on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair<'a> {
    /// The name, whitespace-trimmed; empty for a pair without `=`.
    pub name: &'a str,
    /// The value, whitespace-trimmed, quotes kept.
    pub value: &'a str,
    /// The pair's exact bytes (trimmed of surrounding whitespace).
    pub raw: &'a str,
}

/// Every cookie pair of a request, in order.
///
/// Built once per request: the consent reader looks its cookies up in the
/// UTF-8 [`pairs`](CookieJar::pairs), and the request filter judges every
/// pair as received ([`raw`](CookieJar::raw), including those that are not
/// UTF-8), so neither splits the headers again.
#[derive(Debug, Clone, Default)]
pub struct CookieJar<'a> {
    pairs: Vec<Pair<'a>>,
    raw: Vec<RawAt<'a>>,
    headers: Vec<Option<&'a str>>,
}

/// A [`RawPair`] of a jar, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAt<'a> {
    /// The pair.
    pub pair: RawPair<'a>,
    /// Which `Cookie` header it is in (0 for the first).
    pub header: usize,
    /// Where [`RawPair::raw`] is in that header's bytes.
    pub at: std::ops::Range<usize>,
}

impl<'a> CookieJar<'a> {
    /// Parses every `Cookie` header of a request. Header values that are not
    /// valid UTF-8 are parsed as far as they are: their non-UTF-8 pairs are
    /// left out of [`pairs`](CookieJar::pairs), kept in
    /// [`raw`](CookieJar::raw).
    pub fn from_headers(headers: &'a HeaderMap) -> CookieJar<'a> {
        // At most one pair per `;` and header: sized once instead of grown
        // (`memchr` counts them 32 bytes at a time; a filtered byte count
        // cost ~1.6 k instructions for two 350-byte headers).
        let most: usize =
            headers.get_all(COOKIE).iter().map(|v| memchr::memchr_iter(b';', v.as_bytes()).count() + 1).sum();
        let mut jar = CookieJar {
            pairs: Vec::with_capacity(most),
            raw: Vec::with_capacity(most),
            headers: Vec::with_capacity(2),
        };
        for value in headers.get_all(COOKIE) {
            jar.extend(value.as_bytes());
        }
        jar
    }

    /// Parses one header value.
    pub fn parse(value: &'a str) -> CookieJar<'a> {
        let mut jar = CookieJar::default();
        jar.extend(value.as_bytes());
        jar
    }

    fn extend(&mut self, bytes: &'a [u8]) {
        // The header is checked once (one long check runs the ASCII fast
        // path; a check per pair cost ~115 instructions each): its pairs,
        // names and values are parts of it cut at ASCII bytes (`;`, `=`,
        // spaces), so they are text too. A header that is not UTF-8 is
        // checked pair by pair, and the pairs that are not are skipped.
        let whole = std::str::from_utf8(bytes).ok();
        let header = self.headers.len();
        self.headers.push(whole);
        for pair in raw_pairs(bytes) {
            let at = pair.raw.as_ptr() as usize - bytes.as_ptr() as usize;
            self.raw.push(RawAt { pair, header, at: at..at + pair.raw.len() });
            let raw = match whole {
                Some(whole) => part_of(whole, pair.raw),
                None => std::str::from_utf8(pair.raw).ok(),
            };
            let Some(raw) = raw else {
                continue;
            };
            let (Some(name), Some(value)) = (part_of(raw, pair.name), part_of(raw, pair.value)) else {
                continue;
            };
            self.pairs.push(Pair { name, value, raw });
        }
    }

    /// The first value of the cookie with this name.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs.iter().find(|p| p.name == name).map(|p| p.value)
    }

    /// Every pair in order.
    pub fn pairs(&self) -> &[Pair<'a>] {
        &self.pairs
    }

    /// Every pair as received, UTF-8 or not, in order.
    pub fn raw(&self) -> &[RawAt<'a>] {
        &self.raw
    }

    /// Per `Cookie` header, in order: its text when it is UTF-8 (one
    /// check per header; a name cut from it at ASCII bytes is text too).
    pub fn headers(&self) -> &[Option<&'a str>] {
        &self.headers
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// `part` (a subslice of `whole`'s bytes) as a `&str`, or `None` when it is
/// not a part of `whole` or does not fall on character boundaries.
pub(crate) fn part_of<'a>(whole: &'a str, part: &'a [u8]) -> Option<&'a str> {
    if part.is_empty() {
        return Some("");
    }
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let text = whole.get(start..start.checked_add(part.len())?)?;
    (text.as_ptr() == part.as_ptr()).then_some(text)
}

/// One `name=value` pair as bytes, exactly as it appeared on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPair<'a> {
    /// The name, trimmed of spaces and tabs; empty for a pair without `=`.
    pub name: &'a [u8],
    /// The value, trimmed, quotes kept.
    pub value: &'a [u8],
    /// The pair's exact bytes, trimmed of surrounding spaces and tabs.
    pub raw: &'a [u8],
}

fn trim_wsp(s: &[u8]) -> &[u8] {
    trim_end_wsp(trim_start_wsp(s))
}

fn trim_start_wsp(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

fn trim_end_wsp(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// `bytes.split(|&b| b == b';')`, with `memchr` finding each `;` instead
/// of a byte-at-a-time loop (the request filter, the jar and a rebuild
/// each split every `Cookie` header).
fn segments(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(bytes);
    std::iter::from_fn(move || {
        let s = rest?;
        Some(match memchr::memchr(b';', s) {
            Some(i) => {
                rest = Some(&s[i + 1..]);
                &s[..i]
            }
            None => {
                rest = None;
                s
            }
        })
    })
}

/// The pairs of one `Cookie` header value, in order; empty pairs skipped.
/// A pair without `=` has an empty name and the pair as its value, as
/// browsers send a nameless cookie.
pub fn raw_pairs(bytes: &[u8]) -> impl Iterator<Item = RawPair<'_>> {
    segments(bytes).filter_map(|raw| {
        let raw = trim_wsp(raw);
        if raw.is_empty() {
            return None;
        }
        // `raw` is trimmed: the name can only end, the value only start,
        // with blanks.
        let (name, value) = match memchr::memchr(b'=', raw) {
            Some(i) => (trim_end_wsp(&raw[..i]), trim_start_wsp(&raw[i + 1..])),
            None => (&raw[..0], raw),
        };
        Some(RawPair { name, value, raw })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn pairs_in_order_across_headers() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; b=2;;  c = 3 "));
        headers.append(COOKIE, HeaderValue::from_static("novalue; a=4"));
        let jar = CookieJar::from_headers(&headers);
        let names: Vec<_> = jar.pairs().iter().map(|p| (p.name, p.value)).collect();
        assert_eq!(names, vec![("a", "1"), ("b", "2"), ("c", "3"), ("", "novalue"), ("a", "4")]);
        assert_eq!(jar.get("a"), Some("1"));
        assert_eq!(jar.pairs()[2].raw, "c = 3");
    }

    #[test]
    fn raw_pairs_keep_bytes() {
        let pairs: Vec<_> = raw_pairs(b" a=1;;b = x\xff ;\t;nameless; =v ;c=").collect();
        let got: Vec<_> = pairs.iter().map(|p| (p.name, p.value, p.raw)).collect();
        assert_eq!(
            got,
            vec![
                (&b"a"[..], &b"1"[..], &b"a=1"[..]),
                (b"b", b"x\xff", b"b = x\xff"),
                (b"", b"nameless", b"nameless"),
                (b"", b"v", b"=v"),
                (b"c", b"", b"c="),
            ]
        );
        assert_eq!(raw_pairs(b"").count(), 0);
        assert_eq!(raw_pairs(b" ; ;").count(), 0);
        // The jar skips the non-UTF-8 pair but keeps the rest.
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_bytes(b"a=1; b=x\xff; c=3").unwrap());
        let jar = CookieJar::from_headers(&headers);
        assert_eq!(jar.pairs().iter().map(|p| p.name).collect::<Vec<_>>(), vec!["a", "c"]);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn offset(outer: &[u8], inner: &[u8]) -> usize {
        inner.as_ptr() as usize - outer.as_ptr() as usize
    }

    proptest! {
        /// Every pair is a piece of the header, in order, between `;`s,
        /// trimmed, never empty; name and value are pieces of the pair; and
        /// the jar holds exactly the UTF-8 pairs.
        #[test]
        fn pairs_are_pieces_of_the_header_in_order(bytes in proptest::collection::vec(
            prop_oneof![Just(b';'), Just(b'='), Just(b' '), Just(b'\t'), Just(b'"'), any::<u8>()], 0..200)
        ) {
            let pairs: Vec<RawPair<'_>> = raw_pairs(&bytes).collect();
            // The same pieces, at the same places, as `split` gives.
            let split: Vec<&[u8]> = bytes.split(|&b| b == b';').collect();
            let mine: Vec<&[u8]> = segments(&bytes).collect();
            prop_assert_eq!(
                mine.iter().map(|s| (offset(&bytes, s), s.len())).collect::<Vec<_>>(),
                split.iter().map(|s| (offset(&bytes, s), s.len())).collect::<Vec<_>>()
            );
            let segments = bytes.split(|&b| b == b';').filter(|s| !trim_wsp(s).is_empty()).count();
            prop_assert_eq!(pairs.len(), segments);
            let mut at = 0;
            for p in &pairs {
                let start = offset(&bytes, p.raw);
                prop_assert!(start >= at && start + p.raw.len() <= bytes.len());
                at = start + p.raw.len();
                prop_assert!(!p.raw.is_empty() && !p.raw.contains(&b';'));
                prop_assert_eq!(trim_wsp(p.raw), p.raw);
                for part in [p.name, p.value] {
                    let o = offset(&bytes, part);
                    prop_assert!(part.is_empty() || (o >= start && o + part.len() <= at));
                }
                match p.raw.iter().position(|&b| b == b'=') {
                    Some(i) => {
                        prop_assert_eq!(p.name, trim_wsp(&p.raw[..i]));
                        prop_assert_eq!(p.value, trim_wsp(&p.raw[i + 1..]));
                    }
                    None => prop_assert!(p.name.is_empty() && p.value == p.raw),
                }
            }
            let mut headers = HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_bytes(&bytes) {
                headers.append(COOKIE, v);
                let utf8 = pairs.iter().filter(|p| std::str::from_utf8(p.raw).is_ok()).count();
                prop_assert_eq!(CookieJar::from_headers(&headers).len(), utf8);
            }
        }
    }
}
