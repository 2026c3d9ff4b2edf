//! The `/.consentry/` endpoint: where the banner (or a site's own code)
//! records a choice, reads the current one, and fetches the banner assets.
//!
//! The proxy glue hands every request whose path is under `/.consentry/`
//! ([`is_endpoint`]) to [`handle`] after routing, instead of forwarding it:
//!
//! | method | path | answer |
//! |---|---|---|
//! | `POST` | `/.consentry/consent` | records a choice: consent cookie + sweep + receipt; `303` to `return_to` (form) or `204` (JS/JSON) |
//! | `GET`, `HEAD` | `/.consentry/consent` | the current decision as JSON |
//! | `GET`, `HEAD` | `/.consentry/preferences?return_to=PATH` | the full banner dialog as a page (no JS needed; `banner.js` fetches it too); 404 without `banner` |
//! | `GET`, `HEAD` | `/.consentry/banner.css`, `/.consentry/banner.js` | the banner assets (`ETag`, year-long cache with `?v=`) |
//! | other | `/.consentry/…` | `404` (`405` for a known path with another method) |
//!
//! The POST works whenever the site's policy reads consentry's own cookie
//! (`consent.format = "consentry"`, the default), banner or not, so a site
//! may build its own consent UI on it (receipts then say `method: api`);
//! otherwise it is a 404.
//!
//! # Recording a choice
//! The body (`application/x-www-form-urlencoded` from the banner's form,
//! or `application/json`) is read with a [`MAX_BODY`] cap and a
//! [`BODY_TIMEOUT`]. Form fields: `choice` = `accept-all` | `refuse-all` |
//! `custom`, `category` (repeated) for `custom`, `return_to`. JSON:
//! `{"choice": "custom", "categories": ["analytics"], "method": "api"}`
//! (`choice` may be left out when `categories` is given; `method` is
//! `banner` or `api`, default `api`). Order of work:
//! 1. same-origin check ([`check_same_origin`]): a cross-site POST gets 403;
//! 2. parse and validate the choice: 400 / 413 / 415 / 408;
//! 3. write the receipt and wait for it to be synced (503 if that fails:
//!    no proof, no cookie, the banner simply asks again);
//! 4. answer with the consent cookie and `Consentry-Receipt: ID` (the
//!    synced receipt's id, when receipts are on), plus deletions for the cookies of
//!    refused categories the browser still holds (the request filter run
//!    with the *new* consent over the request's cookies, then the response
//!    header stage's sweep), and, when the cookie is set on `cookie_domain`,
//!    for a host-only copy of it left from before (two copies with
//!    different values read as contradictory consent).
//!
//! # Why the POST is CSRF-safe
//! The forgery to fear is another site making the visitor's browser submit
//! "accept all". Every current browser sends `Sec-Fetch-Site` with every
//! request and `Origin` with every cross-origin POST (form or fetch), and
//! page scripts can set neither. So a cross-site POST always carries a
//! header that gives it away, and is refused. A request with neither header
//! does not come from a browser an attacker's page controls (old browsers,
//! curl, the site's own back end), so it is allowed. No token is needed,
//! which keeps the no-JS form a plain static form that can be cached.
//! `SameSite=Lax` on the cookie is not what protects this endpoint (it
//! concerns sending cookies, and the POST needs none).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{
    ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, HOST, IF_NONE_MATCH, LOCATION,
    SET_COOKIE, USER_AGENT, VARY,
};
use http::uri::Authority;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;

use crate::banner::{self, Asset, CONSENT_PATH};
use crate::body::{self, Body};
use crate::category::CategorySet;
use crate::consent::{Consent, Format, State};
use crate::policy::Policy;
use crate::receipts::{Receipt, ReceiptMethod, ReceiptWriter};
use crate::route::Site;

/// Response header of a recorded choice: the id of its receipt, sent only
/// after the receipt was written and synced.
pub const RECEIPT_HEADER: &str = "consentry-receipt";

/// Largest request body accepted (a real choice is well under 1 KB).
pub const MAX_BODY: usize = 16 * 1024;
/// Time allowed to receive the body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest `return_to` accepted.
pub const MAX_RETURN_TO: usize = 2048;

/// What the endpoint needs besides the request and the site.
#[derive(Debug, Clone)]
pub struct EndpointContext {
    /// Whether the visitor reached consentry over HTTPS (the listener, or a
    /// trusted `X-Forwarded-Proto`): `Secure` cookies and the expected
    /// `Origin` scheme.
    pub https: bool,
    /// The client's address (truncated before it is stored).
    pub client_ip: Option<IpAddr>,
    /// Now.
    pub now: SystemTime,
    /// The visitor's current consent as stage 4 read it (for `GET`).
    pub consent: Consent,
    /// Where receipts go; `None` when `[receipts]` has no path.
    pub receipts: Option<Arc<ReceiptWriter>>,
}

/// Whether a request path belongs to the endpoint (the glue answers it
/// with [`handle`] instead of forwarding it to the origin).
pub fn is_endpoint(path: &str) -> bool {
    path == "/.consentry" || path.starts_with(banner::PREFIX)
}

/// Answers a request under `/.consentry/`. Never panics; every failure is
/// a short plain-text response with the matching status and a debug log.
///
/// The body is the pipeline's boxed [`Body`]: a concrete type keeps this
/// future `Send` without the higher-ranked bounds a generic body needs.
pub async fn handle(req: Request<Body>, site: &Site, cx: &EndpointContext) -> Response<Body> {
    let path = req.uri().path().to_string();
    let head = req.method() == Method::HEAD;
    let response = match (path.as_str(), req.method()) {
        (CONSENT_PATH, &Method::POST) => post_consent(req, site, cx).await,
        (CONSENT_PATH, &Method::GET | &Method::HEAD) => get_consent(&site.policy, cx),
        (CONSENT_PATH, _) => method_not_allowed("GET, HEAD, POST"),
        (banner::PREFERENCES_PATH, &Method::GET | &Method::HEAD) => {
            get_preferences(&site.policy, req.headers(), req.uri().query(), cx)
        }
        (banner::PREFERENCES_PATH, _) => method_not_allowed("GET, HEAD"),
        (p, &Method::GET | &Method::HEAD) if banner::asset(p).is_some() => {
            let asset = banner::asset(p).expect("checked");
            serve_asset(asset, req.headers(), req.uri().query())
        }
        (p, _) if banner::asset(p).is_some() => method_not_allowed("GET, HEAD"),
        _ => plain(StatusCode::NOT_FOUND, "not found"),
    };
    tracing::debug!(site = %site.name, path = %path, status = response.status().as_u16(), "consentry endpoint");
    if head {
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, body::empty());
    }
    response
}

