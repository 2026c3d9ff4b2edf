//! The audit log: one JSON line per consent decision, written by a
//! dedicated thread so the request path never waits on a disk or a pipe.
//!
//! ```json
//! {"time":"2025-01-01T12:00:00.000Z","site":"shop","request_id":"r1","kind":"cookie","item":"set_cookie","name":"_ga","domain":"shop.example","category":"analytics","action":"block","rule":"_ga (config line 12)","policy":"default","mode":"enforce"}
//! ```
//!
//! Levels (`[audit] level`): `off` (nothing, the default), `blocked` (only
//! decisions that changed or removed something: every action but `allow`),
//! `all`. In report-only mode the action is what *would* have been done and
//! `mode` says `report-only`.
//!
//! The request path formats its request's lines into one buffer and hands it
//! to the writer through a bounded channel with `try_send`: when the channel
//! is full (the sink is slower than the traffic) or the sink fails, the
//! entries are counted in [`AuditLog::dropped`] (exported as
//! `consentry_audit_entries_dropped_total`) and the request goes on. Nothing
//! is ever queued without bound (at most [`DEFAULT_CAPACITY`] batches and
//! [`MAX_QUEUED_BYTES`]) and `record` never blocks.
//!
//! The sink is stdout or a file (a relative path is resolved against the
//! config file's directory, as certificate paths are) that is rotated when the next batch would
//! take it past `max_bytes`: `audit.log` → `audit.log.1` → … →
//! `audit.log.KEEP`, the oldest deleted (`keep = 0`: no old file is kept;
//! `max_bytes = 0`: never rotate). A batch is never split across files, so
//! a file can exceed `max_bytes` by at most one request's lines. A thread
//! rather than a tokio task because file writes block; the channel is
//! `std::sync::mpsc`, whose `try_send` is wait-free for the sender.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::config;
use crate::decision::Decision;
use crate::metrics::UNCLASSIFIED;
use crate::policy::{Mode, Policy};

/// How many request batches may wait for the writer before new ones are
/// dropped.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Most bytes of formatted lines waiting for the writer; a page with
/// thousands of decisions makes a large batch, so the backlog is bounded in
/// bytes as well as in batches.
pub const MAX_QUEUED_BYTES: u64 = 16 * 1024 * 1024;

/// What is audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Nothing.
    Off,
    /// Decisions that changed or removed something.
    Blocked,
    /// Every decision.
    All,
}

impl Level {
    /// Parses `off`, `blocked` or `all`.
    pub fn parse(text: &str) -> Option<Level> {
        match text {
            "off" => Some(Level::Off),
            "blocked" => Some(Level::Blocked),
            "all" => Some(Level::All),
            _ => None,
        }
    }

    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::Blocked => "blocked",
            Level::All => "all",
        }
    }

    fn from_u8(v: u8) -> Level {
        match v {
            1 => Level::Blocked,
            2 => Level::All,
            _ => Level::Off,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Level::Off => 0,
            Level::Blocked => 1,
            Level::All => 2,
        }
    }

    /// Whether a decision is written at this level.
    pub fn includes(self, decision: &Decision) -> bool {
        match self {
            Level::Off => false,
            Level::Blocked => decision.action.changes(),
            Level::All => true,
        }
    }
}

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Standard output.
    Stdout,
    /// A file, rotated by size.
    File {
        /// The live file.
        path: PathBuf,
        /// Rotate when the next batch would take it past this (0: never).
        max_bytes: u64,
        /// Rotated files kept.
        keep: usize,
    },
}

impl Target {
    /// The target an `[audit]` table names; a relative path is resolved
    /// against `base`, the config file's directory (as certificates are).
    pub fn from_config(audit: &config::Audit, base: &Path) -> Target {
        if audit.path == "stdout" || audit.path == "-" {
            return Target::Stdout;
        }
        let path = Path::new(&audit.path);
        let path = if path.is_absolute() { path.to_path_buf() } else { base.join(path) };
        Target::File { path, max_bytes: audit.max_bytes, keep: audit.keep }
    }
}

enum Msg {
    Batch { text: Vec<u8>, entries: u64 },
    Flush(SyncSender<()>),
}

/// State shared with the writer thread.
#[derive(Debug, Default)]
struct Shared {
    written: AtomicU64,
    dropped: AtomicU64,
    /// Bytes sent to the writer and not yet handled.
    queued_bytes: AtomicU64,
    /// Bumped when `target` changes; the writer reopens on a new value.
    version: AtomicU64,
    target: Mutex<Option<Target>>,
}

