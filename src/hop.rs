//! Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so a
//! proxy removes them before forwarding, in both directions.
//!
//! Removed: `Connection` and every header named in *any* `Connection` field
//! (a request may carry several, and a header hidden in the second one is as
//! hop-by-hop as one in the first), `Keep-Alive`, `TE`, `Trailer`,
//! `Transfer-Encoding`, `Upgrade` and every `Proxy-*` header (credentials
//! meant for a proxy never reach the origin). hyper frames the message again
//! on each side, so nothing is lost.
//!
//! An upgrade is the one exception: [`websocket_upgrade`] recognises a
//! WebSocket handshake before stripping, and [`restore_upgrade`] puts
//! `Connection: upgrade` and `Upgrade` back afterwards, so the origin sees the
//! handshake and nothing else the client chained to it. Other protocols
//! (notably `h2c`) are never tunnelled: a tunnel bypasses every later
//! request, and with it consent enforcement.

use http::header::{CONNECTION, HeaderName, HeaderValue, UPGRADE};
use http::{HeaderMap, Version};

/// Removes every hop-by-hop header.
///
/// One pass over the names, then removals only for what is there: most
/// messages carry none (a response usually just `Connection: keep-alive`),
/// and removing the six fixed names unconditionally hashed each of them
/// on every message, twice per request (BENCHMARKS.md, instructions per
/// passthrough request).
pub fn strip(headers: &mut HeaderMap) {
    let hop: Vec<HeaderName> = {
        let named: Vec<&str> = connection_tokens(headers).collect();
        headers
            .keys()
            .filter(|name| always_hop(name) || named.iter().any(|t| t.eq_ignore_ascii_case(name.as_str())))
            .cloned()
            .collect()
    };
    for name in hop {
        headers.remove(name);
    }
}

/// The hop-by-hop headers whether or not `Connection` names them (by
/// text: a list of `HeaderName`s built per call cost more than the match).
fn always_hop(name: &HeaderName) -> bool {
    match name.as_str() {
        "connection" | "keep-alive" | "te" | "trailer" | "transfer-encoding" | "upgrade" => true,
        other => other.starts_with("proxy-"),
    }
}

/// Every token of every `Connection` field, in order, as sent (tokens are
/// case-insensitive: compare with `eq_ignore_ascii_case`).
pub fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> + '_ {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The `Upgrade` value when the request is an HTTP/1.1 WebSocket handshake
/// (`Connection: upgrade` and `Upgrade: websocket`), else `None`.
pub fn websocket_upgrade(version: Version, headers: &HeaderMap) -> Option<HeaderValue> {
    if version != Version::HTTP_11 || !connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade")) {
        return None;
    }
    let upgrade = headers.get(UPGRADE)?;
    let first = upgrade.to_str().ok()?.split(',').next()?.trim();
    let protocol = first.split('/').next()?.trim();
    protocol.eq_ignore_ascii_case("websocket").then(|| upgrade.clone())
}

/// Puts back the headers of an upgrade after [`strip`].
pub fn restore_upgrade(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, upgrade);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(*k, HeaderValue::from_static(v));
        }
        headers
    }

    fn names(headers: &HeaderMap) -> Vec<&str> {
        let mut v: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn strips_fixed_and_named_headers_from_every_connection_field() {
        let mut headers = map(&[
            ("connection", "keep-alive, X-One"),
            ("connection", " x-two ,,close"),
            ("x-one", "1"),
            ("x-two", "2"),
            ("x-three", "3"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("proxy-connection", "keep-alive"),
            ("cookie", "a=1"),
        ]);
        strip(&mut headers);
        assert_eq!(names(&headers), vec!["cookie", "x-three"]);
    }

    #[test]
    fn strip_is_idempotent_and_ignores_junk_tokens() {
        let mut headers = map(&[("connection", "bad token, \"quoted\""), ("x-a", "1")]);
        strip(&mut headers);
        let once = headers.clone();
        strip(&mut headers);
        assert_eq!(headers, once);
        assert_eq!(names(&headers), vec!["x-a"]);
    }

    #[test]
    fn only_websocket_upgrades_over_http11() {
        let ws = map(&[("connection", "keep-alive, Upgrade"), ("upgrade", "WebSocket")]);
        assert_eq!(websocket_upgrade(Version::HTTP_11, &ws).unwrap(), "WebSocket");
        assert!(websocket_upgrade(Version::HTTP_10, &ws).is_none());
        assert!(websocket_upgrade(Version::HTTP_2, &ws).is_none());
        let h2c = map(&[("connection", "upgrade, http2-settings"), ("upgrade", "h2c")]);
        assert!(websocket_upgrade(Version::HTTP_11, &h2c).is_none());
        let no_connection = map(&[("upgrade", "websocket")]);
        assert!(websocket_upgrade(Version::HTTP_11, &no_connection).is_none());
        let second_field =
            map(&[("connection", "keep-alive"), ("connection", "upgrade"), ("upgrade", "websocket")]);
        assert!(websocket_upgrade(Version::HTTP_11, &second_field).is_some());
    }

    #[test]
    fn restore_keeps_only_the_handshake() {
        let mut headers =
            map(&[("connection", "upgrade, x-secret"), ("upgrade", "websocket"), ("x-secret", "1")]);
        let upgrade = websocket_upgrade(Version::HTTP_11, &headers).unwrap();
        strip(&mut headers);
        restore_upgrade(&mut headers, upgrade);
        assert_eq!(names(&headers), vec!["connection", "upgrade"]);
        assert_eq!(headers[CONNECTION], "upgrade");
    }
}
