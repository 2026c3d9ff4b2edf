//! Proof of consent: one receipt per choice, in an append-only JSON-lines
//! file that survives crashes, and [`verify`] to check such a file.
//!
//! A receipt says who chose what and when: id, time, site, policy and its
//! revision, the choice, granted and refused categories, method (banner or
//! API), user agent and the visitor's IP as the policy says
//! (`[policy.NAME.receipts] ip`, [`IpRecord`]): by default truncated to its
//! network (IPv4 /24, IPv6 /48; see [`truncate_ip_to`]), or not at all, or
//! whole.
//!
//! # Durability
//! The consent endpoint answers only once its receipt is on disk:
//! [`ReceiptWriter::append`] resolves after the line was written *and*
//! `fdatasync`'d. The blocking I/O runs on one dedicated thread fed by a
//! channel, never on the async executor; each receipt carries a oneshot
//! acknowledgement. While one sync is in progress, later receipts queue up
//! and the next round writes them all with one `write` and one sync (group
//! commit), so throughput under load is not one fsync per visitor.
//!
//! No acknowledged receipt is lost and no line is torn: a batch is written
//! whole before its sync, and acknowledged only after it. A crash mid-write
//! can leave a partial last line, which was by construction never
//! acknowledged; on start the writer cuts the file back to its last
//! complete line (logging how many bytes it dropped), so later appends are
//! never glued to a fragment. [`verify`] reports such a torn final line
//! but tolerates it. A failed write is cut back the same way and reported
//! to every receipt in the batch.
//!
//! # Tamper evidence
//! Each line carries `prev`, the SHA-256 of the previous line, so editing
//! or deleting a line in the middle of a file breaks the chain and
//! [`verify`] says where. (It cannot stop someone rewriting the whole file;
//! ship rotated files elsewhere for that.)
//!
//! # Rotation
//! When a batch would take the file past `max_bytes`, the file is renamed
//! to `NAME.YYYYMMDDTHHMMSSZ` and a new one started; rotated files are never
//! deleted (they are the proof). The chain continues across files.
//!
//! One writer per file: two processes appending to the same file would
//! interleave their chains.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How the choice was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptMethod {
    /// The built-in banner (its form, or its script).
    Banner,
    /// A direct call to the consent endpoint.
    Api,
}

/// One proof-of-consent record: one line of the receipts file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Unique id: 12 hex digits of milliseconds since the epoch, then 20
    /// random hex digits (sortable by time).
    pub id: String,
    /// When the choice was made (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// The site's name.
    pub site: String,
    /// The policy's name.
    pub policy: String,
    /// The policy revision the choice was made for.
    pub revision: u64,
    /// `accept-all`, `refuse-all` or `custom`.
    pub choice: String,
    /// Categories granted (always including `necessary`).
    pub granted: Vec<String>,
    /// Categories refused.
    pub refused: Vec<String>,
    /// Banner or API.
    pub method: ReceiptMethod,
    /// The browser's `User-Agent` (at most [`MAX_USER_AGENT`] bytes).
    pub user_agent: Option<String>,
    /// The client IP truncated to its network (`203.0.113.0/24`).
    pub ip: Option<String>,
    /// SHA-256 (hex) of the previous line in the file; set by the writer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
}

/// Longest user agent kept in a receipt.
pub const MAX_USER_AGENT: usize = 512;

impl Receipt {
    /// A receipt with a fresh id and the time formatted from `now`;
    /// `user_agent` is cut to [`MAX_USER_AGENT`] bytes and `ip` truncated.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        now: SystemTime,
        site: &str,
        policy: &str,
        revision: u64,
        choice: &str,
        granted: Vec<String>,
        refused: Vec<String>,
        method: ReceiptMethod,
        user_agent: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Receipt {
        Receipt {
            id: new_id(now),
            time: humantime::format_rfc3339_millis(now).to_string(),
            site: site.to_string(),
            policy: policy.to_string(),
            revision,
            choice: choice.to_string(),
            granted,
            refused,
            method,
            user_agent: user_agent.map(|ua| truncate_str(ua, MAX_USER_AGENT).to_string()),
            ip: ip.map(truncate_ip),
            prev: None,
        }
    }
}

fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A new receipt id: time-ordered, 128 bits.
pub fn new_id(now: SystemTime) -> String {
    let millis = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis()) & 0xffff_ffff_ffff;
    let random = fastrand::u128(..) & ((1u128 << 80) - 1);
    format!("{millis:012x}{random:020x}")
}

/// The visitor's network rather than the visitor: IPv4 keeps its /24,
/// IPv6 its /48 (an IPv4-mapped IPv6 address counts as IPv4).
pub fn truncate_ip(ip: IpAddr) -> String {
    truncate_ip_to(ip, 24, 48)
}

/// `ip`'s network of `v4` (IPv4, at most 32) or `v6` (IPv6, at most 128)
/// bits, as `NETWORK/BITS`; an IPv4-mapped IPv6 address counts as IPv4.
pub fn truncate_ip_to(ip: IpAddr, v4: u8, v6: u8) -> String {
    match ip {
        IpAddr::V4(addr) => {
            let bits = v4.min(32);
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - u32::from(bits)) };
            format!("{}/{bits}", std::net::Ipv4Addr::from(u32::from(addr) & mask))
        }
        IpAddr::V6(addr) => match addr.to_ipv4_mapped() {
            Some(mapped) => truncate_ip_to(IpAddr::V4(mapped), v4, v6),
            None => {
                let bits = v6.min(128);
                let mask = if bits == 0 { 0 } else { u128::MAX << (128 - u32::from(bits)) };
                format!("{}/{bits}", std::net::Ipv6Addr::from(u128::from(addr) & mask))
            }
        },
    }
}

/// What a receipt keeps of the visitor's IP (`[policy.NAME.receipts] ip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpRecord {
    /// Nothing.
    None,
    /// The network: this many bits of an IPv4 / IPv6 address.
    Truncate {
        /// IPv4 prefix length.
        v4: u8,
        /// IPv6 prefix length.
        v6: u8,
    },
    /// The whole address.
    Full,
}

impl Default for IpRecord {
    fn default() -> Self {
        IpRecord::Truncate { v4: 24, v6: 48 }
    }
}

/// The `ip` field of a receipt for this address under this setting.
pub fn record_ip(ip: IpAddr, how: IpRecord) -> Option<String> {
    match how {
        IpRecord::None => None,
        IpRecord::Truncate { v4, v6 } => Some(truncate_ip_to(ip, v4, v6)),
        IpRecord::Full => Some(match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or_else(|| v6.to_string(), |v4| v4.to_string()),
            IpAddr::V4(v4) => v4.to_string(),
        }),
    }
}

/// Why a receipt was not recorded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReceiptError {
    /// Writing or syncing the file failed.
    #[error("receipt not written: {0}")]
    Io(Arc<io::Error>),
    /// The writer has shut down.
    #[error("receipt writer is closed")]
    Closed,
}

struct Job {
    receipt: Receipt,
    ack: tokio::sync::oneshot::Sender<Result<(), ReceiptError>>,
}

/// Counters for tests and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Receipts written and synced.
    pub receipts: AtomicU64,
    /// `fdatasync` calls (fewer than receipts under load: group commit).
    pub syncs: AtomicU64,
    /// Bytes of torn tail cut when the file was opened.
    pub repaired_bytes: AtomicU64,
    /// Rotations.
    pub rotations: AtomicU64,
}

/// The receipts file writer: a handle to its thread. Share it behind an
/// `Arc`; dropping the last handle lets the thread finish what is queued
/// and waits for it.
#[derive(Debug)]
pub struct ReceiptWriter {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
    stats: Arc<Stats>,
}

/// Most receipts written with one sync.
const MAX_BATCH: usize = 256;

impl ReceiptWriter {
    /// Opens (creating) the file, cuts a torn last line left by a crash,
    /// and starts the writer thread. `max_bytes` = rotate past this size.
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<ReceiptWriter> {
        ReceiptWriter::open_inner(path, max_bytes, None)
    }

