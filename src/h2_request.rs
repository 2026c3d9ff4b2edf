//! Stage 1, **listen**, for HTTP/2: what an HTTP/2 request must look like
//! before any stage sees it, and a request body that cannot end cleanly
//! when its DATA frames disagree with its `content-length`.
//!
//! An HTTP/2 request reaches the origin as HTTP/1.1. Anything RFC 9113
//! §8.2 and §8.3 call malformed could mean something else once written as
//! HTTP/1 text (a value with CR/LF becomes two header lines, a
//! `transfer-encoding` reframes the body, a `host` that differs from
//! `:authority` routes one way here and another way at the origin), so
//! such a request is refused with a stream reset (`PROTOCOL_ERROR`, §8.1.1)
//! and never forwarded. The h2 crate already rejects most of these while
//! decoding; [`check`] repeats every rule on the parsed request so the
//! guarantee does not depend on a dependency's version, and adds the ones
//! h2 leaves to the application (`host` vs `:authority`, userinfo,
//! whitespace-padded values, `*` outside OPTIONS).
//!
//! [`confirm_length`] holds back the chunk that completes a declared
//! `content-length` until the client's `END_STREAM` arrives: h2 reports a
//! body longer than declared only when the extra DATA frame comes, and by
//! then an HTTP/1 origin would already hold a complete request.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderMap, Method, Request, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::body::{Body, BoxError};

/// Why an HTTP/2 request is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// A connection-specific field (RFC 9113 §8.2.2).
    #[error("connection-specific field `{0}`")]
    ConnectionSpecific(String),
    /// `te` with a value other than `trailers`.
    #[error("`te` other than `trailers`")]
    Te,
    /// A field name with an uppercase letter (§8.2.1).
    #[error("uppercase field name `{0}`")]
    Uppercase(String),
    /// A field value with NUL, CR or LF (§8.2.1).
    #[error("NUL, CR or LF in the value of `{0}`")]
    ControlInValue(String),
    /// A field value starting or ending with whitespace (§8.2.1).
    #[error("whitespace around the value of `{0}`")]
    PaddedValue(String),
    /// `:authority` with userinfo (§8.3.1).
    #[error("userinfo in `:authority`")]
    Userinfo,
    /// `host` that names another authority than `:authority` (§8.3.1).
    #[error("`host` differs from `:authority`")]
    HostMismatch,
    /// More than one `host` field.
    #[error("more than one `host`")]
    RepeatedHost,
    /// `:path` that is neither origin-form nor `*` for OPTIONS (§8.3.1).
    #[error("bad `:path`")]
    BadPath,
    /// `content-length` that is not one decimal number.
    #[error("bad `content-length`")]
    BadContentLength,
}

/// Connection-specific fields, never valid in HTTP/2 (§8.2.2).
const CONNECTION_SPECIFIC: [&str; 5] =
    ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"];

/// Checks an HTTP/2 request (any other version passes untouched).
pub fn check<B>(request: &Request<B>) -> Result<(), Malformed> {
    if request.version() != Version::HTTP_2 {
        return Ok(());
    }
    check_fields(request.headers())?;
    check_authority(request)?;
    check_path(request)?;
    declared_length(request.headers()).map(|_| ())
}

fn check_fields(headers: &HeaderMap) -> Result<(), Malformed> {
    for (name, value) in headers {
        let name = name.as_str();
        if CONNECTION_SPECIFIC.contains(&name) {
            return Err(Malformed::ConnectionSpecific(name.to_string()));
        }
        if name == "te" && value.as_bytes() != b"trailers" {
            return Err(Malformed::Te);
        }
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(Malformed::Uppercase(name.to_string()));
        }
        let bytes = value.as_bytes();
        if bytes.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n')) {
            return Err(Malformed::ControlInValue(name.to_string()));
        }
        let padded = |b: Option<&u8>| b.is_some_and(|&b| b == b' ' || b == b'\t');
        if padded(bytes.first()) || padded(bytes.last()) {
            return Err(Malformed::PaddedValue(name.to_string()));
        }
    }
    Ok(())
}

fn check_authority<B>(request: &Request<B>) -> Result<(), Malformed> {
    let authority = request.uri().authority().map(http::uri::Authority::as_str);
    if authority.is_some_and(|a| a.contains('@')) {
        return Err(Malformed::Userinfo);
    }
    let mut hosts = request.headers().get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(Malformed::RepeatedHost);
    }
    let default_port = match request.uri().scheme_str() {
        Some("http") => Some(&b":80"[..]),
        Some("https") => Some(&b":443"[..]),
        _ => None,
    };
    // `shop.test` and `shop.test:443` name the same thing over https.
    let bare = |a: &'_ [u8]| -> Vec<u8> {
        let a = default_port.and_then(|p| a.strip_suffix(p)).unwrap_or(a);
        a.to_ascii_lowercase()
    };
    match (authority, host) {
        (Some(authority), Some(host)) if bare(host.as_bytes()) != bare(authority.as_bytes()) => {
            Err(Malformed::HostMismatch)
        }
        (_, Some(host)) if host.as_bytes().contains(&b'@') => Err(Malformed::Userinfo),
        _ => Ok(()),
    }
}

