//! Hot reload: the config file (and every file it names) is watched, and a
//! change, or `SIGHUP`, compiles a new [`Snapshot`] and swaps it in.
//!
//! Every reload takes the same path, [`reload_now`]: read → parse →
//! validate → compile → [`Store::swap`]. A file that fails any step never
//! replaces a good one: the errors (each `file:line:column: what`) are
//! logged at error level and recorded with [`Store::fail`] (shown by the
//! admin `/config`), `reloads_failed` counts it, and the old snapshot keeps
//! serving until a good file arrives. Requests in flight finish on the
//! snapshot they loaded.
//!
//! What is watched, and why (after vector's `config/watcher.rs`):
//! - **directories, not files.** Editors save by writing a temporary file
//!   and renaming it over the old one, and Kubernetes updates a mounted
//!   ConfigMap by swapping a `..data` symlink to a new timestamped
//!   directory: either way the watched inode is gone. Watching the
//!   directory sees both. Watched directories are the config's own, the
//!   directory of each file in [`Snapshot::files`] (user presets,
//!   certificates, CA files) and the user presets directory itself; the
//!   set is re-synced after each reload, since the file may name new ones,
//!   and a directory replaced by another inode is watched afresh.
//! - **debounced.** One save is several events (create, write, rename,
//!   chmod), and a ConfigMap swap touches several entries. After the first
//!   event the watcher waits until events stop for [`Options::debounce`]
//!   (at most [`Options::max_delay`] in all), then reloads once.
//! - **content-checked.** Anything else written to those directories (a log
//!   file, an editor's swap file) also makes events; before reloading the
//!   watcher hashes the files the current snapshot was built from and skips
//!   the reload when nothing changed since the last attempt, so the
//!   generation only moves for real changes (the first burst after start
//!   always reloads: nothing says what the initial load read). `SIGHUP` always reloads (the operator asked; an environment
//!   variable behind `hmac_key_env` may have changed).
//!
//! Listener addresses are not hot-swapped: when a reload changes them the
//! new snapshot keeps the bound addresses, the change is logged as needing
//! a restart and recorded with [`Store::set_restart_needed`].
//!
//! notify and tokio do the watching and signal handling; the debounce is a
//! dozen lines over a channel, simpler than pulling in a debouncer crate
//! whose rename handling we would have to work around for symlink swaps.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::snapshot::{ListenSettings, Snapshot, Store};

/// One reload at a time per process: two concurrent reloads (SIGHUP and an
/// admin call, say) would otherwise compute the same next generation.
static RELOAD_LOCK: Mutex<()> = Mutex::new(());

/// Reloads `path` into `store` now: compile a new snapshot and swap it in,
/// or keep the current one and record why not.
///
/// Returns the new generation, or every error (one `file:line:column:
/// message` per line). This is the one reload path: the watcher and
/// `SIGHUP` both end here.
pub fn reload_now(store: &Store, path: &Path) -> Result<u64, String> {
    let _one_at_a_time = RELOAD_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let generation = store.next_generation();
    match Snapshot::load(path, generation) {
        Ok(mut snapshot) => {
            let current = store.load();
            if snapshot.listen == current.listen {
                store.set_restart_needed(None);
            } else {
                let why = listen_change(&current.listen, &snapshot.listen);
                tracing::warn!(
                    config = %path.display(),
                    change = %why,
                    "listener addresses changed: restart consentry to apply; still listening on the old ones"
                );
                // The snapshot describes what is actually bound.
                snapshot.listen = current.listen.clone();
                store.set_restart_needed(Some(why));
            }
            store.swap(snapshot);
            tracing::info!(config = %path.display(), generation, "configuration reloaded");
            Ok(generation)
        }
        Err(errors) => {
            for e in &errors {
                tracing::error!(
                    file = %e.file.display(),
                    line = e.line,
                    column = e.column,
                    error = %e.message,
                    "configuration rejected; the previous one keeps serving"
                );
            }
            let message = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
            store.fail(message.clone());
            Err(message)
        }
    }
}

