//! Integration-test harness: origins, a proxy started in-process (or as the
//! real binary), and clients, all on `127.0.0.1:0`.
//!
//! Builder style, as linkerd2-proxy's tests:
//!
//! ```ignore
//! mod common;
//! use common::*;
//!
//! #[tokio::test]
//! async fn hello() {
//!     let origin = origin().route("/", "hello").run().await;
//!     let proxy = proxy().origin(&origin).run().await;
//!     let mut client = proxy.http1().await;
//!     let response = client.get("/").await;
//!     assert_eq!(response.text(), "hello");
//! }
//! ```
//!
//! - **Origins**: [`origin`] builds a hyper server from fixed routes and
//!   closures; [`demo_origin`] is the sample legacy site (its `/echo` returns
//!   the request head as JSON, see [`Echo`]); [`raw_origin`] hands each
//!   accepted `TcpStream` to a closure, for origins that misbehave;
//!   [`closed_port`] is an address nothing listens on.
//!   [`cookie_origin`] answers every path with fixed response headers
//!   (`Set-Cookie`s...) and a body listing the `Cookie` fields it received,
//!   and records each request's headers.
//! - **Proxy**: [`proxy`] writes a config into a temp dir (one site, host
//!   [`HOST`] by default, a policy that lets everything through so core
//!   tests see the proxy alone) and starts it in-process with
//!   `consentry::server::start`. `.policy(...)`, `.limit(...)`, `.toml(...)`
//!   adjust it; `.site(...)` adds a site on the same origin; `.https(&[&cert])`
//!   adds TLS; `.admin()` the admin listener ([`Proxy::admin`] calls it);
//!   `.watch()` hot reload ([`Proxy::save_config`] rewrites the file as an
//!   editor does). [`ProxyBuilder::spawn_binary`] runs the built `consentry`
//!   binary instead, to measure its memory or send it signals.
//! - **Clients**: [`Proxy::http1`] (one HTTP/1.1 connection; [`Proxy::http1_to`]
//!   for another site's host),
//!   [`Proxy::h2`] (HTTP/2 over TLS with SNI, trusting given test
//!   certificates), [`raw`] (bytes in, bytes out, for malformed requests).
//! - [`Browser`] keeps cookies as a browser does (RFC 6265bis §5.7: one per
//!   name, domain, host-only flag and path; deletions; Domain/Path
//!   matching), to follow what a visitor's browser holds across responses.
//! - [`within`] bounds a test so a hang fails instead of blocking CI;
//!   [`metric`] reads one sample out of `/metrics` text.
//!
//! Every test file includes this module and uses a part of it.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use consentry::body::{self, Body};
use consentry::server::{Running, Stopped};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The host the test site answers for.
pub const HOST: &str = "demo.test";

/// How long any one test may take before it counts as hung.
pub const TEST_LIMIT: Duration = Duration::from_secs(60);

/// Runs a future to completion or panics after [`TEST_LIMIT`]: a hang is a
/// failure, not a stuck CI run. This is not a speed assertion.
pub async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(TEST_LIMIT, future).await.expect("test hung")
}

// ---------------------------------------------------------------------------
// Origins

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Handler = Arc<dyn Fn(Request<Incoming>) -> BoxFuture<Response<Body>> + Send + Sync>;

/// A running origin; stops when dropped.
#[derive(Debug)]
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://ADDR` (or `https://localhost:PORT` for a TLS origin).
    pub url: String,
    task: JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Builds an origin from routes (exact paths) and a fallback.
#[derive(Default)]
pub struct OriginBuilder {
    routes: HashMap<String, Handler>,
    fallback: Option<Handler>,
}

/// Starts building an origin.
pub fn origin() -> OriginBuilder {
    OriginBuilder::default()
}

impl OriginBuilder {
    /// `path` answers 200 with this text.
    pub fn route(self, path: &str, text: &'static str) -> Self {
        self.route_fn(path, move |_| async move { Response::new(body::full(text)) })
    }

    /// `path` is answered by a closure.
    pub fn route_fn<F, Fut>(mut self, path: &str, f: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        self.routes.insert(path.to_string(), Arc::new(move |r| Box::pin(f(r))));
        self
    }

