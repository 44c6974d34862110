//! The rustls server configs of the proxy's TLS ports, one per distinct
//! [`TlsSettings`], made on first use and kept. Every config shares the one
//! SNI resolver, so `--proxy-tls-dir` changes reach all ports at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::ResolvesServerCert;

use super::{SelfSignedResolver, SniResolver, TlsError, TlsSettings};

/// How many configs are kept. Settings come from machine configs, and a
/// host sees few distinct ones; past this the cache starts over.
pub const MAX_CONFIGS: usize = 64;

/// Server configs by settings.
#[derive(Debug)]
pub struct TlsConfigs {
    provider: Arc<CryptoProvider>,
    sni: Arc<SniResolver>,
    self_signed: Arc<SelfSignedResolver>,
    built: RwLock<HashMap<TlsSettings, Arc<ServerConfig>>>,
}

impl TlsConfigs {
    pub fn new(provider: Arc<CryptoProvider>, sni: Arc<SniResolver>) -> TlsConfigs {
        TlsConfigs {
            self_signed: Arc::new(SelfSignedResolver::new(sni.clone(), provider.clone())),
            provider,
            sni,
            built: RwLock::new(HashMap::new()),
        }
    }

    /// The server config for `settings`, made the first time it is asked for.
    pub fn get(&self, settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
        if let Some(c) = self.built.read().expect("TLS configs lock").get(settings) {
            return Ok(c.clone());
        }
        let config = Arc::new(self.build(settings)?);
        let mut built = self.built.write().expect("TLS configs lock");
        if let Some(c) = built.get(settings) {
            return Ok(c.clone());
        }
        if built.len() >= MAX_CONFIGS {
            built.clear();
        }
        built.insert(settings.clone(), config.clone());
        Ok(config)
    }

    /// How many configs are kept.
    pub fn len(&self) -> usize {
        self.built.read().expect("TLS configs lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The resolver of ports without `default_self_signed`.
    pub fn sni(&self) -> &Arc<SniResolver> {
        &self.sni
    }

    /// The resolver of ports with `default_self_signed`.
    pub fn self_signed(&self) -> &Arc<SelfSignedResolver> {
        &self.self_signed
    }

    fn build(&self, settings: &TlsSettings) -> Result<ServerConfig, TlsError> {
        let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
        if settings.tls13 {
            versions.push(&rustls::version::TLS13);
        }
        if settings.tls12 {
            versions.push(&rustls::version::TLS12);
        }
        let resolver: Arc<dyn ResolvesServerCert> = if settings.default_self_signed {
            self.self_signed.clone()
        } else {
            self.sni.clone()
        };
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&versions)?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        config.alpn_protocols = settings.alpn.clone();
        Ok(config)
    }
}
