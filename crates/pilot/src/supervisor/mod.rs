//! The supervisor: one task that owns the machine's state and drives every
//! container through its life — start when dependencies are met, health checks,
//! restarts, stop in reverse dependency order — and answers the agent API.
//!
//! Everything that takes time (runtime calls, probes, timers, waiting for exits)
//! runs in its own task and reports back with a [`Msg`] tagged with the container's
//! start generation, so stale reports of an earlier run are ignored.
#![forbid(unsafe_code)]

mod actor;
mod deps;
mod slot;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::api::protocol::{ApiError, ErrorCode, SignalResult, StopResult};
use crate::health::{ExecTarget, ProbeReport};
use crate::journal::Journal;
use crate::logs::LogJournal;
use crate::plan::MachinePlan;
use crate::reaper::ExitStatus;
use crate::runtime::{Runtime, RuntimeError, Started};
use crate::status::{Event, MachineStatus};

pub use deps::{DepFacts, DepState, dependency_state};

/// Events kept for the event stream.
pub const EVENT_BUFFER: usize = 10_000;

/// Messages to the supervisor task.
pub(crate) enum Msg {
    StartDone {
        idx: usize,
        epoch: u64,
        result: Result<Started, RuntimeError>,
    },
    Exited {
        idx: usize,
        epoch: u64,
        status: ExitStatus,
    },
    Probe {
        idx: usize,
        epoch: u64,
        report: ProbeReport,
    },
    RestartDue {
        idx: usize,
        epoch: u64,
    },
    KillDue {
        idx: usize,
        epoch: u64,
    },
    Command(Command),
}

/// Requests from the API.
pub(crate) enum Command {
    Status(oneshot::Sender<MachineStatus>),
    ExecTarget {
        container: Option<String>,
        reply: oneshot::Sender<Result<ExecTarget, ApiError>>,
    },
    Signal {
        container: Option<String>,
        signal: i32,
        reply: oneshot::Sender<Result<SignalResult, ApiError>>,
    },
    Stop {
        signal: Option<i32>,
        timeout: Option<Duration>,
        reason: String,
        reply: oneshot::Sender<StopResult>,
    },
}

/// A cheap, cloneable handle on the running supervisor.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Msg>,
    pub logs: Arc<LogJournal>,
    pub events: Arc<Journal<Event>>,
    pub runtime: Arc<dyn Runtime>,
    /// Set once, with the final status, when every container is finished.
    final_status: watch::Receiver<Option<MachineStatus>>,
}

fn gone() -> ApiError {
    ApiError::new(ErrorCode::Stopping, "the machine has exited")
}

impl Handle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Command(make(tx))).ok()?;
        rx.await.ok()
    }

    pub async fn status(&self) -> Result<MachineStatus, ApiError> {
        self.ask(Command::Status).await.ok_or_else(gone)
    }

    /// Where to run a command in `container`.
    pub async fn exec_target(&self, container: Option<String>) -> Result<ExecTarget, ApiError> {
        self.ask(|reply| Command::ExecTarget { container, reply })
            .await
            .ok_or_else(gone)?
    }

    pub async fn signal(
        &self,
        container: Option<String>,
        signal: i32,
    ) -> Result<SignalResult, ApiError> {
        self.ask(|reply| Command::Signal {
            container,
            signal,
            reply,
        })
        .await
        .ok_or_else(gone)?
    }

    /// Requests the machine stop; answers at once (see [`Handle::wait_exited`]).
    /// Idempotent: a stop after an earlier one, or after the machine ended, is
    /// answered with `accepted: false`.
    pub async fn stop(
        &self,
        signal: Option<i32>,
        timeout: Option<Duration>,
        reason: &str,
    ) -> Result<StopResult, ApiError> {
        let answer = self
            .ask(|reply| Command::Stop {
                signal,
                timeout,
                reason: reason.to_string(),
                reply,
            })
            .await;
        Ok(answer.unwrap_or_else(|| StopResult {
            accepted: false,
            message: "the machine has already stopped; this stop request changed nothing".into(),
            status: None,
        }))
    }

    /// Waits until every container is finished; returns the final status.
    pub async fn wait_exited(&self) -> Result<MachineStatus, ApiError> {
        let mut rx = self.final_status.clone();
        let done = rx.wait_for(|s| s.is_some()).await.map_err(|_| gone())?;
        done.clone().ok_or_else(gone)
    }
}

/// Starts supervising `plan`. The returned task ends with the final status once
/// every container is finished (all exited, or the machine was stopped).
pub fn spawn(
    plan: MachinePlan,
    runtime: Arc<dyn Runtime>,
) -> (Handle, tokio::task::JoinHandle<MachineStatus>) {
    // The reaper must be listening before the first child exists.
    let _ = crate::reaper::reaper();
    let (tx, rx) = mpsc::unbounded_channel();
    let (final_tx, final_rx) = watch::channel(None);
    let handle = Handle {
        final_status: final_rx,
        tx: tx.clone(),
        logs: Arc::new(Journal::new(plan.log_buffer_lines)),
        events: Arc::new(Journal::new(EVENT_BUFFER)),
        runtime: runtime.clone(),
    };
    let actor = actor::Actor::new(
        plan,
        runtime,
        tx,
        handle.logs.clone(),
        handle.events.clone(),
        final_tx,
    );
    let task = tokio::spawn(actor.run(rx));
    (handle, task)
}

#[cfg(test)]
mod tests;
