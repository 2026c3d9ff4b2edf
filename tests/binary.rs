//! The built `consentry` binary: memory stays flat while a large body
//! streams both ways, SIGTERM drains and exits 0, and the CLI commands
//! that do not serve (`check`, `cert`, `--version`).

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use http::StatusCode;
use http_body_util::BodyExt as _;

const MIB: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_body_streams_both_ways_in_flat_memory() {
    within(async {
        let origin = origin()
            .route_fn("/mirror", |request| async move {
                http::Response::new(consentry::body::boxed(request.into_body()))
            })
            .run()
            .await;
        let proxy = proxy().origin(&origin).spawn_binary();
        let mut client = Client::http1(proxy.http, HOST).await;

        // Warm up (allocator arenas, pools, TLS-free first request paths).
        let warm = client.request(http::Method::POST, "/mirror").body(pattern_body(8 * MIB)).unwrap();
        assert_eq!(client.fetch(warm).await.body.len() as u64, 8 * MIB);
        let baseline = proxy.rss();

        // Sample the proxy's RSS while the transfer runs.
        let peak = Arc::new(AtomicU64::new(baseline));
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, done, pid) = (peak.clone(), done.clone(), proxy.pid());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_of(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };

        let total = 200 * MIB;
        let request = client.request(http::Method::POST, "/mirror").body(pattern_body(total)).unwrap();
        let response = client.send(request).await;
        assert_eq!(response.status(), StatusCode::OK);
        let pattern = pattern_chunk();
        let mut body = response.into_body();
        let mut received: u64 = 0;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.unwrap().into_data() else { continue };
            // Every byte is where it should be.
            let mut offset = usize::try_from(received % pattern.len() as u64).unwrap();
            let mut rest = &data[..];
            while !rest.is_empty() {
                let n = rest.len().min(pattern.len() - offset);
                assert_eq!(&rest[..n], &pattern[offset..offset + n], "corrupt at byte {received}");
                rest = &rest[n..];
                offset = 0;
                received += n as u64;
            }
        }
        done.store(true, Ordering::Relaxed);
        sampler.join().unwrap();
        assert_eq!(received, total);
        let growth = peak.load(Ordering::Relaxed).saturating_sub(baseline);
        println!(
            "proxy RSS: baseline {} KiB, peak {} KiB, growth {} KiB over {} MiB each way",
            baseline / 1024,
            peak.load(Ordering::Relaxed) / 1024,
            growth / 1024,
            total / MIB
        );
        assert!(growth < 32 * MIB, "RSS grew by {} MiB", growth / MIB);
    })
    .await;
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    within(async {
        let (release, released) = tokio::sync::watch::channel(false);
        let arrived = Arc::new(tokio::sync::Notify::new());
        let origin_arrived = arrived.clone();
        let origin = origin()
            .route_fn("/slow", move |_| {
                let mut released = released.clone();
                origin_arrived.notify_one();
                async move {
                    // Headers only once released: the request is in flight at SIGTERM.
                    let _ = released.wait_for(|go| *go).await;
                    http::Response::new(consentry::body::full("finished"))
                }
            })
            .run()
            .await;
        let mut proxy = proxy().origin(&origin).limit("shutdown_grace", "\"30s\"").spawn_binary();
        let mut client = Client::http1(proxy.http, HOST).await;
        let request = client.request(http::Method::GET, "/slow").body(consentry::body::empty()).unwrap();
        let in_flight = tokio::spawn(async move { client.fetch(request).await });

        // The request is at the origin, so in flight in the proxy.
        arrived.notified().await;
        proxy.signal("TERM");
        // Wait for the proxy to start draining, then let the origin answer.
        while !proxy.lines.lock().unwrap().iter().any(|l| l.contains("shutting down")) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        release.send(true).unwrap();
        let response = in_flight.await.unwrap();
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.text(), "finished");
        let status = tokio::task::spawn_blocking(move || proxy.wait()).await.unwrap();
        assert_eq!(status.code(), Some(0), "{status:?}");
    })
    .await;
}

