//! The manifest and index documents the store reads (OCI and Docker v2),
//! and the media types it accepts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::error::ImageError;

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub(crate) const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub(crate) const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Media types of manifests and indexes asked for when pulling.
pub(crate) const ACCEPTED_MANIFESTS: &[&str] =
    &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// Layer media types the unpacker reads (gzip or plain tar).
const LAYER_TYPES: &[&str] = &[
    OCI_LAYER_TAR,
    OCI_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
}

/// A manifest or an index, told apart by `mediaType` or by their fields.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Document {
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
}

pub(crate) enum Parsed {
    Manifest {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    Index(Vec<Descriptor>),
}

impl Document {
    pub(crate) fn parse(reference: &str, bytes: &[u8]) -> Result<Parsed, ImageError> {
        let invalid = |reason: String| ImageError::InvalidImage {
            reference: reference.to_string(),
            reason,
        };
        let doc: Document =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("manifest: {e}")))?;
        if doc.schema_version != 2 {
            return Err(invalid(format!(
                "manifest schemaVersion {} (only 2 is supported)",
                doc.schema_version
            )));
        }
        let media_type = doc.media_type.clone().unwrap_or_default();
        match media_type.as_str() {
            OCI_INDEX | DOCKER_LIST => {}
            OCI_MANIFEST | DOCKER_MANIFEST | "" => {}
            other => {
                return Err(ImageError::UnsupportedMediaType {
                    reference: reference.to_string(),
                    media_type: other.to_string(),
                });
            }
        }
        if let Some(manifests) = doc.manifests {
            return Ok(Parsed::Index(manifests));
        }
        match (doc.config, doc.layers) {
            (Some(config), Some(layers)) => {
                if !config.media_type.is_empty()
                    && config.media_type != OCI_CONFIG
                    && config.media_type != DOCKER_CONFIG
                {
                    return Err(ImageError::UnsupportedMediaType {
                        reference: reference.to_string(),
                        media_type: config.media_type,
                    });
                }
                for layer in &layers {
                    if !LAYER_TYPES.contains(&layer.media_type.as_str()) {
                        return Err(ImageError::UnsupportedMediaType {
                            reference: reference.to_string(),
                            media_type: layer.media_type.clone(),
                        });
                    }
                }
                Ok(Parsed::Manifest { config, layers })
            }
            _ => Err(invalid("manifest has neither layers nor manifests".into())),
        }
    }
}

/// The linux/amd64 entry of an index.
pub(crate) fn pick_platform(manifests: &[Descriptor]) -> Option<&Descriptor> {
    manifests.iter().find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
    })
}

/// Parses a descriptor's digest, naming the reference when it is malformed.
pub(crate) fn digest_of(reference: &str, descriptor: &Descriptor) -> Result<Digest, ImageError> {
    Digest::parse(&descriptor.digest).map_err(|reason| ImageError::InvalidImage {
        reference: reference.to_string(),
        reason,
    })
}
