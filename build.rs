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
    let rev = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=CONSENTRY_GIT_REV={rev}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
