//! Stage 1, **listen**: accept TCP (and TLS) connections and serve HTTP/1.1
//! and HTTP/2 on them with hyper ([`crate::http_conn`] tells which from the
//! first bytes), within the limits of `[limits]`.
//!
//! What guards what:
//! - **connection count**: one semaphore permit per connection, taken
//!   *before* `accept` (as mini-redis does), so at the limit new clients wait
//!   in the kernel backlog instead of being accepted and starved. An
//!   upgraded (WebSocket) connection keeps its permit until its tunnel ends.
//! - **slow clients**: the TLS handshake must finish within
//!   `header_read_timeout`, and so must every HTTP/1 request head:
//!   [`HeadTimeout`] answers a head that started and did not finish with
//!   `408` and `Connection: close` (hyper's own timer would close without a
//!   word; it stays, [`crate::head_timeout::BACKSTOP`] later, as a
//!   backstop). The deadline of the next head starts once a response is
//!   done, and a connection that sends nothing by then is closed silently,
//!   so an idle HTTP/1.1 connection lasts at most `min(header_read_timeout,
//!   idle_timeout)`.
//! - **slow bodies and slow readers**: hyper has neither a body read nor a
//!   write timeout. A request body that stalls for `body_read_timeout` is
//!   cut in [`crate::forward`] (408); a client that reads nothing for
//!   `send_timeout` is disconnected by [`SendTimeout`], under TLS too (it
//!   wraps the TCP stream), tunnels included.
//! - **idle connections**: a connection with no request in flight is closed
//!   after `header_read_timeout` if it never sent one, else after
//!   `idle_timeout` (this is what bounds idle HTTP/2 connections, which keep
//!   answering pings).
//! - **header size and count**: HTTP/1 heads over `max_header_bytes` or with
//!   more than `max_headers` fields get 431 from hyper; HTTP/2 advertises
//!   `max_header_list_size`.
//! - **HTTP/2 floods**: `max_concurrent_streams` from the config, and the
//!   counters hyper exposes against rapid-reset (CVE-2023-44487) and
//!   "made you reset" (CVE-2025-8671) floods.
//!   Below hyper, [`H2Guard`] bounds every kind of no-work frame flood
//!   (rapid reset, empty DATA, CONTINUATION, PING, SETTINGS, PRIORITY) with
//!   one token bucket and answers GOAWAY `ENHANCE_YOUR_CALM`.
//! - **malformed HTTP/2 requests** ([`h2_request`]): reset with
//!   `PROTOCOL_ERROR` before any stage runs, never forwarded.
//! - **panics**: the request future runs under `catch_unwind`; a panicking
//!   stage becomes a 500 for that request, and even a panic outside it only
//!   ends that connection's task.
//!
//! Limits are read from the current snapshot for each new connection, so a
//! reload applies to new connections; `max_connections` and listener
//! addresses need a restart.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioTimer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::body::{Body, BoxError};
use crate::error::ProxyError;
use crate::h2_guard::H2Guard;
use crate::h2_request;
use crate::head_timeout::HeadTimeout;
use crate::http_conn::{self, Builders, Connection};
use crate::server::Shared;
use crate::snapshot::Snapshot;

/// hyper cannot read a request head into a buffer smaller than this.
pub const MIN_HEADER_BYTES: usize = 8 * 1024;
/// HTTP/2 streams a client may open and reset before we accept them
/// (hyper's default, pinned here so it is visible).
const H2_MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// HTTP/2 streams we may reset for a client's protocol errors before the
/// connection is closed (h2's default is 1024; a proxy needs far fewer).
const H2_MAX_LOCAL_ERROR_RESETS: usize = 64;
/// HTTP/2 ping interval and the time an answer may take.
const H2_PING: Duration = Duration::from_secs(20);

/// Response bytes an HTTP/2 stream holds beyond what the client's window
/// lets it send (hyper's default is 400 KB per stream). A client that
/// opens a large window and then reads slowly (browsers open 6 MB) would
/// otherwise have the proxy hold up to that much per stream: a test with
/// 48 slow readers measured 184-253 KB per stream when scheduling let the
/// buffers fill. Two frames of h2's default 16 KiB.
const H2_MAX_SEND_BUF: usize = 32 * 1024;