/// `http 0.0.0.0:8080 → 0.0.0.0:9090; admin none → 127.0.0.1:9901`.
fn listen_change(old: &ListenSettings, new: &ListenSettings) -> String {
    let show = |a: Option<std::net::SocketAddr>| a.map_or_else(|| "none".to_string(), |a| a.to_string());
    [("http", old.http, new.http), ("https", old.https, new.https), ("admin", old.admin, new.admin)]
        .iter()
        .filter(|(_, o, n)| o != n)
        .map(|(name, o, n)| format!("{name} {} → {}", show(*o), show(*n)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Not called from inside a tokio runtime.
    #[error("the config watcher needs a tokio runtime")]
    NoRuntime,
    /// notify could not create a watcher or watch the config's directory.
    #[error("cannot watch {path}: {source}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// notify's error.
        #[source]
        source: notify::Error,
    },
    /// The `SIGHUP` handler could not be installed.
    #[error("cannot listen for SIGHUP: {0}")]
    Signal(#[source] std::io::Error),
}

/// Watcher timing and switches.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Quiet time after the last event before reloading.
    pub debounce: Duration,
    /// Longest wait after the first event of a burst, however long it lasts.
    pub max_delay: Duration,
    /// Reload on `SIGHUP` too.
    pub sighup: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { debounce: Duration::from_millis(100), max_delay: Duration::from_secs(1), sighup: true }
    }
}

/// The running watcher. Dropping it stops watching (and the `SIGHUP` task).
#[derive(Debug)]
pub struct WatcherHandle {
    task: JoinHandle<()>,
    signal_task: Option<JoinHandle<()>>,
    checks: Arc<AtomicU64>,
}

impl WatcherHandle {
    /// How many debounced bursts the watcher has examined (whether or not
    /// they led to a reload): lets tests and `/config` see it is alive.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Acquire)
    }
}

impl Drop for WatcherHandle {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(t) = &self.signal_task {
            t.abort();
        }
    }
}

/// Watches `path` (and the files of the current snapshot) and reloads
/// `store` on change and on `SIGHUP`, with the default [`Options`].
/// Must be called from inside a tokio runtime.
pub fn spawn_watcher(store: Arc<Store>, path: PathBuf) -> Result<WatcherHandle, WatchError> {
    spawn_watcher_with(store, path, Options::default())
}

/// [`spawn_watcher`] with explicit timing.
pub fn spawn_watcher_with(
    store: Arc<Store>,
    path: PathBuf,
    options: Options,
) -> Result<WatcherHandle, WatchError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| WatchError::NoRuntime)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let fs_tx = tx.clone();
    // notify calls this on its own thread; an unbounded send never blocks.
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let _ = fs_tx.send(Trigger::Fs(event));
    })
    .map_err(|source| WatchError::Watch { path: path.clone(), source })?;
    let config_dir = directory_of(&path);
    watcher
        .watch(&config_dir, RecursiveMode::NonRecursive)
        .map_err(|source| WatchError::Watch { path: config_dir.clone(), source })?;
    let mut watched = BTreeMap::from([(config_dir.clone(), identity(&config_dir))]);
    sync_watches(&mut watcher, &mut watched, &path, &store.load());

    let signal_task = if options.sighup {
        use tokio::signal::unix::{SignalKind, signal};
        let _entered = runtime.enter();
        let mut hup = signal(SignalKind::hangup()).map_err(WatchError::Signal)?;
        Some(runtime.spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the configuration");
                if tx.send(Trigger::Signal).is_err() {
                    break;
                }
            }
        }))
    } else {
        drop(tx);
        None
    };

    let checks = Arc::new(AtomicU64::new(0));
    let state = Loop { store, path, watcher, watched, options, checks: checks.clone(), last_seen: None };
    let task = runtime.spawn(state.run(rx));
    Ok(WatcherHandle { task, signal_task, checks })
}

/// What woke the watcher.
#[derive(Debug)]
enum Trigger {
    /// A filesystem event (or notify's error).
    Fs(notify::Result<notify::Event>),
    /// `SIGHUP`.
    Signal,
}

impl Trigger {
    /// Whether this could mean a watched file changed. Reading a file (our
    /// own reload does) makes open/read/close-without-write events; those
    /// must not trigger a reload, or every reload would trigger the next.
    fn matters(&self) -> bool {
        match self {
            Trigger::Signal => true,
            Trigger::Fs(Err(e)) => {
                // Overflowed queue or the like: something may have changed.
                tracing::warn!(error = %e, "config watcher error; checking the files");
                true
            }
            Trigger::Fs(Ok(event)) => match event.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
                EventKind::Access(_) => false,
                _ => true,
            },
        }
    }
}

/// The watcher task's state.
struct Loop {
    store: Arc<Store>,
    path: PathBuf,
    watcher: RecommendedWatcher,
    /// Watched directories and the (device, inode) they had when watched.
    watched: BTreeMap<PathBuf, Option<(u64, u64)>>,
    options: Options,
    checks: Arc<AtomicU64>,
    /// Fingerprint of the files at the last reload attempt; `None` forces
    /// the next event to reload.
    last_seen: Option<u64>,
}

