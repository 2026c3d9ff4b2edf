//! Stage 6, **forward**: send the request to the site's origin and bring
//! back its response, both bodies streamed.
//!
//! One set of pooled keep-alive clients per distinct trust set (webpki
//! roots, plus a site's `ca_file` when it has one): [`crate::h1_pool`] for
//! ordinary requests to `http://` origins, hyper-util's client for https
//! origins and upgrades (see `Clients`), built on first use and kept
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
//!
//! `origin_response_timeout` is how long the origin may take to answer: for
//! a request without a body it runs from the start (connect included), for
//! one with a body from the last body frame handed to the origin
//! connection, so a long upload is not cut off while it moves, yet an
//! origin that stops reading it, or never answers after it, still ends in
//! a 504.

use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{COOKIE, HOST, HeaderValue, UPGRADE};
use http::uri::{PathAndQuery, Scheme};
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
use crate::h1_pool::{self, Failure};
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
/// response head stays bounded by [`ORIGIN_MAX_BUF`].
const ORIGIN_MAX_HEADERS: usize = 2_000;

/// The largest response head an origin may send (nginx's default
/// `proxy_buffer_size` is 4-8 KB; this is the default `max_header_bytes`
/// the proxy accepts from clients: a legacy page with a few hundred cookies
/// sends 40 KB).
///
/// Upstream hyper also used this as the size its reads grow to: with
/// hyper's default of about 400 KB, each body chunk handed to the client
/// side was up to 400 KB, and a slow client held a few of them (one being
/// read, one in the body channel, one queued to write): 2.1 MB of RSS per
/// slow stream, about 300 KB at 64 KiB. The patched hyper (vendor/hyper)
/// reads at most 64 KiB at once whatever this limit, and only 16 KiB while
/// the previous chunks are still held (a slow client), and queues at most
/// 16 KiB to write: 55-128 KB per slow stream, 64 KiB reads for a fast
/// one (BENCHMARKS.md).
const ORIGIN_MAX_BUF: usize = 64 * 1024;

/// Idle keep-alive connections kept per origin (hyper's default is
/// unbounded): after a burst of 2,000 concurrent requests the pool kept
/// 2,000 origin connections and their buffers, doubling the memory of
/// 2,000 idle clients. nginx's `keepalive` directive bounds the same.
const ORIGIN_MAX_IDLE_PER_HOST: usize = 128;

type HttpsClient = Client<Lenient<HttpsConnector<HttpConnector>>, Body>;
type UpgradeClient = Client<HttpsConnector<HttpConnector>, Body>;

/// The clients for one trust set: `plain` for ordinary requests to
/// `http://` origins (always HTTP/1.1: no ALPN without TLS), an own pool
/// that costs a fraction of hyper-util's ([`crate::h1_pool`]); `any`
/// negotiates HTTP/2 or HTTP/1.1 by ALPN with https origins; `h1` offers
/// HTTP/1.1 only, for upgrades (which HTTP/2 cannot carry).
struct Clients {
    plain: h1_pool::Pool,
    any: HttpsClient,
    h1: UpgradeClient,
}

