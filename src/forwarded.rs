//! The headers that tell the origin who really asked: `X-Forwarded-For`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host`, `Via`, and `X-Request-Id`.
//!
//! Runs after hop-by-hop stripping (so a client cannot make us drop the
//! header we add by naming it in `Connection`). `X-Forwarded-For` *appends*
//! the peer address to whatever chain the client sent, in one field, so an
//! origin that trusts the last entry gets the address consentry saw, and one
//! that reads the first field sees the whole chain. `Proto` and `Host`
//! describe the connection consentry accepted and replace any client value.

use std::net::IpAddr;

use http::header::{HeaderName, HeaderValue, VIA};
use http::{HeaderMap, Version};

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Request-Id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What consentry knows about the client side of a request.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// The peer address of the client connection (appended to
    /// `X-Forwarded-For`).
    pub ip: IpAddr,
    /// Whether the visitor used HTTPS (see [`effective_client`]).
    pub https: bool,
    /// The host the client asked for, as sent (port kept).
    pub host: &'a str,
    /// The HTTP version the client spoke.
    pub version: Version,
}

/// Who the visitor is and whether they used HTTPS, as far as consentry can
/// tell: the peer and the connection, unless the peer is a trusted proxy
/// (`[listen] trusted_proxies`). Then the last `X-Forwarded-Proto` value
/// says the scheme, and the visitor is the rightmost `X-Forwarded-For`
/// entry that is not itself a trusted proxy (entries left of it could be
/// forged by the visitor). A TLS-terminating load balancer thus still gets
/// `Secure` consent cookies and sweeps that reach `__Secure-` cookies.
pub fn effective_client(
    headers: &HeaderMap,
    peer: IpAddr,
    tls: bool,
    trusted: &[ipnet::IpNet],
) -> (IpAddr, bool) {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return (peer, tls);
    }
    let https = match last_list_value(headers, &X_FORWARDED_PROTO) {
        Some(proto) => proto.eq_ignore_ascii_case("https"),
        None => tls,
    };
    let mut client = peer;
    for field in headers.get_all(&X_FORWARDED_FOR).iter().rev() {
        let Ok(field) = field.to_str() else { break };
        for entry in field.rsplit(',') {
            let Ok(ip) = entry.trim().parse::<IpAddr>() else {
                return (client, https);
            };
            client = ip;
            if !is_trusted(&ip) {
                return (client, https);
            }
        }
    }
    (client, https)
}

fn last_list_value<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    let last = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    last.rsplit(',').next().map(str::trim).filter(|v| !v.is_empty())
}

/// Sets `X-Forwarded-For`, `-Proto`, `-Host` and appends to `Via`.
pub fn set(headers: &mut HeaderMap, client: &Client<'_>) {
    append_list(headers, X_FORWARDED_FOR, &ip_text(client.ip));
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(if client.https { "https" } else { "http" }));
    if let Ok(host) = HeaderValue::from_str(client.host) {
        headers.insert(X_FORWARDED_HOST, host);
    }
    let via = match client.version {
        Version::HTTP_09 => "0.9 consentry",
        Version::HTTP_10 => "1.0 consentry",
        Version::HTTP_2 => "2 consentry",
        Version::HTTP_3 => "3 consentry",
        _ => "1.1 consentry",
    };
    append_list(headers, VIA, via);
}

/// An address as text; IPv4 (nearly every peer) without `core::fmt`,
/// whose padding machinery cost ten times the digits (BENCHMARKS.md,
/// instructions per passthrough request).
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else { return ip.to_string() };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

/// Joins every field of a comma-separated list header and `value` into one
/// field. Values that are not visible ASCII are dropped rather than passed
/// on half-understood.
fn append_list(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    // Usually the client sent none: the value alone, nothing to join.
    if !headers.contains_key(&name) {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
        return;
    }
    let mut list: Vec<String> = headers
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    list.push(value.to_string());
    match HeaderValue::from_str(&list.join(", ")) {
        Ok(joined) => {
            headers.insert(name, joined);
        }
        Err(_) => {
            headers.remove(&name);
        }
    }
}

/// Longest `X-Request-Id` accepted from a client.
const MAX_REQUEST_ID: usize = 128;