/// The client side of one connection, shared by its requests.
#[derive(Debug)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub https: bool,
    /// Requests (and tunnels) in flight on it.
    pub activity: Activity,
}

/// Counts what is in flight on a connection, to close it when idle and to
/// hold its permit while a tunnel runs.
///
/// A request costs three atomic operations and a clock read, and wakes no
/// one: the idle timer is a deadline the connection's idle future checks
/// when it fires (at most once per idle limit), not an event sent at every
/// request's start and end. Only a waiter in [`Activity::quiet`] (draining
/// a connection that ended) is notified, on the last guard's drop.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    inner: Arc<ActivityInner>,
}

#[derive(Debug)]
struct ActivityInner {
    /// Requests and tunnels in flight.
    count: AtomicUsize,
    /// Requests (and tunnels) started so far: the idle limit changes after
    /// the first, and [`HeadTimeout`] tells one request head from the next
    /// by it.
    starts: AtomicU64,
    /// When the last one ended, as nanoseconds after `base` (tokio's clock,
    /// which tests can pause).
    last_end: AtomicU64,
    base: Instant,
    /// Set by [`Activity::quiet`] before it waits.
    draining: AtomicBool,
    quiet: Notify,
}

impl Default for ActivityInner {
    fn default() -> Self {
        ActivityInner {
            count: AtomicUsize::new(0),
            starts: AtomicU64::new(0),
            last_end: AtomicU64::new(0),
            base: Instant::now(),
            draining: AtomicBool::new(false),
            quiet: Notify::new(),
        }
    }
}

impl Activity {
    /// Marks something in flight until the guard is dropped.
    pub fn start(&self) -> ActiveGuard {
        self.inner.count.fetch_add(1, Ordering::SeqCst);
        self.inner.starts.fetch_add(1, Ordering::SeqCst);
        ActiveGuard { inner: self.inner.clone() }
    }

    /// Whether a request (or tunnel) is in flight.
    pub fn busy(&self) -> bool {
        self.inner.count.load(Ordering::SeqCst) > 0
    }

    /// How many requests (and tunnels) have started on the connection.
    pub fn starts(&self) -> u64 {
        self.inner.starts.load(Ordering::SeqCst)
    }

    /// Resolves once nothing has been in flight for `first` (before any
    /// request started) or `after` (once one has).
    async fn idle(&self, first: Duration, after: Duration) {
        let inner = &self.inner;
        loop {
            let limit = if inner.starts.load(Ordering::Relaxed) > 0 { after } else { first };
            if inner.count.load(Ordering::SeqCst) > 0 {
                // Busy: look again one limit later (a request that is still
                // running then has its whole limit again once it ends).
                tokio::time::sleep(limit).await;
                continue;
            }
            let ended = inner.base + Duration::from_nanos(inner.last_end.load(Ordering::SeqCst));
            let deadline = ended + limit;
            if Instant::now() >= deadline {
                // Re-checked: a request may have started since the count was read.
                if inner.count.load(Ordering::SeqCst) == 0 {
                    return;
                }
                continue;
            }
            // Before the first request, `first` applies, but a request
            // may start (switching to `after`) at any moment without
            // waking this: look again within `after` at the latest.
            let wake = if limit == first { deadline.min(Instant::now() + after) } else { deadline };
            tokio::time::sleep_until(wake).await;
        }
    }

