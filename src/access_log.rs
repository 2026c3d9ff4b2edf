//! One access-log line per request, written when the response body is
//! finished (or abandoned), so `bytes` and `duration` are what the client
//! really got.
//!
//! The line is a `tracing` event with target `consentry::access` at info
//! level and structured fields (`method`, `host`, `path`, `status`, `bytes`,
//! `duration_ms`, `origin_ms`, `request_id`, `site`, `peer`, `version`,
//! `complete`), so `--log-format json` gives one JSON object per request.
//! The query string is left out on purpose: it often carries personal data.
//! The same moment feeds [`crate::account::Account::request_done`].

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::account::Account;
use crate::body::{self, Body, BoxError};

/// What is known about a request by the time its response starts.
#[derive(Debug)]
pub struct Record {
    /// Request method.
    pub method: Method,
    /// Host as the client sent it (empty when none).
    pub host: String,
    /// Path without the query.
    pub path: String,
    /// Client HTTP version.
    pub version: Version,
    /// Client address.
    pub peer: IpAddr,
    /// The request id.
    pub request_id: String,
    /// The site's name, once routed.
    pub site: Option<String>,
    /// Time from sending to the origin to its response headers.
    pub origin_time: Option<Duration>,
    /// When the request arrived.
    pub started: Instant,
    /// Whether to write the line (`[log] access`).
    pub enabled: bool,
}

impl Record {
    /// Starts the record of a request.
    pub fn new<B>(request: &Request<B>, peer: IpAddr, enabled: bool) -> Record {
        // The host and path are copied only for a line that will be
        // written: two allocations a request saved when access logs are off.
        let host = if !enabled {
            String::new()
        } else {
            request
                .uri()
                .authority()
                .map(|a| a.as_str().to_string())
                .or_else(|| {
                    request
                        .headers()
                        .get(http::header::HOST)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                })
                .unwrap_or_default()
        };
        Record {
            method: request.method().clone(),
            host,
            path: if enabled { request.uri().path().to_string() } else { String::new() },
            version: request.version(),
            peer,
            request_id: String::new(),
            site: None,
            origin_time: None,
            started: Instant::now(),
            enabled,
        }
    }
}

/// Wraps the response body so the line is written once it is done.
pub fn finish(response: Response<Body>, record: Record, account: Arc<Account>) -> Response<Body> {
    let status = response.status();
    response.map(|inner| {
        body::boxed(Logged { inner, status, bytes: 0, complete: false, record: Some(record), account })
    })
}

struct Logged {
    inner: Body,
    status: StatusCode,
    bytes: u64,
    complete: bool,
    record: Option<Record>,
    account: Arc<Account>,
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => this.complete = true,
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let Some(record) = self.record.take() else { return };
        let duration = record.started.elapsed();
        // hyper never polls a body that says it is empty.
        let complete = self.complete || self.inner.is_end_stream();
        if record.enabled {
            tracing::info!(
                target: "consentry::access",
                method = %record.method,
                host = %record.host,
                path = %record.path,
                status = self.status.as_u16(),
                bytes = self.bytes,
                duration_ms = millis(duration),
                origin_ms = record.origin_time.map(millis),
                request_id = %record.request_id,
                site = record.site.as_deref().unwrap_or("-"),
                peer = %record.peer,
                version = ?record.version,
                complete,
                "access"
            );
        }
        self.account.request_done(record.site.as_deref(), self.status.as_u16(), duration);
    }
}

/// Milliseconds with microsecond precision (`1.399`).
fn millis(d: Duration) -> f64 {
    // Realistic durations fit an f64 exactly at this precision.
    #[allow(clippy::cast_precision_loss)]
    let micros = d.as_micros() as f64;
    micros / 1000.0
}
