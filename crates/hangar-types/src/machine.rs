//! Machines: the `Machine` resource, its states, and the bodies and queries of
//! the machine endpoints (create, update, stop, signal, wait, events, versions,
//! exec, ps).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{MachineConfig, Signal};
use crate::duration::Duration;
use crate::ids::MachineId;

/// The state of a machine, as the Machines API names it.
///
/// ```text
/// created ──start──▶ starting ──▶ started ──stop──▶ stopping ──▶ stopped ──start──▶ starting
///                        │            │                                 │
///                        ▼            ├──suspend──▶ suspending ──▶ suspended ──start──▶ starting
///                 launch_failed       ├──update──▶ replacing ──▶ (new version) / replaced (old)
///                                     └──exit/crash──▶ stopped | failed
/// any ──destroy──▶ destroying ──▶ destroyed
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineState {
    Created,
    Starting,
    Started,
    Stopping,
    Stopped,
    Suspending,
    Suspended,
    Replacing,
    Replaced,
    Destroying,
    Destroyed,
    Failed,
    LaunchFailed,
}

impl MachineState {
    pub const ALL: [MachineState; 13] = [
        MachineState::Created,
        MachineState::Starting,
        MachineState::Started,
        MachineState::Stopping,
        MachineState::Stopped,
        MachineState::Suspending,
        MachineState::Suspended,
        MachineState::Replacing,
        MachineState::Replaced,
        MachineState::Destroying,
        MachineState::Destroyed,
        MachineState::Failed,
        MachineState::LaunchFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MachineState::Created => "created",
            MachineState::Starting => "starting",
            MachineState::Started => "started",
            MachineState::Stopping => "stopping",
            MachineState::Stopped => "stopped",
            MachineState::Suspending => "suspending",
            MachineState::Suspended => "suspended",
            MachineState::Replacing => "replacing",
            MachineState::Replaced => "replaced",
            MachineState::Destroying => "destroying",
            MachineState::Destroyed => "destroyed",
            MachineState::Failed => "failed",
            MachineState::LaunchFailed => "launch_failed",
        }
    }

    /// A transitional state: the machine is on its way somewhere else.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            MachineState::Starting
                | MachineState::Stopping
                | MachineState::Suspending
                | MachineState::Replacing
                | MachineState::Destroying
        )
    }

    /// The machine is gone (`destroyed`, or a `replaced` old version).
    pub fn is_gone(self) -> bool {
        matches!(self, MachineState::Destroyed | MachineState::Replaced)
    }

    /// States `GET .../wait?state=` accepts.
    pub fn can_be_waited_for(self) -> bool {
        matches!(
            self,
            MachineState::Started
                | MachineState::Stopped
                | MachineState::Suspended
                | MachineState::Destroyed
                | MachineState::Failed
                | MachineState::Created
                | MachineState::Replaced
        )
    }
}

impl fmt::Display for MachineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown machine state name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown machine state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for MachineState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, UnknownState> {
        MachineState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// `ImageRef`: the image of a machine, split the way the API shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub registry: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repository: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Registry of images named without one (Docker Hub, as Fly shows it).
pub const DEFAULT_REGISTRY: &str = "registry-1.docker.io";

impl ImageRef {
    /// Split an image reference: `registry.fly.io/my-app:latest` →
    /// registry `registry.fly.io`, repository `my-app`, tag `latest`;
    /// `nginx` → `registry-1.docker.io`, `library/nginx`, `latest`.
    pub fn parse(image: &str) -> ImageRef {
        let (rest, digest) = match image.split_once('@') {
            Some((r, d)) => (r, d.to_owned()),
            None => (image, String::new()),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), path)
            }
            _ => (DEFAULT_REGISTRY.to_owned(), rest),
        };
        let (repo, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, t.to_owned()),
            _ => (path, String::new()),
        };
        let repository = if registry == DEFAULT_REGISTRY && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo.to_owned()
        };
        let tag = if tag.is_empty() && digest.is_empty() {
            "latest".to_owned()
        } else {
            tag
        };
        ImageRef {
            registry,
            repository,
            tag,
            digest,
            labels: Default::default(),
        }
    }
}

/// `CheckStatus`: the state of one check of a machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `passing`, `warning` or `critical`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// `StrippedLease`: the lease of a machine without its nonce.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StrippedLease {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// `Machine`: a machine as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub id: MachineId,
    pub name: String,
    pub state: MachineState,
    pub region: String,
    /// Same as `version` (deprecated by the spec, still read by clients).
    pub instance_id: String,
    pub version: String,
    /// The machine's 6PN address: IPv6.
    pub private_ip: String,
    pub config: MachineConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete_config: Option<MachineConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_ref: Option<ImageRef>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<MachineEvent>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<Vec<CheckStatus>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<StrippedLease>,
    /// Only on create with `lease_ttl`: the nonce of the new lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// `ok`, `unknown` or `unreachable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cordoned: Option<bool>,
}