    /// Every path without a route: `/echo` semantics ([`echo`]) unless set.
    pub fn fallback_fn<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        self.fallback = Some(Arc::new(move |r| Box::pin(f(r))));
        self
    }

    /// Serves plain HTTP/1.1 and h2c on `127.0.0.1:0`.
    pub async fn run(self) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let this = Arc::new(self);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                tokio::spawn(this.clone().serve(stream));
            }
        });
        Origin { addr, url: format!("http://{addr}"), task }
    }

    /// Serves HTTPS (ALPN h2 and http/1.1) with `cert`, which must name
    /// `localhost`; the URL is `https://localhost:PORT`.
    pub async fn run_tls(self, cert: &TestCert) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(consentry::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der.clone()], cert.key_der())
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let this = Arc::new(self);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let acceptor = acceptor.clone();
                let this = this.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        this.serve(tls).await;
                    }
                });
            }
        });
        Origin { addr, url: format!("https://localhost:{}", addr.port()), task }
    }

    async fn serve<I>(self: Arc<Self>, io: I)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = service_fn(move |request: Request<Incoming>| {
            let this = self.clone();
            async move {
                let handler = this.routes.get(request.uri().path()).or(this.fallback.as_ref()).cloned();
                let response = match handler {
                    Some(handler) => handler(request).await,
                    None => echo(request).await,
                };
                Ok::<_, Infallible>(response)
            }
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new());
        let _ = builder.serve_connection_with_upgrades(TokioIo::new(io), service).await;
    }
}

/// Answers with the request head as JSON (the demo origin's `/echo`).
pub async fn echo(request: Request<Incoming>) -> Response<Body> {
    consentry::demo::echo(&request)
}

/// The sample legacy site of `consentry demo`.
pub async fn demo_origin() -> Origin {
    let (addr, task) = consentry::demo::spawn_origin("127.0.0.1:0".parse().unwrap()).await.unwrap();
    Origin { addr, url: format!("http://{addr}"), task }
}

/// An origin that hands every accepted connection to `f` as raw TCP.
pub async fn raw_origin<F, Fut>(f: F) -> Origin
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(f(stream));
        }
    });
    Origin { addr, url: format!("http://{addr}"), task }
}

/// The `Date` every [`cookie_origin`] response carries, so that two
/// responses to the same request are byte-identical.
pub const FIXED_DATE: &str = "Tue, 24 Nov 2026 12:00:00 GMT";

/// An origin that answers every path `200` with `headers` (in order, after
/// `Content-Type: application/json` and [`FIXED_DATE`]) and the body
/// `{"cookie":[...]}`: the `Cookie` fields it received, in order, as sent.
/// Every request's headers are recorded ([`CookieOrigin::seen`]).
pub async fn cookie_origin(headers: Vec<(String, String)>) -> CookieOrigin {
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let record = seen.clone();
    let headers = Arc::new(headers);
    let origin = origin()
        .fallback_fn(move |request: Request<Incoming>| {
            let (record, headers) = (record.clone(), headers.clone());
            async move {
                let cookies: Vec<String> = request
                    .headers()
                    .get_all(http::header::COOKIE)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect();
                record.lock().unwrap().push(request.headers().clone());
                let mut response =
                    Response::new(body::full(serde_json::json!({ "cookie": cookies }).to_string()));
                let h = response.headers_mut();
                h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
                h.insert(http::header::DATE, http::HeaderValue::from_static(FIXED_DATE));
                for (name, value) in headers.iter() {
                    h.append(
                        http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                        http::HeaderValue::from_str(value).unwrap(),
                    );
                }
                response
            }
        })
        .run()
        .await;
    CookieOrigin { origin, seen }
}

/// A running [`cookie_origin`].
#[derive(Debug)]
pub struct CookieOrigin {
    /// The server.
    pub origin: Origin,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
}

impl CookieOrigin {
    /// The headers of every request so far, in arrival order.
    pub fn seen(&self) -> Vec<HeaderMap> {
        self.seen.lock().unwrap().clone()
    }

    /// The headers of the last request (panics if there was none).
    pub fn last(&self) -> HeaderMap {
        self.seen.lock().unwrap().last().expect("the origin saw no request").clone()
    }

    /// Every value of `name` in the last request, as text.
    pub fn last_all(&self, name: &str) -> Vec<String> {
        self.last().get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect()
    }
}

