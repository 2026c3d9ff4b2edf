//! Stage 6, **forward**: send the request to the site's origin and bring
//! back its response, both bodies streamed.
//!
//! One pooled keep-alive hyper client per distinct trust set (webpki roots,
//! plus a site's `ca_file` when it has one), built on first use and kept
//! across reloads as long as the CA file's content and the origin limits
//! stay the same, so a reload does not throw away warm connections. Bodies
//! are handed from one hyper connection to the other frame by frame: hyper
//! only polls the next frame once the previous one is written, which is the
//! back-pressure, and nothing is buffered whole.
//!
//! Before sending, in order: note whether this is a WebSocket handshake,
//! strip hop-by-hop headers ([`crate::hop`]), put the handshake back, join
//! `cookie` fields (HTTP/2 sends one per cookie; an HTTP/1.1 origin expects
//! one header, RFC 9113 §8.2.3), add `X-Forwarded-*` and `Via`
//! ([`crate::forwarded`]), then set `Host`. The response has its hop-by-hop
//! headers stripped the same way. An upgrade is tunnelled only once the
//! origin has answered `101`; any other answer is an ordinary response and
//! the client connection goes on parsing requests.

use std::collections::HashMap;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{COOKIE, HOST, HeaderValue, UPGRADE};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use hyper::upgrade::OnUpgrade;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

use crate::body::{self, Body, BoxError};
use crate::config::Limits;
use crate::error::ProxyError;
use crate::forwarded;
use crate::hop;
use crate::listen::{ActiveGuard, Activity};
use crate::route::{Origin, Site};
use crate::shutdown::Tasks;

/// Extra CA certificates trusted for an https origin (`site.ca_file`),
/// loaded and checked when the config is compiled.
#[derive(Debug)]
pub struct CaBundle {
    certs: Vec<CertificateDer<'static>>,
    digest: [u8; 32],
}

impl CaBundle {
    /// Reads a PEM file of one or more CA certificates.
    pub fn load(path: &Path) -> Result<CaBundle, String> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("bad PEM in CA file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("CA file {} holds no certificate", path.display()));
        }
        let mut roots = RootCertStore::empty();
        let (_, rejected) = roots.add_parsable_certificates(certs.iter().cloned());
        if rejected > 0 {
            return Err(format!(
                "CA file {}: {rejected} certificate(s) cannot be used as trust anchors",
                path.display()
            ));
        }
        let mut hash = Sha256::new();
        for cert in &certs {
            hash.update(cert.as_ref());
        }
        Ok(CaBundle { certs, digest: hash.finalize().into() })
    }
}

/// Most header fields an origin response may carry (hyper's default is
/// 100: a legacy page setting a few hundred cookies would be a 502). The
/// response head stays bounded by hyper's read buffer (about 400 KB).
const ORIGIN_MAX_HEADERS: usize = 2_000;

type HttpsClient = Client<HttpsConnector<HttpConnector>, Body>;

/// The clients for one trust set: `any` negotiates HTTP/2 or HTTP/1.1 by
/// ALPN; `h1` offers HTTP/1.1 only, for upgrades (which HTTP/2 cannot carry).
#[derive(Clone)]
struct Clients {
    any: HttpsClient,
    h1: HttpsClient,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ClientKey {
    ca: Option<[u8; 32]>,
    connect_timeout: Duration,
    idle_timeout: Duration,
}

/// The pooled origin clients, shared by every request of the server.
#[derive(Default)]
pub struct Forwarder {
    clients: Mutex<HashMap<ClientKey, Clients>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").finish_non_exhaustive()
    }
}

/// Everything [`Forwarder::forward`] needs besides the request.
#[derive(Debug)]
pub struct Target<'a> {
    /// The site (origin, `preserve_host`).
    pub site: &'a Site,
    /// Its extra CAs.
    pub ca: Option<&'a CaBundle>,
    /// Timeouts.
    pub limits: &'a Limits,
    /// Who asked (for `X-Forwarded-*`).
    pub client: forwarded::Client<'a>,
    /// Where a tunnel task is spawned.
    pub tasks: &'a Tasks,
    /// The client connection's activity: a tunnel keeps it counted as busy.
    pub activity: &'a Activity,
}

