//! Image references, normalized as Docker does: `nginx` →
//! `docker.io/library/nginx:latest`, `user/app:tag` → `docker.io/user/app:tag`,
//! `host:port/repo@sha256:...` kept as given.

use std::fmt;
use std::net::IpAddr;

use oci_client::Reference;

use super::error::ImageError;

/// A parsed, normalized image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef(pub(crate) Reference);

impl ImageRef {
    pub fn parse(text: &str) -> Result<Self, ImageError> {
        let invalid = |reason: String| ImageError::InvalidReference {
            reference: text.to_string(),
            reason,
        };
        if text.trim().is_empty() {
            return Err(invalid("empty".into()));
        }
        let reference: Reference = text.parse().map_err(|e| invalid(format!("{e}")))?;
        if reference
            .repository()
            .bytes()
            .any(|b| b.is_ascii_uppercase())
        {
            return Err(invalid("repository name must be lowercase".into()));
        }
        Ok(Self(reference))
    }

    /// `docker.io/library/nginx:latest`, `127.0.0.1:5000/app@sha256:...`.
    pub fn canonical(&self) -> String {
        self.0.whole()
    }

    /// The registry host (`docker.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        self.0.registry()
    }

    pub fn repository(&self) -> &str {
        self.0.repository()
    }

    pub fn tag(&self) -> Option<&str> {
        self.0.tag()
    }

    pub fn digest(&self) -> Option<&str> {
        self.0.digest()
    }

    /// Whether the registry is on loopback: such registries are spoken to in
    /// plain HTTP, as Docker does.
    pub fn is_loopback_registry(&self) -> bool {
        let host = self.registry();
        let host = match host.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or(rest),
            None => host.rsplit_once(':').map_or(host, |(h, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    host
                }
            }),
        };
        host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}