/// `CreateMachineRequest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateMachineRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<MachineConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_launch: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_service_registration: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_secrets: Option<bool>,
    /// Seconds: create the machine with a lease held for this long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_ttl: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_secrets_version: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `UpdateMachineRequest`: a whole new config (and optionally name/region).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateMachineRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<MachineConfig>,
    /// Reject the update with 409 unless this is still the machine's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_launch: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_service_registration: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_secrets: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_ttl: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_secrets_version: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `StopRequest`: the timeout as a number of seconds or a duration string, the
/// signal by name or number. Both optional (the machine's `stop_config` applies).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StopRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<Signal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `SignalRequest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SignalRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<Signal>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Longest wait `GET .../wait` allows.
pub const MAX_WAIT_SECS: u64 = 60;
/// Wait when no `timeout` is given.
pub const DEFAULT_WAIT_SECS: u64 = 60;

/// The query of `GET /v1/apps/{app}/machines/{id}/wait`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitQuery {
    /// `state` may repeat: any of them satisfies the wait. Empty: `started`.
    pub states: Vec<MachineState>,
    pub instance_id: Option<String>,
    pub version: Option<String>,
    pub from_event_id: Option<String>,
    /// Seconds, at most [`MAX_WAIT_SECS`] (larger values are clamped).
    pub timeout_secs: u64,
}

/// A bad wait query parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct WaitQueryError {
    pub param: String,
    pub message: String,
}

impl WaitQuery {
    /// Read the query from its decoded `key=value` pairs, in order.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<WaitQuery, WaitQueryError> {
        let mut q = WaitQuery {
            timeout_secs: DEFAULT_WAIT_SECS,
            ..Default::default()
        };
        let err = |param: &str, message: String| WaitQueryError {
            param: param.to_owned(),
            message,
        };
        for (k, v) in pairs {
            match k {
                "state" => {
                    for s in v.split(',').filter(|s| !s.is_empty()) {
                        let st: MachineState = s
                            .parse()
                            .map_err(|e: UnknownState| err("state", e.to_string()))?;
                        if !st.can_be_waited_for() {
                            return Err(err(
                                "state",
                                format!("cannot wait for state {st:?}", st = st.as_str()),
                            ));
                        }
                        if !q.states.contains(&st) {
                            q.states.push(st);
                        }
                    }
                }
                "instance_id" => q.instance_id = Some(v.to_owned()),
                "version" => q.version = Some(v.to_owned()),
                "from_event_id" => q.from_event_id = Some(v.to_owned()),
                "timeout" => {
                    let d = Duration::parse(v).map_err(|e| err("timeout", e.to_string()))?;
                    q.timeout_secs = d.as_std().as_secs().min(MAX_WAIT_SECS);
                }
                _ => {}
            }
        }
        if q.states.is_empty() {
            q.states.push(MachineState::Started);
        }
        Ok(q)
    }

    /// The version the wait is about (`version`, else `instance_id`).
    pub fn wanted_version(&self) -> Option<&str> {
        self.version.as_deref().or(self.instance_id.as_deref())
    }

    pub fn is_satisfied_by(&self, state: MachineState) -> bool {
        self.states.contains(&state)
    }
}

/// `WaitMachineResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WaitMachineResponse {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// `MachineEvent`: one entry of a machine's history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineEvent {
    pub id: String,
    /// `launch`, `start`, `stop`, `exit`, `update`, `destroy`, …
    #[serde(rename = "type")]
    pub event_type: String,
    /// The state the machine reached.
    pub status: String,
    /// `user` or `flyd`.
    pub source: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
}

/// `MachineVersion`: one version of a machine's config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineVersion {
    pub version: String,
    pub user_config: MachineConfig,
}

/// `MachineExecRequest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Deprecated: one string, split on whitespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// The container to run in (multi-container machines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Run in the machine's own namespace instead of a container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ExecRequest {
    /// The argv to run: `command`, else `cmd` split on whitespace.
    pub fn argv(&self) -> Vec<String> {
        match (&self.command, &self.cmd) {
            (Some(c), _) if !c.is_empty() => c.clone(),
            (_, Some(s)) => s.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        }
    }
}

/// `flydv1.ExecResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_signal: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
}

/// `ListenSocket`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenSocket {
    pub address: String,
    /// `tcp` or `udp`.
    pub proto: String,
}

/// `ProcessStat`: one process of `GET .../ps`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessStat {
    pub pid: i64,
    pub command: String,
    #[serde(default)]
    pub directory: String,
    /// CPU use, percent.
    #[serde(default)]
    pub cpu: i64,
    /// Resident memory, bytes.
    #[serde(default)]
    pub rss: i64,
    /// Run time, milliseconds.
    #[serde(default)]
    pub rtime: i64,
    /// System time, milliseconds.
    #[serde(default)]
    pub stime: i64,
    #[serde(default)]
    pub listen_sockets: Vec<ListenSocket>,
}

/// `updateMetadataRequest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateMetadataRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `upsertMetadataKeyRequest` / `metadataValueResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataValue {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}
