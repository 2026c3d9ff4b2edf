//! Stage 1, **listen**, for HTTP/1: a request head that does not arrive
//! within `header_read_timeout` gets `408 Request Timeout`, then the
//! connection is closed.
//!
//! hyper enforces that timeout itself, but closes without a word (its
//! `HeaderTimeout` error has no automatic response). HAProxy and Apache
//! answer 408, so that a client (or the load balancer in front) can tell
//! "too slow" from a crash. [`HeadTimeout`] wraps the stream hyper reads
//! (above TLS) and runs the same deadline:
//!
//! - it is set when hyper reads while no request is in flight (hyper reads a
//!   head then, and only then: while a request runs its reads are the body),
//!   from the connection's start for the first head, from the first read
//!   after a response for the next ones;
//! - a request starting (the service called: [`Activity::starts`] moves)
//!   disarms it; the next idle read sets it afresh;
//! - when it passes while hyper waits for bytes: if a byte of a head (not a
//!   blank line) arrived, the wrapper writes the 408 itself (with
//!   `Connection: close`), flushes, shuts the write side down (TLS
//!   `close_notify`, TCP FIN) and then reports the end of the stream, so
//!   hyper gives up on the partial head and drops the connection; if
//!   nothing arrived it only reports the end of the stream: an idle
//!   keep-alive connection is closed silently, as nginx and HAProxy do.
//!
//! hyper's own timer stays, a little later ([`BACKSTOP`]), as a backstop.
//! HTTP/2 streams pass untouched (no deadline: HTTP/2 has its own idle
//! limit in [`crate::listen`]).
//!
//! One case still gets hyper's silent close: a pipelined request head that
//! arrived *in part* together with the request before it (in the same read,
//! or while that request ran) and then stalls; telling those bytes from a
//! request body would need a second HTTP/1 parser.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::error::ProxyError;
use crate::listen::Activity;

/// How much later than [`HeadTimeout`] hyper's own head timer fires.
pub const BACKSTOP: Duration = Duration::from_secs(1);

/// What the wrapper is doing.
#[derive(Debug)]
enum State {
    /// Reads pass through.
    Open,
    /// Writing the 408 (the bytes and how many are written).
    Answering(Box<[u8]>, usize),
    Flushing,
    ShuttingDown,
    /// The read side reports its end from now on.
    Closed,
}

/// A connection whose request heads must arrive within a deadline (see the
/// module docs).
#[derive(Debug)]
pub struct HeadTimeout<I> {
    inner: I,
    /// `None`: not HTTP/1, everything passes.
    timer: Option<Timer>,
    state: State,
}

/// The head deadline of an HTTP/1 connection.
#[derive(Debug)]
struct Timer {
    timeout: Duration,
    activity: Activity,
    deadline: Pin<Box<Sleep>>,
    /// [`Activity::starts`] when the deadline was set; `None`: not set
    /// (a request has been in flight since).
    armed_for: Option<u64>,
    /// Whether a byte of a head arrived since the deadline was set.
    head_started: bool,
}

impl<I> HeadTimeout<I> {
    /// Wraps `inner`; `timeout` is `None` for HTTP/2. The first head's
    /// deadline is `timeout` after `since` (when the connection started).
    pub fn new(inner: I, activity: Activity, timeout: Option<Duration>, since: Instant) -> HeadTimeout<I> {
        let timer = timeout.map(|timeout| Timer {
            timeout,
            deadline: Box::pin(tokio::time::sleep_until(since + timeout)),
            armed_for: Some(activity.starts()),
            activity,
            head_started: false,
        });
        HeadTimeout { inner, timer, state: State::Open }
    }
}

/// The whole 408 response: the proxy's own error answer
/// ([`ProxyError::to_response`]) as HTTP/1.1 bytes, since hyper is not
/// the one writing it.
fn answer(timeout: Duration) -> Box<[u8]> {
    let error = ProxyError::HeadTimeout(timeout);
    let response = error.to_response();
    let body = error.client_text();
    let status = response.status();
    let mut out = format!("HTTP/1.1 {} {}\r\n", status.as_str(), status.canonical_reason().unwrap_or(""));
    for (name, value) in response.headers() {
        out.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
    }
    out.push_str(&format!(
        "connection: close\r\ncontent-length: {}\r\ndate: {}\r\n\r\n{body}",
        body.len(),
        httpdate::fmt_http_date(SystemTime::now()),
    ));
    out.into_bytes().into_boxed_slice()
}