/// The `{"cookie":[...]}` body of a [`cookie_origin`] response.
pub fn cookies_seen(body: &[u8]) -> Vec<String> {
    let json: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not a cookie_origin body ({e}): {}", String::from_utf8_lossy(body)));
    json["cookie"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

/// One sample of Prometheus text: the value of `name` with exactly these
/// labels (in the order written), or `None` when there is no such line.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut key = name.to_string();
    if !labels.is_empty() {
        let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        key = format!("{name}{{{}}}", inner.join(","));
    }
    text.lines()
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.parse().unwrap())
}

/// Reads a request head (up to the blank line) from a raw connection.
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// An address nothing listens on (bound, then released).
pub async fn closed_port() -> SocketAddr {
    free_ports(1).await[0]
}

/// `n` distinct loopback addresses that were free a moment ago (all bound
/// at once, then released), for configs that need fixed ports.
pub async fn free_ports(n: usize) -> Vec<SocketAddr> {
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    listeners.iter().map(|l| l.local_addr().unwrap()).collect()
}

/// What [`echo`] reports.
#[derive(Debug, Clone)]
pub struct Echo {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Every header field, in order, names lower case.
    pub headers: Vec<(String, String)>,
}

impl Echo {
    /// Parses an echo body.
    pub fn parse(body: &[u8]) -> Echo {
        let json: serde_json::Value = serde_json::from_slice(body)
            .unwrap_or_else(|e| panic!("not an echo ({e}): {}", String::from_utf8_lossy(body)));
        let headers = json["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| (pair[0].as_str().unwrap().to_string(), pair[1].as_str().unwrap().to_string()))
            .collect();
        Echo {
            method: json["method"].as_str().unwrap().to_string(),
            path: json["path"].as_str().unwrap().to_string(),
            headers,
        }
    }

    /// Every value of a header.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The only value of a header (panics if absent or repeated).
    pub fn one(&self, name: &str) -> &str {
        let all = self.all(name);
        assert_eq!(all.len(), 1, "{name}: {all:?} in {:?}", self.headers);
        all[0]
    }

    /// Whether the header is present.
    pub fn has(&self, name: &str) -> bool {
        !self.all(name).is_empty()
    }
}

// ---------------------------------------------------------------------------
// A browser's cookie store

/// A minimal browser cookie store: enough of RFC 6265bis §5.7 to follow
/// which cookies a visitor holds after each response. A cookie is keyed by
/// (name, domain, host-only, path); `Max-Age<=0` or a past `Expires`
/// deletes; a `Domain` the host is not inside is refused. Attributes are
/// read with a plain split (the tests send well-formed headers), not with
/// consentry's own parser, so the model does not share its bugs.
#[derive(Debug, Default, Clone)]
pub struct Browser {
    /// (name, domain, host_only, path, value), in creation order.
    cookies: Vec<(String, String, bool, String, String)>,
}

impl Browser {
    /// An empty store.
    pub fn new() -> Browser {
        Browser::default()
    }

    /// Applies every `Set-Cookie` of a response to a request for `host`.
    pub fn receive(&mut self, host: &str, response: &TestResponse) {
        for value in response.header_all("set-cookie") {
            self.set(host, &value);
        }
    }

    /// Applies one `Set-Cookie` value received from `host`.
    pub fn set(&mut self, host: &str, header: &str) {
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else { return };
        let (name, value) = (name.trim().to_string(), value.trim().to_string());
        let (mut domain, mut path, mut delete) = (None, "/".to_string(), false);
        for attribute in parts {
            let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
            let (key, val) = (key.trim().to_ascii_lowercase(), val.trim());
            match key.as_str() {
                "domain" if !val.is_empty() => {
                    domain = Some(val.trim_start_matches('.').to_ascii_lowercase())
                }
                "path" if val.starts_with('/') => path = val.to_string(),
                "max-age" => delete = val.parse::<i64>().is_ok_and(|n| n <= 0),
                "expires" => {
                    delete |= httpdate::parse_http_date(val).is_ok_and(|t| t <= std::time::SystemTime::now())
                }
                _ => {}
            }
        }
        let (domain, host_only) = match domain {
            Some(d) if host == d || host.ends_with(&format!(".{d}")) => (d, false),
            Some(_) => return, // a Domain the host is not inside: refused
            None => (host.to_string(), true),
        };
        let key = |c: &(String, String, bool, String, String)| {
            c.0 == name && c.1 == domain && c.2 == host_only && c.3 == path
        };
        let at = self.cookies.iter().position(key);
        match (at, delete) {
            (Some(i), true) => {
                self.cookies.remove(i);
            }
            (Some(i), false) => self.cookies[i].4 = value,
            (None, true) => {}
            (None, false) => self.cookies.push((name, domain, host_only, path, value)),
        }
    }