#[tokio::test]
async fn the_access_log_is_json_with_one_line_per_request() {
    within(async {
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).spawn_binary();
        let mut client = Client::http1(proxy.http, HOST).await;
        assert_eq!(client.get("/echo?secret=1").await.status, StatusCode::OK);
        let mut client = Client::http1(proxy.http, "unknown.test").await;
        assert_eq!(client.get("/nowhere").await.status, StatusCode::MISDIRECTED_REQUEST);
        // The line is written when the body is done: wait for both.
        let lines = loop {
            let lines: Vec<serde_json::Value> = proxy
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|j| j["target"] == "consentry::access")
                .collect();
            if lines.len() >= 2 {
                break lines;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(lines.len(), 2, "{lines:?}");
        let ok = &lines[0];
        assert_eq!(ok["method"], "GET");
        assert_eq!(ok["host"], HOST);
        assert_eq!(ok["path"], "/echo", "no query string in the log");
        assert_eq!(ok["status"], 200);
        assert!(ok["bytes"].as_u64().unwrap() > 0);
        assert!(ok["duration_ms"].is_number() && ok["origin_ms"].is_number());
        assert_eq!(ok["site"], "test");
        assert_eq!(ok["request_id"].as_str().unwrap().len(), 32);
        let refused = &lines[1];
        assert_eq!(refused["status"], 421);
        assert!(refused["origin_ms"].is_null(), "no origin was asked");
    })
    .await;
}

