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

use crate::listen::Activity;

/// How much later than [`HeadTimeout`] hyper's own head timer fires.
pub const BACKSTOP: Duration = Duration::from_secs(1);

/// The body of the 408, in the form of the proxy's other error answers.
const BODY: &str = "408 Request Timeout: the request head did not arrive in time\n";

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
    timeout: Option<Duration>,
    activity: Activity,
    deadline: Option<Pin<Box<Sleep>>>,
    /// [`Activity::starts`] when the deadline was set; `None`: not set.
    armed_for: Option<u64>,
    /// Whether a byte of a head arrived since the deadline was set.
    head_started: bool,
    state: State,
}

impl<I> HeadTimeout<I> {
    /// Wraps `inner`; `timeout` is `None` for HTTP/2. The first head's
    /// deadline is `timeout` after `since` (when the connection started).
    pub fn new(inner: I, activity: Activity, timeout: Option<Duration>, since: Instant) -> HeadTimeout<I> {
        let deadline = timeout.map(|timeout| Box::pin(tokio::time::sleep_until(since + timeout)));
        let armed_for = deadline.as_ref().map(|_| activity.starts());
        HeadTimeout { inner, timeout, activity, deadline, armed_for, head_started: false, state: State::Open }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &I {
        &self.inner
    }
}

/// The whole 408 response.
fn answer() -> Box<[u8]> {
    format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncache-control: no-store\r\n\
         connection: close\r\ncontent-length: {}\r\ndate: {}\r\n\r\n{BODY}",
        BODY.len(),
        httpdate::fmt_http_date(SystemTime::now()),
    )
    .into_bytes()
    .into_boxed_slice()
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
        let Some(timeout) = this.timeout else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        if !matches!(this.state, State::Open) {
            return this.poll_answer(cx);
        }
        if this.activity.busy() {
            // A request is in flight: this is its body (or a tunnel).
            this.armed_for = None;
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let starts = this.activity.starts();
        if this.armed_for != Some(starts) {
            let at = Instant::now() + timeout;
            match &mut this.deadline {
                Some(deadline) => deadline.as_mut().reset(at),
                None => this.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            this.armed_for = Some(starts);
            this.head_started = false;
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                // Blank lines before a request line are ignored (RFC 9112
                // §2.2): they start no head.
                if buf.filled()[before..].iter().any(|&b| b != b'\r' && b != b'\n') {
                    this.head_started = true;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let expired =
                    this.deadline.as_mut().is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if !expired {
                    return Poll::Pending;
                }
                if this.head_started {
                    tracing::debug!(?timeout, "request head incomplete; answering 408");
                    this.state = State::Answering(answer(), 0);
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

impl<I: AsyncWrite + Unpin> AsyncWrite for HeadTimeout<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

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
        assert!(answer.contains(&format!("\r\ncontent-length: {}\r\n", BODY.len())), "{answer}");
        assert!(answer.ends_with(&format!("\r\n\r\n{BODY}")), "{answer}");
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
