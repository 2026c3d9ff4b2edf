//! Hot reload against real files in a temporary directory: editor-style
//! rename saves, a Kubernetes ConfigMap `..data` symlink swap, invalid
//! writes, bursts, unrelated files, user presets, listener changes, and a
//! reader loading snapshots while the file is rewritten 50 times.
//!
//! Each test waits for the watcher by polling the store with a deadline;
//! nothing asserts how fast a reload is beyond that deadline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use consentry::reload::{self, Options, WatcherHandle};
use consentry::snapshot::{Snapshot, Store};

/// How long a test waits for the watcher before failing. Generous: the
/// machine running the tests may be busy; the 50-write test below checks
/// the 1 s promise.
const PATIENCE: Duration = Duration::from_secs(10);

fn config(marker: &str) -> String {
    config_with(marker, "analytics", "127.0.0.1:0", "")
}

fn config_with(marker: &str, category: &str, listen: &str, extra: &str) -> String {
    format!(
        r#"{extra}
[listen]
http = "{listen}"

[[site]]
hosts = ["www.example.com"]
origin = "http://127.0.0.1:3000"
policy = "default"

[policy.default]
[[policy.default.cookie]]
name = "{marker}"
category = "{category}"
"#
    )
}

/// Writes like an editor: a temporary file, then a rename over the target.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn options() -> Options {
    Options { debounce: Duration::from_millis(50), max_delay: Duration::from_millis(500), sighup: false }
}

fn start(path: &Path) -> (Arc<Store>, WatcherHandle) {
    let store = Arc::new(Store::new(Snapshot::load(path, 1).expect("initial config is valid")));
    let handle = reload::spawn_watcher_with(store.clone(), path.to_path_buf(), options()).unwrap();
    (store, handle)
}

/// Whether the current policy names `cookie` (as analytics or anything).
fn knows(store: &Store, cookie: &str) -> bool {
    store.load().policies["default"].classify_cookie(cookie, "www.example.com").0.is_some()
}

async fn wait_for(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn rename_save_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consentry.toml");
    std::fs::write(&path, config("first")).unwrap();
    let (store, _watcher) = start(&path);
    assert!(knows(&store, "first"));

    save(&path, &config("second"));
    wait_for("the renamed file", PATIENCE, || knows(&store, "second")).await;
    assert!(!knows(&store, "first"));
    assert_eq!(store.load().generation, 2);
    assert_eq!(store.reloads_ok(), 1);
    assert_eq!(store.last_error(), None);

    // A plain in-place write (truncate + write) works too.
    std::fs::write(&path, config("third")).unwrap();
    wait_for("the rewritten file", PATIENCE, || knows(&store, "third")).await;
    assert!(store.load().generation >= 3);
}

#[tokio::test]
async fn configmap_symlink_swap_is_picked_up() {
    // The layout kubelet gives a mounted ConfigMap:
    //   consentry.toml -> ..data/consentry.toml
    //   ..data -> ..2026_01_01_00_00_00.000000001
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let first = root.join("..2026_01_01_00_00_00.000000001");
    std::fs::create_dir(&first).unwrap();
    std::fs::write(first.join("consentry.toml"), config("from_v1")).unwrap();
    std::os::unix::fs::symlink("..2026_01_01_00_00_00.000000001", root.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/consentry.toml", root.join("consentry.toml")).unwrap();
    let path = root.join("consentry.toml");
    let (store, _watcher) = start(&path);
    assert!(knows(&store, "from_v1"));

    // An update, as kubelet does it: new timestamped directory, a new
    // symlink renamed over `..data` (atomic), old directory removed.
    let second = root.join("..2026_01_01_00_05_00.000000002");
    std::fs::create_dir(&second).unwrap();
    std::fs::write(second.join("consentry.toml"), config("from_v2")).unwrap();
    std::os::unix::fs::symlink("..2026_01_01_00_05_00.000000002", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(&first).unwrap();

    wait_for("the swapped ConfigMap", PATIENCE, || knows(&store, "from_v2")).await;
    assert!(!knows(&store, "from_v1"));
    assert_eq!(store.last_error(), None);
}

#[tokio::test]
async fn invalid_write_keeps_the_old_snapshot_until_a_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consentry.toml");
    std::fs::write(&path, config("good")).unwrap();
    let (store, _watcher) = start(&path);

    save(&path, &config_with("bad", "analitics", "127.0.0.1:0", ""));
    wait_for("the failed reload", PATIENCE, || store.reloads_failed() == 1).await;
    let error = store.last_error().expect("the failure is recorded");
    // The cookie rule's category is on line 13, column 12 of the template.
    let expected = format!("{}:13:12: unknown category \"analitics\"", path.display());
    assert!(error.starts_with(&expected), "{error}");
    assert!(knows(&store, "good"), "the old policy keeps serving");
    assert!(!knows(&store, "bad"));
    assert_eq!(store.load().generation, 1);

    save(&path, &config("fixed"));
    wait_for("the fixed file", PATIENCE, || knows(&store, "fixed")).await;
    assert_eq!(store.last_error(), None, "a good reload clears the error");
    assert_eq!(store.load().generation, 2, "failures do not use up generations");
}

#[tokio::test]
async fn a_burst_of_writes_ends_in_the_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consentry.toml");
    std::fs::write(&path, config("start")).unwrap();
    let (store, _watcher) = start(&path);

    for i in 0..30 {
        std::fs::write(&path, config(&format!("burst_{i}"))).unwrap();
    }
    wait_for("the last write of the burst", PATIENCE, || knows(&store, "burst_29")).await;
    // Thirty writes in a few milliseconds are far fewer reloads (the exact
    // count is a matter of scheduling; the debouncer's own unit tests pin
    // its behaviour with a paused clock).
    assert!(store.reloads_ok() < 30, "{} reloads", store.reloads_ok());
}