/// Returns the request's id: the client's `X-Request-Id` when it is sane
/// (1–128 visible ASCII characters), else a new random one, which is then
/// set on the request so the origin logs the same id.
pub fn request_id(headers: &mut HeaderMap) -> String {
    if let Some(id) = headers.get(&X_REQUEST_ID).and_then(|v| v.to_str().ok())
        && !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id.bytes().all(|b| b.is_ascii_graphic())
    {
        return id.to_string();
    }
    // 128 random bits in hex, written out directly (`format!` with `{:016x}`
    // cost more than the rest of this function).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(32);
    for word in [fastrand::u64(..), fastrand::u64(..)] {
        for nibble in (0..16).rev() {
            id.push(char::from(HEX[(word >> (nibble * 4) & 0xf) as usize]));
        }
    }
    headers.insert(X_REQUEST_ID, HeaderValue::from_str(&id).expect("hex is a valid header value"));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(version: Version) -> Client<'static> {
        Client { ip: "192.0.2.7".parse().unwrap(), https: true, host: "www.example.com:8443", version }
    }

    #[test]
    fn appends_to_the_clients_chain_in_one_field() {
        let mut headers = HeaderMap::new();
        headers.append(&X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.1"));
        headers.append(&X_FORWARDED_FOR, HeaderValue::from_static("198.51.100.2, 198.51.100.3"));
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        headers.insert(&X_FORWARDED_HOST, HeaderValue::from_static("evil.test"));
        headers.insert(VIA, HeaderValue::from_static("1.1 cdn"));
        set(&mut headers, &client(Version::HTTP_2));
        let xff: Vec<_> = headers.get_all(&X_FORWARDED_FOR).iter().collect();
        assert_eq!(xff, vec!["203.0.113.1, 198.51.100.2, 198.51.100.3, 192.0.2.7"]);
        assert_eq!(headers[&X_FORWARDED_PROTO], "https");
        assert_eq!(headers[&X_FORWARDED_HOST], "www.example.com:8443");
        assert_eq!(headers[VIA], "1.1 cdn, 2 consentry");
    }

    #[test]
    fn ipv4_text_is_the_usual_dotted_quad() {
        for text in ["0.0.0.0", "255.255.255.255", "10.0.100.9", "1.20.255.3", "127.0.0.1", "192.168.10.99"] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(ip_text(ip), text);
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(ip_text(v6), "2001:db8::1");
    }

    #[test]
    fn starts_a_chain_when_there_is_none() {
        let mut headers = HeaderMap::new();
        let mut c = client(Version::HTTP_11);
        c.ip = "2001:db8::1".parse().unwrap();
        c.https = false;
        set(&mut headers, &c);
        assert_eq!(headers[&X_FORWARDED_FOR], "2001:db8::1");
        assert_eq!(headers[&X_FORWARDED_PROTO], "http");
        assert_eq!(headers[VIA], "1.1 consentry");
    }

    #[test]
    fn forwarded_headers_are_believed_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut headers = HeaderMap::new();
        headers.append(&X_FORWARDED_FOR, HeaderValue::from_static("6.6.6.6, 203.0.113.9"));
        headers.append(&X_FORWARDED_FOR, HeaderValue::from_static("10.1.2.3"));
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        let lb: IpAddr = "10.0.0.1".parse().unwrap();
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        // From the load balancer: the rightmost untrusted entry, and https.
        assert_eq!(effective_client(&headers, lb, false, &trusted), ("203.0.113.9".parse().unwrap(), true));
        // From anyone else: nothing in the headers is believed.
        assert_eq!(effective_client(&headers, stranger, false, &trusted), (stranger, false));
        assert_eq!(effective_client(&headers, lb, false, &[]), (lb, false));
        // A garbage entry stops the walk at the last good address.
        let mut headers = HeaderMap::new();
        headers.insert(&X_FORWARDED_FOR, HeaderValue::from_static("nonsense, 10.9.9.9"));
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        assert_eq!(effective_client(&headers, lb, true, &trusted), ("10.9.9.9".parse().unwrap(), false));
        // No X-Forwarded-Proto: the connection decides.
        assert!(effective_client(&HeaderMap::new(), lb, true, &trusted).1);
    }

    #[test]
    fn request_ids_are_kept_when_sane_else_made() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&mut headers), "abc-123");

        let mut headers = HeaderMap::new();
        let id = request_id(&mut headers);
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{id}");
        assert_eq!(headers[&X_REQUEST_ID], id.as_str());
        assert_ne!(request_id(&mut HeaderMap::new()), id);

        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_str(&"x".repeat(200)).unwrap());
        let id = request_id(&mut headers);
        assert_eq!(id.len(), 32);
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("has space"));
        assert_ne!(request_id(&mut headers), "has space");
    }
}