impl Loop {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Trigger>) {
        // No baseline: the watcher cannot know what the first load read (a
        // write may have landed between it and now), so the first burst
        // always reloads. A spurious generation once beats a missed change.
        while let Some(forced) = next_burst(&mut rx, self.options).await {
            let mut forced = forced;
            // A directory watched afresh may have changed before its watch
            // existed (an edit landing between a reload and the re-watch):
            // check again until nothing new is watched.
            while self.check(forced).await {
                forced = false;
            }
            self.checks.fetch_add(1, Ordering::Release);
        }
    }

    /// Reloads unless the files are unchanged (and the burst was not a
    /// `SIGHUP`). Returns whether a directory was newly watched, so the
    /// caller looks once more for changes no event reported.
    async fn check(&mut self, forced: bool) -> bool {
        let before = self.store.load();
        let (store, path, files, last_seen) =
            (self.store.clone(), self.path.clone(), before.files.clone(), self.last_seen);
        let outcome = tokio::task::spawn_blocking(move || {
            // Fingerprint *before* reading for the reload: a write landing
            // in between makes the next event differ from this fingerprint,
            // so it is reloaded too (never missed, at worst reloaded twice).
            let now = fingerprint(&path, &files);
            if !forced && Some(now) == last_seen {
                return (now, None);
            }
            (now, Some(reload_now(&store, &path)))
        })
        .await;
        let Ok((seen, result)) = outcome else {
            tracing::error!("config reload task panicked; keeping the current configuration");
            self.last_seen = None;
            return false;
        };
        self.last_seen = Some(seen);
        let after = self.store.load();
        match result {
            None => tracing::debug!(config = %self.path.display(), "watched files unchanged; no reload"),
            Some(Ok(_)) if after.files != before.files => {
                // The fingerprint covered the old file list; the next event
                // must compare against the new one.
                self.last_seen = None;
            }
            Some(_) => {}
        }
        // Every time, not only after a reload: a watched directory may have
        // been replaced by one with identical content.
        sync_watches(&mut self.watcher, &mut self.watched, &self.path, &after)
    }
}

/// Waits for the next event that matters, then for the burst it starts to
/// end: `debounce` without an event, or `max_delay` after the first.
/// Returns whether a `SIGHUP` was part of it, or `None` when every sender
/// is gone.
async fn next_burst(rx: &mut mpsc::UnboundedReceiver<Trigger>, options: Options) -> Option<bool> {
    let mut forced = loop {
        let trigger = rx.recv().await?;
        if trigger.matters() {
            break matches!(trigger, Trigger::Signal);
        }
    };
    let deadline = Instant::now() + options.max_delay;
    loop {
        let quiet_until = (Instant::now() + options.debounce).min(deadline);
        tokio::select! {
            trigger = rx.recv() => match trigger {
                Some(t) => forced |= matches!(t, Trigger::Signal),
                None => return Some(forced),
            },
            () = tokio::time::sleep_until(quiet_until) => return Some(forced),
        }
    }
}

/// The directory holding `path` (`.` for a bare file name).
fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The directories to watch for a snapshot: the config's, each file's, and
/// each directory listed as such.
fn wanted_dirs(config: &Path, snapshot: &Snapshot) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::from([directory_of(config)]);
    for f in &snapshot.files {
        dirs.insert(if f.is_dir() { f.clone() } else { directory_of(f) });
    }
    dirs
}

/// The (device, inode) of a directory, following symlinks: what a watch is
/// really attached to.
fn identity(dir: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

/// Watches the directories the snapshot needs and unwatches the others.
/// A directory replaced since it was watched (renamed over, or a symlink
/// now pointing elsewhere) is watched again: the old watch follows the old
/// inode and would never report anything. A directory that cannot be
/// watched is logged and retried next time.
fn sync_watches(
    watcher: &mut RecommendedWatcher,
    watched: &mut BTreeMap<PathBuf, Option<(u64, u64)>>,
    config: &Path,
    snapshot: &Snapshot,
) -> bool {
    let mut added = false;
    let wanted = wanted_dirs(config, snapshot);
    let stale: Vec<PathBuf> = watched
        .iter()
        .filter(|(dir, id)| !wanted.contains(*dir) || identity(dir) != **id)
        .map(|(dir, _)| dir.clone())
        .collect();
    for dir in stale {
        let _ = watcher.unwatch(&dir);
        watched.remove(&dir);
    }
    for dir in wanted {
        if watched.contains_key(&dir) {
            continue;
        }
        let id = identity(&dir);
        match watcher.watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                tracing::debug!(dir = %dir.display(), "watching for config changes");
                watched.insert(dir, id);
                added = true;
            }
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory"),
        }
    }
    added
}