/// The audit log handle: cheap to call from every request.
pub struct AuditLog {
    level: AtomicU8,
    capacity: usize,
    max_queued_bytes: u64,
    /// Built [`AuditLog::with_writer`]: `configure` changes only the level.
    fixed_sink: bool,
    tx: OnceLock<SyncSender<Msg>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("level", &self.level())
            .field("written", &self.written())
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl Default for AuditLog {
    /// Off, with no writer thread until [`AuditLog::configure`] turns it on.
    fn default() -> Self {
        AuditLog {
            level: AtomicU8::new(Level::Off.to_u8()),
            capacity: DEFAULT_CAPACITY,
            max_queued_bytes: MAX_QUEUED_BYTES,
            fixed_sink: false,
            tx: OnceLock::new(),
            shared: Arc::new(Shared::default()),
        }
    }
}

/// One line, borrowed from the decision.
#[derive(Serialize)]
struct Entry<'a> {
    time: &'a str,
    site: &'a str,
    request_id: &'a str,
    kind: &'static str,
    item: &'static str,
    name: &'a str,
    domain: &'a str,
    category: &'a str,
    action: &'static str,
    rule: &'a str,
    policy: &'a str,
    mode: &'static str,
}

/// The `mode` field.
pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Enforce => "enforce",
        Mode::ReportOnly => "report-only",
    }
}

impl AuditLog {
    /// An audit log as `[audit]` configures it (the writer thread starts
    /// when the level is not `off`); `base` as in [`Target::from_config`].
    pub fn from_config(audit: &config::Audit, base: &Path) -> AuditLog {
        let log = AuditLog::default();
        log.configure(audit, base);
        log
    }

    /// An audit log writing to any writer (a pipe, a socket, a test
    /// double), with `capacity` batches of backlog. [`AuditLog::configure`]
    /// then changes only its level.
    pub fn with_writer(level: Level, writer: Box<dyn Write + Send>, capacity: usize) -> AuditLog {
        let log = AuditLog { capacity: capacity.max(1), fixed_sink: true, ..AuditLog::default() };
        log.level.store(level.to_u8(), Ordering::Relaxed);
        log.start(Out::Custom(writer));
        log
    }

    /// Applies (re)loaded settings: the level at once, a new path or
    /// rotation setting from the writer's next batch. Never blocks.
    pub fn configure(&self, audit: &config::Audit, base: &Path) {
        let level = Level::parse(&audit.level).unwrap_or_else(|| {
            tracing::warn!(level = %audit.level, "unknown audit level; auditing is off");
            Level::Off
        });
        let target = Target::from_config(audit, base);
        if !self.fixed_sink {
            let mut current = self.shared.target.lock().unwrap_or_else(|e| e.into_inner());
            if current.as_ref() != Some(&target) {
                *current = Some(target);
                self.shared.version.fetch_add(1, Ordering::Release);
            }
        }
        if level != Level::Off && self.tx.get().is_none() {
            self.start(Out::Closed);
        }
        self.level.store(level.to_u8(), Ordering::Relaxed);
    }

    fn start(&self, out: Out) {
        let (tx, rx) = mpsc::sync_channel(self.capacity);
        let shared = self.shared.clone();
        // No version yet: a config-built log opens its target on the first batch.
        let seen = u64::MAX;
        let spawned = std::thread::Builder::new()
            .name("consentry-audit".into())
            .spawn(move || Writer { out, seen, shared }.run(&rx));
        match spawned {
            Ok(_) => {
                let _ = self.tx.set(tx);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the audit writer; audit entries will be dropped")
            }
        }
    }

    /// The current level.
    pub fn level(&self) -> Level {
        Level::from_u8(self.level.load(Ordering::Relaxed))
    }

