//! The admin API: a separate HTTP/1.1 listener (loopback by default,
//! `[admin] listen`) for operators and their tooling.
//!
//! | endpoint | answers |
//! |---|---|
//! | `GET /metrics` | Prometheus text (see [`crate::metrics`]) |
//! | `GET /healthz` | `200 ok`: the process is alive |
//! | `GET /readyz` | `200 ready` once a snapshot is loaded and the proxy listeners are up, else `503` |
//! | `GET /config` | JSON: generation, loaded-at, path, last reload error, reload counts, sites and policies (no secrets) |
//! | `GET /inventory[?site=NAME]` | JSON: cookies and third-party hosts seen, per site (see [`crate::inventory`]) |
//! | `GET /declaration?site=NAME&format=json\|md\|html` | the site's cookie table (see [`crate::declaration`]); `site` may be left out when there is one site |
//!
//! `HEAD` is answered like `GET` without a body. Another method on a known
//! path is `405` with `Allow`; an unknown path is `404`.
//!
//! With `[admin] token` (or `token_env`) set, every endpoint but the two
//! probes needs `Authorization: Bearer TOKEN`, else `401` with
//! `WWW-Authenticate: Bearer`. The probes stay open so that orchestrators
//! can call them without the secret; they reveal nothing. The token is
//! compared in constant time (SHA-256 of both sides, then
//! [`subtle::ConstantTimeEq`], so not even its length leaks) and read from
//! the current snapshot, so a reload can rotate it.
//!
//! Routing is the pure function [`respond`]; [`serve`] is the accept loop
//! around it, with a header read timeout, a connection limit and a graceful
//! stop.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::account::Account;
use crate::audit::{Target, mode_name};
use crate::declaration::{self, Format};
use crate::metrics::Exposition;
use crate::policy::Unknown;
use crate::snapshot::{Snapshot, Store};

/// Most admin connections served at once; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 64;
/// Time allowed for a request's header section.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open admin connections may finish after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the admin API reads.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// The configuration.
    pub store: Arc<Store>,
    /// Metrics, inventory, audit.
    pub account: Arc<Account>,
    /// Set by the proxy once its listeners accept connections.
    pub ready: Arc<AtomicBool>,
}

impl AdminState {
    /// State that is not ready until [`AdminState::set_ready`].
    pub fn new(store: Arc<Store>, account: Arc<Account>) -> AdminState {
        AdminState { store, account, ready: Arc::new(AtomicBool::new(false)) }
    }

    /// Marks the proxy ready (listeners up) or not (draining).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
}

/// The admin response body.
pub type AdminBody = Full<Bytes>;

fn response(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<AdminBody> {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<AdminBody> {
    let mut body = body.into();
    body.push('\n');
    response(status, "text/plain; charset=utf-8", body)
}

fn json_response(value: &impl Serialize) -> Response<AdminBody> {
    match serde_json::to_string_pretty(value) {
        Ok(mut body) => {
            body.push('\n');
            response(StatusCode::OK, "application/json", body)
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode: {e}")),
    }
}

/// Whether `Authorization` carries the token, compared in constant time.
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, credentials)) = given.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let given = Sha256::digest(credentials.trim().as_bytes());
    let want = Sha256::digest(token.as_bytes());
    given.ct_eq(&want).into()
}

fn query(uri: &Uri) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect()
}