    /// The `Cookie` header a request to `host` and `path` carries (longer
    /// paths first, then creation order), or `None` without cookies.
    pub fn cookie_header(&self, host: &str, path: &str) -> Option<String> {
        let mut sent: Vec<&(String, String, bool, String, String)> = self
            .cookies
            .iter()
            .filter(|c| if c.2 { c.1 == host } else { host == c.1 || host.ends_with(&format!(".{}", c.1)) })
            .filter(|c| path.starts_with(&c.3))
            .collect();
        sent.sort_by_key(|c| std::cmp::Reverse(c.3.len()));
        let pairs: Vec<String> = sent.iter().map(|c| format!("{}={}", c.0, c.4)).collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// Every cookie held, as `name@domain` (`name@host-only:HOST`).
    pub fn held(&self) -> Vec<String> {
        self.cookies
            .iter()
            .map(|c| if c.2 { format!("{}@host-only:{}", c.0, c.1) } else { format!("{}@{}", c.0, c.1) })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Certificates

/// A self-signed certificate written to a temp dir.
#[derive(Debug)]
pub struct TestCert {
    /// The certificate file.
    pub cert_path: PathBuf,
    /// The key file.
    pub key_path: PathBuf,
    /// The certificate, DER.
    pub der: rustls_pki_types::CertificateDer<'static>,
    key_pem: String,
    _dir: tempfile::TempDir,
}

/// A self-signed certificate for these names.
pub fn test_cert(hosts: &[&str]) -> TestCert {
    use rustls_pki_types::pem::PemObject as _;
    let names: Vec<String> = hosts.iter().map(|h| (*h).to_string()).collect();
    let pair = consentry::tls::self_signed(&names).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &pair.cert_pem).unwrap();
    std::fs::write(&key_path, &pair.key_pem).unwrap();
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pair.cert_pem.as_bytes()).unwrap();
    TestCert { cert_path, key_path, der, key_pem: pair.key_pem, _dir: dir }
}

impl TestCert {
    /// The private key, DER.
    pub fn key_der(&self) -> rustls_pki_types::PrivateKeyDer<'static> {
        use rustls_pki_types::pem::PemObject as _;
        rustls_pki_types::PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap()
    }
}

// ---------------------------------------------------------------------------
// The proxy

/// Builds a proxy config; see the module doc.
#[derive(Debug, Clone)]
pub struct ProxyBuilder {
    origin: String,
    hosts: Vec<String>,
    preserve_host: bool,
    limits: Vec<(String, String)>,
    policy: String,
    certs: Vec<(PathBuf, PathBuf)>,
    site_extra: String,
    sites: Vec<(String, Vec<String>, String)>,
    head: String,
    listen_extra: String,
    extra: String,
    admin: Option<String>,
    watch: bool,
}

/// Starts building a proxy.
pub fn proxy() -> ProxyBuilder {
    ProxyBuilder {
        origin: "http://127.0.0.1:9".into(),
        hosts: vec![HOST.to_string()],
        preserve_host: true,
        limits: Vec::new(),
        policy: "unknown_cookies = \"allow\"\nunknown_third_party = \"allow\"\n".into(),
        certs: Vec::new(),
        site_extra: String::new(),
        sites: Vec::new(),
        head: String::new(),
        listen_extra: String::new(),
        extra: String::new(),
        admin: None,
        watch: false,
    }
}

impl ProxyBuilder {
    /// Forward to this origin.
    pub fn origin(mut self, origin: &Origin) -> Self {
        self.origin.clone_from(&origin.url);
        self
    }

    /// Forward to this origin URL.
    pub fn origin_url(mut self, url: impl Into<String>) -> Self {
        self.origin = url.into();
        self
    }

