//! Graceful shutdown: every task the server spawns, and the two signals
//! that end them.
//!
//! As in mini-redis, shutdown is a broadcast plus a way to wait for "all
//! done": [`Tasks::drain`] tells accept loops to stop accepting and every
//! connection to finish the requests it has and close; [`Tasks::stop`] ends
//! whatever is still running when the grace period is over (connections
//! and WebSocket tunnels alike). The tracker lets [`Tasks::wait`] know when
//! the last task is gone.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The server's tasks and shutdown signals. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    drain: CancellationToken,
    stop: CancellationToken,
}

impl Tasks {
    /// A new set with no task and no signal.
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// Spawns a tracked task; it is dropped (its sockets closed) on [`stop`](Self::stop).
    pub fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = future => {}
                () = stop.cancelled() => {}
            }
        });
    }

    /// Starts draining: stop accepting, finish in-flight requests.
    pub fn drain(&self) {
        self.drain.cancel();
    }

    /// Resolves once draining has started.
    pub async fn draining(&self) {
        self.drain.cancelled().await;
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        self.drain.is_cancelled()
    }

    /// Ends every task now (also starts draining).
    pub fn stop(&self) {
        self.drain.cancel();
        self.stop.cancel();
    }

    /// Resolves when every task spawned so far (and any spawned later,
    /// until then) has ended.
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Number of running tasks.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// Whether no task runs.
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }
}