    /// Entries written to the sink.
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// Entries lost because the sink could not keep up or failed.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Queues one request's decisions. Never blocks: when the writer's
    /// backlog is full the entries are counted as dropped.
    pub fn record(
        &self,
        site: &str,
        request_id: &str,
        policy: &Policy,
        decisions: &[Decision],
        now: SystemTime,
    ) {
        let level = self.level();
        if level == Level::Off {
            return;
        }
        let entries = decisions.iter().filter(|d| level.includes(d)).count() as u64;
        if entries == 0 {
            return;
        }
        let Some(tx) = self.tx.get() else {
            self.shared.dropped.fetch_add(entries, Ordering::Relaxed);
            return;
        };
        let time = humantime::format_rfc3339_millis(now).to_string();
        let mode = mode_name(policy.mode);
        let mut text = Vec::with_capacity(256 * entries as usize);
        for d in decisions.iter().filter(|d| level.includes(d)) {
            let entry = Entry {
                time: &time,
                site,
                request_id,
                kind: if d.item.is_cookie() { "cookie" } else { "resource" },
                item: d.item.name(),
                name: &d.name,
                domain: &d.domain,
                category: d
                    .category
                    .filter(|c| c.index() < policy.categories.len())
                    .map_or(UNCLASSIFIED, |c| policy.categories.name(c)),
                action: d.action.name(),
                rule: &d.rule,
                policy: &policy.name,
                mode,
            };
            // Serializing borrowed strings into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut text, &entry);
            text.push(b'\n');
        }
        let len = text.len() as u64;
        let queued = self.shared.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if queued + len > self.max_queued_bytes {
            self.shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.shared.dropped.fetch_add(entries, Ordering::Relaxed);
            return;
        }
        match tx.try_send(Msg::Batch { text, entries }) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                self.shared.dropped.fetch_add(entries, Ordering::Relaxed);
            }
        }
    }

    /// Waits (up to `timeout`) until everything queued so far is written
    /// and flushed. For shutdown and tests, never the request path.
    pub fn flush(&self, timeout: Duration) -> bool {
        let Some(tx) = self.tx.get() else {
            return true;
        };
        let deadline = Instant::now() + timeout;
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let mut msg = Msg::Flush(done_tx);
        loop {
            match tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    msg = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
        done_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_ok()
    }
}

/// The sink the writer thread owns.
enum Out {
    /// No sink open (yet, or after an error): reopen from the target.
    Closed,
    Stdout(io::Stdout),
    File(RotatingFile),
    Custom(Box<dyn Write + Send>),
}

struct Writer {
    out: Out,
    /// The target version `out` was opened for.
    seen: u64,
    shared: Arc<Shared>,
}

impl Writer {
    fn run(mut self, rx: &Receiver<Msg>) {
        while let Ok(msg) = rx.recv() {
            self.handle(msg);
            // Drain what is already queued, then flush once.
            while let Ok(msg) = rx.try_recv() {
                self.handle(msg);
            }
            self.flush();
        }
        self.flush();
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Batch { text, entries } => {
                self.shared.queued_bytes.fetch_sub(text.len() as u64, Ordering::Relaxed);
                self.reopen_if_changed();
                match self.write(&text) {
                    Ok(()) => {
                        self.shared.written.fetch_add(entries, Ordering::Relaxed);
                    }
                    Err(e) => {
                        self.shared.dropped.fetch_add(entries, Ordering::Relaxed);
                        tracing::warn!(error = %e, entries, "audit write failed; entries dropped");
                        // Reopen on the next batch.
                        self.out = Out::Closed;
                        self.seen = u64::MAX;
                    }
                }
            }
            Msg::Flush(done) => {
                self.flush();
                let _ = done.try_send(());
            }
        }
    }

    fn reopen_if_changed(&mut self) {
        let version = self.shared.version.load(Ordering::Acquire);
        // A custom writer is never replaced; the version only moves for
        // logs built from a config.
        if version == self.seen || matches!(self.out, Out::Custom(_)) {
            return;
        }
        let target = self.shared.target.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.flush();
        self.seen = version;
        self.out = match target {
            None => Out::Closed,
            Some(Target::Stdout) => Out::Stdout(io::stdout()),
            Some(Target::File { path, max_bytes, keep }) => {
                match RotatingFile::open(path.clone(), max_bytes, keep) {
                    Ok(f) => Out::File(f),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot open the audit log");
                        self.seen = u64::MAX;
                        Out::Closed
                    }
                }
            }
        };
    }

    fn write(&mut self, text: &[u8]) -> io::Result<()> {
        match &mut self.out {
            Out::Closed => Err(io::Error::other("audit log not open")),
            Out::Stdout(out) => out.lock().write_all(text),
            Out::File(f) => f.write(text),
            Out::Custom(w) => w.write_all(text),
        }
    }

    fn flush(&mut self) {
        let result = match &mut self.out {
            Out::Closed => Ok(()),
            Out::Stdout(out) => out.flush(),
            Out::File(f) => f.file.flush(),
            Out::Custom(w) => w.flush(),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "audit flush failed");
        }
    }
}