    /// Resolves when nothing is in flight.
    async fn quiet(&self) {
        let inner = &self.inner;
        inner.draining.store(true, Ordering::SeqCst);
        loop {
            let notified = inner.quiet.notified();
            tokio::pin!(notified);
            // Registered before the count is read: a guard dropped after
            // the read sees `draining` and wakes this.
            notified.as_mut().enable();
            if inner.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Keeps a connection counted as busy while alive.
#[derive(Debug)]
pub struct ActiveGuard {
    inner: Arc<ActivityInner>,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let inner = &self.inner;
        let nanos = u64::try_from(inner.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        inner.last_end.fetch_max(nanos, Ordering::SeqCst);
        if inner.count.fetch_sub(1, Ordering::SeqCst) == 1 && inner.draining.load(Ordering::SeqCst) {
            inner.quiet.notify_waiters();
        }
    }
}

/// The HTTP/1 and HTTP/2 connection builders for the limits of a snapshot.
pub fn http_builder(snapshot: &Snapshot) -> Builders {
    let limits = &snapshot.limits;
    let header_bytes = limits.max_header_bytes.max(MIN_HEADER_BYTES);
    let mut builders = Builders::default();
    builders
        .http1
        .timer(TokioTimer::new())
        // A backstop: [`HeadTimeout`] answers 408 (or closes an idle
        // connection) at `header_read_timeout` itself.
        .header_read_timeout(limits.header_read_timeout + crate::head_timeout::BACKSTOP)
        .max_buf_size(header_bytes)
        // Exact: hyper's read buffer alone bounds a head only roughly (a
        // read may fill whatever capacity the buffer has grown to).
        .max_header_size(header_bytes)
        .max_headers(limits.max_headers)
        .keep_alive(true);
    builders
        .http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(snapshot.h2_max_concurrent_streams)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS)
        .max_header_list_size(u32::try_from(header_bytes).unwrap_or(u32::MAX))
        .max_send_buf_size(H2_MAX_SEND_BUF)
        .keep_alive_interval(H2_PING)
        .keep_alive_timeout(H2_PING);
    builders
}

/// Accepts connections until draining starts, then drops the listener so
/// new connections are refused.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
) {
    let local = listener.local_addr().ok();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shared.tasks.draining() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shared.tasks.draining() => break,
        };
        let _ = stream.set_nodelay(true);
        let tls = tls.clone();
        let task_shared = shared.clone();
        shared.tasks.spawn(async move {
            let _permit = permit;
            connection(stream, peer, tls, task_shared).await;
        });
    }
    tracing::debug!(addr = ?local, "listener closed");
}

/// Serves one accepted connection.
///
/// The task holding this future lives as long as the connection, idle
/// keep-alive time included, so what it holds inline is memory per
/// connection: the builders are dropped once the connection is built (in
/// [`serve`]), and the TLS path (handshake state, a TLS stream) is a
/// separate boxed future that plain connections do not pay for.
async fn connection(stream: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    let snapshot = shared.store.load();
    let builders = http_builder(&snapshot);
    let (send_timeout, header_read_timeout, idle_timeout) = {
        let limits = &snapshot.limits;
        (limits.send_timeout, limits.header_read_timeout, limits.idle_timeout)
    };
    drop(snapshot);
    let stream = SendTimeout::new(stream, send_timeout);
    let conn = Arc::new(ConnInfo { peer, https: tls.is_some(), activity: Activity::default() });
    let handler = {
        let conn = conn.clone();
        let shared = shared.clone();
        move |request: Request<Incoming>| crate::proxy::handle(shared.clone(), conn.clone(), request)
    };
    let idle = (header_read_timeout, idle_timeout);
    match tls {
        None => {
            // Boxed: the stream (432 bytes with its guard) moves through
            // several states of `serve` (argument, sniffing, connection),
            // and an async fn keeps room for each; a box is 8 bytes in each.
            let io = Box::new(H2Guard::new(stream, peer));
            serve(io, builders, handler, &conn.activity, &shared.tasks, idle, None).await;
        }
        Some(acceptor) => {
            tls_connection(acceptor, stream, builders, handler, conn.clone(), shared.clone(), idle).await
        }
    }
}

/// The TLS handshake, then [`serve`] on the TLS stream: boxed, and built in
/// a plain function, so that none of it is inline in the future of a plain
/// connection (an async fn reserves room for every branch it may await).
fn tls_connection<H, F>(
    acceptor: TlsAcceptor,
    stream: SendTimeout<TcpStream>,
    builders: Builders,
    handler: H,
    conn: Arc<ConnInfo>,
    shared: Arc<Shared>,
    idle: (Duration, Duration),
) -> Pin<Box<dyn Future<Output = ()> + Send>>
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    Box::pin(async move {
        let peer = conn.peer;
        match tokio::time::timeout(idle.0, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => {
                // ALPN `h2` means HTTP/2 whatever the first bytes are: a bad
                // preface then gets h2's GOAWAY PROTOCOL_ERROR, never an
                // HTTP/1 answer on a connection agreed to be HTTP/2.
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                let negotiated = h2.then_some(http_conn::Protocol::Http2);
                let stream = Box::new(H2Guard::new(stream, peer));
                serve(stream, builders, handler, &conn.activity, &shared.tasks, idle, negotiated).await;
            }
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "tls handshake failed"),
            Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
        }
    })
}

