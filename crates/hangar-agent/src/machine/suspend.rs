//! Suspend and resume: a machine here is a set of processes, so suspend
//! freezes them in place (cgroup freezer, see `freezer`) instead of writing a
//! snapshot. Memory stays allocated, sockets stay open and the machine keeps
//! its network and addresses; start thaws it and every process continues
//! where it was.
//!
//! ```text
//!   started ──suspend──► suspending ──frozen──► suspended
//!                            └──could not freeze (thawed)──► started
//!   suspended ──start──► starting ──thawed──► started
//! ```
//!
//! Nothing is written to disk: a host reboot loses a suspended machine's
//! processes and the agent records it `stopped` when it comes back.

use std::time::Duration;

use serde_json::json;

use super::freezer::Freezer;
use super::{Agent, AgentError};
use crate::store::{MachineState, NewEvent};

/// How long the kernel may take to freeze every process of a machine.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

impl Agent {
    /// Suspends a started machine: `suspending`, every process frozen, then
    /// `suspended`. If the processes cannot all be frozen in time they are
    /// thawed and the machine is `started` again.
    pub async fn suspend(&self, machine_id: &str) -> Result<(), AgentError> {
        let lock = self.lock_for(machine_id);
        let _guard = lock.lock().await;
        let machine = self.0.store.machine(machine_id).await?;
        if machine.state != MachineState::Started {
            return Err(AgentError::InvalidState(format!(
                "machine {machine_id} is {}; only a started machine can be suspended",
                machine.state.as_str()
            )));
        }
        self.require_running(machine_id)?;
        let freezer = Freezer::find(&self.cgroup_path(machine_id)).ok_or_else(|| {
            AgentError::Unavailable(format!(
                "machine {machine_id}: its processes are in no freezer cgroup (it was started before this host could suspend machines): restart it, or stop it instead"
            ))
        })?;
        self.transition(
            machine_id,
            MachineState::Suspending,
            NewEvent::user("suspend"),
        )
        .await?;
        // Marked first so nothing talks to pilot while it freezes.
        self.set_frozen(machine_id, true);
        let f = freezer.clone();
        let frozen = tokio::task::spawn_blocking(move || f.freeze(FREEZE_TIMEOUT))
            .await
            .map_err(|e| AgentError::Internal(e.to_string()))?;
        match frozen {
            Ok(()) => {
                self.transition(
                    machine_id,
                    MachineState::Suspended,
                    NewEvent::agent("suspend").with_request(json!({"status": "suspended"})),
                )
                .await?;
                Ok(())
            }
            Err(e) => {
                // `freeze` thawed what it had frozen: the machine runs on.
                self.set_frozen(machine_id, false);
                let error = format!("machine {machine_id}: suspend failed: {e}");
                self.transition(
                    machine_id,
                    MachineState::Started,
                    NewEvent::agent("suspend")
                        .with_request(json!({"status": "failed", "error": error})),
                )
                .await?;
                Err(AgentError::Timeout(error))
            }
        }
    }

    /// Resumes a suspended machine (the caller holds its lock): `starting`,
    /// every process thawed, then `started`. Nothing is launched again.
    pub(super) async fn resume_locked(&self, machine_id: &str) -> Result<(), AgentError> {
        self.transition(machine_id, MachineState::Starting, NewEvent::user("start"))
            .await?;
        let thawed = match Freezer::find(&self.cgroup_path(machine_id)) {
            Some(freezer) => tokio::task::spawn_blocking(move || freezer.thaw())
                .await
                .map_err(|e| AgentError::Internal(e.to_string()))?,
            // No freezer cgroup: nothing can be frozen.
            None => Ok(()),
        };
        match thawed {
            Ok(()) => {
                self.set_frozen(machine_id, false);
                self.transition(
                    machine_id,
                    MachineState::Started,
                    NewEvent::agent("start")
                        .with_request(json!({"status": "started", "resumed": true})),
                )
                .await?;
                Ok(())
            }
            Err(e) => {
                // The processes stay frozen and cannot serve: end the run the
                // way a failed start does (removing the cgroup kills them).
                let error = format!("machine {machine_id}: resume failed: {e}");
                self.0
                    .runs
                    .lock()
                    .expect("runs poisoned")
                    .remove(machine_id);
                self.cleanup_run(machine_id).await;
                let _ = self
                    .transition(
                        machine_id,
                        MachineState::Failed,
                        NewEvent::agent("launch_failed").with_request(json!({"error": error})),
                    )
                    .await;
                Err(AgentError::Internal(error))
            }
        }
    }

    /// Thaws a frozen machine that is about to stop (the caller holds its
    /// lock). A failure is logged: removing the cgroup thaws it again.
    pub(super) async fn thaw_for_stop(&self, machine_id: &str) {
        let frozen = {
            let runs = self.0.runs.lock().expect("runs poisoned");
            runs.get(machine_id).is_some_and(|r| r.frozen)
        };
        if !frozen {
            return;
        }
        if let Some(freezer) = Freezer::find(&self.cgroup_path(machine_id)) {
            let thawed = tokio::task::spawn_blocking(move || freezer.thaw())
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|r| r);
            if let Err(e) = thawed {
                tracing::warn!(machine_id, "thawing a suspended machine to stop it: {e}");
            }
        }
        self.set_frozen(machine_id, false);
    }

    /// Keeps a machine recorded `suspended` (or cut off while `suspending`)
    /// frozen after an agent restart (the caller attached its pilot). Returns
    /// whether it is frozen; if not, it was thawed and runs (`started`).
    pub(super) async fn recover_suspended(
        &self,
        machine_id: &str,
        state: MachineState,
    ) -> Result<bool, AgentError> {
        self.set_frozen(machine_id, true);
        let frozen = match Freezer::find(&self.cgroup_path(machine_id)) {
            Some(freezer) => tokio::task::spawn_blocking(move || freezer.freeze(FREEZE_TIMEOUT))
                .await
                .map_err(|e| AgentError::Internal(e.to_string()))?
                .map_err(|e| e.to_string()),
            None => Err("its processes are in no freezer cgroup".to_owned()),
        };
        match frozen {
            Ok(()) => {
                if state == MachineState::Suspending {
                    self.transition(
                        machine_id,
                        MachineState::Suspended,
                        NewEvent::agent("suspend")
                            .with_request(json!({"status": "suspended", "recovered": true})),
                    )
                    .await?;
                }
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(machine_id, "keeping a suspended machine frozen: {e}");
                self.set_frozen(machine_id, false);
                if state == MachineState::Suspended {
                    self.transition(machine_id, MachineState::Starting, NewEvent::agent("start"))
                        .await?;
                }
                self.transition(
                    machine_id,
                    MachineState::Started,
                    NewEvent::agent("start")
                        .with_request(json!({"status": "started", "recovered": true, "error": e})),
                )
                .await?;
                Ok(false)
            }
        }
    }

    fn set_frozen(&self, machine_id: &str, frozen: bool) {
        let mut runs = self.0.runs.lock().expect("runs poisoned");
        if let Some(run) = runs.get_mut(machine_id) {
            run.frozen = frozen;
        }
    }
}
