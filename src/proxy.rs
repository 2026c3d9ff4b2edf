//! The glue: one request through every stage, in order.
//!
//! `pipeline` reads top to bottom as the table in `lib.rs`. Each stage is
//! a call into its own module; this file only carries values from one to
//! the next and decides nothing about cookies or pages itself. The snapshot
//! is loaded once, before routing (the router lives in it), and the whole
//! request uses that one snapshot even if a reload lands meanwhile.
//!
//! Errors from any stage are [`ProxyError`]s, turned into a response in
//! [`handle`] (and into a status only in [`crate::error`]).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::header::{CONNECTION, HOST, HeaderValue};
use http::request::Parts;
use http::{Request, Response, Version};
use hyper::body::Incoming;

use crate::access_log::{self, Record};
use crate::banner;
use crate::body::{self, Body};
use crate::consent;
use crate::consent_endpoint::{self, EndpointContext};
use crate::cookie::CookieJar;
use crate::csp;
use crate::decision::Decisions;
use crate::error::ProxyError;
use crate::forward::Target;
use crate::forwarded;
use crate::h2_request;
use crate::listen::ConnInfo;
use crate::policy::Mode;
use crate::request_filter;
use crate::request_sanity;
use crate::response_body::{self, BodyContext};
use crate::response_headers::{self, ResponseContext};
use crate::route;
use crate::server::Shared;
use crate::snapshot::Snapshot;