    /// The site's hosts (default: [`HOST`]).
    pub fn hosts(mut self, hosts: &[&str]) -> Self {
        self.hosts = hosts.iter().map(|h| (*h).to_string()).collect();
        self
    }

    /// `preserve_host` of the site.
    pub fn preserve_host(mut self, preserve: bool) -> Self {
        self.preserve_host = preserve;
        self
    }

    /// A `[limits]` key with a TOML value: `.limit("header_read_timeout", "\"300ms\"")`.
    pub fn limit(mut self, key: &str, value: &str) -> Self {
        self.limits.push((key.to_string(), value.to_string()));
        self
    }

    /// The body of `[policy.test]` (default: everything allowed).
    pub fn policy(mut self, toml: &str) -> Self {
        self.policy = toml.to_string();
        self
    }

    /// Extra keys in the `[[site]]` table (`ca_file = "..."`).
    pub fn site_toml(mut self, toml: &str) -> Self {
        self.site_extra.push_str(toml);
        self.site_extra.push('\n');
        self
    }

    /// Raw TOML appended to the file (more policy tables, cookie rules...).
    pub fn toml(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }

    /// Another `[[site]]` on the same origin, with its own hosts and policy
    /// (`[policy.NAME]`, written with [`ProxyBuilder::toml`]).
    pub fn site(mut self, name: &str, hosts: &[&str], policy: &str) -> Self {
        self.sites.push((
            name.to_string(),
            hosts.iter().map(|h| (*h).to_string()).collect(),
            policy.to_string(),
        ));
        self
    }

    /// Extra keys in `[listen]` (`trusted_proxies = ["127.0.0.1"]`).
    pub fn listen(mut self, toml: &str) -> Self {
        self.listen_extra.push_str(toml);
        self.listen_extra.push('\n');
        self
    }

    /// Top-level tables written before the sites (`[audit]`, `[log]`...).
    pub fn head(mut self, toml: &str) -> Self {
        self.head.push_str(toml);
        self.head.push('\n');
        self
    }

    /// An admin listener on `127.0.0.1:0` ([`Proxy::admin`]).
    pub fn admin(self) -> Self {
        self.admin_with("")
    }

    /// An admin listener with more `[admin]` keys (`token = "..."`).
    pub fn admin_with(mut self, toml: &str) -> Self {
        self.admin = Some(toml.to_string());
        self
    }

    /// Hot reload: the file is watched as `consentry run` watches it.
    pub fn watch(mut self) -> Self {
        self.watch = true;
        self
    }

    /// Adds an HTTPS listener with these certificates (chosen by SNI).
    pub fn https(mut self, certs: &[&TestCert]) -> Self {
        self.certs = certs.iter().map(|c| (c.cert_path.clone(), c.key_path.clone())).collect();
        self
    }

    /// The config file text.
    pub fn config_text(&self) -> String {
        let mut text = String::from("[listen]\nhttp = \"127.0.0.1:0\"\n");
        if !self.certs.is_empty() {
            text.push_str("https = \"127.0.0.1:0\"\n");
        }
        text.push_str(&self.listen_extra);
        for (cert, key) in &self.certs {
            text.push_str(&format!("[[listen.certificate]]\ncert = {cert:?}\nkey = {key:?}\n"));
        }
        if let Some(keys) = &self.admin {
            text.push_str(&format!("\n[admin]\nlisten = \"127.0.0.1:0\"\n{keys}\n"));
        }
        text.push_str(&self.head);
        text.push_str("\n[limits]\n");
        for (key, value) in &self.limits {
            text.push_str(&format!("{key} = {value}\n"));
        }
        let hosts: Vec<String> = self.hosts.iter().map(|h| format!("{h:?}")).collect();
        text.push_str(&format!(
            "\n[[site]]\nname = \"test\"\nhosts = [{}]\norigin = {:?}\npolicy = \"test\"\npreserve_host = {}\n{}",
            hosts.join(", "),
            self.origin,
            self.preserve_host,
            self.site_extra
        ));
        for (name, hosts, policy) in &self.sites {
            let hosts: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
            text.push_str(&format!(
                "\n[[site]]\nname = {name:?}\nhosts = [{}]\norigin = {:?}\npolicy = {policy:?}\n",
                hosts.join(", "),
                self.origin
            ));
        }
        text.push_str(&format!("\n[policy.test]\n{}\n{}", self.policy, self.extra));
        text
    }

