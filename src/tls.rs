//! TLS for the HTTPS listener: certificates loaded into the snapshot, one
//! chosen per handshake by SNI, and self-signed development certificates.
//!
//! Certificates are part of the compiled [`Snapshot`]: [`CertStore::load`]
//! runs inside `Snapshot::compile`, so a missing file, a key that does not
//! match its certificate or a file that is not PEM is a configuration error
//! (file:line:column) and never replaces a working set. The listener's
//! rustls `ServerConfig` is built once; its [`SnapshotResolver`] reads the
//! *current* snapshot on every handshake, so a reload swaps certificates for
//! new connections while established ones carry on untouched.
//!
//! rustls' own `ResolvesServerCertUsingSni` is not used because it needs
//! every name up front and cannot be swapped; ours also serves wildcard
//! names and falls back to the first certificate for clients without SNI.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, crypto::ring};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::snapshot::{CertSpec, Snapshot, Store};

/// The crypto provider used for every TLS connection, client and server.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The loaded certificates of one snapshot, indexed by server name.
#[derive(Debug)]
pub struct CertStore {
    keys: Vec<Arc<CertifiedKey>>,
    names: Vec<Vec<String>>,
    exact: HashMap<String, usize>,
    /// `*.example.com` → keyed by `example.com`; covers one label only, as
    /// TLS wildcards do.
    wildcard: HashMap<String, usize>,
}

impl CertStore {
    /// Loads every certificate. Errors are `(index into specs, message)`,
    /// all of them, so `consentry check` can point at each bad entry.
    pub fn load(specs: &[CertSpec]) -> Result<CertStore, Vec<(usize, String)>> {
        let provider = provider();
        let mut store = CertStore {
            keys: Vec::new(),
            names: Vec::new(),
            exact: HashMap::new(),
            wildcard: HashMap::new(),
        };
        let mut errors = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            match load_pair(&spec.cert, &spec.key, &provider) {
                Ok((key, cert_names)) => {
                    let names = if spec.hosts.is_empty() { cert_names } else { spec.hosts.clone() };
                    if names.is_empty() && index > 0 {
                        errors.push((
                            index,
                            format!("{} names no DNS host; list them in `hosts`", spec.cert.display()),
                        ));
                        continue;
                    }
                    store.add(Arc::new(key), names);
                }
                Err(e) => errors.push((index, e)),
            }
        }
        if errors.is_empty() { Ok(store) } else { Err(errors) }
    }

    fn add(&mut self, key: Arc<CertifiedKey>, names: Vec<String>) {
        let index = self.keys.len();
        for name in &names {
            let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
            // The first certificate listed for a name wins, as in the file.
            match name.strip_prefix("*.") {
                Some(parent) => self.wildcard.entry(parent.to_string()).or_insert(index),
                None => self.exact.entry(name).or_insert(index),
            };
        }
        self.keys.push(key);
        self.names.push(names);
    }

    /// The certificate for a server name: exact name, then a wildcard one
    /// label up, then the first certificate (clients without SNI, or names
    /// no certificate covers: they get a name mismatch rather than a reset).
    pub fn resolve(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let index = server_name
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
            .and_then(|name| {
                self.exact
                    .get(&name)
                    .or_else(|| name.split_once('.').and_then(|(_, parent)| self.wildcard.get(parent)))
                    .copied()
            })
            .unwrap_or(0);
        self.keys.get(index).cloned()
    }

    /// The names each certificate answers for, in load order.
    pub fn names(&self) -> &[Vec<String>] {
        &self.names
    }

    /// Number of certificates.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Reads a PEM chain and key, checks they belong together, and returns the
/// key with the DNS names in the end-entity certificate.
fn load_pair(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<(CertifiedKey, Vec<String>), String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad PEM in {}: {e}", cert.display()))?;
    let Some(end_entity) = chain.first() else {
        return Err(format!("{} holds no certificate", cert.display()));
    };
    let names: Vec<String> = webpki::EndEntityCert::try_from(end_entity)
        .map_err(|e| format!("{} is not a valid X.509 certificate: {e:?}", cert.display()))?
        .valid_dns_names()
        .map(str::to_string)
        .collect();
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => format!("{} holds no private key", key.display()),
        e => format!("cannot read private key {}: {e}", key.display()),
    })?;
    let certified = CertifiedKey::from_der(chain, private, provider)
        .map_err(|e| format!("{} and {} do not go together: {e}", cert.display(), key.display()))?;
    Ok((certified, names))
}

/// Picks the certificate from the current snapshot on each handshake.
#[derive(Debug)]
pub struct SnapshotResolver {
    store: Arc<Store>,
}

impl ResolvesServerCert for SnapshotResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let snapshot: Arc<Snapshot> = self.store.load();
        let key = snapshot.tls.as_ref()?.resolve(hello.server_name());
        tracing::debug!(sni = ?hello.server_name(), found = key.is_some(), "tls certificate");
        key
    }
}

