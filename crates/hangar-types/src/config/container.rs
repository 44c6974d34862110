//! One container of a multi-container machine (`fly.ContainerConfig`) and its
//! dependencies (`fly.ContainerDependency`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::enums::DependencyCondition;
use super::health::HealthCheck;
use super::parts::{EnvFrom, File, MachineSecret, RestartPolicy, StopConfig};

/// `depends_on[]`: wait for another container. The spec names the target
/// `name`, the guides `container`; both are accepted and kept as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DependsOn {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<DependencyCondition>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl DependsOn {
    /// A dependency written the spec's way.
    pub fn new(name: &str, condition: DependencyCondition) -> Self {
        DependsOn {
            name: Some(name.to_owned()),
            condition: Some(condition),
            ..Default::default()
        }
    }

    /// The container depended on, whichever key named it (`name` first).
    pub fn target(&self) -> Option<&str> {
        self.name.as_deref().or(self.container.as_deref())
    }

    /// The condition, `started` when none is given.
    pub fn condition_or_default(&self) -> DependencyCondition {
        self.condition.clone().unwrap_or_default()
    }
}

/// `fly.ContainerConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// Unique within the machine; see [`ContainerConfig::effective_name`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_from: Option<Vec<EnvFrom>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<File>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<MachineSecret>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopConfig>,
    /// The spec's spelling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthchecks: Option<Vec<HealthCheck>>,
    /// The guides' spelling. Use [`ContainerConfig::health_checks`] to read either.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_checks: Option<Vec<HealthCheck>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<DependsOn>>,
    /// Keys Hangar does not know: kept and echoed, otherwise ignored.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ContainerConfig {
    /// A container with a name and an image.
    pub fn new(name: &str, image: &str) -> Self {
        ContainerConfig {
            name: Some(name.to_owned()),
            image: Some(image.to_owned()),
            ..Default::default()
        }
    }

    /// The container's name: `name` if given (and not empty), else the last path
    /// component of the image repository without tag or digest
    /// (`registry.fly.io/my-app:latest` → `my-app`). `None` when neither exists.
    pub fn effective_name(&self) -> Option<String> {
        if let Some(n) = self.name.as_deref().filter(|n| !n.is_empty()) {
            return Some(n.to_owned());
        }
        self.image.as_deref().and_then(image_short_name)
    }

    /// Health checks, whichever key they came under (`healthchecks` first).
    pub fn health_checks(&self) -> impl Iterator<Item = &HealthCheck> {
        self.healthchecks
            .iter()
            .chain(self.health_checks.iter())
            .flatten()
    }

    pub fn has_health_checks(&self) -> bool {
        self.health_checks().next().is_some()
    }

    /// The dependencies (empty when none).
    pub fn depends_on(&self) -> &[DependsOn] {
        self.depends_on.as_deref().unwrap_or_default()
    }

    /// The files (empty when none).
    pub fn files(&self) -> &[File] {
        self.files.as_deref().unwrap_or_default()
    }

    /// Environment variables (empty when none).
    pub fn env(&self) -> BTreeMap<String, String> {
        self.env.clone().unwrap_or_default()
    }
}

/// The last path component of an image reference's repository, without tag or
/// digest: `registry.fly.io/my-app:latest` → `my-app`,
/// `ghcr.io/org/tool@sha256:…` → `tool`, `localhost:5000/x` → `x`.
pub fn image_short_name(image: &str) -> Option<String> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    // A tag follows the last ':' of the last component (a registry port is never
    // in the last component).
    let name = last.split(':').next().unwrap_or(last);
    if name.is_empty() {
        None
    } else {
        Some(name.to_owned())
    }
}
