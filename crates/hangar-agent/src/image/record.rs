//! What the store knows about an image: its reference, digests, the parts of
//! its config a machine needs, and its unpacked layers.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::digest::Digest;

/// The runtime part of an OCI image config (`config` in the config blob).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `NAME=VALUE` entries, in image order.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// E.g. `8080/tcp`, sorted.
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
}

/// The fields of an OCI / Docker image config blob the store reads.
#[derive(Deserialize)]
pub(crate) struct ConfigBlob {
    #[serde(default)]
    pub config: Option<RawConfig>,
    pub rootfs: RootFs,
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RawConfig {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    labels: Option<BTreeMap<String, String>>,
    stop_signal: Option<String>,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

impl From<RawConfig> for ImageConfig {
    fn from(raw: RawConfig) -> Self {
        Self {
            entrypoint: raw.entrypoint,
            cmd: raw.cmd,
            env: raw.env.unwrap_or_default(),
            working_dir: non_empty(raw.working_dir),
            user: non_empty(raw.user),
            exposed_ports: raw.exposed_ports.unwrap_or_default().into_keys().collect(),
            labels: raw.labels.unwrap_or_default(),
            stop_signal: non_empty(raw.stop_signal),
        }
    }
}

/// One layer of an image and where it is unpacked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the blob as stored (compressed for registry layers).
    pub digest: Digest,
    /// Digest of the uncompressed tar (`rootfs.diff_ids`).
    pub diff_id: Digest,
    pub media_type: String,
    pub size: u64,
    /// The unpacked layer, usable as an overlayfs lower dir.
    pub dir: PathBuf,
}

/// An image in the store, ready to be a machine's rootfs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Canonical reference (`docker.io/library/nginx:latest`).
    pub reference: String,
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub config: ImageConfig,
    /// Lowest layer first.
    pub layers: Vec<LayerRecord>,
}

impl ImageRecord {
    /// The unpacked layer directories, lowest first.
    pub fn layer_dirs(&self) -> Vec<PathBuf> {
        self.layers.iter().map(|l| l.dir.clone()).collect()
    }

    /// The overlayfs `lowerdir=` value: layer directories, highest first,
    /// joined with `:`.
    pub fn lowerdir(&self) -> String {
        let dirs: Vec<String> = self
            .layers
            .iter()
            .rev()
            .map(|l| l.dir.display().to_string())
            .collect();
        dirs.join(":")
    }
}
