//! The configuration file as written: serde types for `consentry.toml`.
//!
//! This is the first of two layers. These types mirror the TOML one to one
//! (unknown keys are errors) and keep the source span of every value that a
//! later check may reject, so that [`crate::policy::compile`] can say
//! `config/consentry.toml:42:12: unknown category "analitics"`.
//! The second layer, the compiled [`crate::snapshot::Snapshot`], is what the
//! proxy reads.
//!
//! Every key is documented in `docs/configuration.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_spanned::Spanned;

/// A configuration error with the place in the file that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (as given on the command line or in an `include`).
    pub file: PathBuf,
    /// 1-based line, or 0 when the error is about the file as a whole.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.column, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// A loaded file: its path, its text (to turn spans into line:column) and
/// the parsed document.
#[derive(Debug, Clone)]
pub struct Source {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its full text.
    pub text: String,
}

impl Source {
    /// Reads a file.
    pub fn read(path: &Path) -> Result<Source, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        })?;
        Ok(Source { path: path.to_path_buf(), text })
    }

    /// An error at a byte span of this file.
    pub fn error_at(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_column(&self.text, span.start);
        ConfigError { file: self.path.clone(), line, column, message: message.into() }
    }

    /// An error about the file as a whole.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError { file: self.path.clone(), line: 0, column: 0, message: message.into() }
    }

    /// Parses the text as a consentry configuration.
    pub fn parse(&self) -> Result<File, ConfigError> {
        toml::from_str::<File>(&self.text).map_err(|e| {
            let message = e.message().trim().to_string();
            match e.span() {
                Some(span) => self.error_at(span, message),
                None => self.error(message),
            }
        })
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Listening sockets.
    #[serde(default)]
    pub listen: Listen,
    /// Timeouts and size limits.
    #[serde(default)]
    pub limits: Limits,
    /// The admin API.
    #[serde(default)]
    pub admin: Admin,
    /// Logging.
    #[serde(default)]
    pub log: Log,
    /// The decision audit log.
    #[serde(default)]
    pub audit: Audit,
    /// Proof-of-consent receipts written by the consent endpoint.
    #[serde(default)]
    pub receipts: Receipts,
    /// The sites consentry fronts.
    #[serde(default)]
    pub site: Vec<Spanned<Site>>,
    /// Named policies.
    #[serde(default)]
    pub policy: BTreeMap<String, Spanned<Policy>>,
    /// Where user presets live, besides the built-in ones.
    #[serde(default)]
    pub presets: PresetsDir,
}

/// `[presets]`: a directory of user presets (`NAME.toml`, same shape as
/// the built-in ones), read from disk and watched like the config itself.
/// A user preset with the name of a built-in one replaces it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetsDir {
    /// The directory, relative to the config file's directory.
    pub dir: Option<Spanned<PathBuf>>,
}

/// `[listen]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// Plain HTTP address (`0.0.0.0:8080`).
    pub http: Option<Spanned<String>>,
    /// HTTPS address; needs at least one certificate.
    pub https: Option<Spanned<String>>,
    /// Shorthand for a single certificate: PEM chain.
    pub cert: Option<Spanned<PathBuf>>,
    /// Shorthand for a single certificate: PEM private key.
    pub key: Option<Spanned<PathBuf>>,
    /// Several certificates, chosen by SNI.
    #[serde(default)]
    pub certificate: Vec<Spanned<Certificate>>,
    /// Maximum HTTP/2 concurrent streams per connection.
    pub h2_max_concurrent_streams: Option<u32>,
    /// Load balancers in front of consentry (`10.0.0.0/8`, `192.0.2.1`):
    /// from these peers only, `X-Forwarded-Proto` and `X-Forwarded-For`
    /// say whether the visitor used HTTPS and who the visitor is.
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
}

/// `[[listen.certificate]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Server names it answers for; default: the names in the certificate.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// `[limits]`: every timeout and size limit, with the defaults a public
/// facing proxy should have.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Time allowed to receive a request's header section.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Longest wait for the next piece of a request body (beyond: 408).
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Longest a response write to a client may stall (a client that reads
    /// nothing); beyond, the connection is closed.
    #[serde(with = "humantime_serde")]
    pub send_timeout: Duration,
    /// Idle keep-alive connections are closed after this.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Largest request header section in bytes (beyond: 431).
    pub max_header_bytes: usize,
    /// Most request header fields (beyond: 431).
    pub max_headers: usize,
    /// Most simultaneous client connections.
    pub max_connections: usize,
    /// Time allowed to connect to an origin (beyond: 502).
    #[serde(with = "humantime_serde")]
    pub origin_connect_timeout: Duration,
    /// Time allowed for the origin's response headers (beyond: 504): from
    /// the request's start, or for a request with a body from its last
    /// frame sent to the origin.
    #[serde(with = "humantime_serde")]
    pub origin_response_timeout: Duration,
    /// Idle pooled origin connections are closed after this.
    #[serde(with = "humantime_serde")]
    pub origin_idle_timeout: Duration,
    /// How long in-flight requests may run after SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Largest decoded size of a compressed HTML body that is rewritten;
    /// beyond it the rest passes through untouched.
    pub max_decoded_body: u64,
    /// Most inventory entries (cookies and third-party hosts) kept per site;
    /// sightings beyond it are counted, not stored.
    pub max_inventory_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_connections: 10_000,
            origin_connect_timeout: Duration::from_secs(5),
            origin_response_timeout: Duration::from_secs(60),
            origin_idle_timeout: Duration::from_secs(90),
            shutdown_grace: Duration::from_secs(30),
            max_decoded_body: 64 * 1024 * 1024,
            max_inventory_entries: 10_000,
        }
    }
}

