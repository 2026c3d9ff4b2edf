//! Stage 3, **snapshot**: the whole compiled configuration behind one
//! `ArcSwap`.
//!
//! A [`Snapshot`] is immutable. Every request loads the current one once and
//! uses it to the end, even if a reload lands mid-request; a reload compiles
//! a complete new snapshot and swaps it in one store. Keeping sites,
//! policies and certificates behind the *same* swap means a request never
//! sees a new site with an old policy.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::config::{self, ConfigError, Source};
use crate::forward::CaBundle;
use crate::policy::{self, Policy};
use crate::presets::Presets;
use crate::route::{HostSet, Origin, Router, Site};
use crate::tls::CertStore;

/// Listener settings. Not hot-swapped: a change needs a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSettings {
    /// Plain HTTP address.
    pub http: Option<SocketAddr>,
    /// HTTPS address.
    pub https: Option<SocketAddr>,
    /// Admin API address.
    pub admin: Option<SocketAddr>,
}

/// A TLS certificate to load: chain, key and the names it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// PEM chain file (resolved against the config's directory).
    pub cert: PathBuf,
    /// PEM key file.
    pub key: PathBuf,
    /// SNI names; empty = the names in the certificate.
    pub hosts: Vec<String>,
}

/// The compiled configuration.
#[derive(Debug)]
pub struct Snapshot {
    /// Increments on every successful reload (1 for the first load).
    pub generation: u64,
    /// When it was compiled.
    pub loaded_at: SystemTime,
    /// The config file.
    pub path: PathBuf,
    /// Every file it was built from (config, user presets, certificates)
    /// and the user presets directory itself: the reload watcher watches the
    /// directory of each file, and each directory listed.
    pub files: Vec<PathBuf>,
    /// Listener addresses.
    pub listen: ListenSettings,
    /// Certificates for the HTTPS listener.
    pub certificates: Vec<CertSpec>,
    /// Those certificates, loaded and checked (`None` when there is none).
    /// Behind the same swap as the rest, so a reload changes them for new
    /// handshakes only, and a bad one is a config error, never served.
    pub tls: Option<Arc<CertStore>>,
    /// Extra CA certificates for https origins (`site.ca_file`), by path.
    pub origin_cas: BTreeMap<PathBuf, Arc<CaBundle>>,
    /// HTTP/2 concurrent streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// Peers whose `X-Forwarded-Proto`/`-For` are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Timeouts and limits.
    pub limits: config::Limits,
    /// Admin bearer token.
    pub admin_token: Option<String>,
    /// Logging settings.
    pub log: config::Log,
    /// Audit settings.
    pub audit: config::Audit,
    /// Receipt settings.
    pub receipts: config::Receipts,
    /// Host → site.
    pub router: Router,
    /// Every compiled policy by name.
    pub policies: BTreeMap<String, Arc<Policy>>,
}