/// Answers one admin request.
pub fn respond(state: &AdminState, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response<AdminBody> {
    let path = uri.path();
    let get = method == Method::GET || method == Method::HEAD;
    let not_allowed = || {
        let mut res = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed: use GET");
        res.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        res
    };
    let res = match path {
        // The probes answer without a token (see the module doc).
        "/healthz" if !get => not_allowed(),
        "/healthz" => text(StatusCode::OK, "ok"),
        "/readyz" if !get => not_allowed(),
        "/readyz" if state.ready.load(Ordering::Acquire) => text(StatusCode::OK, "ready"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready"),
        _ => {
            let snapshot = state.store.load();
            if let Some(token) = &snapshot.admin_token
                && !authorized(headers, token)
            {
                let challenge = if headers.contains_key(AUTHORIZATION) {
                    "Bearer realm=\"consentry\", error=\"invalid_token\""
                } else {
                    "Bearer realm=\"consentry\""
                };
                let mut res = text(StatusCode::UNAUTHORIZED, "unauthorized");
                res.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
                return strip_head(method, res);
            }
            match path {
                "/metrics" | "/config" | "/inventory" | "/declaration" if !get => not_allowed(),
                "/metrics" => response(
                    StatusCode::OK,
                    Exposition::CONTENT_TYPE,
                    state.account.render_metrics(&state.store),
                ),
                "/config" => json_response(&config_json(state, &snapshot)),
                "/inventory" => inventory(state, &snapshot, &query(uri)),
                "/declaration" => declaration(state, &snapshot, &query(uri)),
                _ => text(StatusCode::NOT_FOUND, "not found"),
            }
        }
    };
    strip_head(method, res)
}

fn strip_head(method: &Method, mut res: Response<AdminBody>) -> Response<AdminBody> {
    if method == Method::HEAD {
        *res.body_mut() = Full::new(Bytes::new());
    }
    res
}

fn config_json(state: &AdminState, snapshot: &Snapshot) -> serde_json::Value {
    let sites: Vec<_> = snapshot
        .router
        .sites()
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "hosts": s.hosts,
                "origin": s.origin.uri.to_string(),
                "policy": s.policy.name,
                "preserve_host": s.preserve_host,
            })
        })
        .collect();
    let policies: Vec<_> = snapshot
        .policies
        .values()
        .map(|p| {
            let unknown = |u: Unknown| match u {
                Unknown::Block => "block",
                Unknown::Allow => "allow",
            };
            json!({
                "name": p.name,
                "mode": mode_name(p.mode),
                "unknown_cookies": unknown(p.unknown_cookies),
                "unknown_third_party": unknown(p.unknown_third_party),
                "categories": p.categories.iter().map(|(_, c)| json!({
                    "name": c.name,
                    "description": c.description,
                    "max_cookie_days": c.max_cookie_age.map(|d| d.as_secs() / 86_400),
                })).collect::<Vec<_>>(),
                "cookie_rules": p.cookies.rules().len(),
                "resource_rules": p.resources.rules().len(),
                "presets": p.presets,
                "consent": {
                    "cookie": p.consent.cookie,
                    "format": p.consent.format.name(),
                    "revision": p.consent.revision,
                    "max_age_days": p.consent.max_age.map(|d| d.as_secs() / 86_400),
                    "signed": p.consent.hmac_key.is_some(),
                },
            })
        })
        .collect();
    let audit_path = match Target::from_config(&snapshot.audit, crate::account::config_dir(snapshot)) {
        Target::Stdout => "stdout".to_string(),
        Target::File { path, .. } => path.display().to_string(),
    };
    json!({
        "generation": snapshot.generation,
        "loaded_at": humantime::format_rfc3339_seconds(snapshot.loaded_at).to_string(),
        "path": snapshot.path.display().to_string(),
        "last_reload_error": state.store.last_error(),
        "restart_needed": state.store.restart_needed(),
        "reloads": { "ok": state.store.reloads_ok(), "failed": state.store.reloads_failed() },
        "ready": state.ready.load(Ordering::Acquire),
        "listen": {
            "http": snapshot.listen.http.map(|a| a.to_string()),
            "https": snapshot.listen.https.map(|a| a.to_string()),
            "admin": snapshot.listen.admin.map(|a| a.to_string()),
        },
        "sites": sites,
        "policies": policies,
        "audit": {
            "level": state.account.audit().level().name(),
            "path": audit_path,
            "written": state.account.audit().written(),
            "dropped": state.account.audit().dropped(),
        },
        "inventory": { "max_entries_per_site": state.account.inventory().max_entries() },
    })
}