impl Forwarder {
    /// A forwarder with no client yet.
    pub fn new() -> Forwarder {
        Forwarder::default()
    }

    fn clients(&self, ca: Option<&CaBundle>, limits: &Limits) -> Clients {
        let key = ClientKey {
            ca: ca.map(|c| c.digest),
            connect_timeout: limits.origin_connect_timeout,
            idle_timeout: limits.origin_idle_timeout,
        };
        let mut map = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(key).or_insert_with(|| build_clients(ca, limits)).clone()
    }

    /// Sends the request to the site's origin; the response comes back with
    /// its hop-by-hop headers removed and its body streaming.
    pub async fn forward(
        &self,
        target: Target<'_>,
        request: Request<Body>,
    ) -> Result<Response<Body>, ProxyError> {
        let origin = &target.site.origin;
        let (mut parts, body) = request.into_parts();
        if parts.method == Method::CONNECT {
            return Err(ProxyError::MethodNotAllowed(parts.method.to_string()));
        }
        let client_upgrade = parts.extensions.remove::<OnUpgrade>();
        let upgrade = hop::websocket_upgrade(parts.version, &parts.headers);
        prepare_request(&mut parts.headers, &target, upgrade.clone());
        let uri = origin_uri(origin, &parts.uri)?;
        let upload = Arc::new(Upload::default());
        let body = body::boxed(ClientBody::new(body, target.limits.body_read_timeout, upload.clone()));
        let mut request = Request::from_parts(parts, body);
        *request.uri_mut() = uri;
        *request.version_mut() = Version::HTTP_11;

        let clients = self.clients(target.ca, target.limits);
        let client = if upgrade.is_some() { &clients.h1 } else { &clients.any };
        let timeout = target.limits.origin_response_timeout;
        let response = match tokio::time::timeout(timeout, client.request(request)).await {
            Err(_) => return Err(ProxyError::OriginTimeout { origin: origin.uri.to_string(), timeout }),
            Ok(Err(e)) if e.is_connect() => {
                return Err(ProxyError::OriginUnreachable {
                    origin: origin.uri.to_string(),
                    source: e.into(),
                });
            }
            // The client's own upload broke (a bad chunk, a stall): its
            // fault, not the origin's; the origin's request was aborted.
            Ok(Err(e)) if upload.stalled.load(Ordering::SeqCst) => {
                tracing::debug!(error = %e, "request body stalled; origin request aborted");
                return Err(ProxyError::ClientTimeout(target.limits.body_read_timeout));
            }
            Ok(Err(e)) if upload.failed.load(Ordering::SeqCst) => {
                return Err(ProxyError::ClientBody(e.into()));
            }
            Ok(Err(e)) => {
                return Err(ProxyError::OriginFailed { origin: origin.uri.to_string(), source: e.into() });
            }
            Ok(Ok(response)) => response,
        };

        let (mut parts, incoming) = response.into_parts();
        let origin_upgrade = parts.headers.get(UPGRADE).cloned();
        hop::strip(&mut parts.headers);
        if parts.status == StatusCode::SWITCHING_PROTOCOLS {
            let (Some(client_side), Some(origin_side), Some(_), Some(protocol)) =
                (client_upgrade, parts.extensions.remove::<OnUpgrade>(), upgrade, origin_upgrade)
            else {
                return Err(ProxyError::OriginFailed {
                    origin: origin.uri.to_string(),
                    source: "101 Switching Protocols to a request that asked for no WebSocket upgrade".into(),
                });
            };
            hop::restore_upgrade(&mut parts.headers, protocol);
            let guard = target.activity.start();
            target.tasks.spawn(tunnel(client_side, origin_side, guard));
        }
        Ok(Response::from_parts(parts, body::boxed(incoming)))
    }
}