/// The HTTPS listener's rustls configuration: ALPN `h2` then `http/1.1`,
/// certificates from the current snapshot.
pub fn server_config(store: Arc<Store>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SnapshotResolver { store }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A self-signed certificate and its key, both PEM.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

/// Makes a self-signed certificate for these host names (development only).
pub fn self_signed(hosts: &[String]) -> Result<SelfSigned, rcgen::Error> {
    let generated = rcgen::generate_simple_self_signed(hosts.to_vec())?;
    Ok(SelfSigned { cert_pem: generated.cert.pem(), key_pem: generated.signing_key.serialize_pem() })
}

/// Writes a self-signed certificate as `DIR/HOST.pem` and `DIR/HOST-key.pem`
/// (the key readable by its owner only) and returns both paths.
pub fn write_self_signed(hosts: &[String], dir: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    let first = hosts.first().map_or("localhost", String::as_str);
    let pair = self_signed(hosts).map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    let cert_path = dir.join(format!("{first}.pem"));
    let key_path = dir.join(format!("{first}-key.pem"));
    std::fs::write(&cert_path, &pair.cert_pem)?;
    let mut key =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&key_path)?;
    key.write_all(pair.key_pem.as_bytes())?;
    Ok((cert_path, key_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, stem: &str, hosts: &[&str]) -> CertSpec {
        let hosts: Vec<String> = hosts.iter().map(|h| (*h).to_string()).collect();
        let pair = self_signed(&hosts).unwrap();
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}-key.pem"));
        std::fs::write(&cert, pair.cert_pem).unwrap();
        std::fs::write(&key, pair.key_pem).unwrap();
        CertSpec { cert, key, hosts: Vec::new() }
    }

    fn pick(store: &CertStore, name: Option<&str>) -> usize {
        let key = store.resolve(name).unwrap();
        store.keys.iter().position(|k| Arc::ptr_eq(k, &key)).unwrap()
    }

    #[test]
    fn names_come_from_the_certificate_and_sni_picks() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_pair(dir.path(), "a", &["a.test", "www.a.test"]);
        let b = write_pair(dir.path(), "b", &["*.b.test"]);
        let store = CertStore::load(&[a, b]).unwrap();
        assert_eq!(store.names()[0], vec!["a.test", "www.a.test"]);
        assert_eq!(pick(&store, Some("a.test")), 0);
        assert_eq!(pick(&store, Some("WWW.A.TEST.")), 0);
        assert_eq!(pick(&store, Some("x.b.test")), 1);
        // A wildcard covers one label, not the parent nor deeper names.
        assert_eq!(pick(&store, Some("b.test")), 0);
        assert_eq!(pick(&store, Some("y.x.b.test")), 0);
        assert_eq!(pick(&store, None), 0);
    }

    #[test]
    fn configured_hosts_override_certificate_names() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_pair(dir.path(), "a", &["a.test"]);
        let mut b = write_pair(dir.path(), "b", &["b.test"]);
        b.hosts = vec!["other.test".into()];
        let store = CertStore::load(&[a, b]).unwrap();
        assert_eq!(pick(&store, Some("other.test")), 1);
        assert_eq!(pick(&store, Some("b.test")), 0);
    }

    #[test]
    fn bad_files_are_errors_naming_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let good = write_pair(dir.path(), "good", &["a.test"]);
        let other = write_pair(dir.path(), "other", &["b.test"]);
        let mismatched = CertSpec { cert: good.cert.clone(), key: other.key.clone(), hosts: vec![] };
        let missing = CertSpec { cert: dir.path().join("nope.pem"), key: good.key.clone(), hosts: vec![] };
        std::fs::write(dir.path().join("junk.pem"), "not pem").unwrap();
        let junk = CertSpec { cert: dir.path().join("junk.pem"), key: good.key.clone(), hosts: vec![] };
        let swapped = CertSpec { cert: good.key.clone(), key: good.cert.clone(), hosts: vec![] };
        let errors = CertStore::load(&[good, mismatched, missing, junk, swapped]).unwrap_err();
        let indexes: Vec<usize> = errors.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, vec![1, 2, 3, 4], "{errors:?}");
        assert!(errors[0].1.contains("do not go together"), "{}", errors[0].1);
        assert!(errors[1].1.contains("cannot read certificate"), "{}", errors[1].1);
        assert!(errors[2].1.contains("holds no certificate"), "{}", errors[2].1);
        assert!(errors[3].1.contains("holds no certificate"), "{}", errors[3].1);
    }

    #[test]
    fn written_key_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_self_signed(&["localhost".into()], dir.path()).unwrap();
        assert!(cert.ends_with("localhost.pem") && key.ends_with("localhost-key.pem"));
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        let store = CertStore::load(&[CertSpec { cert, key, hosts: vec![] }]).unwrap();
        assert_eq!(store.names()[0], vec!["localhost"]);
    }
}