/// An append-only file rotated by size.
struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: BufWriter<File>,
    size: u64,
}

impl RotatingFile {
    fn open(path: PathBuf, max_bytes: u64, keep: usize) -> io::Result<RotatingFile> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile { path, max_bytes, keep, file: BufWriter::new(file), size })
    }

    fn write(&mut self, text: &[u8]) -> io::Result<()> {
        if self.max_bytes > 0 && self.size > 0 && self.size + text.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(text)?;
        self.size += text.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.keep == 0 {
            remove_if_exists(&self.path)?;
        } else {
            remove_if_exists(&rotated(&self.path, self.keep))?;
            for i in (1..self.keep).rev() {
                rename_if_exists(&rotated(&self.path, i), &rotated(&self.path, i + 1))?;
            }
            rename_if_exists(&self.path, &rotated(&self.path, 1))?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.file = BufWriter::new(file);
        self.size = 0;
        Ok(())
    }
}

/// `audit.log` → `audit.log.N`.
pub fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rename_if_exists(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::CategoryId;
    use crate::config::Source;
    use crate::decision::{Action, Item};
    use crate::snapshot::Snapshot;

    fn policy(mode: &str) -> Arc<Policy> {
        let text = format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n[[site]]\nhosts = [\"a.test\"]\norigin = \"http://127.0.0.1:1\"\npolicy = \"p\"\n[policy.p]\nmode = \"{mode}\"\n"
        );
        let snap = Snapshot::compile(&Source { path: PathBuf::from("t.toml"), text }, 1).unwrap();
        snap.policies["p"].clone()
    }

    fn decision(name: &str, category: Option<CategoryId>, action: Action) -> Decision {
        Decision {
            item: Item::SetCookie,
            name: name.into(),
            domain: "a.test".into(),
            category,
            action,
            rule: "r \"quoted\"".into(),
        }
    }

    /// A writer whose bytes the test can read.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines(buf: &Shared) -> Vec<serde_json::Value> {
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn targets_resolve_against_the_config_directory() {
        let mut audit = config::Audit { path: "logs/audit.log".into(), ..config::Audit::default() };
        let base = Path::new("/etc/consentry");
        assert_eq!(
            Target::from_config(&audit, base),
            Target::File {
                path: "/etc/consentry/logs/audit.log".into(),
                max_bytes: audit.max_bytes,
                keep: 5
            }
        );
        audit.path = "/var/log/audit.log".into();
        assert!(
            matches!(Target::from_config(&audit, base), Target::File { path, .. } if path == Path::new("/var/log/audit.log"))
        );
        audit.path = "stdout".into();
        assert_eq!(Target::from_config(&audit, base), Target::Stdout);
    }

    #[test]
    fn a_bad_level_is_a_config_error() {
        let text = "[listen]\nhttp = \"127.0.0.1:0\"\n[audit]\nlevel = \"verbose\"\n[[site]]\nhosts = [\"a.test\"]\norigin = \"http://127.0.0.1:1\"\npolicy = \"p\"\n[policy.p]\n";
        let errors =
            Snapshot::compile(&Source { path: PathBuf::from("t.toml"), text: text.into() }, 1).unwrap_err();
        assert!(errors.iter().any(|e| e.message.contains("audit.level must be")), "{errors:?}");
    }

    #[test]
    fn levels_parse_and_filter() {
        assert_eq!(Level::parse("blocked"), Some(Level::Blocked));
        assert_eq!(Level::parse("BLOCKED"), None);
        let allow = decision("a", None, Action::Allow);
        let block = decision("b", None, Action::Block);
        assert!(!Level::Off.includes(&block));
        assert!(Level::Blocked.includes(&block) && !Level::Blocked.includes(&allow));
        assert!(Level::All.includes(&allow));
    }

    #[test]
    fn lines_are_json_with_every_field() {
        let buf = Shared::default();
        let log = AuditLog::with_writer(Level::All, Box::new(buf.clone()), 8);
        let p = policy("report-only");
        let analytics = p.categories.id("analytics");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400);
        log.record(
            "shop",
            "req-1",
            &p,
            &[decision("_ga", analytics, Action::Block), decision("x\n\"y", None, Action::Allow)],
            now,
        );
        assert!(log.flush(Duration::from_secs(5)));
        let lines = lines(&buf);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["time"], "1970-01-02T00:00:00.000Z");
        assert_eq!(lines[0]["site"], "shop");
        assert_eq!(lines[0]["request_id"], "req-1");
        assert_eq!(lines[0]["kind"], "cookie");
        assert_eq!(lines[0]["item"], "set_cookie");
        assert_eq!(lines[0]["name"], "_ga");
        assert_eq!(lines[0]["domain"], "a.test");
        assert_eq!(lines[0]["category"], "analytics");
        assert_eq!(lines[0]["action"], "block");
        assert_eq!(lines[0]["rule"], "r \"quoted\"");
        assert_eq!(lines[0]["mode"], "report-only");
        assert_eq!(lines[0]["policy"], "p");
        assert_eq!(lines[1]["name"], "x\n\"y");
        assert_eq!(lines[1]["category"], "unclassified");
        assert_eq!(log.written(), 2);
        assert_eq!(log.dropped(), 0);
    }

    #[test]
    fn blocked_level_skips_allowed() {
        let buf = Shared::default();
        let log = AuditLog::with_writer(Level::Blocked, Box::new(buf.clone()), 8);
        let p = policy("enforce");
        log.record(
            "s",
            "r",
            &p,
            &[decision("a", None, Action::Allow), decision("b", None, Action::Sweep)],
            SystemTime::now(),
        );
        log.record("s", "r", &p, &[decision("c", None, Action::Allow)], SystemTime::now());
        assert!(log.flush(Duration::from_secs(5)));
        let lines = lines(&buf);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["name"], "b");
        assert_eq!(lines[0]["mode"], "enforce");
    }

    #[test]
    fn off_starts_no_thread_and_counts_nothing() {
        let log = AuditLog::default();
        log.record("s", "r", &policy("enforce"), &[decision("a", None, Action::Block)], SystemTime::now());
        assert!(log.tx.get().is_none());
        assert_eq!((log.written(), log.dropped()), (0, 0));
    }

    /// A writer that never returns.
    struct Stuck;
    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            loop {
                std::thread::park();
            }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn backlog_is_bounded_in_bytes() {
        let mut log = AuditLog::with_writer(Level::All, Box::new(Stuck), 1000);
        log.max_queued_bytes = 4096;
        let p = policy("enforce");
        let big: Vec<Decision> = (0..10).map(|i| decision(&format!("c{i}"), None, Action::Block)).collect();
        for _ in 0..100 {
            log.record("s", "r", &p, &big, SystemTime::now());
        }
        // Each batch is over 1 KiB: a handful fit, far fewer than the 1000
        // batches the channel would take.
        assert!(log.shared.queued_bytes.load(Ordering::Relaxed) <= 4096);
        assert!(log.dropped() >= 90 * 10, "dropped {}", log.dropped());
        assert_eq!(log.written(), 0);
    }

    #[test]
    fn rotation_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut f = RotatingFile::open(path.clone(), 10, 2).unwrap();
        for line in ["aaaaaaa\n", "bbbbbbb\n", "ccccccc\n", "ddddddd\n"] {
            f.write(line.as_bytes()).unwrap();
        }
        f.file.flush().unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), "ddddddd\n");
        assert_eq!(read(&rotated(&path, 1)), "ccccccc\n");
        assert_eq!(read(&rotated(&path, 2)), "bbbbbbb\n");
        assert!(!rotated(&path, 3).exists());
    }

    #[test]
    fn rotation_with_keep_zero_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut f = RotatingFile::open(path.clone(), 10, 0).unwrap();
        f.write(b"aaaaaaa\n").unwrap();
        f.write(b"bbbbbbb\n").unwrap();
        f.file.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "bbbbbbb\n");
        assert!(!rotated(&path, 1).exists());
    }

    #[test]
    fn existing_file_size_counts_towards_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "old-old\n").unwrap();
        let mut f = RotatingFile::open(path.clone(), 10, 1).unwrap();
        f.write(b"new-new\n").unwrap();
        f.file.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new-new\n");
        assert_eq!(std::fs::read_to_string(rotated(&path, 1)).unwrap(), "old-old\n");
    }
}