/// Handles one request: runs the pipeline, answers errors, and wraps the
/// response so the access log and accounting see it finish.
pub async fn handle(shared: Arc<Shared>, conn: Arc<ConnInfo>, request: Request<Incoming>) -> Response<Body> {
    // Stage 3, snapshot: once per request.
    let snapshot = shared.store.load();
    let mut record = Record::new(&request, conn.peer.ip(), snapshot.log.access);
    let http1 = request.version() < Version::HTTP_2;
    // An HTTP/2 body must not end cleanly unless it matches its
    // content-length (HTTP/1 framing is hyper's own).
    let request = if request.version() == http::Version::HTTP_2 {
        let declared = h2_request::declared_length(request.headers()).ok().flatten();
        request.map(|b| h2_request::confirm_length(body::boxed(b), declared))
    } else {
        request.map(body::boxed)
    };
    let response = match pipeline(&shared, &conn, &snapshot, request, &mut record).await {
        Ok(response) => response,
        Err(error) => {
            let status = error.status();
            if status.is_server_error() && !error.closes_connection() {
                tracing::warn!(request_id = %record.request_id, status = status.as_u16(), error = %error, "request failed");
            } else if error.closes_connection() {
                tracing::info!(peer = %conn.peer, status = status.as_u16(), error = %error, "request refused, closing the connection");
            } else {
                tracing::debug!(request_id = %record.request_id, status = status.as_u16(), error = %error, "request refused");
            }
            let mut response = error.to_response();
            if http1 && error.closes_connection() {
                response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    };
    access_log::finish(response, record, shared.account.clone())
}

/// The stages, in order.
async fn pipeline(
    shared: &Shared,
    conn: &ConnInfo,
    snapshot: &Snapshot,
    request: Request<Body>,
    record: &mut Record,
) -> Result<Response<Body>, ProxyError> {
    let (mut parts, body) = request.into_parts();

    // Stage 1½, request sanity: framing and routing a hardened proxy would
    // not trust are refused before any stage reads the head.
    request_sanity::check(parts.version, &parts.headers).map_err(|refusal| match refusal {
        request_sanity::Refusal::Malformed(why) => ProxyError::Malformed(why),
        refusal @ request_sanity::Refusal::UnknownCoding(_) => {
            ProxyError::NotImplemented(refusal.to_string())
        }
    })?;

    let request_id = forwarded::request_id(&mut parts.headers);
    record.request_id.clone_from(&request_id);

    // Who asked, and over HTTPS or not: the connection, or a trusted load
    // balancer's X-Forwarded-* (before the forward stage rewrites them).
    let (client_ip, https) =
        forwarded::effective_client(&parts.headers, conn.peer.ip(), conn.https, &snapshot.trusted_proxies);

    // Stage 2, route: absolute URI / `:authority` first, else `Host`.
    let host = client_host(&parts).ok_or(ProxyError::MissingHost)?;
    let site = snapshot.router.route(&host).cloned().ok_or_else(|| ProxyError::UnknownHost(host.clone()))?;
    record.site = Some(site.name.clone());
    let host_name = route::normalize_host(&host);
    let policy = &site.policy;

    // Stage 4, consent; and stage 5's verdict on every request cookie,
    // from the same jar (the headers are split once).
    let endpoint = consent_endpoint::is_endpoint(parts.uri.path());
    let mut decisions = Decisions::new();
    let (consent, verdict) = {
        let jar = CookieJar::from_headers(&parts.headers);
        let gpc = parts.headers.get("sec-gpc").is_some_and(|v| v.as_bytes().trim_ascii() == b"1");
        let consent = consent::read(&policy.consent, &jar, gpc, SystemTime::now());
        let verdict = (!endpoint)
            .then(|| request_filter::judge_request(&jar, policy, &host_name, &consent, &mut decisions));
        (consent, verdict)
    };
    tracing::debug!(request_id = %request_id, consent = consent.state.name(), "consent read");

    // consentry's own endpoints (banner assets, the consent endpoint): the
    // one place they are answered. They never reach the origin.
    let Some(verdict) = verdict else {
        let cx = EndpointContext {
            https,
            client_ip: Some(client_ip),
            now: SystemTime::now(),
            consent,
            receipts: shared.receipts.clone(),
        };
        return Ok(consent_endpoint::handle(Request::from_parts(parts, body), &site, &cx).await);
    };

    // Stage 5, request filter: the verdict applied (remembers withdrawn
    // cookies for the sweep).
    let withdrawn = request_filter::apply_request(&mut parts.headers, policy, &consent, verdict);

    // Stage 8, part one: ask only for encodings the body stage can rewrite.
    response_body::narrow_accept_encoding(&mut parts.headers);

    // Kept for the page stage: the banner's language and where its form
    // returns to. Cheap handles (shared bytes), turned into strings only
    // for a page.
    let accept_language = parts.headers.get(http::header::ACCEPT_LANGUAGE).cloned();
    let uri = parts.uri.clone();
    // Only top-level documents get the banner, not iframes or fetches.
    let top_level = banner::is_top_level_request(&parts.headers);

    // Stage 6, forward.
    let method = parts.method.clone();
    let scheme = if https { "https" } else { "http" };
    let target = Target {
        site: &site,
        ca: site.ca_file.as_ref().and_then(|path| snapshot.origin_cas.get(path)).map(Arc::as_ref),
        limits: &snapshot.limits,
        client: forwarded::Client { ip: conn.peer.ip(), https, host: &host, version: parts.version },
        tasks: &shared.tasks,
        activity: &conn.activity,
    };
    let origin_started = Instant::now();
    let forwarded = shared.forwarder.forward(target, Request::from_parts(parts, body)).await;
    record.origin_time = Some(origin_started.elapsed());
    let (mut parts, body) = forwarded?.into_parts();

    // Stage 7, response headers (told whether stage 8 will rewrite).
    let body_rewritten = response_body::will_rewrite(&method, parts.status, &parts.headers);
    let cx = ResponseContext {
        policy,
        host: &host_name,
        consent: &consent,
        withdrawn: &withdrawn,
        https,
        now: SystemTime::now(),
        body_rewritten,
    };
    response_headers::filter_response(parts.status, &mut parts.headers, &cx, &mut decisions);
    // What pages get besides: the banner (in the visitor's language) and
    // a CSP from the granted categories, whose nonce lets the banner's own
    // assets load.
    // Report-only changes no byte of a page, so it shows no banner either.
    let shows_banner = body_rewritten && banner::enabled(policy) && policy.mode == Mode::Enforce;
    if shows_banner {
        // Whether the page gets the banner depends on these too.
        for name in banner::REQUEST_HEADERS {
            response_headers::vary_on(&mut parts.headers, name);
        }
    }
    let banner = (shows_banner && top_level)
        .then(|| banner::negotiate_language(accept_language.as_ref().and_then(|v| v.to_str().ok())));
    let csp_nonce = (banner.is_some() && policy.csp.is_some()).then(csp::nonce);
    // The origin's own CSP may block the banner's assets: make room for
    // them (and only them) in it, before consentry's own header is added.
    // The banner's elements carry consentry's nonce, or one of their own
    // that is never given to the site's inline code.
    let origin_csp = parts.headers.contains_key(http::header::CONTENT_SECURITY_POLICY);
    let banner_nonce = match (&banner, &csp_nonce) {
        (Some(_), Some(n)) => Some(n.clone()),
        (Some(_), None) if origin_csp => Some(csp::nonce()),
        _ => None,
    };
    if let Some(nonce) = banner_nonce.as_deref()
        && origin_csp
    {
        csp::admit_banner(&mut parts.headers, nonce, &format!("{scheme}://{host}"));
    }
    if body_rewritten {
        response_headers::add_csp(&mut parts.headers, &site, consent.granted, csp_nonce.as_deref());
    }
    let banner = banner.map(|lang| {
        response_headers::vary_on(&mut parts.headers, "Accept-Language");
        let return_to = uri.path_and_query().map_or("/", |p| p.as_str());
        banner::snippet(policy, lang, &consent, banner_nonce.as_deref(), return_to)
    });

    // Stage 9, account: the request's cookie decisions now; the page's
    // decisions when the rewriter is done with the body.
    shared.account.record(&site, policy, &request_id, &decisions);

    // Stage 8, response body: pages through the rewriter (which also counts
    // the HTML it cannot rewrite); everything else untouched.
    let body = if response_body::is_page(&method, parts.status, &parts.headers) {
        let account = shared.account.clone();
        let done_site = site.clone();
        let cx = BodyContext {
            site: site.clone(),
            consent,
            page_url: format!("{scheme}://{host}{}", uri.path()),
            banner,
            csp_nonce,
            max_decoded_body: snapshot.limits.max_decoded_body,
            on_done: Box::new(move |page: Decisions| {
                if !page.is_empty() {
                    account.record(&done_site, &done_site.policy, &request_id, &page);
                }
            }),
        };
        response_body::rewrite(&mut parts.headers, body, cx)
    } else {
        body
    };
    Ok(Response::from_parts(parts, body))
}

/// The host the client asked for, port kept: the authority of an
/// absolute-form URI or HTTP/2 `:authority` (which RFC 9112 §3.2.2 says
/// wins over `Host`), else `Host`.
fn client_host(parts: &Parts) -> Option<String> {
    let from_uri = parts.uri.authority().map(|a| a.as_str().rsplit('@').next().unwrap_or_default());
    let from_header = || parts.headers.get(HOST).and_then(|v| v.to_str().ok());
    from_uri.or_else(from_header).map(str::trim).filter(|h| !h.is_empty()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(request: Request<()>) -> Parts {
        request.into_parts().0
    }

    #[test]
    fn authority_wins_over_host() {
        let p = parts(Request::get("http://a.test:8080/x").header(HOST, "b.test").body(()).unwrap());
        assert_eq!(client_host(&p).as_deref(), Some("a.test:8080"));
        let p = parts(Request::get("http://user:pw@a.test/x").body(()).unwrap());
        assert_eq!(client_host(&p).as_deref(), Some("a.test"));
        let p = parts(Request::get("/x").header(HOST, " b.test ").body(()).unwrap());
        assert_eq!(client_host(&p).as_deref(), Some("b.test"));
        let p = parts(Request::get("/x").header(HOST, "").body(()).unwrap());
        assert_eq!(client_host(&p), None);
        assert_eq!(client_host(&parts(Request::get("/x").body(()).unwrap())), None);
    }
}