/// A hash of everything a reload would read: the config file and each file
/// of the current snapshot (for a directory, its sorted entry names, so an
/// added preset counts). Unreadable files hash as their error, so a file
/// appearing or vanishing is a change too.
fn fingerprint(config: &Path, files: &[PathBuf]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut all: Vec<&Path> = vec![config];
    all.extend(files.iter().map(PathBuf::as_path));
    for path in all {
        path.hash(&mut hasher);
        if path.is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(path)
                .map(|entries| entries.filter_map(Result::ok).map(|e| e.file_name()).collect())
                .unwrap_or_default();
            names.sort();
            names.hash(&mut hasher);
        } else {
            match std::fs::read(path) {
                Ok(bytes) => bytes.hash(&mut hasher),
                Err(e) => e.kind().hash(&mut hasher),
            }
        }
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options { debounce: Duration::from_millis(100), max_delay: Duration::from_secs(1), sighup: false }
    }

    fn event(kind: EventKind) -> Trigger {
        Trigger::Fs(Ok(notify::Event::new(kind)))
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_one_reload() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for _ in 0..20 {
            tx.send(event(EventKind::Modify(notify::event::ModifyKind::Any))).unwrap();
        }
        let start = Instant::now();
        assert_eq!(next_burst(&mut rx, options()).await, Some(false));
        // The whole burst was consumed by the one wake-up ...
        assert!(rx.try_recv().is_err());
        // ... which came one debounce after the last event (paused clock:
        // this is exact, not a timing measurement).
        assert_eq!(start.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn an_endless_burst_is_cut_at_max_delay() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tx.send(event(EventKind::Any)).unwrap();
        let feeder = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if tx.send(event(EventKind::Any)).is_err() {
                    break;
                }
            }
        });
        let start = Instant::now();
        assert_eq!(next_burst(&mut rx, options()).await, Some(false));
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        feeder.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn reads_do_not_trigger_and_sighup_forces() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tx.send(event(EventKind::Access(AccessKind::Open(AccessMode::Any)))).unwrap();
        tx.send(event(EventKind::Access(AccessKind::Close(AccessMode::Read)))).unwrap();
        tx.send(Trigger::Signal).unwrap();
        drop(tx);
        assert_eq!(next_burst(&mut rx, options()).await, Some(true));
        assert_eq!(next_burst(&mut rx, options()).await, None);
        let (tx, mut rx) = mpsc::unbounded_channel();
        tx.send(event(EventKind::Access(AccessKind::Close(AccessMode::Write)))).unwrap();
        drop(tx);
        assert_eq!(next_burst(&mut rx, options()).await, Some(false));
    }

    #[test]
    fn listen_changes_are_described() {
        let a = ListenSettings { http: "0.0.0.0:8080".parse().ok(), https: None, admin: None };
        let b = ListenSettings {
            http: "0.0.0.0:9090".parse().ok(),
            https: None,
            admin: "127.0.0.1:9901".parse().ok(),
        };
        assert_eq!(listen_change(&a, &b), "http 0.0.0.0:8080 → 0.0.0.0:9090; admin none → 127.0.0.1:9901");
        assert_eq!(listen_change(&a, &a), "");
    }

    #[test]
    fn fingerprints_follow_content_and_listings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "a").unwrap();
        let presets = dir.path().join("presets");
        std::fs::create_dir(&presets).unwrap();
        let files = vec![file.clone(), presets.clone()];
        let first = fingerprint(&file, &files);
        assert_eq!(fingerprint(&file, &files), first);
        std::fs::write(&file, "b").unwrap();
        let second = fingerprint(&file, &files);
        assert_ne!(second, first);
        std::fs::write(presets.join("x.toml"), "").unwrap();
        assert_ne!(fingerprint(&file, &files), second);
        std::fs::remove_file(&file).unwrap();
        assert_ne!(fingerprint(&file, &files), second);
    }

    #[test]
    fn bare_file_names_watch_the_current_directory() {
        assert_eq!(directory_of(Path::new("consentry.toml")), PathBuf::from("."));
        assert_eq!(directory_of(Path::new("/etc/c/consentry.toml")), PathBuf::from("/etc/c"));
    }
}
