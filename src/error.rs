//! The one place where a failed request becomes a status code.
//!
//! Every error the proxy itself answers (as opposed to an origin's own error
//! responses, which pass through) is a [`ProxyError`]. [`ProxyError::status`]
//! maps it to a status, [`ProxyError::to_response`] to a short plain-text
//! body that says what kind of failure happened and nothing else: the
//! visitor never sees an origin address, an OS error or a stack. The full
//! detail (`Display`, with the source chain) goes to the log instead.

use std::time::Duration;

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};

use crate::body::{self, Body, BoxError};

/// Why the proxy answered a request itself.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Neither `Host` nor an absolute URI / `:authority` named a host.
    #[error("request names no host")]
    MissingHost,
    /// No configured site has this host.
    #[error("no site is configured for host {0:?}")]
    UnknownHost(String),
    /// A method a reverse proxy does not forward (`CONNECT`).
    #[error("method {0} is not forwarded")]
    MethodNotAllowed(String),
    /// The request cannot be turned into an origin request.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request head is malformed or ambiguous
    /// ([`crate::request_sanity`]); the connection is closed after the answer.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The request uses a transfer coding the proxy does not implement.
    #[error("not implemented: {0}")]
    NotImplemented(String),
    /// Connecting to the origin failed (refused, DNS, TLS, connect timeout).
    #[error("cannot connect to origin {origin}: {source}")]
    OriginUnreachable {
        /// The origin URL.
        origin: String,
        /// What failed.
        #[source]
        source: BoxError,
    },
    /// The origin did not send its response headers in time.
    #[error("origin {origin} sent no response headers within {timeout:?}")]
    OriginTimeout {
        /// The origin URL.
        origin: String,
        /// The configured `origin_response_timeout`.
        timeout: Duration,
    },
    /// The origin connection failed after connecting (reset, malformed
    /// response, closed before answering).
    #[error("origin {origin} failed: {source}")]
    OriginFailed {
        /// The origin URL.
        origin: String,
        /// What failed.
        #[source]
        source: BoxError,
    },
    /// The client's request body broke its framing (a bad chunk) or the
    /// connection failed mid-upload; the origin's upload was aborted.
    #[error("request body failed: {0}")]
    ClientBody(#[source] BoxError),
    /// The client stalled its request body beyond `body_read_timeout`.
    #[error("request body stalled for {0:?}")]
    ClientTimeout(Duration),
    /// A request head started and did not finish within
    /// `header_read_timeout` (answered by [`crate::head_timeout`], below
    /// hyper).
    #[error("request head not received within {0:?}")]
    HeadTimeout(Duration),
    /// A stage panicked while handling the request; the process goes on.
    #[error("request handler panicked: {0}")]
    Panic(String),
}

impl ProxyError {
    /// The status code the client gets. The only status mapping in the crate.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::MissingHost | ProxyError::BadRequest(_) | ProxyError::Malformed(_) => {
                StatusCode::BAD_REQUEST
            }
            ProxyError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ProxyError::ClientBody(_) => StatusCode::BAD_REQUEST,
            ProxyError::ClientTimeout(_) | ProxyError::HeadTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::UnknownHost(_) => StatusCode::MISDIRECTED_REQUEST,
            ProxyError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::OriginUnreachable { .. } | ProxyError::OriginFailed { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::OriginTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Panic(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The one-line text the client gets: the kind of failure, no detail.
    pub fn client_message(&self) -> &'static str {
        match self {
            ProxyError::MissingHost => "the request names no host",
            ProxyError::UnknownHost(_) => "no site is configured for this host",
            ProxyError::MethodNotAllowed(_) => "method not allowed",
            ProxyError::BadRequest(_) | ProxyError::Malformed(_) => "bad request",
            ProxyError::NotImplemented(_) => "not implemented",
            ProxyError::ClientBody(_) => "the request body is malformed or incomplete",
            ProxyError::ClientTimeout(_) => "the request body did not arrive in time",
            ProxyError::HeadTimeout(_) => "the request head did not arrive in time",
            ProxyError::OriginUnreachable { .. } => "the site's server cannot be reached",
            ProxyError::OriginTimeout { .. } => "the site's server did not answer in time",
            ProxyError::OriginFailed { .. } => "the site's server sent no valid response",
            ProxyError::Panic(_) => "internal error",
        }
    }

    /// The body the client gets: `408 Request Timeout: MESSAGE\n`.
    pub fn client_text(&self) -> String {
        let status = self.status();
        format!(
            "{} {}: {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            self.client_message()
        )
    }

    /// The response sent to the client: status, `text/plain`, never cached.
    pub fn to_response(&self) -> Response<Body> {
        let status = self.status();
        let mut response = Response::new(body::full(self.client_text()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    /// Whether the client connection must close after this answer: its
    /// framing cannot be trusted any more (HTTP/1 only; hyper closes the
    /// connection when the response says `Connection: close`).
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            ProxyError::Malformed(_)
                | ProxyError::NotImplemented(_)
                | ProxyError::ClientBody(_)
                | ProxyError::ClientTimeout(_)
                | ProxyError::HeadTimeout(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn io() -> BoxError {
        Box::new(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused by 10.0.0.7:3000"))
    }

    /// Pins the whole mapping: a change here is a change of the proxy's
    /// public behaviour.
    #[test]
    fn status_mapping_is_pinned() {
        let origin = "http://10.0.0.7:3000".to_string();
        let cases: Vec<(ProxyError, u16)> = vec![
            (ProxyError::MissingHost, 400),
            (ProxyError::BadRequest("x".into()), 400),
            (ProxyError::Malformed("x".into()), 400),
            (ProxyError::NotImplemented("x".into()), 501),
            (ProxyError::ClientBody("x".into()), 400),
            (ProxyError::ClientTimeout(Duration::from_secs(1)), 408),
            (ProxyError::HeadTimeout(Duration::from_secs(1)), 408),
            (ProxyError::UnknownHost("x.test".into()), 421),
            (ProxyError::MethodNotAllowed("CONNECT".into()), 405),
            (ProxyError::OriginUnreachable { origin: origin.clone(), source: io() }, 502),
            (ProxyError::OriginFailed { origin: origin.clone(), source: io() }, 502),
            (ProxyError::OriginTimeout { origin, timeout: Duration::from_secs(1) }, 504),
            (ProxyError::Panic("boom".into()), 500),
        ];
        for (error, status) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
        }
    }

    #[tokio::test]
    async fn responses_carry_no_internal_detail() {
        let error = ProxyError::OriginUnreachable { origin: "http://10.0.0.7:3000".into(), source: io() };
        assert!(error.to_string().contains("10.0.0.7"), "the log keeps the detail");
        let response = error.to_response();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(response.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
        let text = response.into_body().collect().await.unwrap().to_bytes();
        let text = std::str::from_utf8(&text).unwrap();
        assert_eq!(text, "502 Bad Gateway: the site's server cannot be reached\n");
        assert!(!text.contains("10.0.0.7") && !text.contains("refused"));
    }
}