/// Rewrites the request headers for the origin (see the module doc for the
/// order and why).
fn prepare_request(headers: &mut HeaderMap, target: &Target<'_>, upgrade: Option<HeaderValue>) {
    hop::strip(headers);
    if let Some(protocol) = upgrade {
        hop::restore_upgrade(headers, protocol);
    }
    join_cookies(headers);
    forwarded::set(headers, &target.client);
    let host =
        if target.site.preserve_host { target.client.host } else { target.site.origin.authority.as_str() };
    match HeaderValue::from_str(host) {
        Ok(value) => {
            headers.insert(HOST, value);
        }
        // Cannot happen for a host that routed; let hyper derive it.
        Err(_) => {
            headers.remove(HOST);
        }
    }
}

/// Joins several `cookie` fields into one, separated by `"; "`.
pub fn join_cookies(headers: &mut HeaderMap) {
    if headers.get_all(COOKIE).iter().nth(1).is_none() {
        return;
    }
    let mut joined: Vec<u8> = Vec::new();
    for value in headers.get_all(COOKIE) {
        let value = value.as_bytes().trim_ascii();
        if value.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(value);
    }
    match HeaderValue::from_bytes(&joined) {
        Ok(value) => {
            headers.insert(COOKIE, value);
        }
        Err(_) => {
            headers.remove(COOKIE);
        }
    }
}

/// The origin URL for a request: the origin's scheme and authority, its
/// base path, then the request's path and query (from origin-form,
/// absolute-form or an HTTP/2 `:path` alike).
pub fn origin_uri(origin: &Origin, request: &Uri) -> Result<Uri, ProxyError> {
    let path_and_query = request.path_and_query().map_or("/", PathAndQuery::as_str);
    if !path_and_query.starts_with('/') {
        return Err(ProxyError::BadRequest(format!("request target {path_and_query:?} is not a path")));
    }
    let joined = format!("{}{}", origin.base_path, path_and_query);
    Uri::builder()
        .scheme(origin.scheme.clone())
        .authority(origin.authority.clone())
        .path_and_query(joined)
        .build()
        .map_err(|e| ProxyError::BadRequest(format!("cannot build origin URL: {e}")))
}

fn build_clients(ca: Option<&CaBundle>, limits: &Limits) -> Clients {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(ca) = ca {
        roots.add_parsable_certificates(ca.certs.iter().cloned());
    }
    let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(limits.origin_connect_timeout));
    let any = HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http.clone());
    let h1 =
        HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().wrap_connector(http);
    let client = |connector| {
        Client::builder(TokioExecutor::new())
            .http1_max_headers(ORIGIN_MAX_HEADERS)
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(limits.origin_idle_timeout)
            .build(connector)
    };
    Clients { any: client(any), h1: client(h1) }
}

/// How the client's upload went, as [`ClientBody`] saw it.
#[derive(Debug, Default)]
struct Upload {
    /// The client body ended with an error (bad framing, reset).
    failed: AtomicBool,
    /// The client sent nothing for `body_read_timeout`.
    stalled: AtomicBool,
}

pin_project_lite::pin_project! {
    /// The client's request body on its way to the origin: fails when the
    /// client stalls longer than `timeout` between two frames (hyper has no
    /// body read timeout of its own), and records why it failed, so that a
    /// client's broken upload is answered 400/408 rather than blamed on
    /// the origin.
    struct ClientBody {
        inner: Body,
        timeout: Duration,
        #[pin]
        deadline: tokio::time::Sleep,
        upload: Arc<Upload>,
    }
}

impl ClientBody {
    fn new(inner: Body, timeout: Duration, upload: Arc<Upload>) -> ClientBody {
        ClientBody { inner, timeout, deadline: tokio::time::sleep(timeout), upload }
    }
}