impl<I: AsyncWrite + Unpin> HeadTimeout<I> {
    /// Drives the 408 out; ready (end of stream) once the write side is
    /// shut down, or with the error that stopped it.
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = ready!(self.poll_answer_steps(cx));
        self.state = State::Closed;
        Poll::Ready(result)
    }

    fn poll_answer_steps(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match &mut self.state {
                State::Answering(bytes, written) => {
                    while *written < bytes.len() {
                        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
                        if n == 0 {
                            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                        }
                        *written += n;
                    }
                    self.state = State::Flushing;
                }
                State::Flushing => {
                    ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
                    self.state = State::ShuttingDown;
                }
                State::ShuttingDown => {
                    // The 408 is out; a failed shutdown changes nothing.
                    let _ = ready!(Pin::new(&mut self.inner).poll_shutdown(cx));
                    return Poll::Ready(Ok(()));
                }
                State::Open | State::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeadTimeout<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(timer) = &mut this.timer else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        if !matches!(this.state, State::Open) {
            return this.poll_answer(cx);
        }
        if timer.activity.busy() {
            // A request is in flight: this is its body (or a tunnel).
            timer.armed_for = None;
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let starts = timer.activity.starts();
        if timer.armed_for != Some(starts) {
            timer.deadline.as_mut().reset(Instant::now() + timer.timeout);
            timer.armed_for = Some(starts);
            timer.head_started = false;
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                // Blank lines before a request line are ignored (RFC 9112
                // §2.2): they start no head.
                if buf.filled()[before..].iter().any(|&b| b != b'\r' && b != b'\n') {
                    timer.head_started = true;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if timer.deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let timeout = timer.timeout;
                if timer.head_started {
                    tracing::debug!(?timeout, "request head incomplete; answering 408");
                    this.state = State::Answering(answer(timeout), 0);
                    this.poll_answer(cx)
                } else {
                    tracing::debug!(?timeout, "no request; closing the idle connection");
                    this.state = State::Closed;
                    Poll::Ready(Ok(()))
                }
            }
        }
    }
}

crate::http_conn::forward_async_write!(HeadTimeout, inner);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const T: Duration = Duration::from_secs(10);

    fn wrapped(activity: &Activity) -> (HeadTimeout<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let (near, far) = tokio::io::duplex(4096);
        (HeadTimeout::new(near, activity.clone(), Some(T), Instant::now()), far)
    }

    async fn rest(far: &mut tokio::io::DuplexStream) -> String {
        let mut out = Vec::new();
        far.read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_head_gets_408_at_the_deadline() {
        let activity = Activity::default();
        let (mut io, mut far) = wrapped(&activity);
        far.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 256];
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\nHost: x\r\n");
        // The end of the stream, at the deadline, after the 408.
        assert_eq!(io.read(&mut buf).await.unwrap(), 0);
        assert_eq!(started.elapsed(), T);
        let answer = rest(&mut far).await;
        assert!(answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answer}");
        assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
        let body = "408 Request Timeout: the request head did not arrive in time\n";
        assert!(answer.contains(&format!("\r\ncontent-length: {}\r\n", body.len())), "{answer}");
        assert!(answer.ends_with(&format!("\r\n\r\n{body}")), "{answer}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_ends_silently() {
        let activity = Activity::default();
        let (mut io, mut far) = wrapped(&activity);
        // Blank lines start no head.
        far.write_all(b"\r\n").await.unwrap();
        let mut buf = [0u8; 256];
        assert_eq!(io.read(&mut buf).await.unwrap(), 2);
        assert_eq!(io.read(&mut buf).await.unwrap(), 0);
        drop(io);
        assert_eq!(rest(&mut far).await, "");
    }

    #[tokio::test(start_paused = true)]
    async fn each_request_gets_a_fresh_deadline_and_bodies_have_none() {
        let activity = Activity::default();
        let (mut io, mut far) = wrapped(&activity);
        let mut buf = [0u8; 256];
        far.write_all(b"POST / HTTP/1.1\r\n").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 17);
        tokio::time::advance(T - Duration::from_secs(1)).await;
        far.write_all(b"\r\n").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 2);
        // The head is complete: the request runs, its body takes its time.
        let guard = activity.start();
        tokio::time::advance(T * 3).await;
        far.write_all(b"body").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 4);
        drop(guard);
        // The next head has the whole timeout again.
        tokio::time::advance(T - Duration::from_secs(1)).await;
        far.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let read = tokio::time::timeout(T * 2, async {
            loop {
                if io.read(&mut buf).await.unwrap() == 0 {
                    break;
                }
            }
        });
        let started = Instant::now();
        read.await.unwrap();
        assert_eq!(started.elapsed(), T);
        assert!(rest(&mut far).await.starts_with("HTTP/1.1 408 "));
    }

    #[tokio::test(start_paused = true)]
    async fn http2_passes_untouched() {
        let activity = Activity::default();
        let (near, mut far) = tokio::io::duplex(4096);
        let mut io = HeadTimeout::new(near, activity, None, Instant::now());
        far.write_all(b"PRI").await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(io.read(&mut buf).await.unwrap(), 3);
        assert!(tokio::time::timeout(T * 10, io.read(&mut buf)).await.is_err());
    }
}