impl Snapshot {
    /// Settings that work but deserve attention, one message each: for
    /// `consentry check` to print and `consentry run` to log at start.
    /// Today: a policy reading consentry's own consent cookie without an
    /// HMAC key, whose cookie is then unsigned (anyone who can set a
    /// cookie on the site, a script included, can grant consent); and a
    /// banner on a report-only policy, which is not shown (report-only
    /// changes no byte of a response but `Consentry-Report`).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for p in self.policies.values() {
            if p.consent.format == crate::consent::Format::Consentry && p.consent.hmac_key.is_none() {
                warnings.push(format!(
                    "policy {}: the consent cookie {:?} is not signed (no consent.hmac_key or hmac_key_env), so a script on the site or the visitor can forge consent; set hmac_key_env to a secret of 32+ random bytes",
                    p.name, p.consent.cookie
                ));
            }
            if p.banner.enabled && p.mode == crate::policy::Mode::ReportOnly {
                warnings.push(format!(
                    "policy {}: banner.enabled has no effect in report-only mode, which leaves every page as the origin sent it; the banner appears once mode = \"enforce\"",
                    p.name
                ));
            }
        }
        warnings
    }

    /// Reads, parses and compiles a config file.
    pub fn load(path: &Path, generation: u64) -> Result<Snapshot, Vec<ConfigError>> {
        let source = Source::read(path).map_err(|e| vec![e])?;
        Snapshot::compile(&source, generation)
    }

    /// Compiles an already-read config. Collects every error it can.
    pub fn compile(source: &Source, generation: u64) -> Result<Snapshot, Vec<ConfigError>> {
        let file = source.parse().map_err(|e| vec![e])?;
        let base = source.path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        let mut errors = Vec::new();
        let mut files = vec![source.path.clone()];

        let presets = match &file.presets.dir {
            None => Presets::builtin(),
            Some(dir) => {
                let path = resolve(dir.get_ref());
                // The directory is watched too, so that a preset added to it
                // triggers a reload (see `files`).
                files.push(path.clone());
                if path.is_dir() {
                    Presets::with_dir(&path)
                } else {
                    Err(source.error_at(
                        dir.span(),
                        format!("presets.dir {:?} is not a readable directory", path.display().to_string()),
                    ))
                }
            }
        };
        let presets = match presets {
            Ok(p) => p,
            Err(e) => return Err(vec![e]),
        };

        let addr = |value: &Option<serde_spanned::Spanned<String>>, errors: &mut Vec<ConfigError>| {
            value.as_ref().and_then(|v| match v.get_ref().parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    errors.push(source.error_at(
                        v.span(),
                        format!("bad listen address {:?} (expected IP:PORT)", v.get_ref()),
                    ));
                    None
                }
            })
        };
        let listen = ListenSettings {
            http: addr(&file.listen.http, &mut errors),
            https: addr(&file.listen.https, &mut errors),
            admin: addr(&file.admin.listen, &mut errors),
        };
        if listen.http.is_none() && listen.https.is_none() && errors.is_empty() {
            errors.push(source.error("[listen] needs `http` or `https`"));
        }

        let mut certificates = Vec::new();
        // Where each certificate was configured, to place load errors.
        let mut certificate_spans = Vec::new();
        match (&file.listen.cert, &file.listen.key) {
            (Some(cert), Some(key)) => {
                certificates.push(CertSpec {
                    cert: resolve(cert.get_ref()),
                    key: resolve(key.get_ref()),
                    hosts: Vec::new(),
                });
                certificate_spans.push(cert.span());
            }
            (Some(only), None) | (None, Some(only)) => {
                errors.push(source.error_at(only.span(), "listen.cert and listen.key go together"));
            }
            (None, None) => {}
        }
        for spanned in &file.listen.certificate {
            let c = spanned.get_ref();
            certificates.push(CertSpec {
                cert: resolve(&c.cert),
                key: resolve(&c.key),
                hosts: c.hosts.clone(),
            });
            certificate_spans.push(spanned.span());
        }
        if let Some(https) = &file.listen.https
            && certificates.is_empty()
        {
            errors.push(source.error_at(
                https.span(),
                "an https listener needs listen.cert and listen.key, or [[listen.certificate]]",
            ));
        }
        for c in &certificates {
            files.push(c.cert.clone());
            files.push(c.key.clone());
        }
        let tls = if certificates.is_empty() {
            None
        } else {
            match CertStore::load(&certificates) {
                Ok(store) => Some(Arc::new(store)),
                Err(failed) => {
                    for (index, message) in failed {
                        errors.push(source.error_at(certificate_spans[index].clone(), message));
                    }
                    None
                }
            }
        };
        if let Some(format) = &file.log.format
            && format != "text"
            && format != "json"
        {
            errors.push(source.error(format!("log.format must be \"text\" or \"json\", not {format:?}")));
        }
        // hyper cannot read a header section into less than 8 KiB.
        if file.limits.max_header_bytes < crate::listen::MIN_HEADER_BYTES {
            errors.push(source.error(format!(
                "limits.max_header_bytes must be at least {}",
                crate::listen::MIN_HEADER_BYTES
            )));
        }

        if crate::audit::Level::parse(&file.audit.level).is_none() {
            errors.push(source.error(format!(
                "audit.level must be \"off\", \"blocked\" or \"all\", not {:?}",
                file.audit.level
            )));
        }

        let admin_token = match (&file.admin.token, &file.admin.token_env) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(var)) => match std::env::var(var.get_ref()) {
                Ok(t) if !t.is_empty() => Some(t),
                _ => {
                    errors.push(source.error_at(
                        var.span(),
                        format!("admin.token_env names {:?}, which is not set or empty", var.get_ref()),
                    ));
                    None
                }
            },
            (None, None) => None,
        };

        let mut trusted_proxies = Vec::new();
        for t in &file.listen.trusted_proxies {
            let text = t.get_ref().trim();
            let net = text
                .parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match net {
                Ok(net) => trusted_proxies.push(net),
                Err(_) => errors.push(source.error_at(
                    t.span(),
                    format!("bad trusted proxy {text:?} (expected an address or CIDR, e.g. 10.0.0.0/8)"),
                )),
            }
        }

        let mut policies = BTreeMap::new();
        for name in file.policy.keys() {
            match policy::compile(name, source, &file.policy, &presets) {
                Ok(p) => {
                    policies.insert(name.clone(), Arc::new(p));
                }
                Err(mut e) => errors.append(&mut e),
            }
        }

        let mut router = Router::default();
        let mut origin_cas = BTreeMap::new();
        if file.site.is_empty() {
            errors.push(source.error("no [[site]]: consentry needs at least one site to front"));
        }
        for s in &file.site {
            let raw = s.get_ref();
            let origin = match Origin::parse(raw.origin.get_ref()) {
                Ok(o) => Some(o),
                Err(e) => {
                    errors.push(source.error_at(raw.origin.span(), e));
                    None
                }
            };
            let policy = policies.get(raw.policy.get_ref()).cloned();
            if policy.is_none() && !file.policy.contains_key(raw.policy.get_ref()) {
                errors.push(
                    source.error_at(raw.policy.span(), format!("unknown policy {:?}", raw.policy.get_ref())),
                );
            }
            if raw.hosts.is_empty() {
                errors.push(source.error_at(s.span(), "a site needs at least one host"));
            }
            let mut host_set = HostSet::default();
            for h in &raw.hosts {
                if let Err(e) = host_set.insert(h.get_ref()) {
                    errors.push(source.error_at(h.span(), e));
                }
            }
            let ca_file = raw.ca_file.as_ref().map(|p| resolve(p.get_ref()));
            if let (Some(ca), Some(spanned)) = (&ca_file, &raw.ca_file) {
                files.push(ca.clone());
                if !origin_cas.contains_key(ca) {
                    match CaBundle::load(ca) {
                        Ok(bundle) => {
                            origin_cas.insert(ca.clone(), Arc::new(bundle));
                        }
                        Err(e) => errors.push(source.error_at(spanned.span(), e)),
                    }
                }
            }
            let (Some(origin), Some(policy)) = (origin, policy) else {
                continue;
            };
            let hosts: Vec<String> = raw.hosts.iter().map(|h| h.get_ref().to_ascii_lowercase()).collect();
            let site = Arc::new(Site {
                name: raw.name.clone().unwrap_or_else(|| hosts.first().cloned().unwrap_or_default()),
                hosts,
                origin,
                preserve_host: raw.preserve_host,
                ca_file,
                policy,
                host_set,
            });
            if let Err(taken) = router.add(site) {
                let span = raw
                    .hosts
                    .iter()
                    .find(|h| h.get_ref().eq_ignore_ascii_case(&taken))
                    .map_or(s.span(), |h| h.span());
                errors.push(
                    source.error_at(span, format!("duplicate host {taken:?}: another site already has it")),
                );
            }
        }

        if !errors.is_empty() {
            errors.sort_by_key(|e| (e.file.clone(), e.line, e.column));
            errors.dedup();
            return Err(errors);
        }
        files.extend(presets.files.iter().cloned());
        Ok(Snapshot {
            generation,
            loaded_at: SystemTime::now(),
            path: source.path.clone(),
            files,
            listen,
            certificates,
            tls,
            origin_cas,
            h2_max_concurrent_streams: file.listen.h2_max_concurrent_streams.unwrap_or(256),
            trusted_proxies,
            limits: file.limits,
            admin_token,
            log: file.log,
            audit: file.audit,
            receipts: file.receipts,
            router,
            policies,
        })
    }
}