    /// `slow_writes` splits each batch into `write` calls of that many
    /// bytes with a pause between them; only the crash test uses it, to make
    /// a kill in the middle of a line likely.
    fn open_inner(
        path: &Path,
        max_bytes: u64,
        slow_writes: Option<(usize, std::time::Duration)>,
    ) -> io::Result<ReceiptWriter> {
        let stats = Arc::new(Stats::default());
        let mut state = FileState::open(path, max_bytes, &stats)?;
        state.slow_writes = slow_writes;
        let (tx, rx) = mpsc::channel::<Job>();
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("consentry-receipts".into())
            .spawn(move || run(state, &rx, &thread_stats))?;
        Ok(ReceiptWriter { tx: Some(tx), thread: Some(thread), path: path.to_path_buf(), stats })
    }

    /// Opens the writer `[receipts]` asks for; `None` when receipts are off.
    pub fn from_config(config: &crate::config::Receipts) -> io::Result<Option<ReceiptWriter>> {
        config.path.as_deref().map(|p| ReceiptWriter::open(p, config.max_bytes)).transpose()
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn submit(
        &self,
        receipt: Receipt,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<(), ReceiptError>>, ReceiptError> {
        let (ack, rx) = tokio::sync::oneshot::channel();
        let tx = self.tx.as_ref().ok_or(ReceiptError::Closed)?;
        tx.send(Job { receipt, ack }).map_err(|_| ReceiptError::Closed)?;
        Ok(rx)
    }

    /// Appends a receipt; resolves once it is written and synced to disk.
    pub async fn append(&self, receipt: Receipt) -> Result<(), ReceiptError> {
        let rx = self.submit(receipt)?;
        rx.await.map_err(|_| ReceiptError::Closed)?
    }

    /// [`ReceiptWriter::append`] for threads outside the async runtime.
    pub fn append_blocking(&self, receipt: Receipt) -> Result<(), ReceiptError> {
        let rx = self.submit(receipt)?;
        rx.blocking_recv().map_err(|_| ReceiptError::Closed)?
    }
}

impl Drop for ReceiptWriter {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: take what is queued, write it, sync, acknowledge.
fn run(mut state: FileState, rx: &mpsc::Receiver<Job>, stats: &Stats) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (mut receipts, acks): (Vec<Receipt>, Vec<_>) =
            batch.into_iter().map(|j| (j.receipt, j.ack)).unzip();
        let result = state.append(&mut receipts, stats).map_err(|e| {
            tracing::error!(path = %state.path.display(), error = %e, count = acks.len(), "receipts not written");
            ReceiptError::Io(Arc::new(e))
        });
        for ack in acks {
            let _ = ack.send(result.clone());
        }
    }
}

/// The open file and what the writer knows about it.
struct FileState {
    path: PathBuf,
    file: File,
    len: u64,
    max_bytes: u64,
    /// Hash of the last complete line, for the next `prev`.
    last_hash: Option<String>,
    /// Crash-test pacing (see [`ReceiptWriter::open_inner`]).
    slow_writes: Option<(usize, std::time::Duration)>,
}

fn hash_line(line: &[u8]) -> String {
    Sha256::digest(line).iter().map(|b| format!("{b:02x}")).collect()
}

/// Largest tail read on open to find the last complete line.
const TAIL_SCAN: u64 = 1 << 20;

impl FileState {
    fn open(path: &Path, max_bytes: u64, stats: &Stats) -> io::Result<FileState> {
        let existed = path.exists();
        // A missing directory (a fresh checkout running the demo, a new
        // volume) is created rather than failing the start.
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
            && !parent.exists()
        {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
        if !existed {
            sync_dir(path)?;
        }
        let mut len = file.metadata()?.len();
        let start = len.saturating_sub(TAIL_SCAN);
        file.seek(SeekFrom::Start(start))?;
        let mut tail = Vec::with_capacity(usize::try_from(len - start).unwrap_or(0));
        file.read_to_end(&mut tail)?;
        if tail.last().is_some_and(|&b| b != b'\n') {
            // A crash mid-write: everything after the last newline was never
            // acknowledged. Cut it so the next line starts cleanly.
            let keep = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if keep == 0 && start > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: last {} bytes hold no complete line", path.display(), TAIL_SCAN),
                ));
            }
            let cut = tail.len() - keep;
            tracing::warn!(path = %path.display(), bytes = cut, "cut a torn last line left by a crash (never acknowledged)");
            len = start + keep as u64;
            file.set_len(len)?;
            file.sync_data()?;
            tail.truncate(keep);
            stats.repaired_bytes.fetch_add(cut as u64, Ordering::Relaxed);
        }
        let last_hash = tail.strip_suffix(b"\n").and_then(|body| {
            let line_start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            (line_start > 0 || start == 0).then(|| hash_line(&body[line_start..]))
        });
        Ok(FileState { path: path.to_path_buf(), file, len, max_bytes, last_hash, slow_writes: None })
    }

    /// Writes the receipts as one chunk and syncs it. On failure the file
    /// is cut back to where it was, so no partial line stays behind.
    fn append(&mut self, receipts: &mut [Receipt], stats: &Stats) -> io::Result<()> {
        let mut chunk = Vec::with_capacity(receipts.len() * 512);
        let mut hash = self.last_hash.clone();
        for receipt in receipts.iter_mut() {
            receipt.prev = hash.take();
            let start = chunk.len();
            serde_json::to_writer(&mut chunk, receipt).map_err(io::Error::other)?;
            hash = Some(hash_line(&chunk[start..]));
            chunk.push(b'\n');
        }
        if self.len > 0 && self.len + chunk.len() as u64 > self.max_bytes {
            self.rotate()?;
            stats.rotations.fetch_add(1, Ordering::Relaxed);
        }
        let before = self.len;
        let written = match self.slow_writes {
            None => self.file.write_all(&chunk),
            Some((size, pause)) => chunk.chunks(size.max(1)).try_for_each(|piece| {
                self.file.write_all(piece)?;
                std::thread::sleep(pause);
                Ok(())
            }),
        }
        .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let _ = self.file.set_len(before);
            return Err(e);
        }
        self.len += chunk.len() as u64;
        self.last_hash = hash;
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        stats.receipts.fetch_add(receipts.len() as u64, Ordering::Relaxed);
        tracing::debug!(path = %self.path.display(), count = receipts.len(), bytes = chunk.len(), "receipts synced");
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let stamp: String = humantime::format_rfc3339_seconds(SystemTime::now())
            .to_string()
            .chars()
            .filter(|c| !matches!(c, '-' | ':'))
            .collect();
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut target = self.path.with_file_name(format!("{name}.{stamp}"));
        let mut n = 1;
        while target.exists() {
            target = self.path.with_file_name(format!("{name}.{stamp}.{n}"));
            n += 1;
        }
        std::fs::rename(&self.path, &target)?;
        self.file = OpenOptions::new().read(true).append(true).create(true).open(&self.path)?;
        sync_dir(&self.path)?;
        tracing::info!(path = %self.path.display(), rotated = %target.display(), bytes = self.len, "receipts file rotated");
        self.len = 0;
        Ok(())
    }
}

