//! TLS for `tls` handlers: certificates from PEM files, or a self-signed one
//! for the proxy domain (development), with ALPN for HTTP/2 and HTTP/1.1.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--proxy-tls-cert {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("--proxy-tls-key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("making a self-signed certificate: {0}")]
    SelfSigned(String),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A server config from certificate and key files, or self-signed for
/// `domain`, `*.domain` and `localhost` when none are given.
pub fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
    domain: &str,
) -> Result<Arc<ServerConfig>, TlsError> {
    let (chain, key) = match (cert, key) {
        (Some(c), Some(k)) => load(c, k)?,
        _ => self_signed(domain)?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
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