fn inventory(
    state: &AdminState,
    snapshot: &Snapshot,
    query: &BTreeMap<String, String>,
) -> Response<AdminBody> {
    let inv = state.account.inventory();
    let policy_of =
        |name: &str| snapshot.router.sites().iter().find(|s| s.name == name).map(|s| s.policy.clone());
    if let Some(name) = query.get("site") {
        let known = policy_of(name);
        if known.is_none() && !inv.site_names().iter().any(|n| n == name) {
            return text(StatusCode::NOT_FOUND, format!("no site named {name:?}"));
        }
        return json_response(&inv.view(name, known.as_deref()));
    }
    // Configured sites first, in config order, then sites only the
    // inventory still remembers (removed by a reload).
    let mut names: Vec<String> = snapshot.router.sites().iter().map(|s| s.name.clone()).collect();
    for name in inv.site_names() {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.dedup();
    let views: Vec<_> = names.iter().map(|n| inv.view(n, policy_of(n).as_deref())).collect();
    json_response(&json!({ "sites": views }))
}

fn declaration(
    state: &AdminState,
    snapshot: &Snapshot,
    query: &BTreeMap<String, String>,
) -> Response<AdminBody> {
    let format = match query.get("format").map(String::as_str) {
        None => Format::Json,
        Some(f) => match Format::parse(f) {
            Some(f) => f,
            None => {
                return text(StatusCode::BAD_REQUEST, format!("unknown format {f:?}: use json, md or html"));
            }
        },
    };
    let sites = snapshot.router.sites();
    let site = match query.get("site") {
        Some(name) => match sites.iter().find(|s| &s.name == name) {
            Some(s) => s,
            None => return text(StatusCode::NOT_FOUND, format!("no site named {name:?}")),
        },
        None if sites.len() == 1 => &sites[0],
        None => {
            let names: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
            return text(StatusCode::BAD_REQUEST, format!("name a site: ?site=NAME ({})", names.join(", ")));
        }
    };
    let observed = state.account.inventory().view(&site.name, Some(&site.policy));
    let body = declaration::build(site, &observed).render(format);
    response(StatusCode::OK, format.content_type(), body)
}

/// Serves the admin API on `listener` until `shutdown` completes, then lets
/// open connections finish for a few seconds.
pub async fn serve(listener: TcpListener, state: AdminState, shutdown: impl Future<Output = ()>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
            let res = respond(&state, req.method(), req.uri(), req.headers());
            tracing::debug!(method = %req.method(), path = req.uri().path(), status = res.status().as_u16(), "admin request");
            async move { Ok::<_, std::convert::Infallible>(res) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "admin connection ended with an error");
            }
            drop(permit);
        });
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::debug!("admin connections still open after the grace period");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;
    use std::path::PathBuf;

    fn state_from(text: &str) -> AdminState {
        let snap =
            Snapshot::compile(&Source { path: PathBuf::from("t.toml"), text: text.into() }, 1).unwrap();
        AdminState::new(Arc::new(Store::new(snap)), Arc::new(Account::default()))
    }

    fn state(extra: &str) -> AdminState {
        state_from(&format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[[site]]\nname = \"shop\"\nhosts = [\"shop.test\"]\norigin = \"http://127.0.0.1:1\"\npolicy = \"p\"\n[policy.p]\n{extra}"
        ))
    }

    fn get(state: &AdminState, uri: &str, headers: &[(&str, &str)]) -> Response<AdminBody> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        respond(state, &Method::GET, &uri.parse().unwrap(), &map)
    }

    #[test]
    fn bearer_tokens_compare_exactly() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, "s3cret"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert!(authorized(&h, "s3cret"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer  s3cret "));
        assert!(authorized(&h, "s3cret"));
        for bad in ["Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret", "Bearer "] {
            h.insert(AUTHORIZATION, HeaderValue::from_static(bad));
            assert!(!authorized(&h, "s3cret"), "{bad}");
        }
    }

    #[test]
    fn token_guards_everything_but_probes() {
        let s = state_from(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[admin]\ntoken = \"t0k\"\n[[site]]\nhosts = [\"a.test\"]\norigin = \"http://127.0.0.1:1\"\npolicy = \"p\"\n[policy.p]\n",
        );
        let res = get(&s, "/metrics", &[]);
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[WWW_AUTHENTICATE], "Bearer realm=\"consentry\"");
        let res = get(&s, "/nope", &[("authorization", "Bearer wrong")]);
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "auth before routing: paths do not leak");
        assert!(res.headers()[WWW_AUTHENTICATE].to_str().unwrap().contains("invalid_token"));
        assert_eq!(get(&s, "/metrics", &[("authorization", "Bearer t0k")]).status(), StatusCode::OK);
        assert_eq!(get(&s, "/nope", &[("authorization", "Bearer t0k")]).status(), StatusCode::NOT_FOUND);
        assert_eq!(get(&s, "/healthz", &[]).status(), StatusCode::OK);
        assert_eq!(get(&s, "/readyz", &[]).status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn methods_and_paths() {
        let s = state("");
        let post = respond(&s, &Method::POST, &"/metrics".parse().unwrap(), &HeaderMap::new());
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()[ALLOW], "GET, HEAD");
        let post = respond(&s, &Method::DELETE, &"/healthz".parse().unwrap(), &HeaderMap::new());
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(get(&s, "/", &[]).status(), StatusCode::NOT_FOUND);
        assert_eq!(get(&s, "/metrics/", &[]).status(), StatusCode::NOT_FOUND);
        let head = respond(&s, &Method::HEAD, &"/config".parse().unwrap(), &HeaderMap::new());
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(head.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(http_body::Body::size_hint(head.body()).exact(), Some(0));
    }

    #[test]
    fn readiness_follows_the_flag() {
        let s = state("");
        assert_eq!(get(&s, "/readyz", &[]).status(), StatusCode::SERVICE_UNAVAILABLE);
        s.set_ready(true);
        assert_eq!(get(&s, "/readyz", &[]).status(), StatusCode::OK);
    }

    #[test]
    fn declaration_parameters() {
        let s = state("");
        assert_eq!(get(&s, "/declaration?format=xml", &[]).status(), StatusCode::BAD_REQUEST);
        assert_eq!(get(&s, "/declaration?site=other", &[]).status(), StatusCode::NOT_FOUND);
        let res = get(&s, "/declaration?format=md", &[]);
        assert_eq!(res.status(), StatusCode::OK, "the only site is the default");
        assert_eq!(res.headers()[CONTENT_TYPE], "text/markdown; charset=utf-8");
        assert_eq!(get(&s, "/inventory?site=other", &[]).status(), StatusCode::NOT_FOUND);
        assert_eq!(get(&s, "/inventory?site=shop", &[]).status(), StatusCode::OK);
    }
}
