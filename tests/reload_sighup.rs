//! `SIGHUP` reloads through the same path as a file change. In its own test
//! binary: the signal goes to the whole process, and once tokio handles
//! SIGHUP it does so for the life of the process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use consentry::reload::{self, Options};
use consentry::snapshot::{Snapshot, Store};

const CONFIG: &str = r#"
[listen]
http = "127.0.0.1:0"

[[site]]
hosts = ["www.example.com"]
origin = "http://127.0.0.1:3000"
policy = "default"

[policy.default]
"#;

fn hangup() {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(status.success());
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn sighup_reloads_even_an_unchanged_file_and_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consentry.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let store = Arc::new(Store::new(Snapshot::load(&path, 1).unwrap()));
    let options = Options { debounce: Duration::from_millis(20), ..Options::default() };
    let _watcher = reload::spawn_watcher_with(store.clone(), path.clone(), options).unwrap();
    assert!(options.sighup);

    // Unchanged file: an explicit SIGHUP still reloads (new generation).
    hangup();
    wait_for("the first SIGHUP reload", || store.load().generation == 2).await;

    // Twice: a SIGHUP never goes through the "unchanged, skip" shortcut.
    hangup();
    wait_for("the second SIGHUP reload", || store.load().generation == 3).await;
    assert_eq!(store.reloads_ok(), 2);

    // A broken file retried through SIGHUP is reported like any other.
    // Written by rename, as editors save: a plain write (truncate, then
    // write) can be seen half-done by a loaded machine as two failures.
    let tmp = dir.path().join(".consentry.toml.tmp");
    std::fs::write(&tmp, CONFIG.replace("[policy.default]", "[policy.default]\nmode = \"enforcing\""))
        .unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    // The watcher tries (and fails) on its own. Waited for by its outcome,
    // not by the check counter: the temporary file's own event can end a
    // burst of its own (found unchanged) just after the rename, and counting
    // that check would read the failure count before the rename's check.
    wait_for("the watcher to reject the broken file", || store.reloads_failed() >= 1).await;
    let failed = store.reloads_failed();
    assert_eq!(failed, 1);
    // SIGHUP retries it.
    hangup();
    wait_for("the failed reload", || store.reloads_failed() > failed).await;
    let error = store.last_error().unwrap();
    assert!(error.contains("mode must be \"enforce\" or \"report-only\", not \"enforcing\""), "{error}");
    assert_eq!(store.load().generation, 3);
}