/// Serves HTTP on one connection with `handler` until the client leaves,
/// the connection idles out, or shutdown. Generic over the handler so
/// tests can serve a panicking one.
///
/// The protocol is read from the first bytes ([`http_conn::sniff`]), within
/// the first idle limit (a client that sends nothing is closed then, as
/// before any request), unless TLS already `negotiated` it (ALPN).
pub async fn serve<I, H, F>(
    io: I,
    builders: Builders,
    handler: H,
    activity: &Activity,
    tasks: &crate::shutdown::Tasks,
    (idle_first, idle_after): (Duration, Duration),
    negotiated: Option<http_conn::Protocol>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let since = Instant::now();
    let sniffed = tokio::select! {
        sniffed = tokio::time::timeout(idle_first, http_conn::sniff(io)) => sniffed,
        () = tasks.draining() => return,
    };
    let (protocol, io) = match sniffed {
        Ok(Ok((sniffed, io))) => (negotiated.unwrap_or(sniffed), io),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "connection ended before its first request");
            return;
        }
        Err(_) => {
            tracing::debug!("closing idle connection");
            return;
        }
    };
    let handler = Arc::new(handler);
    let service_activity = activity.clone();
    let service = service_fn(move |request: Request<Incoming>| -> RequestFuture {
        // A malformed HTTP/2 request is reset here, before any stage (or
        // the origin) sees it: h2 resets the stream with the reason of
        // the `h2::Error` a service fails with.
        let future = match h2_request::check(&request) {
            Ok(()) => Ok(handler(request)),
            Err(why) => Err(why),
        };
        let guard = service_activity.start();
        // Boxed: hyper keeps a box for the future of the request in
        // flight for the connection's whole life, sized to that future
        // (about 7 KB with the proxy's stages), idle time included. A
        // boxed future makes that a pointer, and the request's state is
        // allocated only while it runs.
        Box::pin(async move {
            let future = match future {
                Ok(future) => future,
                Err(why) => {
                    tracing::info!(error = %why, "malformed HTTP/2 request; stream reset");
                    return Err(h2::Error::from(h2::Reason::PROTOCOL_ERROR));
                }
            };
            let response = match AssertUnwindSafe(future).catch_unwind().await {
                Ok(response) => response,
                Err(panic) => {
                    let error = ProxyError::Panic(panic_message(panic.as_ref()));
                    tracing::error!(error = %error, "request handler panicked");
                    error.to_response()
                }
            };
            Ok::<_, h2::Error>(response.map(|body| Guarded { inner: body, _guard: guard }))
        })
    });
    {
        let head_timeout = (protocol == http_conn::Protocol::Http1).then_some(idle_first);
        let io = HeadTimeout::new(io, activity.clone(), head_timeout, since);
        let mut conn = Connection::new(&builders, protocol, io, service);
        drop(builders);
        let idle = activity.idle(idle_first, idle_after);
        tokio::pin!(idle);
        let mut closing = false;
        loop {
            tokio::select! {
                result = &mut conn => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    break;
                }
                () = tasks.draining(), if !closing => {
                    conn.graceful_shutdown();
                    closing = true;
                }
                () = &mut idle, if !closing => {
                    tracing::debug!("closing idle connection");
                    conn.graceful_shutdown();
                    closing = true;
                }
            }
        }
        // `conn` is dropped here, and with it any request it was still
        // holding (and that request's guard).
    }
    // An upgraded connection lives on in its tunnel, which holds a guard.
    activity.quiet().await;
}

/// The future of one request as hyper holds it: boxed (see [`serve`]).
type RequestFuture = Pin<Box<dyn Future<Output = Result<Response<Guarded>, h2::Error>> + Send>>;

pin_project_lite::pin_project! {
    /// A connection whose writes fail with `TimedOut` once one has been
    /// stuck for `timeout` (the client reads nothing): hyper then drops the
    /// connection, its request and its origin connection.
    pub struct SendTimeout<I> {
        #[pin]
        io: I,
        timeout: Duration,
        deadline: Pin<Box<tokio::time::Sleep>>,
        armed: bool,
    }
}

impl<I> SendTimeout<I> {
    /// Wraps `io`.
    pub fn new(io: I, timeout: Duration) -> SendTimeout<I> {
        SendTimeout { io, timeout, deadline: Box::pin(tokio::time::sleep(timeout)), armed: false }
    }
}

