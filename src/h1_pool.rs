//! Stage 6's own pool of HTTP/1.1 connections to plain `http://` origins
//! (the common case: an origin on the same host or network), built on
//! hyper's low-level `client::conn::http1`.
//!
//! hyper-util's legacy client cost 8.8 k of the proxy's 65 k instructions
//! per 2 KB passthrough request, this pool 2.1 k (BENCHMARKS.md,
//! "instructions per 2 KB passthrough request"). hyper-util keeps a
//! SipHash map keyed by scheme and authority, looked up on checkout and
//! again on return, races a checkout future against a connect future,
//! keeps an error channel per connection, and spawns a task per request
//! only to wait until the connection can take the next request and put it
//! back. Here the idle connections of an origin are a list under one
//! mutex; a connection goes back into it when the response body has been
//! read to its end (not when it is dropped half-read: hyper closes such a
//! connection, its rest is unread), by the body itself; a task waits only
//! for one that cannot take a request yet (see `Shared::give_back`).
//!
//! What stays as it was: each connection is driven by its own spawned
//! task; at most `ORIGIN_MAX_IDLE_PER_HOST` (`crate::forward`) idle
//! connections per origin (now the oldest goes; hyper-util refused the
//! newest); an idle connection is closed after `origin_idle_timeout` (on
//! checkout, and by a sweep every that long); a request that hyper hands
//! back unsent because the pooled connection turned out to be closed (the
//! origin timed it out just then) is sent again on another connection, as
//! hyper-util does, and no request that was sent is ever retried. https
//! origins (ALPN, per-site CA bundles) and upgrades keep the legacy
//! client: there the TLS handshake, not the pool, dominates, HTTP/2
//! multiplexes on one connection anyway, and a tunnel consumes its
//! connection.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use crate::body::{self, Body, BoxError};

/// Why a request did not get a response head.
#[derive(Debug)]
pub enum Failure {
    /// No connection to the origin (refused, DNS, connect timeout).
    Connect(BoxError),
    /// The connection failed after connecting (reset, malformed answer).
    Other(BoxError),
}

/// The pool of one trust set and set of origin limits (see
/// [`crate::forward`]), shared by every request.
pub struct Pool {
    shared: Arc<Shared>,
}

type IdleLists = HashMap<String, VecDeque<Idle>, foldhash::fast::FixedState>;

struct Shared {
    /// Idle connections by origin authority, oldest first.
    idle: Mutex<IdleLists>,
    builder: Builder,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    /// Whether the sweep of expired idle connections has been spawned.
    sweeping: AtomicBool,
}

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

impl Pool {
    /// A pool whose connections are configured by `builder`.
    pub fn new(builder: Builder, connect_timeout: Duration, idle_timeout: Duration, max_idle: usize) -> Pool {
        Pool {
            shared: Arc::new(Shared {
                idle: Mutex::new(IdleLists::default()),
                builder,
                connect_timeout,
                idle_timeout,
                max_idle,
                sweeping: AtomicBool::new(false),
            }),
        }
    }

    /// Sends `request` (origin-form target, `Host` set) to the origin at
    /// `authority` over an idle connection, or a new one.
    pub async fn send(
        &self,
        authority: &Authority,
        mut request: Request<Body>,
    ) -> Result<Response<Body>, Failure> {
        loop {
            let (mut sender, reused) = match self.shared.checkout(authority.as_str()) {
                Some(sender) => (sender, true),
                // Boxed: the connect future (resolver, timer, handshake)
                // is large, and unboxed it would grow every request's
                // future, which the server moves several times per request.
                None => (Box::pin(self.shared.connect(authority)).await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let back = Back { shared: self.shared.clone(), authority: authority.clone(), sender };
                    return Ok(response
                        .map(|inner| body::boxed(Returning { inner, ended: false, back: Some(back) })));
                }
                Err(mut e) => match e.take_message() {
                    // Never written: the pooled connection had closed.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(Failure::Other(e.into_error().into())),
                },
            }
        }
    }

