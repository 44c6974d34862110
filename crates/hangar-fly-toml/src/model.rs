//! The fly.toml once read: each section already checked and turned into the
//! Machines API JSON it becomes, with the process groups it applies to and
//! where it was written (for errors found later, while planning).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::Pos;
use crate::read::At;

/// How `hangar deploy` replaces the machines of a group (`[deploy] strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeployStrategy {
    /// One machine at a time (the default).
    #[default]
    Rolling,
    /// Every machine at once, without waiting for health checks.
    Immediate,
    /// One new machine first; the rest rolling once it is healthy.
    Canary,
    /// A full new set beside the old one; traffic moves once all are healthy.
    Bluegreen,
}

impl DeployStrategy {
    pub const KNOWN: &'static [&'static str] = &["rolling", "immediate", "canary", "bluegreen"];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "rolling" => DeployStrategy::Rolling,
            "immediate" => DeployStrategy::Immediate,
            "canary" => DeployStrategy::Canary,
            "bluegreen" => DeployStrategy::Bluegreen,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeployStrategy::Rolling => "rolling",
            DeployStrategy::Immediate => "immediate",
            DeployStrategy::Canary => "canary",
            DeployStrategy::Bluegreen => "bluegreen",
        }
    }
}

/// A section that applies to some process groups (`processes = [...]`). One
/// that lists none applies to the default group only (as flyctl does; see
/// [`default_group`]), except `[[vm]]`, which then applies to every group.
#[derive(Debug, Clone)]
pub(crate) struct Scoped<T> {
    pub key: String,
    pub pos: Pos,
    pub processes: Vec<At<String>>,
    pub value: T,
}

impl<T> Scoped<T> {
    /// Whether the section is for `group`; `default` is the default group.
    pub fn applies_to(&self, group: &str, default: &str) -> bool {
        if self.processes.is_empty() {
            group == default
        } else {
            self.names(group)
        }
    }

    /// Whether `processes` names `group`.
    pub fn names(&self, group: &str) -> bool {
        self.processes.iter().any(|p| p.value == group)
    }
}

/// The group sections without `processes` apply to: `app` if there is one,
/// else the first group name in alphabetical order.
pub(crate) fn default_group(groups: &[String]) -> &str {
    if groups.iter().any(|g| g == "app") {
        "app"
    } else {
        groups.iter().min().map_or("app", String::as_str)
    }
}

/// A volume a process group mounts (`[mounts]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    /// The volume name (`source`).
    pub source: String,
    /// Where it is mounted in the machine (`destination`).
    pub destination: String,
    /// `initial_size`, in GB (rounded up), if given.
    pub initial_size_gb: Option<u64>,
}

impl MountPlan {
    /// The `config.mounts[]` entry for this mount once the volume exists.
    pub fn machine_mount(&self, volume_id: &str) -> Value {
        serde_json::json!({
            "volume": volume_id,
            "path": self.destination,
            "name": self.source,
        })
    }
}

/// Where a `[[files]]` entry takes its contents from.
#[derive(Debug, Clone)]
pub(crate) enum FileSource {
    /// A path relative to the fly.toml's directory, read when planning.
    Local(At<String>),
    /// Base64 contents.
    Raw(String),
    /// An app secret's name.
    Secret(String),
}

#[derive(Debug, Clone)]
pub(crate) struct FileSpec {
    pub guest_path: String,
    pub source: FileSource,
}

/// One `[processes]` entry.
#[derive(Debug, Clone)]
pub(crate) struct Process {
    pub name: At<String>,
    pub argv: Vec<String>,
}

/// Everything read from a fly.toml.
#[derive(Debug, Clone, Default)]
pub(crate) struct Model {
    pub app: Option<String>,
    pub primary_region: Option<String>,
    pub image: Option<String>,
    /// The first of `[build] dockerfile`/`builder`/`buildpacks`, if any.
    pub build_source: Option<At<String>>,
    pub env: BTreeMap<String, String>,
    pub processes: Vec<Process>,
    /// `config.services[]` entries (`[http_service]` first, then `[[services]]`).
    pub services: Vec<Scoped<Value>>,
    /// `config.checks` entries by name.
    pub checks: Vec<Scoped<(String, Value)>>,
    /// `config.guest` fields, applied in order.
    pub vms: Vec<Scoped<Map<String, Value>>>,
    pub mounts: Vec<Scoped<MountPlan>>,
    pub strategy: DeployStrategy,
    /// `config.restart` objects.
    pub restarts: Vec<Scoped<Value>>,
    pub files: Vec<Scoped<FileSpec>>,
    /// `config.stop_config`, from `kill_signal` / `kill_timeout`.
    pub stop_config: Map<String, Value>,
    /// `config.init` fields: `[experimental] cmd/entrypoint/exec`, `swap_size_mb`.
    pub init: Map<String, Value>,
    pub machine_config: Option<At<String>>,
    /// Where the `{` of an inline `machine_config` is in the file.
    pub machine_config_json: Option<Pos>,
    pub container: Option<At<String>>,
    /// `config.metrics` entries (`[metrics]` or `[[metrics]]`).
    pub metrics: Vec<Scoped<Value>>,
    pub statics: Vec<Value>,
}