/// `[admin]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Address of the admin API (loopback by default); absent = no admin API.
    pub listen: Option<Spanned<String>>,
    /// Bearer token required on every admin request.
    pub token: Option<String>,
    /// Environment variable holding the bearer token.
    pub token_env: Option<Spanned<String>>,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `text` or `json` (the `--log-format` flag wins).
    pub format: Option<String>,
    /// One access-log line per request.
    pub access: bool,
}

impl Default for Log {
    fn default() -> Self {
        Log { format: None, access: true }
    }
}

/// `[audit]`: the JSON-lines log of consent decisions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Audit {
    /// `off`, `blocked` (only what was blocked/changed) or `all`.
    pub level: String,
    /// `stdout` or a file path.
    pub path: String,
    /// Rotate the file when it grows past this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept.
    pub keep: usize,
}

impl Default for Audit {
    fn default() -> Self {
        Audit { level: "off".into(), path: "stdout".into(), max_bytes: 64 * 1024 * 1024, keep: 5 }
    }
}

/// `[receipts]`: proof of consent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Receipts {
    /// Append-only JSON-lines file; absent = receipts are not written.
    pub path: Option<PathBuf>,
    /// Rotate past this many bytes.
    pub max_bytes: u64,
}

impl Default for Receipts {
    fn default() -> Self {
        Receipts { path: None, max_bytes: 256 * 1024 * 1024 }
    }
}

/// `[[site]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// Name used in logs and metrics; default: the first host.
    pub name: Option<String>,
    /// Host names (exact or `*.example.com`).
    pub hosts: Vec<Spanned<String>>,
    /// Origin base URL (`http://127.0.0.1:3000`, `https://legacy.internal`).
    pub origin: Spanned<String>,
    /// Name of the policy in `[policy.NAME]`.
    pub policy: Spanned<String>,
    /// Send the client's `Host` to the origin (default), or the origin's.
    #[serde(default = "yes")]
    pub preserve_host: bool,
    /// Extra CA certificates (PEM) trusted for an https origin.
    pub ca_file: Option<Spanned<PathBuf>>,
}

fn yes() -> bool {
    true
}

/// `[policy.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Another policy whose rules, categories and settings this one starts from.
    pub extends: Option<Spanned<String>>,
    /// `enforce` or `report-only`.
    pub mode: Option<Spanned<String>>,
    /// Cookies no rule names: `block` or `allow`.
    pub unknown_cookies: Option<Spanned<String>>,
    /// Third-party resources no rule names: `block` or `allow`.
    pub unknown_third_party: Option<Spanned<String>>,
    /// Hosts that count as first party besides the site's own.
    pub first_party: Option<Vec<Spanned<String>>>,
    /// Built-in rule sets (`config/presets/NAME.toml`).
    pub presets: Option<Vec<Spanned<String>>>,
    /// How a refused element is neutralised: `inert` (kept, revivable) or `remove`.
    pub neutralise: Option<Spanned<String>>,
    /// Send `Consentry-Consent: necessary,analytics` to the origin.
    pub consent_header: Option<bool>,
    /// Most sweep deletions added to one response.
    pub sweep_budget: Option<usize>,
    /// Consent cookie and how to read it.
    pub consent: Option<Consent>,
    /// Categories by name.
    pub categories: Option<BTreeMap<String, Spanned<CategoryDef>>>,
    /// Cookie rules.
    #[serde(default)]
    pub cookie: Vec<Spanned<CookieRule>>,
    /// Resource rules.
    #[serde(default)]
    pub resource: Vec<Spanned<ResourceRule>>,
    /// Cookie hardening (as nginx's `proxy_cookie_flags`).
    #[serde(default)]
    pub harden: Vec<Spanned<Harden>>,
    /// Content-Security-Policy built from the granted categories.
    pub csp: Option<Csp>,
    /// The built-in consent banner.
    pub banner: Option<Banner>,
    /// `[policy.NAME.receipts]`: what receipts record for this policy.
    pub receipts: Option<PolicyReceipts>,
}