fn plain(status: StatusCode, message: &'static str) -> Response<Body> {
    let mut res = Response::new(body::full(format!("{message}\n")));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut res = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    res.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    res
}

/// `GET /.consentry/banner.css|js`.
fn serve_asset(asset: &'static Asset, headers: &HeaderMap, query: Option<&str>) -> Response<Body> {
    // With the current `?v=`, the URL names these exact bytes: cache it for
    // a year. Without (or with an old one), revalidate soon.
    let versioned = query.is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "v" && v == asset.version.as_str())
    });
    let cache = if versioned { "public, max-age=31536000, immutable" } else { "public, max-age=300" };
    let etag = HeaderValue::from_str(&asset.etag).expect("hex etag");
    let not_modified = headers.get_all(IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == "*" || t == asset.etag)
    });
    let mut res = if not_modified {
        let mut res = Response::new(body::empty());
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        res
    } else {
        let mut res = Response::new(body::full(Bytes::from_static(asset.body.as_bytes())));
        res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        res.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(asset.body.len()));
        res
    };
    let h = res.headers_mut();
    h.insert(ETAG, etag);
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    res
}

/// `GET /.consentry/preferences?return_to=PATH`: the full dialog as a page
/// of its own ([`banner::preferences_page`]), in the visitor's language,
/// its switches showing the current consent. 404 unless the policy has
/// the banner on. Never cached (it depends on the consent cookie); its
/// own CSP allows nothing but its stylesheet and posting the form here.
fn get_preferences(
    policy: &Policy,
    headers: &HeaderMap,
    query: Option<&str>,
    cx: &EndpointContext,
) -> Response<Body> {
    if !banner::enabled(policy) || policy.consent.format != Format::Consentry {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    let lang = banner::negotiate_language(headers.get("accept-language").and_then(|v| v.to_str().ok()));
    let return_to = query
        .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "return_to"))
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| "/".to_string());
    let page = banner::preferences_page(policy, lang, &cx.consent, &return_to);
    let mut res = Response::new(body::full(page));
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(VARY, HeaderValue::from_static("Cookie, Accept-Language"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'self'; base-uri 'none'",
        ),
    );
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    res
}

/// `GET /.consentry/consent`: the decision as the proxy applies it.
fn get_consent(policy: &Policy, cx: &EndpointContext) -> Response<Body> {
    let c = &cx.consent;
    let cats = &policy.categories;
    let names = |set: CategorySet| -> Vec<String> {
        set.iter().filter(|id| id.index() < cats.len()).map(|id| cats.name(id).to_string()).collect()
    };
    let json = serde_json::json!({
        "state": c.state.name(),
        "valid": c.is_valid(),
        "format": c.format.name(),
        "granted": names(c.granted),
        "refused": names(cats.all().difference(c.granted)),
        "gpc_refused": names(c.gpc_refused),
        "revision": c.revision,
        "policy_revision": policy.consent.revision,
        "given_at": c.given_at.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
    });
    let mut res = Response::new(body::full(json.to_string()));
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(VARY, HeaderValue::from_static("Cookie"));
    res
}

/// Only a same-origin path may be a redirect target: `/…`, not `//host`
/// or `/\host` (which browsers read as another host), no control
/// characters or spaces, ASCII only, at most [`MAX_RETURN_TO`] bytes.
pub fn safe_return_to(return_to: &str) -> Option<&str> {
    let b = return_to.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= MAX_RETURN_TO
        && b[0] == b'/'
        && !matches!(b.get(1), Some(b'/' | b'\\'))
        && b.iter().all(|&c| c.is_ascii_graphic() && c != b'\\');
    ok.then_some(return_to)
}

/// Why a request failed the same-origin check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossSite {
    /// `Sec-Fetch-Site` is `cross-site` or `same-site` (or unknown).
    FetchSite,
    /// `Origin` names another origin (or is `null`).
    Origin,
}

/// Same-origin check for the POST (see the module doc for why it is enough).
///
/// `Sec-Fetch-Site`, when sent, decides: `same-origin` or `none` (typed or
/// bookmarked) pass; `same-site` (a sibling subdomain) and `cross-site`
/// fail. It is the browser's own judgement, so it also holds behind a TLS
/// terminator that makes `https` unknown. Otherwise `Origin`, when sent,
/// must be exactly `http(s)://` + the request's host and port (`null`
/// fails). With neither header the request is not from a browser page and
/// passes.
pub fn check_same_origin(headers: &HeaderMap, host: Option<&str>, https: bool) -> Result<(), CrossSite> {
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ => Err(CrossSite::FetchSite),
        };
    }
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| CrossSite::Origin)?;
    let scheme = if https { "https" } else { "http" };
    let default_port = if https { 443 } else { 80 };
    let rest = origin
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
        .filter(|r| !r.is_empty() && !r.contains(['/', '?', '#', '@']))
        .ok_or(CrossSite::Origin)?;
    let origin_authority: Authority = rest.parse().map_err(|_| CrossSite::Origin)?;
    let request_authority: Authority =
        host.ok_or(CrossSite::Origin)?.parse().map_err(|_| CrossSite::Origin)?;
    let same_host = origin_authority.host().eq_ignore_ascii_case(request_authority.host());
    let same_port = origin_authority.port_u16().unwrap_or(default_port)
        == request_authority.port_u16().unwrap_or(default_port);
    if same_host && same_port { Ok(()) } else { Err(CrossSite::Origin) }
}

