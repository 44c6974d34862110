//! What pilot reports about the machine: the status answer of the agent API, the
//! events of the event stream, and the final status file.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

use crate::plan::{CheckKind, Condition};

/// The machine as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineState {
    /// Some container has not been started yet (waiting for its dependencies).
    Starting,
    /// Every container that can start has been started.
    Running,
    /// A stop was requested; containers are being stopped.
    Stopping,
    /// Every container is finished; pilot is about to exit.
    Exited,
}

/// One container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    /// Not started yet (waiting for dependencies).
    Created,
    /// Being started, or waiting for its restart backoff.
    Starting,
    /// Process running; health checks (if any) not passing yet.
    Running,
    /// Process running and every health check passing.
    Healthy,
    /// Process running and some health check failing.
    Unhealthy,
    /// Finished and not restarted: exited 0, or stopped with the machine.
    Exited,
    /// Finished for good otherwise: could not start, exited non-zero with no
    /// restart left, or never started because a dependency failed.
    Failed,
}

/// How one run of a container ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code; absent when killed by a signal.
    pub exit_code: Option<i32>,
    /// Signal number that killed it.
    pub signal: Option<i32>,
    /// The kernel OOM killer killed a process of this container during the run.
    pub oom_killed: bool,
    /// Unix ms of the exit.
    pub exited_at_ms: u64,
    /// Why pilot ended the run, when it did: `stop` (machine stop), `unhealthy`
    /// (a liveness check with `unhealthy: stop`), `signal` (agent signal).
    pub requested: Option<String>,
}

impl ExitInfo {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// The live status of one health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckStatus {
    pub name: String,
    pub kind: CheckKind,
    /// `unknown` until the check reaches a threshold.
    pub status: CheckState,
    pub consecutive_passes: u32,
    pub consecutive_failures: u32,
    /// Output or error of the last probe.
    pub last_output: Option<String>,
    pub last_checked_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    Unknown,
    Passing,
    Failing,
}

/// Status of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub name: String,
    pub state: ContainerState,
    /// Pid of the running process (in pilot's PID namespace).
    pub pid: Option<i32>,
    /// Times the container was restarted.
    pub restart_count: u32,
    /// Unix ms of the last start.
    pub started_at_ms: Option<u64>,
    /// Dependencies not met yet, as `name (condition)`.
    pub waiting_for: Vec<String>,
    /// Why the container failed, when it did (start error, blocked dependency,
    /// no restart left).
    pub reason: Option<String>,
    pub last_exit: Option<ExitInfo>,
    /// Every recorded exit, oldest first (the last 32).
    pub exits: Vec<ExitInfo>,
    pub health: Vec<CheckStatus>,
}

/// Answer of `status`, and the content of the final status file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineStatus {
    pub machine_id: String,
    pub state: MachineState,
    /// pilot's own exit code once `exited` (see the crate docs).
    pub exit_code: Option<i32>,
    pub containers: Vec<ContainerStatus>,
    /// Why pilot could not run the machine at all (invalid spec, socket error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One event of the event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unix ms.
    pub ts_ms: u64,
    /// The container concerned; absent for machine events.
    pub container: Option<String>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    MachineStarting,
    MachineRunning,
    MachineStopping {
        reason: String,
    },
    MachineExited {
        exit_code: i32,
    },
    /// Dependencies met (or none): the runtime is starting the container.
    Starting {
        attempt: u32,
    },
    Started {
        pid: i32,
    },
    StartFailed {
        error: String,
    },
    CheckPassing {
        check: String,
    },
    CheckFailing {
        check: String,
        output: Option<String>,
    },
    Healthy,
    Unhealthy {
        check: String,
    },
    /// pilot sent the container a signal (stop, unhealthy stop, agent request).
    Signaled {
        signal: i32,
        reason: String,
    },
    /// The stop timeout passed: SIGKILL sent.
    Killed,
    Exited {
        exit: ExitInfo,
    },
    Restarting {
        attempt: u32,
        delay_ms: u64,
    },
    /// Will not be started: a dependency can never meet its condition.
    Blocked {
        dependency: String,
        condition: Condition,
        reason: String,
    },
    /// Finished for good.
    Failed {
        reason: String,
    },
}