/// Makes a created or renamed directory entry durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// One problem [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// What [`verify`] found in a receipts file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Valid receipts.
    pub receipts: u64,
    /// `time` of the first valid receipt.
    pub first_time: Option<String>,
    /// `time` of the last valid receipt.
    pub last_time: Option<String>,
    /// Receipts per method: banner, api.
    pub by_method: (u64, u64),
    /// Lines that are not valid receipts, duplicate ids, broken chain links.
    pub problems: Vec<Problem>,
    /// The line number of a torn final line (no newline: a crash
    /// mid-write, never acknowledged). Reported, not a problem.
    pub torn_final_line: Option<u64>,
}

impl VerifyReport {
    /// Whether the file is sound (a torn final line is tolerated).
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "receipts: {} (banner {}, api {})", self.receipts, self.by_method.0, self.by_method.1)?;
        if let (Some(first), Some(last)) = (&self.first_time, &self.last_time) {
            writeln!(f, "first: {first}\nlast: {last}")?;
        }
        if let Some(line) = self.torn_final_line {
            writeln!(f, "line {line}: torn final line (crash before it was acknowledged; tolerated)")?;
        }
        for p in &self.problems {
            writeln!(f, "line {}: {}", p.line, p.message)?;
        }
        write!(f, "{}", if self.is_ok() { "ok" } else { "PROBLEMS FOUND" })
    }
}

