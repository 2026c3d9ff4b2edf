//! Proof of consent survives `kill -9`: the real `consentry` binary, with
//! receipts on, is SIGKILLed again and again while clients post choices over
//! HTTP; every choice it acknowledged (`303` with `Consentry-Receipt: ID`)
//! must be in the file afterwards, no line may be torn but an
//! unacknowledged final one, and `consentry receipts verify` must agree.
//! Also the CLI on a tampered file.
//!
//! What this can and cannot show: SIGKILL ends the process, not the
//! kernel, so bytes already `write`n survive it whether or not they were
//! synced. The test proves the ordering (no acknowledgement before the
//! receipt is written whole, restart repairs a torn tail, nothing is
//! reordered or duplicated); the `fdatasync` before the acknowledgement,
//! which is what survives power loss, is only counted (one per batch) by
//! the unit tests in `src/receipts.rs`, not proven against power loss.
//! A kill rarely lands inside a `write`, so the torn-tail case is also
//! made deterministically in [`a_torn_tail_is_reported_then_repaired`].

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ROUNDS: usize = 6;
const CLIENTS: usize = 6;

/// One consent POST over a fresh connection. `Some(id)` only for an
/// acknowledged choice: `303` carrying the receipt header.
async fn post_choice(addr: SocketAddr, n: usize) -> Option<String> {
    let body = match n % 3 {
        0 => "choice=accept-all&return_to=%2F".to_string(),
        1 => "choice=refuse-all&return_to=%2F".to_string(),
        _ => "choice=custom&category=analytics&return_to=%2F".to_string(),
    };
    let request = format!(
        "POST /.consentry/consent HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nUser-Agent: kill-test/{n}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        Some(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange).await.ok()??;
    let text = String::from_utf8_lossy(&response);
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n");
    if !lines.next()?.starts_with("HTTP/1.1 303 ") {
        return None;
    }
    lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("consentry-receipt").then(|| value.trim().to_string())
    })
}

fn config(receipts: &Path) -> String {
    format!(
        "[listen]\nhttp = \"127.0.0.1:0\"\n\n[receipts]\npath = {:?}\n\n[[site]]\nname = \"test\"\nhosts = [\"{HOST}\"]\norigin = \"http://127.0.0.1:9\"\npolicy = \"test\"\n\n[policy.test]\n[policy.test.banner]\nenabled = true\n",
        receipts.to_str().unwrap()
    )
}

fn start(receipts: &Path) -> Binary {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consentry.toml");
    std::fs::write(&path, config(receipts)).unwrap();
    Binary::start(&["run", "--config", path.to_str().unwrap()], dir)
}

