//! The seam between the API and the host: what the agent's lifecycle must
//! do for each machine and volume call. The API persists what the request
//! decided (a new machine, a new version) before calling the backend; the
//! backend does the work on the host and records every state change through
//! the store's `transition`, so `wait` and `events` see it.

use async_trait::async_trait;
use hangar_agent::store::{MachineRecord, OperationId, VolumeRecord};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Options of a create or update.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchOptions {
    /// Assemble the machine but do not start it.
    pub skip_launch: bool,
}

/// How to stop (or restart) a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopOptions {
    /// Signal number to send first (the config's `stop_config` or SIGINT when `None`).
    pub signal: Option<i32>,
    /// How long to wait before SIGKILL (the config's or 5 s when `None`).
    pub timeout: Option<Duration>,
}

/// How to destroy a machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestroyOptions {
    /// Kill the machine if it is running (`?force=true` or `?kill=true`).
    pub force: bool,
}

/// A command to run inside a machine (`POST .../exec`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ExecRequest {
    /// The command and its arguments.
    #[serde(default)]
    pub command: Vec<String>,
    /// The container to run it in (`None`: the only or first container).
    #[serde(default)]
    pub container: Option<String>,
    /// Run in the machine's own namespaces rather than in a container.
    #[serde(default)]
    pub machine: bool,
    /// Fed to the command's standard input.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Seconds before the command is killed.
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// What an exec produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ExecResponse {
    pub exit_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A listening socket of a process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ListenSocket {
    pub address: String,
    pub proto: String,
}

/// One process of a machine (`GET .../ps`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ProcessStat {
    pub pid: i64,
    pub command: String,
    pub directory: String,
    pub cpu: i64,
    pub rss: i64,
    pub rtime: i64,
    pub stime: i64,
    pub listen_sockets: Vec<ListenSocket>,
}

/// Why the backend could not do what was asked: the agent's own error, so the
/// agent needs no translation layer (`InvalidState`, `Invalid`, `Unavailable`,
/// `Timeout`, `Store`, `Internal`).
pub use hangar_agent::machine::AgentError as BackendError;

/// What the host agent does for machine calls.
#[async_trait]
pub trait MachineBackend: Send + Sync + 'static {
    /// `machine` was persisted in `created` with the unfinished `create`
    /// operation `op`: assemble everything start does not need, then (unless
    /// `skip_launch`) start it, and finish `op`. May return before the start
    /// completes; clients wait with `GET .../wait`.
    async fn create(
        &self,
        machine: &MachineRecord,
        op: OperationId,
        opts: &LaunchOptions,
    ) -> Result<(), BackendError>;

    /// `machine` has a new current version (the old one is `replaced`) and
    /// the unfinished `update` operation `op`: stop the old run, assemble the
    /// new version (pulling its image) and start it unless `skip_launch`.
    async fn update(
        &self,
        machine: &MachineRecord,
        op: OperationId,
        opts: &LaunchOptions,
    ) -> Result<(), BackendError>;

    /// Starts a created, stopped or failed machine; resumes a suspended one.
    async fn start(&self, machine: &MachineRecord) -> Result<(), BackendError>;

    /// Stops a running machine.
    async fn stop(&self, machine: &MachineRecord, opts: &StopOptions) -> Result<(), BackendError>;

    /// Freezes a started machine in place (`suspending`, then `suspended`);
    /// `start` resumes it. Hosts that cannot suspend refuse with
    /// `Unavailable`.
    async fn suspend(&self, machine: &MachineRecord) -> Result<(), BackendError> {
        Err(BackendError::Unavailable(format!(
            "machine {}: suspend is not supported on this host: use stop and start instead",
            machine.id
        )))
    }

    /// Stops and starts a running machine (a `restart` event).
    async fn restart(
        &self,
        machine: &MachineRecord,
        opts: &StopOptions,
    ) -> Result<(), BackendError>;

    /// Sends a signal to the machine's processes.
    async fn signal(&self, machine: &MachineRecord, signal: i32) -> Result<(), BackendError>;

    /// Destroys a machine and everything made for it; ends in `destroyed`.
    async fn destroy(
        &self,
        machine: &MachineRecord,
        opts: &DestroyOptions,
    ) -> Result<(), BackendError>;

    /// Runs a command in a started machine.
    async fn exec(
        &self,
        machine: &MachineRecord,
        req: &ExecRequest,
    ) -> Result<ExecResponse, BackendError>;

    /// Lists the processes of a started machine.
    async fn ps(&self, machine: &MachineRecord) -> Result<Vec<ProcessStat>, BackendError>;

    /// The output of a started machine's containers, oldest first: the last
    /// `tail` lines kept by its init, then (with `follow`) new lines as they
    /// come, until the machine stops or the receiver is dropped.
    async fn logs(
        &self,
        machine: &MachineRecord,
        _opts: &LogOptions,
    ) -> Result<tokio::sync::mpsc::Receiver<LogEntry>, BackendError> {
        Err(BackendError::Unavailable(format!(
            "machine {}: this host keeps no logs",
            machine.id
        )))
    }

    /// The health checks of a started machine and how they stand (`checks`
    /// of `GET .../machines/{id}`); none when it does not run.
    async fn checks(&self, _machine: &MachineRecord) -> Vec<CheckStat> {
        Vec::new()
    }
}

/// What `GET .../logs` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Only this container's lines.
    pub container: Option<String>,
    /// At most this many of the kept lines (all kept lines when `None`).
    pub tail: Option<usize>,
    pub follow: bool,
}

/// One line of a machine's output (`GET .../logs`, one JSON object a line).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct LogEntry {
    /// RFC 3339 time the line was read, with milliseconds.
    pub timestamp: String,
    pub container: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub message: String,
}

/// One health check of a machine as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct CheckStat {
    /// The check's name (`<container>/<check>` for a container's check when
    /// the machine has several containers).
    pub name: String,
    /// `passing`, `warning` (not decided yet) or `critical`.
    pub status: String,
    pub output: String,
    /// RFC 3339 time of the last result, if there was one.
    pub updated_at: Option<String>,
}

/// What the host agent does for volume calls. The API records the volume
/// first (state `creating`); the backend makes it on the host and moves it
/// to `created`.
#[async_trait]
pub trait VolumeBackend: Send + Sync + 'static {
    /// Makes the volume's storage at `volume.host_path` with its size enforced.
    async fn create(&self, volume: &VolumeRecord) -> Result<(), BackendError>;

    /// Grows the volume to `size_gb`; returns whether the attached machine
    /// must restart to see the new size.
    async fn extend(&self, volume: &VolumeRecord, size_gb: i64) -> Result<bool, BackendError>;

    /// Removes the volume's storage from the host.
    async fn destroy(&self, volume: &VolumeRecord) -> Result<(), BackendError>;
}
