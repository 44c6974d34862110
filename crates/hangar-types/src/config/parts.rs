//! The smaller pieces of a machine config: restart and stop policies, files,
//! secrets, guest resources, init, mounts, processes, DNS, metrics, statics.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::enums::RestartMode;
use super::signal::Signal;
use crate::duration::Duration;

/// `fly.MachineRestart`: whether and how a machine or container is restarted
/// after its main process exits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RestartPolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<RestartMode>,
    /// With `on-failure`: restarts allowed before giving up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Restarts allowed by `on-failure` when `max_retries` is not given.
pub const DEFAULT_MAX_RETRIES: u32 = 10;

impl RestartPolicy {
    pub fn new(policy: RestartMode, max_retries: Option<i64>) -> Self {
        RestartPolicy {
            policy: Some(policy),
            max_retries,
            extra: Map::new(),
        }
    }

    /// The mode, `on-failure` when none is given (the spec's default).
    pub fn mode(&self) -> RestartMode {
        self.policy.clone().unwrap_or(RestartMode::OnFailure)
    }

    /// `max_retries`, or [`DEFAULT_MAX_RETRIES`].
    pub fn max_retries_or_default(&self) -> u32 {
        self.max_retries
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(DEFAULT_MAX_RETRIES)
    }

    /// Whether a process that exited with `exit_code` (`None`: killed by a
    /// signal) after `restarts_so_far` restarts should be restarted again.
    pub fn should_restart(&self, exit_code: Option<i32>, restarts_so_far: u32) -> bool {
        match self.mode() {
            RestartMode::Always => true,
            RestartMode::No | RestartMode::Never | RestartMode::Unknown(_) => false,
            RestartMode::OnFailure => {
                exit_code != Some(0) && restarts_so_far < self.max_retries_or_default()
            }
        }
    }
}

/// `fly.StopConfig`: how to stop a machine or container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StopConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<Signal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Signal sent to stop when none is configured (Fly's default).
pub const DEFAULT_STOP_SIGNAL: i32 = Signal::SIGINT;
/// Time between the stop signal and SIGKILL when none is configured.
pub const DEFAULT_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl StopConfig {
    /// The signal number, [`DEFAULT_STOP_SIGNAL`] when none (or an unknown one) is given.
    pub fn signal_number(&self) -> i32 {
        self.signal
            .as_ref()
            .and_then(Signal::number)
            .unwrap_or(DEFAULT_STOP_SIGNAL)
    }

    pub fn timeout_or_default(&self) -> std::time::Duration {
        self.timeout
            .as_ref()
            .map_or(DEFAULT_STOP_TIMEOUT, Duration::as_std)
    }
}

/// `fly.File`: a file written into the machine or container before it starts.
/// Exactly one source must be given: `raw_value` (base64), `secret_name`,
/// `local_path` (a path on the client, read by the CLI; not in the spec), or
/// `image_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct File {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_config: Option<String>,
    /// Permission bits, as chmod(2) takes them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Mode of a written file when none is given.
pub const DEFAULT_FILE_MODE: u32 = 0o644;

impl File {
    /// A file with inline contents (base64-encoded here).
    pub fn from_bytes(guest_path: &str, contents: &[u8]) -> Self {
        File {
            guest_path: Some(guest_path.to_owned()),
            raw_value: Some(base64::engine::general_purpose::STANDARD.encode(contents)),
            ..Default::default()
        }
    }

    /// The names of the sources that are set, in a fixed order.
    pub fn sources(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.raw_value.is_some() {
            v.push("raw_value");
        }
        if self.secret_name.is_some() {
            v.push("secret_name");
        }
        if self.local_path.is_some() {
            v.push("local_path");
        }
        if self.image_config.is_some() {
            v.push("image_config");
        }
        v
    }

    /// The decoded `raw_value`, if there is one.
    pub fn decoded_raw_value(&self) -> Option<Result<Vec<u8>, base64::DecodeError>> {
        self.raw_value.as_deref().map(decode_base64)
    }

    pub fn mode_or_default(&self) -> u32 {
        self.mode
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(DEFAULT_FILE_MODE)
    }
}

/// Standard base64, padded or not; line breaks are ignored (as Go's decoder does).
pub fn decode_base64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let cleaned: String = s.chars().filter(|c| *c != '\n' && *c != '\r').collect();
    LENIENT.decode(cleaned)
}

/// `fly.EnvFrom`: an environment variable set from a machine field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvFrom {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_var: Option<String>,
    /// One of `id`, `version`, `app_name`, `private_ip`, `region`, `image`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Machine fields `env_from[].field_ref` may name.
pub const ENV_FROM_FIELDS: &[&str] =
    &["id", "version", "app_name", "private_ip", "region", "image"];

/// `fly.MachineSecret`: an app secret exposed as an environment variable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineSecret {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_var: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `fly.MachineGuest`: the resources of the machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GuestConfig {
    /// `shared` or `performance`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_memory_mb: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpus: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_dedication_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_args: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persist_rootfs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_host_features: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// CPUs of a machine whose config gives none.
pub const DEFAULT_CPUS: u32 = 1;
/// Memory of a machine whose config gives none (Fly's smallest size).
pub const DEFAULT_MEMORY_MB: u64 = 256;

impl GuestConfig {
    pub fn cpus_or_default(&self) -> u32 {
        self.cpus
            .and_then(|c| u32::try_from(c).ok())
            .unwrap_or(DEFAULT_CPUS)
    }

    pub fn memory_mb_or_default(&self) -> u64 {
        self.memory_mb
            .and_then(|m| u64::try_from(m).ok())
            .unwrap_or(DEFAULT_MEMORY_MB)
    }
}

/// `fly.MachineInit`: overrides for the image's entrypoint and command.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineInit {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap_size_mb: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_args: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `fly.MachineMount`: a volume mounted into the machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mount {
    /// The volume id (`vol_…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_size_gb: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_size_percent: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extend_threshold_percent: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_add_size_gb: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_gb_limit: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `fly.MachineProcess`: one process of a single-container machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineProcess {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_from: Option<Vec<EnvFrom>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<MachineSecret>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore_app_secrets: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `fly.dnsOption`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsOption {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `fly.dnsForwardRule`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsForwardRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `fly.DNSConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_registration: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nameservers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub searches: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<DnsOption>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_forward_rules: Option<Vec<DnsForwardRule>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname_fqdn: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `fly.MachineMetrics`: where the machine serves Prometheus metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineMetrics {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `fly.Static`: files served by the proxy straight from the machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Static {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tigris_bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_document: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `fly.MachineRootfs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rootfs {
    /// `never`, `always` or `restart`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persist: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `fly.MachineCacheDrive`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheDrive {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_mb: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `fly.MachineSpot`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spot {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_price_fraction: Option<f64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
