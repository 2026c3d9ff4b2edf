//! The config loader: TOML text → parsed file → compiled `Snapshot` (every
//! policy with its presets, sites, routes), through the same public entry
//! point `consentry run` and `consentry check` use.
//!
//! Invariants: no panic; an error carries a line and column inside the
//! text (or 0:0 for the file as a whole).
//!
//! Files the config names (certificates, CA bundles, a presets directory)
//! are read from disk by the loader; inputs that name one are only parsed,
//! not compiled, so that the fuzzer does not wander the filesystem (or
//! block on a FIFO such as /dev/stdin).
#![no_main]

use std::path::PathBuf;

use consentry::config::Source;
use consentry::snapshot::Snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let source = Source { path: PathBuf::from("/nonexistent/consentry-fuzz/consentry.toml"), text: text.to_string() };
    let lines = text.split('\n').count();
    let check = |e: &consentry::config::ConfigError| {
        assert!(e.line <= lines, "error line {} past the end ({lines} lines): {e}", e.line);
        assert!(!e.message.is_empty());
        let _ = e.to_string();
    };
    let file = match source.parse() {
        Ok(f) => f,
        Err(e) => return check(&e),
    };
    let names_files = file.presets.dir.is_some()
        || file.listen.cert.is_some()
        || file.listen.key.is_some()
        || !file.listen.certificate.is_empty()
        || file.site.iter().any(|s| s.get_ref().ca_file.is_some());
    if names_files {
        return;
    }
    match Snapshot::compile(&source, 1) {
        Ok(snapshot) => {
            for site in snapshot.router.sites() {
                let _ = snapshot.router.route(&site.hosts.first().cloned().unwrap_or_default());
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            errors.iter().for_each(check);
        }
    }
});