impl<I> SendTimeout<I> {
    /// Passes a write's result on; a write still pending when the deadline
    /// passes becomes an error.
    fn watch<T>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        poll: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        let this = self.project();
        match poll {
            Poll::Ready(result) => {
                *this.armed = false;
                Poll::Ready(result)
            }
            Poll::Pending => {
                if !*this.armed {
                    this.deadline.as_mut().reset(tokio::time::Instant::now() + *this.timeout);
                    *this.armed = true;
                }
                match this.deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        tracing::debug!(timeout = ?this.timeout, "client read nothing; closing the connection");
                        Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the client read nothing within send_timeout",
                        )))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<I: AsyncRead> AsyncRead for SendTimeout<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<I: AsyncWrite> AsyncWrite for SendTimeout<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = self.as_mut().project().io.poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = self.as_mut().project().io.poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = self.as_mut().project().io.poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = self.as_mut().project().io.poll_shutdown(cx);
        self.watch(cx, poll)
    }
}

/// The text of a panic payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".to_string())
}

/// A response body that keeps its connection counted as busy until hyper
/// has written it (or given up), and turns a panic inside the body stream
/// (a rewriter bug) into an aborted response instead of a dead task.
struct Guarded {
    inner: Body,
    _guard: ActiveGuard,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let inner = &mut self.get_mut().inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll_frame(cx))) {
            Ok(poll) => poll,
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                tracing::error!(panic = %message, "response body panicked; aborting the response");
                Poll::Ready(Some(Err(format!("response body panicked: {message}").into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn test_builder() -> Builders {
        let mut builders = Builders::default();
        builders.http1.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(5));
        builders
    }

    async fn exchange(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        // An aborted response may end in a reset: keep what arrived.
        let _ = stream.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A panicking handler answers 500 on its own request; the server and
    /// the next connections carry on.
    #[tokio::test]
    async fn a_panicking_handler_costs_one_request() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tasks = crate::shutdown::Tasks::new();
        let server_tasks = tasks.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let tasks = server_tasks.clone();
                tokio::spawn(async move {
                    let handler = |request: Request<Incoming>| async move {
                        assert!(request.uri().path() != "/panic", "stage bug");
                        Response::new(body::full("fine"))
                    };
                    let activity = Activity::default();
                    let idle = (Duration::from_secs(5), Duration::from_secs(5));
                    serve(stream, test_builder(), handler, &activity, &tasks, idle, None).await;
                });
            }
        });
        let first = exchange(addr, "/panic").await;
        assert!(first.starts_with("HTTP/1.1 500 "), "{first}");
        assert!(first.ends_with("internal error\n"), "{first}");
        assert!(!first.contains("stage bug"), "panic text stays in the log: {first}");
        let second = exchange(addr, "/ok").await;
        assert!(second.starts_with("HTTP/1.1 200 ") && second.ends_with("fine"), "{second}");
        tasks.stop();
    }

    /// A panic in the middle of a body aborts that response only.
    #[tokio::test]
    async fn a_panicking_body_aborts_its_response_only() {
        struct Bomb;
        impl HttpBody for Bomb {
            type Data = Bytes;
            type Error = BoxError;
            fn poll_frame(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
                panic!("rewriter bug")
            }
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tasks = crate::shutdown::Tasks::new();
        let server_tasks = tasks.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let tasks = server_tasks.clone();
                tokio::spawn(async move {
                    let handler = |request: Request<Incoming>| async move {
                        if request.uri().path() == "/bomb" {
                            Response::new(body::boxed(Bomb))
                        } else {
                            Response::new(body::full("fine"))
                        }
                    };
                    let activity = Activity::default();
                    let idle = (Duration::from_secs(5), Duration::from_secs(5));
                    serve(stream, test_builder(), handler, &activity, &tasks, idle, None).await;
                });
            }
        });
        let aborted = exchange(addr, "/bomb").await;
        // The head may or may not have gone out; the connection is closed
        // instead of hanging, and nothing pretends to be a whole body.
        assert!(!aborted.contains("fine") && !aborted.contains("content-length"), "{aborted}");
        let second = exchange(addr, "/ok").await;
        assert!(second.ends_with("fine"), "{second}");
        tasks.stop();
    }

    /// A peer that reads nothing: writes stall, then fail with `TimedOut`
    /// after the timeout; a peer that reads keeps the writes going.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_write_times_out_and_progress_resets_the_clock() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut io = SendTimeout::new(near, Duration::from_secs(5));
        let chunk = [7u8; 512];
        // Progress: the far side reads, every write completes.
        for _ in 0..20 {
            io.write_all(&chunk).await.unwrap();
            let mut buf = [0u8; 512];
            far.read_exact(&mut buf).await.unwrap();
            tokio::time::advance(Duration::from_secs(4)).await;
        }
        // No reader: the buffer fills, then the write fails.
        let started = tokio::time::Instant::now();
        let error = loop {
            if let Err(e) = io.write_all(&chunk).await {
                break e;
            }
        };
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_secs(5), "{:?}", started.elapsed());
    }

    /// The task of a connection lives as long as the connection, idle
    /// keep-alive time included, so its future is memory per connection
    /// (BENCHMARKS.md, "idle keep-alive connection"): with the TLS path, the
    /// HTTP/1 and HTTP/2 states, the stream and the request future boxed it
    /// stays small. It was 14 KB when all of them were inline.
    #[tokio::test]
    async fn a_plain_connection_future_stays_small() {
        let text = "[listen]\nhttp = \"127.0.0.1:0\"\n[[site]]\nhosts = [\"x.test\"]\norigin = \"http://127.0.0.1:1\"\npolicy = \"p\"\n[policy.p]\n";
        let snapshot = Snapshot::compile(
            &crate::config::Source { path: std::path::PathBuf::from("t.toml"), text: text.into() },
            1,
        )
        .unwrap();
        let account = Arc::new(crate::account::Account::from_snapshot(&snapshot));
        let store = Arc::new(crate::snapshot::Store::new(snapshot));
        let shared = Arc::new(Shared {
            admin: crate::admin::AdminState::new(store.clone(), account.clone()),
            store,
            account,
            forwarder: crate::forward::Forwarder::new(),
            tasks: crate::shutdown::Tasks::new(),
            receipts: None,
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let future = connection(stream, peer, None, shared);
        let size = std::mem::size_of_val(&future);
        println!("plain connection future: {size} bytes");

        // 1,160 bytes in a debug build when written.
        assert!(size <= 2 * 1024, "the connection future grew to {size} bytes");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_quiet_then_the_longer_limit() {
        let activity = Activity::default();
        let guard = activity.start();
        let idle = activity.idle(Duration::from_secs(1), Duration::from_secs(10));
        tokio::pin!(idle);
        // Busy: never idle, however long.
        assert!(tokio::time::timeout(Duration::from_secs(30), &mut idle).await.is_err());
        drop(guard);
        // Quiet after a request: the `after` limit applies.
        assert!(tokio::time::timeout(Duration::from_secs(9), &mut idle).await.is_err());
        assert!(tokio::time::timeout(Duration::from_secs(2), &mut idle).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_request_during_a_long_first_limit_switches_to_the_short_one() {
        let activity = Activity::default();
        let idle = activity.idle(Duration::from_secs(120), Duration::from_secs(1));
        tokio::pin!(idle);
        assert!(tokio::time::timeout(Duration::from_secs(5), &mut idle).await.is_err());
        // A request comes and goes; nothing wakes the idle future, yet it
        // ends about one `after` later, not at 120 s.
        drop(activity.start());
        assert!(tokio::time::timeout(Duration::from_millis(900), &mut idle).await.is_err());
        assert!(tokio::time::timeout(Duration::from_secs(2), &mut idle).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_waits_for_the_last_guard() {
        let activity = Activity::default();
        let (a, b) = (activity.start(), activity.start());
        let quiet = activity.quiet();
        tokio::pin!(quiet);
        assert!(tokio::time::timeout(Duration::from_secs(5), &mut quiet).await.is_err());
        drop(a);
        assert!(tokio::time::timeout(Duration::from_secs(5), &mut quiet).await.is_err());
        // The last guard, dropped from another task, wakes it.
        tokio::spawn(async move { drop(b) });
        assert!(tokio::time::timeout(Duration::from_secs(5), &mut quiet).await.is_ok());
        // With nothing in flight it resolves at once.
        activity.quiet().await;
    }
}
