//! TLS for `tls` handlers: a default certificate from PEM files (or a
//! self-signed one for the proxy domain), certificates per hostname from
//! `--proxy-tls-dir` picked by SNI, and a server config per port settings
//! (`tls_options`: ALPN, TLS versions, `default_self_signed`).

mod configs;
mod dir;
mod resolve;
mod self_signed;
mod settings;

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use configs::{MAX_CONFIGS, TlsConfigs};
pub use dir::{CertDir, CertTable, DIR_POLL, PairProblem, Scan, Skipped};
pub use resolve::{DirWatch, SniResolver};
pub use self_signed::{SELF_SIGNED_NAMES, SelfSignedResolver};
pub use settings::TlsSettings;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--proxy-tls-cert {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("--proxy-tls-key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("--proxy-tls-dir {path}: {reason}")]
    Dir { path: String, reason: String },
    #[error("making a self-signed certificate: {0}")]
    SelfSigned(String),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The proxy's TLS server configs (one per port settings, see
/// [`TlsConfigs::get`]), and the task that keeps its certificate directory
/// current (when there is one: run it with [`DirWatch::run`]).
pub struct TlsSetup {
    pub configs: Arc<TlsConfigs>,
    pub watch: Option<DirWatch>,
}

/// Server configs whose default certificate comes from `cert` and `key`
/// (self-signed for `domain`, `*.domain` and `localhost` when not given),
/// with the certificates of `dir` (see [`CertDir`]) picked by SNI first.
pub fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
    dir: Option<&Path>,
    domain: &str,
) -> Result<TlsSetup, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (chain, key) = match (cert, key) {
        (Some(c), Some(k)) => load(c, k)?,
        _ => self_signed(domain)?,
    };
    let default = Arc::new(certified_key(chain, key, &provider).map_err(|e| {
        let path = cert.map(|p| p.display().to_string()).unwrap_or_default();
        TlsError::Cert {
            path,
            reason: e.to_string(),
        }
    })?);
    let mut watch = None;
    let resolver = match dir {
        Some(dir) => {
            let mut certs = CertDir::open(dir, provider.clone())?;
            let scan = certs.scan().map_err(|e| TlsError::Dir {
                path: dir.display().to_string(),
                reason: e.to_string(),
            })?;
            for s in &scan.skipped {
                tracing::warn!("proxy: {s}");
            }
            let resolver = Arc::new(SniResolver::new(default, scan.table));
            watch = Some(DirWatch::new(certs, &resolver));
            resolver
        }
        None => Arc::new(SniResolver::new(default, None)),
    };
    let configs = Arc::new(TlsConfigs::new(provider, resolver));
    // The settings of a `tls` + `http` port without `tls_options`: made now,
    // so a provider that cannot serve them stops the start, not a handshake.
    configs.get(&TlsSettings::of(None, true))?;
    Ok(TlsSetup { configs, watch })
}

/// A self-signed certificate for `names`, as rustls signs with it.
fn self_signed_for(names: &[String], provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let made = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let key = PrivateKeyDer::try_from(made.key_pair.serialize_der())
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    certified_key(vec![made.cert.der().clone()], key, provider)
        .map_err(|e| TlsError::SelfSigned(e.to_string()))
}

/// A chain and its key as rustls signs with them; the key must be the
/// chain's first certificate's.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, rustls::Error> {
    let key = provider.key_provider.load_private_key(key)?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        // A key type whose public half rustls cannot derive: trust the pair.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(e) => Err(e),
    }
}

fn load(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert {
            path: cert.display().to_string(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Cert {
            path: cert.display().to_string(),
            reason: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok((chain, key))
}

/// A self-signed certificate and its key.
pub fn self_signed(
    domain: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let names = vec![
        domain.to_owned(),
        format!("*.{domain}"),
        "localhost".to_owned(),
    ];
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let key = PrivateKeyDer::try_from(certified.key_pair.serialize_der())
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    Ok((vec![certified.cert.der().clone()], key))
}

#[cfg(test)]
mod tests;