/// Checks a receipts file line by line (streaming; memory grows only with
/// the set of ids): every line a valid receipt, ids unique, each `prev`
/// the hash of the line before. The first line's `prev` points into the
/// previous (rotated) file and is not checked. A final line without its
/// newline is reported as torn and tolerated.
pub fn verify(path: &Path) -> io::Result<VerifyReport> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut report = VerifyReport::default();
    let mut ids: HashSet<String> = HashSet::new();
    let mut previous_hash: Option<String> = None;
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        let Some(body) = buf.strip_suffix(b"\n") else {
            report.torn_final_line = Some(line_no);
            break;
        };
        let hash = hash_line(body);
        let mut problems = Vec::new();
        match serde_json::from_slice::<Receipt>(body) {
            Err(e) => problems.push(format!("not a valid receipt: {e}")),
            Ok(r) => {
                if line_no > 1 && r.prev != previous_hash {
                    problems.push(
                        "chain broken: `prev` is not the hash of the line before (edited or deleted line)"
                            .into(),
                    );
                }
                if humantime::parse_rfc3339(&r.time).is_err() {
                    problems.push(format!("bad time {:?}", r.time));
                }
                if !ids.insert(r.id.clone()) {
                    problems.push(format!("duplicate id {}", r.id));
                }
                report.receipts += 1;
                match r.method {
                    ReceiptMethod::Banner => report.by_method.0 += 1,
                    ReceiptMethod::Api => report.by_method.1 += 1,
                }
                if report.first_time.is_none() {
                    report.first_time = Some(r.time.clone());
                }
                report.last_time = Some(r.time);
            }
        }
        report.problems.extend(problems.into_iter().map(|message| Problem { line: line_no, message }));
        previous_hash = Some(hash);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::process::{Command, Stdio};

    /// A fresh, empty directory under the system temp dir.
    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "consentry-receipts-{tag}-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn receipt(n: usize) -> Receipt {
        Receipt::new(
            SystemTime::now(),
            "example",
            "default",
            3,
            "custom",
            vec!["necessary".into(), "analytics".into()],
            vec!["advertising".into()],
            if n.is_multiple_of(2) { ReceiptMethod::Banner } else { ReceiptMethod::Api },
            Some("Mozilla/5.0 (X11; Linux x86_64)"),
            Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 77))),
        )
    }

    fn ids_in(path: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(path).unwrap();
        text.lines().filter_map(|l| serde_json::from_str::<Receipt>(l).ok()).map(|r| r.id).collect()
    }

    #[test]
    fn ips_are_truncated() {
        assert_eq!(truncate_ip("203.0.113.77".parse().unwrap()), "203.0.113.0/24");
        assert_eq!(truncate_ip("2001:db8:abcd:12:1:2:3:4".parse().unwrap()), "2001:db8:abcd::/48");
        assert_eq!(truncate_ip("::ffff:198.51.100.9".parse().unwrap()), "198.51.100.0/24");
        assert_eq!(truncate_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)), "::/48");
        // Other prefix lengths, per policy.
        let v4: IpAddr = "203.0.113.77".parse().unwrap();
        let v6: IpAddr = "2001:db8:abcd:12:1:2:3:4".parse().unwrap();
        assert_eq!(truncate_ip_to(v4, 16, 48), "203.0.0.0/16");
        assert_eq!(truncate_ip_to(v4, 0, 0), "0.0.0.0/0");
        assert_eq!(truncate_ip_to(v4, 32, 128), "203.0.113.77/32");
        assert_eq!(truncate_ip_to(v4, 20, 48), "203.0.112.0/20");
        assert_eq!(truncate_ip_to(v6, 24, 32), "2001:db8::/32");
        assert_eq!(truncate_ip_to(v6, 24, 56), "2001:db8:abcd::/56");
        assert_eq!(truncate_ip_to(v6, 24, 60), "2001:db8:abcd:10::/60");
        assert_eq!(truncate_ip_to(v6, 24, 200), "2001:db8:abcd:12:1:2:3:4/128");
        assert_eq!(record_ip(v4, IpRecord::None), None);
        assert_eq!(record_ip(v4, IpRecord::Full).as_deref(), Some("203.0.113.77"));
        assert_eq!(
            record_ip("::ffff:198.51.100.9".parse().unwrap(), IpRecord::Full).as_deref(),
            Some("198.51.100.9")
        );
        assert_eq!(record_ip(v6, IpRecord::default()).as_deref(), Some("2001:db8:abcd::/48"));
    }

    #[test]
    fn receipts_hold_what_was_chosen() {
        let ua = "é".repeat(400);
        let r = Receipt::new(
            UNIX_EPOCH + std::time::Duration::from_millis(1_780_000_000_123),
            "shop",
            "default",
            7,
            "accept-all",
            vec!["necessary".into()],
            vec![],
            ReceiptMethod::Banner,
            Some(&ua),
            Some("10.1.2.3".parse().unwrap()),
        );
        assert_eq!(r.time, "2026-05-28T20:26:40.123Z");
        assert_eq!(r.id.len(), 32);
        assert!(r.id.starts_with(&format!("{:012x}", 1_780_000_000_123u64)));
        assert!(r.user_agent.as_ref().unwrap().len() <= MAX_USER_AGENT);
        assert!(ua.starts_with(r.user_agent.as_deref().unwrap()));
        assert_eq!(r.ip.as_deref(), Some("10.1.2.0/24"));
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"method\":\"banner\"") && !json.contains("prev"), "{json}");
        assert_ne!(new_id(SystemTime::now()), new_id(SystemTime::now()));
    }

    #[tokio::test]
    async fn appends_chain_and_verify() {
        let dir = temp_dir("chain");
        let path = dir.join("receipts.jsonl");
        {
            let writer = ReceiptWriter::open(&path, 1 << 30).unwrap();
            for n in 0..5 {
                writer.append(receipt(n)).await.unwrap();
            }
            assert_eq!(writer.stats().receipts.load(Ordering::Relaxed), 5);
        }
        // Reopen: the chain continues from the last line.
        {
            let writer = ReceiptWriter::open(&path, 1 << 30).unwrap();
            writer.append(receipt(5)).await.unwrap();
        }
        let report = verify(&path).unwrap();
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.receipts, 6);
        assert_eq!(report.by_method, (3, 3));
        assert!(report.first_time.is_some() && report.torn_final_line.is_none());
        assert!(report.to_string().ends_with("ok"));

        // Editing a line in the middle breaks the chain at the next line.
        let text = std::fs::read_to_string(&path).unwrap();
        let edited =
            text.replacen("\"granted\":[\"necessary\",\"analytics\"]", "\"granted\":[\"necessary\"]", 1);
        std::fs::write(&path, &edited).unwrap();
        let report = verify(&path).unwrap();
        assert!(!report.is_ok());
        assert_eq!(report.problems.len(), 1, "{report}");
        assert_eq!(report.problems[0].line, 2);
        // Deleting a line too.
        let mut lines: Vec<&str> = text.lines().collect();
        lines.remove(3);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let report = verify(&path).unwrap();
        assert_eq!(report.problems.iter().map(|p| p.line).collect::<Vec<_>>(), vec![4]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn verify_reports_bad_lines_and_tolerates_a_torn_tail() {
        let dir = temp_dir("verify");
        let path = dir.join("r.jsonl");
        let good = serde_json::to_string(&receipt(0)).unwrap();
        let dup = good.clone();
        std::fs::write(&path, format!("{good}\nnot json\n{{\"id\":\"x\"}}\n\n{dup}\n{{\"id\":\"torn"))
            .unwrap();
        let report = verify(&path).unwrap();
        let lines: Vec<u64> = report.problems.iter().map(|p| p.line).collect();
        // 2: not JSON; 3: missing fields; 4: empty; 5: duplicate id (and its
        // chain link: it was not written by the writer).
        assert!(
            lines.contains(&2) && lines.contains(&3) && lines.contains(&4) && lines.contains(&5),
            "{report}"
        );
        assert!(report.problems.iter().any(|p| p.message.contains("duplicate id")));
        assert_eq!(report.torn_final_line, Some(6));
        assert_eq!(report.receipts, 2);
        assert!(!report.is_ok());

        // Only a torn tail: reported, tolerated.
        std::fs::write(&path, format!("{good}\n{{\"id\":\"torn")).unwrap();
        let report = verify(&path).unwrap();
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.torn_final_line, Some(2));
        assert!(report.to_string().contains("line 2: torn final line"));
        assert!(verify(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn reopening_cuts_a_torn_line() {
        let dir = temp_dir("torn");
        let path = dir.join("r.jsonl");
        {
            let writer = ReceiptWriter::open(&path, 1 << 30).unwrap();
            writer.append(receipt(0)).await.unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"id\":\"0123").unwrap();
        drop(f);
        let writer = ReceiptWriter::open(&path, 1 << 30).unwrap();
        assert_eq!(writer.stats().repaired_bytes.load(Ordering::Relaxed), 11);
        writer.append(receipt(1)).await.unwrap();
        drop(writer);
        let report = verify(&path).unwrap();
        assert!(report.is_ok() && report.torn_final_line.is_none(), "{report}");
        assert_eq!(report.receipts, 2);

        // A file holding only a fragment is emptied.
        std::fs::write(&path, b"{\"id\":").unwrap();
        let writer = ReceiptWriter::open(&path, 1 << 30).unwrap();
        writer.append(receipt(2)).await.unwrap();
        drop(writer);
        assert_eq!(verify(&path).unwrap().receipts, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_batch_is_one_write_and_one_sync() {
        let dir = temp_dir("batch");
        let path = dir.join("r.jsonl");
        let stats = Stats::default();
        let mut state = FileState::open(&path, 1 << 30, &stats).unwrap();
        let mut batch: Vec<Receipt> = (0..10).map(receipt).collect();
        state.append(&mut batch, &stats).unwrap();
        assert_eq!(stats.syncs.load(Ordering::Relaxed), 1);
        assert_eq!(stats.receipts.load(Ordering::Relaxed), 10);
        let report = verify(&path).unwrap();
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.receipts, 10);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn concurrent_appends_share_syncs() {
        let dir = temp_dir("group");
        let path = dir.join("r.jsonl");
        let writer = Arc::new(ReceiptWriter::open(&path, 1 << 30).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for n in 0..25 {
                        writer.append_blocking(receipt(t * 100 + n)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stats = writer.stats();
        assert_eq!(stats.receipts.load(Ordering::Relaxed), 200);
        // Every receipt was synced; how many shared a sync depends on timing,
        // so only the upper bound is asserted.
        let syncs = stats.syncs.load(Ordering::Relaxed);
        assert!(syncs <= 200);
        eprintln!("group commit: 200 receipts from 8 threads in {syncs} syncs");
        drop(writer);
        let report = verify(&path).unwrap();
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.receipts, 200);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn rotates_by_size_and_keeps_the_chain() {
        let dir = temp_dir("rotate");
        let path = dir.join("r.jsonl");
        let line_len = serde_json::to_string(&receipt(0)).unwrap().len() as u64 + 90;
        let writer = ReceiptWriter::open(&path, line_len * 3).unwrap();
        let mut written = Vec::new();
        for n in 0..10 {
            let r = receipt(n);
            written.push(r.id.clone());
            writer.append(r).await.unwrap();
        }
        assert!(writer.stats().rotations.load(Ordering::Relaxed) >= 3);
        drop(writer);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        let mut found = Vec::new();
        for f in &files {
            assert!(std::fs::metadata(f).unwrap().len() <= line_len * 3, "{}", f.display());
            let report = verify(f).unwrap();
            assert!(report.is_ok(), "{}: {report}", f.display());
            found.extend(ids_in(f));
        }
        found.sort();
        written.sort();
        assert_eq!(found, written);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn write_errors_reach_the_caller() {
        let dir = temp_dir("err");
        let path = dir.join("r.jsonl");
        let writer = ReceiptWriter::open(&path, 10).unwrap();
        writer.append(receipt(0)).await.unwrap();
        // Rotation needs to rename into the directory: take it away.
        std::fs::remove_dir_all(&dir).unwrap();
        let err = writer.append(receipt(1)).await.unwrap_err();
        assert!(matches!(err, ReceiptError::Io(_)), "{err}");
    }

    /// Not a test on its own: the child process of
    /// `acknowledged_receipts_survive_sigkill`. It appends receipts from
    /// several threads forever and prints `ACK <id>` once each is
    /// acknowledged.
    #[test]
    fn crash_child() {
        let Ok(path) = std::env::var("CONSENTRY_RECEIPTS_CRASH_CHILD") else {
            return;
        };
        let slow = std::env::var("CONSENTRY_RECEIPTS_CRASH_SLOW")
            .is_ok()
            .then_some((16, std::time::Duration::from_micros(100)));
        let writer = Arc::new(ReceiptWriter::open_inner(Path::new(&path), 48 * 1024, slow).unwrap());
        println!("READY repaired={}", writer.stats().repaired_bytes.load(Ordering::Relaxed));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for n in 0.. {
                        let r = receipt(t + n);
                        let id = r.id.clone();
                        writer.append_blocking(r).unwrap();
                        let mut out = io::stdout().lock();
                        writeln!(out, "ACK {id}").unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    /// Kills a writing process with SIGKILL 20 times, restarting it on the
    /// same file each time, then checks that every receipt it acknowledged
    /// is on disk and every line (but a torn final one) is sound. Each
    /// restart must have cut any torn tail (else a later line would be glued
    /// to it and fail to parse).
    #[test]
    fn acknowledged_receipts_survive_sigkill() {
        let dir = temp_dir("crash");
        let path = dir.join("receipts.jsonl");
        let exe = std::env::current_exe().unwrap();
        let mut acked: Vec<String> = Vec::new();
        let mut repaired_rounds = 0;
        for round in 0..20 {
            let mut child = Command::new(&exe)
                .args(["--exact", "receipts::tests::crash_child", "--nocapture", "--test-threads=1"])
                .env("CONSENTRY_RECEIPTS_CRASH_CHILD", &path)
                // Every other round writes in small paced pieces, so kills
                // land inside lines and the restart repair is exercised.
                .env(
                    if round % 2 == 0 {
                        "CONSENTRY_RECEIPTS_CRASH_SLOW"
                    } else {
                        "CONSENTRY_RECEIPTS_CRASH_FAST"
                    },
                    "1",
                )
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut out = io::BufReader::new(child.stdout.take().unwrap());
            // Kill after a varying number of acknowledgements, so the kill
            // lands at different points of the write/sync cycle.
            let kill_after = 3 + (round * 17) % 40;
            let mut seen = 0;
            let mut line = String::new();
            loop {
                line.clear();
                if out.read_line(&mut line).unwrap() == 0 {
                    panic!("child exited early in round {round}");
                }
                // libtest may print "test … ... " just before it on the line.
                if let Some(at) = line.find("READY repaired=") {
                    if line[at + "READY repaired=".len()..].trim() != "0" {
                        repaired_rounds += 1;
                    }
                } else if let Some(id) = line.strip_prefix("ACK ") {
                    acked.push(id.trim().to_string());
                    seen += 1;
                    if seen == kill_after {
                        break;
                    }
                }
            }
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            // Acknowledgements printed before the kill still count; a last
            // line cut by the kill (no newline) was never complete.
            loop {
                line.clear();
                if out.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                if let Some(id) = line.strip_prefix("ACK ")
                    && line.ends_with('\n')
                {
                    acked.push(id.trim().to_string());
                }
            }
        }
        let mut on_disk: HashSet<String> = HashSet::new();
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let f = entry.unwrap().path();
            files += 1;
            let report = verify(&f).unwrap();
            assert!(report.is_ok(), "{}: {report}", f.display());
            // Only the live file may end torn; rotated ones were complete.
            if f != path {
                assert!(report.torn_final_line.is_none(), "{}: {report}", f.display());
            }
            on_disk.extend(ids_in(&f));
        }
        let missing: Vec<&String> = acked.iter().filter(|id| !on_disk.contains(*id)).collect();
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged receipts lost: {missing:?}",
            missing.len(),
            acked.len()
        );
        eprintln!(
            "crash test: {} acknowledged, {} on disk in {files} files, torn tail cut on {repaired_rounds} restarts",
            acked.len(),
            on_disk.len()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