/// `[policy.NAME.consent]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    /// Name of the consent cookie.
    pub cookie: Option<String>,
    /// `consentry`, `cookieconsent`, `klaro`, `cookiebot`, `onetrust`,
    /// `cookieyes`, `complianz` or `tcf`.
    pub format: Option<Spanned<String>>,
    /// Consent older than this many days counts as none.
    pub max_age_days: Option<u32>,
    /// Policy revision; consent for an older one counts as none.
    pub revision: Option<u64>,
    /// Categories refused when the browser sends `Sec-GPC: 1`.
    pub gpc_refuses: Option<Vec<Spanned<String>>>,
    /// The consent manager's names → policy categories.
    pub map: Option<BTreeMap<String, Spanned<String>>>,
    /// HMAC-SHA256 key signing the `consentry` cookie.
    pub hmac_key: Option<String>,
    /// Environment variable holding the HMAC key.
    pub hmac_key_env: Option<Spanned<String>>,
    /// Categories granted to visitors outside a consent region (Cookiebot `-1`).
    pub outside_region: Option<Vec<Spanned<String>>>,
    /// `Domain` attribute of the consent cookie consentry sets.
    pub cookie_domain: Option<String>,
}

/// `[policy.NAME.categories.CAT]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryDef {
    /// Shown to visitors.
    #[serde(default)]
    pub description: String,
    /// Cap on cookie lifetime in days.
    pub max_cookie_days: Option<u32>,
}

/// `[[policy.NAME.cookie]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookieRule {
    /// Exact name, glob (`_ga_*`) or `/regex/`.
    pub name: Spanned<String>,
    /// Category name.
    pub category: Spanned<String>,
    /// Who sets it.
    #[serde(default)]
    pub provider: String,
    /// Why.
    #[serde(default)]
    pub purpose: String,
    /// Declared lifetime, as text for the declaration (`13 months`).
    #[serde(default)]
    pub duration: String,
    /// Only cookies with this Domain; also used to delete it on withdrawal.
    pub domain: Option<String>,
    /// Paths it is set on (for deletion); default `/`.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Cap on its lifetime in days (beats the category's).
    pub max_days: Option<u32>,
}

/// `[[policy.NAME.resource]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceRule {
    /// Host (and subdomains), URL prefix, or `inline:` script signature.
    #[serde(rename = "match")]
    pub matches: Spanned<String>,
    /// Category name.
    pub category: Spanned<String>,
    /// Who serves it.
    #[serde(default)]
    pub provider: String,
}

/// `[[policy.NAME.harden]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Harden {
    /// Cookie name, glob or `/regex/`.
    pub name: Spanned<String>,
    /// Add `Secure`.
    #[serde(default)]
    pub secure: bool,
    /// Add `HttpOnly`.
    #[serde(default)]
    pub http_only: bool,
    /// Set `SameSite=` (`Strict`, `Lax`, `None`).
    pub same_site: Option<Spanned<String>>,
}

/// `[policy.NAME.csp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Csp {
    /// `enforce` or `report-only`.
    pub mode: Spanned<String>,
    /// Where browsers report violations.
    pub report_uri: Option<String>,
}

/// `[policy.NAME.receipts]`: what a receipt keeps of the visitor's IP.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyReceipts {
    /// `truncate` (default: the network, `ipv4_prefix` / `ipv6_prefix`
    /// bits), `none` (no IP at all) or `full` (the whole address).
    pub ip: Option<Spanned<String>>,
    /// Bits of an IPv4 address kept by `truncate` (0 to 32, default 24).
    pub ipv4_prefix: Option<Spanned<u8>>,
    /// Bits of an IPv6 address kept by `truncate` (0 to 128, default 48).
    pub ipv6_prefix: Option<Spanned<u8>>,
}

/// `[policy.NAME.banner]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Banner {
    /// Inject the banner for visitors without valid consent.
    #[serde(default)]
    pub enabled: bool,
    /// Text overrides per language (`en`, `fr`, ...), key → text.
    #[serde(default)]
    pub texts: BTreeMap<String, BTreeMap<String, String>>,
    /// Link to the site's cookie policy.
    pub policy_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Source {
        Source { path: PathBuf::from("test.toml"), text: text.to_string() }
    }

    #[test]
    fn line_columns_are_one_based() {
        assert_eq!(line_column("abc", 0), (1, 1));
        assert_eq!(line_column("abc\ndef", 5), (2, 2));
        assert_eq!(line_column("é\nx", 3), (2, 1));
    }

    #[test]
    fn unknown_keys_are_errors_with_location() {
        let err = source("[listen]\nhttp = \"127.0.0.1:0\"\nhtp = 1\n").parse().unwrap_err();
        assert_eq!((err.line, err.column), (3, 1));
        assert!(err.message.contains("unknown field `htp`"), "{err}");
        assert!(err.to_string().starts_with("test.toml:3:1: "), "{err}");
    }

    #[test]
    fn durations_parse() {
        let file = source("[limits]\nheader_read_timeout = \"2s\"\n").parse().unwrap();
        assert_eq!(file.limits.header_read_timeout, Duration::from_secs(2));
        assert_eq!(file.limits.idle_timeout, Limits::default().idle_timeout);
    }
}
