//! The server as a library: [`start`] binds the listeners of a config and
//! serves until [`Running::shutdown`]; `consentry run` and the integration
//! tests both use it.
//!
//! ```no_run
//! # async fn example() -> Result<(), consentry::server::StartError> {
//! let running = consentry::server::start(std::path::Path::new("config/consentry.toml")).await?;
//! println!("serving on {:?}", running.http_addr);
//! running.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Listen addresses may use port 0; [`Running`] reports the bound ones,
//! the admin API's included.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::account::{self, Account};
use crate::admin::{self, AdminState};
use crate::config::ConfigError;
use crate::forward::Forwarder;
use crate::listen;
use crate::receipts::ReceiptWriter;
use crate::shutdown::Tasks;
use crate::snapshot::{Snapshot, Store};
use crate::tls;

/// What every request handler shares.
#[derive(Debug)]
pub struct Shared {
    /// The current configuration.
    pub store: Arc<Store>,
    /// Metrics, inventory and audit.
    pub account: Arc<Account>,
    /// Pooled origin clients.
    pub forwarder: Forwarder,
    /// Spawned tasks and shutdown signals.
    pub tasks: Tasks,
    /// Proof-of-consent writer, when `[receipts] path` is set.
    pub receipts: Option<Arc<ReceiptWriter>>,
    /// Readiness, as the admin API reports it.
    pub admin: AdminState,
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration has errors (each with file:line:column).
    #[error("invalid configuration:\n{}", display_all(.0))]
    Config(Vec<ConfigError>),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS configuration could not be built.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    /// The receipts file could not be opened.
    #[error("receipts file {path}: {source}")]
    Receipts {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn display_all(errors: &[ConfigError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// A started server.
#[derive(Debug)]
pub struct Running {
    /// Bound plain-HTTP address.
    pub http_addr: Option<SocketAddr>,
    /// Bound HTTPS address.
    pub https_addr: Option<SocketAddr>,
    /// Bound admin API address.
    pub admin_addr: Option<SocketAddr>,
    /// The configuration store: reloads swap snapshots into it.
    pub store: Arc<Store>,
    /// Shared request state.
    pub shared: Arc<Shared>,
}

/// How shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every in-flight request finished within the grace period.
    Drained,
    /// The grace period ran out; what was left was closed.
    GraceExpired,
}

/// Loads the config file and starts serving it.
pub async fn start(config: &Path) -> Result<Running, StartError> {
    let snapshot = Snapshot::load(config, 1).map_err(StartError::Config)?;
    start_with(snapshot).await
}

/// Starts serving an already compiled snapshot.
pub async fn start_with(snapshot: Snapshot) -> Result<Running, StartError> {
    let listen = snapshot.listen.clone();
    let max_connections = snapshot.limits.max_connections.max(1);
    let receipts = open_receipts(&snapshot)?;
    let account = Arc::new(Account::from_snapshot(&snapshot));
    let store = Arc::new(Store::new(snapshot));
    let admin_state = AdminState::new(store.clone(), account.clone());
    let shared = Arc::new(Shared {
        store: store.clone(),
        account,
        forwarder: Forwarder::new(),
        tasks: Tasks::new(),
        receipts,
        admin: admin_state.clone(),
    });
    // One budget for both listeners: it bounds the process, not a port.
    let permits = Arc::new(Semaphore::new(max_connections));

    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })
    };
    let http = match listen.http {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let https = match listen.https {
        Some(addr) => Some((bind(addr).await?, TlsAcceptor::from(tls::server_config(store.clone())?))),
        None => None,
    };
    let admin = match listen.admin {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let local = |l: &TcpListener| l.local_addr().ok();
    let http_addr = http.as_ref().and_then(local);
    let https_addr = https.as_ref().and_then(|(l, _)| local(l));
    let admin_addr = admin.as_ref().and_then(local);
    if let Some(listener) = http {
        tracing::info!(http = %listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()), "listening");
        shared.tasks.spawn(listen::accept_loop(listener, None, shared.clone(), permits.clone()));
    }
    if let Some((listener, acceptor)) = https {
        tracing::info!(https = %listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()), "listening");
        shared.tasks.spawn(listen::accept_loop(listener, Some(acceptor), shared.clone(), permits));
    }
    if let Some(listener) = admin {
        tracing::info!(admin = %listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()), "listening");
        // The admin API stops when draining starts; readiness is withdrawn
        // just before (see `Running::shutdown_within`).
        let tasks = shared.tasks.clone();
        shared.tasks.spawn(admin::serve(
            listener,
            admin_state.clone(),
            async move { tasks.draining().await },
        ));
    }
    // State outside the snapshot follows each reload.
    let mut swapped = store.subscribe();
    let follower = shared.clone();
    shared.tasks.spawn(async move {
        loop {
            tokio::select! {
                () = follower.tasks.draining() => break,
                changed = swapped.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    follower.account.apply(&follower.store.load());
                }
            }
        }
    });
    admin_state.set_ready(true);
    Ok(Running { http_addr, https_addr, admin_addr, store, shared })
}

/// Opens the receipts file named by the config, resolved against the
/// config's directory like every other path in it.
fn open_receipts(snapshot: &Snapshot) -> Result<Option<Arc<ReceiptWriter>>, StartError> {
    let Some(path) = &snapshot.receipts.path else {
        return Ok(None);
    };
    let path = account::config_dir(snapshot).join(path);
    ReceiptWriter::open(&path, snapshot.receipts.max_bytes)
        .map(|w| Some(Arc::new(w)))
        .map_err(|source| StartError::Receipts { path, source })
}

impl Running {
    /// Stops accepting, lets in-flight requests finish within the current
    /// snapshot's `shutdown_grace`, then closes whatever is left.
    pub async fn shutdown(self) -> Stopped {
        let grace = self.store.load().limits.shutdown_grace;
        self.shutdown_within(grace).await
    }

    /// [`shutdown`](Self::shutdown) with an explicit grace period.
    pub async fn shutdown_within(self, grace: Duration) -> Stopped {
        let tasks = self.shared.tasks.clone();
        tracing::info!(grace = ?grace, in_flight = tasks.len(), "shutting down");
        self.shared.admin.set_ready(false);
        tasks.drain();
        let stopped = if tokio::time::timeout(grace, tasks.wait()).await.is_ok() {
            Stopped::Drained
        } else {
            tracing::warn!(left = tasks.len(), "grace period over; closing what is left");
            tasks.stop();
            tasks.wait().await;
            Stopped::GraceExpired
        };
        if !self.shared.account.flush_audit(Duration::from_secs(2)) {
            tracing::warn!("audit log not fully flushed at shutdown");
        }
        tracing::info!(?stopped, "stopped");
        stopped
    }
}

impl Drop for Running {
    /// A server dropped without [`Running::shutdown`] stops at once.
    fn drop(&mut self) {
        self.shared.tasks.stop();
    }
}
