//! The resolved machine plan: what the supervisor runs, with every default applied
//! and every reference (image config, user, secret, file) already resolved.
//!
//! [`crate::resolve`] builds a [`MachinePlan`] from the agent's [`crate::spec`]; the
//! supervisor never looks at wire types again.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::runtime::ContainerLaunch;

/// Everything pilot runs for one machine.
#[derive(Debug, Clone)]
pub struct MachinePlan {
    pub machine_id: String,
    /// Containers in the order the config lists them.
    pub containers: Vec<ContainerPlan>,
    /// Number of log lines the machine's ring buffer keeps.
    pub log_buffer_lines: usize,
}

/// One container (or one process of a single-image machine).
#[derive(Debug, Clone)]
pub struct ContainerPlan {
    pub name: String,
    pub launch: ContainerLaunch,
    pub depends_on: Vec<Dependency>,
    pub checks: Vec<CheckPlan>,
    pub restart: RestartPlan,
    pub stop: StopPlan,
}

/// `depends_on[]`: start only once `container` meets `condition`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub container: String,
    pub condition: Condition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The dependency's process was spawned.
    Started,
    /// The dependency's health checks all reached their success threshold.
    Healthy,
    /// The dependency exited with code 0.
    ExitedSuccessfully,
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Condition::Started => "started",
            Condition::Healthy => "healthy",
            Condition::ExitedSuccessfully => "exited_successfully",
        })
    }
}

/// One health check of a container.
#[derive(Debug, Clone)]
pub struct CheckPlan {
    pub name: String,
    pub kind: CheckKind,
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    /// Results before this much time after the start do not count.
    pub grace_period: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// What happens when the check reaches its failure threshold.
    pub on_unhealthy: UnhealthyAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Readiness,
    Liveness,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnhealthyAction {
    /// Only report the container as unhealthy.
    Report,
    /// Stop the container; its restart policy then applies.
    Stop,
}

/// How a check probes the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A TCP connect to `127.0.0.1:port` (the machine's shared network namespace).
    Tcp { port: u16 },
    /// An HTTP request to the machine's own port; 2xx passes, redirects fail.
    Http(HttpProbe),
    /// A command run inside the container; exit 0 passes.
    Exec { argv: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    pub port: u16,
    pub method: String,
    pub path: String,
    pub https: bool,
    /// TLS SNI and `Host` header; `localhost` when unset.
    pub host: Option<String>,
    pub headers: Vec<(String, String)>,
}

/// The container's restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPlan {
    pub policy: RestartPolicyKind,
    /// For `on-failure`: restarts allowed within `window`.
    pub max_retries: u32,
    pub window: Duration,
    /// First backoff; doubles with every restart inside the window.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicyKind {
    No,
    Always,
    OnFailure,
}

impl RestartPlan {
    /// Default `max_retries` for `on-failure`.
    pub const DEFAULT_MAX_RETRIES: u32 = 10;
    /// The window `max_retries` counts in.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

    pub fn new(policy: RestartPolicyKind, max_retries: Option<u32>) -> Self {
        RestartPlan {
            policy,
            max_retries: max_retries.unwrap_or(Self::DEFAULT_MAX_RETRIES),
            window: Self::DEFAULT_WINDOW,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(10),
        }
    }
}

/// How the container is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopPlan {
    /// Signal number sent first.
    pub signal: i32,
    /// Time allowed after `signal` before SIGKILL.
    pub timeout: Duration,
}

impl Default for StopPlan {
    fn default() -> Self {
        StopPlan {
            signal: libc::SIGINT,
            timeout: Duration::from_secs(5),
        }
    }
}
