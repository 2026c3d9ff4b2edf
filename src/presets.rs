//! Built-in rule sets for well-known services (`presets = ["hubspot"]`).
//!
//! Each preset is a data file in `config/presets/NAME.toml`, written from
//! public facts (cookie names, hosts, category, provider, purpose, usual
//! lifetime) and embedded in the binary at build time by `build.rs`. A policy
//! may also name a directory of its own presets (`presets_dir`), which is
//! read from disk and watched for changes like the config itself.
//!
//! A preset file has the same `[[cookie]]` and `[[resource]]` tables as a
//! policy, plus a `provider` used when a rule names none.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_spanned::Spanned;

use crate::config::{ConfigError, CookieRule, ResourceRule, Source};

mod generated {
    include!(concat!(env!("OUT_DIR"), "/presets.rs"));
}

/// One preset file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// Who provides the service (`Google Analytics 4`).
    pub provider: String,
    /// What the service is, for the declaration.
    #[serde(default)]
    pub description: String,
    /// Public documentation the facts were taken from.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Cookie rules.
    #[serde(default)]
    pub cookie: Vec<Spanned<CookieRule>>,
    /// Resource rules.
    #[serde(default)]
    pub resource: Vec<Spanned<ResourceRule>>,
}

/// A parsed preset with the source it came from (for error locations).
#[derive(Debug, Clone)]
pub struct LoadedPreset {
    /// File stem: the name policies use.
    pub name: String,
    /// Its text and path (`<builtin>/NAME.toml` for embedded ones).
    pub source: Source,
    /// Its rules.
    pub preset: Preset,
}

/// The presets a configuration can name: the built-in ones, then those of
/// an optional directory (which may override a built-in of the same name).
#[derive(Debug, Clone, Default)]
pub struct Presets {
    by_name: BTreeMap<String, LoadedPreset>,
    /// Files read from disk, to watch for changes.
    pub files: Vec<PathBuf>,
}

impl Presets {
    /// The built-in presets only. They are parsed once per process (they
    /// are part of the binary and cannot change) and cloned from then on.
    pub fn builtin() -> Result<Presets, ConfigError> {
        static BUILTIN: OnceLock<Result<Presets, ConfigError>> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                let mut presets = Presets::default();
                for (name, text) in generated::BUILTIN {
                    let source = Source {
                        path: PathBuf::from(format!("<builtin>/config/presets/{name}.toml")),
                        text: (*text).to_string(),
                    };
                    presets.add(name, source)?;
                }
                Ok(presets)
            })
            .clone()
    }

    /// The built-in presets plus every `*.toml` file in `dir`.
    pub fn with_dir(dir: &Path) -> Result<Presets, ConfigError> {
        let mut presets = Presets::builtin()?;
        let entries = std::fs::read_dir(dir).map_err(|e| ConfigError {
            file: dir.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read presets directory: {e}"),
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let source = Source::read(&path)?;
            presets.add(&name, source)?;
            presets.files.push(path);
        }
        Ok(presets)
    }

    fn add(&mut self, name: &str, source: Source) -> Result<(), ConfigError> {
        let preset: Preset = toml::from_str(&source.text).map_err(|e| {
            let message = e.message().trim().to_string();
            match e.span() {
                Some(span) => source.error_at(span, message),
                None => source.error(message),
            }
        })?;
        self.by_name.insert(name.to_string(), LoadedPreset { name: name.to_string(), source, preset });
        Ok(())
    }

    /// The preset with this name.
    pub fn get(&self, name: &str) -> Option<&LoadedPreset> {
        self.by_name.get(name)
    }

    /// Every preset, by name.
    pub fn iter(&self) -> impl Iterator<Item = &LoadedPreset> {
        self.by_name.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_presets_parse() {
        let presets = Presets::builtin().unwrap();
        for p in presets.iter() {
            assert!(!p.preset.provider.is_empty(), "{} has no provider", p.name);
        }
    }
}