    /// Writes the config into a new temp dir.
    pub fn write(&self) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("consentry.toml");
        std::fs::write(&path, self.config_text()).unwrap();
        (dir, path)
    }

    /// Starts the proxy in this process.
    pub async fn run(self) -> Proxy {
        let (dir, path) = self.write();
        let running = consentry::server::start(&path)
            .await
            .unwrap_or_else(|e| panic!("proxy did not start: {e}\n{}", self.config_text()));
        let watcher = self
            .watch
            .then(|| consentry::reload::spawn_watcher(running.store.clone(), path.clone()).unwrap());
        Proxy {
            http: running.http_addr.unwrap(),
            https: running.https_addr,
            admin: running.admin_addr,
            running: Some(running),
            config_path: path,
            watcher,
            _dir: dir,
        }
    }

    /// Starts the built `consentry` binary with this config.
    pub fn spawn_binary(self) -> Binary {
        Binary::spawn(self)
    }
}

/// A proxy running in this process; shut down when dropped.
#[derive(Debug)]
pub struct Proxy {
    /// Its HTTP address.
    pub http: SocketAddr,
    /// Its HTTPS address, when configured.
    pub https: Option<SocketAddr>,
    /// The server (taken by [`Proxy::shutdown`]).
    pub running: Option<Running>,
    /// Its admin API address, when configured.
    pub admin: Option<SocketAddr>,
    /// The config file it runs.
    pub config_path: PathBuf,
    /// The hot-reload watcher, when built with [`ProxyBuilder::watch`].
    pub watcher: Option<consentry::reload::WatcherHandle>,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// Graceful shutdown with the configured grace period.
    pub async fn shutdown(&mut self) -> Stopped {
        self.running.take().expect("already shut down").shutdown().await
    }

    /// The server.
    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("shut down")
    }

    /// One HTTP/1.1 connection to the plain listener, sending `Host: HOST`.
    pub async fn http1(&self) -> Client {
        Client::http1(self.http, HOST).await
    }

    /// One HTTP/1.1 connection to the plain listener, sending `Host: host`.
    pub async fn http1_to(&self, host: &str) -> Client {
        Client::http1(self.http, host).await
    }

    /// `GET path` on the admin API (which must be configured).
    pub async fn admin(&self, path: &str) -> TestResponse {
        let mut client = Client::http1(self.admin.expect("no admin listener: use .admin()"), "admin").await;
        client.get(path).await
    }

    /// The admin API's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self.admin("/metrics").await;
        assert_eq!(response.status, StatusCode::OK);
        response.text()
    }

    /// Rewrites the config file as an editor saves: a temporary file
    /// renamed over it.
    pub fn save_config(&self, text: &str) {
        let tmp = self.config_path.with_extension("toml.swp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.config_path).unwrap();
    }

    /// One HTTP/2-over-TLS connection to the HTTPS listener with this SNI
    /// name (also the `:authority`), trusting `trust`.
    pub async fn h2(&self, server_name: &str, trust: &[&TestCert]) -> Client {
        let (client, _) = Client::h2_tls(self.https.expect("no https listener"), server_name, trust).await;
        client
    }
}

// ---------------------------------------------------------------------------
// Clients

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Body>),
    H2(hyper::client::conn::http2::SendRequest<Body>),
}

/// One client connection (HTTP/1.1 or HTTP/2).
pub struct Client {
    sender: Sender,
    host: String,
    https: bool,
}

/// A fully read response.
#[derive(Debug)]
pub struct TestResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl TestResponse {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as an [`Echo`].
    pub fn echo(&self) -> Echo {
        Echo::parse(&self.body)
    }

    /// Every value of a response header.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }
}

