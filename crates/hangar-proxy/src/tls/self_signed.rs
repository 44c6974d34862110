//! `tls_options.default_self_signed`: a handshake whose SNI names a host no
//! certificate serves (no pair in `--proxy-tls-dir`, and not a name of the
//! default certificate) gets a self-signed certificate made for that name,
//! kept for the next handshakes; at most [`SELF_SIGNED_NAMES`] names are
//! kept, the oldest made dropped first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::ServerName;

use super::SniResolver;

/// How many names' certificates are kept.
pub const SELF_SIGNED_NAMES: usize = 256;

/// Picks like [`SniResolver`], but answers names it has no certificate for
/// with a self-signed one of their own.
#[derive(Debug)]
pub struct SelfSignedResolver {
    sni: Arc<SniResolver>,
    provider: Arc<CryptoProvider>,
    kept: Mutex<Kept>,
}

/// Certificates by lowercase name, and the names in the order they came.
#[derive(Debug, Default)]
struct Kept {
    keys: HashMap<String, Arc<CertifiedKey>>,
    order: VecDeque<String>,
}

impl SelfSignedResolver {
    pub fn new(sni: Arc<SniResolver>, provider: Arc<CryptoProvider>) -> SelfSignedResolver {
        SelfSignedResolver {
            sni,
            provider,
            kept: Mutex::new(Kept::default()),
        }
    }

    /// The certificate for a client hello's server name: the directory's,
    /// else the default one when it serves the name (or there is no name),
    /// else one made for the name.
    pub fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let default = self.sni.default_key();
        let Some(sni) = sni else {
            return default.clone();
        };
        if let Some(key) = self.sni.lookup(sni) {
            return key;
        }
        let name = sni.trim_end_matches('.').to_ascii_lowercase();
        if let Some(key) = self.kept.lock().expect("self-signed lock").keys.get(&name) {
            return key.clone();
        }
        // Made outside the lock: a key takes a moment, and other names'
        // handshakes need not wait for it.
        let key = if serves(default, &name) {
            default.clone()
        } else {
            match super::self_signed_for(std::slice::from_ref(&name), &self.provider) {
                Ok(key) => Arc::new(key),
                Err(e) => {
                    tracing::warn!(
                        name,
                        "proxy: default_self_signed: {e}; the default certificate is served"
                    );
                    return default.clone();
                }
            }
        };
        let mut kept = self.kept.lock().expect("self-signed lock");
        if let Some(key) = kept.keys.get(&name) {
            // Another handshake made one meanwhile: serve the same.
            return key.clone();
        }
        while kept.order.len() >= SELF_SIGNED_NAMES {
            if let Some(old) = kept.order.pop_front() {
                kept.keys.remove(&old);
            }
        }
        kept.order.push_back(name.clone());
        kept.keys.insert(name, key.clone());
        key
    }

    /// How many names have a certificate kept.
    pub fn kept(&self) -> usize {
        self.kept.lock().expect("self-signed lock").keys.len()
    }
}

/// Whether `key`'s certificate is valid for the DNS name `name`.
fn serves(key: &CertifiedKey, name: &str) -> bool {
    let (Some(cert), Ok(name)) = (key.cert.first(), ServerName::try_from(name)) else {
        return false;
    };
    ParsedCertificate::try_from(cert)
        .is_ok_and(|parsed| rustls::client::verify_server_name(&parsed, &name).is_ok())
}

impl ResolvesServerCert for SelfSignedResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()))
    }
}