    /// Idle connections to `authority`.
    #[cfg(test)]
    fn idle(&self, authority: &str) -> usize {
        self.shared.lock().get(authority).map_or(0, VecDeque::len)
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, IdleLists> {
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The most recently returned idle connection that can still take a
    /// request (one the origin closed meanwhile is dropped).
    fn checkout(&self, authority: &str) -> Option<SendRequest<Body>> {
        let mut lists = self.lock();
        let list = lists.get_mut(authority)?;
        while let Some(idle) = list.pop_back() {
            if idle.since.elapsed() >= self.idle_timeout {
                // The newest is expired: so is every older one.
                let expired = std::mem::take(list);
                drop(lists);
                drop((idle, expired));
                return None;
            }
            if idle.sender.is_ready() {
                return Some(idle.sender);
            }
        }
        None
    }

    async fn connect(self: &Arc<Self>, authority: &Authority) -> Result<SendRequest<Body>, Failure> {
        // `host()` keeps an IPv6 literal's brackets; the resolver wants none.
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(80);
        let stream =
            match tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect((host, port)))
                .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(Failure::Connect(e.into())),
                Err(_) => {
                    return Err(Failure::Connect(
                        format!("connect timeout ({:?})", self.connect_timeout).into(),
                    ));
                }
            };
        // As hyper-util's connector: a request head goes out at once.
        let _ = stream.set_nodelay(true);
        let io = crate::forward::lenient(TokioIo::new(stream));
        let (sender, connection) =
            self.builder.handshake(io).await.map_err(|e| Failure::Connect(e.into()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "origin connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Takes back a connection whose response was read to its end. It
    /// can usually take the next request at once (its task marked it ready
    /// while reading that end); if not, it is still sending the request
    /// body of an origin that answered early, or about to close, and a
    /// task waits for the outcome rather than have a checkout wait.
    fn give_back(self: &Arc<Self>, authority: Authority, mut sender: SendRequest<Body>) {
        if sender.is_ready() {
            self.put(&authority, sender);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if sender.is_closed() {
            return;
        }
        let shared = self.clone();
        runtime.spawn(async move {
            if sender.ready().await.is_ok() {
                shared.put(&authority, sender);
            }
        });
    }

    fn put(self: &Arc<Self>, authority: &Authority, sender: SendRequest<Body>) {
        let idle = Idle { sender, since: Instant::now() };
        let mut lists = self.lock();
        let evicted = match lists.get_mut(authority.as_str()) {
            Some(list) => {
                let evicted = if list.len() >= self.max_idle { list.pop_front() } else { None };
                list.push_back(idle);
                evicted
            }
            None => {
                lists.insert(authority.as_str().to_owned(), VecDeque::from([idle]));
                None
            }
        };
        drop(lists);
        drop(evicted);
        if !self.sweeping.swap(true, Ordering::Relaxed) {
            self.spawn_sweep();
        }
    }

    /// Closes idle connections older than `idle_timeout` every that long,
    /// for origins that get no request to find them on checkout. Ends
    /// with the pool.
    fn spawn_sweep(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.sweeping.store(false, Ordering::Relaxed);
            return;
        };
        let shared: Weak<Shared> = Arc::downgrade(self);
        let period = self.idle_timeout.max(Duration::from_millis(100));
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
            loop {
                ticks.tick().await;
                let Some(shared) = shared.upgrade() else { return };
                let mut expired = Vec::new();
                let mut lists = shared.lock();
                for list in lists.values_mut() {
                    while list.front().is_some_and(|idle| idle.since.elapsed() >= shared.idle_timeout) {
                        expired.extend(list.pop_front());
                    }
                }
                lists.retain(|_, list| !list.is_empty());
                drop(lists);
                drop(expired);
            }
        });
    }
}

/// Where a connection goes back to once its response is read.
struct Back {
    shared: Arc<Shared>,
    authority: Authority,
    sender: SendRequest<Body>,
}

/// An origin response body that returns its connection to the pool when
/// dropped after its end (a body with a known length ends with its last
/// byte, which is when hyper's server stops polling it; a HEAD, 204 or 304
/// answer has none).
struct Returning {
    inner: Incoming,
    /// The body reported its end (chunked bodies only know then).
    ended: bool,
    back: Option<Back>,
}

impl http_body::Body for Returning {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(None) => this.ended = true,
            Poll::Ready(Some(Err(_))) => this.back = None,
            _ => {}
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

impl Drop for Returning {
    fn drop(&mut self) {
        if (self.ended || http_body::Body::is_end_stream(&self.inner))
            && let Some(back) = self.back.take()
        {
            back.shared.give_back(back.authority, back.sender);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::AtomicUsize;

    use http_body_util::BodyExt as _;
    use hyper::service::service_fn;

    use super::*;

    /// An HTTP/1.1 origin on 127.0.0.1:0 answering `body` after `delay`,
    /// counting its connections.
    async fn origin(body: &'static [u8], delay: Duration) -> (Authority, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = service_fn(move |_request| async move {
                        tokio::time::sleep(delay).await;
                        Ok::<_, std::convert::Infallible>(Response::new(body::full(body)))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr.to_string().parse().unwrap(), connections)
    }

    fn pool(max_idle: usize, idle_timeout: Duration) -> Pool {
        Pool::new(Builder::new(), Duration::from_secs(5), idle_timeout, max_idle)
    }

    fn get(authority: &Authority) -> Request<Body> {
        Request::get("/").header(http::header::HOST, authority.as_str()).body(body::empty()).unwrap()
    }

    async fn fetch(pool: &Pool, authority: &Authority) -> Result<Bytes, Failure> {
        let response = pool.send(authority, get(authority)).await?;
        Ok(response.into_body().collect().await.map_err(Failure::Other)?.to_bytes())
    }

    /// Lets connection tasks (and a give-back that had to wait) run.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn a_connection_is_reused_once_its_response_is_read() {
        let (authority, connections) = origin(b"hello", Duration::ZERO).await;
        let pool = pool(8, Duration::from_secs(60));
        for _ in 0..5 {
            assert_eq!(&fetch(&pool, &authority).await.unwrap()[..], b"hello");
            settle().await;
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle(authority.as_str()), 1);
    }