#[tokio::test]
async fn unrelated_files_in_the_directory_do_not_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consentry.toml");
    std::fs::write(&path, config("one")).unwrap();
    let (store, watcher) = start(&path);

    // The first burst always reloads (nothing says what the initial load
    // read); get it out of the way with a real change.
    save(&path, &config("two"));
    wait_for("the change", PATIENCE, || knows(&store, "two")).await;
    let generation = store.load().generation;
    let checks = watcher.checks();

    std::fs::write(dir.path().join("access.log"), "GET / 200\n").unwrap();
    wait_for("the watcher to look at the log write", PATIENCE, || watcher.checks() > checks).await;
    assert_eq!(store.load().generation, generation, "an unrelated file is not a new configuration");
    assert_eq!(store.reloads_failed(), 0);
}

#[tokio::test]
async fn user_presets_are_read_and_watched() {
    let dir = tempfile::tempdir().unwrap();
    let presets = dir.path().join("presets");
    std::fs::create_dir(&presets).unwrap();
    let path = dir.path().join("consentry.toml");
    let text = config_with("x", "analytics", "127.0.0.1:0", "[presets]\ndir = \"presets\"\n")
        .replace("[policy.default]\n", "[policy.default]\npresets = [\"inhouse\"]\n");
    let preset = |cookie: &str| {
        format!(
            "provider = \"In-house\"\nsources = [\"internal\"]\n[[cookie]]\nname = \"{cookie}\"\ncategory = \"functional\"\n"
        )
    };
    std::fs::write(presets.join("inhouse.toml"), preset("house_v1")).unwrap();
    std::fs::write(&path, &text).unwrap();
    let (store, _watcher) = start(&path);
    assert!(knows(&store, "house_v1"));
    assert!(store.load().files.contains(&presets), "the directory itself is watched");

    save(&presets.join("inhouse.toml"), &preset("house_v2"));
    wait_for("the edited preset", PATIENCE, || knows(&store, "house_v2")).await;
    assert!(!knows(&store, "house_v1"));

    // A broken preset is an error located in the preset file.
    std::fs::write(presets.join("inhouse.toml"), "provider = \"In-house\"\n[[cookie]]\nname = \"y\"\n")
        .unwrap();
    wait_for("the broken preset", PATIENCE, || store.reloads_failed() >= 1).await;
    let error = store.last_error().unwrap();
    assert!(error.contains("inhouse.toml:2:1: missing field `category`"), "{error}");
    assert!(knows(&store, "house_v2"));
}

/// The presets directory swapped wholesale (a new directory renamed over
/// the old one): the old watch followed the old inode, so the watcher must
/// watch the new one to see later edits in it.
#[tokio::test]
async fn a_replaced_presets_directory_is_watched_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let presets = dir.path().join("presets");
    std::fs::create_dir(&presets).unwrap();
    let preset = |cookie: &str| {
        format!("provider = \"P\"\n[[cookie]]\nname = \"{cookie}\"\ncategory = \"functional\"\n")
    };
    std::fs::write(presets.join("p.toml"), preset("one")).unwrap();
    let path = dir.path().join("consentry.toml");
    let text = config_with("x", "analytics", "127.0.0.1:0", "[presets]\ndir = \"presets\"\n")
        .replace("[policy.default]\n", "[policy.default]\npresets = [\"p\"]\n");
    std::fs::write(&path, &text).unwrap();
    let (store, _watcher) = start(&path);
    assert!(knows(&store, "one"));

    let fresh = dir.path().join("presets.new");
    std::fs::create_dir(&fresh).unwrap();
    std::fs::write(fresh.join("p.toml"), preset("two")).unwrap();
    std::fs::remove_dir_all(&presets).unwrap();
    std::fs::rename(&fresh, &presets).unwrap();
    wait_for("the swapped directory", PATIENCE, || knows(&store, "two")).await;

    // An edit inside the new directory is seen too.
    save(&presets.join("p.toml"), &preset("three"));
    wait_for("an edit in the new directory", PATIENCE, || knows(&store, "three")).await;
}