fn check_path<B>(request: &Request<B>) -> Result<(), Malformed> {
    if request.method() == Method::CONNECT {
        return Ok(());
    }
    let path = request.uri().path_and_query().map_or("", http::uri::PathAndQuery::as_str);
    let ok = if path == "*" { request.method() == Method::OPTIONS } else { path.starts_with('/') };
    if ok { Ok(()) } else { Err(Malformed::BadPath) }
}

/// The declared `content-length`, if any (several equal ones count as one).
pub fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, Malformed> {
    let mut declared = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let bytes = value.as_bytes();
        if bytes.is_empty() || bytes.len() > 19 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(Malformed::BadContentLength);
        }
        let n: u64 = std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(Malformed::BadContentLength)?;
        if declared.is_some_and(|d| d != n) {
            return Err(Malformed::BadContentLength);
        }
        declared = Some(n);
    }
    Ok(declared)
}

/// Why a body ended badly.
#[derive(Debug, thiserror::Error)]
#[error("request body of {got} bytes, content-length {declared}")]
pub struct LengthMismatch {
    declared: u64,
    got: u64,
}

/// Wraps a request body so it yields an error (and never a clean end) when
/// its bytes differ from `declared`, and so the chunk completing `declared`
/// is only passed on once the body is known to end there.
pub fn confirm_length(body: Body, declared: Option<u64>) -> Body {
    match declared {
        None => body,
        Some(declared) => http_body_util::BodyExt::boxed_unsync(ConfirmLength {
            inner: body,
            declared,
            seen: 0,
            held: None,
            done: false,
        }),
    }
}

struct ConfirmLength {
    inner: Body,
    declared: u64,
    seen: u64,
    /// The chunk that reached `declared`, waiting for the end.
    held: Option<Frame<Bytes>>,
    done: bool,
}

impl HttpBody for ConfirmLength {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(this.held.take().map(Ok));
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    this.held = None;
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let Some(data) = frame.data_ref() else {
                        // Trailers end the body: release what was held first.
                        if this.seen != this.declared {
                            return Poll::Ready(Some(Err(this.mismatch())));
                        }
                        this.done = true;
                        return match this.held.take() {
                            Some(held) => {
                                this.held = Some(frame);
                                Poll::Ready(Some(Ok(held)))
                            }
                            None => Poll::Ready(Some(Ok(frame))),
                        };
                    };
                    if data.is_empty() {
                        continue;
                    }
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    if this.seen > this.declared {
                        this.held = None;
                        this.done = true;
                        return Poll::Ready(Some(Err(this.mismatch())));
                    }
                    if this.seen == this.declared {
                        this.held = Some(frame);
                        continue;
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    if this.seen != this.declared {
                        return Poll::Ready(Some(Err(this.mismatch())));
                    }
                    return Poll::Ready(this.held.take().map(Ok));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.held.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.declared.saturating_sub(self.seen) + self.held_len())
    }
}

impl ConfirmLength {
    fn mismatch(&self) -> BoxError {
        Box::new(LengthMismatch { declared: self.declared, got: self.seen })
    }

