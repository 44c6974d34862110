//! One container's state inside the supervisor, and its projection into the
//! status the API reports.
#![forbid(unsafe_code)]

use std::collections::VecDeque;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::deps::DepFacts;
use crate::health::tracker::Tracker;
use crate::plan::ContainerPlan;
use crate::runtime::ContainerHandle;
use crate::status::{CheckState, CheckStatus, ContainerState, ContainerStatus, ExitInfo};

/// Exits kept per container.
const EXITS_KEPT: usize = 32;

/// Where a container is in its life.
#[derive(Debug)]
pub enum Phase {
    /// Waiting for its dependencies (never started yet).
    Waiting,
    /// `Runtime::start` is running.
    Starting,
    /// Its process runs.
    Running { pid: i32, handle: ContainerHandle },
    /// It was sent its stop signal; SIGKILL follows after the timeout.
    Stopping { pid: i32, handle: ContainerHandle },
    /// Waiting for the restart backoff.
    Backoff,
    /// Finished for good.
    Done { failed: bool },
}

pub struct Slot {
    pub plan: ContainerPlan,
    pub phase: Phase,
    /// Bumped at every start; reports carry it.
    pub epoch: u64,
    pub restart_count: u32,
    pub restart_history: Vec<Instant>,
    pub exits: VecDeque<ExitInfo>,
    pub started_at_ms: Option<u64>,
    pub ever_started: bool,
    pub ever_healthy: bool,
    pub ever_succeeded: bool,
    /// All checks passing in the current run.
    pub healthy_now: bool,
    pub trackers: Vec<Tracker>,
    pub last_output: Vec<Option<String>>,
    pub last_checked_ms: Vec<Option<u64>>,
    pub reason: Option<String>,
    /// Why pilot signalled the current run, if it did (`stop`, `unhealthy`).
    pub requested: Option<&'static str>,
    pub oom_before: u64,
    pub checks: Vec<JoinHandle<()>>,
}

impl Slot {
    pub fn new(plan: ContainerPlan) -> Self {
        let n = plan.checks.len();
        Slot {
            plan,
            phase: Phase::Waiting,
            epoch: 0,
            restart_count: 0,
            restart_history: Vec::new(),
            exits: VecDeque::new(),
            started_at_ms: None,
            ever_started: false,
            ever_healthy: false,
            ever_succeeded: false,
            healthy_now: false,
            trackers: vec![Tracker::default(); n],
            last_output: vec![None; n],
            last_checked_ms: vec![None; n],
            reason: None,
            requested: None,
            oom_before: 0,
            checks: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.plan.name
    }

    pub fn facts(&self) -> DepFacts {
        DepFacts {
            ever_started: self.ever_started,
            ever_healthy: self.ever_healthy,
            ever_succeeded: self.ever_succeeded,
            finished: matches!(self.phase, Phase::Done { .. }),
        }
    }

    /// Alive or about to be: counts as a dependent that must stop first.
    pub fn is_live(&self) -> bool {
        matches!(
            self.phase,
            Phase::Starting | Phase::Running { .. } | Phase::Stopping { .. }
        )
    }

    pub fn pid(&self) -> Option<i32> {
        match &self.phase {
            Phase::Running { pid, .. } | Phase::Stopping { pid, .. } => Some(*pid),
            _ => None,
        }
    }

    pub fn record_exit(&mut self, exit: ExitInfo) {
        if self.exits.len() == EXITS_KEPT {
            self.exits.pop_front();
        }
        self.exits.push_back(exit);
    }

    /// Resets health tracking for a new run and stops the probes of the old one.
    pub fn reset_checks(&mut self) {
        for c in self.checks.drain(..) {
            c.abort();
        }
        for t in &mut self.trackers {
            *t = Tracker::default();
        }
        self.healthy_now = false;
    }

    pub fn any_failing(&self) -> bool {
        self.trackers
            .iter()
            .any(|t| t.state() == CheckState::Failing)
    }

    pub fn all_passing(&self) -> bool {
        self.trackers
            .iter()
            .all(|t| t.state() == CheckState::Passing)
    }

    pub fn state(&self) -> ContainerState {
        match &self.phase {
            Phase::Waiting => ContainerState::Created,
            Phase::Starting | Phase::Backoff => ContainerState::Starting,
            Phase::Running { .. } | Phase::Stopping { .. } => {
                if self.any_failing() {
                    ContainerState::Unhealthy
                } else if !self.trackers.is_empty() && self.all_passing() {
                    ContainerState::Healthy
                } else {
                    ContainerState::Running
                }
            }
            Phase::Done { failed: false } => ContainerState::Exited,
            Phase::Done { failed: true } => ContainerState::Failed,
        }
    }

    pub fn status(&self, waiting_for: Vec<String>) -> ContainerStatus {
        ContainerStatus {
            name: self.plan.name.clone(),
            state: self.state(),
            pid: self.pid(),
            restart_count: self.restart_count,
            started_at_ms: self.started_at_ms,
            waiting_for,
            reason: self.reason.clone(),
            last_exit: self.exits.back().cloned(),
            exits: self.exits.iter().cloned().collect(),
            health: self
                .plan
                .checks
                .iter()
                .enumerate()
                .map(|(i, c)| CheckStatus {
                    name: c.name.clone(),
                    kind: c.kind,
                    status: self.trackers[i].state(),
                    consecutive_passes: self.trackers[i].passes,
                    consecutive_failures: self.trackers[i].failures,
                    last_output: self.last_output[i].clone(),
                    last_checked_ms: self.last_checked_ms[i],
                })
                .collect(),
        }
    }
}
