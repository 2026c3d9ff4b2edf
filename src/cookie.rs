//! The request `Cookie` header as browsers send it: `name=value` pairs
//! separated by `;`, possibly split over several header fields (HTTP/2
//! sends one `cookie` field per pair).
//!
//! Parsing borrows from the header bytes; nothing is copied. Browsers are
//! lenient, so this is too: a pair without `=` is a cookie with an empty
//! name (RFC 6265bis §5.6 and Chromium), empty pairs are skipped, and
//! duplicates are kept in order (the origin decides which one wins).

use http::HeaderMap;
use http::header::COOKIE;

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
#[derive(Debug, Clone, Default)]
pub struct CookieJar<'a> {
    pairs: Vec<Pair<'a>>,
}

impl<'a> CookieJar<'a> {
    /// Parses every `Cookie` header of a request. Header values that are not
    /// valid UTF-8 are parsed as far as they are (non-UTF-8 pairs skipped).
    pub fn from_headers(headers: &'a HeaderMap) -> CookieJar<'a> {
        let mut jar = CookieJar::default();
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
        for raw in bytes.split(|&b| b == b';') {
            let Ok(raw) = std::str::from_utf8(raw) else {
                continue;
            };
            let raw = raw.trim_matches([' ', '\t']);
            if raw.is_empty() {
                continue;
            }
            let (name, value) = match raw.find('=') {
                Some(i) => {
                    (raw[..i].trim_end_matches([' ', '\t']), raw[i + 1..].trim_start_matches([' ', '\t']))
                }
                None => ("", raw),
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

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
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
}
