//! `--proxy-tls-dir`: a directory of certificates per hostname. It holds
//! pairs `<hostname>.crt` (PEM chain, end-entity certificate first) +
//! `<hostname>.key` (PEM private key), and `_wildcard.<domain>.crt/.key` for
//! `*.<domain>`. A scan re-reads only the pairs whose files changed (inode,
//! size or mtime) and reports each pair it could not load, once per change.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, DnsName, PrivateKeyDer};

use super::TlsError;

/// How often a running proxy looks for changes in `--proxy-tls-dir`.
pub const DIR_POLL: Duration = Duration::from_secs(2);

/// The file name prefix of a wildcard pair: `_wildcard.example.com.crt`
/// serves `*.example.com`.
const WILDCARD: &str = "_wildcard.";

/// Why a pair of files was not loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairProblem {
    #[error(
        "the name is not a hostname (name pairs <hostname>.crt + <hostname>.key, or _wildcard.<domain>.crt + .key for *.<domain>)"
    )]
    BadName,
    #[error("there is no matching .key file")]
    MissingKey,
    #[error("there is no matching .crt file")]
    MissingCert,
    #[error("cannot be read: {0}")]
    Read(String),
    #[error("not a PEM certificate chain: {0}")]
    CertPem(String),
    #[error("no certificate in the file")]
    NoCertificate,
    #[error("not a PEM private key: {0}")]
    KeyPem(String),
    #[error("the private key cannot be used: {0}")]
    KeyUnusable(String),
    #[error("the certificate cannot be used: {0}")]
    CertUnusable(String),
    #[error("the key does not match the certificate's public key")]
    KeyMismatch,
}

/// A pair left out of the table, and the file at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub file: PathBuf,
    pub problem: PairProblem,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--proxy-tls-dir: {}: {}; this certificate is skipped",
            self.file.display(),
            self.problem
        )
    }
}

/// The hostname a pair serves.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Exact(String),
    /// `*.<parent>`: any one label under the parent domain.
    Wildcard(String),
}

impl Host {
    /// From a file stem (the name without `.crt`/`.key`).
    fn parse(stem: &str) -> Option<Host> {
        let stem = stem.to_ascii_lowercase();
        let (name, wildcard) = match stem.strip_prefix(WILDCARD) {
            Some(parent) => (parent, true),
            None => (stem.as_str(), false),
        };
        DnsName::try_from(name).ok()?;
        let name = name.to_owned();
        Some(if wildcard {
            Host::Wildcard(name)
        } else {
            Host::Exact(name)
        })
    }
}

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

struct Pair {
    crt: Option<Stamp>,
    key: Option<Stamp>,
    loaded: Option<(Host, Arc<CertifiedKey>)>,
}

/// The certificates of a directory by hostname.
#[derive(Debug, Default)]
pub struct CertTable {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl CertTable {
    /// The certificate for `sni`: its own, else its parent domain's
    /// wildcard one.
    pub fn get(&self, sni: &str) -> Option<&Arc<CertifiedKey>> {
        let sni = sni.trim_end_matches('.').to_ascii_lowercase();
        self.exact.get(&sni).or_else(|| {
            let (_, parent) = sni.split_once('.')?;
            self.wildcard.get(parent)
        })
    }

    /// The names served, wildcards as `*.<domain>`, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.exact.keys().cloned().collect();
        names.extend(self.wildcard.keys().map(|d| format!("*.{d}")));
        names.sort();
        names
    }
}

/// The result of one scan.
pub struct Scan {
    /// The new table when anything changed since the last scan (always on
    /// the first one).
    pub table: Option<Arc<CertTable>>,
    /// Pairs newly found broken.
    pub skipped: Vec<Skipped>,
}

/// A certificate directory and what was last read from it.
pub struct CertDir {
    path: PathBuf,
    provider: Arc<CryptoProvider>,
    pairs: BTreeMap<String, Pair>,
    scanned: bool,
}