#[tokio::test]
async fn listener_changes_need_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consentry.toml");
    std::fs::write(&path, config("a")).unwrap();
    let (store, _watcher) = start(&path);
    let bound = store.load().listen.clone();

    save(&path, &config_with("b", "analytics", "127.0.0.1:8081", ""));
    wait_for("the new rules", PATIENCE, || knows(&store, "b")).await;
    assert_eq!(store.load().listen, bound, "the snapshot keeps the addresses actually bound");
    let why = store.restart_needed().expect("a restart is asked for");
    assert_eq!(why, "http 127.0.0.1:0 → 127.0.0.1:8081");

    save(&path, &config("c"));
    wait_for("the reverted file", PATIENCE, || knows(&store, "c")).await;
    assert_eq!(store.restart_needed(), None);
}

#[test]
fn reload_now_is_the_same_path_without_a_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consentry.toml");
    std::fs::write(&path, config("a")).unwrap();
    let store = Store::new(Snapshot::load(&path, 1).unwrap());
    std::fs::write(&path, config("b")).unwrap();
    assert_eq!(reload::reload_now(&store, &path), Ok(2));
    assert!(knows(&store, "b"));
    std::fs::write(&path, "[listen\n").unwrap();
    let error = reload::reload_now(&store, &path).unwrap_err();
    assert!(error.starts_with(&format!("{}:1:", path.display())), "{error}");
    assert_eq!((store.reloads_ok(), store.reloads_failed()), (1, 1));
    std::fs::remove_file(&path).unwrap();
    let error = reload::reload_now(&store, &path).unwrap_err();
    assert!(error.contains("cannot read"), "{error}");
    assert!(knows(&store, "b"));
    assert!(reload::reload_now(&store, &PathBuf::from("/nonexistent/c.toml")).is_err());
}

/// The issue's scenario: 50 writes alternating valid and invalid while a
/// reader keeps loading snapshots. The reader must never see a policy that
/// is missing, empty or older than one it saw before; each valid write must
/// be serving within 1 s, and each invalid one must leave the last valid
/// one serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_alternating_writes_under_a_reader() {
    const WITHIN: Duration = Duration::from_secs(1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consentry.toml");
    std::fs::write(&path, config("v_start")).unwrap();
    let (store, _watcher) = start(&path);

    let stop = Arc::new(AtomicBool::new(false));
    let loads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (store, stop, loads) = (store.clone(), stop.clone(), loads.clone());
        std::thread::spawn(move || {
            let mut last_generation = 0;
            let mut problems = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let snapshot = store.load();
                let Some(policy) = snapshot.policies.get("default") else {
                    problems.push(format!("generation {}: no policy", snapshot.generation));
                    continue;
                };
                if policy.cookies.rules().is_empty() {
                    problems.push(format!("generation {}: empty policy", snapshot.generation));
                }
                if snapshot.router.route("www.example.com").is_none() {
                    problems.push(format!("generation {}: site missing", snapshot.generation));
                }
                if snapshot.generation < last_generation {
                    problems.push(format!("generation went back to {}", snapshot.generation));
                }
                last_generation = snapshot.generation;
                loads.fetch_add(1, Ordering::Relaxed);
            }
            problems
        })
    };

    let mut serving = "v_start".to_string();
    for i in 0..50 {
        if i % 2 == 0 {
            let marker = format!("v_{i}");
            save(&path, &config(&marker));
            wait_for(&format!("valid write {i}"), WITHIN, || knows(&store, &marker)).await;
            serving = marker;
        } else {
            let failed = store.reloads_failed();
            save(&path, &config_with(&format!("bad_{i}"), "no-such-category", "127.0.0.1:0", ""));
            wait_for(&format!("invalid write {i}"), WITHIN, || store.reloads_failed() > failed).await;
            assert!(knows(&store, &serving), "write {i}: the last valid policy must keep serving");
            assert!(store.last_error().is_some());
        }
    }
    stop.store(true, Ordering::Relaxed);
    let problems = reader.join().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert!(loads.load(Ordering::Relaxed) > 50, "the reader ran throughout");
    assert_eq!(store.reloads_ok(), 25);
    assert_eq!(store.reloads_failed(), 25);
    assert_eq!(store.load().generation, 26);
}