impl Client {
    /// Connects one HTTP/1.1 connection; requests carry `Host: host`.
    pub async fn http1(addr: SocketAddr, host: &str) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn.with_upgrades());
        Client { sender: Sender::H1(sender), host: host.to_string(), https: false }
    }

    /// Connects HTTP/2 over TLS with SNI `server_name`, trusting `trust`;
    /// also returns the certificate the server presented.
    pub async fn h2_tls(
        addr: SocketAddr,
        server_name: &str,
        trust: &[&TestCert],
    ) -> (Client, rustls_pki_types::CertificateDer<'static>) {
        let tls = tls_connect(addr, server_name, trust, &[b"h2"]).await;
        let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn);
        (Client { sender: Sender::H2(sender), host: server_name.to_string(), https: true }, presented)
    }

    /// A request builder for `path` on this client's host (`Host` for
    /// HTTP/1.1, an absolute URI for HTTP/2).
    pub fn request(&self, method: http::Method, path: &str) -> http::request::Builder {
        match self.sender {
            Sender::H1(_) => {
                Request::builder().method(method).uri(path).header(http::header::HOST, &self.host)
            }
            Sender::H2(_) => {
                let scheme = if self.https { "https" } else { "http" };
                Request::builder()
                    .method(method)
                    .version(http::Version::HTTP_2)
                    .uri(format!("{scheme}://{}{path}", self.host))
            }
        }
    }

    /// Sends a request; returns as soon as the response head arrives.
    pub async fn send(&mut self, request: Request<Body>) -> Response<Incoming> {
        match &mut self.sender {
            Sender::H1(sender) => {
                sender.ready().await.unwrap();
                sender.send_request(request).await.unwrap()
            }
            Sender::H2(sender) => {
                sender.ready().await.unwrap();
                sender.send_request(request).await.unwrap()
            }
        }
    }

    /// Sends a request; `None` when the connection ends before a response
    /// head (the server closed it or reset it).
    pub async fn send_checked(&mut self, request: Request<Body>) -> Option<Response<Incoming>> {
        match &mut self.sender {
            Sender::H1(sender) => {
                sender.ready().await.ok()?;
                sender.send_request(request).await.ok()
            }
            Sender::H2(sender) => {
                sender.ready().await.ok()?;
                sender.send_request(request).await.ok()
            }
        }
    }

    /// Sends a request and reads the whole response; an error (connection
    /// closed, protocol error) is returned, not a panic, for loops that
    /// count failures.
    pub async fn try_fetch(&mut self, request: Request<Body>) -> Result<TestResponse, String> {
        let response = match &mut self.sender {
            Sender::H1(sender) => {
                sender.ready().await.map_err(|e| e.to_string())?;
                sender.send_request(request).await.map_err(|e| e.to_string())?
            }
            Sender::H2(sender) => {
                sender.ready().await.map_err(|e| e.to_string())?;
                sender.send_request(request).await.map_err(|e| e.to_string())?
            }
        };
        let (parts, incoming) = response.into_parts();
        let body = incoming.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(TestResponse { status: parts.status, headers: parts.headers, body })
    }

    /// Sends a request and reads the whole response.
    pub async fn fetch(&mut self, request: Request<Body>) -> TestResponse {
        let response = self.send(request).await;
        read(response).await
    }

    /// `GET path` with these request header fields (in order; a name may
    /// repeat).
    pub async fn get_with(&mut self, path: &str, headers: &[(&str, &str)]) -> TestResponse {
        let mut request = self.request(http::Method::GET, path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.fetch(request.body(body::empty()).unwrap()).await
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> TestResponse {
        let request = self.request(http::Method::GET, path).body(body::empty()).unwrap();
        self.fetch(request).await
    }
}

/// Reads a whole response.
pub async fn read(response: Response<Incoming>) -> TestResponse {
    let (parts, incoming) = response.into_parts();
    let body = incoming.collect().await.unwrap().to_bytes();
    TestResponse { status: parts.status, headers: parts.headers, body }
}

/// A TLS connection with SNI `server_name` offering `alpn`, trusting `trust`.
pub async fn tls_connect(
    addr: SocketAddr,
    server_name: &str,
    trust: &[&TestCert],
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in trust {
        roots.add(cert.der.clone()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(consentry::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(server_name.to_string()).unwrap();
    connector.connect(name, stream).await.unwrap()
}

/// A raw TCP connection, for bytes hyper's client would never send.
pub struct Raw {
    /// The stream.
    pub stream: TcpStream,
}

/// Connects a raw TCP client.
pub async fn raw(addr: SocketAddr) -> Raw {
    Raw { stream: TcpStream::connect(addr).await.unwrap() }
}

impl Raw {
    /// Writes bytes.
    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).await.unwrap();
    }

    /// Reads until the server closes the connection (a reset counts as a
    /// close); returns what arrived.
    pub async fn read_to_close(&mut self) -> String {
        let mut out = Vec::new();
        let _ = self.stream.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Reads one whole response (by its `content-length`), leaving a
    /// keep-alive connection open.
    pub async fn read_response(&mut self) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse::<usize>().ok())
                    .expect("a content-length");
                if got.len() >= end + 4 + length {
                    return text;
                }
            }
            let n = self.stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed mid-response: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    }
}