impl CertDir {
    /// `path` must be a directory.
    pub fn open(path: &Path, provider: Arc<CryptoProvider>) -> Result<CertDir, TlsError> {
        let err = |reason: String| TlsError::Dir {
            path: path.display().to_string(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if !meta.is_dir() {
            return Err(err("not a directory".into()));
        }
        Ok(CertDir {
            path: path.to_owned(),
            provider,
            pairs: BTreeMap::new(),
            scanned: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lists the directory and loads the pairs that are new or changed.
    /// Fails only when the directory itself cannot be listed.
    pub fn scan(&mut self) -> std::io::Result<Scan> {
        let mut found: BTreeMap<String, (Option<Stamp>, Option<Stamp>)> = BTreeMap::new();
        for entry in std::fs::read_dir(&self.path)? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            let (stem, is_crt) = match (name.strip_suffix(".crt"), name.strip_suffix(".key")) {
                (Some(stem), _) => (stem, true),
                (_, Some(stem)) => (stem, false),
                _ => continue,
            };
            // Follows symlinks (e.g. certificates mounted from a secret).
            let Ok(meta) = std::fs::metadata(entry.path()) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let stamp = Stamp {
                ino: meta.ino(),
                size: meta.size(),
                mtime: meta.mtime(),
                mtime_nsec: meta.mtime_nsec(),
            };
            let slot = found.entry(stem.to_owned()).or_default();
            if is_crt {
                slot.0 = Some(stamp);
            } else {
                slot.1 = Some(stamp);
            }
        }

        let before = self.pairs.len();
        self.pairs.retain(|stem, _| found.contains_key(stem));
        let mut changed = !self.scanned || self.pairs.len() != before;
        self.scanned = true;
        let mut skipped = Vec::new();
        for (stem, (crt, key)) in found {
            if let Some(p) = self.pairs.get(&stem)
                && p.crt == crt
                && p.key == key
            {
                continue;
            }
            changed = true;
            let loaded = match self.load_pair(&stem, crt.is_some(), key.is_some()) {
                Ok(l) => Some(l),
                Err(s) => {
                    skipped.push(s);
                    None
                }
            };
            self.pairs.insert(stem, Pair { crt, key, loaded });
        }
        let table = changed.then(|| Arc::new(self.table()));
        Ok(Scan { table, skipped })
    }

    fn table(&self) -> CertTable {
        let mut table = CertTable::default();
        for (host, key) in self.pairs.values().filter_map(|p| p.loaded.as_ref()) {
            match host {
                Host::Exact(name) => table.exact.insert(name.clone(), key.clone()),
                Host::Wildcard(parent) => table.wildcard.insert(parent.clone(), key.clone()),
            };
        }
        table
    }

    fn load_pair(
        &self,
        stem: &str,
        has_crt: bool,
        has_key: bool,
    ) -> Result<(Host, Arc<CertifiedKey>), Skipped> {
        let crt = self.path.join(format!("{stem}.crt"));
        let key = self.path.join(format!("{stem}.key"));
        let skip = |file: &Path, problem| Skipped {
            file: file.to_owned(),
            problem,
        };
        let host = Host::parse(stem)
            .ok_or_else(|| skip(if has_crt { &crt } else { &key }, PairProblem::BadName))?;
        if !has_key {
            return Err(skip(&crt, PairProblem::MissingKey));
        }
        if !has_crt {
            return Err(skip(&key, PairProblem::MissingCert));
        }

        let crt_pem =
            std::fs::read(&crt).map_err(|e| skip(&crt, PairProblem::Read(e.to_string())))?;
        let chain = CertificateDer::pem_slice_iter(&crt_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| skip(&crt, PairProblem::CertPem(e.to_string())))?;
        if chain.is_empty() {
            return Err(skip(&crt, PairProblem::NoCertificate));
        }
        let key_pem =
            std::fs::read(&key).map_err(|e| skip(&key, PairProblem::Read(e.to_string())))?;
        let private = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| skip(&key, PairProblem::KeyPem(e.to_string())))?;
        let signing = self
            .provider
            .key_provider
            .load_private_key(private)
            .map_err(|e| skip(&key, PairProblem::KeyUnusable(e.to_string())))?;
        let certified = CertifiedKey::new(chain, signing);
        match certified.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(rustls::Error::InconsistentKeys(_)) => {
                return Err(skip(&key, PairProblem::KeyMismatch));
            }
            Err(e) => return Err(skip(&crt, PairProblem::CertUnusable(e.to_string()))),
        }
        Ok((host, Arc::new(certified)))
    }
}
