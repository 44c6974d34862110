//! The machine config (`fly.MachineConfig`) and everything in it.
//!
//! Every optional field is an `Option` and is left out when serializing if it is
//! `None`, so a config serializes back exactly as the client sent it: nothing
//! added, nothing reordered in meaning. An explicit `null` is read as "absent"
//! and is not echoed. Keys Hangar does not know land in each struct's `extra`
//! map and are echoed back, but no Hangar logic reads them.

mod container;
mod enums;
mod health;
mod parts;
mod service;
mod signal;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use container::{ContainerConfig, DependsOn, image_short_name};
pub use enums::{
    Autostop, AutostopMode, DependencyCondition, HealthCheckKind, RestartMode, UnhealthyPolicy,
};
pub use health::{
    DEFAULT_FAILURE_THRESHOLD, DEFAULT_GRACE_PERIOD, DEFAULT_INTERVAL, DEFAULT_SUCCESS_THRESHOLD,
    DEFAULT_TIMEOUT, ExecProbe, HealthCheck, HealthProbe, HttpHeader, HttpProbe, ProbeError,
    TcpProbe,
};
pub use parts::{
    CacheDrive, DEFAULT_CPUS, DEFAULT_FILE_MODE, DEFAULT_MAX_RETRIES, DEFAULT_MEMORY_MB,
    DEFAULT_STOP_SIGNAL, DEFAULT_STOP_TIMEOUT, DnsConfig, DnsForwardRule, DnsOption,
    ENV_FROM_FIELDS, EnvFrom, File, GuestConfig, MachineInit, MachineMetrics, MachineProcess,
    MachineSecret, Mount, RestartPolicy, Rootfs, Spot, Static, StopConfig, decode_base64,
};
pub use service::{
    Check, Concurrency, DEFAULT_HARD_LIMIT, DEFAULT_SOFT_LIMIT, HttpOptions, HttpResponseOptions,
    MachinePort, MachineService, ProxyProtoOptions, ReplayCache, TlsOptions,
};
pub use signal::Signal;

/// Machine ids of the machines this one stands by for.
pub type Standbys = Vec<String>;

/// `fly.MachineConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineConfig {
    /// The image of a single-container machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<MachineInit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<GuestConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<Mount>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<MachineService>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MachineMetrics>,
    /// Named top-level checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<BTreeMap<String, Check>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_destroy: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<Vec<MachineProcess>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<File>>,
    /// `hourly`, `daily`, `weekly` or `monthly`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standbys: Option<Standbys>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_config: Option<StopConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statics: Option<Vec<Static>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containers: Option<Vec<ContainerConfig>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<Rootfs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_drive: Option<CacheDrive>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spot: Option<Spot>,
    /// Deprecated: use `guest`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Deprecated: use `services[].autostart`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_machine_autostart: Option<bool>,
    /// Keys Hangar does not know: kept and echoed, otherwise ignored.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Values `schedule` may take.
pub const SCHEDULES: &[&str] = &["hourly", "daily", "weekly", "monthly"];

impl MachineConfig {
    /// A single-container config running `image`.
    pub fn with_image(image: &str) -> Self {
        MachineConfig {
            image: Some(image.to_owned()),
            ..Default::default()
        }
    }

    /// A multi-container config.
    pub fn with_containers(containers: Vec<ContainerConfig>) -> Self {
        MachineConfig {
            containers: Some(containers),
            ..Default::default()
        }
    }

    /// The containers (empty for a single-container machine).
    pub fn containers(&self) -> &[ContainerConfig] {
        self.containers.as_deref().unwrap_or_default()
    }

    /// A container by its effective name.
    pub fn container(&self, name: &str) -> Option<&ContainerConfig> {
        self.containers()
            .iter()
            .find(|c| c.effective_name().as_deref() == Some(name))
    }

    pub fn services(&self) -> &[MachineService] {
        self.services.as_deref().unwrap_or_default()
    }

    pub fn mounts(&self) -> &[Mount] {
        self.mounts.as_deref().unwrap_or_default()
    }

    pub fn files(&self) -> &[File] {
        self.files.as_deref().unwrap_or_default()
    }

    pub fn processes(&self) -> &[MachineProcess] {
        self.processes.as_deref().unwrap_or_default()
    }

    pub fn standbys(&self) -> &[String] {
        self.standbys.as_deref().unwrap_or_default()
    }

    /// Guest resources (all defaults when none are given).
    pub fn guest(&self) -> GuestConfig {
        self.guest.clone().unwrap_or_default()
    }

    /// The stop config (all defaults when none is given).
    pub fn stop_config(&self) -> StopConfig {
        self.stop_config.clone().unwrap_or_default()
    }

    /// The restart policy (the spec's default, `on-failure`, when none is given).
    pub fn restart(&self) -> RestartPolicy {
        self.restart.clone().unwrap_or_default()
    }

    pub fn env(&self) -> BTreeMap<String, String> {
        self.env.clone().unwrap_or_default()
    }

    pub fn metadata(&self) -> BTreeMap<String, String> {
        self.metadata.clone().unwrap_or_default()
    }

    /// Whether the machine destroys itself once its main process exits.
    pub fn auto_destroy(&self) -> bool {
        self.auto_destroy.unwrap_or(false)
    }
}