/// The three buttons of the banner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Every category.
    AcceptAll,
    /// `necessary` only.
    RefuseAll,
    /// `necessary` plus the listed categories.
    Custom,
}

impl Choice {
    fn parse(s: &str) -> Option<Choice> {
        match s {
            "accept-all" => Some(Choice::AcceptAll),
            "refuse-all" => Some(Choice::RefuseAll),
            "custom" => Some(Choice::Custom),
            _ => None,
        }
    }

    /// The value used in forms, JSON and receipts.
    pub fn name(self) -> &'static str {
        match self {
            Choice::AcceptAll => "accept-all",
            Choice::RefuseAll => "refuse-all",
            Choice::Custom => "custom",
        }
    }
}

/// A parsed POST body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// Which button.
    pub choice: Choice,
    /// Category names for [`Choice::Custom`].
    pub categories: Vec<String>,
    /// Banner or API.
    pub method: ReceiptMethod,
    /// Where to send the browser back (form posts).
    pub return_to: Option<String>,
    /// Whether the client wants a JSON-style answer (204) rather than a
    /// redirect.
    pub json: bool,
}

/// Parses the banner form: `choice`, `category`…, `return_to`. Unknown
/// fields are ignored (a stale page may post a category since removed; it
/// is dropped when the set is computed).
pub fn parse_form(body: &[u8]) -> Result<Submission, &'static str> {
    let mut choice = None;
    let mut categories = Vec::new();
    let mut return_to = None;
    for (k, v) in url::form_urlencoded::parse(body) {
        match &*k {
            "choice" => {
                if choice.is_some() {
                    return Err("more than one choice");
                }
                choice = Some(Choice::parse(&v).ok_or("unknown choice")?);
            }
            "category" => categories.push(v.into_owned()),
            "return_to" => return_to = Some(v.into_owned()),
            _ => {}
        }
    }
    Ok(Submission {
        choice: choice.ok_or("missing choice")?,
        categories,
        method: ReceiptMethod::Banner,
        return_to,
        json: false,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonBody {
    choice: Option<String>,
    categories: Option<Vec<String>>,
    method: Option<ReceiptMethod>,
}

/// Parses a JSON body: `{"choice": …, "categories": […], "method": …}`.
pub fn parse_json(body: &[u8]) -> Result<Submission, String> {
    let parsed: JsonBody = serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
    let choice = match (&parsed.choice, &parsed.categories) {
        (Some(c), _) => Choice::parse(c).ok_or_else(|| format!("unknown choice {c:?}"))?,
        (None, Some(_)) => Choice::Custom,
        (None, None) => return Err("missing choice".into()),
    };
    Ok(Submission {
        choice,
        categories: parsed.categories.unwrap_or_default(),
        method: parsed.method.unwrap_or(ReceiptMethod::Api),
        return_to: None,
        json: true,
    })
}

/// The granted set a submission asks for. Unknown category names are an
/// error for JSON (an API caller wants to know) and ignored for forms.
pub fn granted_set(policy: &Policy, sub: &Submission) -> Result<CategorySet, String> {
    Ok(match sub.choice {
        Choice::AcceptAll => policy.categories.all(),
        Choice::RefuseAll => CategorySet::NECESSARY_ONLY,
        Choice::Custom => {
            let mut set = CategorySet::NECESSARY_ONLY;
            for name in &sub.categories {
                match policy.categories.id(name) {
                    Some(id) => set.insert(id),
                    None if sub.json => return Err(format!("unknown category {name:?}")),
                    None => {
                        tracing::debug!(category = %name, "consent form names an unknown category; ignored")
                    }
                }
            }
            set
        }
    })
}

/// The `Set-Cookie` value for consentry's consent cookie.
pub fn consent_cookie(policy: &Policy, value: &str, host: &str, https: bool) -> String {
    let max_age = policy.consent.max_age.unwrap_or(Duration::from_secs(180 * 86_400)).as_secs();
    let mut cookie = format!("{}={value}; Path=/; Max-Age={max_age}; SameSite=Lax", policy.consent.cookie);
    if https {
        cookie.push_str("; Secure");
    }
    if let Some(domain) = policy.consent.cookie_domain.as_deref().map(|d| d.trim_start_matches('.')) {
        // A Domain the host is not inside would make the browser drop the
        // cookie: fall back to a host-only cookie.
        if !domain.is_empty() && crate::policy::domain_matches(host, &domain.to_ascii_lowercase()) {
            cookie.push_str("; Domain=");
            cookie.push_str(domain);
        } else {
            tracing::debug!(domain, host, "consent cookie_domain does not cover the host; host-only cookie");
        }
    }
    cookie
}

/// A deletion for a host-only copy of the consent cookie, when the new one
/// (`cookie`, as [`consent_cookie`] wrote it) is set with a `Domain` and
/// the request carries the consent cookie.
///
/// A browser keeps a host-only cookie and a `Domain` cookie of the same
/// name side by side. A visitor who chose before `cookie_domain` was set
/// (or on a host it did not cover) holds a host-only copy; setting the
/// domain copy alone leaves both, the browser sends two different values,
/// and the consent stage reads that as contradictory: necessary only and
/// the banner again, at every choice, for as long as the old copy lives.
/// The two copies have different keys, so deleting the host-only one never
/// touches the new cookie, whatever the header order.
fn stale_host_only_copy(
    policy: &Policy,
    cookie: &str,
    request: &HeaderMap,
    host: &str,
    https: bool,
) -> Option<HeaderValue> {
    let name = &policy.consent.cookie;
    let domain_set = cookie.split(';').skip(1).any(|a| a.trim_start().starts_with("Domain="));
    let carried = crate::cookie::CookieJar::from_headers(request).pairs().iter().any(|p| p.name == name);
    if !domain_set || !carried {
        return None;
    }
    tracing::debug!(cookie = %name, host, "consent cookie now set on its domain; deleting a host-only copy");
    crate::sweep::deletion(name, None, "/", https)
}

/// Reads the whole (small) body, refusing more than `MAX_BODY` bytes.
///
/// A hand-written loop rather than `http_body_util::Limited`: `Limited`'s
/// `Into<Box<dyn Error>>` bound makes the proxy's request future fail the
/// higher-ranked `Send` check (a known rustc limitation).
async fn read_body(mut body: Body, timeout: Duration) -> Result<Bytes, (StatusCode, &'static str)> {
    let read = async move {
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| (StatusCode::BAD_REQUEST, "could not read request body"))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > MAX_BODY {
                    return Err((StatusCode::PAYLOAD_TOO_LARGE, "request body too large"));
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err((StatusCode::REQUEST_TIMEOUT, "request body too slow")))
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// `POST /.consentry/consent`.
async fn post_consent(req: Request<Body>, site: &Site, cx: &EndpointContext) -> Response<Body> {
    let policy = &*site.policy;
    if policy.consent.format != Format::Consentry {
        // The site reads another consent manager's cookie: a consentry
        // cookie would change nothing.
        tracing::debug!(site = %site.name, format = policy.consent.format.name(), "consent POST on a site not using consentry's cookie");
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    let (parts, body) = req.into_parts();
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_string()));
    if let Err(why) = check_same_origin(&parts.headers, host.as_deref(), cx.https) {
        tracing::debug!(
            site = %site.name,
            reason = ?why,
            origin = ?parts.headers.get(http::header::ORIGIN),
            fetch_site = ?parts.headers.get("sec-fetch-site"),
            "cross-site consent POST refused"
        );
        return plain(StatusCode::FORBIDDEN, "cross-site request refused");
    }
    let media = media_type(&parts.headers);
    let is_json = media == "application/json";
    if !is_json && media != "application/x-www-form-urlencoded" {
        return plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, "expected a form or JSON body");
    }
    if parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    let bytes = match read_body(body, BODY_TIMEOUT).await {
        Ok(b) => b,
        Err((status, message)) => return plain(status, message),
    };
    let parsed = if is_json { parse_json(&bytes) } else { parse_form(&bytes).map_err(str::to_string) };
    let mut sub = match parsed {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(site = %site.name, error = %e, "bad consent submission");
            return plain(StatusCode::BAD_REQUEST, "bad consent submission");
        }
    };
    let wants_json = parts
        .headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("application/json"));
    sub.json |= wants_json;
    let granted = match granted_set(policy, &sub) {
        Ok(g) => g,
        Err(e) => {
            tracing::debug!(site = %site.name, error = %e, "bad consent submission");
            return plain(StatusCode::BAD_REQUEST, "bad consent submission");
        }
    };
    let cats = &policy.categories;
    let names = |set: CategorySet| -> Vec<String> {
        set.iter().filter(|id| id.index() < cats.len()).map(|id| cats.name(id).to_string()).collect()
    };
    let granted_names = names(granted);
    let refused_names = names(cats.all().difference(granted));

    // Proof first: no receipt, no cookie.
    let mut receipt_id = None;
    if let Some(writer) = &cx.receipts {
        let mut receipt = Receipt::new(
            cx.now,
            &site.name,
            &policy.name,
            policy.consent.revision,
            sub.choice.name(),
            granted_names.clone(),
            refused_names.clone(),
            sub.method,
            parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok()),
            None,
        );
        receipt.ip = cx.client_ip.and_then(|ip| crate::receipts::record_ip(ip, policy.receipt_ip));
        let id = receipt.id.clone();
        if let Err(e) = writer.append(receipt).await {
            tracing::error!(site = %site.name, error = %e, "consent not recorded: receipt failed");
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "your choice could not be recorded, please try again",
            );
        }
        tracing::debug!(site = %site.name, receipt = %id, "receipt synced");
        receipt_id = Some(id);
    }

    let names_ref: Vec<&str> = granted_names.iter().map(String::as_str).collect();
    let value = crate::consent::encode(
        &names_ref,
        policy.consent.revision,
        cx.now,
        policy.consent.hmac_key.as_deref(),
    );
    let host_name = crate::route::normalize_host(host.as_deref().unwrap_or(""));
    let cookie = consent_cookie(policy, &value, &host_name, cx.https);

    let mut res = if sub.json {
        let mut res = Response::new(body::empty());
        *res.status_mut() = StatusCode::NO_CONTENT;
        res
    } else {
        let target = sub.return_to.as_deref().and_then(safe_return_to).unwrap_or("/");
        let mut res = Response::new(body::empty());
        *res.status_mut() = StatusCode::SEE_OTHER;
        res.headers_mut().insert(LOCATION, HeaderValue::from_str(target).expect("checked ASCII"));
        res
    };
    match HeaderValue::from_str(&cookie) {
        Ok(v) => {
            res.headers_mut().append(SET_COOKIE, v);
        }
        Err(_) => {
            tracing::error!(cookie = %policy.consent.cookie, "consent cookie is not a valid header value");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    }
    if let Some(stale) = stale_host_only_copy(policy, &cookie, &parts.headers, &host_name, cx.https) {
        res.headers_mut().append(SET_COOKIE, stale);
    }
    res.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The receipt's id, sent only once it is synced: what the visitor (or
    // a test killing the process) holds as proof that it was recorded.
    if let Some(id) = receipt_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        res.headers_mut().insert(RECEIPT_HEADER, id);
    }

    // Sweep: the cookies the browser holds that the new choice refuses.
    let consent = Consent {
        granted,
        state: State::Valid,
        format: Format::Consentry,
        revision: Some(policy.consent.revision),
        given_at: Some(cx.now),
        gpc_refused: CategorySet::EMPTY,
    };
    let mut decisions = Vec::new();
    let mut request_headers = parts.headers.clone();
    let withdrawn = crate::request_filter::filter_request(
        &mut request_headers,
        policy,
        &host_name,
        &consent,
        &mut decisions,
    );
    let rcx = crate::response_headers::ResponseContext {
        policy,
        host: &host_name,
        consent: &consent,
        withdrawn: &withdrawn,
        https: cx.https,
        now: cx.now,
        body_rewritten: false,
    };
    let status = res.status();
    crate::response_headers::filter_response(status, res.headers_mut(), &rcx, &mut decisions);
    tracing::debug!(
        site = %site.name,
        choice = sub.choice.name(),
        granted = %granted_names.join(","),
        method = ?sub.method,
        swept = withdrawn.len(),
        "consent recorded"
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    use http_body_util::StreamBody;
    use std::path::PathBuf;

    const POLICY: &str = r#"
[policy.default]
[policy.default.consent]
revision = 4
max_age_days = 30
cookie_domain = ".example.com"
[policy.default.banner]
enabled = true
"#;

    fn site_with(text: &str) -> Site {
        crate::route::test_site(text)
    }

    fn site() -> Site {
        site_with(POLICY)
    }

    fn cx() -> EndpointContext {
        EndpointContext {
            https: true,
            client_ip: Some("198.51.100.23".parse().unwrap()),
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000),
            consent: Consent::none(Format::Consentry, State::Missing),
            receipts: None,
        }
    }

    fn post(body: &str, content_type: &str) -> http::request::Builder {
        let _ = body;
        Request::post("/.consentry/consent")
            .header(HOST, "www.example.com")
            .header(CONTENT_TYPE, content_type)
            .header("sec-fetch-site", "same-origin")
            .header(USER_AGENT, "TestBrowser/1.0")
    }

    /// The glue spawns the handler on a multi-threaded runtime.
    fn require_send<F: std::future::Future + Send>(f: F) -> F {
        f
    }

    async fn send(
        req: http::request::Builder,
        body: &str,
        site: &Site,
        cx: &EndpointContext,
    ) -> Response<Body> {
        require_send(handle(req.body(crate::body::full(body.to_string())).unwrap(), site, cx)).await
    }

    async fn text(res: Response<Body>) -> String {
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    fn set_cookie(res: &Response<Body>) -> Vec<String> {
        res.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect()
    }

    #[test]
    fn return_to_must_be_a_local_path() {
        for ok in ["/", "/page", "/a/b?x=1&y=%20#frag", "/.consentry/consent"] {
            assert_eq!(safe_return_to(ok), Some(ok), "{ok}");
        }
        for bad in [
            "",
            "page",
            "//evil.example/",
            "/\\evil.example",
            "/a\\b",
            "https://evil.example/",
            "javascript:alert(1)",
            "/a b",
            "/a\tb",
            "/a\r\nSet-Cookie: x=1",
            "/é",
            " /",
        ] {
            assert_eq!(safe_return_to(bad), None, "{bad:?}");
        }
        assert!(safe_return_to(&format!("/{}", "a".repeat(MAX_RETURN_TO))).is_none());
        assert!(safe_return_to(&format!("/{}", "a".repeat(MAX_RETURN_TO - 1))).is_some());
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn same_origin_checks() {
        let host = Some("www.example.com");
        let check = |pairs: &[(&'static str, &'static str)], host: Option<&str>, https: bool| {
            check_same_origin(&headers(pairs), host, https)
        };
        // Sec-Fetch-Site decides when present.
        assert_eq!(check(&[("sec-fetch-site", "same-origin")], host, true), Ok(()));
        assert_eq!(check(&[("sec-fetch-site", "none")], host, true), Ok(()));
        assert_eq!(check(&[("sec-fetch-site", "cross-site")], host, true), Err(CrossSite::FetchSite));
        assert_eq!(check(&[("sec-fetch-site", "same-site")], host, true), Err(CrossSite::FetchSite));
        assert_eq!(check(&[("sec-fetch-site", "bogus")], host, true), Err(CrossSite::FetchSite));
        assert_eq!(
            check(&[("sec-fetch-site", "cross-site"), ("origin", "https://www.example.com")], host, true),
            Err(CrossSite::FetchSite)
        );
        // Behind a TLS terminator (https unknown) the browser's word holds.
        assert_eq!(
            check(&[("sec-fetch-site", "same-origin"), ("origin", "https://www.example.com")], host, false),
            Ok(())
        );
        // Otherwise Origin must match scheme, host and port exactly.
        assert_eq!(check(&[("origin", "https://www.example.com")], host, true), Ok(()));
        assert_eq!(check(&[("origin", "https://WWW.Example.com")], host, true), Ok(()));
        assert_eq!(check(&[("origin", "https://www.example.com:443")], host, true), Ok(()));
        assert_eq!(
            check(&[("origin", "https://www.example.com")], Some("www.example.com:443"), true),
            Ok(())
        );
        assert_eq!(check(&[("origin", "http://localhost:8080")], Some("localhost:8080"), false), Ok(()));
        for bad in [
            "https://evil.example",
            "https://www.example.com.evil.example",
            "http://www.example.com",
            "https://www.example.com:8443",
            "https://sub.www.example.com",
            "null",
            "https://",
            "https://www.example.com/path",
            "https://user@www.example.com",
        ] {
            let h = {
                let mut h = HeaderMap::new();
                h.insert("origin", HeaderValue::from_str(bad).unwrap());
                h
            };
            assert_eq!(check_same_origin(&h, host, true), Err(CrossSite::Origin), "{bad}");
        }
        assert_eq!(
            check(&[("origin", "http://localhost:8080")], Some("localhost:9090"), false),
            Err(CrossSite::Origin)
        );
        assert_eq!(check(&[("origin", "https://www.example.com")], None, true), Err(CrossSite::Origin));
        // Neither header: not a browser page; allowed.
        assert_eq!(check(&[], host, true), Ok(()));
    }

    #[test]
    fn forms_parse() {
        let s =
            parse_form(b"return_to=%2Fshop%3Fa%3D1&choice=custom&category=analytics&category=advertising")
                .unwrap();
        assert_eq!(s.choice, Choice::Custom);
        assert_eq!(s.categories, vec!["analytics", "advertising"]);
        assert_eq!(s.return_to.as_deref(), Some("/shop?a=1"));
        assert_eq!(s.method, ReceiptMethod::Banner);
        assert!(!s.json);
        assert_eq!(parse_form(b"choice=accept-all&x=1").unwrap().choice, Choice::AcceptAll);
        assert_eq!(parse_form(b"choice=refuse-all").unwrap().choice, Choice::RefuseAll);
        assert_eq!(parse_form(b"").unwrap_err(), "missing choice");
        assert_eq!(parse_form(b"choice=yes").unwrap_err(), "unknown choice");
        assert_eq!(parse_form(b"choice=accept-all&choice=refuse-all").unwrap_err(), "more than one choice");
        assert_eq!(parse_form(b"\xff\xfe=\xff&choice=custom").unwrap().choice, Choice::Custom);
    }

    #[test]
    fn json_parses() {
        let s = parse_json(br#"{"choice":"custom","categories":["analytics"],"method":"banner"}"#).unwrap();
        assert_eq!((s.choice, s.method, s.json), (Choice::Custom, ReceiptMethod::Banner, true));
        assert_eq!(s.categories, vec!["analytics"]);
        let s = parse_json(br#"{"categories":[]}"#).unwrap();
        assert_eq!((s.choice, s.method), (Choice::Custom, ReceiptMethod::Api));
        assert_eq!(parse_json(br#"{"choice":"accept-all"}"#).unwrap().choice, Choice::AcceptAll);
        for bad in [
            &br#"{}"#[..],
            br#"{"choice":"all"}"#,
            br#"{"choice":"custom","categorys":[]}"#,
            br#"{"choice":"custom","method":"robot"}"#,
            br#"{"choice":1}"#,
            br#"[]"#,
            b"choice=accept-all",
            b"",
        ] {
            assert!(parse_json(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn granted_sets() {
        let site = site();
        let p = &site.policy;
        let sub = |choice, cats: &[&str], json| Submission {
            choice,
            categories: cats.iter().map(|s| s.to_string()).collect(),
            method: ReceiptMethod::Api,
            return_to: None,
            json,
        };
        assert_eq!(granted_set(p, &sub(Choice::AcceptAll, &[], false)).unwrap(), p.categories.all());
        // Refuse all ignores any listed categories.
        assert_eq!(
            granted_set(p, &sub(Choice::RefuseAll, &["analytics"], false)).unwrap(),
            CategorySet::NECESSARY_ONLY
        );
        let custom = granted_set(p, &sub(Choice::Custom, &["analytics", "necessary"], false)).unwrap();
        assert_eq!(p.categories.names(custom), "necessary,analytics");
        assert_eq!(
            p.categories.names(granted_set(p, &sub(Choice::Custom, &["gone"], false)).unwrap()),
            "necessary"
        );
        assert!(granted_set(p, &sub(Choice::Custom, &["gone"], true)).is_err());
    }

    #[test]
    fn cookie_attributes() {
        let site = site();
        let p = &site.policy;
        assert_eq!(
            consent_cookie(p, "V", "www.example.com", true),
            "consentry=V; Path=/; Max-Age=2592000; SameSite=Lax; Secure; Domain=example.com"
        );
        // Plain HTTP: no Secure. A host outside the domain: host-only.
        assert_eq!(
            consent_cookie(p, "V", "localhost", false),
            "consentry=V; Path=/; Max-Age=2592000; SameSite=Lax"
        );
        let bare = site_with("[policy.default]\n[policy.default.consent]\ncookie = \"choice\"\n");
        assert_eq!(
            consent_cookie(&bare.policy, "V", "www.example.com", true),
            format!("choice=V; Path=/; Max-Age={}; SameSite=Lax; Secure", 180 * 86_400)
        );
    }

    #[tokio::test]
    async fn form_post_sets_cookie_and_redirects() {
        let site = site();
        let res = send(
            post("", "application/x-www-form-urlencoded"),
            "choice=custom&category=analytics&return_to=%2Fshop%3Fa%3D1",
            &site,
            &cx(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(res.headers()[LOCATION], "/shop?a=1");
        assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
        let cookies = set_cookie(&res);
        assert_eq!(cookies.len(), 1, "{cookies:?}");
        assert!(cookies[0].starts_with("consentry=1.4.1780000000.necessary~analytics; Path=/; Max-Age=2592000; SameSite=Lax; Secure; Domain=example.com"), "{}", cookies[0]);
        // The cookie set here is the one the consent stage reads back.
        let pair = cookies[0].split(';').next().unwrap();
        let jar = crate::cookie::CookieJar::parse(pair);
        let read = crate::consent::read(&site.policy.consent, &jar, false, cx().now);
        assert!(read.is_valid(), "{read:?}");
        assert_eq!(site.policy.categories.names(read.granted), "necessary,analytics");
    }

    /// A visitor holding a host-only consent cookie (from before
    /// `cookie_domain`) gets it deleted alongside the new domain cookie, or
    /// the browser would send both and the consent would read as
    /// contradictory.
    #[tokio::test]
    async fn a_domain_cookie_replaces_a_host_only_copy() {
        let site = site();
        let with_old = post("", "application/json").header("cookie", "consentry=1.4.1770000000.");
        let res = send(with_old, r#"{"choice":"accept-all"}"#, &site, &cx()).await;
        let cookies = set_cookie(&res);
        assert!(cookies[0].ends_with("; Domain=example.com"), "{cookies:?}");
        assert_eq!(
            cookies[1],
            "consentry=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure"
        );
        assert_eq!(cookies.len(), 2, "{cookies:?}");

        // No consent cookie in the request: nothing to delete.
        let res = send(post("", "application/json"), r#"{"choice":"accept-all"}"#, &site, &cx()).await;
        assert_eq!(set_cookie(&res).len(), 1);
        // A host-only new cookie (the host is outside cookie_domain) is the
        // very cookie a deletion would remove: none is sent.
        let outside = Request::post("/.consentry/consent")
            .header(HOST, "localhost")
            .header(CONTENT_TYPE, "application/json")
            .header("cookie", "consentry=1.4.1770000000.");
        let res = send(outside, r#"{"choice":"accept-all"}"#, &site, &cx()).await;
        assert_eq!(set_cookie(&res).len(), 1, "{:?}", set_cookie(&res));
    }

    #[tokio::test]
    async fn form_post_never_redirects_off_site() {
        let site = site();
        for bad in ["https%3A%2F%2Fevil.example%2F", "%2F%2Fevil.example", "%2F%5Cevil.example", ""] {
            let res = send(
                post("", "application/x-www-form-urlencoded"),
                &format!("choice=refuse-all&return_to={bad}"),
                &site,
                &cx(),
            )
            .await;
            assert_eq!(res.status(), StatusCode::SEE_OTHER);
            assert_eq!(res.headers()[LOCATION], "/", "{bad}");
        }
        let res =
            send(post("", "application/x-www-form-urlencoded"), "choice=refuse-all", &site, &cx()).await;
        assert_eq!(res.headers()[LOCATION], "/");
    }

    #[tokio::test]
    async fn json_or_accept_json_gets_204() {
        let site = site();
        let res =
            send(post("", "application/json; charset=utf-8"), r#"{"choice":"accept-all"}"#, &site, &cx())
                .await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert!(res.headers().get(LOCATION).is_none());
        assert!(
            set_cookie(&res)[0]
                .starts_with("consentry=1.4.1780000000.necessary~functional~analytics~advertising;")
        );
        let res = send(
            post("", "application/x-www-form-urlencoded").header(ACCEPT, "application/json"),
            "choice=refuse-all&return_to=%2Fx",
            &site,
            &cx(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert!(set_cookie(&res)[0].starts_with("consentry=1.4.1780000000.necessary;"));
    }

    #[tokio::test]
    async fn cross_site_posts_are_refused() {
        let site = site();
        let req = Request::post("/.consentry/consent")
            .header(HOST, "www.example.com")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("origin", "https://evil.example");
        let res = send(req, "choice=accept-all", &site, &cx()).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(set_cookie(&res).is_empty());
        let req = post("", "application/x-www-form-urlencoded").header("sec-fetch-site", "cross-site");
        // `post` already set same-origin: a second value must not help.
        let mut built = req.body(crate::body::full("choice=accept-all")).unwrap();
        built.headers_mut().insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        let res = handle(built, &site, &cx()).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(set_cookie(&res).is_empty());
    }

    #[tokio::test]
    async fn bad_posts_get_clear_statuses() {
        let site = site();
        let res = send(post("", "text/plain"), "choice=accept-all", &site, &cx()).await;
        assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let res = send(post("", "application/x-www-form-urlencoded"), "choice=maybe", &site, &cx()).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let res =
            send(post("", "application/json"), r#"{"choice":"custom","categories":["nope"]}"#, &site, &cx())
                .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert!(set_cookie(&res).is_empty());
        // Too large, announced or streamed.
        let big = format!("choice=accept-all&pad={}", "x".repeat(MAX_BODY));
        let res = send(post("", "application/x-www-form-urlencoded"), &big, &site, &cx()).await;
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let res = send(
            post("", "application/x-www-form-urlencoded").header(CONTENT_LENGTH, "999999"),
            "choice=accept-all",
            &site,
            &cx(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let chunks: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> =
            (0..20).map(|_| Ok(http_body::Frame::data(Bytes::from(vec![b'x'; 1024])))).collect();
        let req = post("", "application/x-www-form-urlencoded")
            .body(crate::body::boxed(StreamBody::new(futures_util::stream::iter(chunks))))
            .unwrap();
        assert_eq!(handle(req, &site, &cx()).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // A site reading another consent manager's cookie has no endpoint.
        let other = site_with("[policy.default]\n[policy.default.consent]\nformat = \"onetrust\"\n");
        let res =
            send(post("", "application/x-www-form-urlencoded"), "choice=accept-all", &other, &cx()).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn slow_bodies_time_out() {
        // A short timeout stands in for BODY_TIMEOUT; the body never ends.
        let never = futures_util::stream::pending::<Result<http_body::Frame<Bytes>, std::io::Error>>();
        let err = read_body(crate::body::boxed(StreamBody::new(never)), Duration::from_millis(10))
            .await
            .unwrap_err();
        assert_eq!(err.0, StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test]
    async fn get_returns_the_current_decision() {
        let site = site();
        let mut cx = cx();
        let p = &site.policy;
        let analytics = p.categories.id("analytics").unwrap();
        cx.consent = Consent {
            granted: CategorySet::NECESSARY_ONLY.union(CategorySet::only(analytics)),
            state: State::Valid,
            format: Format::Consentry,
            revision: Some(4),
            given_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000)),
            gpc_refused: CategorySet::only(p.categories.id("advertising").unwrap()),
        };
        let req = Request::get("/.consentry/consent").header(HOST, "www.example.com");
        let res = send(req, "", &site, &cx).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
        let json: serde_json::Value = serde_json::from_str(&text(res).await).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "state": "valid", "valid": true, "format": "consentry",
                "granted": ["necessary", "analytics"],
                "refused": ["functional", "advertising"],
                "gpc_refused": ["advertising"],
                "revision": 4, "policy_revision": 4,
                "given_at": "2026-05-28T20:26:40Z"
            })
        );
        let res = send(Request::get("/.consentry/consent"), "", &site, &self::cx()).await;
        let json: serde_json::Value = serde_json::from_str(&text(res).await).unwrap();
        assert_eq!(json["state"], "missing");
        assert_eq!(json["granted"], serde_json::json!(["necessary"]));
        assert_eq!(json["given_at"], serde_json::Value::Null);
    }

    #[tokio::test]
    async fn assets_are_served_with_cache_validators() {
        let site = site();
        let css = banner::css();
        let res =
            send(Request::get(format!("/.consentry/banner.css?v={}", css.version)), "", &site, &cx()).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[CONTENT_TYPE], "text/css; charset=utf-8");
        assert_eq!(res.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable");
        assert_eq!(res.headers()[ETAG], css.etag.as_str());
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        assert_eq!(text(res).await, css.body);

        let js = banner::js();
        let res = send(Request::get("/.consentry/banner.js?v=old"), "", &site, &cx()).await;
        assert_eq!(res.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_eq!(res.headers()[CACHE_CONTROL], "public, max-age=300");
        assert_eq!(res.headers()[CONTENT_LENGTH], js.body.len().to_string().as_str());

        let req =
            Request::get("/.consentry/banner.js").header(IF_NONE_MATCH, format!("\"x\", W/{}", js.etag));
        let res = send(req, "", &site, &cx()).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(res.headers()[ETAG], js.etag.as_str());
        assert_eq!(text(res).await, "");

        let res = send(Request::head("/.consentry/banner.js"), "", &site, &cx()).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[CONTENT_LENGTH], js.body.len().to_string().as_str());
        assert_eq!(text(res).await, "");
    }

    #[tokio::test]
    async fn unknown_paths_and_methods() {
        let site = site();
        for path in ["/.consentry/", "/.consentry/nope", "/.consentry/banner.css/x", "/.consentry"] {
            let res = send(Request::get(path), "", &site, &cx()).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        }
        let res = send(Request::put("/.consentry/consent"), "", &site, &cx()).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()[ALLOW], "GET, HEAD, POST");
        let res = send(Request::post("/.consentry/banner.css"), "", &site, &cx()).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(is_endpoint("/.consentry/consent") && is_endpoint("/.consentry"));
        assert!(!is_endpoint("/.consentryx") && !is_endpoint("/page"));
    }

    fn temp_file(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "consentry-endpoint-{tag}-{}-{:x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("receipts.jsonl")
    }

    #[tokio::test]
    async fn every_choice_writes_a_receipt_before_answering() {
        let site = site();
        let path = temp_file("receipt");
        let mut cx = cx();
        cx.receipts = Some(Arc::new(ReceiptWriter::open(&path, 1 << 20).unwrap()));
        let res = send(
            post("", "application/x-www-form-urlencoded"),
            "choice=custom&category=functional",
            &site,
            &cx,
        )
        .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        // The response exists, so the receipt is already on disk.
        let text = std::fs::read_to_string(&path).unwrap();
        let r: Receipt = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!((r.site.as_str(), r.policy.as_str(), r.revision), ("example", "default", 4));
        assert_eq!(r.choice, "custom");
        assert_eq!(r.granted, vec!["necessary", "functional"]);
        assert_eq!(r.refused, vec!["analytics", "advertising"]);
        assert_eq!(r.method, ReceiptMethod::Banner);
        assert_eq!(r.user_agent.as_deref(), Some("TestBrowser/1.0"));
        assert_eq!(r.ip.as_deref(), Some("198.51.100.0/24"));
        assert_eq!(r.time, "2026-05-28T20:26:40.000Z");
        assert_eq!(res.headers()[RECEIPT_HEADER], r.id.as_str(), "the answer names its receipt");

        let res = send(post("", "application/json"), r#"{"choice":"refuse-all"}"#, &site, &cx).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let text = std::fs::read_to_string(&path).unwrap();
        let r: Receipt = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
        assert_eq!(res.headers()[RECEIPT_HEADER], r.id.as_str());
        let report = crate::receipts::verify(&path).unwrap();
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.by_method, (1, 1));
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[tokio::test]
    async fn the_receipt_keeps_the_ip_as_the_policy_says() {
        for (setting, expected) in [
            ("", Some("198.51.100.0/24")),
            ("[policy.default.receipts]\nip = \"truncate\"\nipv4_prefix = 16\n", Some("198.51.0.0/16")),
            ("[policy.default.receipts]\nip = \"none\"\n", None),
            ("[policy.default.receipts]\nip = \"full\"\n", Some("198.51.100.23")),
        ] {
            let site = site_with(&format!("{POLICY}{setting}"));
            let path = temp_file("ip");
            let mut cx = cx();
            cx.receipts = Some(Arc::new(ReceiptWriter::open(&path, 1 << 20).unwrap()));
            let res =
                send(post("", "application/x-www-form-urlencoded"), "choice=refuse-all", &site, &cx).await;
            assert_eq!(res.status(), StatusCode::SEE_OTHER);
            let text = std::fs::read_to_string(&path).unwrap();
            let r: Receipt = serde_json::from_str(text.lines().next().unwrap()).unwrap();
            assert_eq!(r.ip.as_deref(), expected, "{setting}");
            std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
        }
    }

    #[tokio::test]
    async fn no_receipt_no_cookie() {
        let site = site();
        let path = temp_file("fail");
        let mut cx = cx();
        // A tiny max_bytes forces a rotation, which fails once the
        // directory is gone.
        cx.receipts = Some(Arc::new(ReceiptWriter::open(&path, 10).unwrap()));
        let ok = send(post("", "application/x-www-form-urlencoded"), "choice=refuse-all", &site, &cx).await;
        assert_eq!(ok.status(), StatusCode::SEE_OTHER);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
        let res = send(post("", "application/x-www-form-urlencoded"), "choice=accept-all", &site, &cx).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(set_cookie(&res).is_empty());
        assert!(res.headers().get(RECEIPT_HEADER).is_none());
    }
}
