//! What a port's `tls_options` ask of its TLS handshakes: the ALPN
//! protocols offered, the TLS versions allowed, and whether names without a
//! certificate get a self-signed one. Ports with equal settings share one
//! server config.

use hangar_types::config::TlsOptions;

/// The TLS settings of one port, as [`super::TlsConfigs`] builds them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsSettings {
    /// ALPN protocols offered, in order of preference (none: the client's
    /// protocol is not negotiated).
    pub alpn: Vec<Vec<u8>>,
    pub tls12: bool,
    pub tls13: bool,
    /// A name no certificate serves gets a self-signed certificate of its
    /// own instead of the default one.
    pub default_self_signed: bool,
}

/// What a `tls` + `http` port offers when `alpn` is not given.
const HTTP_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

impl TlsSettings {
    /// The settings of a port with `options`; `http` says whether the port
    /// also has the `http` handler (only then is ALPN offered by default:
    /// a raw TCP backend must not have a client negotiate HTTP/2).
    ///
    /// The API rejects unknown versions and empty protocol names; a config
    /// stored before that check may still hold them, so they are skipped
    /// here, and a `versions` list with no known version allows both.
    pub fn of(options: Option<&TlsOptions>, http: bool) -> TlsSettings {
        let alpn = match options.and_then(|o| o.alpn.as_ref()) {
            Some(list) => list
                .iter()
                .filter(|p| !p.is_empty() && p.len() <= 255)
                .map(|p| p.as_bytes().to_vec())
                .collect(),
            None if http => HTTP_ALPN.iter().map(|p| p.to_vec()).collect(),
            None => Vec::new(),
        };
        let versions = options.and_then(|o| o.versions.as_deref()).unwrap_or(&[]);
        let has = |name: &str| versions.iter().any(|v| v.trim().eq_ignore_ascii_case(name));
        let (mut tls12, mut tls13) = (has("TLSv1.2"), has("TLSv1.3"));
        if !tls12 && !tls13 {
            (tls12, tls13) = (true, true);
        }
        TlsSettings {
            alpn,
            tls12,
            tls13,
            default_self_signed: options.and_then(|o| o.default_self_signed) == Some(true),
        }
    }
}

#[cfg(test)]
mod tests;