impl Clients {
    /// Sends the request to `origin` on the client its scheme and upgrade
    /// call for, with the request target each expects.
    async fn send(
        &self,
        origin: &Origin,
        target: PathAndQuery,
        upgrade: bool,
        mut request: Request<Body>,
    ) -> Result<Response<Body>, Failure> {
        if !upgrade && origin.scheme == Scheme::HTTP {
            *request.uri_mut() = Uri::from(target);
            return self.plain.send(&origin.authority, request).await;
        }
        *request.uri_mut() = Uri::builder()
            .scheme(origin.scheme.clone())
            .authority(origin.authority.clone())
            .path_and_query(target)
            .build()
            .expect("a scheme, an authority and a path make a URI");
        let sent = if upgrade { self.h1.request(request).await } else { self.any.request(request).await };
        sent.map(|response| response.map(body::boxed))
            .map_err(|e| if e.is_connect() { Failure::Connect(e.into()) } else { Failure::Other(e.into()) })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ClientKey {
    ca: Option<[u8; 32]>,
    connect_timeout: Duration,
    idle_timeout: Duration,
}

/// The pooled origin clients, shared by every request of the server.
#[derive(Default)]
pub struct Forwarder {
    /// Shared, not cloned, per request: a `Client` clone copies its
    /// connector, pool handle and executor (several `Arc`s each).
    /// A list, not a map: it holds one entry per distinct trust set and
    /// timeouts (a handful), and a scan beats hashing the key every request.
    clients: Mutex<Vec<(ClientKey, Arc<Clients>)>>,
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

    fn clients(&self, ca: Option<&CaBundle>, limits: &Limits) -> Arc<Clients> {
        let key = ClientKey {
            ca: ca.map(|c| c.digest),
            connect_timeout: limits.origin_connect_timeout,
            idle_timeout: limits.origin_idle_timeout,
        };
        let mut map = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, clients)) = map.iter().find(|(k, _)| *k == key) {
            return clients.clone();
        }
        let clients = Arc::new(build_clients(ca, limits));
        map.push((key, clients.clone()));
        clients
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
        let path = origin_path(origin, &parts.uri)?;
        // A request with a body: the client's upload is watched for
        // stalls and broken framing, and the origin is timed from the last
        // frame, not from the start (a slow upload is not a late origin).
        // A request without one (most of them) is sent as it is: no
        // wrappers, no timer, no allocation.
        let (body, upload) = if http_body::Body::is_end_stream(&body) {
            (body, None)
        } else {
            let upload = Arc::new(Upload::default());
            let moved = Arc::new(Moved::new());
            let watched = ClientBody::new(body, target.limits.body_read_timeout, upload.clone());
            (
                body::boxed(Tracked { inner: body::boxed(watched), moved: moved.clone() }),
                Some((upload, moved)),
            )
        };
        let mut request = Request::from_parts(parts, body);
        *request.version_mut() = Version::HTTP_11;

        let clients = self.clients(target.ca, target.limits);
        let timeout = target.limits.origin_response_timeout;
        let sent = clients.send(origin, path, upgrade.is_some(), request);
        let answered = match &upload {
            None => tokio::time::timeout(timeout, sent).await.ok(),
            Some((_, moved)) => tokio::select! {
                biased;
                answer = sent => Some(answer),
                () = moved.quiet_for(timeout) => None,
            },
        };
        let response = match answered {
            None => return Err(ProxyError::OriginTimeout { origin: origin.uri.to_string(), timeout }),
            Some(Err(Failure::Connect(source))) => {
                return Err(ProxyError::OriginUnreachable { origin: origin.uri.to_string(), source });
            }
            // The client's own upload broke (a bad chunk, a stall): its
            // fault, not the origin's; the origin's request was aborted.
            Some(Err(Failure::Other(e)))
                if upload.as_ref().is_some_and(|(u, _)| u.stalled.load(Ordering::SeqCst)) =>
            {
                tracing::debug!(error = %e, "request body stalled; origin request aborted");
                return Err(ProxyError::ClientTimeout(target.limits.body_read_timeout));
            }
            Some(Err(Failure::Other(e)))
                if upload.as_ref().is_some_and(|(u, _)| u.failed.load(Ordering::SeqCst)) =>
            {
                return Err(ProxyError::ClientBody(e));
            }
            Some(Err(Failure::Other(source))) => {
                return Err(ProxyError::OriginFailed { origin: origin.uri.to_string(), source });
            }
            Some(Ok(response)) => response,
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
        Ok(Response::from_parts(parts, incoming))
    }
}

/// When a request body last moved towards the origin, for
/// `origin_response_timeout`: hyper polls the next frame only once the
/// previous one is written, so a frame taken is progress, and no frame for
/// the whole timeout means the origin stopped reading (or the client
/// stopped sending): either way the request ends as a 504 instead of
/// hanging.
#[derive(Debug)]
struct Moved {
    start: tokio::time::Instant,
    /// Milliseconds after `start`.
    at_ms: AtomicU64,
}

impl Moved {
    fn new() -> Moved {
        Moved { start: tokio::time::Instant::now(), at_ms: AtomicU64::new(0) }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.at_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `timeout`.
    async fn quiet_for(&self, timeout: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.at_ms.load(Ordering::Relaxed));
            let deadline = last + timeout;
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// The request body, touching [`Moved`] at each frame (and at its end).
struct Tracked {
    inner: Body,
    moved: Arc<Moved>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        if poll.is_ready() {
            this.moved.touch();
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
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
    // The fallback cannot happen for a host that routed; it is what
    // hyper-util would derive (the own pool derives nothing).
    match HeaderValue::from_str(host)
        .or_else(|_| HeaderValue::from_str(target.site.origin.authority.as_str()))
    {
        Ok(value) => {
            headers.insert(HOST, value);
        }
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

/// The request target at the origin: its base path, then the request's
/// path and query (from origin-form, absolute-form or an HTTP/2 `:path`
/// alike). Without a base path, the request's own (shared bytes, no copy).
pub fn origin_path(origin: &Origin, request: &Uri) -> Result<PathAndQuery, ProxyError> {
    let path_and_query = request.path_and_query().map_or("/", PathAndQuery::as_str);
    if !path_and_query.starts_with('/') {
        return Err(ProxyError::BadRequest(format!("request target {path_and_query:?} is not a path")));
    }
    if origin.base_path.is_empty()
        && let Some(own) = request.path_and_query()
    {
        return Ok(own.clone());
    }
    let mut joined = String::with_capacity(origin.base_path.len() + path_and_query.len());
    joined.push_str(&origin.base_path);
    joined.push_str(path_and_query);
    PathAndQuery::try_from(joined)
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
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .http1_max_headers(ORIGIN_MAX_HEADERS)
        .http1_max_buf_size(ORIGIN_MAX_BUF)
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(limits.origin_idle_timeout)
        .pool_max_idle_per_host(ORIGIN_MAX_IDLE_PER_HOST);
    let mut plain = hyper::client::conn::http1::Builder::new();
    plain.max_headers(ORIGIN_MAX_HEADERS).max_buf_size(ORIGIN_MAX_BUF);
    Clients {
        plain: h1_pool::Pool::new(
            plain,
            limits.origin_connect_timeout,
            limits.origin_idle_timeout,
            ORIGIN_MAX_IDLE_PER_HOST,
        ),
        any: builder.build(Lenient(any)),
        h1: builder.build(h1),
    }
}

/// The origin connector for ordinary requests: its connections outlive an
/// origin that stops reading.
///
/// An origin may answer before reading the whole request body (a 413 for a
/// too-large upload, a redirect) and close. hyper's client is then still
/// writing the body; its next write fails (EPIPE / ECONNRESET) and it fails
/// the whole request, before reading the answer that is already there, so
/// the visitor would get a 502 instead of the origin's 413. Once a write
/// has failed that way, [`LenientIo`] reports the rest of the body as
/// written (dropping it: the origin is gone) while reads go on, so the
/// answer is read and forwarded; when there is none, the read side fails
/// (end of stream, reset) and the request still ends as a 502. Not used for
/// upgrades: a WebSocket tunnel must end when the origin goes.
#[derive(Clone)]
struct Lenient<C>(C);

impl<C> tower_service::Service<Uri> for Lenient<C>
where
    C: tower_service::Service<Uri>,
    C::Future: Unpin,
{
    type Response = LenientIo<C::Response>;
    type Error = C::Error;
    type Future = futures_util::future::MapOk<C::Future, fn(C::Response) -> LenientIo<C::Response>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        use futures_util::TryFutureExt as _;
        self.0.call(uri).map_ok(lenient as fn(C::Response) -> LenientIo<C::Response>)
    }
}

/// `io` as a [`LenientIo`], for the connectors of ordinary requests.
pub(crate) fn lenient<T>(io: T) -> LenientIo<T> {
    LenientIo { inner: io, gone: false }
}

/// An origin connection whose writes succeed (into nothing) once the origin
/// has closed its end; see [`Lenient`].
pub(crate) struct LenientIo<T> {
    inner: T,
    /// A write failed because the origin closed: drop what follows.
    gone: bool,
}

/// Whether a write error means the origin closed its end.
fn origin_gone(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset)
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for LenientIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for LenientIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.gone {
            return Poll::Ready(Ok(buf.len()));
        }
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Err(e)) if origin_gone(&e) => {
                tracing::debug!(error = %e, "origin closed while the request was being sent; reading its answer");
                this.gone = true;
                Poll::Ready(Ok(buf.len()))
            }
            other => other,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let all = bufs.iter().map(|b| b.len()).sum();
        if this.gone {
            return Poll::Ready(Ok(all));
        }
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Err(e)) if origin_gone(&e) => {
                this.gone = true;
                Poll::Ready(Ok(all))
            }
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.gone {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(Err(e)) if origin_gone(&e) => {
                this.gone = true;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.gone {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<T: hyper_util::client::legacy::connect::Connection> hyper_util::client::legacy::connect::Connection
    for LenientIo<T>
{
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        self.inner.connected()
    }
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
    fn origin_paths_join_base_path_and_target() {
        let origin = Origin::parse("https://legacy.internal:8443/app/").unwrap();
        let path = origin_path(&origin, &"/a/b?x=1".parse().unwrap()).unwrap();
        assert_eq!(path, "/app/a/b?x=1");
        let absolute = origin_path(&origin, &"http://www.example.com/p?q".parse().unwrap()).unwrap();
        assert_eq!(absolute, "/app/p?q");
        let root = Origin::parse("http://127.0.0.1:3000").unwrap();
        assert_eq!(origin_path(&root, &"/".parse().unwrap()).unwrap(), "/");
        assert_eq!(origin_path(&root, &"http://h/x?y".parse().unwrap()).unwrap(), "/x?y");
        assert!(matches!(origin_path(&root, &"*".parse().unwrap()), Err(ProxyError::BadRequest(_))));
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
