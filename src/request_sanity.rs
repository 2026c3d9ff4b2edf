//! Stage 1½, **request sanity**: refuse request heads whose framing or
//! routing a hardened proxy would not trust, before any other stage reads
//! them.
//!
//! hyper's HTTP/1 parser already refuses most malformed heads with 400
//! (bad bytes in names or values, obs-fold, bare CR/LF, a missing colon,
//! unparsable or differing `Content-Length`s, `Transfer-Encoding` on
//! HTTP/1.0, a final coding other than `chunked`) and bad chunk sizes end
//! the body with an error. What it lets through, and nginx, HAProxy or
//! Envoy refuse, is refused here:
//!
//! - `chunked` more than once (`chunked, chunked`, two `Transfer-Encoding:
//!   chunked` fields): hyper only looks at the last coding, a server behind
//!   another proxy may not (request smuggling, RFC 9112 §6.1 forbids it);
//! - empty list elements in `Transfer-Encoding` (`,chunked`) and codings
//!   that are not tokens;
//! - transfer codings other than `chunked` (`gzip, chunked`): the proxy
//!   re-frames the body for the origin, which would silently drop the
//!   coding; RFC 9112 §6.1 says 501 for a coding the server does not
//!   implement;
//! - `Transfer-Encoding` on anything but HTTP/1.1, and `Transfer-Encoding`
//!   with `Content-Length` (hyper drops the length before we could see it,
//!   so this only catches what reaches us some other way);
//! - `Content-Length` that is not one decimal number (or the same number
//!   repeated);
//! - more than one `Host` field, or a `Host` with bytes no host name has
//!   (RFC 9112 §3.2 says 400).
//!
//! The check is a pure function over the head; the proxy answers a refusal
//! with 400 (or 501) and `Connection: close` (the rest of the connection
//! cannot be trusted to be framed as the client meant) and logs the reason.

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, Version};

/// Why a request head was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed or ambiguous framing or routing: 400.
    Malformed(String),
    /// A transfer coding the proxy does not implement: 501.
    UnknownCoding(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Malformed(why) => write!(f, "{why}"),
            Refusal::UnknownCoding(coding) => write!(f, "transfer coding {coding:?} is not implemented"),
        }
    }
}

/// Checks a request head; `Ok` when every later stage may trust it.
pub fn check(version: Version, headers: &HeaderMap) -> Result<(), Refusal> {
    check_transfer_encoding(version, headers)?;
    check_content_length(headers)?;
    check_host(headers)
}

fn malformed(why: impl Into<String>) -> Refusal {
    Refusal::Malformed(why.into())
}

fn check_transfer_encoding(version: Version, headers: &HeaderMap) -> Result<(), Refusal> {
    let mut fields = headers.get_all(TRANSFER_ENCODING).iter().peekable();
    if fields.peek().is_none() {
        return Ok(());
    }
    if version != Version::HTTP_11 {
        return Err(malformed(format!("Transfer-Encoding in a {version:?} request")));
    }
    if headers.contains_key(CONTENT_LENGTH) {
        return Err(malformed("both Transfer-Encoding and Content-Length"));
    }
    let mut chunked = 0usize;
    let mut codings = 0usize;
    for field in fields {
        let text = field.to_str().map_err(|_| malformed("Transfer-Encoding is not visible ASCII"))?;
        for element in text.split(',') {
            let coding = element.trim_matches([' ', '\t']);
            if coding.is_empty() {
                return Err(malformed(format!("empty element in Transfer-Encoding {text:?}")));
            }
            if !is_token(coding) {
                return Err(malformed(format!("Transfer-Encoding coding {coding:?} is not a token")));
            }
            codings += 1;
            if coding.eq_ignore_ascii_case("chunked") {
                chunked += 1;
            } else if chunked > 0 {
                return Err(malformed("a coding after chunked in Transfer-Encoding"));
            }
        }
    }
    if chunked > 1 {
        return Err(malformed("chunked more than once in Transfer-Encoding"));
    }
    if chunked == 0 {
        return Err(malformed("Transfer-Encoding does not end with chunked"));
    }
    if codings > 1 {
        let all: Vec<&str> =
            headers.get_all(TRANSFER_ENCODING).iter().filter_map(|v| v.to_str().ok()).collect();
        return Err(Refusal::UnknownCoding(all.join(", ")));
    }
    Ok(())
}

fn check_content_length(headers: &HeaderMap) -> Result<(), Refusal> {
    let mut length: Option<&[u8]> = None;
    for field in headers.get_all(CONTENT_LENGTH) {
        let value = field.as_bytes().trim_ascii();
        if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
            return Err(malformed(format!(
                "bad Content-Length {:?}",
                String::from_utf8_lossy(field.as_bytes())
            )));
        }
        match length {
            Some(seen) if seen != value => return Err(malformed("differing Content-Length fields")),
            _ => length = Some(value),
        }
    }
    Ok(())
}

