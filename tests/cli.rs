//! The CLI commands not covered by `tests/binary.rs`: `--help` names every
//! command the issues ask for, and `consentry explain` run as a binary
//! prints each item's decision, category and rule, and exits non-zero on
//! an unknown host or a broken config.

use std::process::{Command, Output};

fn consentry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_consentry")).args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.toml");

#[test]
fn help_lists_the_commands() {
    let output = consentry(&["--help"]);
    assert!(output.status.success());
    let text = stdout(&output);
    for command in ["run", "check", "explain", "demo", "cert"] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "{command}:\n{text}"
        );
    }
    assert!(text.contains("--version") && text.contains("--log-format"), "{text}");
    for command in ["run", "check", "explain", "cert"] {
        let output = consentry(&[command, "--help"]);
        assert!(output.status.success(), "{command} --help");
    }
    assert!(stdout(&consentry(&["run", "--help"])).contains("config/consentry.toml"));
    assert!(!consentry(&["no-such-command"]).status.success());
}

/// One line of a section of explain's output, split on whitespace.
fn row(out: &str, section: &str, name: &str) -> Vec<String> {
    let mut in_section = false;
    for line in out.lines() {
        if !line.starts_with(' ') {
            in_section = line.starts_with(section);
            continue;
        }
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        if in_section && words.get(1).map(String::as_str) == Some(name) {
            return words;
        }
    }
    panic!("no {name} in {section}:\n{out}")
}

#[test]
fn explain_prints_every_item_with_its_decision_category_and_rule() {
    let consent = consentry::consent::encode(&["analytics"], 1, std::time::SystemTime::now(), None);
    let output = consentry(&[
        "explain",
        "--config",
        DEMO,
        "--host",
        "localhost:8080",
        "--cookie",
        &format!("consentry={consent}; _ga=GA1.1.1; sessionid=1; legacy_visitor=42"),
        "--gpc",
        "--set-cookie",
        "_fbp=fb.1; Max-Age=100",
        "--set-cookie",
        "_ga=GA1.1.1; Max-Age=63072000",
        "--resource",
        "https://connect.facebook.net/en_US/fbevents.js",
        "--resource",
        "https://www.googletagmanager.com/gtag/js?id=G-1",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let out = stdout(&output);
    assert!(out.starts_with("site     localhost"), "{out}");
    assert!(out.contains("granted: necessary,analytics"), "{out}");
    assert_eq!(row(&out, "request cookies", "_ga")[..3], ["keep", "_ga", "analytics"]);
    assert_eq!(row(&out, "request cookies", "sessionid")[..3], ["keep", "sessionid", "necessary"]);
    let unknown = row(&out, "request cookies", "legacy_visitor");
    assert_eq!(unknown[0], "remove", "{out}");
    assert!(unknown.join(" ").contains("unknown_cookies"), "the default that decided: {out}");
    assert_eq!(row(&out, "set-cookie", "_fbp")[..3], ["block", "_fbp", "advertising"]);
    // Over the 395-day analytics cap: capped, and the rule named.
    let ga = row(&out, "set-cookie", "_ga");
    assert_eq!(ga[0], "cap", "{out}");
    assert!(ga.join(" ").contains("preset google-analytics"), "{out}");
    let fb = row(&out, "resources", "https://connect.facebook.net/en_US/fbevents.js");
    assert_eq!(fb[0], "block", "{out}");
    assert!(fb.join(" ").contains("(preset meta-pixel)"), "{out}");
    assert_eq!(
        row(&out, "resources", "https://www.googletagmanager.com/gtag/js?id=G-1")[0],
        "allow",
        "{out}"
    );

    // An unknown host and a broken config: non-zero, and why on stderr.
    let output = consentry(&["explain", "--config", DEMO, "--host", "elsewhere.test"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no site for host \"elsewhere.test\""));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[listen]\nhttp = \"nowhere\"\n").unwrap();
    let output = consentry(&["explain", "--config", bad.to_str().unwrap(), "--host", "localhost"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("{}:2:8:", bad.display())), "{stderr}");
}

/// The consentry cookie's HMAC key from the environment
/// (`hmac_key_env`): a value signed with it grants, one signed with
/// another key or unsigned grants nothing.
#[test]
fn the_hmac_key_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("consentry.toml");
    std::fs::write(
        &config,
        "[listen]\nhttp = \"127.0.0.1:0\"\n\n[[site]]\nhosts = [\"shop.test\"]\norigin = \"http://127.0.0.1:9\"\n\
         policy = \"p\"\n\n[policy.p]\n[policy.p.consent]\nhmac_key_env = \"CONSENTRY_TEST_HMAC_KEY\"\n",
    )
    .unwrap();
    let now = std::time::SystemTime::now();
    let explain = |cookie: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_consentry"))
            .args([
                "explain",
                "--config",
                config.to_str().unwrap(),
                "--host",
                "shop.test",
                "--cookie",
                cookie,
            ])
            .env("CONSENTRY_TEST_HMAC_KEY", "from-the-environment")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        stdout(&output)
    };
    let signed = consentry::consent::encode(&["analytics"], 0, now, Some(b"from-the-environment"));
    assert!(explain(&format!("consentry={signed}")).contains("granted: necessary,analytics"));
    let forged = consentry::consent::encode(&["analytics"], 0, now, Some(b"another-key"));
    let unsigned = consentry::consent::encode(&["analytics"], 0, now, None);
    for cookie in [forged, unsigned] {
        let out = explain(&format!("consentry={cookie}"));
        assert!(out.contains("granted: necessary\n"), "{out}");
    }
    // Without the variable the config does not load.
    let output = Command::new(env!("CARGO_BIN_EXE_consentry"))
        .args(["check", "--config", config.to_str().unwrap()])
        .env_remove("CONSENTRY_TEST_HMAC_KEY")
        .output()
        .unwrap();
    assert!(!output.status.success());
}