/// `consentry receipts verify FILE`: exit code and stdout.
fn verify_cli(file: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_consentry"))
        .args(["receipts", "verify", file.to_str().unwrap()])
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The ids of every complete line, and the text of a final line without
/// its newline (torn), if any.
fn read_file(file: &Path) -> (Vec<String>, Option<String>) {
    let bytes = std::fs::read(file).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let mut ids = Vec::new();
    let mut torn = None;
    let mut rest: &str = &text;
    while !rest.is_empty() {
        match rest.split_once('\n') {
            Some((line, after)) => {
                let json: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("a torn or bad line in the middle: {e}: {line:?}"));
                ids.push(json["id"].as_str().unwrap().to_string());
                rest = after;
            }
            None => {
                torn = Some(rest.to_string());
                rest = "";
            }
        }
    }
    (ids, torn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_receipts_survive_sigkill_in_a_loop() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("receipts.jsonl");
        let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
        let addr: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(AtomicUsize::new(0));
        let mut clients = Vec::new();
        for c in 0..CLIENTS {
            let (acked, addr, stop, attempts) = (acked.clone(), addr.clone(), stop.clone(), attempts.clone());
            clients.push(tokio::spawn(async move {
                let mut n = c;
                while !stop.load(Ordering::Relaxed) {
                    let Some(target) = *addr.lock().unwrap() else {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    };
                    attempts.fetch_add(1, Ordering::Relaxed);
                    if let Some(id) = post_choice(target, n).await {
                        assert!(acked.lock().unwrap().insert(id.clone()), "receipt id {id} acknowledged twice");
                    }
                    n += CLIENTS;
                }
            }));
        }

        let mut torn_seen = 0;
        for round in 0..ROUNDS {
            let mut binary = start(&file);
            // The file as this start left it: the writer cut any torn tail
            // of the previous kill, so every line is complete.
            if file.exists() {
                let (_, torn) = read_file(&file);
                assert_eq!(torn, None, "round {round}: a torn line survived the restart");
            }
            let before = acked.lock().unwrap().len();
            *addr.lock().unwrap() = Some(binary.http);
            // Let a few choices be acknowledged in this round, then kill at
            // a moment unrelated to any one request.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while acked.lock().unwrap().len() < before + 25 {
                assert!(tokio::time::Instant::now() < deadline, "round {round}: no choices acknowledged");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..40))).await;
            binary.signal("KILL");
            *addr.lock().unwrap() = None;
            let status = tokio::task::spawn_blocking(move || binary.wait()).await.unwrap();
            assert_eq!(status.code(), None, "round {round}: killed by a signal, not exited: {status:?}");

            // Every acknowledged receipt is on disk; nothing is torn but
            // possibly the last line, which nobody was told about.
            let (ids, torn) = read_file(&file);
            let on_disk: HashSet<&String> = ids.iter().collect();
            assert_eq!(on_disk.len(), ids.len(), "round {round}: duplicate ids in the file");
            let acked_now = acked.lock().unwrap().clone();
            let missing: Vec<&String> = acked_now.iter().filter(|id| !on_disk.contains(id)).collect();
            assert!(missing.is_empty(), "round {round}: acknowledged but lost: {missing:?}");
            if let Some(fragment) = &torn {
                torn_seen += 1;
                for id in &acked_now {
                    assert!(!fragment.contains(id.as_str()), "round {round}: acknowledged {id} is in the torn line");
                }
            }
            let (code, out) = verify_cli(&file);
            assert_eq!(code, 0, "round {round}: receipts verify failed:\n{out}");
            if torn.is_some() {
                assert!(out.contains("torn final line"), "{out}");
            }
        }
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.unwrap();
        }

        // A last start repairs a torn tail and appends after it.
        let binary = start(&file);
        let id = post_choice(binary.http, 0).await.expect("a choice after the last restart");
        drop(binary);
        let (ids, torn) = read_file(&file);
        assert_eq!(torn, None);
        assert_eq!(ids.last(), Some(&id));
        let (code, out) = verify_cli(&file);
        assert_eq!(code, 0, "{out}");
        let acked = acked.lock().unwrap().len();
        println!(
            "{ROUNDS} SIGKILLs: {} attempts, {acked} acknowledged, {} receipts in the file, {torn_seen} torn tails seen",
            attempts.load(Ordering::Relaxed),
            ids.len()
        );
        assert!(ids.len() > acked, "the file holds every acknowledged receipt (and the last one)");
    })
    .await
    .expect("test hung");
}

#[test]
fn verify_cli_reports_a_tampered_line_by_number() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("receipts.jsonl");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let binary = start(&file);
        for n in 0..4 {
            assert!(post_choice(binary.http, 1).await.is_some(), "choice {n} not acknowledged");
        }
    });
    let (code, out) = verify_cli(&file);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("receipts: 4 "), "{out}");

    // Someone turns a refusal into consent on line 3.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert!(lines[2].contains("\"refuse-all\""), "{}", lines[2]);
    lines[2] = lines[2].replace("\"refuse-all\"", "\"accept-all\"");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (code, out) = verify_cli(&file);
    assert_ne!(code, 0, "a tampered file passed:\n{out}");
    // The edit breaks the link from line 4 to line 3.
    assert!(out.contains("line 4: chain broken"), "{out}");

    // A line cut in the middle (not the last) is a problem too.
    lines[2] = lines[2][..lines[2].len() / 2].to_string();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (code, out) = verify_cli(&file);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("line 3: not a valid receipt"), "{out}");

    // A missing file: an error, not a pass.
    let (code, _) = verify_cli(&dir.path().join("nope.jsonl"));
    assert_ne!(code, 0);
}

#[test]
fn a_torn_tail_is_reported_then_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("receipts.jsonl");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let first = rt.block_on(async {
        let binary = start(&file);
        post_choice(binary.http, 0).await.expect("acknowledged")
    });
    // What a kill in the middle of a write leaves: half a line, no newline.
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text.lines().next().unwrap().to_string();
    std::fs::write(&file, format!("{text}{}", &line[..line.len() / 2])).unwrap();
    let (code, out) = verify_cli(&file);
    assert_eq!(code, 0, "a torn final line is tolerated:\n{out}");
    assert!(out.contains("line 2: torn final line"), "{out}");
    // The next start cuts it off; appends continue the chain after it.
    let second = rt.block_on(async {
        let binary = start(&file);
        post_choice(binary.http, 1).await.expect("acknowledged after the repair")
    });
    let (ids, torn) = read_file(&file);
    assert_eq!(torn, None);
    assert_eq!(ids, [first, second]);
    let (code, out) = verify_cli(&file);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("torn"), "{out}");
}
