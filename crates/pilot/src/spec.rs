//! The machine spec: the JSON file the agent writes for pilot (`pilot run --spec`).
//! Its format is documented in the crate docs.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hangar_types::MachineConfig;
use serde::{Deserialize, Serialize};

/// Everything pilot needs to run one machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSpec {
    /// The machine id (also the containers' hostname).
    pub machine_id: String,
    /// Environment the agent adds for every container (e.g. `FLY_MACHINE_ID`),
    /// applied after the image's env and before `config.env`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The machine's config, as the Machines API stores it.
    pub config: MachineConfig,
    /// Every image the config names (`config.image`, `containers[].image`,
    /// `files[].image_config`), keyed by the reference exactly as written there.
    pub images: BTreeMap<String, ImageSpec>,
    /// The machine's secrets, name → value. `files[].secret_name` takes the
    /// base64-encoded file content from here; `containers[].secrets` and
    /// `processes[].secrets` map them to environment variables.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Host directories (volumes) bind-mounted into containers.
    #[serde(default)]
    pub volumes: Vec<VolumeSpec>,
    /// Directory pilot owns: per-container runtime state under `containers/`,
    /// and `status.json` written before pilot exits.
    pub state_dir: PathBuf,
    /// Log lines kept in the machine's ring buffer (default 10 000).
    #[serde(default)]
    pub log_buffer_lines: Option<usize>,
}

/// An image the agent pulled and unpacked.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Unpacked layer directories, lowest (base) layer first.
    pub layers: Vec<PathBuf>,
    /// The parts of the OCI image config pilot uses.
    #[serde(default)]
    pub config: ImageConfig,
    /// The full OCI image config JSON, for `files[].image_config`.
    #[serde(default)]
    pub raw_config: Option<String>,
}

/// The `config` object of an OCI image config. Accepts the OCI spelling
/// (`Entrypoint`, `Cmd`, `Env`, `WorkingDir`, `User`) and snake_case; other keys
/// of the OCI config (`ExposedPorts`, `Labels`, ...) are ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, alias = "Entrypoint")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, alias = "Cmd")]
    pub cmd: Option<Vec<String>>,
    /// `KEY=VALUE` entries.
    #[serde(default, alias = "Env")]
    pub env: Option<Vec<String>>,
    #[serde(default, alias = "WorkingDir")]
    pub working_dir: Option<String>,
    #[serde(default, alias = "User")]
    pub user: Option<String>,
}

/// A bind mount of a host directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    pub source: PathBuf,
    /// Absolute path inside the container(s).
    pub target: PathBuf,
    #[serde(default)]
    pub readonly: bool,
    /// Containers that get the mount; every container when absent.
    #[serde(default)]
    pub containers: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid spec {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl MachineSpec {
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| SpecError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }
}