/// The current snapshot, swapped atomically on reload, plus the state the
/// admin API reports about reloads.
#[derive(Debug)]
pub struct Store {
    current: ArcSwap<Snapshot>,
    generation: AtomicU64,
    last_error: ArcSwap<Option<String>>,
    restart_needed: ArcSwap<Option<String>>,
    /// Successful reloads since start (the first load not counted).
    reloads_ok: AtomicU64,
    /// Failed reloads since start.
    reloads_failed: AtomicU64,
    /// Tells subscribers (accounting, TLS) the generation just installed.
    swapped: tokio::sync::watch::Sender<u64>,
}

impl Store {
    /// A store holding a first snapshot.
    pub fn new(snapshot: Snapshot) -> Store {
        let generation = snapshot.generation;
        Store {
            current: ArcSwap::from_pointee(snapshot),
            generation: AtomicU64::new(generation),
            last_error: ArcSwap::from_pointee(None),
            restart_needed: ArcSwap::from_pointee(None),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            swapped: tokio::sync::watch::Sender::new(generation),
        }
    }

    /// A receiver that sees the generation of every snapshot swapped in,
    /// for state that must follow a reload (audit sink, inventory cap).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.swapped.subscribe()
    }

    /// Successful reloads since start.
    pub fn reloads_ok(&self) -> u64 {
        self.reloads_ok.load(Ordering::Relaxed)
    }

    /// Failed reloads since start.
    pub fn reloads_failed(&self) -> u64 {
        self.reloads_failed.load(Ordering::Relaxed)
    }

    /// Why a restart is needed (listener addresses changed in the file but
    /// the process still listens on the old ones), if it is.
    pub fn restart_needed(&self) -> Option<String> {
        self.restart_needed.load().as_ref().clone()
    }

    /// Records (or clears, with `None`) that the file asks for something
    /// only a restart can do.
    pub fn set_restart_needed(&self, why: Option<String>) {
        self.restart_needed.store(Arc::new(why));
    }

    /// The current snapshot. Call once per request.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The generation the next successful reload will get.
    pub fn next_generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire) + 1
    }

    /// Installs a new snapshot and clears the last error.
    pub fn swap(&self, snapshot: Snapshot) {
        self.generation.store(snapshot.generation, Ordering::Release);
        self.current.store(Arc::new(snapshot));
        self.last_error.store(Arc::new(None));
        self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        self.swapped.send_replace(self.generation.load(Ordering::Acquire));
    }

    /// Records a failed reload; the current snapshot keeps serving.
    pub fn fail(&self, error: String) {
        self.last_error.store(Arc::new(Some(error)));
        self.reloads_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// The error of the last reload, if it failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.load().as_ref().clone()
    }
}