fn check_host(headers: &HeaderMap) -> Result<(), Refusal> {
    let mut hosts = headers.get_all(HOST).iter();
    let Some(host) = hosts.next() else { return Ok(()) };
    if hosts.next().is_some() {
        return Err(malformed("more than one Host field"));
    }
    // reg-name / IPv4 / [IPv6] and an optional port: unreserved,
    // sub-delims, ':' '[' ']' and '%' (pct-encoding).
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(b);
    if !host.as_bytes().iter().all(allowed) {
        return Err(malformed(format!("bad Host {:?}", String::from_utf8_lossy(host.as_bytes()))));
    }
    Ok(())
}

/// RFC 9110 §5.6.2 token.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn head(fields: &[(&str, &[u8])]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        headers
    }

    fn verdict(version: Version, fields: &[(&str, &[u8])]) -> Result<(), Refusal> {
        check(version, &head(fields))
    }

    #[test]
    fn ordinary_heads_pass() {
        assert_eq!(verdict(Version::HTTP_11, &[("host", b"demo.test:8080")]), Ok(()));
        assert_eq!(verdict(Version::HTTP_11, &[("host", b"[::1]:80"), ("content-length", b"10")]), Ok(()));
        assert_eq!(verdict(Version::HTTP_11, &[("transfer-encoding", b"chunked")]), Ok(()));
        assert_eq!(verdict(Version::HTTP_11, &[("transfer-encoding", b" Chunked\t")]), Ok(()));
        assert_eq!(verdict(Version::HTTP_11, &[("content-length", b"5"), ("content-length", b"5")]), Ok(()));
        assert_eq!(verdict(Version::HTTP_10, &[]), Ok(()));
        assert_eq!(verdict(Version::HTTP_2, &[("content-length", b"0")]), Ok(()));
    }

    #[test]
    fn ambiguous_chunked_is_malformed() {
        for te in [
            &b"chunked, chunked"[..],
            b",chunked",
            b"chunked,",
            b"chunked, , chunked",
            b"xchunked",
            b"chunked;x=1",
            b"chunked, gzip",
            b"\"chunked\"",
        ] {
            let v = verdict(Version::HTTP_11, &[("transfer-encoding", te)]);
            assert!(matches!(v, Err(Refusal::Malformed(_))), "{:?}: {v:?}", String::from_utf8_lossy(te));
        }
        let two = verdict(
            Version::HTTP_11,
            &[("transfer-encoding", b"chunked"), ("transfer-encoding", b"chunked")],
        );
        assert!(matches!(two, Err(Refusal::Malformed(_))), "{two:?}");
        let old = verdict(Version::HTTP_10, &[("transfer-encoding", b"chunked")]);
        assert!(matches!(old, Err(Refusal::Malformed(_))), "{old:?}");
        let both = verdict(Version::HTTP_11, &[("transfer-encoding", b"chunked"), ("content-length", b"3")]);
        assert!(matches!(both, Err(Refusal::Malformed(_))), "{both:?}");
    }

    #[test]
    fn other_codings_are_not_implemented() {
        let v = verdict(Version::HTTP_11, &[("transfer-encoding", b"gzip, chunked")]);
        assert!(matches!(v, Err(Refusal::UnknownCoding(_))), "{v:?}");
        let v =
            verdict(Version::HTTP_11, &[("transfer-encoding", b"gzip"), ("transfer-encoding", b"chunked")]);
        assert!(matches!(v, Err(Refusal::UnknownCoding(_))), "{v:?}");
    }

    #[test]
    fn bad_lengths_and_hosts_are_malformed() {
        for cl in [&b"+10"[..], b"0x10", b"", b"10, 11", b"10,10", b"-1", b"1e3", b"99999999999999999999"] {
            let v = verdict(Version::HTTP_11, &[("content-length", cl)]);
            assert!(matches!(v, Err(Refusal::Malformed(_))), "{:?}: {v:?}", String::from_utf8_lossy(cl));
        }
        let v = verdict(Version::HTTP_11, &[("content-length", b"10"), ("content-length", b"11")]);
        assert!(matches!(v, Err(Refusal::Malformed(_))), "{v:?}");
        let v = verdict(Version::HTTP_11, &[("host", b"a.test"), ("host", b"b.test")]);
        assert!(matches!(v, Err(Refusal::Malformed(_))), "{v:?}");
        for host in [&b"a.test/evil"[..], b"a test", b"a.test\x80", b"a\"b", b"a@b"] {
            let v = verdict(Version::HTTP_11, &[("host", host)]);
            assert!(matches!(v, Err(Refusal::Malformed(_))), "{:?}: {v:?}", String::from_utf8_lossy(host));
        }
    }
}