    /// At most `max_idle` connections stay idle per origin after a burst.
    #[tokio::test]
    async fn idle_connections_are_capped_per_origin() {
        let (authority, connections) = origin(b"slow", Duration::from_millis(200)).await;
        let pool = pool(2, Duration::from_secs(60));
        let all = futures_util::future::join_all((0..5).map(|_| fetch(&pool, &authority))).await;
        assert!(all.iter().all(|r| r.as_ref().is_ok_and(|b| &b[..] == b"slow")));
        settle().await;
        assert_eq!(connections.load(Ordering::SeqCst), 5);
        assert_eq!(pool.idle(authority.as_str()), 2);
    }

    /// A body dropped before its end leaves unread bytes on its connection:
    /// that connection is not pooled, the next request gets a new one.
    #[tokio::test]
    async fn a_body_dropped_mid_stream_does_not_return_its_connection() {
        static BIG: [u8; 1 << 20] = [b'x'; 1 << 20];
        let (authority, connections) = origin(&BIG, Duration::ZERO).await;
        let pool = pool(8, Duration::from_secs(60));
        let mut body = pool.send(&authority, get(&authority)).await.unwrap().into_body();
        assert!(body.frame().await.unwrap().is_ok());
        drop(body);
        settle().await;
        assert_eq!(pool.idle(authority.as_str()), 0);
        assert_eq!(fetch(&pool, &authority).await.unwrap().len(), BIG.len());
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    /// An origin that closes an idle pooled connection: the next request
    /// goes out on a new connection and succeeds.
    #[tokio::test]
    async fn a_pooled_connection_the_origin_closed_is_replaced() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                // One keep-alive answer, then the origin's idle timeout.
                let mut head = [0u8; 1024];
                let _ = stream.read(&mut head).await;
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(stream);
            }
        });
        let pool = pool(8, Duration::from_secs(60));
        assert_eq!(&fetch(&pool, &authority).await.unwrap()[..], b"ok");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(&fetch(&pool, &authority).await.unwrap()[..], b"ok");
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    /// Idle connections are closed after `idle_timeout`, also for an origin
    /// that gets no further request.
    #[tokio::test]
    async fn idle_connections_expire() {
        let (authority, connections) = origin(b"hello", Duration::ZERO).await;
        let pool = pool(8, Duration::from_millis(150));
        fetch(&pool, &authority).await.unwrap();
        settle().await;
        assert_eq!(pool.idle(authority.as_str()), 1);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(pool.idle(authority.as_str()), 0, "swept");
        fetch(&pool, &authority).await.unwrap();
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_origin_that_refuses_connections_is_a_connect_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        drop(listener);
        let pool = pool(8, Duration::from_secs(60));
        assert!(matches!(fetch(&pool, &authority).await, Err(Failure::Connect(_))));
    }
}