    fn held_len(&self) -> u64 {
        self.held.as_ref().and_then(Frame::data_ref).map_or(0, |d| d.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn h2(headers: &[(&str, &str)]) -> Request<()> {
        h2_at("https://shop.test/a?b", Method::GET, headers)
    }

    fn h2_at(uri: &str, method: Method, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().version(Version::HTTP_2).method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, http::HeaderValue::from_bytes(value.as_bytes()).unwrap());
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn an_ordinary_request_passes() {
        assert_eq!(check(&h2(&[("cookie", "a=1"), ("te", "trailers"), ("host", "shop.test")])), Ok(()));
        assert_eq!(check(&h2_at("https://shop.test/", Method::POST, &[("content-length", "3")])), Ok(()));
        assert_eq!(check(&h2_at("https://shop.test/", Method::OPTIONS, &[])), Ok(()));
    }

    #[test]
    fn connection_specific_fields_are_malformed() {
        for name in CONNECTION_SPECIFIC {
            assert_eq!(check(&h2(&[(name, "x")])), Err(Malformed::ConnectionSpecific(name.into())), "{name}");
        }
        assert_eq!(check(&h2(&[("te", "gzip")])), Err(Malformed::Te));
    }

    #[test]
    fn values_with_control_bytes_or_padding_are_malformed() {
        // HeaderValue refuses CR and LF itself; NUL is tested through the
        // other checks' order. A tab or space at either end is ours to catch.
        assert_eq!(check(&h2(&[("x-a", " v")])), Err(Malformed::PaddedValue("x-a".into())));
        assert_eq!(check(&h2(&[("x-a", "v\t")])), Err(Malformed::PaddedValue("x-a".into())));
        assert_eq!(check(&h2(&[("x-a", "v v")])), Ok(()));
        assert!(http::HeaderValue::from_bytes(b"a\r\nb").is_err());
    }

    #[test]
    fn authority_rules() {
        assert_eq!(check(&h2_at("https://u:p@shop.test/", Method::GET, &[])), Err(Malformed::Userinfo));
        assert_eq!(check(&h2(&[("host", "other.test")])), Err(Malformed::HostMismatch));
        assert_eq!(check(&h2(&[("host", "SHOP.test")])), Ok(()));
        assert_eq!(check(&h2(&[("host", "shop.test:443")])), Ok(()), "the default port");
        assert_eq!(check(&h2(&[("host", "shop.test:8443")])), Err(Malformed::HostMismatch));
        assert_eq!(check(&h2_at("https://shop.test:443/", Method::GET, &[("host", "shop.test")])), Ok(()));
        assert_eq!(
            check(&h2_at("http://shop.test/", Method::GET, &[("host", "shop.test:443")])),
            Err(Malformed::HostMismatch),
            "443 is not http's default"
        );
        assert_eq!(check(&h2(&[("host", "shop.test"), ("host", "shop.test")])), Err(Malformed::RepeatedHost));
        // Without :authority, `host` names the target, but never with userinfo.
        let no_authority = Request::builder()
            .version(Version::HTTP_2)
            .uri("/")
            .header("host", "u@shop.test")
            .body(())
            .unwrap();
        assert_eq!(check(&no_authority), Err(Malformed::Userinfo));
    }

    #[test]
    fn asterisk_only_for_options() {
        let star = |method| {
            let mut request = h2_at("https://shop.test/", method, &[]);
            *request.uri_mut() = http::Uri::builder()
                .scheme("https")
                .authority("shop.test")
                .path_and_query("*")
                .build()
                .unwrap();
            request
        };
        assert_eq!(check(&star(Method::GET)), Err(Malformed::BadPath));
        assert_eq!(check(&star(Method::OPTIONS)), Ok(()));
    }

    #[test]
    fn content_length_must_be_one_number() {
        let cl = |v: &[&str]| {
            let mut headers = HeaderMap::new();
            for v in v {
                headers.append(CONTENT_LENGTH, v.parse().unwrap());
            }
            declared_length(&headers)
        };
        assert_eq!(cl(&[]), Ok(None));
        assert_eq!(cl(&["10"]), Ok(Some(10)));
        assert_eq!(cl(&["10", "10"]), Ok(Some(10)));
        for bad in [&["+10"][..], &["0x10"], &["10, 11"], &["10", "11"], &["99999999999999999999"]] {
            assert_eq!(cl(bad), Err(Malformed::BadContentLength), "{bad:?}");
        }
    }

    #[test]
    fn other_versions_pass_untouched() {
        let request = Request::builder().uri("/").header("connection", "close").body(()).unwrap();
        assert_eq!(check(&request), Ok(()));
    }

    type Item = Result<Frame<Bytes>, BoxError>;

    fn body_of(items: Vec<Item>) -> Body {
        StreamBody::new(futures_util::stream::iter(items)).boxed_unsync()
    }

    fn data(s: &'static str) -> Item {
        Ok(Frame::data(Bytes::from_static(s.as_bytes())))
    }

    /// Polls `body` to the end: the data seen, and whether it ended cleanly.
    async fn drain(mut body: Body) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(d) = frame.data_ref() {
                        out.extend_from_slice(d);
                    }
                }
                Err(_) => return (out, false),
            }
        }
        (out, true)
    }

    #[tokio::test]
    async fn exact_length_ends_cleanly() {
        let body = confirm_length(body_of(vec![data("ab"), data("c")]), Some(3));
        assert_eq!(drain(body).await, (b"abc".to_vec(), true));
    }

    #[tokio::test]
    async fn a_short_body_ends_in_an_error() {
        let body = confirm_length(body_of(vec![data("ab")]), Some(3));
        assert_eq!(drain(body).await, (b"ab".to_vec(), false));
    }

    #[tokio::test]
    async fn the_completing_chunk_waits_for_the_end() {
        // Exactly the declared bytes, then one more frame: the origin must
        // never see the complete request.
        let body = confirm_length(body_of(vec![data("ab"), data("c"), data("d")]), Some(3));
        assert_eq!(drain(body).await, (b"ab".to_vec(), false));
        // The same when h2 itself reports the extra frame as an error.
        let body = confirm_length(body_of(vec![data("abc"), Err("stream reset".into())]), Some(3));
        assert_eq!(drain(body).await, (Vec::new(), false));
    }

    #[tokio::test]
    async fn trailers_follow_the_held_chunk() {
        let trailers = Ok(Frame::trailers(HeaderMap::new()));
        let mut body = confirm_length(body_of(vec![data("abc"), trailers]), Some(3));
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.data_ref().map(|d| &d[..]), Some(&b"abc"[..]));
        assert!(body.frame().await.unwrap().unwrap().is_trailers());
        assert!(body.frame().await.is_none());
    }
}