/// A request body of `len` bytes of a repeating pattern, in 64 KiB frames
/// (no allocation per frame).
pub fn pattern_body(len: u64) -> Body {
    body::boxed(Pattern { chunk: pattern_chunk(), remaining: len })
}

/// The 64 KiB pattern [`pattern_body`] repeats.
pub fn pattern_chunk() -> Bytes {
    (0..64 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect::<Vec<u8>>().into()
}

struct Pattern {
    chunk: Bytes,
    remaining: u64,
}

impl http_body::Body for Pattern {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = self.remaining.min(self.chunk.len() as u64);
        self.remaining -= n;
        let frame = self.chunk.slice(..usize::try_from(n).unwrap());
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(frame))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

// ---------------------------------------------------------------------------
// The real binary

/// The `consentry` binary running `run --log-format json` in a child
/// process; killed when dropped.
pub struct Binary {
    child: Child,
    /// Its HTTP address.
    pub http: SocketAddr,
    /// Every log line so far (JSON).
    pub lines: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Binary {
    fn spawn(builder: ProxyBuilder) -> Binary {
        let (dir, path) = builder.write();
        Binary::start(&["run", "--config", path.to_str().unwrap()], dir)
    }

    /// Runs `consentry --log-format json ARGS...` and waits until it logs
    /// the address of its HTTP listener. `dir` is kept alive as long as the
    /// child (put its config there).
    pub fn start(args: &[&str], dir: tempfile::TempDir) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_consentry"))
            .args(["--log-format", "json"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = lines.clone();
        // Keep reading for the whole life of the child: a full pipe would
        // block its logging.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(addr) = json["http"].as_str()
                {
                    let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let http = rx.recv_timeout(Duration::from_secs(30)).expect("the binary did not report its address");
        Binary { child, http, lines, _dir: dir }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the child, in bytes (`VmRSS`).
    pub fn rss(&self) -> u64 {
        rss_of(self.pid())
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`).
    pub fn signal(&self, name: &str) {
        let status =
            Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the child to exit (at most [`TEST_LIMIT`]).
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + TEST_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "the binary did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmRSS` of a process, in bytes.
pub fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

// ---------------------------------------------------------------------------
// A counting origin

/// An origin that counts what reaches it: every connection, every byte and
/// every request head. Each head is answered `200` with body `ok`, then the
/// connection is closed (so one connection carries one request and nothing
/// the proxy sends afterwards can hide in a kept-alive connection).
#[derive(Debug)]
pub struct CountingOrigin {
    /// The server.
    pub origin: Origin,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    connections: std::sync::atomic::AtomicUsize,
    bytes: std::sync::atomic::AtomicUsize,
    heads: Mutex<Vec<String>>,
}

/// Starts a [`CountingOrigin`].
pub async fn counting_origin() -> CountingOrigin {
    use std::sync::atomic::Ordering::SeqCst;
    let counts: Arc<Counts> = Arc::default();
    let record = counts.clone();
    let origin = raw_origin(move |mut stream| {
        let counts = record.clone();
        async move {
            counts.connections.fetch_add(1, SeqCst);
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        counts.bytes.fetch_add(n, SeqCst);
                        head.extend_from_slice(&buf[..n]);
                        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                            head.truncate(end + 4);
                            counts.heads.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
                            let _ = stream
                                .write_all(
                                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                                )
                                .await;
                            break;
                        }
                    }
                }
            }
        }
    })
    .await;
    CountingOrigin { origin, counts }
}

impl CountingOrigin {
    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.counts.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Bytes received so far, over every connection.
    pub fn bytes(&self) -> usize {
        self.counts.bytes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every request head received so far, in order.
    pub fn heads(&self) -> Vec<String> {
        self.counts.heads.lock().unwrap().clone()
    }
}

/// Open file descriptors of this process (`/proc/self/fd`).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}
