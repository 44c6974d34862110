//! Picks the certificate of a TLS handshake by SNI (the directory's exact
//! hostname, then its parent domain's wildcard, then the default), and the
//! task that swaps in the directory's table when its files change.

use std::sync::{Arc, RwLock, Weak};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::dir::{CertDir, CertTable, DIR_POLL};

/// The proxy's certificate resolver.
#[derive(Debug)]
pub struct SniResolver {
    default: Arc<CertifiedKey>,
    table: RwLock<Arc<CertTable>>,
}

impl SniResolver {
    pub fn new(default: Arc<CertifiedKey>, table: Option<Arc<CertTable>>) -> SniResolver {
        SniResolver {
            default,
            table: RwLock::new(table.unwrap_or_default()),
        }
    }

    /// Replaces the directory's certificates.
    pub fn set(&self, table: Arc<CertTable>) {
        *self.table.write().expect("certificate table lock") = table;
    }

    /// The certificate for a client hello's server name (none: the default).
    pub fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        sni.and_then(|name| self.lookup(name))
            .unwrap_or_else(|| self.default.clone())
    }

    /// The directory's certificate for `sni` (its own, else its parent
    /// domain's wildcard one), if there is one.
    pub fn lookup(&self, sni: &str) -> Option<Arc<CertifiedKey>> {
        let table = self.table.read().expect("certificate table lock").clone();
        table.get(sni).cloned()
    }

    /// The default certificate.
    pub fn default_key(&self) -> &Arc<CertifiedKey> {
        &self.default
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()))
    }
}

/// Re-scans a certificate directory every [`DIR_POLL`] and hands changes to
/// the resolver; ends when the resolver is gone.
pub struct DirWatch {
    dir: CertDir,
    resolver: Weak<SniResolver>,
}

impl DirWatch {
    pub(super) fn new(dir: CertDir, resolver: &Arc<SniResolver>) -> DirWatch {
        DirWatch {
            dir,
            resolver: Arc::downgrade(resolver),
        }
    }

    pub async fn run(self) {
        let DirWatch { mut dir, resolver } = self;
        let mut last_error: Option<String> = None;
        loop {
            tokio::time::sleep(DIR_POLL).await;
            if resolver.strong_count() == 0 {
                return;
            }
            // File reads and key parsing stay off the async threads.
            let scanned = tokio::task::spawn_blocking(move || {
                let scan = dir.scan();
                (dir, scan)
            })
            .await;
            let Ok((back, scan)) = scanned else { return };
            dir = back;
            match scan {
                Ok(scan) => {
                    last_error = None;
                    for s in &scan.skipped {
                        tracing::warn!("proxy: {s}");
                    }
                    let Some(table) = scan.table else { continue };
                    let Some(resolver) = resolver.upgrade() else {
                        return;
                    };
                    tracing::info!(
                        dir = %dir.path().display(),
                        names = ?table.names(),
                        "proxy: certificates per hostname re-read"
                    );
                    resolver.set(table);
                }
                Err(e) => {
                    let msg = e.to_string();
                    if last_error.as_deref() != Some(msg.as_str()) {
                        tracing::warn!(
                            "proxy: --proxy-tls-dir {}: {msg}; the certificates read before are kept",
                            dir.path().display()
                        );
                        last_error = Some(msg);
                    }
                }
            }
        }
    }
}
