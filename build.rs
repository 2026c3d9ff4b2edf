//! Embeds the built-in presets (`config/presets/*.toml`) and the git
//! revision into the binary.
//!
//! Presets stay data files in the repository; this script only lists them so
//! that `include_str!` picks up every file without a hand-kept list.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new("config/presets");
    println!("cargo:rerun-if-changed=config/presets");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".toml"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::from(
        "/// Built-in presets: (file stem, TOML text).\npub static BUILTIN: &[(&str, &str)] = &[\n",
    );
    for name in &names {
        println!("cargo:rerun-if-changed=config/presets/{name}");
        let stem = name.trim_end_matches(".toml");
        let path = std::fs::canonicalize(dir.join(name)).expect("preset path");
        writeln!(out, "    ({stem:?}, include_str!({:?})),", path.display().to_string()).unwrap();
    }
    out.push_str("];\n");
    let out_dir = std::env::var("OUT_DIR").expect("OUT_DIR");
    std::fs::write(Path::new(&out_dir).join("presets.rs"), out).expect("write presets.rs");

    // `consentry --version` names the commit it was built from.
    let rev = revision();
    println!("cargo:rustc-env=CONSENTRY_GIT_REV={rev}");
}

/// The revision to show: `CONSENTRY_GIT_REV` when set (a Docker build,
/// whose context leaves `.git` out, passes it as a build argument), else
/// `git rev-parse --short=12 HEAD`, else `unknown` (a source tarball). Never
/// fails the build.
fn revision() -> String {
    println!("cargo:rerun-if-env-changed=CONSENTRY_GIT_REV");
    // Empty counts as unset: the Dockerfile's build argument defaults to "".
    if let Ok(value) = std::env::var("CONSENTRY_GIT_REV")
        && !value.trim().is_empty()
    {
        let value = value.trim();
        // It lands in `--version` output: one short printable token.
        if value.len() <= 64 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b)) {
            return value.to_string();
        }
        println!("cargo:warning=ignoring CONSENTRY_GIT_REV={value:?}: expected a short revision");
    }
    let Some(rev) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".to_string();
    };
    // Rerun when HEAD moves. Ask git where its files are (a worktree keeps
    // HEAD in .git/worktrees/NAME/ and refs in the main repository) and
    // name only paths that exist: Cargo reruns a build script on every
    // build while a watched path is missing.
    for name in ["HEAD", "refs/heads", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", name])
            && Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    rev
}

/// The trimmed output of a successful git command, if git is there.
fn git(args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}