impl http_body::Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        match Pin::new(&mut *this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.deadline.as_mut().reset(tokio::time::Instant::now() + *this.timeout);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.upload.failed.store(true, Ordering::SeqCst);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.poll(cx) {
                Poll::Ready(()) => {
                    this.upload.stalled.store(true, Ordering::SeqCst);
                    Poll::Ready(Some(Err(format!("no request body data for {:?}", this.timeout).into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Copies bytes both ways between the client and the origin once both
/// sides have switched protocols; ends with either side, or on shutdown.
async fn tunnel(client: OnUpgrade, origin: OnUpgrade, guard: ActiveGuard) {
    let _guard = guard;
    let (client, origin) = match tokio::try_join!(client, origin) {
        Ok(both) => both,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed before the tunnel opened");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut origin = TokioIo::new(origin);
    match tokio::io::copy_bidirectional(&mut client, &mut origin).await {
        Ok((up, down)) => tracing::debug!(up, down, "tunnel closed"),
        Err(e) => tracing::debug!(error = %e, "tunnel ended with an error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stalled upload fails after the timeout and says so; a frame in
    /// time resets the clock; a failing client body is recorded as such.
    #[tokio::test(start_paused = true)]
    async fn client_bodies_fail_when_stalled_and_record_why() {
        use http_body_util::BodyExt as _;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, BoxError>>(1);
        let frames =
            futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
        let upload = Arc::new(Upload::default());
        let mut body = std::pin::pin!(ClientBody::new(
            body::boxed(http_body_util::StreamBody::new(frames)),
            Duration::from_secs(5),
            upload.clone(),
        ));
        tokio::time::advance(Duration::from_secs(4)).await;
        tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"a")))).await.unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        tokio::time::advance(Duration::from_secs(4)).await;
        tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"b")))).await.unwrap();
        assert!(body.frame().await.unwrap().is_ok(), "each frame resets the clock");
        assert!(body.frame().await.unwrap().is_err());
        assert!(upload.stalled.load(Ordering::SeqCst) && !upload.failed.load(Ordering::SeqCst));

        let failing = body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter([Err::<
            http_body::Frame<Bytes>,
            BoxError,
        >(
            "bad chunk".into(),
        )])));
        let upload = Arc::new(Upload::default());
        let mut body = std::pin::pin!(ClientBody::new(failing, Duration::from_secs(5), upload.clone()));
        assert!(body.frame().await.unwrap().is_err());
        assert!(upload.failed.load(Ordering::SeqCst) && !upload.stalled.load(Ordering::SeqCst));
        drop(tx);
    }

    #[test]
    fn cookie_fields_join_in_order() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1"));
        headers.append(COOKIE, HeaderValue::from_static(" b=2 "));
        headers.append(COOKIE, HeaderValue::from_static(""));
        headers.append(COOKIE, HeaderValue::from_static("c=3; d=4"));
        join_cookies(&mut headers);
        let all: Vec<_> = headers.get_all(COOKIE).iter().collect();
        assert_eq!(all, vec!["a=1; b=2; c=3; d=4"]);
        // One field stays byte for byte.
        let mut one = HeaderMap::new();
        one.insert(COOKIE, HeaderValue::from_static(" x=1;y=2"));
        join_cookies(&mut one);
        assert_eq!(one[COOKIE], " x=1;y=2");
    }

    #[test]
    fn origin_uris_join_base_path_and_target() {
        let origin = Origin::parse("https://legacy.internal:8443/app/").unwrap();
        let uri = origin_uri(&origin, &"/a/b?x=1".parse().unwrap()).unwrap();
        assert_eq!(uri, "https://legacy.internal:8443/app/a/b?x=1");
        let absolute = origin_uri(&origin, &"http://www.example.com/p?q".parse().unwrap()).unwrap();
        assert_eq!(absolute, "https://legacy.internal:8443/app/p?q");
        let root = Origin::parse("http://127.0.0.1:3000").unwrap();
        assert_eq!(origin_uri(&root, &"/".parse().unwrap()).unwrap(), "http://127.0.0.1:3000/");
        assert!(matches!(origin_uri(&root, &"*".parse().unwrap()), Err(ProxyError::BadRequest(_))));
    }

    #[test]
    fn ca_files_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let pair = crate::tls::self_signed(&["origin.test".into()]).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, &pair.cert_pem).unwrap();
        assert!(CaBundle::load(&good).is_ok());
        let key_only = dir.path().join("key.pem");
        std::fs::write(&key_only, &pair.key_pem).unwrap();
        assert!(CaBundle::load(&key_only).unwrap_err().contains("holds no certificate"));
        assert!(CaBundle::load(&dir.path().join("missing.pem")).unwrap_err().contains("cannot read"));
    }
}