#[tokio::test]
async fn the_demo_serves_the_sample_site_through_the_proxy() {
    within(async {
        // The demo binds the fixed ports of its config: pick free ones.
        let ports = free_ports(2).await;
        let (proxy_port, origin_port) = (ports[0].port(), ports[1].port());
        let text = consentry::demo::DEMO_CONFIG
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{proxy_port}"))
            .replace("127.0.0.1:8081", &format!("127.0.0.1:{origin_port}"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.toml");
        std::fs::write(&path, text).unwrap();
        let mut demo = Binary::start(&["demo", "--config", path.to_str().unwrap()], dir);
        assert_eq!(demo.http.port(), proxy_port);
        // It prints the URL to open (once the proxy listens, so it is there by now).
        let open = format!("open        http://localhost:{proxy_port}/");
        while !demo.lines.lock().unwrap().iter().any(|l| l.contains(&open)) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut client = Client::http1(demo.http, "localhost").await;
        let page = client.get("/").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text().contains("Acme Hardware"));
        let echo = client.get("/echo").await.echo();
        assert_eq!(echo.one("via"), "1.1 consentry");
        demo.signal("INT");
        let status = tokio::task::spawn_blocking(move || demo.wait()).await.unwrap();
        assert_eq!(status.code(), Some(0));
    })
    .await;
}

fn consentry(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_consentry")).args(args).output().unwrap()
}

#[test]
fn check_reports_every_error_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[listen]\nhttp = \"nowhere\"\n\n[[site]]\nhosts = [\"a.test\"]\norigin = \"ftp://x\"\npolicy = \"missing\"\n\
         ca_file = \"no-such-ca.pem\"\n\n[limits]\nmax_header_bytes = 1024\n\n[log]\nformat = \"xml\"\n",
    )
    .unwrap();
    let output = consentry(&["check", "--config", path.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let shown = path.display().to_string();
    assert!(stderr.contains(&format!("{shown}:2:8: bad listen address")), "{stderr}");
    assert!(stderr.contains(&format!("{shown}:6:10: origin URL")), "{stderr}");
    assert!(stderr.contains(&format!("{shown}:7:10: unknown policy")), "{stderr}");
    assert!(stderr.contains(&format!("{shown}:8:11: cannot read CA file")), "{stderr}");
    assert!(stderr.contains("max_header_bytes must be at least 8192"), "{stderr}");
    assert!(stderr.contains("log.format must be"), "{stderr}");
}

#[test]
fn the_shipped_configs_pass_check() {
    for config in ["config/consentry.toml", "config/demo.toml"] {
        let output = consentry(&["check", "--config", config]);
        assert!(output.status.success(), "{config}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

#[test]
fn cert_writes_a_usable_pair() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let output =
        consentry(&["cert", "--host", "localhost", "--host", "dev.test", "--out", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let spec = consentry::snapshot::CertSpec {
        cert: out.join("localhost.pem"),
        key: out.join("localhost-key.pem"),
        hosts: Vec::new(),
    };
    let store = consentry::tls::CertStore::load(&[spec]).unwrap();
    assert_eq!(store.names()[0], vec!["localhost", "dev.test"]);
}

#[test]
fn version_names_the_git_revision() {
    let output = consentry(&["--version"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with(&format!("consentry {} (", env!("CARGO_PKG_VERSION"))), "{text}");
}

#[test]
fn a_banner_in_report_only_mode_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consentry.toml");
    let base = "[listen]\nhttp = \"127.0.0.1:0\"\n\n[[site]]\nhosts = [\"a.test\"]\norigin = \"http://127.0.0.1:9\"\npolicy = \"p\"\n\n[policy.p]\n";
    let check = |mode: &str| {
        let text = format!(
            "{base}mode = \"{mode}\"\n[policy.p.consent]\nhmac_key = \"0123456789abcdef0123456789abcdef\"\n[policy.p.banner]\nenabled = true\n"
        );
        std::fs::write(&path, text).unwrap();
        let output = consentry(&["check", "--config", path.to_str().unwrap()]);
        assert!(output.status.success(), "a warning is not an error");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = check("report-only");
    assert!(
        stderr.contains("warning: policy p: banner.enabled has no effect in report-only mode"),
        "{stderr}"
    );
    let stderr = check("enforce");
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn an_unsigned_consent_cookie_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consentry.toml");
    let base = "[listen]\nhttp = \"127.0.0.1:0\"\n\n[[site]]\nhosts = [\"a.test\"]\norigin = \"http://127.0.0.1:9\"\npolicy = \"p\"\n\n[policy.p]\n";
    std::fs::write(&path, base).unwrap();
    let output = consentry(&["check", "--config", path.to_str().unwrap()]);
    assert!(output.status.success(), "a warning is not an error");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("warning: policy p: the consent cookie \"consentry\" is not signed"), "{stderr}");
    // Signed: no warning.
    std::fs::write(
        &path,
        format!("{base}[policy.p.consent]\nhmac_key = \"0123456789abcdef0123456789abcdef\"\n"),
    )
    .unwrap();
    let output = consentry(&["check", "--config", path.to_str().unwrap()]);
    assert!(output.status.success());
    assert!(!String::from_utf8_lossy(&output.stderr).contains("warning"), "{output:?}");
    // Another consent manager's cookie: consentry signs nothing, no warning.
    std::fs::write(&path, format!("{base}[policy.p.consent]\nformat = \"klaro\"\n")).unwrap();
    let output = consentry(&["check", "--config", path.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&output.stderr).contains("warning"), "{output:?}");
}

#[test]
fn run_logs_the_unsigned_cookie_warning_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("consentry.toml"),
        "[listen]\nhttp = \"127.0.0.1:0\"\n\n[[site]]\nhosts = [\"a.test\"]\norigin = \"http://127.0.0.1:9\"\npolicy = \"p\"\n\n[policy.p]\n",
    )
    .unwrap();
    let config = dir.path().join("consentry.toml");
    let binary = Binary::start(&["run", "--config", config.to_str().unwrap()], dir);
    let lines = binary.lines.lock().unwrap().clone();
    let warning = lines.iter().find(|l| l.contains("is not signed")).unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(warning.contains("\"level\":\"WARN\""), "{warning}");
}
