//! Bringing the store in line with the host when the agent starts (after a clean
//! stop, a crash or a SIGKILL): re-attach to every pilot still running, record the
//! exits of those that ended meanwhile (suspended machines stay frozen), finish
//! interrupted operations, and remove what no machine owns (network namespaces,
//! veths, cgroups).

use std::collections::HashSet;

use serde_json::json;

use super::pidfd::is_process_of;
use super::{Agent, AgentError, cgroup};
use crate::network::remove_orphans;
use crate::store::{MachineFilter, MachineState, NewEvent};

impl Agent {
    pub(super) async fn recover(&self) -> Result<(), AgentError> {
        let machines = self.0.store.list_machines(MachineFilter::default()).await?;
        let mut known = HashSet::new();
        let mut running = HashSet::new();
        for m in &machines {
            if m.state == MachineState::Destroyed {
                continue;
            }
            known.insert(m.id.clone());
            let paths = self.paths(&m.id);
            let pid: Option<i32> = std::fs::read_to_string(paths.pidfile())
                .ok()
                .and_then(|s| s.trim().parse().ok());
            let socket = paths.socket().display().to_string();
            let alive = pid.filter(|&p| is_process_of(p, &socket));
            match (m.state, alive) {
                (MachineState::Destroying, _) => {
                    if let Some(pid) = alive {
                        kill(pid);
                    }
                    self.destroy_stopped(&m.id).await?;
                    known.remove(&m.id);
                }
                (
                    MachineState::Started | MachineState::Starting | MachineState::Stopping,
                    Some(pid),
                ) => {
                    self.attach(&m.id, pid)?;
                    running.insert(m.id.clone());
                    if m.state == MachineState::Starting {
                        // The start finished after the agent went away: once
                        // pilot has tried its first containers it is started
                        // (if pilot exits instead, its exit is recorded).
                        let _ = self.wait_ready(&m.id).await;
                        self.transition(
                            &m.id,
                            MachineState::Started,
                            NewEvent::agent("start")
                                .with_request(json!({"status": "started", "recovered": true})),
                        )
                        .await?;
                    } else if m.state == MachineState::Stopping {
                        // Finish the interrupted stop in the background.
                        let agent = self.clone();
                        let id = m.id.clone();
                        tokio::spawn(async move {
                            if let Err(e) = agent.stop(&id, None, None).await {
                                tracing::error!(machine_id = id, "finishing a stop: {e}");
                            }
                        });
                    }
                }
                (MachineState::Suspended | MachineState::Suspending, Some(pid)) => {
                    // Its processes are still there: it stays suspended (an
                    // interrupted suspend is finished).
                    self.attach(&m.id, pid)?;
                    running.insert(m.id.clone());
                    self.recover_suspended(&m.id, m.state).await?;
                }
                (_, Some(pid)) => {
                    // A pilot for a machine the store says is not running (its
                    // start was rolled back): it must not run.
                    kill(pid);
                    self.cleanup_run(&m.id).await;
                }
                (
                    MachineState::Started
                    | MachineState::Starting
                    | MachineState::Stopping
                    | MachineState::Suspending
                    | MachineState::Suspended,
                    None,
                ) => {
                    // pilot ended while the agent was away (a suspended
                    // machine's processes are lost with a host reboot: it
                    // comes back stopped).
                    self.record_exit(&m.id, m.state == MachineState::Stopping)
                        .await?;
                }
                _ => {
                    // Not running: make sure nothing of an earlier run is left.
                    self.cleanup_run(&m.id).await;
                }
            }
        }

        for op in self.0.store.unfinished_operations().await? {
            // A create cut off before its machine started is rolled back: what it
            // assembled is removed and the machine is `failed` with the reason, so
            // a client sees it and can start it again. Other operations' steps are
            // idempotent and re-run by the next start; their machine keeps the
            // state its last persisted transition gave it.
            let interrupted_create = match (&op.kind[..], &op.machine_id) {
                ("create", Some(id)) => self
                    .0
                    .store
                    .machine(id)
                    .await
                    .ok()
                    .filter(|m| m.state == MachineState::Created),
                _ => None,
            };
            if let Some(m) = interrupted_create {
                self.teardown_network(&m.id).await;
                self.transition(
                    &m.id,
                    MachineState::Failed,
                    NewEvent::agent("launch_failed").with_request(json!({
                        "error": "the agent restarted before this machine was started; start it to retry"
                    })),
                )
                .await?;
                known.insert(m.id.clone());
            }
            self.0
                .store
                .finish_operation(op.id, "interrupted by an agent restart")
                .await?;
        }

        if let Some(host) = &self.0.network {
            let config = host.config().clone();
            let keep = known.clone();
            let removed = tokio::task::spawn_blocking(move || remove_orphans(&config, &keep))
                .await
                .map_err(|e| AgentError::Internal(e.to_string()))?
                .map_err(|e| AgentError::Internal(format!("removing orphan networks: {e}")))?;
            if !removed.netns.is_empty() || !removed.veths.is_empty() {
                tracing::info!(?removed, "removed network leftovers of unknown machines");
            }
        }
        let prefix = self.0.config.cgroup_prefix.clone();
        let stale: Vec<String> = cgroup::children(&prefix)
            .into_iter()
            .filter(|id| !running.contains(id))
            .collect();
        for id in stale {
            let path = super::paths::cgroup_path(&prefix, &id);
            if let Err(e) = tokio::task::spawn_blocking(move || cgroup::remove(&path))
                .await
                .map_err(|e| AgentError::Internal(e.to_string()))?
            {
                tracing::warn!(machine_id = id, "removing a leftover cgroup: {e}");
            }
        }
        Ok(())
    }
}

fn kill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}
